//! The documents a filing or a disposal leaves behind: the filing register (归档文件目录) and
//! registration form (归档登记表) of a batch, and the destruction register (销毁清册) of a disposal.
//! Each is written a page of rows at a time (memory does not grow with the case count), hashed
//! with SHA-256 and SM3 while written, and kept in the object store.

use sqlx::Row;

use super::Filing;
use super::{Batch, FilingError};
use crate::documents::{DocWriter, Document, csv};
use crate::xml::esc;

const PAGE: i64 = 2000;

/// Writes the register (XML and CSV) and the registration form of a finished batch.
pub async fn write_filing(filing: &Filing, b: &Batch) -> Result<Vec<Document>, FilingError> {
    let prefix = format!("filings/{}/{}", b.year, b.batch_id);
    let fonds = &filing.fonds_code;
    let mut xml = DocWriter::new(&filing.staging.clone(), "register.xml")?;
    let mut csvw = DocWriter::new(&filing.staging.clone(), "register.csv")?;
    xml.put(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filing_register xmlns=\"urn:guidang:filing:1\" fonds_code=\"{}\" year=\"{}\" batch_id=\"{}\" kind=\"{}\">\n",
        esc(fonds), b.year, esc(&b.batch_id), b.kind
    ))?;
    // A BOM, so that spreadsheet programs read the Chinese headers and names as UTF-8.
    csvw.put("\u{feff}档号,归档标识,办件名称,事项名称,实施编码,办件编号,统一社会信用代码,受理时间,办结时间,保管期限,密级,文件数,字节数,归档方式,逾期,包摘要算法,包摘要\r\n")?;
    let mut after = String::new();
    let mut n = 0u64;
    loop {
        let rows = sqlx::query(
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
        after = last.get(0);
        for r in &rows {
            n += 1;
            let s = |i: usize| r.get::<Option<String>, _>(i).unwrap_or_default();
            let i = |i: usize| r.get::<Option<i64>, _>(i).unwrap_or_default();
            let channel = if s(13) == "offline" {
                "offline"
            } else {
                "online"
            };
            let late = i(14) != 0;
            xml.put(&format!(
                "  <item archival_code=\"{}\" archive_id=\"{}\">\n    <project_name>{}</project_name>\n    <task_name>{}</task_name>\n    <task_code>{}</task_code>\n    <project_id>{}</project_id>\n    <social_code>{}</social_code>\n    <receive_time>{}</receive_time>\n    <transact_time>{}</transact_time>\n    <retention>{}</retention>\n    <security_classification>{}</security_classification>\n    <files>{}</files>\n    <bytes>{}</bytes>\n    <channel>{channel}</channel>\n    <late>{late}</late>\n    <package_digest algorithm=\"SHA-256\">{}</package_digest>\n  </item>\n",
                esc(&s(0)), esc(&s(1)), esc(&s(2)), esc(&s(3)), esc(&s(4)), esc(&s(5)), esc(&s(6)),
                esc(&s(7)), esc(&s(8)), esc(&s(9)), esc(&s(10)), i(11), i(12), s(15)
            ))?;
            let fields = [
                s(0),
                s(1),
                s(2),
                s(3),
                s(4),
                s(5),
                s(6),
                s(7),
                s(8),
                s(9),
                s(10),
                i(11).to_string(),
                i(12).to_string(),
                channel.to_string(),
                if late { "是" } else { "否" }.to_string(),
                "SHA-256".to_string(),
                s(15),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv(f)).collect();
            csvw.put(&line.join(","))?;
            csvw.put("\r\n")?;
        }
    }
    xml.put(&format!("  <count>{n}</count>\n</filing_register>\n"))?;
    let reg_xml = xml.store(&filing.store, &prefix).await?;
    let reg_csv = csvw.store(&filing.store, &prefix).await?;

    let tz = filing.settings.tz();
    let deadline = super::schedule::deadline(b.year, tz);
    let finished = filing.clock.now();
    let mut form = DocWriter::new(&filing.staging.clone(), "form.xml")?;
    let el = |name: &str, v: &str| format!("  <{name}>{}</{name}>\n", esc(v));
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filing_registration xmlns=\"urn:guidang:filing:1\">\n  <title>归档登记表</title>\n",
    );
    x += &el("fonds_code", fonds);
    x += &el("year", &b.year.to_string());
    x += &el("batch_id", &b.batch_id);
    x += &el("kind", &b.kind);
    x += &el("origin", &b.origin);
    x += &el("started_by", &b.started_by);
    x += &el("started_at", &b.started_at);
    x += &el("finished_at", &crate::db::rfc3339(&finished));
    x += &el(
        "deadline",
        &format!("{}-06-30 ({})", b.year + 1, filing.settings.time_zone),
    );
    x += &el(
        "on_time",
        &(finished < deadline && b.kind == "regular").to_string(),
    );
    x += &el("cases", &b.cases.to_string());
    x += &el("files", &b.files.to_string());
    x += &el("bytes", &b.bytes.to_string());
    x += &el("gigabytes", &format!("{:.3}", b.bytes as f64 / 1e9));
    x += &el("online", &b.online.to_string());
    x += &el("offline", &b.offline.to_string());
    x += &el("late", &b.late.to_string());
    x += &el("carrier", "online");
    x += &format!(
        "  <checks standard=\"DA/T 70-2018\" stage=\"GD\" method=\"{}\">\n    <passed>{}</passed>\n    <refused>{}</refused>\n  </checks>\n",
        esc(filing.settings.check.as_str()),
        b.cases,
        b.refused
    );
    x += "  <digest_algorithms>SHA-256 SM3</digest_algorithms>\n";
    for d in [&reg_xml, &reg_csv] {
        x += &format!(
            "  <register name=\"{}\" size=\"{}\">\n    <digest algorithm=\"SHA-256\">{}</digest>\n    <digest algorithm=\"SM3\">{}</digest>\n  </register>\n",
            d.name, d.size, d.sha256, d.sm3
        );
    }
    x += "</filing_registration>\n";
    form.put(&x)?;
    let form = form.store(&filing.store, &prefix).await?;
    Ok(vec![reg_xml, reg_csv, form])
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
