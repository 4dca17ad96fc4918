//! The ingest pipeline, one stage a module:
//!
//! receive → unpack → describe → identify → digest → package → sign → store → record
//!
//! [`prepare`] runs the synchronous middle (unpack to sign) in one pass over the submission: each
//! file is inflated once, and while its bytes stream into the package being built they are hashed
//! (SHA-256 and SM3 side by side) and identified. Storing and recording are in
//! [`crate::archive`], which owns the database and the object store.

pub mod describe;
pub mod digest;
pub mod identify;
pub mod package;
pub mod receive;
pub mod schema;
pub mod stream_unpack;
pub mod unpack;
pub mod xml;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use chrono::{DateTime, FixedOffset};
use sha2::{Digest as _, Sha256};

use crate::auth::Principal;
use crate::config::Settings;
use crate::db::cases::FileRow;
use crate::evidence::antivirus::Verdict;
use crate::evidence::checks;
use crate::problem::{Code, Problem, Problems};
use crate::signing::Signer;
use crate::xml::Doc;
use describe::{CaseMetadata, METADATA_PATH};
use identify::{Action, Identification, Sniffer};
use package::{BagInfo, Finished, PackageWriter};
use unpack::Source;

/// A package built, signed and synced in the staging area, with everything to record it.
#[derive(Debug)]
pub struct Prepared {
    pub archive_id: String,
    pub metadata: CaseMetadata,
    pub files: Vec<FileRow>,
    pub warnings: Vec<Problem>,
    pub content_digest: String,
    pub package: Finished,
    /// Removes the staged package if the ingest stops before it is committed.
    pub staged: tempfile::TempPath,
    pub received_at: DateTime<FixedOffset>,
    pub validated_at: DateTime<FixedOffset>,
    /// The package was built while the submission was arriving.
    pub streamed: bool,
    /// The archiving-stage (GD) four-property check report.
    pub checks: Vec<checks::CheckItem>,
    pub retention: crate::retention::Assigned,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0}")]
    Unreadable(String),
    #[error("the submission was rejected")]
    Rejected(Problems),
    #[error("I/O while preparing the package: {0}")]
    Io(#[from] io::Error),
}

pub struct PrepareInput<'a> {
    pub source: &'a Source,
    pub settings: &'a Settings,
    pub policy: &'a BTreeMap<String, Action>,
    pub signer: &'a Signer,
    /// Signs the package with SM2 as well, where configured.
    pub sm2: Option<&'a crate::signing_sm2::Sm2Signer>,
    pub archive_id: &'a str,
    pub agent: &'a Principal,
    pub received_at: DateTime<FixedOffset>,
    /// The retention rules in force: the assigned retention is sealed into `archive.xml`.
    pub rules: &'a crate::retention::RuleSet,
    /// A package begun while the submission was being received, if any.
    pub early: Option<stream_unpack::Early>,
}

/// A read-only view of a byte range of a file: a file as stored inside the package being built.
pub struct Window {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Window {
    pub fn new(file: File, start: u64, len: u64) -> Window {
        Window {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(left) as usize;
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if p < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

fn now() -> DateTime<FixedOffset> {
    chrono::Utc::now().fixed_offset()
}

fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn read_small(opened: &mut unpack::Opened, e: &unpack::Entry, max: u64) -> io::Result<Vec<u8>> {
    opened.read_entry(e, |r| {
        let mut v = Vec::with_capacity(e.size.min(max) as usize);
        r.take(max).read_to_end(&mut v)?;
        Ok(v)
    })
}

/// Digest over the submission's content, independent of how it was zipped: two submissions with
/// the same files (names and bytes) are the same submission.
pub fn content_digest(files: &[FileRow]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|f| format!("{}\t{}\n", f.path, f.sha256))
        .collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.concat().as_bytes()))
}

/// The software and platform that archive a case, recorded in its archive.xml (DA/T 70: the
/// archiving environment is part of the record's context).
pub fn environment() -> String {
    format!(
        "guidang {} on {} {}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Unpack, describe, identify, digest, package and sign, in one pass over the submission.
pub fn prepare(mut inp: PrepareInput<'_>) -> Result<Prepared, PrepareError> {
    let limits = &inp.settings.limits;
    let mut problems = Problems::default();
    let (mut opened, entries) =
        unpack::open(inp.source, limits, &mut problems).map_err(|e| match e {
            unpack::UnpackError::NotAZip(m) => PrepareError::Unreadable(m),
            unpack::UnpackError::Io(e) => PrepareError::Io(e),
        })?;
    if problems.has(Code::ZipLimits) {
        // Never inflate a submission that breaks the limits.
        return Err(PrepareError::Rejected(problems));
    }

    // Describe.
    let meta_entry = entries.iter().find(|e| e.name == METADATA_PATH);
    let metadata = match meta_entry {
        None => {
            problems.push(Problem::file(
                Code::MetadataMissing,
                METADATA_PATH,
                "the submission has no metadata.xml at its top level",
            ));
            None
        }
        Some(e) if e.size > limits.max_metadata_bytes => {
            problems.push(Problem::file(
                Code::MetadataInvalid,
                METADATA_PATH,
                format!(
                    "{} bytes, more than the limit of {}",
                    e.size, limits.max_metadata_bytes
                ),
            ));
            None
        }
        Some(e) => {
            let bytes = read_small(&mut opened, e, limits.max_metadata_bytes).map_err(|err| {
                PrepareError::Unreadable(format!("metadata.xml cannot be read: {err}"))
            })?;
            describe::describe(&bytes, inp.settings.check_license_check_char, &mut problems)
        }
    };

    // Every file listed, every listed file present.
    let mut declared: BTreeMap<String, (&'static str, Option<String>, Option<String>)> =
        BTreeMap::new();
    if let Some(m) = &metadata {
        for f in &m.files {
            declared.insert(
                unpack::normalize_name(&f.path),
                ("file", Some(f.format.clone()), f.sha256.clone()),
            );
        }
        for l in &m.licenses {
            declared.insert(
                unpack::normalize_name(&l.path),
                ("license", Some("ofd".into()), None),
            );
        }
    }
    let present: std::collections::HashSet<&str> =
        entries.iter().map(|e| e.name.as_str()).collect();
    if metadata.is_some() {
        for p in declared.keys() {
            if !p.is_empty() && !present.contains(p.as_str()) {
                problems.push(Problem::file(
                    Code::FileMissing,
                    p.clone(),
                    "listed in metadata.xml but not in the submission",
                ));
            }
        }
    }
    let mut to_read = Vec::new();
    for e in &entries {
        if e.name == METADATA_PATH {
            continue;
        }
        if metadata.is_some() && !declared.contains_key(&e.name) {
            let why = if e.name.starts_with("files/") || e.name.starts_with("licenses/") {
                "in the submission but not listed in metadata.xml"
            } else {
                "only metadata.xml, files/ and licenses/ may be in a submission"
            };
            problems.push(Problem::file(Code::FileUnlisted, e.name.clone(), why));
            continue;
        }
        to_read.push(e);
    }

    // Reuse the package begun while receiving only if it holds exactly the entries to package,
    // each matching the validated directory; otherwise start over from the spool file.
    let order: Vec<&unpack::Entry> = meta_entry
        .into_iter()
        .chain(to_read.iter().copied())
        .collect();
    let early = inp.early.take().filter(|early| {
        early.entries.len() == order.len()
            && order.iter().all(|e| {
                early.entries.iter().any(|x| {
                    x.header_offset == e.header_offset
                        && x.name == e.name
                        && x.size == e.size
                        && x.crc32 == e.crc32
                })
            })
    });
    let reused = early.is_some();

    // One pass: digest, identify and package every file.
    std::fs::create_dir_all(inp.settings.tmp_dir())?;
    let (mut pkg, staged, early_entries) = match early {
        Some(e) => (e.pkg, e.staged, e.entries),
        None => {
            let staged_path = inp
                .settings
                .tmp_dir()
                .join(format!("{}.aip.zip", inp.archive_id));
            let pkg = PackageWriter::create(&staged_path, inp.archive_id, &inp.received_at)?;
            (
                pkg,
                tempfile::TempPath::try_from_path(&staged_path)?,
                Vec::new(),
            )
        }
    };
    let mut rows: Vec<FileRow> = Vec::with_capacity(order.len());
    let mut signed_files = 0usize;
    tracing::debug!(reused, entries = order.len(), "digest pass");

    // Everything already digested while receiving needs no SM3 worker at all.
    let pass = |mut dg: Option<&mut digest::Digester>| -> Result<(), PrepareError> {
        for e in order {
            let rel = format!("submission/{}", e.name);
            let seen = early_entries
                .iter()
                .find(|x| x.header_offset == e.header_offset);
            let (digests, size, offset, id) = if let Some(x) = seen {
                (x.digests, x.size, x.pkg_offset, x.ident.clone())
            } else {
                let offset = pkg.begin_payload(&rel, e.size)?;
                let mut sniffer = Sniffer::new();
                let res = opened.read_entry(e, |r| {
                    let dg = dg
                        .as_deref_mut()
                        .ok_or_else(|| io::Error::other("no digester"))?;
                    dg.stream(r, |chunk, last| {
                        sniffer.feed(chunk, last);
                        pkg.write(chunk)
                    })
                });
                let (digests, size) = match res {
                    Ok(v) => v,
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::InvalidData
                                | io::ErrorKind::InvalidInput
                                | io::ErrorKind::UnexpectedEof
                                | io::ErrorKind::Other
                        ) =>
                    {
                        // Damaged entry (bad CRC, lying sizes, a corrupt or cut deflate stream:
                        // flate2 reports the last as InvalidInput).
                        return Err(PrepareError::Unreadable(format!(
                            "{}: the ZIP entry is damaged: {err}",
                            e.name
                        )));
                    }
                    Err(err) => return Err(err.into()),
                };
                pkg.end_payload(&rel, size, digests, offset);
                (digests, size, offset, sniffer.finish())
            };
            let (role, decl_format, decl_sha) = if e.name == METADATA_PATH {
                ("metadata", None, None)
            } else {
                declared
                    .get(&e.name)
                    .cloned()
                    .unwrap_or(("file", None, None))
            };
            let mut id: Identification = id;
            if size == 0 {
                problems.push(Problem::file(
                    Code::EmptyFile,
                    e.name.clone(),
                    "the file is empty",
                ));
            } else if role != "metadata" {
                if matches!(id.format.as_str(), "zip" | "ole") {
                    pkg.flush()?;
                    let view = Window {
                        file: File::open(pkg.path())?,
                        start: offset,
                        len: size,
                        pos: 0,
                    };
                    id = identify::inspect_container(id, BufReader::with_capacity(64 * 1024, view));
                }
                identify::judge(
                    &e.name,
                    decl_format.as_deref(),
                    &id,
                    inp.policy,
                    &mut problems,
                );
            }
            if let Some(want) = decl_sha
                && want != digests.sha256_hex()
            {
                problems.push(Problem::file(
                    Code::DigestMismatch,
                    e.name.clone(),
                    format!(
                        "declared SHA-256 {want}, the received bytes have {}",
                        digests.sha256_hex()
                    ),
                ));
            }
            rows.push(FileRow {
                path: e.name.clone(),
                role: role.to_string(),
                size: size as i64,
                sha256: digests.sha256_hex(),
                sm3: digests.sm3_hex(),
                format: id.format.clone(),
                format_version: id.version.clone(),
                mime: id.mime.clone(),
                note: id.note.clone(),
                puid: identify::pronom(&id.format, id.version.as_deref(), id.note.as_deref()),
                pkg_offset: offset as i64,
                version: 1,
            });
            if id.signed {
                signed_files += 1;
            }
        }
        Ok(())
    };
    if reused {
        pass(None)?;
    } else {
        digest::with_digester(|d| pass(Some(d)))?;
    }

    // Security: every file scanned as stored in the package, when a scanner is configured.
    let av = &inp.settings.antivirus;
    if av.configured() && problems.is_empty() {
        pkg.flush()?;
        for r in rows.iter() {
            let mut view = Window {
                file: File::open(pkg.path())?,
                start: r.pkg_offset as u64,
                len: r.size as u64,
                pos: 0,
            };
            match av.scan(&mut view) {
                Ok(Verdict::Clean) => {}
                Ok(Verdict::Infected(sig)) => problems.push(Problem::file(
                    Code::VirusFound,
                    r.path.clone(),
                    format!("the virus scanner found {sig}"),
                )),
                Err(e) => {
                    return Err(PrepareError::Io(io::Error::other(format!(
                        "virus scan failed: {e}"
                    ))));
                }
            }
        }
    }

    let metadata = match metadata {
        Some(m) if problems.is_empty() => m,
        Some(m) => {
            problems.case_key = m.year(inp.settings.filing.tz()).map(|y| {
                Box::new(crate::problem::CaseKey {
                    social_code: m.social_code.clone(),
                    task_code: m.task_code.clone(),
                    project_id: m.project_id.clone(),
                    year: y as i64,
                })
            });
            return Err(PrepareError::Rejected(problems));
        }
        None => return Err(PrepareError::Rejected(problems)),
    };
    let mut formats: Vec<String> = rows.iter().map(|r| r.format.clone()).collect();
    formats.sort();
    formats.dedup();
    let checks = checks::archiving(&checks::GdFacts {
        files: rows.len(),
        bytes: rows.iter().map(|r| r.size as u64).sum(),
        declared_digests: metadata.files.iter().filter(|f| f.sha256.is_some()).count(),
        licences: metadata.licenses.len(),
        process_steps: metadata.process.len(),
        warnings: problems.warnings.len(),
        formats,
        channel: inp.agent.channel.as_str(),
        virus_scan: av.configured().then(|| av.engine()),
        signed_by: &inp.signer.info.key_id,
        signed_files,
        agent: &inp.agent.label(),
        environment: &environment(),
    });

    let retention = inp.rules.assign(
        &metadata.task_type,
        metadata.catalog_code.as_deref(),
        &metadata.task_code,
        metadata.retention_period.as_deref(),
        &inp.settings.retention,
    );
    if let Some(p) = &retention.proposed
        && !retention.proposal_kept
    {
        problems.warn(Problem::field(
            Code::RetentionRaised,
            "retention_period",
            format!(
                "the proposed retention {p} is shorter than the rules allow; the case is kept {} ({})",
                retention.retention.as_str(),
                retention.basis
            ),
        ));
    }
    let validated_at = now();
    let content_digest = content_digest(&rows);
    let xml = archive_xml(
        &inp,
        &metadata,
        &rows,
        &problems.warnings,
        &checks,
        &content_digest,
        (&validated_at, &retention),
    )?;
    pkg.add_payload_bytes("archive.xml", xml.as_bytes())?;
    let info = BagInfo {
        source_organization: metadata.lead_department.clone(),
        external_identifier: format!(
            "{}/{}/{}",
            metadata.social_code, metadata.task_code, metadata.project_id
        ),
        bagging_date: validated_at.format("%Y-%m-%d").to_string(),
        extra: vec![
            ("Guidang-Fonds-Code".into(), inp.settings.fonds_code.clone()),
            (
                "Guidang-Content-Digest".into(),
                format!("sha256:{content_digest}"),
            ),
        ],
    };
    let package = pkg.finish(info, inp.signer, inp.sm2, &rfc3339(&now()))?;
    Ok(Prepared {
        archive_id: inp.archive_id.to_string(),
        metadata,
        files: rows,
        warnings: problems.warnings,
        content_digest,
        package,
        staged,
        received_at: inp.received_at,
        validated_at,
        streamed: reused,
        checks,
        retention,
    })
}

/// One payload file in archive.xml: path (under `data/`), role, size, format identification and
/// both digests. Every version's archive.xml describes its files so.
pub fn file_element(d: &mut Doc<Vec<u8>>, path: &str, f: &FileRow) -> io::Result<()> {
    let size = f.size.to_string();
    d.open(
        "file",
        &[("path", path), ("role", &f.role), ("size", &size)],
    )?;
    let mut format = vec![("id", f.format.as_str()), ("mime", f.mime.as_str())];
    if let Some(v) = &f.format_version {
        format.push(("version", v));
    }
    if let Some(v) = &f.note {
        format.push(("note", v));
    }
    if let Some(v) = f.puid {
        format.push(("puid", v));
    }
    d.empty("format", &format)?
        .text_with("digest", &[("algorithm", "SHA-256")], &f.sha256)?
        .text_with("digest", &[("algorithm", "SM3")], &f.sm3)?
        .close("file")?;
    Ok(())
}

/// The archive's own description of the package (`data/archive.xml`, namespace
/// `urn:guidang:archive:1`).
fn archive_xml(
    inp: &PrepareInput<'_>,
    m: &CaseMetadata,
    files: &[FileRow],
    warnings: &[Problem],
    checks: &[checks::CheckItem],
    content_digest: &str,
    (validated_at, retention): (&DateTime<FixedOffset>, &crate::retention::Assigned),
) -> io::Result<String> {
    let mut d = Doc::in_memory()?;
    d.open(
        "archive",
        &[("xmlns", "urn:guidang:archive:1"), ("version", "1")],
    )?;
    d.text("archive_id", inp.archive_id)?
        .text("package_version", "1")?
        .text("fonds_code", &inp.settings.fonds_code)?;
    d.open("case_key", &[])?
        .text("social_code", &m.social_code)?
        .text("task_code", &m.task_code)?
        .text("project_id", &m.project_id)?
        .close("case_key")?;
    let year = m
        .year(inp.settings.filing.tz())
        .map(|y| y.to_string())
        .unwrap_or_default();
    d.text("project_name", &m.project_name)?
        .text("year", &year)?
        .text("channel", inp.agent.channel.as_str())?
        .text("environment", &environment())?
        .text("content_digest", &format!("sha256:{content_digest}"))?;
    d.open("retention", &[])?
        .text("proposed", m.retention_period.as_deref().unwrap_or(""))?
        .text("assigned", retention.retention.as_str())?
        .text("rule_version", &retention.rule_version.to_string())?
        .text("basis", &retention.basis)?
        .close("retention")?;
    d.text("security_classification", &m.security_classification)?;
    d.open("files", &[])?;
    for f in files {
        file_element(&mut d, &format!("submission/{}", f.path), f)?;
    }
    d.close("files")?.open("warnings", &[])?;
    for w in warnings {
        d.text_with(
            "warning",
            &[
                ("code", w.code.as_str()),
                ("path", w.path.as_deref().unwrap_or("")),
            ],
            &w.message,
        )?;
    }
    d.close("warnings")?
        .open("checks", &[("stage", "GD"), ("standard", "DA/T 70-2018")])?;
    for c in checks {
        d.text_with(
            "check",
            &[
                ("code", c.code.as_str()),
                ("property", c.property.as_str()),
                ("result", c.result.as_str()),
                ("item", c.item.as_str()),
            ],
            &c.detail,
        )?;
    }
    let (received, validated) = (rfc3339(&inp.received_at), rfc3339(validated_at));
    let by = format!("guidang {}", env!("CARGO_PKG_VERSION"));
    d.close("checks")?
        .open("events", &[])?
        .empty(
            "event",
            &[
                ("type", "received"),
                ("time", &received),
                ("agent", &inp.agent.label()),
            ],
        )?
        .empty(
            "event",
            &[("type", "validated"), ("time", &validated), ("agent", &by)],
        )?
        .empty(
            "event",
            &[("type", "packaged"), ("time", &validated), ("agent", &by)],
        )?
        .close("events")?
        .close("archive")?;
    Ok(d.into_string())
}
