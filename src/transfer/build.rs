//! Building an approved batch into volumes: planned once (cases in archival-code order, never
//! split), written one volume at a time from the stored packages, each stored and recorded before
//! the next begins, so a build that stopped resumes at the volume it was writing. When every
//! volume is stored, `volumes.xml` (each volume's name, size and tag-manifest SHA-256 and SM3) is
//! signed and stored beside them and the build is entered in the log.

use std::io;
use std::sync::Arc;

use super::volumes::{self, CaseInput, VolumeInput};
use super::{HeldLease, TransferError, Transfers, decisions_digest};
use crate::auth::Principal;
use crate::db::transfers::VolumeRow;
use crate::evidence::trail_event;
use crate::xml::Doc;

/// Default volume size: a BD-R disc (25 GB).
pub const DEFAULT_VOLUME_SIZE: u64 = 25_000_000_000;

/// `25G`, `4.7G`, `700M`, `100K` or bytes (decimal units, as carriers are sold).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mult) = match t.chars().last() {
        Some('G') => (&t[..t.len() - 1], 1e9),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('K') => (&t[..t.len() - 1], 1e3),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num
        .trim_end_matches('B')
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 25G, 4.7G or 700M"))?;
    if v.is_nan() || v <= 0.0 || v * mult < 1.0 {
        return Err(format!("{s:?} is not a positive size"));
    }
    Ok((v * mult) as u64)
}

pub fn object_key(transfer_id: &str, name: &str) -> String {
    format!("transfers/{transfer_id}/{name}")
}

impl Transfers {
    /// Starts building an approved batch (or resumes a build that stopped) in the background.
    /// The decisions and the package version of every case must be those approved.
    pub async fn build(
        &self,
        id: &str,
        volume_size: Option<u64>,
        who: &Principal,
    ) -> Result<super::BatchView, TransferError> {
        let view = self.start_build(id, volume_size, who).await?;
        self.spawn_build(id.to_string());
        Ok(view)
    }

    /// approved → building with the plan (a batch already building is left as it is); the
    /// volumes are written by [`Transfers::spawn_build`] or [`Transfers::build_here`].
    pub async fn start_build(
        &self,
        id: &str,
        volume_size: Option<u64>,
        who: &Principal,
    ) -> Result<super::BatchView, TransferError> {
        let view = self.view(id).await?;
        match view.batch.state.as_str() {
            "approved" => {}
            "building" => {
                self.db.set_build_error(id, None).await?;
                return self.view(id).await;
            }
            other => {
                return Err(TransferError::State(format!(
                    "transfer {id} is {other}; only an approved batch is built"
                )));
            }
        }
        if view.batch.approved_digest.as_deref() != Some(decisions_digest(&view).as_str()) {
            return Err(TransferError::State(format!(
                "transfer {id} changed since it was approved (a package version was added or a decision changed); \
                 record the decisions again and have it approved again"
            )));
        }
        let size = volume_size.unwrap_or(DEFAULT_VOLUME_SIZE);
        // The plan needs sizes only; the proofs are made when the volumes are written.
        let inputs = self.inputs(id, false).await?;
        let (plan, warnings) = volumes::plan(&inputs, size);
        if !self
            .db
            .start_build(id, size as i64, plan.len() as i64, &warnings.join("\n"))
            .await?
        {
            return Err(TransferError::State(format!(
                "transfer {id} changed state meanwhile"
            )));
        }
        self.evidence
            .audit(
                who,
                "transfer_build",
                id,
                &format!("202 {} volume(s)", plan.len()),
            )
            .await;
        self.view(id).await
    }

    /// Every case of the batch with its decision, versions and log proofs.
    async fn inputs(&self, id: &str, with_proofs: bool) -> Result<Vec<CaseInput>, TransferError> {
        let view = self.view(id).await?;
        let mut out = Vec::with_capacity(view.cases.len());
        let mut by_case: std::collections::HashMap<String, Vec<crate::db::versions::VersionRow>> =
            std::collections::HashMap::new();
        for v in self.db.versions_of_batch(id).await? {
            by_case.entry(v.archive_id.clone()).or_default().push(v);
        }
        for line in view.cases {
            let decision = line.decision.ok_or_else(|| {
                TransferError::State(format!("case {} has no decision", line.case.archive_id))
            })?;
            let versions = by_case.remove(&line.case.archive_id).unwrap_or_default();
            out.push(CaseInput {
                case: line.case,
                decision,
                versions,
                proofs: vec![],
            });
        }
        if with_proofs {
            let wanted: Vec<(&str, &str)> = out
                .iter()
                .flat_map(|c| c.versions.iter())
                .map(|v| (v.archive_id.as_str(), v.tagmanifest_sha256.as_str()))
                .collect();
            let mut proofs = self
                .evidence
                .log()
                .proofs_for_versions(id, &wanted)
                .await?
                .into_iter();
            for c in &mut out {
                for v in &c.versions {
                    if let Some(Some(p)) = proofs.next() {
                        c.proofs.push((v.version, p.format()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Runs (or resumes) the build in the background on the server that takes its lease; a
    /// failure is recorded on the batch (`build_error`) and the build resumes at the next start
    /// or the next `POST …/build`.
    pub fn spawn_build(&self, id: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let name = format!("transfer-build:{id}");
            let lease = match HeldLease::take(&me, &name).await {
                Ok(Some(l)) => l,
                // Another server is building it.
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(transfer = %id, error = %e, "cannot take the build lease");
                    return;
                }
            };
            let r = me.run_build(&id, &lease).await;
            lease.release().await;
            if let Err(e) = r {
                tracing::error!(transfer = %id, error = %e, "building the transfer volumes failed; it resumes");
                let _ = me.db.set_build_error(&id, Some(&e.to_string())).await;
            }
        });
    }

    /// Builds here and now (the command line), or waits while another server holds the build.
    pub async fn build_here(&self, id: &str) -> Result<(), TransferError> {
        let name = format!("transfer-build:{id}");
        loop {
            let state = self
                .db
                .transfer(id)
                .await?
                .ok_or_else(|| TransferError::NotFound(id.into()))?
                .state;
            if state != "building" {
                return Ok(());
            }
            if let Some(lease) = HeldLease::take(self, &name).await? {
                let r = self.run_build(id, &lease).await;
                lease.release().await;
                if let Err(e) = &r {
                    let _ = self.db.set_build_error(id, Some(&e.to_string())).await;
                }
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Builds the volumes not yet stored, then volumes.xml.
    async fn run_build(&self, id: &str, lease: &HeldLease) -> Result<(), TransferError> {
        let batch = self
            .db
            .transfer(id)
            .await?
            .ok_or_else(|| TransferError::NotFound(id.into()))?;
        if batch.state != "building" {
            return Ok(());
        }
        let size = batch.volume_size.unwrap_or(DEFAULT_VOLUME_SIZE as i64) as u64;
        let inputs = Arc::new(self.inputs(id, true).await?);
        let (plan, _) = volumes::plan(&inputs, size);
        let done: Vec<i64> = self.db.volumes(id).await?.iter().map(|v| v.n).collect();
        let checkpoint = self
            .evidence
            .log()
            .latest()
            .await?
            .map(|c| c.note)
            .unwrap_or_default();
        let settings = self.versions.settings().clone();
        let all_bytes: u64 = inputs.iter().map(|c| c.bytes()).sum();
        // 准确性 before anything is written: every version's seal (its tag manifest is the one
        // recorded, its signature verifies under a published key), read from the tag files only.
        let published = self.keys.published().await?;
        // Each check is a few small reads and a signature: many at once hide the store's latency.
        use futures_util::StreamExt;
        // By index into the shared inputs: a copy of every version row would cost memory in
        // proportion to the batch.
        let at: Vec<(u32, u32)> = inputs
            .iter()
            .enumerate()
            .flat_map(|(ci, c)| (0..c.versions.len()).map(move |vi| (ci as u32, vi as u32)))
            .collect();
        let (store, all) = (self.store.clone(), inputs.clone());
        let mut checks = futures_util::stream::iter(at)
            .map(move |(ci, vi)| {
                let v = all[ci as usize].versions[vi as usize].clone();
                let reader = store.reader(
                    &v.package_key,
                    v.package_size as u64,
                    tokio::runtime::Handle::current(),
                );
                let (name, keys) = (v.package_key.clone(), published.clone());
                async move {
                    let r = tokio::task::spawn_blocking(move || {
                        crate::verify::verify_reader_depth(
                            &name,
                            Box::new(reader),
                            Some(&keys),
                            None,
                            false,
                        )
                    })
                    .await;
                    (v, r)
                }
            })
            .buffer_unordered(8);
        while let Some((v, r)) = checks.next().await {
            let r = r.map_err(|e| io_err(io::Error::other(e)))?;
            let bad: Vec<String> = r
                .checks
                .iter()
                .filter(|k| k.status == crate::verify::Status::Fail)
                .map(|k| format!("{}: {}", k.check, k.detail))
                .collect();
            if !bad.is_empty()
                || r.tagmanifest_sha256.as_deref() != Some(v.tagmanifest_sha256.as_str())
            {
                return Err(TransferError::State(format!(
                    "case {} version {} does not verify ({}); it cannot be transferred",
                    v.archive_id,
                    v.version,
                    if bad.is_empty() {
                        "its tag manifest is not the one recorded".into()
                    } else {
                        bad.join("; ")
                    }
                )));
            }
        }
        drop(checks);
        let total = plan.len();
        for (i, members) in plan.into_iter().enumerate() {
            let n = i + 1;
            if done.contains(&(n as i64)) {
                continue;
            }
            if lease.lost() {
                return Err(TransferError::State(
                    "another server took over this build".into(),
                ));
            }
            let name = volumes::volume_name(id, n);
            let dir = settings.tmp_dir();
            std::fs::create_dir_all(&dir).map_err(io_err)?;
            let path = dir.join(format!("{name}.{}.zip", uuid::Uuid::now_v7().simple()));
            let staged = tempfile::TempPath::try_from_path(&path).map_err(io_err)?;
            let (inputs2, batch2, checkpoint2, settings2) = (
                inputs.clone(),
                batch.clone(),
                checkpoint.clone(),
                settings.clone(),
            );
            let (signer, sm2) = (self.versions.signer(), self.keys.sm2());
            let store = self.store.clone();
            let handle = tokio::runtime::Handle::current();
            let members2 = members.clone();
            let path2 = path.clone();
            let finished = tokio::task::spawn_blocking(move || -> io::Result<_> {
                let inp = VolumeInput {
                    transfer: &batch2,
                    n,
                    total,
                    cases: members2.iter().map(|&i| &inputs2[i]).collect(),
                    all_cases: inputs2.len(),
                    all_bytes,
                    fonds_code: &settings2.fonds_code,
                    category: &settings2.filing.category,
                    receiver: &settings2.transfer_receiver,
                    checkpoint: &checkpoint2,
                    signer: &signer,
                    sm2: sm2.as_deref(),
                };
                volumes::write_volume(&inp, &path2, |v| {
                    Ok(Box::new(store.reader(
                        &v.package_key,
                        v.package_size as u64,
                        handle.clone(),
                    )))
                })
            })
            .await
            .map_err(|e| io_err(io::Error::other(e)))?
            .map_err(io_err)?;
            let f = finished;
            // A key of its own: a second builder of the same batch (another server, an export
            // at the command line) never overwrites a volume that is recorded.
            let key = object_key(
                id,
                &format!(
                    "{name}-{}.zip",
                    &uuid::Uuid::now_v7().simple().to_string()[20..]
                ),
            );
            self.store
                .commit(&staged, &key)
                .await
                .map_err(|e| TransferError::State(format!("cannot store volume {name}: {e}")))?;
            let row = VolumeRow {
                n: n as i64,
                name,
                package_key: key.clone(),
                size: f.size as i64,
                cases: members.len() as i64,
                bytes: members.iter().map(|&i| inputs[i].bytes() as i64).sum(),
                tagmanifest_sha256: f.tagmanifest_sha256.clone(),
                tagmanifest_sm3: f.tagmanifest_sm3.clone(),
                built_at: crate::db::now_rfc3339(),
            };
            if let Err(e) = self.db.insert_volume(id, &row).await {
                let _ = self.store.delete(&key).await;
                if !e.is_unique_violation() {
                    return Err(e.into());
                }
            }
        }
        // volumes.xml, signed like a package, beside the volumes.
        let vols = self.db.volumes(id).await?;
        let xml = volumes_xml(id, &vols).map_err(io_err)?;
        let at = crate::db::now_rfc3339();
        let sig = self
            .versions
            .signer()
            .sign("volumes.xml", xml.as_bytes(), &at);
        self.put(id, "volumes.xml", xml.as_bytes().to_vec()).await?;
        self.put(
            id,
            "volumes.xml.signature.json",
            serde_json::to_vec_pretty(&sig).unwrap_or_default(),
        )
        .await?;
        if let Some(sm2) = self.keys.sm2() {
            let s = sm2.sign("volumes.xml", xml.as_bytes(), &at);
            self.put(
                id,
                "volumes.xml.signature-sm2.json",
                serde_json::to_vec_pretty(&s).unwrap_or_default(),
            )
            .await?;
        }
        self.write_registration(id, None).await?;
        let digest = crate::pipeline::digest::Digests::of(xml.as_bytes()).sha256_hex();
        let entry = format!("guidang-transfer-v1\n{id}\nbuilt\n{digest}\n");
        let mut tx = self.db.begin_write().await?;
        self.evidence
            .log_on(&mut tx, "transfer", None, &entry)
            .await?;
        self.evidence
            .trail_on(
                &mut tx,
                &trail_event(
                    &Principal::scheduler(),
                    "transfer_built",
                    id,
                    &format!("{} volume(s)", vols.len()),
                ),
            )
            .await?;
        tx.commit().await.map_err(crate::db::DbError::from)?;
        self.evidence.committed();
        self.db.finish_build(id, &at).await?;
        Ok(())
    }

    /// The registration form beside the volumes (XML and printable HTML); with the receiver's
    /// half once a receipt is recorded.
    pub(super) async fn write_registration(
        &self,
        id: &str,
        receiver_half: Option<super::registration::ReceiverHalf>,
    ) -> Result<(), TransferError> {
        use super::registration::{Check, Form};
        let view = self.view(id).await?;
        let settings = self.versions.settings();
        let cases = view.cases.len();
        let all_versions = view.cases.iter().map(|c| c.case.version).sum::<i64>();
        let av = if settings.antivirus.configured() {
            ("not_checked", "病毒在归档时扫描（GD-4-1）；移交时未再扫描")
        } else {
            ("not_configured", "未配置病毒扫描；归档时亦未扫描")
        };
        let sender_checks = vec![
            Check {
                name: "准确性",
                result: "pass".into(),
                method: "每件每个版本的标签清单与记录一致、Ed25519 签名经本馆公钥验证（构建时逐包检查）；载荷摘要由固定性检查保证，最近一次检查失败的办件不得移交".into(),
            },
            Check {
                name: "完整性",
                result: "pass".into(),
                method: format!(
                    "批次 {cases} 件、{all_versions} 个包版本全部装入 {} 个载体，每件含全部版本、日志证明与决定；文件目录与包一一对应",
                    view.volumes.len()
                ),
            },
            Check {
                name: "可用性",
                result: "not_checked".into(),
                method: "格式在归档时识别并按格式策略接收（GD-3-1）；移交时未再识别".into(),
            },
            Check { name: "安全性", result: av.0.into(), method: av.1.into() },
            Check {
                name: "载体外观",
                result: "manual".into(),
                method: "离线介质由人工检查外观与标签；在线移交不适用".into(),
            },
        ];
        let form = Form {
            transfer: &view.batch,
            fonds_code: &settings.fonds_code,
            receiver: &settings.transfer_receiver,
            cases,
            files: view.counts.files,
            digitised_pages: view.counts.digitised_pages,
            bytes: view.volumes.iter().map(|v| v.bytes as u64).sum(),
            volumes: &view.volumes,
            carrier: "BagIt ZIP 卷（在线或离线介质）",
            sender_checks,
            receiver_half,
        };
        let xml = form.xml().map_err(io_err)?;
        self.put(id, "registration.xml", xml.into_bytes()).await?;
        self.put(id, "registration.html", form.html().into_bytes())
            .await
    }

    async fn put(&self, id: &str, name: &str, bytes: Vec<u8>) -> Result<(), TransferError> {
        let dir = self.versions.settings().tmp_dir();
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let path = dir.join(format!("{id}.{name}.{}", uuid::Uuid::now_v7().simple()));
        std::fs::write(&path, &bytes).map_err(io_err)?;
        let staged = tempfile::TempPath::try_from_path(&path).map_err(io_err)?;
        self.store
            .commit(&staged, &object_key(id, name))
            .await
            .map_err(|e| TransferError::State(format!("cannot store {name}: {e}")))
    }

    /// A stored object of a built batch (a volume `{name}.zip`, volumes.xml, its signatures),
    /// streamed.
    pub async fn object(
        &self,
        id: &str,
        name: &str,
    ) -> Result<(u64, crate::storage::ByteStream), TransferError> {
        let volume = self
            .db
            .volumes(id)
            .await?
            .into_iter()
            .find(|v| format!("{}.zip", v.name) == name);
        let key = match volume {
            Some(v) => v.package_key,
            None => object_key(id, name),
        };
        self.store
            .get(&key)
            .await
            .map_err(|_| TransferError::NotFound(format!("{id}/{name}")))
    }

    pub async fn volumes(&self, id: &str) -> Result<Vec<VolumeRow>, TransferError> {
        Ok(self.db.volumes(id).await?)
    }
}

fn io_err(e: io::Error) -> TransferError {
    TransferError::State(format!("building the volumes failed: {e}"))
}

fn volumes_xml(id: &str, vols: &[VolumeRow]) -> io::Result<String> {
    let mut d = Doc::in_memory()?;
    let count = vols.len().to_string();
    d.open(
        "volumes",
        &[
            ("xmlns", "urn:guidang:transfer:1"),
            ("transfer_id", id),
            ("count", &count),
        ],
    )?;
    for v in vols {
        let (n, size, cases, bytes) = (
            v.n.to_string(),
            v.size.to_string(),
            v.cases.to_string(),
            v.bytes.to_string(),
        );
        d.open(
            "volume",
            &[
                ("n", n.as_str()),
                ("name", &format!("{}.zip", v.name)),
                ("size", &size),
                ("cases", &cases),
                ("bytes", &bytes),
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
        .close("volume")?;
    }
    d.close("volumes")?;
    Ok(d.into_string())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("25G"), Ok(25_000_000_000));
        assert_eq!(parse_size("4.7G"), Ok(4_700_000_000));
        assert_eq!(parse_size("700m"), Ok(700_000_000));
        assert_eq!(parse_size("12345"), Ok(12345));
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("lots").is_err());
    }
}
