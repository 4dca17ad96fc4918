//! Fixity audits and tampering: a stored byte changed behind the service's back, or a database
//! row edited, is found by re-verifying the package where it is stored.

mod common;

use common::*;

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
