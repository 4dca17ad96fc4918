//! Hardening (issue 9): each test is one defect found by trying the service as an attacker or an
//! auditor would, pinned through HTTP.

use crate::common::*;
use serde_json::json;

/// Item 9: a body that is present must parse; a destructive default never comes from a body that
/// failed to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reevaluation_sent_as_a_form_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app
        .archive_case("STRICT-1", "2025-04-04T10:00:00+08:00", "D10")
        .await;
    app.put_rules(json!({"rules": [
        {"task_type": "XK", "retention": "Y", "basis": "永久（示例）"}
    ]}))
    .await;
    let r = app
        .client
        .post(app.url("/api/v1/retention/reevaluate"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("dry_run=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let r = app
        .client
        .post(app.url("/api/v1/retention/reevaluate"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{dry_run: true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
        .await;
    assert_ne!(c["retention"], "Y", "nothing was re-evaluated: {c}");

    // A real dry run says what would change and changes nothing; an empty body runs for real.
    let (s, r) = app
        .post_json(
            &app.admin,
            "/api/v1/retention/reevaluate",
            json!({"dry_run": true}),
        )
        .await;
    assert_eq!((s, r["dry_run"].as_bool()), (200, Some(true)), "{r}");
    let r = app
        .client
        .post(app.url("/api/v1/retention/reevaluate"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
        .await;
    assert_eq!(c["retention"], "Y", "{c}");
}

/// Item 10: out-of-range paging is a 400 naming the parameter, not a wrap to page 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_paging_is_refused() {
    let app = TestApp::spawn().await;
    for (path, param) in [
        ("/api/v1/cases?page=9223372036854775807", "page"),
        ("/api/v1/cases?page=0", "page"),
        ("/api/v1/cases?per_page=0", "per_page"),
        ("/api/v1/cases?per_page=100000", "per_page"),
        ("/api/v1/disposal/due?page=9223372036854775807", "page"),
        ("/api/v1/disposal/due?per_page=-1", "per_page"),
    ] {
        let (s, b) = app.get_json(&app.archivist, path).await;
        assert_eq!(s, 400, "{path}: {b}");
        assert!(
            b["message"].as_str().unwrap().starts_with(param),
            "{path}: {b}"
        );
    }
    let (s, b) = app
        .get_json(&app.archivist, "/api/v1/cases?page=2&per_page=10")
        .await;
    assert_eq!((s, b["page"].as_i64()), (200, Some(2)), "{b}");
}
