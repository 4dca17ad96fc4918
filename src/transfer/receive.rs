//! Both ends of an offline transfer. At the archive authority, `receive` checks volumes (the YJ
//! stage of DA/T 70) under the sender keys it pinned, keeps every case whose packages verify in
//! its own store and log (`guidang-received-v1`), refuses the rest with the reason, and answers
//! with a signed receipt. At the sender, `ack` checks the receipt under the authority's pinned key
//! and that it is this batch's, then marks the accepted cases transferred.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{TransferError, Transfers};
use crate::auth::Principal;
use crate::evidence::trail_event;
use crate::signing::{PublicKeyInfo, SignatureFile, verify_signature};
use crate::verify::{self, Status};
use crate::xml::Doc;

pub const RECEIPT: &str = "receipt.xml";
pub const RECEIPT_SIGNATURE: &str = "receipt.xml.signature.json";

#[derive(Debug, Clone, Serialize)]
pub struct YjItem {
    pub code: &'static str,
    pub result: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    pub archive_id: String,
    pub archival_code: String,
    pub volume: String,
    pub accepted: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeOutcome {
    pub name: String,
    pub size: u64,
    pub tagmanifest_sha256: String,
    pub tagmanifest_sm3: String,
    pub accepted: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub transfer_id: String,
    pub volumes: Vec<VolumeOutcome>,
    pub cases: Vec<CaseOutcome>,
    pub checks: Vec<YjItem>,
    pub receipt: PathBuf,
}

impl Received {
    pub fn all_accepted(&self) -> bool {
        self.volumes.iter().all(|v| v.accepted)
            && self.cases.iter().all(|c| c.accepted)
            // A check this archive cannot run (not_configured) fails nothing.
            && self.checks.iter().all(|c| c.result != "fail")
    }
}

/// The checks a volume cannot fail and still be read: then every case in it is refused.
const FATAL: [&str; 6] = [
    "structure",
    "bagit_declaration",
    "tag_manifest",
    "signature",
    "signature_sm2",
    "payload_manifests",
];

fn text_of(xml: &str, tag: &str) -> Option<String> {
    let d = roxmltree::Document::parse(xml).ok()?;
    d.descendants()
        .find(|n| n.tag_name().name() == tag)
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
}

fn read_entry(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut z = zip::ZipArchive::new(io::BufReader::new(f)).map_err(io::Error::other)?;
    let e = z.by_name(name).map_err(io::Error::other)?;
    let mut v = Vec::new();
    e.take(64 << 20).read_to_end(&mut v)?;
    Ok(v)
}

/// A signed document's signature under pinned keys: `Ok(key_id)` or why not.
pub fn check_signed(
    bytes: &[u8],
    sig: &[u8],
    file: &str,
    trusted: &[PublicKeyInfo],
) -> Result<String, String> {
    let s: SignatureFile = serde_json::from_slice(sig)
        .map_err(|e| format!("the signature of {file} is not valid JSON: {e}"))?;
    if s.signed_file != file {
        return Err(format!(
            "the signature is over {}, not {file}",
            s.signed_file
        ));
    }
    let k = trusted
        .iter()
        .find(|k| k.key_id == s.key_id && k.algorithm == "Ed25519")
        .ok_or_else(|| format!("{file} is signed by key {} which is not pinned", s.key_id))?;
    verify_signature(&k.public_key, &s.signature, bytes)?;
    Ok(k.key_id.clone())
}

impl Transfers {
    /// Receives volumes (files, or folders holding them and `volumes.xml`) at the archive
    /// authority; writes the signed receipt into `out`.
    pub async fn receive(
        &self,
        paths: &[PathBuf],
        trusted: &[PublicKeyInfo],
        out: &Path,
        who: &Principal,
    ) -> Result<Received, TransferError> {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut listing: Option<PathBuf> = None;
        for p in paths {
            if p.is_dir() {
                let mut zips: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| TransferError::Invalid(format!("{}: {e}", p.display())))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|q| q.extension().is_some_and(|x| x == "zip"))
                    .collect();
                zips.sort();
                files.extend(zips);
                if p.join("volumes.xml").exists() {
                    listing = Some(p.join("volumes.xml"));
                }
            } else {
                files.push(p.clone());
            }
        }
        if files.is_empty() {
            return Err(TransferError::Invalid("no volume given".into()));
        }
        let mut checks = Vec::new();
        // volumes.xml, where it travels with the volumes: signed, and naming each volume.
        let mut listed: BTreeMap<String, String> = BTreeMap::new();
        if let Some(l) = &listing {
            let bytes = std::fs::read(l).map_err(|e| TransferError::Invalid(e.to_string()))?;
            let sig =
                std::fs::read(l.with_file_name("volumes.xml.signature.json")).unwrap_or_default();
            match check_signed(&bytes, &sig, "volumes.xml", trusted) {
                Ok(k) => checks.push(YjItem {
                    code: "YJ-volumes",
                    result: "pass",
                    detail: format!("volumes.xml signed by pinned key {k}"),
                }),
                Err(e) => checks.push(YjItem {
                    code: "YJ-volumes",
                    result: "fail",
                    detail: e,
                }),
            }
            if let Ok(d) = roxmltree::Document::parse(std::str::from_utf8(&bytes).unwrap_or("")) {
                for v in d.descendants().filter(|n| n.has_tag_name("volume")) {
                    let sha = v
                        .children()
                        .find(|c| {
                            c.has_tag_name("digest") && c.attribute("algorithm") == Some("SHA-256")
                        })
                        .and_then(|c| c.text())
                        .unwrap_or("")
                        .to_string();
                    if let Some(n) = v.attribute("name") {
                        listed.insert(n.trim_end_matches(".zip").to_string(), sha);
                    }
                }
            }
        }
        let mut volumes = Vec::new();
        let mut cases: Vec<CaseOutcome> = Vec::new();
        let mut transfer_id = String::new();
        let mut accepted_pkgs: Vec<(CaseOutcome, Vec<verify::Nested>, PathBuf, String)> =
            Vec::new();
        // What the batch says of itself (transfer.xml) against what arrived.
        let mut declared: Option<(u64, u64, u64)> = None;
        let (mut seen_cases, mut seen_bytes) = (0u64, 0u64);
        for f in &files {
            let (f2, t2) = (f.clone(), trusted.to_vec());
            // Each volume read once: its own bag, then every case package in it, whose files are
            // identified again and judged by this archive's format policy (可用性, 安全性).
            let policy = crate::pipeline::identify::policy(&self.versions.settings().format_policy);
            let (report, nested) = tokio::task::spawn_blocking(move || {
                verify::verify_volume(&f2, Some(&t2), Some(&policy))
            })
            .await
            .map_err(|e| TransferError::Invalid(e.to_string()))?
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
            let name = report.archive_id.clone().unwrap_or_default();
            let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            let tm = read_entry(f, &format!("{name}/tagmanifest-sha256.txt")).unwrap_or_default();
            let digests = crate::pipeline::digest::Digests::of(&tm);
            let mut reason = String::new();
            let fatal: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == Status::Fail && FATAL.contains(&c.check))
                .map(|c| format!("{}: {}", c.check, c.detail))
                .collect();
            if !report.volume {
                reason = "not a transfer volume (no data/其他/transfer.xml)".into();
            } else if !fatal.is_empty() {
                reason = fatal.join("; ");
            } else if let Some(want) = listed.get(&name)
                && *want != digests.sha256_hex()
            {
                reason = format!(
                    "its tag manifest is sha256:{}, volumes.xml names sha256:{want}",
                    digests.sha256_hex()
                );
            }
            let txml = read_entry(f, &format!("{name}/data/其他/transfer.xml"))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let tid = text_of(&txml, "transfer_id").unwrap_or_default();
            let num = |t: &str| text_of(&txml, t).and_then(|v| v.parse::<u64>().ok());
            if let (Some(c), Some(b), Some(v)) = (num("cases"), num("bytes"), num("volumes")) {
                declared.get_or_insert((c, b, v));
            }
            if transfer_id.is_empty() {
                transfer_id = tid.clone();
            } else if !tid.is_empty() && tid != transfer_id && reason.is_empty() {
                reason = format!("belongs to transfer {tid}, not {transfer_id}");
            }
            checks.push(YjItem {
                code: "YJ-volume",
                result: if reason.is_empty() { "pass" } else { "fail" },
                detail: if reason.is_empty() {
                    format!("{name}: structure, both manifests, signature under a pinned key")
                } else {
                    format!("{name}: {reason}")
                },
            });
            // The catalogue says which cases the volume carries.
            let catalogue = read_entry(f, &format!("{name}/data/文件目录.XML"))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let mut rows: Vec<(String, String)> = Vec::new();
            if let Ok(d) = roxmltree::Document::parse(&catalogue) {
                for r in d.descendants().filter(|n| n.tag_name().name() == "文件") {
                    let get = |t: &str| {
                        r.children()
                            .find(|c| c.tag_name().name() == t)
                            .and_then(|c| c.text())
                            .unwrap_or("")
                            .trim()
                            .to_string()
                    };
                    rows.push((get("archive_id"), get("档号")));
                }
            }
            let nested = nested.unwrap_or_default();
            seen_cases += rows.len() as u64;
            seen_bytes += nested.iter().map(|n| n.size).sum::<u64>();
            let mut by_code: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, n) in nested.iter().enumerate() {
                let code = n
                    .rel
                    .trim_end_matches('/')
                    .rsplit('/')
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                by_code.entry(code).or_default().push(i);
            }
            let mut claimed = BTreeSet::new();
            let nested_owned = nested;
            for (archive_id, code) in &rows {
                claimed.insert(code.clone());
                let idx = by_code.get(code).cloned().unwrap_or_default();
                let why = if !reason.is_empty() {
                    format!("volume {name} refused: {reason}")
                } else if idx.is_empty() {
                    "the catalogue lists it but the volume carries no package of it".into()
                } else if let Some(n) = idx
                    .iter()
                    .map(|&i| &nested_owned[i])
                    .find(|n| !n.report.valid)
                {
                    let why: Vec<String> = n
                        .report
                        .checks
                        .iter()
                        .filter(|c| c.status == Status::Fail)
                        .map(|c| format!("{}: {}", c.check, c.detail))
                        .collect();
                    format!("{}: {}", n.rel, why.join("; "))
                } else if let Some(gap) = {
                    // Every version from 1 to the newest: the case is the whole chain.
                    let mut have: Vec<i64> = idx
                        .iter()
                        .map(|&i| nested_owned[i].report.version)
                        .collect();
                    have.sort();
                    (1..=have.last().copied().unwrap_or(0)).find(|v| !have.contains(v))
                } {
                    format!("version {gap} of its package is missing from the volume")
                } else if let Some(n) = idx
                    .iter()
                    .map(|&i| &nested_owned[i])
                    .find(|n| n.report.archive_id.as_deref() != Some(archive_id.as_str()))
                {
                    format!(
                        "{} is the package of {}, not of {archive_id}",
                        n.rel,
                        n.report.archive_id.as_deref().unwrap_or("?")
                    )
                } else {
                    String::new()
                };
                let outcome = CaseOutcome {
                    archive_id: archive_id.clone(),
                    archival_code: code.clone(),
                    volume: name.clone(),
                    accepted: why.is_empty(),
                    reason: why,
                };
                if outcome.accepted {
                    let pkgs: Vec<verify::Nested> = idx
                        .iter()
                        .map(|&i| verify::Nested {
                            rel: nested_owned[i].rel.clone(),
                            start: nested_owned[i].start,
                            size: nested_owned[i].size,
                            report: nested_owned[i].report.clone(),
                        })
                        .collect();
                    accepted_pkgs.push((outcome.clone(), pkgs, f.clone(), name.clone()));
                }
                cases.push(outcome);
            }
            for (code, idx) in &by_code {
                if !claimed.contains(code) {
                    let n = &nested_owned[idx[0]];
                    cases.push(CaseOutcome {
                        archive_id: n.report.archive_id.clone().unwrap_or_default(),
                        archival_code: code.clone(),
                        volume: name.clone(),
                        accepted: false,
                        reason: format!("{} is not in the volume's catalogue", n.rel),
                    });
                }
            }
            volumes.push(VolumeOutcome {
                name,
                size,
                tagmanifest_sha256: digests.sha256_hex(),
                tagmanifest_sm3: digests.sm3_hex(),
                accepted: reason.is_empty(),
                reason,
            });
        }
        for name in listed.keys() {
            if !volumes.iter().any(|v| &v.name == name) {
                checks.push(YjItem {
                    code: "YJ-complete",
                    result: "fail",
                    detail: format!("volumes.xml lists {name}, which was not received"),
                });
            }
        }
        // Keep what is accepted: each package version stored here, the case recorded and logged
        // in one transaction. A case received before (a replayed volume) is not stored twice.
        let signer_key = trusted
            .iter()
            .find(|k| k.algorithm == "Ed25519" && k.purpose == "package")
            .map(|k| k.key_id.clone())
            .unwrap_or_default();
        // Several cases at once: each is a few files synced and a transaction, mostly waiting.
        let mut virus_found: Vec<String> = Vec::new();
        let kept: Vec<(String, String, Result<Option<String>, TransferError>)> = {
            use futures_util::StreamExt;
            let (tid, key) = (transfer_id.as_str(), signer_key.as_str());
            // A case carried twice (two volumes) is kept once, as before: the first one.
            let mut seen = BTreeSet::new();
            let unique: Vec<_> = accepted_pkgs
                .into_iter()
                .filter(|(c, ..)| seen.insert(c.archive_id.clone()))
                .collect();
            futures_util::stream::iter(unique)
                .map(|(c, pkgs, vol, vname)| async move {
                    let (id, volume) = (c.archive_id.clone(), c.volume.clone());
                    let r = self.keep_received(tid, key, c, pkgs, vol, vname).await;
                    (id, volume, r)
                })
                .buffer_unordered(4)
                .collect()
                .await
        };
        for (id, volume, r) in kept {
            if let Some(why) = r? {
                virus_found.push(why.clone());
                if let Some(o) = cases
                    .iter_mut()
                    .find(|o| o.archive_id == id && o.volume == volume)
                {
                    o.accepted = false;
                    o.reason = why;
                }
            }
        }
        match declared {
            Some((c, b, v)) => {
                let ok = c == seen_cases && b == seen_bytes && v == volumes.len() as u64;
                checks.push(YjItem {
                    code: "YJ-counts",
                    result: if ok { "pass" } else { "fail" },
                    detail: format!(
                        "the batch declares {c} case(s), {b} bytes of packages in {v} volume(s); received {seen_cases} case(s), {seen_bytes} bytes in {} volume(s)",
                        volumes.len()
                    ),
                });
            }
            None => checks.push(YjItem {
                code: "YJ-counts",
                result: "fail",
                detail: "no volume carries a readable 其他/transfer.xml with the batch's counts"
                    .into(),
            }),
        }
        // 可用性 and 安全性 at the receiver: every file identified again by this archive's format
        // policy (inside each package's verification), and scanned where a scanner is set up.
        let format_refused: Vec<&CaseOutcome> = cases
            .iter()
            .filter(|c| !c.accepted && c.reason.contains("formats: "))
            .collect();
        checks.push(YjItem {
            code: "YJ-formats",
            result: if format_refused.is_empty() { "pass" } else { "fail" },
            detail: if format_refused.is_empty() {
                "every file of every package identified again from its bytes: none encrypted, every format one this archive keeps".into()
            } else {
                format!(
                    "{} case(s) hold encrypted files or formats this archive does not keep: {}",
                    format_refused.len(),
                    format_refused
                        .iter()
                        .map(|c| c.archive_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        });
        let av = &self.versions.settings().antivirus;
        checks.push(YjItem {
            code: "YJ-virus",
            result: if !av.configured() {
                "not_configured"
            } else if virus_found.is_empty() {
                "pass"
            } else {
                "fail"
            },
            detail: if !av.configured() {
                "no virus scanner is configured at this archive".into()
            } else if virus_found.is_empty() {
                format!(
                    "every package version accepted was scanned by {}",
                    av.engine()
                )
            } else {
                virus_found.join("; ")
            },
        });
        let accepted = cases.iter().filter(|c| c.accepted).count();
        checks.push(YjItem {
            code: "YJ-cases",
            result: if accepted == cases.len() { "pass" } else { "fail" },
            detail: format!(
                "{accepted} of {} case(s) accepted: each package version verifies alone (manifests, signature under a pinned key, log proof) and as a chain",
                cases.len()
            ),
        });
        let xml = receipt_xml(
            &transfer_id,
            &self.versions.settings().fonds_code,
            &volumes,
            &cases,
            &checks,
        )
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
        let at = crate::db::now_rfc3339();
        let sig = self.versions.signer().sign(RECEIPT, xml.as_bytes(), &at);
        std::fs::create_dir_all(out).map_err(|e| TransferError::Invalid(e.to_string()))?;
        let write = |name: &str, b: &[u8]| {
            std::fs::write(out.join(name), b)
                .map_err(|e| TransferError::Invalid(format!("{name}: {e}")))
        };
        write(RECEIPT, xml.as_bytes())?;
        write(
            RECEIPT_SIGNATURE,
            &serde_json::to_vec_pretty(&sig).unwrap_or_default(),
        )?;
        if let Some(sm2) = self.keys.sm2() {
            let s = sm2.sign(RECEIPT, xml.as_bytes(), &at);
            write(
                "receipt.xml.signature-sm2.json",
                &serde_json::to_vec_pretty(&s).unwrap_or_default(),
            )?;
        }
        self.evidence
            .audit(
                who,
                "transfer_receive",
                if transfer_id.is_empty() {
                    "-"
                } else {
                    &transfer_id
                },
                &format!("{accepted} accepted, {} refused", cases.len() - accepted),
            )
            .await;
        Ok(Received {
            transfer_id,
            volumes,
            cases,
            checks,
            receipt: out.join(RECEIPT),
        })
    }

    /// Records a receipt at the sender after checking it: signed by a pinned authority key,
    /// naming this batch and exactly its volumes. Accepted cases become transferred.
    pub async fn ack(
        &self,
        receipt: &Path,
        trusted: &[PublicKeyInfo],
        who: &Principal,
    ) -> Result<(String, usize, usize), TransferError> {
        let bytes = std::fs::read(receipt)
            .map_err(|e| TransferError::Invalid(format!("{}: {e}", receipt.display())))?;
        let sig = std::fs::read(receipt.with_file_name(RECEIPT_SIGNATURE)).map_err(|e| {
            TransferError::Invalid(format!("{RECEIPT_SIGNATURE} beside the receipt: {e}"))
        })?;
        check_signed(&bytes, &sig, RECEIPT, trusted).map_err(TransferError::Invalid)?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| TransferError::Invalid("the receipt is not UTF-8".into()))?;
        let d = roxmltree::Document::parse(&text)
            .map_err(|e| TransferError::Invalid(format!("the receipt is not XML: {e}")))?;
        let tid = text_of(&text, "transfer_id").unwrap_or_default();
        let batch = self.db.transfer(&tid).await?.ok_or_else(|| {
            TransferError::Invalid(format!(
                "the receipt is for transfer {tid:?}, which is not ours"
            ))
        })?;
        if !matches!(batch.state.as_str(), "built" | "transferred") {
            return Err(TransferError::State(format!(
                "transfer {tid} is {}; a receipt is recorded for a built batch",
                batch.state
            )));
        }
        let ours: BTreeMap<String, String> = self
            .db
            .volumes(&tid)
            .await?
            .into_iter()
            .map(|v| (v.name, v.tagmanifest_sha256))
            .collect();
        let theirs: BTreeMap<String, String> = d
            .descendants()
            .filter(|n| n.has_tag_name("volume"))
            .filter_map(|n| {
                let sha = n
                    .children()
                    .find(|c| {
                        c.has_tag_name("digest") && c.attribute("algorithm") == Some("SHA-256")
                    })
                    .and_then(|c| c.text())?;
                Some((n.attribute("name")?.to_string(), sha.to_string()))
            })
            .collect();
        if theirs != ours {
            return Err(TransferError::Invalid(format!(
                "the receipt names volumes {:?}, transfer {tid} was built as {:?}",
                theirs.keys().collect::<Vec<_>>(),
                ours.keys().collect::<Vec<_>>()
            )));
        }
        let in_batch: BTreeSet<String> = self
            .db
            .batch_cases(&tid)
            .await?
            .into_iter()
            .map(|c| c.archive_id)
            .collect();
        let mut accepted = Vec::new();
        let mut refused = 0;
        for c in d.descendants().filter(|n| n.has_tag_name("case")) {
            let id = c.attribute("archive_id").unwrap_or("").to_string();
            if !in_batch.contains(&id) {
                return Err(TransferError::Invalid(format!(
                    "the receipt names case {id}, which is not in transfer {tid}"
                )));
            }
            if c.attribute("result") == Some("accepted") {
                accepted.push(id);
            } else {
                refused += 1;
            }
        }
        let received_at = text_of(&text, "received_at").unwrap_or_else(crate::db::now_rfc3339);
        let key = super::build::object_key(&tid, RECEIPT);
        let dir = self.versions.settings().tmp_dir();
        std::fs::create_dir_all(&dir).map_err(|e| TransferError::Invalid(e.to_string()))?;
        let tmp = dir.join(format!("receipt-{}.xml", uuid::Uuid::now_v7().simple()));
        std::fs::write(&tmp, &bytes).map_err(|e| TransferError::Invalid(e.to_string()))?;
        let staged = tempfile::TempPath::try_from_path(&tmp)
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        self.store
            .commit(&staged, &key)
            .await
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        let digest = crate::pipeline::digest::Digests::of(&bytes).sha256_hex();
        let mut tx = self.db.begin_write().await?;
        crate::db::transfers::record_receipt_on(&mut tx, &tid, &key, &received_at, &accepted)
            .await?;
        self.evidence
            .log_on(
                &mut tx,
                "transfer",
                None,
                &format!("guidang-transfer-v1\n{tid}\nreceipt\n{digest}\n"),
            )
            .await?;
        self.evidence
            .trail_on(
                &mut tx,
                &trail_event(
                    who,
                    "transfer_ack",
                    &tid,
                    &format!("{} accepted, {refused} refused", accepted.len()),
                ),
            )
            .await?;
        tx.commit().await.map_err(crate::db::DbError::from)?;
        self.evidence.committed();
        // The receiver's half of the registration form, from the receipt it signed.
        let yj = |code: &str| {
            d.descendants()
                .filter(|n| n.has_tag_name("check") && n.attribute("code") == Some(code))
                .all(|n| n.attribute("result") == Some("pass"))
        };
        // A receipt from before these checks existed does not name them: not_checked.
        let yj_result = |code: &str| {
            d.descendants()
                .find(|n| n.has_tag_name("check") && n.attribute("code") == Some(code))
                .and_then(|n| n.attribute("result"))
                .unwrap_or("not_checked")
                .to_string()
        };
        use super::registration::{Check, ReceiverHalf};
        let verdict = |ok: bool| if ok { "pass" } else { "fail" }.to_string();
        let half = ReceiverHalf {
            receiver: text_of(&text, "receiver").unwrap_or_default(),
            received_at: received_at.clone(),
            accepted: accepted.len(),
            refused,
            checks: vec![
                Check {
                    name: "准确性",
                    result: verdict(yj("YJ-volume") && yj("YJ-volumes")),
                    method: "接收方逐卷验证 BagIt 清单与签名（已固定的移交方公钥）".into(),
                },
                Check {
                    name: "完整性",
                    result: verdict(yj("YJ-cases") && yj("YJ-complete")),
                    method: "接收方逐件验证包、版本链、日志证明，文件目录与包一一对应".into(),
                },
                Check {
                    name: "可用性",
                    result: yj_result("YJ-formats"),
                    method: "接收方按其格式策略逐文件重新识别格式并检查加密".into(),
                },
                Check {
                    name: "安全性",
                    result: yj_result("YJ-virus"),
                    method: "接收方对每个包版本进行病毒扫描（未配置扫描器时为 not_configured）"
                        .into(),
                },
                Check {
                    name: "载体外观",
                    result: "manual".into(),
                    method: "由接收方人工检查".into(),
                },
            ],
        };
        self.write_registration(&tid, Some(half)).await?;
        Ok((tid, accepted.len(), refused))
    }
}

impl Transfers {
    /// What this archive received, searchable by archival code and transfer.
    pub async fn received(
        &self,
        archival_code: Option<&str>,
        transfer_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<crate::db::transfers::ReceivedRow>, TransferError> {
        Ok(self
            .db
            .received_list(archival_code, transfer_id, limit)
            .await?)
    }
}

fn receipt_xml(
    transfer_id: &str,
    receiver: &str,
    volumes: &[VolumeOutcome],
    cases: &[CaseOutcome],
    checks: &[YjItem],
) -> io::Result<String> {
    let mut d = Doc::in_memory()?;
    d.open("receipt", &[("xmlns", "urn:guidang:receipt:1")])?
        .text("transfer_id", transfer_id)?
        .text("receiver", receiver)?
        .text("received_at", &crate::db::now_rfc3339())?
        .open("volumes", &[])?;
    for v in volumes {
        let size = v.size.to_string();
        d.open(
            "volume",
            &[
                ("name", v.name.as_str()),
                ("size", &size),
                ("result", if v.accepted { "accepted" } else { "refused" }),
            ],
        )?
        .text_with(
            "digest",
            &[("algorithm", "SHA-256"), ("of", "tagmanifest-sha256.txt")],
            &v.tagmanifest_sha256,
        )?
        .text_with(
            "digest",
            &[("algorithm", "SM3"), ("of", "tagmanifest-sha256.txt")],
            &v.tagmanifest_sm3,
        )?
        .text("reason", &v.reason)?
        .close("volume")?;
    }
    let accepted = cases.iter().filter(|c| c.accepted).count().to_string();
    let refused = cases.iter().filter(|c| !c.accepted).count().to_string();
    d.close("volumes")?
        .open("cases", &[("accepted", &accepted), ("refused", &refused)])?;
    for c in cases {
        d.text_with(
            "case",
            &[
                ("archive_id", c.archive_id.as_str()),
                ("archival_code", c.archival_code.as_str()),
                ("volume", c.volume.as_str()),
                ("result", if c.accepted { "accepted" } else { "refused" }),
            ],
            &c.reason,
        )?;
    }
    d.close("cases")?
        .open("checks", &[("stage", "YJ"), ("standard", "DA/T 70-2018")])?;
    for c in checks {
        d.text_with(
            "check",
            &[("code", c.code), ("result", c.result)],
            &c.detail,
        )?;
    }
    d.close("checks")?.close("receipt")?;
    Ok(d.into_string())
}

impl Transfers {
    /// Keeps one accepted case: every version copied out of its volume (and scanned), stored,
    /// then the case recorded and logged in one transaction. `Some(reason)` when a scan refuses
    /// it; nothing is stored then.
    async fn keep_received(
        &self,
        transfer_id: &str,
        signer_key: &str,
        c: CaseOutcome,
        pkgs: Vec<verify::Nested>,
        vol: PathBuf,
        vname: String,
    ) -> Result<Option<String>, TransferError> {
        if self
            .db
            .received(transfer_id, &c.archive_id)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        // Every version copied out of the volume (and scanned, where a scanner is
        // configured) before any is stored: an infected version refuses the whole case.
        let antivirus = self.versions.settings().antivirus.clone();
        let mut staged = Vec::new();
        let mut infected = None;
        for n in &pkgs {
            let dir = self.versions.settings().tmp_dir();
            std::fs::create_dir_all(&dir).map_err(|e| TransferError::Invalid(e.to_string()))?;
            let tmp = dir.join(format!("recv-{}.zip", uuid::Uuid::now_v7().simple()));
            let path = tempfile::TempPath::try_from_path(&tmp)
                .map_err(|e| TransferError::Invalid(e.to_string()))?;
            let (vol2, tmp2, start, size) = (vol.clone(), tmp.clone(), n.start, n.size);
            let av = antivirus.clone();
            let verdict = tokio::task::spawn_blocking(move || -> io::Result<Option<String>> {
                let w = crate::pipeline::Window::new(std::fs::File::open(&vol2)?, start, size);
                let mut r = io::BufReader::with_capacity(1 << 16, w);
                let mut o = std::fs::File::create(&tmp2)?;
                io::copy(&mut r, &mut o)?;
                o.sync_all()?;
                if !av.configured() {
                    return Ok(None);
                }
                let mut f = io::BufReader::with_capacity(1 << 16, std::fs::File::open(&tmp2)?);
                Ok(match av.scan(&mut f) {
                    Ok(crate::evidence::antivirus::Verdict::Clean) => None,
                    Ok(crate::evidence::antivirus::Verdict::Infected(v)) => {
                        Some(format!("virus {v} found"))
                    }
                    Err(e) => Some(format!("the virus scan failed: {e}")),
                })
            })
            .await
            .map_err(|e| TransferError::Invalid(e.to_string()))?
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
            if let Some(why) = verdict {
                infected = Some(format!("{}: {why}", n.rel));
                break;
            }
            staged.push((n, path));
        }
        if infected.is_some() {
            return Ok(infected);
        }
        let mut keys = Vec::new();
        for (n, path) in staged {
            let file = n.rel.rsplit('/').next().unwrap_or("v1.zip").to_string();
            let key = format!("received/{transfer_id}/{}/{file}", c.archive_id);
            self.store
                .commit(&path, &key)
                .await
                .map_err(|e| TransferError::Invalid(e.to_string()))?;
            keys.push(key);
        }
        let newest = pkgs
            .iter()
            .max_by_key(|n| n.report.version)
            .and_then(|n| n.report.tagmanifest_sha256.clone())
            .unwrap_or_default();
        let at = crate::db::now_rfc3339();
        let entry = format!(
            "guidang-received-v1\n{transfer_id}\n{}\n{newest}\n",
            c.archive_id
        );
        let mut tx = self.db.begin_write().await?;
        crate::db::transfers::insert_received_on(
            &mut tx,
            &crate::db::transfers::ReceivedRow {
                transfer_id: transfer_id.to_string(),
                archive_id: c.archive_id.clone(),
                archival_code: c.archival_code.clone(),
                sender_key_id: signer_key.to_string(),
                volume: vname,
                versions: pkgs.len() as i64,
                newest_sha256: newest,
                keys_json: serde_json::to_string(&keys).unwrap_or_default(),
                received_at: at,
            },
        )
        .await?;
        self.evidence
            .log_on(&mut tx, "received", Some(&c.archive_id), &entry)
            .await?;
        tx.commit().await.map_err(crate::db::DbError::from)?;
        self.evidence.committed();
        Ok(None)
    }
}
