//! The audit trail: every read of a package and every change, hash-chained, its head entered in
//! the transparency log; a rewritten row is found.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_recorded_chained_and_tamper_evident() {
    // The filing scheduler's first look at the calendar happens at start, in the background;
    // since last year's auto-run day (20 June) has passed it would file the case whenever that
    // look lands, and its trail row would fall among the ones this test orders. Off here.
    let app = TestApp::spawn_with(|s| {
        s.audit_head_every_secs = 1;
        s.filing.auto_run_on = guidang::config::OptionalDay(None);
    })
    .await;
    let (s, b) = app
        .submit(&app.submitter, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let id = b["archive_id"].as_str().unwrap().to_string();
    assert_eq!(
        app.submit(&app.submitter, fixture("valid/food-licence.zip"))
            .await
            .0,
        200
    );
    assert_eq!(
        app.submit(
            &app.submitter,
            fixture("bad/encrypted_file-user-password.zip")
        )
        .await
        .0,
        422
    );
    assert_eq!(
        app.get_bytes(&app.archivist, &format!("/api/v1/cases/{id}/package"))
            .await
            .0,
        200
    );
    assert_eq!(
        app.get_bytes(
            &app.archivist,
            &format!("/api/v1/cases/{id}/files/metadata.xml")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        app.get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
            .await
            .0,
        200
    );
    let out = std::process::Command::new(bin())
        .arg("import")
        .arg(fixtures().join("valid/with-docx.zip"))
        .env("GUIDANG_DATA_DIR", app.dir.path())
        .env("DATABASE_URL", app.archive.settings().database_url())
        .env("USER", "档案员")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    assert_eq!(
        app.get_json(&app.archivist, "/api/v1/audit").await.0,
        403,
        "auditors and admins only"
    );
    let (s, t) = app.get_json(&app.auditor, "/api/v1/audit").await;
    assert_eq!(s, 200);
    assert_eq!(t["chain"]["intact"], true, "{t}");
    let actions: Vec<(String, String, String)> = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap().into(),
                i["target"].as_str().unwrap().into(),
                i["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Exactly one row per action, oldest first (the API lists newest first); the imported
    // case's id is the import row's own target.
    let imported = actions.first().map(|a| a.1.clone()).unwrap_or_default();
    let mut oldest_first = actions.clone();
    oldest_first.reverse();
    let want: Vec<(String, String, String)> = [
        ("submit", id.as_str(), "201 archived"),
        ("submit", id.as_str(), "200 identical"),
        ("submit", "-", "422 rejected"),
        ("read_package", id.as_str(), "200"),
        ("read_file", id.as_str(), "200"),
        ("read_case", id.as_str(), "200"),
        ("import", imported.as_str(), "archived"),
    ]
    .into_iter()
    .map(|(a, t, o)| (a.to_string(), t.to_string(), o.to_string()))
    .collect();
    assert_eq!(oldest_first, want);
    assert_ne!(imported, id);
    let text = t.to_string();
    for private in ["王小明", "370102199001011234", "申请书"] {
        assert!(
            !text.contains(private),
            "no personal data or file names in the trail"
        );
    }
    let (_, only) = app
        .get_json(
            &app.auditor,
            &format!("/api/v1/audit?action=read_package&target={id}"),
        )
        .await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);

    // The head reaches the transparency log.
    let mut entered = 0i64;
    for _ in 0..50 {
        use sqlx::Row;
        entered = sqlx::query("SELECT COUNT(*) FROM log_entries WHERE kind = 'audit_head'")
            .fetch_one(&app.archive.db().pool)
            .await
            .unwrap()
            .get(0);
        if entered > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(entered > 0, "the trail's head is entered in the log");

    // A row rewritten behind the service's back breaks the chain at that row.
    sqlx::query("UPDATE audit_trail SET outcome = '200 identical' WHERE seq = 0")
        .execute(&app.archive.db().pool)
        .await
        .unwrap();
    let (_, t) = app.get_json(&app.auditor, "/api/v1/audit").await;
    assert_eq!(t["chain"]["intact"], false);
    assert_eq!(t["chain"]["broken_at"], 0);
}
