//! A data directory written by an earlier release (fixtures/datadir-v0.1, made by
//! scripts/make_datadir_fixture.sh with the commit named in it) still starts, keeps its cases,
//! filing and log, and its packages still verify against the keys published back then. SQLite only:
//! that is what the earlier release wrote; the test runs the same on both suites.

use crate::common::*;
use std::process::Command;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_the_previous_release_starts_and_verifies() {
    let old = fixtures().join("datadir-v0.1");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&old, dir.path());
    let tokens = std::fs::read_to_string(old.join("tokens.txt")).unwrap();
    let token = |role: &str| {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{role} ")))
            .unwrap()
            .to_string()
    };
    let s = guidang::config::Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("guidang.db").display()
        )),
        fixity_bytes_per_hour: 0,
        ..Default::default()
    };
    let app = TestApp::start(dir, s).await;
    let archivist = token("archivist");

    // The tokens of the earlier release still authenticate; its cases are there, filed.
    let (s, list) = app.get_json(&archivist, "/api/v1/cases?year=2025").await;
    assert_eq!((s, list["total"].as_i64()), (200, Some(2)), "{list}");
    for c in list["items"].as_array().unwrap() {
        assert_eq!(c["status"], "filed", "{c}");
        assert!(
            c["archival_code"]
                .as_str()
                .unwrap()
                .starts_with("GD01-ZY·2025-Y-")
        );
    }
    let (s, filing) = app.get_json(&archivist, "/api/v1/filings/2025").await;
    assert_eq!(s, 200, "{filing}");

    // Its packages verify offline against the keys it published then, with their log proofs.
    let trusted = app.dir.path().join("keys.json");
    for c in list["items"].as_array().unwrap() {
        let id = c["archive_id"].as_str().unwrap();
        let (s, pkg) = app
            .get_bytes(&token("archivist"), &format!("/api/v1/cases/{id}/package"))
            .await;
        assert_eq!(s, 200);
        let path = app.dir.path().join(format!("{id}.zip"));
        std::fs::write(&path, pkg).unwrap();
        let out = Command::new(bin())
            .arg("verify")
            .arg(&path)
            .arg("--trusted-keys")
            .arg(&trusted)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let (s, proof) = app
            .get_json(&token("auditor"), &format!("/api/v1/cases/{id}/proof"))
            .await;
        assert_eq!(s, 200, "{proof}");
    }

    // The audit trail written by the earlier release still chains.
    let (s, trail) = app.get_json(&token("auditor"), "/api/v1/audit").await;
    assert_eq!(s, 200);
    assert_eq!(trail["chain"]["intact"], true, "{trail}");

    // And it goes on archiving: the same submission again is recognised, a new one is taken.
    let (s, again) = app
        .submit(&token("submitter"), fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 200, "{again}");
    let (s, new) = app
        .submit(
            &token("submitter"),
            case_zip("UPGRADE-0001", "2026-03-01T10:00:00+08:00", "D30"),
        )
        .await;
    assert_eq!(s, 201, "{new}");
}

/// The migration history of the previous release (its own `schema_migrations` table) moves into
/// sqlx's table once, on this suite's backend, without re-running a migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_migration_history_is_adopted_without_rerunning_anything() {
    use sqlx::{Connection, Executor, Row};
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(dir.path()).await;
    sqlx::any::install_default_drivers();
    {
        // The schema as the previous release left it: every migration applied, recorded its way.
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        conn.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            .await
            .unwrap();
        let mut files: Vec<_> =
            std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
        files.sort();
        for (i, f) in files.iter().enumerate() {
            let sql = std::fs::read_to_string(f).unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO schema_migrations VALUES ($1, $2, '2026-01-01T00:00:00Z')")
                .bind(i as i64 + 1)
                .bind(f.file_stem().unwrap().to_string_lossy().to_string())
                .execute(&mut conn)
                .await
                .unwrap();
        }
        // A row only the old schema had: a re-run of migration 1 would fail on it or lose it.
        conn.execute("INSERT INTO leases (name, owner, until_ms) VALUES ('kept', 'x', 0)")
            .await
            .unwrap();
    }
    let app = TestApp::spawn_with(|s| s.database_url = Some(url.clone())).await;
    let db = &app.archive.db().pool;
    let versions: Vec<i64> = sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());
    assert!(versions.len() >= 6);
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leases WHERE name = 'kept'")
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(kept, 1);
    assert!(
        sqlx::query("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(db)
            .await
            .is_err(),
        "the old table is gone"
    );
    let (s, b) = app
        .submit(&app.submitter, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
}
