//! Synthetic cases for the filing benchmark (not a test): `scripts/bench_filing.sh` runs it.
//!
//!   cargo run --release --example filing_gen -- CASES
//!
//! With `GUIDANG_DATA_DIR` and `DATABASE_URL` as for `guidang`: archives one real case (the
//! fixture, through the ordinary ingest), then inserts CASES rows of year 2025 that copy it —
//! same package, same signature, each with its own archive id, case number, completion time and
//! two file rows — so that the filing's checks read and verify a real stored package each time.

use guidang::app::App;
use guidang::auth::Principal;
use guidang::config::Settings;
use guidang::db::{Bind, bind_all, value_rows};
use guidang::ingest::Outcome;
use guidang::pipeline::unpack::Source;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let settings = Settings::load(None).expect("settings");
    let archive = App::open(settings).await.expect("archive");
    let zip =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/valid/food-licence.zip");
    let agent = Principal::operator("bench");
    let id = match archive.ingest().ingest(Source::Zip(zip), agent).await {
        Ok(Outcome::Created(s)) | Ok(Outcome::Existing(s)) => s.archive_id,
        Err(e) => panic!("the fixture was not archived: {e}"),
    };
    let proto = archive.db().case(&id).await.expect("db").expect("case");
    let started = std::time::Instant::now();
    let cols = guidang::db::cases::CASE_COLUMNS;
    let ncols = cols.split(',').count();
    let per_stmt: usize = std::env::var("GEN_ROWS_PER_STATEMENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut done = 0;
    while done < n {
        let mut tx = archive.db().begin_write().await.expect("begin");
        let end = (done + 20_000).min(n);
        while done < end {
            let rows = per_stmt.min(end - done);
            let mut binds = Vec::with_capacity(rows * ncols);
            let mut files = Vec::with_capacity(rows * 2 * 11);
            for i in done..done + rows {
                let aid = uuid::Uuid::now_v7().to_string();
                let mut c = proto.clone();
                c.archive_id = aid.clone();
                c.project_id = format!("BENCH-{i:08}");
                // Spread over the year, several a minute.
                let t = chrono::DateTime::parse_from_rfc3339("2025-01-01T08:00:00+08:00").unwrap()
                    + chrono::Duration::seconds((i as i64 * 31_000_000) / n as i64);
                c.transact_time = t.to_rfc3339();
                c.year = 2025;
                c.file_count = Some(2);
                c.file_bytes = Some(1341 + 1532);
                binds.extend(guidang::db::cases::case_binds(&c));
                for (k, size) in [("files/a.pdf", 1341), ("files/b.ofd", 1532)] {
                    files.extend([
                        Bind::S(aid.clone()),
                        Bind::S(k.into()),
                        Bind::S("file".into()),
                        Bind::I(size),
                        Bind::S("0".repeat(64)),
                        Bind::S("0".repeat(64)),
                        Bind::S("pdf".into()),
                        Bind::OptS(None),
                        Bind::S("application/pdf".into()),
                        Bind::OptS(None),
                        Bind::I(0),
                    ]);
                }
            }
            let sql = format!(
                "INSERT INTO cases ({cols}) VALUES {}",
                value_rows(rows, ncols)
            );
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
                .execute(&mut *tx)
                .await
                .expect("insert cases");
            for chunk in files.chunks(11 * 1000) {
                let sql = format!(
                    "INSERT INTO case_files (archive_id, path, role, size, sha256, sm3, format, format_version, mime, note, pkg_offset) VALUES {}",
                    value_rows(chunk.len() / 11, 11)
                );
                bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk)
                    .execute(&mut *tx)
                    .await
                    .expect("insert files");
            }
            done += rows;
        }
        tx.commit().await.expect("commit");
    }
    println!(
        "generated {n} synthetic cases of 2025 in {:.1} s (prototype {id})",
        started.elapsed().as_secs_f64()
    );
}
