//! The contract's problem codes (CONTRACT.md §3) and the problem list an ingest returns.
//!
//! Every rejection in the pipeline is expressed as a [`Problem`]; the HTTP and CLI layers map them
//! onto responses and summaries in exactly one place each.

use serde::Serialize;

/// Stable, lowercase snake-case codes. Case systems branch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    NotAZip,
    UnsafePath,
    ZipLimits,
    MetadataMissing,
    MetadataInvalid,
    FieldMissing,
    FieldInvalid,
    FileMissing,
    FileUnlisted,
    DigestMismatch,
    EmptyFile,
    EncryptedFile,
    ProprietaryFormat,
    ArchiveContainer,
    UnknownFormat,
    FormatMismatch,
    CaseExists,
    VirusFound,
    ResolutionTooLow,
    ResolutionUnknown,
    PageMissing,
    PageDuplicate,
    ColourModeMismatch,
    DeclarationMismatch,
    MixedFormats,
    FormatNotAllowed,
    NotInBatch,
    YearNotFiled,
    // Warnings (accepted with a note) use their own codes.
    NotFixedLayout,
    UnknownExtension,
    PdfIncomplete,
    RetentionRaised,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotAZip => "not_a_zip",
            Code::UnsafePath => "unsafe_path",
            Code::ZipLimits => "zip_limits",
            Code::MetadataMissing => "metadata_missing",
            Code::MetadataInvalid => "metadata_invalid",
            Code::FieldMissing => "field_missing",
            Code::FieldInvalid => "field_invalid",
            Code::FileMissing => "file_missing",
            Code::FileUnlisted => "file_unlisted",
            Code::DigestMismatch => "digest_mismatch",
            Code::EmptyFile => "empty_file",
            Code::EncryptedFile => "encrypted_file",
            Code::ProprietaryFormat => "proprietary_format",
            Code::ArchiveContainer => "archive_container",
            Code::UnknownFormat => "unknown_format",
            Code::FormatMismatch => "format_mismatch",
            Code::CaseExists => "case_exists",
            Code::VirusFound => "virus_found",
            Code::ResolutionTooLow => "resolution_too_low",
            Code::ResolutionUnknown => "resolution_unknown",
            Code::PageMissing => "page_missing",
            Code::PageDuplicate => "page_duplicate",
            Code::ColourModeMismatch => "colour_mode_mismatch",
            Code::DeclarationMismatch => "declaration_mismatch",
            Code::MixedFormats => "mixed_formats",
            Code::FormatNotAllowed => "format_not_allowed",
            Code::NotInBatch => "not_in_batch",
            Code::YearNotFiled => "year_not_filed",
            Code::NotFixedLayout => "not_fixed_layout",
            Code::UnknownExtension => "unknown_extension",
            Code::PdfIncomplete => "pdf_incomplete",
            Code::RetentionRaised => "retention_raised",
        }
    }

    /// The code in Chinese, as the console shows it beside the code.
    pub fn zh(self) -> &'static str {
        match self {
            Code::NotAZip => "不是 ZIP 文件",
            Code::UnsafePath => "不安全的路径",
            Code::ZipLimits => "超出压缩包限制",
            Code::MetadataMissing => "缺少元数据文件",
            Code::MetadataInvalid => "元数据不合规",
            Code::FieldMissing => "缺少必填元数据项",
            Code::FieldInvalid => "元数据项取值错误",
            Code::FileMissing => "文件缺失",
            Code::FileUnlisted => "文件未在元数据中列出",
            Code::DigestMismatch => "摘要值不符",
            Code::EmptyFile => "空文件",
            Code::EncryptedFile => "文件已加密",
            Code::ProprietaryFormat => "专有格式",
            Code::ArchiveContainer => "压缩包内含压缩包",
            Code::UnknownFormat => "无法识别或不接收的格式",
            Code::FormatMismatch => "声明格式与内容不符",
            Code::CaseExists => "办件已存在且内容不同",
            Code::VirusFound => "发现病毒",
            Code::ResolutionTooLow => "分辨率过低",
            Code::ResolutionUnknown => "分辨率未知",
            Code::PageMissing => "缺页",
            Code::PageDuplicate => "重复页",
            Code::ColourModeMismatch => "色彩模式不符",
            Code::DeclarationMismatch => "声明与图像不符",
            Code::MixedFormats => "同批格式不一",
            Code::FormatNotAllowed => "格式不在允许范围",
            Code::NotInBatch => "不在移交批次中",
            Code::YearNotFiled => "年度尚未归档",
            Code::NotFixedLayout => "非版式文件",
            Code::UnknownExtension => "扩展名未知",
            Code::PdfIncomplete => "PDF 结构不完整",
            Code::RetentionRaised => "保管期限已提高",
        }
    }

    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub const ALL: [Code; 32] = [
        Code::NotAZip,
        Code::UnsafePath,
        Code::ZipLimits,
        Code::MetadataMissing,
        Code::MetadataInvalid,
        Code::FieldMissing,
        Code::FieldInvalid,
        Code::FileMissing,
        Code::FileUnlisted,
        Code::DigestMismatch,
        Code::EmptyFile,
        Code::EncryptedFile,
        Code::ProprietaryFormat,
        Code::ArchiveContainer,
        Code::UnknownFormat,
        Code::FormatMismatch,
        Code::CaseExists,
        Code::VirusFound,
        Code::ResolutionTooLow,
        Code::ResolutionUnknown,
        Code::PageMissing,
        Code::PageDuplicate,
        Code::ColourModeMismatch,
        Code::DeclarationMismatch,
        Code::MixedFormats,
        Code::FormatNotAllowed,
        Code::NotInBatch,
        Code::YearNotFiled,
        Code::NotFixedLayout,
        Code::UnknownExtension,
        Code::PdfIncomplete,
        Code::RetentionRaised,
    ];
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with (or noted about) a submission. `path` names a file in the submission,
/// `field` a metadata element; at least one is set whenever the problem is about either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: Code,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Problem {
            code,
            path: None,
            field: None,
            message: message.into(),
        }
    }
    pub fn file(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            code,
            path: Some(path.into()),
            field: None,
            message: message.into(),
        }
    }
    pub fn field(code: Code, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            code,
            path: None,
            field: Some(field.into()),
            message: message.into(),
        }
    }
    pub fn in_file(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

/// Problems accumulated across all stages so that a rejection lists *every* problem at once.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// The refused case, when its metadata could be read (the filing status counts refusals).
    pub case_key: Option<Box<CaseKey>>,
}

#[derive(Debug, Clone)]
pub struct CaseKey {
    pub social_code: String,
    pub task_code: String,
    pub project_id: String,
    pub year: i64,
}

impl Problems {
    pub fn push(&mut self, p: Problem) {
        self.errors.push(p);
    }
    pub fn warn(&mut self, p: Problem) {
        self.warnings.push(p);
    }
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    pub fn has(&self, code: Code) -> bool {
        self.errors.iter().any(|p| p.code == code)
    }
}
