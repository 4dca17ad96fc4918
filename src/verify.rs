//! Offline verification of an archival package: no server, no database, only the package and
//! (ideally) the public keys an auditor pinned. Used by `guidang verify`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::evidence::{merkle, note};
use crate::pipeline::digest::{self, Digests};
use crate::pipeline::package::decode_manifest_path;
use crate::signing::{PublicKeyInfo, SignatureFile, key_id, verify_signature};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    NotConfigured,
    /// The check needs bytes this download does not carry (an evidence download's payload).
    NotPresent,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub package: String,
    pub archive_id: Option<String>,
    pub valid: bool,
    pub payload_files: usize,
    pub payload_bytes: u64,
    /// An evidence download: seal, manifests and archive.xml without the submission's bytes.
    pub evidence: bool,
    pub checks: Vec<Check>,
    /// The package's SHA-256 manifest (path → digest), for comparison with the database.
    #[serde(skip)]
    pub manifest_sha256: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagmanifest_sha256: Option<String>,
    /// Which version of the case's package this is (1 for a package without
    /// `Guidang-Package-Version`).
    pub version: i64,
    /// The version this one extends and the tag-manifest SHA-256 it signs for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<(i64, String)>,
    /// A transfer volume (`data/其他/transfer.xml`): its case packages are checked too.
    pub volume: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("trusted keys file {0}: {1}")]
    Keys(PathBuf, String),
}

/// Reads trusted keys: the JSON of `guidang keys export` / `GET /api/v1/keys`.
pub fn load_trusted_keys(path: &Path) -> Result<Vec<PublicKeyInfo>, VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|e| VerifyError::Io(path.into(), e))?;
    #[derive(serde::Deserialize)]
    struct Keys {
        keys: Vec<PublicKeyInfo>,
    }
    let k: Keys =
        serde_json::from_str(&text).map_err(|e| VerifyError::Keys(path.into(), e.to_string()))?;
    Ok(k.keys)
}

/// A bag on disk: a ZIP with one top folder, or an unpacked folder.
/// Anything a package can be read from: a file, or ranged reads of a stored object.
pub trait ReadSeek: Read + std::io::Seek + Send {}
impl<T: Read + std::io::Seek + Send> ReadSeek for T {}

/// Refuses a package that is not one unambiguous ZIP: two central-directory records with one name
/// (the zip reader keeps one of them, an unzip tool may extract the other), a local header that
/// names another file than its central record, entries that overlap or share a local header, and
/// bytes that belong to no entry. The reader is left where it started.
fn unambiguous(r: &mut dyn ReadSeek) -> Result<(), String> {
    use crate::pipeline::unpack::{UnpackError, central_records, eocd, layout};
    let why = |e: UnpackError| match e {
        UnpackError::NotAZip(m) => m,
        UnpackError::Io(e) => format!("cannot read the ZIP: {e}"),
    };
    let end = eocd(r).map_err(why)?;
    let records = central_records(r, &end).map_err(why)?;
    if (records.len() as u64) < end.entries {
        return Err("the central directory is damaged or cut short".into());
    }
    let mut names = std::collections::HashSet::new();
    for rec in &records {
        if !names.insert(rec.raw.as_slice()) {
            return Err(format!(
                "two entries are named {:?}: an extracting tool may take either",
                String::from_utf8_lossy(&rec.raw)
            ));
        }
    }
    if let Some((entry, why)) = layout(r, &end, &records).map_err(why)?.into_iter().next() {
        return Err(match entry {
            Some(n) => format!("{n:?}: {why}"),
            None => why,
        });
    }
    r.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read the ZIP: {e}"))?;
    Ok(())
}

enum Bag {
    Zip {
        zip: Box<zip::ZipArchive<Box<dyn ReadSeek>>>,
        top: String,
        index: BTreeMap<String, usize>,
    },
    Dir(PathBuf),
}

impl Bag {
    fn open(path: &Path) -> Result<Result<Bag, String>, VerifyError> {
        let md = std::fs::metadata(path).map_err(|e| VerifyError::Io(path.into(), e))?;
        if md.is_dir() {
            if path.join("bagit.txt").exists() {
                return Ok(Ok(Bag::Dir(path.into())));
            }
            let subs: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| VerifyError::Io(path.into(), e))?
                .flatten()
                .filter(|e| e.path().is_dir())
                .collect();
            if subs.len() == 1 && subs[0].path().join("bagit.txt").exists() {
                return Ok(Ok(Bag::Dir(subs[0].path())));
            }
            return Ok(Err("the folder holds no bagit.txt".into()));
        }
        let f = File::open(path).map_err(|e| VerifyError::Io(path.into(), e))?;
        Ok(Bag::from_reader(Box::new(BufReader::new(f))))
    }

    fn from_reader(mut r: Box<dyn ReadSeek>) -> Result<Bag, String> {
        unambiguous(&mut *r)?;
        let mut zip = match zip::ZipArchive::new(r) {
            Ok(z) => z,
            Err(e) => return Err(format!("not a readable ZIP: {e}")),
        };
        let mut top: Option<String> = None;
        let mut index = BTreeMap::new();
        for i in 0..zip.len() {
            let Ok(e) = zip.by_index_raw(i) else {
                return Err(format!("entry {i} is unreadable"));
            };
            let Ok(name) = e.name().map(|n| n.to_string()) else {
                return Err(format!("entry {i} has an unreadable name"));
            };
            if e.is_dir() {
                continue;
            }
            let Some((first, rest)) = name.split_once('/') else {
                return Err(format!("{name:?} is outside the single top folder"));
            };
            match &top {
                None => top = Some(first.to_string()),
                Some(t) if t != first => {
                    return Err("the ZIP has more than one top folder".into());
                }
                _ => {}
            }
            if rest.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(format!("{name:?} is not a safe path"));
            }
            index.insert(rest.to_string(), i);
        }
        let Some(top) = top else {
            return Err("the ZIP is empty".into());
        };
        Ok(Bag::Zip {
            zip: Box::new(zip),
            top,
            index,
        })
    }

    fn top_name(&self) -> Option<String> {
        match self {
            Bag::Zip { top, .. } => Some(top.clone()),
            Bag::Dir(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
        }
    }

    /// Every file, relative to the bag root.
    fn files(&self) -> BTreeSet<String> {
        match self {
            Bag::Zip { index, .. } => index.keys().cloned().collect(),
            Bag::Dir(root) => {
                let mut out = BTreeSet::new();
                let mut stack = vec![root.clone()];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                        let p = e.path();
                        if p.is_dir() {
                            stack.push(p);
                        } else if let Ok(rel) = p.strip_prefix(root) {
                            out.insert(rel.to_string_lossy().replace('\\', "/"));
                        }
                    }
                }
                out
            }
        }
    }

    fn read<T>(
        &mut self,
        rel: &str,
        f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
    ) -> io::Result<T> {
        match self {
            Bag::Zip { zip, index, .. } => {
                let mut e = zip.by_index(entry(index, rel)?).map_err(io::Error::other)?;
                f(&mut e)
            }
            Bag::Dir(root) => {
                let mut file = File::open(root.join(rel))?;
                f(&mut file)
            }
        }
    }

    /// A seekable view of a stored entry (containers are inspected by their directory).
    fn read_seek<T>(
        &mut self,
        rel: &str,
        f: impl FnOnce(&mut dyn ReadSeekDyn) -> io::Result<T>,
    ) -> io::Result<T> {
        match self {
            Bag::Zip { zip, index, .. } => {
                let mut e = zip
                    .by_index_seek(entry(index, rel)?)
                    .map_err(io::Error::other)?;
                f(&mut e)
            }
            Bag::Dir(root) => {
                let mut file = File::open(root.join(rel))?;
                f(&mut file)
            }
        }
    }

    fn read_small(&mut self, rel: &str) -> io::Result<Vec<u8>> {
        self.read(rel, |r| {
            let mut v = Vec::new();
            r.take(64 << 20).read_to_end(&mut v)?;
            Ok(v)
        })
    }
}

/// The ZIP index of the bag file `rel`.
fn entry(index: &BTreeMap<String, usize>, rel: &str) -> io::Result<usize> {
    index
        .get(rel)
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, rel.to_string()))
}

fn parse_manifest(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((sum, path)) = line.split_once([' ', '\t']) else {
            return Err(format!("line {} is not `checksum path`", n + 1));
        };
        let path = decode_manifest_path(path.trim_start());
        m.insert(path, sum.to_ascii_lowercase());
    }
    Ok(m)
}

fn fail(checks: &mut Vec<Check>, check: &'static str, detail: impl Into<String>) {
    checks.push(Check {
        check,
        status: Status::Fail,
        detail: detail.into(),
    });
}
fn pass(checks: &mut Vec<Check>, check: &'static str, detail: impl Into<String>) {
    checks.push(Check {
        check,
        status: Status::Pass,
        detail: detail.into(),
    });
}

fn list_some(items: &[String]) -> String {
    let mut s: Vec<String> = items.iter().take(10).cloned().collect();
    if items.len() > 10 {
        s.push(format!("… and {} more", items.len() - 10));
    }
    s.join(", ")
}

/// Verifies one package. `Err` means it could not be checked at all (exit 2).
pub fn verify_package(
    path: &Path,
    trusted: Option<&[PublicKeyInfo]>,
    proof: Option<&Path>,
) -> Result<Report, VerifyError> {
    // Inclusion in the transparency log: an explicit proof file, or `PACKAGE.tlog-proof` beside it.
    let beside = PathBuf::from(format!("{}.tlog-proof", path.display()));
    let proof_path = proof
        .map(Path::to_path_buf)
        .or_else(|| beside.exists().then_some(beside));
    let proof_text = match proof_path {
        Some(pp) => Some(std::fs::read_to_string(&pp).map_err(|e| VerifyError::Io(pp.clone(), e))?),
        None => None,
    };
    let bag = Bag::open(path)?;
    let mut report = verify_bag(
        &path.display().to_string(),
        bag,
        trusted,
        proof_text.as_deref(),
        true,
        None,
    );
    if report.volume && path.is_file() {
        let nested = volume_packages(path, trusted, None);
        case_packages(&mut report, &nested);
    }
    Ok(report)
}

/// What the format gate accepts (format id → action): given, payload files are identified
/// again from their bytes, in the pass that hashes them, and judged as at ingest.
pub type Screen<'a> = Option<&'a BTreeMap<String, crate::pipeline::identify::Action>>;

/// A transfer volume verified once: the volume as a bag, and every case package in it (with
/// `screen`, their files' formats too), the packages' own reports returned for the receiver.
pub fn verify_volume(
    path: &Path,
    trusted: Option<&[PublicKeyInfo]>,
    screen: Screen<'_>,
) -> Result<(Report, Result<Vec<Nested>, String>), VerifyError> {
    let bag = Bag::open(path)?;
    // The volume's own manifests and the packages inside it are two independent reads of the
    // same bytes, each bound by SM3 on one core: run side by side, the second costs little
    // wall time on a machine with a core to spare.
    let (mut report, nested) = std::thread::scope(|s| {
        let inner = s.spawn(|| volume_packages(path, trusted, screen));
        let outer = verify_bag(&path.display().to_string(), bag, trusted, None, true, None);
        let nested = inner
            .join()
            .unwrap_or_else(|_| Err("verifying the packages inside failed".into()));
        (outer, nested)
    });
    let nested = if report.volume {
        nested
    } else {
        Err("not a transfer volume".into())
    };
    if report.volume {
        case_packages(&mut report, &nested);
    }
    Ok((report, nested))
}

/// In a transfer volume: every case package version it carries (stored entries under
/// `data/电子档案/`), each verified alone where it lies in the volume — with its own log proof
/// beside it — and the versions of each case as a chain.
/// A case package version inside a transfer volume: where it lies and how it verified.
pub struct Nested {
    /// Path inside the volume, `data/电子档案/{年度}/{类别}/{档号}/v{N}.zip`.
    pub rel: String,
    /// Where its bytes lie in the volume file (it is stored, not compressed).
    pub start: u64,
    pub size: u64,
    pub report: Report,
}

/// Every case package version in the volume at `path`, each verified alone where it lies with
/// the log proof beside it, and the versions of each case checked as a chain.
pub fn volume_packages(
    path: &Path,
    trusted: Option<&[PublicKeyInfo]>,
    screen: Screen<'_>,
) -> Result<Vec<Nested>, String> {
    let mut found: Vec<(String, u64, u64, Option<String>)> = Vec::new();
    let f = File::open(path).map_err(|e| e.to_string())?;
    let mut z = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| e.to_string())?;
    let names: Vec<String> = z
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .collect();
    for name in &names {
        let Some((_, rel)) = name.split_once('/') else {
            continue;
        };
        if !(rel.starts_with("data/电子档案/") && rel.ends_with(".zip")) {
            continue;
        }
        let e = z.by_name(name).map_err(|e| e.to_string())?;
        if e.compression() != zip::CompressionMethod::Stored {
            return Err(format!(
                "{rel} is compressed; packages are stored as they are"
            ));
        }
        let (start, size) = (e.data_start().unwrap_or(0), e.size());
        drop(e);
        let proof_name = format!("{}.tlog-proof", name.trim_end_matches(".zip"));
        let proof = z.by_name(&proof_name).ok().and_then(|mut p| {
            let mut s = String::new();
            p.read_to_string(&mut s).ok().map(|_| s)
        });
        found.push((rel.to_string(), start, size, proof));
    }
    let mut out = Vec::new();
    for (rel, start, size, proof) in found {
        let r = File::open(path)
            .map(|f| crate::pipeline::Window::new(f, start, size))
            .map(|w| BufReader::with_capacity(1 << 16, w))
            .map_err(|e| format!("{rel}: {e}"))?;
        let mut report = verify_bag(
            &rel,
            Bag::from_reader(Box::new(r)),
            trusted,
            proof.as_deref(),
            true,
            screen,
        );
        // A volume may carry tens of thousands of packages: keep of each what is reported
        // (failures, identity, version), not its manifest or the details of checks it passed.
        report.manifest_sha256 = BTreeMap::new();
        for c in report
            .checks
            .iter_mut()
            .filter(|c| c.status == Status::Pass)
        {
            c.detail = String::new();
        }
        out.push(Nested {
            rel,
            start,
            size,
            report,
        });
    }
    let mut reports: Vec<Report> = out.iter().map(|n| n.report.clone()).collect();
    chain(&mut reports);
    for (n, r) in out.iter_mut().zip(reports) {
        n.report = r;
    }
    Ok(out)
}

fn case_packages(report: &mut Report, nested: &Result<Vec<Nested>, String>) {
    let nested = match nested {
        Ok(n) => n,
        Err(e) => {
            fail(&mut report.checks, "case_packages", e.clone());
            report.valid = false;
            return;
        }
    };
    let found = nested;
    let inner: Vec<&Report> = nested.iter().map(|n| &n.report).collect();

    let bad: Vec<String> = inner
        .iter()
        .filter(|r| !r.valid)
        .map(|r| {
            let why: Vec<String> = r
                .checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| format!("{}: {}", c.check, c.detail))
                .collect();
            format!("{} ({})", r.package, why.join("; "))
        })
        .collect();
    let cases: BTreeSet<&str> = inner
        .iter()
        .filter_map(|r| r.archive_id.as_deref())
        .collect();
    if found.is_empty() {
        fail(
            &mut report.checks,
            "case_packages",
            "the volume carries no case package",
        );
    } else if bad.is_empty() {
        pass(
            &mut report.checks,
            "case_packages",
            format!(
                "{} package version(s) of {} case(s) verify alone, in the log and as chains",
                inner.len(),
                cases.len()
            ),
        );
    } else {
        fail(&mut report.checks, "case_packages", list_some(&bad));
    }
    report.valid = report.checks.iter().all(|c| c.status != Status::Fail);
}

/// Verifies a package read through `reader` (a stored object, by ranged reads).
pub fn verify_reader(
    name: &str,
    reader: Box<dyn ReadSeek>,
    trusted: Option<&[PublicKeyInfo]>,
    proof: Option<&str>,
) -> Report {
    verify_bag(name, Bag::from_reader(reader), trusted, proof, true, None)
}

/// [`verify_reader`], with `payload: false` checking the seal only (structure, tag manifest,
/// payload completeness against the manifests, signature) without re-hashing payload bytes.
pub fn verify_reader_depth(
    name: &str,
    reader: Box<dyn ReadSeek>,
    trusted: Option<&[PublicKeyInfo]>,
    proof: Option<&str>,
    payload: bool,
) -> Report {
    verify_bag(
        name,
        Bag::from_reader(reader),
        trusted,
        proof,
        payload,
        None,
    )
}

fn verify_bag(
    name: &str,
    bag: Result<Bag, String>,
    trusted: Option<&[PublicKeyInfo]>,
    proof: Option<&str>,
    payload_digests: bool,
    screen: Screen<'_>,
) -> Report {
    let mut checks = Vec::new();
    let mut report = Report {
        package: name.to_string(),
        archive_id: None,
        valid: false,
        payload_files: 0,
        payload_bytes: 0,
        evidence: false,
        checks: vec![],
        manifest_sha256: BTreeMap::new(),
        tagmanifest_sha256: None,
        version: 1,
        previous: None,
        volume: false,
    };
    let mut bag = match bag {
        Ok(b) => b,
        Err(why) => {
            fail(&mut checks, "structure", why);
            report.checks = checks;
            return report;
        }
    };
    report.archive_id = bag.top_name();
    let files = bag.files();
    report.evidence = files.contains(EVIDENCE_NOTE);
    report.volume = files.contains("data/其他/transfer.xml");
    let inner_proof = match (proof, files.contains(EVIDENCE_PROOF)) {
        (None, true) => bag
            .read_small(EVIDENCE_PROOF)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    };
    let proof = proof.or(inner_proof.as_deref());
    let missing: Vec<String> = REQUIRED_TAG_FILES
        .iter()
        .filter(|r| !files.contains(**r))
        .map(|s| s.to_string())
        .collect();
    if !missing.is_empty() {
        fail(
            &mut checks,
            "structure",
            format!("missing {}", missing.join(", ")),
        );
        report.checks = checks;
        return report;
    }
    pass(
        &mut checks,
        "structure",
        "bagit.txt, bag-info.txt, both payload manifests, the tag manifest and signature.json are present",
    );

    let text = |bag: &mut Bag, rel: &str| -> String {
        bag.read_small(rel)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let bagit = text(&mut bag, "bagit.txt");
    if bagit
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("BagIt-Version: "))
    {
        pass(
            &mut checks,
            "bagit_declaration",
            bagit.lines().next().unwrap_or_default().to_string(),
        );
    } else {
        fail(
            &mut checks,
            "bagit_declaration",
            "bagit.txt does not start with BagIt-Version",
        );
    }

    // Tag manifest: every tag file it lists matches; it must cover both payload manifests.
    let tagmanifest_bytes = bag.read_small("tagmanifest-sha256.txt").unwrap_or_default();
    let tagm = parse_manifest(&String::from_utf8_lossy(&tagmanifest_bytes));
    match tagm {
        Err(e) => fail(&mut checks, "tag_manifest", e),
        Ok(tagm) => {
            let mut bad = Vec::new();
            for (rel, want) in &tagm {
                let got = bag.read_small(rel).map(|b| Digests::of(&b).sha256_hex());
                match got {
                    Ok(g) if &g == want => {}
                    Ok(_) => bad.push(format!("{rel} changed")),
                    Err(_) => bad.push(format!("{rel} missing")),
                }
            }
            for must in [
                "bagit.txt",
                "bag-info.txt",
                "manifest-sha256.txt",
                "manifest-sm3.txt",
            ] {
                if !tagm.contains_key(must) {
                    bad.push(format!("{must} not covered"));
                }
            }
            if bad.is_empty() {
                pass(
                    &mut checks,
                    "tag_manifest",
                    format!("{} tag files match tagmanifest-sha256.txt", tagm.len()),
                );
            } else {
                fail(&mut checks, "tag_manifest", list_some(&bad));
            }
        }
    }

    // Payload: completeness against both manifests, then every digest in one streaming pass.
    let m_sha = parse_manifest(&text(&mut bag, "manifest-sha256.txt"));
    let m_sm3 = parse_manifest(&text(&mut bag, "manifest-sm3.txt"));
    let (m_sha, m_sm3) = match (m_sha, m_sm3) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            fail(&mut checks, "payload_manifests", e);
            report.checks = checks;
            return report;
        }
    };
    let payload: BTreeSet<String> = files
        .iter()
        .filter(|f| f.starts_with("data/"))
        .cloned()
        .collect();
    let listed: BTreeSet<String> = m_sha.keys().chain(m_sm3.keys()).cloned().collect();
    let missing: Vec<String> = listed.difference(&payload).cloned().collect();
    let extra: Vec<String> = payload.difference(&listed).cloned().collect();
    let one_sided: Vec<String> = listed
        .iter()
        .filter(|p| m_sha.contains_key(*p) != m_sm3.contains_key(*p))
        .cloned()
        .collect();
    if report.evidence && extra.is_empty() && one_sided.is_empty() {
        // The payload is withheld on purpose: what can be proved is that the sealed manifests
        // list exactly the files archive.xml describes.
        match archive_xml_files(&mut bag) {
            Ok(described) => {
                let sealed: BTreeSet<String> = m_sha.keys().cloned().collect();
                let mut described: BTreeSet<String> =
                    described.into_iter().map(|p| format!("data/{p}")).collect();
                described.insert("data/archive.xml".into());
                if described == sealed {
                    checks.push(Check {
                        check: "payload_complete",
                        status: Status::NotPresent,
                        detail: format!(
                            "payload not present (evidence download): {} files are sealed in both manifests, the same as archive.xml describes",
                            sealed.len()
                        ),
                    });
                } else {
                    let d: Vec<String> = described.symmetric_difference(&sealed).cloned().collect();
                    fail(
                        &mut checks,
                        "payload_complete",
                        format!(
                            "archive.xml and the manifests disagree on {}",
                            list_some(&d)
                        ),
                    );
                }
            }
            Err(e) => fail(&mut checks, "payload_complete", e),
        }
    } else if missing.is_empty() && extra.is_empty() && one_sided.is_empty() {
        pass(
            &mut checks,
            "payload_complete",
            format!("{} payload files, each in both manifests", payload.len()),
        );
    } else {
        let mut d = Vec::new();
        if !missing.is_empty() {
            d.push(format!("missing: {}", list_some(&missing)));
        }
        if !extra.is_empty() {
            d.push(format!("not in the manifests: {}", list_some(&extra)));
        }
        if !one_sided.is_empty() {
            d.push(format!("in one manifest only: {}", list_some(&one_sided)));
        }
        fail(&mut checks, "payload_complete", d.join("; "));
    }
    xml_documents(&mut checks, &mut bag, &payload);
    let bag_info = text(&mut bag, "bag-info.txt");
    version_of(&mut report, &mut checks, &mut bag, &bag_info);
    if !payload_digests {
        return finish_seal(report, checks, &mut bag, &tagmanifest_bytes, trusted);
    }
    let mut bad = Vec::new();
    let mut bytes = 0u64;
    let present: Vec<String> = payload
        .iter()
        .filter(|p| listed.contains(*p))
        .cloned()
        .collect();
    let mut format_problems = crate::problem::Problems::default();
    digest::with_digester(|dg| {
        for rel in &present {
            let mut sniffer = screen.map(|_| crate::pipeline::identify::Sniffer::new());
            let hashed = bag.read(rel, |r| {
                dg.stream(r, |chunk, last| {
                    if let Some(s) = sniffer.as_mut() {
                        s.feed(chunk, last);
                    }
                    Ok(())
                })
            });
            if let (Some(policy), Some(s), Ok((_, n))) = (screen, &sniffer, &hashed) {
                screen_file(&mut bag, rel, s, *n, policy, &mut format_problems);
            }
            match hashed {
                Ok((d, n)) => {
                    bytes += n;
                    if m_sha.get(rel).is_some_and(|w| *w != d.sha256_hex()) {
                        bad.push(format!("{rel} (SHA-256)"));
                    }
                    if m_sm3.get(rel).is_some_and(|w| *w != d.sm3_hex()) {
                        bad.push(format!("{rel} (SM3)"));
                    }
                }
                Err(e) => bad.push(format!("{rel} unreadable: {e}")),
            }
        }
    });
    report.payload_files = payload.len();
    report.payload_bytes = bytes;
    if screen.is_some() {
        let found: Vec<String> = format_problems
            .errors
            .iter()
            .map(|p| {
                format!(
                    "{}: {} ({})",
                    p.path.as_deref().unwrap_or("?"),
                    p.code.as_str(),
                    p.message
                )
            })
            .collect();
        if found.is_empty() {
            pass(
                &mut checks,
                "formats",
                format!(
                    "{} files identified again from their bytes: none encrypted, every format accepted",
                    present.len()
                ),
            );
        } else {
            fail(&mut checks, "formats", list_some(&found));
        }
    }
    if bad.is_empty() {
        pass(
            &mut checks,
            "payload_digests",
            format!(
                "{} files, {bytes} bytes: every SHA-256 and SM3 digest matches",
                present.len()
            ),
        );
    } else {
        fail(
            &mut checks,
            "payload_digests",
            format!("digest mismatch: {}", list_some(&bad)),
        );
    }

    let info = text(&mut bag, "bag-info.txt");
    match info.lines().find_map(|l| l.strip_prefix("Payload-Oxum:")) {
        Some(ox) if report.evidence => checks.push(Check {
            check: "payload_oxum",
            status: Status::NotPresent,
            detail: format!(
                "bag-info says {}; the payload is not in this download",
                ox.trim()
            ),
        }),
        Some(ox) if ox.trim() == format!("{bytes}.{}", payload.len()) => {
            pass(&mut checks, "payload_oxum", ox.trim().to_string())
        }
        Some(ox) => fail(
            &mut checks,
            "payload_oxum",
            format!(
                "bag-info says {}, the payload is {bytes}.{}",
                ox.trim(),
                payload.len()
            ),
        ),
        None => fail(
            &mut checks,
            "payload_oxum",
            "bag-info.txt has no Payload-Oxum",
        ),
    }

    // Signature over the exact bytes of the tag manifest, and whether its key is pinned.
    let sig: Result<SignatureFile, String> = bag
        .read_small("signature.json")
        .map_err(|e| e.to_string())
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("signature.json is not valid: {e}"))
        });
    match sig {
        Err(e) => fail(&mut checks, "signature", e),
        Ok(sig) => check_signature(&mut checks, &sig, &tagmanifest_bytes, trusted),
    }
    check_sm2(&mut checks, &mut bag, &tagmanifest_bytes, trusted);

    match proof {
        None => checks.push(Check {
            check: "log_inclusion",
            status: Status::NotConfigured,
            detail:
                "no inclusion proof given (--proof FILE, or PACKAGE.tlog-proof beside the package)"
                    .into(),
        }),
        Some(text) => {
            let archive_id = report.archive_id.clone().unwrap_or_default();
            let digest = Digests::of(&tagmanifest_bytes).sha256_hex();
            check_inclusion(&mut checks, text, &archive_id, &digest, trusted);
        }
    }
    report.tagmanifest_sha256 = Some(Digests::of(&tagmanifest_bytes).sha256_hex());
    report.manifest_sha256 = m_sha.clone();

    report.valid = checks.iter().all(|c| c.status != Status::Fail);
    report.checks = checks;
    report
}

/// Reads which version this package is (bag-info, signed through the tag manifest) and checks
/// that its archive.xml says the same: its number and the previous version's tag manifest.
fn version_of(report: &mut Report, checks: &mut Vec<Check>, bag: &mut Bag, info: &str) {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let Some(v) = field("Guidang-Package-Version:") else {
        return;
    };
    let Ok(version) = v.parse::<i64>() else {
        return fail(
            checks,
            "version",
            format!("bag-info: Guidang-Package-Version {v:?} is not a number"),
        );
    };
    report.version = version;
    if version <= 1 {
        return;
    }
    let previous = field("Guidang-Previous-Version:").and_then(|p| {
        let (n, d) = p.split_once(' ')?;
        Some((
            n.parse::<i64>().ok()?,
            d.strip_prefix("sha256:")?.to_string(),
        ))
    });
    let Some((pv, pd)) = previous else {
        return fail(
            checks,
            "version",
            format!(
                "version {version} names no previous version in bag-info (Guidang-Previous-Version)"
            ),
        );
    };
    report.previous = Some((pv, pd.clone()));
    let xml = bag
        .read_small("data/archive.xml")
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some(xml) = xml else {
        return fail(checks, "version", "data/archive.xml cannot be read");
    };
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return fail(checks, "version", "data/archive.xml is not well-formed");
    };
    let said = doc
        .descendants()
        .find(|n| n.has_tag_name("package_version"))
        .and_then(|n| n.text())
        .and_then(|t| t.trim().parse::<i64>().ok());
    let last = doc
        .descendants()
        .rfind(|n| {
            n.has_tag_name("version")
                && n.parent()
                    .is_some_and(|p| p.has_tag_name("previous_versions"))
        })
        .map(|n| {
            (
                n.attribute("number").and_then(|x| x.parse::<i64>().ok()),
                n.attribute("tagmanifest_sha256").map(str::to_string),
            )
        });
    if said != Some(version) || pv != version - 1 || last != Some((Some(pv), Some(pd.clone()))) {
        return fail(
            checks,
            "version",
            format!(
                "bag-info says version {version} extending version {pv} (sha256:{pd}); archive.xml says version {said:?} after {last:?}"
            ),
        );
    }
    pass(
        checks,
        "version",
        format!(
            "version {version} of the case's package; it signs version {pv}'s tag manifest sha256:{pd}"
        ),
    );
}

/// Checks the chain between versions of one case given together: each version N > 1 must name
/// the tag manifest of the version N-1 beside it, and that one must be valid. A version whose
/// predecessor was not given says so (`not_configured`), never `pass`.
pub fn chain(reports: &mut [Report]) {
    /// Archive id, version, tag-manifest digest, valid, name.
    type Known = (Option<String>, i64, Option<String>, bool, String);
    let known: Vec<Known> = reports
        .iter()
        .map(|r| {
            (
                r.archive_id.clone(),
                r.version,
                r.tagmanifest_sha256.clone(),
                r.valid,
                r.package.clone(),
            )
        })
        .collect();
    for r in reports.iter_mut() {
        let Some((pv, pd)) = r.previous.clone() else {
            continue;
        };
        let prev = known
            .iter()
            .find(|(id, v, _, _, _)| *id == r.archive_id && *v == pv);
        let check = match prev {
            None => Check {
                check: "version_chain",
                status: Status::NotConfigured,
                detail: format!(
                    "extends version {pv} (tag manifest sha256:{pd}); give that version too (guidang verify OLD NEW) to check the chain"
                ),
            },
            Some((_, _, Some(d), true, name)) if *d == pd => Check {
                check: "version_chain",
                status: Status::Pass,
                detail: format!(
                    "extends {name} (version {pv}), whose tag manifest is the one this version signs"
                ),
            },
            Some((_, _, _, false, name)) => Check {
                check: "version_chain",
                status: Status::Fail,
                detail: format!("the version it extends, {name}, is not valid"),
            },
            Some((_, _, d, _, name)) => Check {
                check: "version_chain",
                status: Status::Fail,
                detail: format!(
                    "this version signs sha256:{pd} for version {pv}, but {name} has tag manifest sha256:{}",
                    d.as_deref().unwrap_or("?")
                ),
            },
        };
        r.checks.push(check);
        r.valid = r.checks.iter().all(|c| c.status != Status::Fail);
    }
}

/// What every package carries at its top, besides `data/` (and what an evidence download copies).
pub const REQUIRED_TAG_FILES: [&str; 6] = [
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "manifest-sm3.txt",
    "tagmanifest-sha256.txt",
    "signature.json",
];

/// In an evidence download: the note that says the payload is withheld, and the log proof.
pub const EVIDENCE_NOTE: &str = "evidence.txt";
pub const EVIDENCE_PROOF: &str = "tlog-proof.txt";

/// The payload paths (under `data/`) that archive.xml describes.
fn archive_xml_files(bag: &mut Bag) -> Result<Vec<String>, String> {
    let b = bag
        .read_small("data/archive.xml")
        .map_err(|e| format!("data/archive.xml: {e}"))?;
    let text = std::str::from_utf8(&b).map_err(|e| format!("data/archive.xml: {e}"))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("data/archive.xml: {e}"))?;
    Ok(doc
        .descendants()
        .filter(|n| n.has_tag_name("file") && n.parent().is_some_and(|p| p.has_tag_name("files")))
        .filter_map(|n| n.attribute("path").map(str::to_string))
        .collect())
}

/// The archive's own XML documents (archive.xml and any other at the top of `data/`, and the
/// submitted metadata.xml) must be well-formed XML 1.0: a valid signature over a document no
/// XML reader can open would prove little.
fn xml_documents(checks: &mut Vec<Check>, bag: &mut Bag, payload: &BTreeSet<String>) {
    let docs: Vec<&String> = payload
        .iter()
        .filter(|p| {
            let xml = p.to_ascii_lowercase().ends_with(".xml");
            p.as_str() == "data/submission/metadata.xml"
                || (xml && p.matches('/').count() == 1)
                || (xml && p.starts_with("data/其他/") && p.matches('/').count() == 2)
                || (p.starts_with("data/digitised/")
                    && p.ends_with("/digitisation.xml")
                    && p.matches('/').count() == 3)
        })
        .collect();
    let mut bad = Vec::new();
    for rel in &docs {
        match bag.read_small(rel) {
            Ok(b) => {
                if let Err(e) = crate::pipeline::xml::conformance(&b) {
                    bad.push(format!("{rel}: {e}"));
                }
            }
            Err(e) => bad.push(format!("{rel} unreadable: {e}")),
        }
    }
    if docs.is_empty() {
        fail(
            checks,
            "xml_documents",
            "the package holds no data/archive.xml (nor, as a transfer volume, 文件目录.XML)",
        );
    } else if bad.is_empty() {
        let names: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
        pass(
            checks,
            "xml_documents",
            format!("well-formed XML 1.0: {}", names.join(", ")),
        );
    } else {
        fail(checks, "xml_documents", list_some(&bad));
    }
}

fn finish_seal(
    mut report: Report,
    mut checks: Vec<Check>,
    bag: &mut Bag,
    tagmanifest_bytes: &[u8],
    trusted: Option<&[PublicKeyInfo]>,
) -> Report {
    let sig: Result<SignatureFile, String> = bag
        .read_small("signature.json")
        .map_err(|e| e.to_string())
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("signature.json is not valid: {e}"))
        });
    match sig {
        Err(e) => fail(&mut checks, "signature", e),
        Ok(sig) => check_signature(&mut checks, &sig, tagmanifest_bytes, trusted),
    }
    check_sm2(&mut checks, bag, tagmanifest_bytes, trusted);
    report.tagmanifest_sha256 = Some(Digests::of(tagmanifest_bytes).sha256_hex());
    report.valid = checks.iter().all(|c| c.status != Status::Fail);
    report.checks = checks;
    report
}

/// The trusted log key (name, public key) for `origin`, from the pinned keys.
pub fn trusted_log_key(
    trusted: Option<&[PublicKeyInfo]>,
    origin: &str,
) -> Option<(String, [u8; 32])> {
    trusted?
        .iter()
        .filter(|k| k.purpose == "log")
        .filter_map(|k| k.vkey.as_deref().and_then(|v| note::parse_vkey(v).ok()))
        .find(|(name, _)| name == origin)
}

fn check_inclusion(
    checks: &mut Vec<Check>,
    text: &str,
    archive_id: &str,
    tagmanifest_sha256: &str,
    trusted: Option<&[PublicKeyInfo]>,
) {
    let proof = match note::InclusionProof::parse(text) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                checks,
                "log_inclusion",
                format!("the proof file is not valid: {e}"),
            );
        }
    };
    let cp_text = match note::split(&proof.checkpoint) {
        Ok((t, _)) => t,
        Err(e) => return fail(checks, "log_checkpoint", e),
    };
    let cp = match note::Checkpoint::parse(cp_text) {
        Ok(c) => c,
        Err(e) => return fail(checks, "log_checkpoint", e),
    };
    match trusted_log_key(trusted, &cp.origin) {
        Some((name, pk)) => match note::verify(&proof.checkpoint, &name, &pk) {
            Ok(_) => pass(
                checks,
                "log_checkpoint",
                format!(
                    "checkpoint of {} at size {} signed by the pinned log key",
                    cp.origin, cp.size
                ),
            ),
            Err(e) => fail(checks, "log_checkpoint", e),
        },
        None => checks.push(Check {
            check: "log_checkpoint",
            status: Status::Warn,
            detail: format!(
                "no pinned log key for {}: the checkpoint's signature was NOT checked",
                cp.origin
            ),
        }),
    }
    let entry = note::aip_entry(archive_id, tagmanifest_sha256);
    let leaf = merkle::leaf_hash(entry.as_bytes());
    if merkle::verify_inclusion(&leaf, proof.index, cp.size, &proof.hashes, &cp.root) {
        pass(
            checks,
            "log_inclusion",
            format!(
                "entry {} of the log (size {}) is this package",
                proof.index, cp.size
            ),
        );
    } else {
        fail(
            checks,
            "log_inclusion",
            format!(
                "the proof does not show this package at index {} of the log of size {}",
                proof.index, cp.size
            ),
        );
    }
}

/// `signature-sm2.json`, where the package carries one: SM2 with SM3 over the same tag manifest,
/// under a pinned SM2 key (or, without pins, the embedded key, said to be unpinned).
fn check_sm2(
    checks: &mut Vec<Check>,
    bag: &mut Bag,
    signed: &[u8],
    trusted: Option<&[PublicKeyInfo]>,
) {
    use crate::signing_sm2 as sm2;
    if !bag.files().contains(sm2::SIGNATURE_FILE) {
        return;
    }
    let f: Result<sm2::Sm2SignatureFile, String> = bag
        .read_small(sm2::SIGNATURE_FILE)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| format!("{} is not valid: {e}", sm2::SIGNATURE_FILE))
        });
    let f = match f {
        Ok(f) => f,
        Err(e) => return fail(checks, "signature_sm2", e),
    };
    if f.algorithm != sm2::ALGORITHM || f.signed_file != "tagmanifest-sha256.txt" {
        return fail(
            checks,
            "signature_sm2",
            format!("unsupported: {} over {}", f.algorithm, f.signed_file),
        );
    }
    use base64::Engine;
    let embedded_id = base64::engine::general_purpose::STANDARD
        .decode(&f.public_key)
        .ok()
        .map(|der| sm2::key_id(&der));
    if embedded_id.as_deref() != Some(f.key_id.as_str()) {
        return fail(
            checks,
            "signature_sm2",
            "key_id is not the SHA-256 of the embedded public key",
        );
    }
    match trusted {
        Some(keys) => {
            let Some(k) = keys.iter().find(|k| k.key_id == f.key_id) else {
                return fail(
                    checks,
                    "signature_sm2",
                    format!("signed by SM2 key {} which is not among the trusted keys", f.key_id),
                );
            };
            match sm2::verify(&k.public_key, &f.signature, &f.user_id, signed) {
                Ok(()) => pass(
                    checks,
                    "signature_sm2",
                    format!("SM2-SM3 signature (user id {}) by pinned key {} valid", f.user_id, k.key_id),
                ),
                Err(e) => fail(checks, "signature_sm2", e),
            }
        }
        None => match sm2::verify(&f.public_key, &f.signature, &f.user_id, signed) {
            Ok(()) => checks.push(Check {
                check: "signature_sm2",
                status: Status::Warn,
                detail: format!(
                    "the SM2 signature is valid under the public key inside {} ({}), which is NOT pinned",
                    sm2::SIGNATURE_FILE,
                    f.key_id
                ),
            }),
            Err(e) => fail(checks, "signature_sm2", e),
        },
    }
}

fn check_signature(
    checks: &mut Vec<Check>,
    sig: &SignatureFile,
    signed: &[u8],
    trusted: Option<&[PublicKeyInfo]>,
) {
    use base64::Engine;
    if sig.algorithm != "Ed25519" || sig.signed_file != "tagmanifest-sha256.txt" {
        fail(
            checks,
            "signature",
            format!("unsupported: {} over {}", sig.algorithm, sig.signed_file),
        );
        return;
    }
    let embedded_id = base64::engine::general_purpose::STANDARD
        .decode(&sig.public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|pk| key_id(&pk));
    if embedded_id.as_deref() != Some(sig.key_id.as_str()) {
        fail(
            checks,
            "signature",
            "key_id is not the SHA-256 of the embedded public key",
        );
        return;
    }
    match trusted {
        Some(keys) => {
            let Some(k) = keys.iter().find(|k| k.key_id == sig.key_id) else {
                fail(
                    checks,
                    "signature",
                    format!("signed by key {} which is not among the trusted keys", sig.key_id),
                );
                return;
            };
            match verify_signature(&k.public_key, &sig.signature, signed) {
                Ok(()) => pass(
                    checks,
                    "signature",
                    format!(
                        "Ed25519 signature by pinned key {} valid{}",
                        k.key_id,
                        k.retired_at.as_ref().map(|r| format!(" (key retired {r})")).unwrap_or_default()
                    ),
                ),
                Err(e) => fail(checks, "signature", e),
            }
        }
        None => match verify_signature(&sig.public_key, &sig.signature, signed) {
            Ok(()) => checks.push(Check {
                check: "signature",
                status: Status::Warn,
                detail: format!(
                    "the signature is valid under the public key inside signature.json ({}), which is NOT pinned: anyone could have made it; pass --trusted-keys to check against keys you trust",
                    sig.key_id
                ),
            }),
            Err(e) => fail(checks, "signature", e),
        },
    }
}

impl Report {
    pub fn human(&self) -> String {
        let mut s = format!(
            "{}: {}\n  archive id: {} (package version {})\n  payload: {} files, {} bytes\n",
            self.package,
            match (self.valid, self.evidence) {
                (true, true) =>
                    "VALID (evidence: signature and manifests valid; payload not present)",
                (true, false) => "VALID",
                (false, _) => "INVALID",
            },
            self.archive_id.as_deref().unwrap_or("?"),
            self.version,
            self.payload_files,
            self.payload_bytes
        );
        for c in &self.checks {
            let mark = match c.status {
                Status::Pass => "ok  ",
                Status::Fail => "FAIL",
                Status::Warn => "warn",
                Status::NotConfigured => "n/c ",
                Status::NotPresent => "n/p ",
            };
            s.push_str(&format!("  [{mark}] {:<18} {}\n", c.check, c.detail));
        }
        s
    }
}

/// Identifies one payload file from what the hashing pass showed (containers: from a seekable
/// view of the entry) and judges it as the format gate does at ingest.
fn screen_file(
    bag: &mut Bag,
    rel: &str,
    sniffer: &crate::pipeline::identify::Sniffer,
    size: u64,
    policy: &BTreeMap<String, crate::pipeline::identify::Action>,
    problems: &mut crate::problem::Problems,
) {
    use crate::pipeline::identify;
    // Tag-like files of the package itself are XML the package writer made.
    let name = rel.strip_prefix("data/").unwrap_or(rel);
    if size == 0 {
        return;
    }
    let mut id = sniffer.finish();
    if matches!(id.format.as_str(), "zip" | "ole") {
        let inspected = bag.read_seek(rel, |r| {
            Ok(identify::inspect_container(
                id.clone(),
                BufReader::with_capacity(64 * 1024, r),
            ))
        });
        if let Ok(i) = inspected {
            id = i;
        }
    }
    identify::judge(name, None, &id, policy, problems);
}

/// `Read + Seek` as one object-safe trait.
pub trait ReadSeekDyn: Read + std::io::Seek {}
impl<T: Read + std::io::Seek + ?Sized> ReadSeekDyn for T {}
