//! The documents a filing or a disposal leaves behind: the filing register (归档文件目录) and
//! registration form (归档登记表) of a batch, and the destruction register (销毁清册) of a disposal.
//! Each is written a page of rows at a time (memory does not grow with the case count), hashed
//! with SHA-256 and SM3 while written, and kept in the object store.

use super::Filing;
use super::{Batch, FilingError};
use crate::documents::{DocWriter, Document, csv};
use crate::xml::Doc;

const PAGE: i64 = 2000;

/// Writes the register (XML and CSV) and the registration form of a finished batch.
/// One case as the register lists it.
#[derive(sqlx::FromRow)]
struct RegisterRow {
    archival_code: String,
    archive_id: String,
    project_name: String,
    task_name: String,
    task_code: String,
    project_id: String,
    social_code: String,
    receive_time: String,
    transact_time: String,
    retention: Option<String>,
    security_classification: String,
    file_count: Option<i64>,
    file_bytes: Option<i64>,
    source: String,
    filing_late: i64,
    tagmanifest_sha256: String,
}

/// Writes the register (XML and CSV) and the registration form of a finished batch.
pub async fn write_filing(filing: &Filing, b: &Batch) -> Result<Vec<Document>, FilingError> {
    let prefix = format!("filings/{}/{}", b.year, b.batch_id);
    let fonds = &filing.fonds_code;
    let year = b.year.to_string();
    let mut xml = Doc::new(DocWriter::new(&filing.staging, "register.xml")?)?;
    xml.open(
        "filing_register",
        &[
            ("xmlns", "urn:guidang:filing:1"),
            ("fonds_code", fonds),
            ("year", &year),
            ("batch_id", &b.batch_id),
            ("kind", &b.kind),
        ],
    )?;
    let mut csvw = DocWriter::new(&filing.staging, "register.csv")?;
    // A BOM, so that spreadsheet programs read the Chinese headers and names as UTF-8.
    csvw.put("\u{feff}档号,归档标识,办件名称,事项名称,实施编码,办件编号,统一社会信用代码,受理时间,办结时间,保管期限,密级,文件数,字节数,归档方式,逾期,包摘要算法,包摘要\r\n")?;
    let mut after = String::new();
    let mut n = 0u64;
    loop {
        let rows: Vec<RegisterRow> = sqlx::query_as(
            "SELECT archival_code, archive_id, project_name, task_name, task_code, project_id, social_code, receive_time, \
             transact_time, retention, security_classification, file_count, file_bytes, source, filing_late, tagmanifest_sha256 \
             FROM cases WHERE filing_batch = $1 AND archival_code > $2 ORDER BY archival_code LIMIT $3",
        )
        .bind(&b.batch_id)
        .bind(&after)
        .bind(PAGE)
        .fetch_all(&filing.db.pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.archival_code.clone();
        for r in &rows {
            n += 1;
            let channel = if r.source == "offline" {
                "offline"
            } else {
                "online"
            };
            let late = r.filing_late != 0;
            let (files, bytes) = (
                r.file_count.unwrap_or_default().to_string(),
                r.file_bytes.unwrap_or_default().to_string(),
            );
            let retention = r.retention.clone().unwrap_or_default();
            xml.open(
                "item",
                &[
                    ("archival_code", &r.archival_code),
                    ("archive_id", &r.archive_id),
                ],
            )?
            .text("project_name", &r.project_name)?
            .text("task_name", &r.task_name)?
            .text("task_code", &r.task_code)?
            .text("project_id", &r.project_id)?
            .text("social_code", &r.social_code)?
            .text("receive_time", &r.receive_time)?
            .text("transact_time", &r.transact_time)?
            .text("retention", &retention)?
            .text("security_classification", &r.security_classification)?
            .text("files", &files)?
            .text("bytes", &bytes)?
            .text("channel", channel)?
            .text("late", &late.to_string())?
            .text_with(
                "package_digest",
                &[("algorithm", "SHA-256")],
                &r.tagmanifest_sha256,
            )?
            .close("item")?;
            let fields = [
                r.archival_code.as_str(),
                &r.archive_id,
                &r.project_name,
                &r.task_name,
                &r.task_code,
                &r.project_id,
                &r.social_code,
                &r.receive_time,
                &r.transact_time,
                &retention,
                &r.security_classification,
                &files,
                &bytes,
                channel,
                if late { "是" } else { "否" },
                "SHA-256",
                &r.tagmanifest_sha256,
            ];
            let line: Vec<String> = fields.iter().map(|f| csv(f)).collect();
            csvw.put(&line.join(","))?;
            csvw.put("\r\n")?;
        }
    }
    xml.text("count", &n.to_string())?
        .close("filing_register")?;
    let mut xml = xml.into_inner();
    xml.end_line()?;
    let reg_xml = xml.store(&filing.store, &prefix).await?;
    let reg_csv = csvw.store(&filing.store, &prefix).await?;

    let outcomes = filing.db.batch_check_outcomes(&b.batch_id).await?;
    let codes = super::code_check::check_year(filing, b.year).await?;
    if !codes.form_ok() || !codes.continuity_ok() {
        tracing::warn!(
            year = b.year,
            malformed = codes.malformed,
            gaps = codes.gaps,
            duplicates = codes.duplicates,
            "archival codes of the year fail their check"
        );
    }
    let verdict = |ok: bool| if ok { "pass" } else { "fail" };
    let tz = filing.settings.tz();
    let deadline = super::schedule::deadline(b.year, tz);
    let finished = filing.clock.now();
    let mut form = Doc::new(DocWriter::new(&filing.staging, "form.xml")?)?;
    form.open("filing_registration", &[("xmlns", "urn:guidang:filing:1")])?
        .text("title", "归档登记表")?
        .text("fonds_code", fonds)?
        .text("year", &year)?
        .text("batch_id", &b.batch_id)?
        .text("kind", &b.kind)?
        .text("origin", &b.origin)?
        .text("started_by", &b.started_by)?
        .text("started_at", &b.started_at)?
        .text("finished_at", &crate::db::rfc3339(&finished))?
        .text(
            "deadline",
            &format!("{}-06-30 ({})", b.year + 1, filing.settings.time_zone),
        )?
        .text(
            "on_time",
            &(finished < deadline && b.kind == "regular").to_string(),
        )?
        .text("cases", &b.cases.to_string())?
        .text("files", &b.files.to_string())?
        .text("bytes", &b.bytes.to_string())?
        .text("gigabytes", &format!("{:.3}", b.bytes as f64 / 1e9))?
        .text("online", &b.online.to_string())?
        .text("offline", &b.offline.to_string())?
        .text("late", &b.late.to_string())?
        // How the batch's cases reached the archive: over the network (在线) or imported from
        // media (离线), or both.
        .text_with(
            "carrier",
            &[
                ("online", &b.online.to_string()),
                ("offline", &b.offline.to_string()),
            ],
            match (b.online > 0, b.offline > 0) {
                (true, false) => "在线",
                (false, true) => "离线",
                (true, true) => "在线、离线",
                (false, false) => "",
            },
        )?
        .open(
            "checks",
            &[
                ("standard", "DA/T 70-2018"),
                ("stage", "GD"),
                ("method", filing.settings.check.as_str()),
            ],
        )?
        // Filed (no item failed) is not passed: passed counts only cases whose every item was
        // checked and passed (or did not apply); the rest are counted by the open item.
        .text("filed", &b.cases.to_string())?
        .text("passed", &outcomes.complete.to_string())?
        .text("passed_every_item", &outcomes.complete.to_string())?
        .text_with(
            "open_items",
            &[("result", "not_configured")],
            &outcomes.not_configured.to_string(),
        )?
        .text_with(
            "open_items",
            &[("result", "manual")],
            &outcomes.manual.to_string(),
        )?
        .text_with(
            "open_items",
            &[("result", "not_checked")],
            &outcomes.not_checked.to_string(),
        )?
        .text("refused", &b.refused.to_string())?
        // Over every case of the year coded so far, this batch's included.
        .text_with(
            "archival_code_form",
            &[
                ("cases", &codes.cases.to_string()),
                ("malformed", &codes.malformed.to_string()),
            ],
            verdict(codes.form_ok()),
        )?
        .text_with(
            "item_continuity",
            &[
                ("classes", &codes.classes.to_string()),
                ("gaps", &codes.gaps.to_string()),
                ("duplicates", &codes.duplicates.to_string()),
            ],
            verdict(codes.continuity_ok()),
        )?
        .close("checks")?
        .text("digest_algorithms", "SHA-256 SM3")?;
    for d in [&reg_xml, &reg_csv] {
        form.open(
            "register",
            &[("name", &d.name), ("size", &d.size.to_string())],
        )?
        .text_with("digest", &[("algorithm", "SHA-256")], &d.sha256)?
        .text_with("digest", &[("algorithm", "SM3")], &d.sm3)?
        .close("register")?;
    }
    form.close("filing_registration")?;
    let mut form = form.into_inner();
    form.end_line()?;
    let form = form.store(&filing.store, &prefix).await?;

    // The same form to print and sign (归档登记表), beside the XML.
    let e = crate::documents::html_escape;
    let carrier = match (b.online > 0, b.offline > 0) {
        (true, false) => "在线",
        (false, true) => "离线",
        (true, true) => "在线、离线",
        (false, false) => "",
    };
    let zh = |ok: bool| if ok { "合格" } else { "不合格" };
    let rows: Vec<(&str, String)> = vec![
        ("全宗号", fonds.to_string()),
        ("年度", year.clone()),
        ("批次", format!("{} （{}）", b.batch_id, b.kind)),
        ("归档办件数", b.cases.to_string()),
        ("文件数", b.files.to_string()),
        ("数据量", format!("{:.3} GB", b.bytes as f64 / 1e9)),
        (
            "归档方式",
            format!("{carrier}（在线 {}，离线 {}）", b.online, b.offline),
        ),
        ("逾期归档", b.late.to_string()),
        (
            "检查方法",
            format!("DA/T 70-2018 GD 阶段，{}", filing.settings.check.as_str()),
        ),
        ("全部项目检查合格", outcomes.complete.to_string()),
        (
            "尚待决定的项目",
            format!(
                "未配置 {}，人工 {}，未检查 {}",
                outcomes.not_configured, outcomes.manual, outcomes.not_checked
            ),
        ),
        ("检查未通过（未归档）", b.refused.to_string()),
        (
            "档号格式",
            format!(
                "{}（{} 件，格式错误 {}）",
                zh(codes.form_ok()),
                codes.cases,
                codes.malformed
            ),
        ),
        (
            "件号连续",
            format!(
                "{}（{} 类，缺号 {}，重号 {}）",
                zh(codes.continuity_ok()),
                codes.classes,
                codes.gaps,
                codes.duplicates
            ),
        ),
        (
            "归档期限",
            format!(
                "{}-06-30，{}",
                b.year + 1,
                if finished < deadline && b.kind == "regular" {
                    "按期"
                } else {
                    "逾期或补充"
                }
            ),
        ),
        ("开始", format!("{} {}", b.started_by, b.started_at)),
        ("完成", crate::db::rfc3339(&finished)),
    ];
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>归档登记表</title><style>\
         body{font-family:\"Noto Serif CJK SC\",\"SimSun\",serif;margin:2cm}\
         table{border-collapse:collapse;width:100%;margin-bottom:1em}\
         th,td{border:1px solid #000;padding:4px 6px;text-align:left}th{width:28%;background:#f4f4f4}\
         h1{text-align:center}.seal{height:3cm}code{font-size:9pt;word-break:break-all}\
         </style></head><body>\n<h1>归档登记表</h1>\n<table>\n",
    );
    for (k, v) in &rows {
        h.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k), e(v)));
    }
    for d in [&reg_xml, &reg_csv] {
        h.push_str(&format!(
            "<tr><th>{}</th><td>SHA-256 <code>{}</code><br>SM3 <code>{}</code></td></tr>\n",
            e(&d.name),
            d.sha256,
            d.sm3
        ));
    }
    h.push_str(
        "<tr><th>填表人 / 日期</th><td></td></tr>\n<tr><th>审核人 / 日期</th><td></td></tr>\n\
         <tr><th>单位（印章）</th><td class=\"seal\"></td></tr>\n</table>\n</body></html>\n",
    );
    let mut page = DocWriter::new(&filing.staging, "form.html")?;
    page.put(&h)?;
    let page = page.store(&filing.store, &prefix).await?;
    Ok(vec![reg_xml, reg_csv, form, page])
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        use super::csv;
        assert_eq!(csv("济南市,历下区"), "\"济南市,历下区\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv("GD01-ZY·2025-D30-X-0001"), "GD01-ZY·2025-D30-X-0001");
        assert_eq!(
            csv("2025-01-01T08:00:00+08:00"),
            "2025-01-01T08:00:00+08:00"
        );
    }
}
