//! The transparency log kept in the database: entries, the stored hashes of perfect subtrees, and
//! signed checkpoints. Appends happen inside the recorder's transactions, so an archived case and
//! its log entry are committed together; a checkpoint is signed after each commit that grew the
//! tree. Stored rows are only inserted, so a published root never changes.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::merkle::{self, Hash, Hashes};
use super::note::{self, Checkpoint, InclusionProof};
use crate::db::log as db_log;
use crate::db::{Db, DbError};
use crate::signing::Signer;

/// Appends one entry on the caller's transaction; returns its index.
pub async fn append_on(
    conn: &mut sqlx::AnyConnection,
    postgres: bool,
    kind: &str,
    archive_id: Option<&str>,
    entry: &str,
) -> Result<u64, DbError> {
    crate::db::locks::AdvisoryLock::Log
        .hold_on(&mut *conn, postgres)
        .await?;
    let n = db_log::insert_entry_on(&mut *conn, kind, archive_id, entry).await?;
    // The perfect subtrees this leaf completes need the left siblings at each level where the
    // index has a one bit: fetch them together, then insert every new stored hash at once.
    let mut siblings = Vec::new();
    let (mut level, mut i) = (0i64, n);
    while i & 1 == 1 {
        siblings.push((level, i - 1));
        level += 1;
        i >>= 1;
    }
    let left = fetch_stored(&mut *conn, &siblings).await?;
    let mut h = merkle::leaf_hash(entry.as_bytes());
    let mut rows = vec![(0i64, n, h)];
    for (l, j) in &siblings {
        let sib = left.get(&(*l, *j)).ok_or_else(|| {
            DbError::Failed(format!(
                "log hash ({l}, {j}) is missing: the log has been truncated"
            ))
        })?;
        h = merkle::node_hash(sib, &h);
        rows.push((l + 1, (j + 1) >> 1, h));
    }
    let rows: Vec<(i64, i64, String)> = rows
        .into_iter()
        .map(|(l, j, hash)| (l, j, hex::encode(hash)))
        .collect();
    db_log::insert_hashes_on(conn, &rows).await?;
    Ok(n as u64)
}

/// The stored hashes at (level, index) `pairs` that exist, in one query.
async fn fetch_stored<'e, E>(
    exec: E,
    pairs: &[(i64, i64)],
) -> Result<HashMap<(i64, i64), Hash>, DbError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    db_log::stored_hashes(exec, pairs)
        .await?
        .into_iter()
        .map(|(k, h)| Ok((k, decode(&h)?)))
        .collect()
}

fn decode(h: &str) -> Result<Hash, DbError> {
    hex::decode(h)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DbError::Failed("a stored log hash is not 32 bytes of hex".into()))
}

/// Records which stored hashes a computation needs (the tree's shape, not its values).
struct Needed(Vec<(u32, u64)>);
impl Hashes for Needed {
    type Error = std::convert::Infallible;
    fn stored(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.0.push((level, index));
        Ok([0u8; 32])
    }
}

struct Fetched(HashMap<(u32, u64), Hash>);
impl Hashes for Fetched {
    type Error = DbError;
    fn stored(&mut self, level: u32, index: u64) -> Result<Hash, DbError> {
        self.0.get(&(level, index)).copied().ok_or_else(|| {
            DbError::Failed(format!(
                "log hash ({level}, {index}) is missing: the log has been truncated"
            ))
        })
    }
}

#[derive(Clone)]
pub struct Log {
    db: Db,
    signer: Arc<Signer>,
    pub origin: String,
}

pub struct LatestCheckpoint {
    pub size: u64,
    pub note: String,
}

impl Log {
    pub fn new(db: Db, signer: Arc<Signer>, origin: String) -> Log {
        Log { db, signer, origin }
    }

    pub fn vkey(&self) -> String {
        note::vkey(&self.origin, &self.signer.public_bytes())
    }

    /// Runs `f` against the stored hashes it needs, fetched in one pass.
    async fn with_hashes<T>(
        &self,
        f: impl Fn(&mut dyn FnMut(u32, u64) -> Result<Hash, DbError>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut needed = Needed(Vec::new());
        let _ = f(&mut |l, i| Ok(needed.stored(l, i).unwrap_or_default()));
        let mut wanted: Vec<(u32, u64)> = needed.0;
        wanted.sort_unstable();
        wanted.dedup();
        let mut map = HashMap::new();
        // One query per batch of nodes (a proof needs O(log n) of them).
        for chunk in wanted.chunks(100) {
            let pairs: Vec<(i64, i64)> =
                chunk.iter().map(|(l, i)| (*l as i64, *i as i64)).collect();
            for ((l, i), h) in fetch_stored(&self.db.pool, &pairs).await? {
                map.insert((l as u32, i as u64), h);
            }
        }
        let mut fetched = Fetched(map);
        f(&mut |l, i| fetched.stored(l, i))
    }

    pub async fn size(&self) -> Result<u64, DbError> {
        Ok(self.db.log_size().await? as u64)
    }

    pub async fn root(&self, size: u64) -> Result<Hash, DbError> {
        if size == 0 {
            use sha2::Digest;
            return Ok(sha2::Sha256::digest([]).into());
        }
        self.with_hashes(|get| merkle::root(&mut Adapter(get), size))
            .await
    }

    /// Signs and records a checkpoint for the current size, unless one exists.
    pub async fn publish(&self) -> Result<LatestCheckpoint, DbError> {
        let size = self.size().await?;
        if let Some(latest) = self.latest().await?
            && latest.size == size
        {
            return Ok(latest);
        }
        let root = self.root(size).await?;
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        let text = cp.text();
        let signed = note::sign(
            &text,
            &self.origin,
            &self.signer.public_bytes(),
            &self.signer.sign_raw(text.as_bytes()),
        );
        self.db
            .insert_checkpoint(size as i64, &B64.encode(root), &signed)
            .await?;
        Ok(self
            .latest()
            .await?
            .unwrap_or(LatestCheckpoint { size, note: signed }))
    }

    pub async fn latest(&self) -> Result<Option<LatestCheckpoint>, DbError> {
        Ok(self
            .db
            .latest_checkpoint()
            .await?
            .map(|(size, note)| LatestCheckpoint {
                size: size as u64,
                note,
            }))
    }

    /// The inclusion proof of the newest entry for `archive_id` against the latest checkpoint.
    pub async fn proof_for_case(
        &self,
        archive_id: &str,
    ) -> Result<Option<InclusionProof>, DbError> {
        let Some(index) = self.db.aip_entry_index(archive_id).await? else {
            return Ok(None);
        };
        self.proof_at(index).await
    }

    /// The inclusion proof of the entry for one version of a package (its tag-manifest digest).
    pub async fn proof_for_version(
        &self,
        archive_id: &str,
        tagmanifest_sha256: &str,
    ) -> Result<Option<InclusionProof>, DbError> {
        let entry = super::note::aip_entry(archive_id, tagmanifest_sha256);
        let Some(index) = self.db.entry_index(archive_id, &entry).await? else {
            return Ok(None);
        };
        self.proof_at(index).await
    }

    /// [`Log::proof_for_version`] for many versions against one checkpoint, the tree's nodes
    /// fetched together: a transfer batch of thousands of cases needs thousands of proofs.
    pub async fn proofs_for_versions(
        &self,
        transfer_id: &str,
        versions: &[(&str, &str)],
    ) -> Result<Vec<Option<InclusionProof>>, DbError> {
        // The first entry of each (case, package) pair, as `proof_for_version` finds it.
        let mut first: HashMap<(String, String), i64> = HashMap::new();
        for (a, e, i) in self.db.aip_entries_of_batch(transfer_id).await? {
            let at = first.entry((a, e)).or_insert(i);
            *at = (*at).min(i);
        }
        let indexes: Vec<Option<i64>> = versions
            .iter()
            .map(|(archive_id, tm)| {
                let entry = super::note::aip_entry(archive_id, tm);
                first.get(&(archive_id.to_string(), entry)).copied()
            })
            .collect();
        let Some(max) = indexes.iter().flatten().max().copied() else {
            return Ok(indexes.iter().map(|_| None).collect());
        };
        let mut latest = self.latest().await?;
        if latest.as_ref().is_none_or(|l| l.size <= max as u64) {
            latest = Some(self.publish().await?);
        }
        let Some(cp) = latest else {
            return Ok(indexes.iter().map(|_| None).collect());
        };
        let wanted: Vec<u64> = indexes.iter().flatten().map(|&i| i as u64).collect();
        let mut proofs = self
            .with_hashes(|get| {
                wanted
                    .iter()
                    .map(|&i| merkle::inclusion_proof(&mut Adapter(&mut *get), i, cp.size))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
            .into_iter();
        Ok(indexes
            .iter()
            .map(|i| {
                let index = (*i)? as u64;
                proofs.next().map(|hashes| InclusionProof {
                    index,
                    hashes,
                    checkpoint: cp.note.clone(),
                })
            })
            .collect())
    }

    async fn proof_at(&self, index: i64) -> Result<Option<InclusionProof>, DbError> {
        let index = index as u64;
        let mut latest = self.latest().await?;
        if latest.as_ref().is_none_or(|l| l.size <= index) {
            latest = Some(self.publish().await?);
        }
        let Some(cp) = latest else { return Ok(None) };
        let hashes = self
            .with_hashes(|get| merkle::inclusion_proof(&mut Adapter(get), index, cp.size))
            .await?;
        Ok(Some(InclusionProof {
            index,
            hashes,
            checkpoint: cp.note,
        }))
    }

    pub async fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, DbError> {
        self.with_hashes(|get| merkle::inclusion_proof(&mut Adapter(get), index, size))
            .await
    }

    pub async fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, DbError> {
        self.with_hashes(|get| merkle::consistency_proof(&mut Adapter(get), from, to))
            .await
    }
}

struct Adapter<'a>(&'a mut dyn FnMut(u32, u64) -> Result<Hash, DbError>);
impl Hashes for Adapter<'_> {
    type Error = DbError;
    fn stored(&mut self, level: u32, index: u64) -> Result<Hash, DbError> {
        (self.0)(level, index)
    }
}

/// Checks that the database still agrees with the log and the log with its published checkpoint:
/// every entry's leaf hash is stored, the stored hashes reproduce the latest checkpoint's root,
/// every archived package's entry names a case with that digest, and every case has its entry.
/// Returns the findings (empty: consistent).
pub async fn reconcile(db: &Db, log: &Log) -> Result<Vec<String>, DbError> {
    let mut findings = Vec::new();
    // Entries against their stored leaf hashes, and against the cases they name.
    let mut after = -1i64;
    let mut expected = 0i64;
    let mut logged_cases = std::collections::HashSet::new();
    let mut logged_disposals = std::collections::HashSet::new();
    loop {
        let rows = db.entries_to_check(after, 5000).await?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let idx = r.idx;
            if idx != expected {
                findings.push(format!("log entries {expected}..{idx} are missing"));
            }
            expected = idx + 1;
            after = idx;
            let entry = r.entry;
            let stored = r.leaf_hash;
            if stored.as_deref() != Some(hex::encode(merkle::leaf_hash(entry.as_bytes())).as_str())
            {
                findings.push(format!("log entry {idx} does not match its stored leaf hash: the entry or the tree was rewritten"));
            }
            if r.kind == "aip" {
                let id = r.archive_id.unwrap_or_default();
                match (&r.case_id, &r.case_digest) {
                    (None, _) => findings.push(format!(
                        "log entry {idx} records package {id}, which has no case in the database"
                    )),
                    (Some(_), Some(d)) if super::note::aip_entry(&id, d) == entry => {
                        logged_cases.insert((id, d.clone()));
                    }
                    (Some(_), _) => findings.push(format!(
                        "case {id} in the database does not match log entry {idx}: no version of its package has the digest it names"
                    )),
                }
            } else if r.kind == "disposed"
                && let Some(id) = entry.lines().nth(1)
            {
                logged_disposals.insert(id.to_string());
            }
        }
    }
    // Cases without an entry.
    for (id, status, digest) in db.case_statuses().await? {
        // The newest version's digest, as the case row records it, must be one the log holds.
        if !logged_cases.contains(&(id.clone(), digest)) {
            findings.push(format!(
                "case {id} has no entry in the transparency log for its newest package version"
            ));
        }
        // A case is disposed of only by an execution that logs it; a row marked disposed
        // without that entry was edited.
        if status == "disposed" && !logged_disposals.contains(&id) {
            findings.push(format!(
                "case {id} is marked disposed, but no disposal of it is in the transparency log"
            ));
        }
    }
    // The stored tree reproduces the latest published root.
    if let Some(latest) = log.latest().await? {
        let text = super::note::split(&latest.note)
            .map(|(t, _)| t.to_string())
            .unwrap_or_default();
        match (
            super::note::Checkpoint::parse(&text),
            log.root(latest.size).await,
        ) {
            (Ok(cp), Ok(root)) if root == cp.root => {}
            (Ok(cp), Ok(_)) => findings.push(format!(
                "the stored tree no longer reproduces the published root of size {}",
                cp.size
            )),
            (_, Err(e)) => findings.push(format!(
                "the published checkpoint of size {} cannot be recomputed: {e}",
                latest.size
            )),
            (Err(e), _) => findings.push(format!("the latest checkpoint is unreadable: {e}")),
        }
        if (expected as u64) < latest.size {
            findings.push(format!("the log holds {expected} entries but a checkpoint of size {} was published: it was truncated", latest.size));
        }
    }
    Ok(findings)
}
