//! Issue 9, item 20: a mutation fuzzer on stable Rust. Seeded and reproducible, it mutates real
//! inputs (submissions, `metadata.xml`, files of every accepted format, signed packages) and
//! feeds them to the ZIP reader and the whole pipeline short of the database, the metadata
//! parser, the format identifier and the verifier. A case fails if it panics, takes more than
//! five seconds, or — for the verifier — is called VALID although what an unzip tool extracts
//! differs from the sealed package. Every failing input is written to `fixtures/fuzz/` and
//! replayed by every later run.
//!
//! In CI a bounded number of cases per target runs. By hand, for as long as you like:
//! `GUIDANG_FUZZ_SECS=3600 GUIDANG_FUZZ_SEED=7 cargo test --release --test it fuzz:: -- --nocapture`
//! (`GUIDANG_FUZZ_CASES` sets the count per target instead).

use crate::common::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u32; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff];

/// One to four mutations: bit flips, interesting bytes and 32-bit values (sizes, offsets,
/// counts), insertions, deletions, duplicated ranges, and splices from another seed.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len().max(1);
        let at = rng.below(len);
        match rng.below(8) {
            0 => {
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                if let Some(x) = b.get_mut(at) {
                    *x = INTERESTING[rng.below(INTERESTING.len())] as u8;
                }
            }
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                for (i, x) in v.iter().enumerate() {
                    if let Some(y) = b.get_mut(at + i) {
                        *y = *x;
                    }
                }
            }
            3 => {
                let n = 1 + rng.below(16);
                let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at.min(b.len())..at.min(b.len()), ins);
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                if at < end {
                    b.drain(at..end);
                }
            }
            5 => {
                let end = (at + 1 + rng.below(256)).min(b.len());
                if at < end {
                    let dup = b[at..end].to_vec();
                    let to = rng.below(b.len() + 1);
                    b.splice(to..to, dup);
                }
            }
            6 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(512)).min(other.len());
                let to = at.min(b.len());
                b.splice(
                    to..(to + (end - from)).min(b.len()),
                    other[from..end].to_vec(),
                );
            }
            _ => {
                // A magic number where a structure is expected to start.
                let magic: &[&[u8]] = &[
                    b"PK\x03\x04",
                    b"PK\x01\x02",
                    b"PK\x05\x06",
                    b"%PDF",
                    b"<?xml",
                    b"]]>",
                ];
                let m = magic[rng.below(magic.len())];
                b.splice(at.min(b.len())..at.min(b.len()), m.to_vec());
            }
        }
    }
    b
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Submission,
    Metadata,
    Identify,
    Package,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Submission => "submission",
            Target::Metadata => "metadata",
            Target::Identify => "identify",
            Target::Package => "package",
        }
    }
    fn parse(s: &str) -> Option<Target> {
        [
            Target::Submission,
            Target::Metadata,
            Target::Identify,
            Target::Package,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

/// What every case runs against: a scratch data directory, a signer, the default policy, and the
/// entries of the valid package for the verifier's tamper check.
struct Harness {
    _dir: tempfile::TempDir,
    settings: guidang::config::Settings,
    signer: guidang::signing::Signer,
    policy: BTreeMap<String, guidang::config::Action>,
    rules: guidang::retention::RuleSet,
    agent: guidang::auth::Principal,
    sealed: BTreeMap<String, Vec<u8>>,
}

fn entries_of(zip: &[u8]) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).ok()?;
    let mut out = BTreeMap::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).ok()?;
        let name = e.name().ok()?.to_string();
        let mut bytes = vec![];
        e.read_to_end(&mut bytes).ok()?;
        out.insert(name, bytes);
    }
    Some(out)
}

impl Harness {
    /// A harness over a fresh scratch directory; `sealed` is the valid package's entries.
    fn new(sealed: BTreeMap<String, Vec<u8>>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let settings = guidang::config::Settings {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        std::fs::create_dir_all(settings.tmp_dir()).unwrap();
        Harness {
            signer: guidang::signing::Signer::load_or_create(&dir.path().join("signing.ed25519"))
                .unwrap(),
            settings,
            policy: guidang::pipeline::identify::default_policy(),
            rules: guidang::retention::RuleSet {
                version: 0,
                rules: vec![],
                created_at: None,
                created_by: None,
            },
            agent: guidang::auth::Principal::operator("fuzz"),
            sealed,
            _dir: dir,
        }
    }

    /// The whole pipeline short of the database, on the submission ZIP at `path`.
    fn prepare(
        &self,
        path: PathBuf,
    ) -> Result<guidang::pipeline::Prepared, guidang::pipeline::PrepareError> {
        let source = guidang::pipeline::unpack::Source::Zip(path);
        guidang::pipeline::prepare(guidang::pipeline::PrepareInput {
            source: &source,
            settings: &self.settings,
            policy: &self.policy,
            signer: &self.signer,
            sm2: None,
            archive_id: "01a00000-0000-7000-8000-00000000f022",
            agent: &self.agent,
            received_at: chrono::Utc::now().fixed_offset(),
            rules: &self.rules,
            early: None,
        })
    }

    /// Runs one input; `Err` says what is wrong with the outcome (a panic is caught outside).
    fn run(&self, target: Target, input: &[u8]) -> Result<(), String> {
        match target {
            Target::Submission => {
                let path = self.settings.tmp_dir().join("fuzz-input.zip");
                std::fs::write(&path, input).map_err(|e| e.to_string())?;
                let r = self.prepare(path);
                // A damaged submission is a client error; an I/O error would answer 500.
                match r {
                    Err(guidang::pipeline::PrepareError::Io(e)) => {
                        Err(format!("a damaged submission ended in an I/O error: {e}"))
                    }
                    _ => Ok(()),
                }
            }
            Target::Metadata => {
                let mut problems = guidang::problem::Problems::default();
                let _ = guidang::pipeline::describe::describe(input, true, &mut problems);
                Ok(())
            }
            Target::Identify => {
                for chunk in [1usize, 7, 4096, input.len().max(1)] {
                    let mut s = guidang::pipeline::identify::Sniffer::new();
                    let mut parts = input.chunks(chunk).peekable();
                    if parts.peek().is_none() {
                        s.feed(&[], true);
                    }
                    while let Some(p) = parts.next() {
                        s.feed(p, parts.peek().is_none());
                    }
                    let id = s.finish();
                    let _ = guidang::pipeline::identify::inspect_container(
                        id,
                        std::io::Cursor::new(input),
                    );
                }
                Ok(())
            }
            Target::Package => {
                let r = guidang::verify::verify_reader(
                    "fuzz",
                    Box::new(std::io::Cursor::new(input.to_vec())),
                    None,
                    None,
                );
                // VALID must mean that what a reader extracts is what was sealed.
                if r.valid && entries_of(input).as_ref() != Some(&self.sealed) {
                    return Err("verify said VALID for a package whose entries differ".into());
                }
                Ok(())
            }
        }
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs `input`, catching panics and timing it; a failure is kept as a regression fixture.
fn check(h: &Harness, target: Target, input: &[u8], keep: bool) -> Option<String> {
    let started = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.run(target, input)));
    let why = match r {
        Err(p) => Some(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(Err(e)) => Some(e),
        Ok(Ok(())) if started.elapsed() > Duration::from_secs(5) => {
            Some(format!("took {:?}", started.elapsed()))
        }
        Ok(Ok(())) => None,
    }?;
    let mut saved = String::new();
    if keep {
        let path = fixtures().join(format!("fuzz/{}-{:016x}.bin", target.name(), fnv(input)));
        if std::fs::create_dir_all(fixtures().join("fuzz")).is_ok()
            && std::fs::write(&path, input).is_ok()
        {
            saved = format!(" (kept as {})", path.display());
        }
    }
    Some(format!("{}: {why}{saved}", target.name()))
}

fn seeds() -> Vec<(Target, Vec<u8>)> {
    let mut out = vec![];
    for p in ["valid/food-licence.zip", "valid/with-docx.zip"] {
        out.push((Target::Submission, fixture(p)));
    }
    for p in [
        "bad/unsafe_path-layout-overlap.zip",
        "bad/encrypted_file-zipcrypto-member.zip",
    ] {
        if fixtures().join(p).exists() {
            out.push((Target::Submission, fixture(p)));
        }
    }
    out.push((Target::Metadata, fixture("valid/food-licence/metadata.xml")));
    for e in std::fs::read_dir(fixtures().join("files"))
        .unwrap()
        .flatten()
    {
        let p: PathBuf = e.path();
        if p.is_file()
            && std::fs::metadata(&p)
                .map(|m| m.len() < 1 << 20)
                .unwrap_or(false)
        {
            out.push((Target::Identify, std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// The valid case packaged and signed by the pipeline itself: the verifier's seed.
fn package_seed() -> Vec<u8> {
    let h = Harness::new(BTreeMap::new());
    let path = h.settings.tmp_dir().join("seed.zip");
    std::fs::write(&path, fixture("valid/food-licence.zip")).unwrap();
    let prepared = h
        .prepare(path)
        .unwrap_or_else(|_| panic!("the valid case packages"));
    std::fs::read(&prepared.staged).unwrap()
}

#[test]
fn mutated_inputs_never_crash_hang_or_pass_a_tampered_package() {
    let package = package_seed();
    let h = Harness::new(entries_of(&package).expect("the valid package reads"));
    assert!(h.run(Target::Package, &package).is_ok());
    let mut failures = vec![];

    // Every input that once failed, first.
    let mut replayed = 0;
    for e in std::fs::read_dir(fixtures().join("fuzz"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(target) = name.split('-').next().and_then(Target::parse) else {
            continue;
        };
        replayed += 1;
        if let Some(f) = check(&h, target, &std::fs::read(e.path()).unwrap(), false) {
            failures.push(format!("regression {name}: {f}"));
        }
    }

    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("GUIDANG_FUZZ_SEED").unwrap_or(20_261_202);
    let per_target = env("GUIDANG_FUZZ_CASES").unwrap_or(1000);
    let until = env("GUIDANG_FUZZ_SECS").map(|s| Instant::now() + Duration::from_secs(s));
    let mut seeds = seeds();
    seeds.push((Target::Package, package));
    let mut rng = Rng(seed | 1);
    let mut ran: BTreeMap<&str, u64> = BTreeMap::new();
    let targets = [
        Target::Submission,
        Target::Metadata,
        Target::Identify,
        Target::Package,
    ];
    let mut round = 0u64;
    loop {
        let done = match until {
            Some(t) => Instant::now() >= t,
            None => round >= per_target,
        };
        if done || failures.len() >= 20 {
            break;
        }
        for t in targets {
            let pool: Vec<&Vec<u8>> = seeds
                .iter()
                .filter(|(s, _)| *s == t)
                .map(|(_, b)| b)
                .collect();
            let base = pool[rng.below(pool.len())];
            let other = &seeds[rng.below(seeds.len())].1;
            let input = mutate(&mut rng, base, other);
            *ran.entry(t.name()).or_default() += 1;
            if let Some(f) = check(&h, t, &input, true) {
                failures.push(f);
            }
        }
        round += 1;
    }
    eprintln!("fuzz: seed {seed}, {replayed} regressions replayed, cases {ran:?}");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
