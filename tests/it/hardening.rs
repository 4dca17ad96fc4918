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

/// Item 3: tokens can be listed, revoked (401 at once on every server) and expire; the last use
/// is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_revoked_on_every_server_and_expire() {
    let a = TestApp::spawn().await;
    let mut s2 = a.archive.settings().clone();
    s2.listen = "127.0.0.1:0".into();
    let b = TestApp::start(tempfile::tempdir().unwrap(), s2).await;
    let cli = |args: &[&str]| {
        let out = crate::cli::guidang(a.dir.path(), &a.archive.settings().database_url())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, token, _) = cli(&["token", "create", "--role", "auditor", "--name", "审计"]);
    assert_eq!(code, Some(0));
    for app in [&a, &b] {
        assert_eq!(app.get_json(&token, "/api/v1/audits").await.0, 200);
    }
    // Listed with its last use (noted off the request's path, within a moment).
    let mut listed = serde_json::Value::Null;
    for _ in 0..50 {
        let (_, out, _) = cli(&["token", "list", "--json"]);
        listed = serde_json::from_str::<serde_json::Value>(&out).unwrap()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "审计")
            .cloned()
            .unwrap();
        if !listed["last_used_at"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert!(listed["revoked_at"].is_null());
    assert!(listed.get("token_hash").is_none(), "{listed}");
    let id = listed["token_id"].as_str().unwrap().to_string();

    // Revoked on the command line: refused by both servers from the next request on.
    let (code, _, _) = cli(&["token", "revoke", &id]);
    assert_eq!(code, Some(0));
    for app in [&a, &b] {
        assert_eq!(app.get_json(&token, "/api/v1/audits").await.0, 401);
    }
    let (code, _, err) = cli(&["token", "revoke", &id]);
    assert_eq!(code, Some(1), "{err}");

    // An administrator over HTTP; nobody else.
    let (code, other, _) = cli(&["token", "create", "--role", "archivist"]);
    assert_eq!(code, Some(0));
    let (s, l) = a.get_json(&a.admin, "/api/v1/tokens").await;
    assert_eq!(s, 200);
    let other_id = l["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "archivist" && t["name"].is_null())
        .unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.get_json(&a.archivist, "/api/v1/tokens").await.0, 403);
    let path = format!("/api/v1/tokens/{other_id}/revoke");
    assert_eq!(a.post_json(&a.auditor, &path, json!({})).await.0, 403);
    assert_eq!(a.post_json(&a.admin, &path, json!({})).await.0, 200);
    assert_eq!(b.get_json(&other, "/api/v1/cases").await.0, 401);
    let (_, t) = a
        .get_json(&a.auditor, "/api/v1/audit?action=token_revoke")
        .await;
    assert_eq!(t["items"].as_array().unwrap().len(), 2, "{t}");

    // Expiry: a token past its date is refused; a bad date is refused at creation.
    let (code, expired, _) = cli(&[
        "token",
        "create",
        "--role",
        "auditor",
        "--expires",
        "2020-01-01",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(a.get_json(&expired, "/api/v1/audits").await.0, 401);
    let (code, valid, _) = cli(&[
        "token",
        "create",
        "--role",
        "auditor",
        "--expires",
        "2999-01-01T00:00:00+08:00",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(a.get_json(&valid, "/api/v1/audits").await.0, 200);
    let (code, _, err) = cli(&["token", "create", "--role", "auditor", "--expires", "soon"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--expires"), "{err}");
}

/// Item 6: what the binary writes is for its own user only (directories 0700, files 0600).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(bin())
        .arg("init")
        .env("GUIDANG_DATA_DIR", &data)
        .env_remove("DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(bin())
        .arg("import")
        .arg(fixtures().join("valid/food-licence.zip"))
        .env("GUIDANG_DATA_DIR", &data)
        .env_remove("DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        if p.is_dir() {
            assert_eq!(mode, 0o700, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", p.display());
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "the database, the package and the keys were looked at"
    );
}

/// Item 14: a command run where there is no archive says so and invents none; only `serve` and
/// `init` start one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_outside_an_archive_refuse_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .env_remove("GUIDANG_DATA_DIR")
            .env_remove("DATABASE_URL")
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let zip = fixtures().join("valid/food-licence.zip");
    for args in [
        vec!["keys", "export"],
        vec!["keys", "rotate"],
        vec!["token", "create", "--role", "auditor"],
        vec!["token", "create", "--role", "nobody"],
        vec!["token", "list"],
        vec!["import", zip.to_str().unwrap()],
        vec!["filing", "status", "--year", "2025"],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        let wanted = dir.path().join("data/keys/signing.ed25519");
        assert!(err.contains(&wanted.display().to_string()), "{err}");
        assert!(
            err.contains("GUIDANG_DATA_DIR") && err.contains("guidang init"),
            "{err}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{args:?} left something behind"
        );
    }
    let (code, _, err) = run(&["init"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(dir.path().join("data/keys/signing.ed25519").exists());
    let (code, keys, _) = run(&["keys", "export"]);
    assert_eq!(code, Some(0));
    let first: serde_json::Value = serde_json::from_str(&keys).unwrap();
    // A second init changes nothing: the same keys.
    let (code, _, err) = run(&["init"]);
    assert_eq!(code, Some(0));
    assert!(err.contains("already"), "{err}");
    let (_, again, _) = run(&["keys", "export"]);
    assert_eq!(
        first,
        serde_json::from_str::<serde_json::Value>(&again).unwrap()
    );
}

/// Item 5: only validated identifiers reach the hash-chained audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_records_no_arbitrary_strings() {
    let app = TestApp::spawn().await;
    app.archive_case("TRAIL-1", "2025-04-04T10:00:00+08:00", "D30")
        .await;
    let (s, b) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{b}");
    let batch = b["batch_id"].as_str().unwrap();
    let secret = "王小明370102199001011234";
    let (s, _) = app
        .get_bytes(
            &app.auditor,
            &format!("/api/v1/filings/2025/batches/{batch}/{secret}"),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .get_bytes(
            &app.auditor,
            &format!("/api/v1/filings/2025/batches/{batch}/register.xml"),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = app
        .send_json(
            reqwest::Method::PUT,
            &app.archivist,
            "/api/v1/filings/2025/expected",
            json!({"social_code": secret, "counts": {"X": 1}}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("social_code"),
        "{b}"
    );
    let (s, b) = app
        .send_json(
            reqwest::Method::PUT,
            &app.submitter,
            "/api/v1/filings/4019/expected",
            json!({"counts": {"X": 1}}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("year"), "{b}");

    let (_, t) = app.get_json(&app.auditor, "/api/v1/audit").await;
    assert!(!t.to_string().contains("王小明"), "{t}");
    assert!(!t.to_string().contains("370102199001011234"), "{t}");
    let reads: Vec<&str> = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "read_filing_document")
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    let invalid = format!("invalid ({} chars)", secret.chars().count());
    assert_eq!(reads, vec!["register.xml", invalid.as_str()]);
}

/// Item 17: a damaged payload entry is the client's error, naming the entry, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_deflate_stream_in_a_payload_entry_is_a_client_error() {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(
            &app.submitter,
            fixture("repros/submit-corrupt-deflate-in-payload.zip"),
        )
        .await;
    assert!(s == 400 || s == 422, "{s} {b}");
    let text = b.to_string();
    assert!(text.contains("files/"), "the entry is named: {b}");
    let (_, t) = app.get_json(&app.auditor, "/api/v1/audit").await;
    assert!(
        t.to_string().contains(&format!("\"outcome\":\"{s} ")),
        "{t}"
    );
}

/// Item 16: the auditor's verifier refuses a package that is not one unambiguous ZIP.
#[test]
fn verify_refuses_duplicate_entries_and_local_headers_that_disagree() {
    for (name, why) in [
        (
            "verify-duplicate-entry-tampered-first",
            "two entries are named",
        ),
        (
            "verify-duplicate-entry-tampered-last",
            "two entries are named",
        ),
        ("verify-local-header-name-mismatch", "local header"),
    ] {
        let out = std::process::Command::new(bin())
            .arg("verify")
            .arg(fixtures().join(format!("repros/{name}.zip")))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains(why), "{name}: {text}");
    }
}

/// Item 15: a database that cannot be reached, a role or database that does not exist: one line
/// naming host, port and cause within seconds, no driver internals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connection_failures_are_told_plainly_and_quickly() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cases = vec![(
        format!("postgres://postgres@127.0.0.1:{closed}/guidang"),
        format!("127.0.0.1:{closed}"),
        "connection refused",
    )];
    if use_postgres() {
        cases.push((
            "postgres://postgres@127.0.0.1:5432/guidang_no_such_database".into(),
            "127.0.0.1:5432/guidang_no_such_database".into(),
            "no such database",
        ));
        cases.push((
            "postgres://guidang_no_such_role@127.0.0.1:5432/postgres".into(),
            "as guidang_no_such_role".into(),
            "role does not exist",
        ));
    }
    for (url, names, cause) in cases {
        let dir = tempfile::tempdir().unwrap();
        let t = std::time::Instant::now();
        let out = crate::cli::guidang(dir.path(), &url)
            .arg("init")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&names) && err.contains(cause), "{err}");
        assert!(err.contains("DATABASE_URL"), "says what to change: {err}");
        assert!(
            !err.contains(" line ") && !err.contains(".c:"),
            "driver internals: {err}"
        );
    }
}

/// Items 7 and 18: metadata that is not well-formed XML 1.0 with namespaces, or holds characters
/// XML 1.0 forbids, is refused (422 metadata_invalid); nothing is archived; `guidang verify` fails a
/// package whose own XML documents are not well-formed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_must_be_well_formed_xml_and_packages_must_hold_only_such() {
    let app = TestApp::spawn().await;
    let mut bodies: Vec<(String, Vec<u8>, Option<&str>)> = vec![];
    for e in std::fs::read_dir(fixtures().join("repros")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("submit-malformed-xml-") {
            bodies.push((name, std::fs::read(&p).unwrap(), None));
        }
    }
    assert_eq!(bodies.len(), 11);
    bodies.push((
        "submit-control-chars-in-project-name.zip".into(),
        fixture("repros/submit-control-chars-in-project-name.zip"),
        Some("project_name"),
    ));
    type Edit = fn(String) -> String;
    let edits: [(&str, Edit, Option<&str>); 8] = [
        (
            "standalone=maybe",
            |m| {
                m.replacen(
                    "encoding=\"UTF-8\"?>",
                    "encoding=\"UTF-8\" standalone=\"maybe\"?>",
                    1,
                )
            },
            None,
        ),
        (
            "XML 1.1",
            |m| m.replacen("version=\"1.0\"", "version=\"1.1\"", 1),
            None,
        ),
        (
            "xml prefix rebound",
            |m| m.replacen("version=\"1\">", "version=\"1\" xmlns:xml=\"urn:x\">", 1),
            None,
        ),
        (
            "a processing instruction named XmL",
            |m| m.replacen("<result>", "<?XmL x?><result>", 1),
            None,
        ),
        (
            "&#0; in task_name",
            |m| m.replacen("<task_name>食品", "<task_name>食品&#0;", 1),
            Some("task_name"),
        ),
        (
            "raw ESC in apply_name",
            |m| m.replacen("<apply_name>王", "<apply_name>王\u{1b}", 1),
            Some("apply_name"),
        ),
        (
            "raw form feed in an opinion",
            |m| m.replacen("材料齐全", "材料\u{c}齐全", 1),
            Some("opinion"),
        ),
        (
            "&#xFFFE; in an attribute",
            |m| m.replacen("version=\"1\"", "version=\"1&#xFFFE;\"", 1),
            Some("case"),
        ),
    ];
    for (label, edit, element) in edits {
        bodies.push((label.into(), valid_with_metadata(edit), element));
    }
    for (label, body, element) in bodies {
        let (s, b) = app.submit(&app.archivist, body).await;
        assert_eq!(s, 422, "{label}: {b}");
        assert_eq!(problem_codes(&b), vec!["metadata_invalid"], "{label}: {b}");
        let p = &b["problems"][0];
        assert_eq!(p["path"], "metadata.xml", "{label}: {b}");
        if let Some(el) = element {
            let msg = p["message"].as_str().unwrap();
            assert!(msg.contains(el) && msg.contains("U+"), "{label}: {msg}");
        }
    }
    assert!(app.stored_packages().is_empty());

    // The archive's own documents: a package sealed around a malformed archive.xml fails verify.
    let out = std::process::Command::new(bin())
        .arg("verify")
        .arg("--json")
        .arg(fixtures().join("repros/verify-archive-xml-not-well-formed.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = r["packages"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "xml_documents")
        .cloned()
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(check["status"], "fail", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("data/archive.xml"),
        "{check}"
    );
}
