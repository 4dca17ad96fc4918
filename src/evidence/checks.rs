//! The four-property checks of DA/T 70-2018 (authenticity, integrity, usability, security) as a
//! report: one line per item code with its result and detail. The archiving stage (`GD`) runs at
//! ingest; the transfer (`YJ`) and preservation (`BC`) stages will add their own items to the same
//! report shape.
//!
//! Items that are the ingest's own gates pass for every archived case, because a failure rejects
//! the submission with its problem code; the report records that and how. Nothing is reported as
//! `pass` that was not checked: a check that cannot run here says `not_configured`, one that needs
//! a person says `manual`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Manual,
    NotConfigured,
    NotApplicable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Manual => "manual",
            Outcome::NotConfigured => "not_configured",
            Outcome::NotApplicable => "not_applicable",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckItem {
    pub code: String,
    pub property: String,
    pub item: String,
    pub result: Outcome,
    pub detail: String,
}

/// What the archiving stage knows about one accepted submission.
pub struct GdFacts<'a> {
    pub files: usize,
    pub bytes: u64,
    pub declared_digests: usize,
    pub licences: usize,
    pub process_steps: usize,
    pub warnings: usize,
    pub formats: Vec<String>,
    pub channel: &'a str,
    /// `None`: no scanner configured; `Some(engine)`: every file scanned clean by it.
    pub virus_scan: Option<String>,
    pub signed_by: &'a str,
}

fn item(
    code: &str,
    property: &str,
    item: &str,
    result: Outcome,
    detail: impl Into<String>,
) -> CheckItem {
    CheckItem {
        code: code.into(),
        property: property.into(),
        item: item.into(),
        result,
        detail: detail.into(),
    }
}

/// The `GD` (archiving) items for a submission that passed every ingest gate.
pub fn archiving(f: &GdFacts<'_>) -> Vec<CheckItem> {
    use Outcome::*;
    let a = "authenticity";
    let i = "integrity";
    let u = "usability";
    let s = "security";
    vec![
        item(
            "GD-1-1",
            a,
            "fixed evidence: digests and signature",
            Pass,
            format!(
                "SHA-256 and SM3 of all {} files computed while receiving; tag manifest signed with Ed25519 key {}",
                f.files, f.signed_by
            ),
        ),
        item(
            "GD-1-2",
            a,
            "declared digests match the received bytes",
            if f.declared_digests > 0 {
                Pass
            } else {
                NotApplicable
            },
            if f.declared_digests > 0 {
                format!(
                    "{} declared SHA-256 digests match (a mismatch is rejected as digest_mismatch)",
                    f.declared_digests
                )
            } else {
                "metadata.xml declares no digests".to_string()
            },
        ),
        item(
            "GD-1-3",
            a,
            "metadata accurate: length, type, value range, check characters",
            Pass,
            "every element checked against schemas/case.xsd rules, GB 32100 and ISO 7064 check characters, times with offsets (failures are rejected as field_invalid)",
        ),
        item(
            "GD-1-4",
            a,
            "file attributes match the metadata",
            Pass,
            "each file's format identified from its content agrees with its declared format and extension (format_mismatch otherwise)",
        ),
        item(
            "GD-1-5",
            a,
            "package structure as specified",
            Pass,
            "only metadata.xml, files/ and licenses/; every file listed and every listed file present; no unsafe paths",
        ),
        item(
            "GD-2-1",
            i,
            "counts and bytes match",
            Pass,
            format!(
                "{} files, {} bytes, as listed in metadata.xml",
                f.files, f.bytes
            ),
        ),
        item(
            "GD-2-2",
            i,
            "required metadata elements present",
            Pass,
            "all required elements of DOMAIN.md §4 present (field_missing otherwise)",
        ),
        item(
            "GD-2-3",
            i,
            "process records present",
            Pass,
            format!("{} process steps", f.process_steps),
        ),
        item(
            "GD-2-4",
            i,
            "e-licences archived with their metadata",
            if f.licences > 0 { Pass } else { NotApplicable },
            if f.licences > 0 {
                format!("{} e-licences with catalogue metadata and file", f.licences)
            } else {
                "no e-licence issued".to_string()
            },
        ),
        item(
            "GD-3-1",
            u,
            "metadata readable",
            Pass,
            "metadata.xml is well-formed UTF-8 in namespace urn:guidang:case:1",
        ),
        item(
            "GD-3-2",
            u,
            "content formats allowed and readable",
            Pass,
            format!(
                "formats {}; {} warning(s)",
                f.formats.join(", "),
                f.warnings
            ),
        ),
        item(
            "GD-3-3",
            u,
            "no encryption, no non-public compression",
            Pass,
            "no encrypted file (PDF /Encrypt, encrypted ZIP members, OLE-encrypted OOXML, ODF or OFD encryption) and no archive inside; the package is stored uncompressed",
        ),
        match &f.virus_scan {
            Some(engine) => item(
                "GD-4-1",
                s,
                "virus scan",
                Pass,
                format!("every file scanned clean by {engine}"),
            ),
            None => item(
                "GD-4-1",
                s,
                "virus scan",
                NotConfigured,
                "no virus scanner configured ([antivirus] in the configuration)",
            ),
        },
        if f.channel == "offline" {
            item(
                "GD-4-2",
                s,
                "carrier (media) check",
                Manual,
                "offline import: the archivist checks the carrier's appearance and readability",
            )
        } else {
            item(
                "GD-4-2",
                s,
                "carrier (media) check",
                NotApplicable,
                "received online: no carrier",
            )
        },
        item(
            "GD-4-3",
            s,
            "process security",
            Pass,
            format!(
                "received {} by an authenticated agent; the package is signed and entered in the transparency log",
                f.channel
            ),
        ),
    ]
}
