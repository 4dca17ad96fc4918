//! Transfer volumes (CONTRACT §6): one BagIt bag per carrier whose `data/` is the national
//! carrier structure — `说明文件.TXT`, `文件目录.XML`, `电子档案/{年度}/{类别}/{档号}/` with each
//! case's package versions exactly as stored, their log proofs and the case's decisions, and
//! `其他/` with `transfer.xml`, `文件目录.CSV`, `登记表.XML`, `checkpoint.txt` and the schemas.
//!
//! Package bytes stream from the store into the volume once, hashed (SHA-256 and SM3) on the way;
//! no package is held in memory. A case is never split: the plan fills volumes in archival-code
//! order, and a case larger than a volume gets one of its own (with a warning).

use std::io::{self, Read};

use crate::db::transfers::{BatchCase, DecisionRow, TransferRow};
use crate::db::versions::VersionRow;
use crate::documents::csv;
use crate::pipeline::digest;
use crate::pipeline::package::{BagInfo, Finished, PackageWriter};
use crate::signing::Signer;
use crate::signing_sm2::Sm2Signer;
use crate::xml::Doc;

/// One case as a volume carries it.
pub struct CaseInput {
    pub case: BatchCase,
    pub decision: DecisionRow,
    pub versions: Vec<VersionRow>,
    /// Per version: its `c2sp.org/tlog-proof@v1` text.
    pub proofs: Vec<(i64, String)>,
}

impl CaseInput {
    pub fn bytes(&self) -> u64 {
        self.versions.iter().map(|v| v.package_size as u64).sum()
    }

    fn code(&self) -> &str {
        self.case
            .archival_code
            .as_deref()
            .unwrap_or(&self.case.archive_id)
    }

    /// `电子档案/{年度}/{类别}/{档号}/`.
    pub fn folder(&self, category: &str, year: i64) -> String {
        format!("电子档案/{year}/{category}/{}/", self.code())
    }
}

/// Splits cases (in the order given) over volumes of at most `volume_size` bytes without
/// splitting a case; returns the volumes (indices into `cases`) and a warning per oversized case.
pub fn plan(cases: &[CaseInput], volume_size: u64) -> (Vec<Vec<usize>>, Vec<String>) {
    let mut volumes: Vec<Vec<usize>> = Vec::new();
    let mut warnings = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut used = 0u64;
    for (i, c) in cases.iter().enumerate() {
        let b = c.bytes();
        if b > volume_size {
            warnings.push(format!(
                "case {} ({} bytes) is larger than a volume ({volume_size} bytes): it has a volume of its own",
                c.case.archive_id, b
            ));
            if !current.is_empty() {
                volumes.push(std::mem::take(&mut current));
                used = 0;
            }
            volumes.push(vec![i]);
            continue;
        }
        if used + b > volume_size && !current.is_empty() {
            volumes.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(i);
        used += b;
    }
    if !current.is_empty() {
        volumes.push(current);
    }
    (volumes, warnings)
}

pub fn volume_name(transfer_id: &str, n: usize) -> String {
    format!("{transfer_id}-{n:03}")
}

/// What a volume is written from.
pub struct VolumeInput<'a> {
    pub transfer: &'a TransferRow,
    pub n: usize,
    pub total: usize,
    pub cases: Vec<&'a CaseInput>,
    /// Every case of the batch (the registration form and counts cover the whole batch).
    pub all_cases: usize,
    pub all_bytes: u64,
    pub fonds_code: &'a str,
    pub category: &'a str,
    pub receiver: &'a str,
    pub checkpoint: &'a str,
    pub signer: &'a Signer,
    pub sm2: Option<&'a Sm2Signer>,
}

fn level_zh(level: &str) -> &'static str {
    match level {
        "internal" => "内部",
        "secret" => "秘密",
        "confidential" => "机密",
        _ => "无",
    }
}

fn date8(t: &str) -> String {
    t.get(..10).unwrap_or(t).replace('-', "")
}

/// Writes volume `inp.n` at `path`. `open` gives a reader of a stored package version.
pub fn write_volume(
    inp: &VolumeInput<'_>,
    path: &std::path::Path,
    mut open: impl FnMut(&VersionRow) -> io::Result<Box<dyn Read>>,
) -> io::Result<Finished> {
    let t = inp.transfer;
    let name = volume_name(&t.transfer_id, inp.n);
    let now = chrono::Utc::now().fixed_offset();
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut pkg = PackageWriter::create(path, &name, &now)?;
    let year = t.year;

    // Every case: its package versions exactly as stored, each proof, its decision.
    copy_packages(inp, &mut pkg, &mut open)?;
    for c in &inp.cases {
        let folder = c.folder(inp.category, year);
        for (v, proof) in &c.proofs {
            pkg.add_payload_bytes(&format!("{folder}v{v}.tlog-proof"), proof.as_bytes())?;
        }
        pkg.add_payload_bytes(
            &format!("{folder}decision.xml"),
            decision_xml(c)?.as_bytes(),
        )?;
    }

    // 文件目录.XML: the standard's elements, then ours.
    let mut d = Doc::in_memory()?;
    d.open("文件目录", &[])?;
    for (i, c) in inp.cases.iter().enumerate() {
        let dec = &c.decision;
        d.open("文件", &[])?
            .text("顺序号", &(i + 1).to_string())?
            .text("档号", c.code())?
            .text("责任者", &c.case.lead_department)?
            .text("题名", &c.case.project_name)?
            .text("日期", &date8(&c.case.transact_time))?
            .text("密级", level_zh(&dec.level))?
            .text("电子档案名称", &c.folder(inp.category, year))?
            .text("备注", "")?
            .text("archive_id", &c.case.archive_id)?
            .text("retention", c.case.retention.as_deref().unwrap_or(""))?
            .text("access", &dec.access)?
            .text("access_reason", dec.access_reason.as_deref().unwrap_or(""))?
            .text(
                "access_until",
                &dec.access_until.map(|y| y.to_string()).unwrap_or_default(),
            )?
            .text("classification", &dec.classification)?
            .text("package_versions", &c.versions.len().to_string())?
            .close("文件")?;
    }
    d.close("文件目录")?;
    pkg.add_payload_bytes("文件目录.XML", d.into_string().as_bytes())?;

    // 文件目录.CSV: the catalogue for spreadsheets (BOM, Chinese headers).
    let mut s = String::from(
        "\u{FEFF}顺序号,档号,责任者,题名,日期,密级,电子档案名称,备注,开放意见,划控原因,划控截止年度,保管期限,档案标识\r\n",
    );
    for (i, c) in inp.cases.iter().enumerate() {
        let dec = &c.decision;
        let row = [
            (i + 1).to_string(),
            c.code().to_string(),
            c.case.lead_department.clone(),
            c.case.project_name.clone(),
            date8(&c.case.transact_time),
            level_zh(&dec.level).to_string(),
            c.folder(inp.category, year),
            String::new(),
            if dec.access == "open" {
                "开放"
            } else {
                "划控"
            }
            .to_string(),
            dec.access_reason.clone().unwrap_or_default(),
            dec.access_until.map(|y| y.to_string()).unwrap_or_default(),
            c.case.retention.clone().unwrap_or_default(),
            c.case.archive_id.clone(),
        ];
        let line: Vec<String> = row.iter().map(|f| csv(f)).collect();
        s.push_str(&line.join(","));
        s.push_str("\r\n");
    }
    pkg.add_payload_bytes("其他/文件目录.CSV", s.as_bytes())?;

    // 说明文件.TXT: the carrier description.
    let bytes: u64 = inp.cases.iter().map(|c| c.bytes()).sum();
    let note = format!(
        "说明文件\r\n\
         移交批次: {tid}\r\n\
         载体编号: {n} / {total}\r\n\
         载体类型: 在线或离线介质（本卷为 BagIt 包，ZIP 封装）\r\n\
         本卷电子档案: {cases} 件, {bytes} 字节 ({gb:.3} GB)\r\n\
         制作单位: 全宗 {fonds}\r\n\
         接收单位: {receiver}\r\n\
         制作时间: {at}\r\n\
         软件环境: guidang {ver}; 任何 BagIt (RFC 8493) 与 ZIP 工具可读\r\n\
         摘要算法: SHA-256, SM3 (manifest-sha256.txt, manifest-sm3.txt)\r\n\
         签名算法: Ed25519 (signature.json){sm2}\r\n",
        tid = t.transfer_id,
        n = inp.n,
        total = inp.total,
        cases = inp.cases.len(),
        gb = bytes as f64 / 1e9,
        fonds = inp.fonds_code,
        receiver = inp.receiver,
        ver = env!("CARGO_PKG_VERSION"),
        sm2 = if inp.sm2.is_some() {
            ", SM2-SM3 (signature-sm2.json)"
        } else {
            ""
        },
    );
    pkg.add_payload_bytes("说明文件.TXT", note.as_bytes())?;

    // 其他/transfer.xml: the batch.
    let mut d = Doc::in_memory()?;
    d.open("transfer", &[("xmlns", "urn:guidang:transfer:1")])?
        .text("transfer_id", &t.transfer_id)?
        .text("year", &t.year.to_string())?
        .text("sender", inp.fonds_code)?
        .text("receiver", inp.receiver)?
        .text("prepared_by", t.prepared_by_name.as_deref().unwrap_or(""))?
        .text("approved_by", t.approved_by_name.as_deref().unwrap_or(""))?
        .text("approved_at", t.approved_at.as_deref().unwrap_or(""))?
        .text(
            "decisions_digest",
            t.approved_digest.as_deref().unwrap_or(""),
        )?
        .text("built_at", &at)?
        .text("cases", &inp.all_cases.to_string())?
        .text("bytes", &inp.all_bytes.to_string())?
        .text("volumes", &inp.total.to_string())?
        .text("volume", &inp.n.to_string())?
        .text("volume_cases", &inp.cases.len().to_string())?
        .text("volume_bytes", &bytes.to_string())?
        .close("transfer")?;
    pkg.add_payload_bytes("其他/transfer.xml", d.into_string().as_bytes())?;

    // 其他/登记表.XML: the registration form's sender half and every package's digests.
    let mut d = Doc::in_memory()?;
    d.open("登记表", &[("xmlns", "urn:guidang:transfer:1")])?
        .text(
            "交接工作名称",
            &format!(
                "全宗 {} {} 年度电子档案移交（{}）",
                inp.fonds_code, t.year, t.transfer_id
            ),
        )?
        .text(
            "内容描述",
            "政务服务办件电子档案（含纸质原件数字化副本）；BagIt 封装，ZIP 容器",
        )?
        .text("移交电子档案数量", &inp.all_cases.to_string())?
        .text("移交数据量", &format!("{:.3}", inp.all_bytes as f64 / 1e9))?
        .text("载体起止顺序号", &format!("1-{}", inp.total))?
        .text("移交载体类型规格", "在线或离线介质")?
        .open("填表人", &[])?
        .text("姓名", t.prepared_by_name.as_deref().unwrap_or(""))?
        .text("日期", &at)?
        .close("填表人")?
        .open("审核人", &[])?
        .text("姓名", t.approved_by_name.as_deref().unwrap_or(""))?
        .text("日期", t.approved_at.as_deref().unwrap_or(""))?
        .close("审核人")?
        .open("摘要", &[])?;
    for c in &inp.cases {
        for v in &c.versions {
            d.open(
                "包",
                &[
                    ("档号", c.code()),
                    ("archive_id", c.case.archive_id.as_str()),
                    ("version", &v.version.to_string()),
                    ("size", &v.package_size.to_string()),
                ],
            )?
            .text_with(
                "digest",
                &[("algorithm", "SHA-256"), ("of", "tagmanifest-sha256.txt")],
                &v.tagmanifest_sha256,
            )?
            .close("包")?;
        }
    }
    d.close("摘要")?.close("登记表")?;
    pkg.add_payload_bytes("其他/登记表.XML", d.into_string().as_bytes())?;
    pkg.add_payload_bytes("其他/checkpoint.txt", inp.checkpoint.as_bytes())?;
    pkg.add_payload_bytes(
        "其他/schemas/case.xsd",
        include_str!("../../schemas/case.xsd").as_bytes(),
    )?;
    pkg.add_payload_bytes(
        "其他/schemas/digitisation.xsd",
        include_str!("../../schemas/digitisation.xsd").as_bytes(),
    )?;

    let info = BagInfo {
        source_organization: inp.fonds_code.to_string(),
        external_identifier: t.transfer_id.clone(),
        bagging_date: now.format("%Y-%m-%d").to_string(),
        extra: vec![
            ("Bag-Count".into(), format!("{} of {}", inp.n, inp.total)),
            ("Guidang-Transfer-Year".into(), t.year.to_string()),
        ],
    };
    pkg.finish(info, inp.signer, inp.sm2, &at)
}

/// Streams every package version of the volume's cases into it: read, CRC, SHA-256 and write on
/// this thread, SM3 on a worker fed through a small pool of buffers. The worker keeps a queue of
/// files rather than finishing each before the next begins: most packages are smaller than one
/// buffer, and waiting for each file's SM3 would put the two hashes back on one core. The SM3
/// digests reach the manifest at the end, which is written last anyway.
fn copy_packages(
    inp: &VolumeInput<'_>,
    pkg: &mut PackageWriter,
    open: &mut impl FnMut(&VersionRow) -> io::Result<Box<dyn Read>>,
) -> io::Result<()> {
    use sha2::Digest as _;
    const BUF: usize = digest::CHUNK;
    const POOL: usize = 8;
    enum Msg {
        Data(Vec<u8>, usize),
        End(usize),
    }
    std::thread::scope(|s| -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(POOL);
        let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(POOL);
        for _ in 0..POOL {
            let _ = free_tx.send(vec![0u8; BUF]);
        }
        let worker = s.spawn(move || {
            let mut done = Vec::new();
            let mut current = sm3::Sm3::new();
            for m in rx {
                match m {
                    Msg::Data(buf, n) => {
                        current.update(&buf[..n]);
                        let _ = free_tx.send(buf);
                    }
                    Msg::End(i) => {
                        let d: [u8; 32] = std::mem::take(&mut current).finalize().into();
                        done.push((i, d));
                    }
                }
            }
            done
        });
        let gone = || io::Error::other("the SM3 worker stopped");
        let copied = (|| -> io::Result<()> {
            for c in &inp.cases {
                let folder = c.folder(inp.category, inp.transfer.year);
                for v in &c.versions {
                    let rel = format!("{folder}v{}.zip", v.version);
                    let offset = pkg.begin_payload(&rel, v.package_size as u64)?;
                    let index = pkg.payload_count();
                    let mut r = open(v)?;
                    let mut sha = sha2::Sha256::new();
                    let mut size = 0u64;
                    loop {
                        let mut buf = free_rx.recv().map_err(|_| gone())?;
                        let n = digest::fill(&mut r, &mut buf)?;
                        sha.update(&buf[..n]);
                        pkg.write(&buf[..n])?;
                        size += n as u64;
                        let last = n < buf.len();
                        tx.send(Msg::Data(buf, n)).map_err(|_| gone())?;
                        if last {
                            break;
                        }
                    }
                    tx.send(Msg::End(index)).map_err(|_| gone())?;
                    if size != v.package_size as u64 {
                        return Err(io::Error::other(format!(
                            "{}: the stored package is {size} bytes, {} were recorded",
                            v.package_key, v.package_size
                        )));
                    }
                    let d = digest::Digests {
                        sha256: sha.finalize().into(),
                        sm3: [0; 32],
                    };
                    pkg.end_payload(&rel, size, d, offset);
                }
            }
            Ok(())
        })();
        drop(tx);
        let sm3s = worker.join().map_err(|_| gone())?;
        copied?;
        for (i, d) in sm3s {
            pkg.set_sm3(i, d);
        }
        Ok(())
    })
}

fn decision_xml(c: &CaseInput) -> io::Result<String> {
    let dec = &c.decision;
    let mut d = Doc::in_memory()?;
    d.open("decision", &[("xmlns", "urn:guidang:transfer:1")])?
        .text("archive_id", &c.case.archive_id)?
        .text("archival_code", c.code())?
        .open("classification", &[("action", dec.classification.as_str())])?
        .text("from", &c.case.security_classification)?
        .text("level", &dec.level)?
        .text("basis", &dec.basis)?
        .close("classification")?
        .open("access", &[("opinion", dec.access.as_str())])?
        .text("reason", dec.access_reason.as_deref().unwrap_or(""))?
        .text(
            "until",
            &dec.access_until.map(|y| y.to_string()).unwrap_or_default(),
        )?
        .text("note", dec.access_note.as_deref().unwrap_or(""))?
        .close("access")?
        .text("source", &dec.source)?
        .text("decided_by", &dec.decided_by)?
        .text("decided_at", &dec.decided_at)?
        .close("decision")?;
    Ok(d.into_string())
}
