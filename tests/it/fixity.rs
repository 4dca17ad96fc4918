//! Fixity audits and tampering: a stored byte changed behind the service's back, or a database
//! row edited, is found by re-verifying the package where it is stored.

use crate::common::*;

async fn verify_now(app: &TestApp, id: &str) -> serde_json::Value {
    let r = app
        .client
        .post(app.url(&format!("/api/v1/cases/{id}/verify")))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

async fn log_size(app: &TestApp) -> u64 {
    let r = app
        .client
        .get(app.url("/api/v1/log/checkpoint"))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    r.text()
        .await
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_stored_byte_and_an_edited_row_are_found() {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let id = b["archive_id"].as_str().unwrap().to_string();

    let a = verify_now(&app, &id).await;
    assert_eq!(a["ok"], true, "{a}");
    assert!(a["bytes"].as_u64().unwrap() > 10_000);
    let passed: Vec<&str> = a["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "pass")
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for c in [
        "payload_digests",
        "signature",
        "log_inclusion",
        "log_checkpoint",
    ] {
        assert!(passed.contains(&c), "{c}: {a}");
    }

    // One byte of a stored file changes behind the service's back.
    let before = log_size(&app).await;
    let pkg = app.stored_packages().pop().unwrap();
    let mut bytes = std::fs::read(&pkg).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"STSong-Light")
        .unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&pkg, &bytes).unwrap();
    let a = verify_now(&app, &id).await;
    assert_eq!(a["ok"], false);
    assert!(a["findings"].to_string().contains("payload_digests"), "{a}");
    assert_eq!(
        log_size(&app).await,
        before + 1,
        "the failure is entered in the log"
    );
    let (_, list) = app
        .get_json(&app.auditor, "/api/v1/audits?failed=true")
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["archive_id"], id.as_str());
    assert!(
        app.metrics()
            .await
            .contains("guidang_fixity_audits_failed_total 1")
    );
    bytes[at] ^= 0x20;
    std::fs::write(&pkg, &bytes).unwrap();
    assert_eq!(verify_now(&app, &id).await["ok"], true, "restored");

    // A database row is edited behind the service's back.
    sqlx::query("UPDATE case_files SET sha256 = $1 WHERE archive_id = $2 AND path = $3")
        .bind("0".repeat(64))
        .bind(&id)
        .bind("files/02-受理通知书.pdf")
        .execute(&app.archive.db().pool)
        .await
        .unwrap();
    let a = verify_now(&app, &id).await;
    assert_eq!(a["ok"], false);
    assert!(
        a["findings"]
            .to_string()
            .contains("files/02-受理通知书.pdf"),
        "{a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_audit_reverifies_stored_packages() {
    let app = TestApp::spawn_with(|s| s.fixity_bytes_per_hour = 1 << 30).await;
    let (s, _) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let (s, _) = app
        .submit(&app.archivist, fixture("valid/with-docx.zip"))
        .await;
    assert_eq!(s, 201);
    let mut audited = 0;
    for _ in 0..300 {
        let (_, list) = app.get_json(&app.auditor, "/api/v1/audits").await;
        let items = list["items"].as_array().unwrap();
        audited = items
            .iter()
            .map(|i| i["archive_id"].as_str().unwrap().to_string())
            .collect::<std::collections::HashSet<_>>()
            .len();
        if audited == 2 {
            assert!(items.iter().all(|i| i["ok"] == true), "{list}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(audited, 2, "both packages re-verified in the background");
}

async fn reconcile(app: &TestApp) -> serde_json::Value {
    let r = app
        .client
        .post(app.url("/api/v1/log/reconcile"))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

async fn two_cases() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        app.submit(&app.archivist, fixture("valid/with-docx.zip"))
            .await
            .0,
        201
    );
    // An auditor has seen the checkpoint of size 2.
    assert!(log_size(&app).await >= 2);
    let r = reconcile(&app).await;
    assert_eq!(r["consistent"], true, "{r}");
    (app, b["archive_id"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_case_row_is_found_by_reconciliation() {
    let (app, id) = two_cases().await;
    for sql in [
        "DELETE FROM case_files WHERE archive_id = $1",
        "DELETE FROM case_events WHERE archive_id = $1",
        "DELETE FROM cases WHERE archive_id = $1",
    ] {
        sqlx::query(sql)
            .bind(&id)
            .execute(&app.archive.db().pool)
            .await
            .unwrap();
    }
    let r = reconcile(&app).await;
    assert_eq!(r["consistent"], false);
    assert!(
        r["findings"]
            .to_string()
            .contains(&format!("records package {id}, which has no case")),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_or_truncated_log_is_found_by_reconciliation() {
    let (app, _) = two_cases().await;
    sqlx::query("UPDATE log_entries SET entry = 'guidang-aip-v1\nforged\n00\n' WHERE idx = 0")
        .execute(&app.archive.db().pool)
        .await
        .unwrap();
    let r = reconcile(&app).await;
    assert!(
        r["findings"]
            .to_string()
            .contains("does not match its stored leaf hash"),
        "{r}"
    );

    let (app, _) = two_cases().await;
    for sql in [
        "DELETE FROM log_hashes WHERE level > 0 OR idx = 1",
        "DELETE FROM log_entries WHERE idx = 1",
    ] {
        sqlx::query(sql)
            .execute(&app.archive.db().pool)
            .await
            .unwrap();
    }
    let r = reconcile(&app).await;
    let f = r["findings"].to_string();
    assert!(
        f.contains("truncated") && f.contains("cannot be recomputed"),
        "{r}"
    );
}

/// The value of a counter in a Prometheus text page.
fn counter(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_audit_each_package_once_and_enter_each_head_once() {
    // Two servers share the database and the store; each periodic job runs on one of them.
    let a = TestApp::spawn_with(|s| {
        s.fixity_bytes_per_hour = 1 << 40;
        s.fixity_min_interval_secs = 3600;
        s.audit_head_every_secs = 1;
    })
    .await;
    let mut s2 = a.archive.settings().clone();
    s2.listen = "127.0.0.1:0".into();
    let b = TestApp::start(tempfile::tempdir().unwrap(), s2).await;
    let mut ids = vec![];
    for i in 0..4 {
        ids.push(
            a.archive_case(&format!("TWO-{i}"), "2025-04-04T10:00:00+08:00", "D30")
                .await,
        );
    }
    // Wait until every package was audited, then two more audit-head periods.
    let mut audited = 0;
    for _ in 0..200 {
        let (_, l) = a.get_json(&a.auditor, "/api/v1/audits?limit=1000").await;
        audited = l["items"].as_array().map_or(0, |v| v.len());
        if audited >= ids.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, l) = a.get_json(&a.auditor, "/api/v1/audits?limit=1000").await;
    let audits = l["items"].as_array().unwrap();
    let mut audited_ids: Vec<&str> = audits
        .iter()
        .map(|x| x["archive_id"].as_str().unwrap())
        .collect();
    audited_ids.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(
        audited_ids, want,
        "each package audited exactly once ({audited})"
    );

    let (ma, mb) = (a.metrics().await, b.metrics().await);
    let per_server = [
        counter(&ma, "guidang_fixity_audits_passed_total"),
        counter(&mb, "guidang_fixity_audits_passed_total"),
    ];
    assert!(
        per_server.contains(&0) && per_server.iter().sum::<u64>() == ids.len() as u64,
        "one server audits, the other does not: {per_server:?}"
    );

    // Each head of the trail is entered once: no two audit-head log entries name the same head.
    use sqlx::Row;
    let heads: Vec<String> = sqlx::query("SELECT entry FROM log_entries WHERE kind = 'audit_head'")
        .fetch_all(&a.archive.db().pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!heads.is_empty(), "the trail's head was entered");
    let mut distinct = heads.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), heads.len(), "{heads:?}");
    let entered = [
        counter(&ma, "guidang_audit_heads_entered_total"),
        counter(&mb, "guidang_audit_heads_entered_total"),
    ];
    assert!(
        entered.contains(&0) && entered.iter().sum::<u64>() == heads.len() as u64,
        "one server enters the heads: {entered:?}, {} entries",
        heads.len()
    );
}
