//! Lawful disposal: due cases, holds, the four-eyes rule, execution, tombstones and the
//! destruction register; and no other way to delete.

use std::sync::Arc;

use crate::common::*;
use guidang::clock::ManualClock;
use serde_json::json;

#[tokio::test]
async fn disposal_needs_a_due_case_an_approval_by_another_admin_and_no_hold() {
    let clock = Arc::new(ManualClock::new(shanghai("2026-03-01T09:00:00")));
    let app = TestApp::spawn_clocked(clock.clone(), |_| {}).await;
    let rules = json!({"rules": [
        {"task_type": "XK", "retention": "D10", "basis": "许可类办件 10 年（示例依据）"},
        {"task_code": "PERMANENT*", "retention": "Y", "basis": "示例"},
    ]});
    app.put_rules(rules).await;
    // D10 cases of 2012 (term ran to the end of 2022: due) and of 2020 (not yet).
    let a = app
        .archive_case("D-A", "2012-05-05T10:00:00+08:00", "D10")
        .await;
    let b = app
        .archive_case("D-B", "2012-06-06T10:00:00+08:00", "D10")
        .await;
    let c = app
        .archive_case("D-C", "2012-07-07T10:00:00+08:00", "D10")
        .await;
    let young = app
        .archive_case("D-YOUNG", "2020-07-07T10:00:00+08:00", "D10")
        .await;
    let (s, f) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2012}))
        .await;
    assert_eq!((s, f["cases"].as_i64()), (201, Some(3)), "{f}");

    let (_, due) = app.get_json(&app.archivist, "/api/v1/disposal/due").await;
    let due_ids: Vec<&str> = due["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["archive_id"].as_str().unwrap())
        .collect();
    assert_eq!(due["total"], 3, "{due}");
    assert!(due_ids.contains(&a.as_str()) && !due_ids.contains(&young.as_str()));
    assert_eq!(due["items"][0]["term_ended"], "2022-12-31");

    // A hold (with a reason) blocks the proposal; so does a case whose term has not run.
    let (s, _) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/cases/{a}/holds"),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(s, 400, "a hold needs a reason");
    let (s, hold) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/cases/{a}/holds"),
            json!({"reason": "行政复议进行中"}),
        )
        .await;
    assert_eq!(s, 201, "{hold}");
    let item = |id: &str| json!({"archive_id": id, "appraisal": "保管期满，无继续保存价值"});
    let (s, body) = app
        .post_json(
            &app.archivist,
            "/api/v1/disposal/lists",
            json!({"opinion": "2012 年到期许可办件", "cases": [item(&a), item(&b), item(&young)]}),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (422, Some("not_disposable")),
        "{body}"
    );
    let reasons: Vec<(String, String)> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["archive_id"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{body}");
    assert!(reasons.iter().any(|(id, m)| id == &a && m.contains("hold")));
    assert!(
        reasons
            .iter()
            .any(|(id, m)| id == &young && m.contains("not run"))
    );
    let (s, _) = app
        .post_json(
            &app.admin,
            "/api/v1/disposal/lists",
            json!({"opinion": "x", "cases": [item(&b)]}),
        )
        .await;
    assert_eq!(s, 403, "archivists propose");

    let (s, list) = app
        .post_json(
            &app.archivist,
            "/api/v1/disposal/lists",
            json!({"opinion": "2012 年到期许可办件", "cases": [item(&b), item(&c)]}),
        )
        .await;
    assert_eq!(s, 201, "{list}");
    let lid = list["list_id"].as_str().unwrap().to_string();

    // Not executable before approval; not approvable by the proposer, by a non-admin, or by an
    // admin token in the proposer's name.
    let (s, body) = app
        .post_json(
            &app.admin,
            &format!("/api/v1/disposal/lists/{lid}/execute"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("wrong_state")),
        "{body}"
    );
    let (s, _) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/disposal/lists/{lid}/decision"),
            json!({"approve": true}),
        )
        .await;
    assert_eq!(s, 403);
    let (same_name, _) =
        guidang::auth::create_token(app.archive.db(), "admin", None, Some("archivist"))
            .await
            .unwrap();
    let (s, body) = app
        .post_json(
            &same_name,
            &format!("/api/v1/disposal/lists/{lid}/decision"),
            json!({"approve": true}),
        )
        .await;
    assert_eq!(s, 403, "four eyes: {body}");
    assert!(body["message"].as_str().unwrap().contains("proposer"));
    let (s, approved) = app
        .post_json(
            &app.admin,
            &format!("/api/v1/disposal/lists/{lid}/decision"),
            json!({"approve": true, "note": "同意销毁"}),
        )
        .await;
    assert_eq!(
        (s, approved["state"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    let (s, _) = app
        .post_json(
            &app.admin,
            &format!("/api/v1/disposal/lists/{lid}/decision"),
            json!({"approve": false}),
        )
        .await;
    assert_eq!(s, 409, "decided once");

    // A hold placed after the approval still protects its case at execution.
    let (s, _) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/cases/{c}/holds"),
            json!({"reason": "审计调阅"}),
        )
        .await;
    assert_eq!(s, 201);
    // Case b has a second package version (scans of its paper originals): disposal takes both.
    let (s, added) = crate::digitised::post_scans(
        &app,
        &app.archivist,
        &b,
        crate::digitised::scans_zip("jpeg-ok"),
    )
    .await;
    assert_eq!(s, 201, "{added}");
    let of_b = |app: &TestApp| {
        app.stored_packages()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(b.as_str()))
            .count()
    };
    assert_eq!(of_b(&app), 2);
    let stored_before = app.stored_packages().len();
    let (s, done) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/disposal/lists/{lid}/execute"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, done["state"].as_str()),
        (200, Some("executed")),
        "{done}"
    );
    let outcome = |id: &str| {
        done["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["archive_id"] == id)
            .unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(outcome(&b), "destroyed");
    assert!(
        outcome(&c).starts_with("kept") && outcome(&c).contains("hold"),
        "{done}"
    );
    assert_eq!(
        app.stored_packages().len(),
        stored_before - 2,
        "exactly one case's packages destroyed, every version"
    );
    assert_eq!(of_b(&app), 0);

    // The tombstone: metadata, digests and the approval trail remain; the content is gone.
    let (s, tomb) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{b}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(tomb["status"], "disposed");
    assert_eq!(tomb["disposal"]["list_id"], lid.as_str());
    // The submission's 7 files and the 3 scans with their declaration.
    assert_eq!(tomb["files"].as_array().unwrap().len(), 11, "{tomb}");
    assert_eq!(tomb["versions"].as_array().unwrap().len(), 2, "{tomb}");
    assert!(tomb["files"][0]["sha256"].as_str().unwrap().len() == 64);
    assert!(
        tomb["archival_code"]
            .as_str()
            .unwrap()
            .starts_with("GD01-ZY·2012-D10-")
    );
    let (s, gone) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{b}/package"))
        .await;
    assert_eq!((s, gone["error"].as_str()), (410, Some("gone")), "{gone}");
    let (s, _) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{c}/package"))
        .await;
    assert_eq!(s, 200, "the held case is intact");

    // The destruction register names what was destroyed, when and on whose authority.
    let docs = done["documents"].as_array().unwrap();
    let csv_doc = docs.iter().find(|d| d["name"] == "register.csv").unwrap();
    let (s, bytes) = app
        .get_bytes(
            &app.auditor,
            &format!("/api/v1/disposal/lists/{lid}/register.csv"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&bytes), csv_doc["sha256"].as_str().unwrap());
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.contains(&b) && text.contains("destroyed") && text.contains("保管期满"),
        "{text}"
    );
    let (_, xml) = app
        .get_bytes(
            &app.auditor,
            &format!("/api/v1/disposal/lists/{lid}/register.xml"),
        )
        .await;
    let xml = String::from_utf8(xml).unwrap();
    assert!(
        xml.contains("<approved_by>admin</approved_by>")
            && xml.contains("<proposed_by>archivist</proposed_by>"),
        "{xml}"
    );
    assert!(xml.contains("<decision_note>同意销毁</decision_note>"));

    // The log agrees with the database; a case marked disposed behind the service's back does not.
    let (s, r) = app
        .post_json(&app.auditor, "/api/v1/log/reconcile", json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["findings"], json!([]), "{r}");
    sqlx::query("UPDATE cases SET status = 'disposed' WHERE archive_id = $1")
        .bind(&a)
        .execute(&app.archive.db().pool)
        .await
        .unwrap();
    let (_, r) = app
        .post_json(&app.auditor, "/api/v1/log/reconcile", json!({}))
        .await;
    assert!(
        r["findings"].to_string().contains("no disposal of it"),
        "{r}"
    );
    sqlx::query("UPDATE cases SET status = 'filed' WHERE archive_id = $1")
        .bind(&a)
        .execute(&app.archive.db().pool)
        .await
        .unwrap();

    // Released holds no longer block: the held case can go on a new list.
    let (_, holds) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{c}/holds"))
        .await;
    let hid = holds["items"][0]["hold_id"].as_str().unwrap().to_string();
    let (s, _) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/cases/{c}/holds/{hid}/release"),
            json!({"reason": "审计结束"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, l2) = app
        .post_json(
            &app.archivist,
            "/api/v1/disposal/lists",
            json!({"opinion": "补充", "cases": [item(&c)]}),
        )
        .await;
    assert_eq!(s, 201, "{l2}");
    // The trail records proposal, refusal of the four-eyes breach, approval and execution.
    let (_, trail) = app.get_json(&app.auditor, "/api/v1/audit?limit=500").await;
    let t = trail.to_string();
    for action in [
        "dispose_propose",
        "four_eyes",
        "dispose_decide",
        "dispose_execute",
        "hold",
    ] {
        assert!(t.contains(action), "{action} missing from the audit trail");
    }
}

#[tokio::test]
async fn there_is_no_other_way_to_delete_a_case() {
    let app = TestApp::spawn().await;
    let id = app
        .archive_case("N-1", "2025-05-05T10:00:00+08:00", "D10")
        .await;
    for token in [&app.admin, &app.archivist] {
        for path in [
            format!("/api/v1/cases/{id}"),
            format!("/api/v1/cases/{id}/package"),
        ] {
            let r = app
                .client
                .delete(app.url(&path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert!(
                r.status() == 404 || r.status() == 405,
                "{path}: {}",
                r.status()
            );
        }
    }
    let (s, _) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id}/package"))
        .await;
    assert_eq!(s, 200);
    // Permanent cases are never due; nothing here is due in 2026.
    let (_, due) = app.get_json(&app.archivist, "/api/v1/disposal/due").await;
    assert_eq!(due["total"], 0);
}
