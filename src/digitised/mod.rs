//! Digitised copies of a case's paper originals (article 43, DA/T 31-2017). A scan batch — a ZIP
//! or folder with `digitisation.xml` and the images — is checked (every existing gate, then the
//! scans' own resolution, colour mode, format and page coverage, read from the images), and
//! becomes the next version of the case's package under `data/digitised/{version}/`.
//!
//! One pass over each image: its bytes stream into the version's bag while both digests and the
//! format sniffer see them; the image reader then walks the structure of the copy just written
//! (headers and page tables only), so the cost is the bytes read once plus a few small reads.

pub mod declaration;
pub mod image;
pub mod qc;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::sync::Arc;

use crate::auth::Principal;
use crate::config::Settings;
use crate::db::cases::FileRow;
use crate::db::versions::CaseUpdate;
use crate::evidence::antivirus::Verdict;
use crate::pipeline::digest;
use crate::pipeline::identify::{self, Action, Sniffer};
use crate::pipeline::package::Finished;
use crate::pipeline::unpack::{self, Source};
use crate::pipeline::{Window, read_small};
use crate::problem::{Code, Problem, Problems};
use crate::signing::Signer;
use crate::versions::{self, Base, Kind, Made, VersionError, Versions};

#[derive(Debug, thiserror::Error)]
pub enum DigitisedError {
    #[error("the scans were refused")]
    Rejected(Problems),
    #[error("{0}")]
    Unreadable(String),
    #[error(transparent)]
    Receive(#[from] crate::pipeline::receive::ReceiveError),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("I/O while checking the scans: {0}")]
    Io(#[from] io::Error),
}

#[derive(Clone)]
pub struct Digitised {
    versions: Versions,
    policy: Arc<BTreeMap<String, Action>>,
}

/// The answer to an accepted batch: the new version and what QC measured.
#[derive(Debug, serde::Serialize)]
pub struct Added {
    #[serde(flatten)]
    pub version: Made,
    pub originals: Vec<declaration::Original>,
    pub images: Vec<qc::Measured>,
    pub pages: i64,
}

impl Digitised {
    pub fn new(versions: Versions) -> Digitised {
        let policy = Arc::new(identify::policy(&versions.settings().format_policy));
        Digitised { versions, policy }
    }

    /// [`Digitised::add`] for a ZIP arriving as a byte stream (online), spooled to disk first.
    pub async fn add_body<S, E>(
        &self,
        archive_id: &str,
        body: S,
        agent: &Principal,
    ) -> Result<Added, DigitisedError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // A case that cannot take scans is refused before its body is read.
        self.versions.base(archive_id).await?;
        let settings = self.versions.settings();
        let limits = &settings.limits;
        let dir = settings.tmp_dir();
        std::fs::create_dir_all(&dir)?;
        let (spooled, _) = crate::pipeline::receive::spool(
            body,
            limits.max_body_bytes,
            std::time::Duration::from_secs(limits.receive_idle_secs),
            &dir,
            None,
        )
        .await?;
        let r = self
            .add(archive_id, Source::Zip(spooled.path.to_path_buf()), agent)
            .await;
        drop(spooled);
        r
    }

    /// Checks the scans in `source` and adds them to case `archive_id` as its next version.
    /// Every outcome is entered in the audit trail.
    pub async fn add(
        &self,
        archive_id: &str,
        source: Source,
        agent: &Principal,
    ) -> Result<Added, DigitisedError> {
        let r = self.add_inner(archive_id, source, agent).await;
        if let Err(e) = &r {
            let outcome = match e {
                DigitisedError::Rejected(p) => format!("422 {} problem(s)", p.errors.len()),
                DigitisedError::Version(VersionError::NotFound(_)) => "404".into(),
                DigitisedError::Version(VersionError::Disposed(_)) => "410".into(),
                DigitisedError::Version(VersionError::Conflict(_)) => "409".into(),
                DigitisedError::Unreadable(_) => "400".into(),
                _ => "500".into(),
            };
            self.versions
                .audit(agent, "add_digitised", archive_id, &outcome)
                .await;
        }
        r
    }

    async fn add_inner(
        &self,
        archive_id: &str,
        source: Source,
        agent: &Principal,
    ) -> Result<Added, DigitisedError> {
        let base = self.versions.base(archive_id).await?;
        let known = self.versions.digitised_digests(archive_id).await?;
        let path = self.versions.staging_path(&base)?;
        let staged = tempfile::TempPath::try_from_path(&path)?;
        let settings = Arc::new(self.versions.settings().clone());
        let (policy, signer, sm2, agent2, base2) = (
            self.policy.clone(),
            self.versions.signer(),
            self.versions.sm2(),
            agent.clone(),
            base.clone(),
        );
        let prepared = tokio::task::spawn_blocking(move || {
            prepare(&Input {
                source: &source,
                settings: &settings,
                policy: &policy,
                signer: &signer,
                sm2: sm2.as_deref(),
                base: &base2,
                path: &path,
                agent: &agent2,
                known: &known,
            })
        })
        .await
        .map_err(|e| DigitisedError::Io(io::Error::other(e)))??;
        let pages: i64 = prepared.measured.iter().map(|m| m.pages as i64).sum();
        let detail = serde_json::json!({
            "scanner": prepared.declaration.scanner,
            "operator": prepared.declaration.operator,
            "date": prepared.declaration.date,
            "originals": prepared.declaration.originals,
            "images": prepared.measured,
        });
        let made = self
            .versions
            .commit(
                &base,
                Kind::Digitised,
                prepared.finished,
                staged,
                prepared.files,
                CaseUpdate {
                    digitised_pages: pages,
                    sealed_filing: base.filing.as_ref().map(|f| f.batch.as_str()),
                },
                detail,
                agent,
            )
            .await?;
        Ok(Added {
            version: made,
            originals: prepared.declaration.originals,
            images: prepared.measured,
            pages,
        })
    }
}

struct Input<'a> {
    source: &'a Source,
    settings: &'a Settings,
    policy: &'a BTreeMap<String, Action>,
    signer: &'a Signer,
    sm2: Option<&'a crate::signing_sm2::Sm2Signer>,
    base: &'a Base,
    path: &'a std::path::Path,
    agent: &'a Principal,
    /// Scans the case holds already (SHA-256 → where): the same bytes again are a duplicate.
    known: &'a std::collections::HashMap<String, String>,
}

struct Prepared {
    finished: Finished,
    files: Vec<FileRow>,
    declaration: declaration::Declaration,
    measured: Vec<qc::Measured>,
}

fn prepare(inp: &Input<'_>) -> Result<Prepared, DigitisedError> {
    let limits = &inp.settings.limits;
    let mut problems = Problems::default();
    let (mut opened, entries) =
        unpack::open(inp.source, limits, &mut problems).map_err(|e| match e {
            unpack::UnpackError::NotAZip(m) => DigitisedError::Unreadable(m),
            unpack::UnpackError::Io(e) => DigitisedError::Io(e),
        })?;
    if problems.has(Code::ZipLimits) {
        return Err(DigitisedError::Rejected(problems));
    }
    let decl_entry = entries.iter().find(|e| e.name == declaration::PATH);
    let (decl, decl_bytes) = match decl_entry {
        None => {
            problems.push(Problem::file(
                Code::MetadataMissing,
                declaration::PATH,
                "the scans come without digitisation.xml at their top level",
            ));
            (None, Vec::new())
        }
        Some(e) if e.size > limits.max_metadata_bytes => {
            problems.push(Problem::file(
                Code::MetadataInvalid,
                declaration::PATH,
                format!(
                    "{} bytes, more than the limit of {}",
                    e.size, limits.max_metadata_bytes
                ),
            ));
            (None, Vec::new())
        }
        Some(e) => {
            let b = read_small(&mut opened, e, limits.max_metadata_bytes).map_err(|err| {
                DigitisedError::Unreadable(format!("digitisation.xml cannot be read: {err}"))
            })?;
            (declaration::parse(&b, &mut problems), b)
        }
    };
    let Some(decl) = decl else {
        return Err(DigitisedError::Rejected(problems));
    };
    let present: BTreeMap<&str, &unpack::Entry> =
        entries.iter().map(|e| (e.name.as_str(), e)).collect();
    for d in &decl.images {
        if !present.contains_key(d.path.as_str()) {
            problems.push(Problem::file(
                Code::FileMissing,
                d.path.clone(),
                "listed in digitisation.xml but not among the scans",
            ));
        }
    }
    for e in &entries {
        if e.name != declaration::PATH && !decl.images.iter().any(|d| d.path == e.name) {
            problems.push(Problem::file(
                Code::FileUnlisted,
                e.name.clone(),
                "among the scans but not listed in digitisation.xml",
            ));
        }
    }

    let now = chrono::Utc::now().fixed_offset();
    let mut pkg = versions::begin(inp.path, inp.base, &now)?;
    let prefix = format!("digitised/{}/", inp.base.next);
    let mut files = Vec::new();
    let mut scanned = Vec::new();
    digest::with_digester(|dg| -> Result<(), DigitisedError> {
        for d in &decl.images {
            let Some(e) = present.get(d.path.as_str()) else {
                continue;
            };
            let rel = format!("{prefix}{}", e.name);
            let offset = pkg.begin_payload(&rel, e.size)?;
            let mut sniffer = Sniffer::new();
            let (digests, size) = opened
                .read_entry(e, |r| {
                    dg.stream(r, |chunk, last| {
                        sniffer.feed(chunk, last);
                        pkg.write(chunk)
                    })
                })
                .map_err(|err| {
                    DigitisedError::Unreadable(format!("{}: the entry is damaged: {err}", e.name))
                })?;
            pkg.end_payload(&rel, size, digests, offset);
            let mut id = sniffer.finish();
            let mut facts = None;
            if size == 0 {
                problems.push(Problem::file(
                    Code::EmptyFile,
                    e.name.clone(),
                    "the file is empty",
                ));
            } else {
                pkg.flush()?;
                if matches!(id.format.as_str(), "zip" | "ole") {
                    let view = Window::new(File::open(pkg.path())?, offset, size);
                    id = identify::inspect_container(id, BufReader::with_capacity(64 * 1024, view));
                }
                let before = problems.errors.len();
                identify::judge(
                    &e.name,
                    Some(d.format.as_str()),
                    &id,
                    inp.policy,
                    &mut problems,
                );
                if problems.errors.len() == before {
                    let mut view = BufReader::with_capacity(
                        16 * 1024,
                        Window::new(File::open(pkg.path())?, offset, size),
                    );
                    match image::read(&mut view) {
                        Ok(f) => facts = Some(f),
                        Err(why) => problems.push(Problem::file(
                            Code::UnknownFormat,
                            e.name.clone(),
                            format!("not a readable {} scan: {why}", d.format.as_str()),
                        )),
                    }
                }
            }
            if let Some(want) = &d.sha256
                && *want != digests.sha256_hex()
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
            files.push(FileRow {
                path: rel.clone(),
                role: "digitised".into(),
                size: size as i64,
                sha256: digests.sha256_hex(),
                sm3: digests.sm3_hex(),
                format: id.format.clone(),
                format_version: id.version.clone(),
                mime: id.mime.clone(),
                note: id.note.clone(),
                puid: identify::pronom(&id.format, id.version.as_deref(), id.note.as_deref()),
                pkg_offset: offset as i64,
                version: inp.base.next,
            });
            scanned.push((d, digests.sha256_hex(), facts));
        }
        Ok(())
    })?;
    let scans: Vec<qc::Scanned<'_>> = scanned
        .into_iter()
        .map(|(declared, sha256, facts)| qc::Scanned {
            declared,
            sha256,
            facts,
        })
        .collect();
    for s in &scans {
        if let Some(at) = inp.known.get(&s.sha256) {
            problems.push(Problem::file(
                Code::PageDuplicate,
                s.declared.path.clone(),
                format!("the same bytes are in the case already ({at})"),
            ));
        }
    }
    let measured = qc::check(&decl, &scans, &inp.settings.digitisation, &mut problems);

    let av = &inp.settings.antivirus;
    if av.configured() && problems.is_empty() {
        pkg.flush()?;
        for f in &files {
            let mut view = Window::new(File::open(pkg.path())?, f.pkg_offset as u64, f.size as u64);
            match av.scan(&mut view) {
                Ok(Verdict::Clean) => {}
                Ok(Verdict::Infected(sig)) => problems.push(Problem::file(
                    Code::VirusFound,
                    f.path.trim_start_matches(&prefix).to_string(),
                    format!("the virus scanner found {sig}"),
                )),
                Err(e) => return Err(io::Error::other(format!("virus scan failed: {e}")).into()),
            }
        }
    }
    if !problems.is_empty() {
        return Err(DigitisedError::Rejected(problems));
    }

    // The declaration travels with the scans, byte for byte.
    let decl_rel = format!("{prefix}{}", declaration::PATH);
    let offset = pkg.begin_payload(&decl_rel, decl_bytes.len() as u64)?;
    pkg.write(&decl_bytes)?;
    let dd = digest::Digests::of(&decl_bytes);
    pkg.end_payload(&decl_rel, decl_bytes.len() as u64, dd, offset);
    files.push(FileRow {
        path: decl_rel,
        role: "digitisation_metadata".into(),
        size: decl_bytes.len() as i64,
        sha256: dd.sha256_hex(),
        sm3: dd.sm3_hex(),
        format: "xml".into(),
        format_version: None,
        mime: "application/xml".into(),
        note: None,
        puid: identify::pronom("xml", None, None),
        pkg_offset: offset as i64,
        version: inp.base.next,
    });
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let xml = versions::archive_xml(
        inp.base,
        Kind::Digitised,
        &inp.settings.fonds_code,
        &files,
        inp.agent,
        &at,
        |d| {
            d.open(
                "digitisation",
                &[
                    ("standard", "DA/T 31-2017"),
                    ("min_dpi", &inp.settings.digitisation.min_dpi.to_string()),
                ],
            )?
            .text("scanner", &decl.scanner)?
            .text("operator", &decl.operator)?
            .text("date", &decl.date)?;
            for o in &decl.originals {
                let pages = o.pages.to_string();
                d.text_with(
                    "original",
                    &[("id", o.id.as_str()), ("pages", pages.as_str())],
                    &o.title,
                )?;
            }
            for m in &measured {
                let (first, pages, dpi, w, h) = (
                    m.first_page.to_string(),
                    m.pages.to_string(),
                    m.dpi.map(|v| v.to_string()).unwrap_or_default(),
                    m.width_px.to_string(),
                    m.height_px.to_string(),
                );
                d.empty(
                    "image",
                    &[
                        ("path", format!("{prefix}{}", m.path).as_str()),
                        ("original", m.original.as_str()),
                        ("first_page", first.as_str()),
                        ("pages", pages.as_str()),
                        ("format", m.format.as_str()),
                        ("colour_mode", m.colour_mode.as_str()),
                        ("dpi", dpi.as_str()),
                        ("width_px", w.as_str()),
                        ("height_px", h.as_str()),
                    ],
                )?;
            }
            d.close("digitisation")?;
            Ok(())
        },
    )?;
    let finished = versions::finish(
        pkg,
        inp.base,
        &inp.settings.fonds_code,
        &xml,
        (inp.signer, inp.sm2),
        &now,
    )?;
    Ok(Prepared {
        finished,
        files,
        declaration: decl,
        measured,
    })
}
