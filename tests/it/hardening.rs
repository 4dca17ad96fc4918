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

/// A raw HTTP/1.1 request head for a submission of `len` bytes.
fn submission_head(port: u16, token: &str, len: usize, expect: bool) -> String {
    format!(
        "POST /api/v1/cases HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/zip\r\nContent-Length: {len}\r\n{}\r\n",
        if expect {
            "Expect: 100-continue\r\n"
        } else {
            ""
        }
    )
}

/// Item 2: uploads that stall hold no processing slot; an idle one is ended with 408 and its
/// spool removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_hold_no_slot_and_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|s| {
        s.ingest_concurrency = 2;
        s.limits.receive_idle_secs = 3;
    })
    .await;
    let port: u16 = app.url("").rsplit(':').next().unwrap().parse().unwrap();
    let body = case_zip("STALL-REAL", "2025-04-04T10:00:00+08:00", "D30");
    // Sixteen clients send the head and the first 100 bytes of a submission, then fall silent.
    let mut idle = vec![];
    for _ in 0..16 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(submission_head(port, &app.archivist, body.len(), false).as_bytes())
            .await
            .unwrap();
        s.write_all(&body[..100]).await.unwrap();
        idle.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let (s, b) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.submit(&app.archivist, body.clone()),
    )
    .await
    .expect("a real submission is not held up by stalled uploads");
    assert_eq!(s, 201, "{b}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "a real submission waited {:?} behind stalled uploads",
        started.elapsed()
    );
    // Each stalled upload is ended with 408 once it has been silent for receive_idle_secs.
    for mut s in idle {
        let mut resp = vec![];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), s.read_to_end(&mut resp))
            .await
            .expect("the server ends an idle upload");
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
    }
    // Their spool files and partial packages are gone.
    let mut left = staging_files(app.dir.path());
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = staging_files(app.dir.path());
    }
    assert!(left.is_empty(), "left in tmp: {left:?}");
    let (_, trail) = app
        .get_json(&app.auditor, "/api/v1/audit?action=submit")
        .await;
    let timeouts = trail["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["outcome"].as_str().is_some_and(|o| o.contains("408")))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(
        timeouts, 16,
        "each ended upload is in the audit trail: {trail}"
    );
}

/// Item 2: `Expect: 100-continue` on a submission is answered 100 only while a processing slot
/// is free; otherwise 503 with Retry-After before the client sends its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_by_a_free_slot() {
    use std::process::Stdio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let token = crate::cli::init_with_archivist(dir.path(), &db);
    let mut child = Reaped(
        crate::cli::guidang(dir.path(), &db)
            .arg("serve")
            .env("GUIDANG_LISTEN", "127.0.0.1:0")
            .env("GUIDANG_INGEST_CONCURRENCY", "1")
            .env("GUIDANG_FAILPOINT", "hold_slot")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port = crate::cli::wait_for_port(&mut child);
    let body = case_zip("EXPECT-1", "2025-04-04T10:00:00+08:00", "D30");
    let expect_answer = || async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(submission_head(port, &token, 1000, true).as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer to Expect before the body")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert!(expect_answer().await.starts_with("HTTP/1.1 100 Continue"));
    // One submission takes the only slot (the failpoint keeps it five seconds).
    let first = {
        let (token, body) = (token.clone(), body.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/api/v1/cases"))
                .bearer_auth(&token)
                .header("content-type", "application/zip")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let mut busy = None;
    for _ in 0..40 {
        let a = expect_answer().await;
        if a.starts_with("HTTP/1.1 503") {
            busy = Some(a);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let busy = busy.expect("503 while the only slot is taken");
    assert!(
        busy.to_ascii_lowercase().contains("retry-after: 5"),
        "{busy}"
    );
    assert!(busy.contains("\"error\":\"busy\""), "{busy}");
    assert_eq!(first.await.unwrap(), 201);
    assert!(expect_answer().await.starts_with("HTTP/1.1 100 Continue"));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// Item 4: a declaration is bounded in size, key count and year; a write that waits too long for
/// a database lock is answered 503 with Retry-After, never 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_are_bounded_and_lock_waits_are_503() {
    let app = TestApp::spawn_with(|s| {
        s.limits.max_json_bytes = 64 << 10;
        s.limits.max_declared_keys = 100;
        s.db_lock_wait_ms = 300;
    })
    .await;
    let put = |year: i64, body: serde_json::Value| {
        let app = &app;
        async move {
            app.send_json(
                reqwest::Method::PUT,
                &app.submitter,
                &format!("/api/v1/filings/{year}/expected"),
                body,
            )
            .await
        }
    };
    let keys = |n: usize| json!({"cases": (0..n).map(|i| json!({"task_code": "T1", "project_id": format!("P-{i}")})).collect::<Vec<_>>()});
    let (s, b) = put(2025, keys(100)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = put(2025, keys(101)).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("more than the 100"),
        "{b}"
    );
    let (s, b) = put(
        2025,
        json!({"cases": [], "counts": {"T1": 1}, "pad": "x".repeat(70 << 10)}),
    )
    .await;
    assert_eq!(s, 413, "{b}");
    for year in [3000, 5019, 1989] {
        let (s, b) = put(year, keys(1)).await;
        assert_eq!(s, 400, "{year}: {b}");
    }
    let (s, b) = put(
        2025,
        json!({"cases": [{"task_code": "T".repeat(37), "project_id": "P"}]}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("cases[0].task_code"),
        "{b}"
    );

    // Another connection holds the write lock; the declaration waits 300 ms, then 503.
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let url = app.archive.settings().database_url();
    let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
    if use_postgres() {
        holder.execute("BEGIN").await.unwrap();
        holder
            .execute("LOCK TABLE filing_expected IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
    } else {
        holder.execute("BEGIN EXCLUSIVE").await.unwrap();
    }
    let client = reqwest::Client::new();
    let r = client
        .put(app.url("/api/v1/filings/2025/expected"))
        .bearer_auth(&app.submitter)
        .json(&keys(3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["error"], "unavailable", "{b}");
    holder.execute("ROLLBACK").await.unwrap();
    let (s, b) = put(2025, keys(3)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["cases"], 3, "{b}");
}

/// Item 13: after `kill -9` in the middle of an upload, the restarted server removes the dead
/// process's spool and partial package at once, leaves a live process's staging alone, and
/// keeps sweeping while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_leaves_no_staging_behind() {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let token = crate::cli::init_with_archivist(dir.path(), &db);
    let serve = || {
        let mut c = crate::cli::guidang(dir.path(), &db);
        c.arg("serve")
            .env("GUIDANG_LISTEN", "127.0.0.1:0")
            .env("GUIDANG_STAGING_SWEEP_EVERY_SECS", "1")
            .stderr(Stdio::piped());
        Reaped(c.spawn().unwrap())
    };
    let mut first = serve();
    let port = crate::cli::wait_for_port(&mut first);
    // Half of a 40 MiB upload: the valid case followed by padding the ZIP reader never reaches.
    let mut body = case_zip("KILLED-1", "2025-04-04T10:00:00+08:00", "D30");
    body.resize(40 << 20, 0);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(submission_head(port, &token, body.len(), false).as_bytes())
        .await
        .unwrap();
    s.write_all(&body[..20 << 20]).await.unwrap();
    let mut spooled = 0u64;
    for _ in 0..100 {
        spooled = staging_files(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        if spooled >= 10 << 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        spooled >= 10 << 20,
        "the upload is being spooled ({spooled} bytes)"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    drop(s);
    assert!(
        !staging_files(dir.path()).is_empty(),
        "the dead process left its staging"
    );

    // A live process's staging (this test holds its lock) must survive every sweep.
    let root = dir.path().join("tmp");
    let live = guidang::staging::Staging::claim(&root, "live-import").unwrap();
    std::fs::write(live.dir().join("sip-in-progress.zip"), b"PK").unwrap();

    let mut second = serve();
    let _ = crate::cli::wait_for_port(&mut second);
    let left: Vec<_> = staging_files(dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(live.dir()))
        .collect();
    assert!(
        left.is_empty(),
        "removed at start, without a grace period: {left:?}"
    );
    assert!(live.dir().join("sip-in-progress.zip").exists());

    // A process that dies while the server runs is swept within a few periods.
    let dead = root.join("dead-import");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join(".lock"), b"").unwrap();
    std::fs::write(dead.join("sip-x.zip"), vec![0u8; 4096]).unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if !dead.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the periodic sweep removed a dead process's staging");
    assert!(live.dir().join("sip-in-progress.zip").exists());
    unsafe {
        libc::kill(second.id() as i32, libc::SIGTERM);
    }
    let _ = second.wait();
}

/// Items 8 and 16: a package that is not one unambiguous sequence of entries — bytes before,
/// between or after them, an entry hidden inside another's bytes, a directory with bytes — fails
/// `guidang verify`, though every digest and the signature still match. (The same shapes as
/// submissions are in fixtures/bad/unsafe_path-layout-*.zip.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_bytes_outside_the_entries_and_overlapping_entries() {
    let app = TestApp::spawn().await;
    let (s, _) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let pkg = app.stored_packages().pop().unwrap();
    let verify = |p: &std::path::Path| {
        let out = std::process::Command::new(bin())
            .arg("verify")
            .arg(p)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    assert_eq!(verify(&pkg).0, Some(0), "the package as stored verifies");
    let dir = tempfile::tempdir().unwrap();
    for (kind, why) in [
        ("prefix", "before the first entry"),
        ("gap", "belong to no entry"),
        ("suffix", "after the end of the ZIP"),
        ("overlap", "overlap"),
        ("dirbytes", "directory entry carries bytes"),
    ] {
        let out = dir.path().join(format!("{kind}.zip"));
        let made = std::process::Command::new("python3")
            .arg(fixtures().join("make_zip_layouts.py"))
            .args([std::ffi::OsStr::new(kind), pkg.as_os_str(), out.as_os_str()])
            .status()
            .unwrap();
        assert!(made.success());
        let (code, text) = verify(&out);
        assert_eq!(code, Some(1), "{kind}: {text}");
        assert!(text.contains(why), "{kind}: {text}");
    }
}

/// Item 1: an auditor proves a package complete and unaltered from its evidence download without
/// reading personal data; content needs a token made for it (`--content`), recorded in the
/// trail; admins read register-level data, never cases or content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_prove_packages_from_evidence_without_personal_data() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.submitter, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["archive_id"].as_str().unwrap().to_string();
    let private: [&[u8]; 2] = ["王小明".as_bytes(), b"370102199001011234"];

    // Content is refused to an ordinary auditor token, pointing at the evidence.
    for path in [
        format!("/api/v1/cases/{id}/package"),
        format!("/api/v1/cases/{id}/files/metadata.xml"),
        format!("/api/v1/cases/{id}/files/files/01-食品经营许可申请书.pdf"),
    ] {
        let (s, body) = app.get_bytes(&app.auditor, &path).await;
        assert_eq!(s, 403, "{path}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("/evidence") && text.contains("--content"),
            "{text}"
        );
    }
    // The case view masks what an auditor does not need.
    let (_, v) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{id}"))
        .await;
    let text = v.to_string();
    assert!(
        !text.contains("王小明") && !text.contains("370102199001011234"),
        "{text}"
    );

    // The evidence: the package's own tag files and archive.xml, the log proof, no payload.
    let (s, ev) = app
        .get_bytes(&app.auditor, &format!("/api/v1/cases/{id}/evidence"))
        .await;
    assert_eq!(s, 200);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(ev.clone())).unwrap();
    let mut names = vec![];
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        names.push(e.name().unwrap().to_string());
        let mut bytes = vec![];
        e.read_to_end(&mut bytes).unwrap();
        for p in private {
            assert!(
                !bytes.windows(p.len()).any(|w| w == p),
                "personal data in {}",
                e.name().unwrap()
            );
        }
    }
    assert!(
        names.iter().all(|n| !n.contains("/data/submission/")),
        "{names:?}"
    );
    assert!(names.contains(&format!("{id}/tlog-proof.txt")), "{names:?}");

    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, app.keys().await.to_string()).unwrap();
    let evidence = dir.path().join("evidence.zip");
    std::fs::write(&evidence, &ev).unwrap();
    let verify = |p: &std::path::Path| {
        let out = std::process::Command::new(bin())
            .arg("verify")
            .arg("--json")
            .arg("--trusted-keys")
            .arg(&keys)
            .arg(p)
            .output()
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), r["packages"][0].clone())
    };
    let (code, r) = verify(&evidence);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["evidence"], true, "{r}");
    let status = |check: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == check)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(status("signature"), "pass", "{r}");
    assert_eq!(status("tag_manifest"), "pass", "{r}");
    assert_eq!(status("payload_complete"), "not_present", "{r}");
    assert_eq!(status("log_inclusion"), "pass", "{r}");
    assert_eq!(status("xml_documents"), "pass", "{r}");
    let human = std::process::Command::new(bin())
        .args(["verify", "--trusted-keys"])
        .arg(&keys)
        .arg(&evidence)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&human.stdout)
            .contains("signature and manifests valid; payload not present"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
    // An altered manifest in the evidence is caught.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let name = e.name().unwrap().to_string();
        let mut bytes = vec![];
        e.read_to_end(&mut bytes).unwrap();
        if name.ends_with("manifest-sm3.txt") && !name.contains("tag") {
            bytes[0] = if bytes[0] == b'0' { b'1' } else { b'0' };
        }
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, &bytes).unwrap();
    }
    let altered = dir.path().join("altered.zip");
    std::fs::write(&altered, w.finish().unwrap().into_inner()).unwrap();
    let (code, r) = verify(&altered);
    assert_eq!(code, Some(1), "{r}");

    // An auditor token made for content reads it, and the trail says who.
    let (content_token, row) = guidang::auth::create_token_until(
        app.archive.db(),
        "auditor",
        None,
        Some("外部审计"),
        None,
        true,
    )
    .await
    .unwrap();
    let (s, _) = app
        .get_bytes(&content_token, &format!("/api/v1/cases/{id}/package"))
        .await;
    assert_eq!(s, 200);
    let (_, trail) = app
        .get_json(
            &app.auditor,
            &format!("/api/v1/audit?action=read_package&target={id}"),
        )
        .await;
    assert!(
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["actor"] == row.token_id.as_str()),
        "{trail}"
    );
    let (_, trail) = app
        .get_json(
            &app.auditor,
            &format!("/api/v1/audit?action=read_evidence&target={id}"),
        )
        .await;
    assert_eq!(trail["items"].as_array().unwrap().len(), 1, "{trail}");
    // --content is for auditors only.
    assert!(
        guidang::auth::create_token_until(
            app.archive.db(),
            "submitter",
            Some("11370102MB2854637K"),
            None,
            None,
            true
        )
        .await
        .is_err()
    );

    // Admins: no case view, no content, no evidence.
    for path in [
        format!("/api/v1/cases/{id}"),
        format!("/api/v1/cases/{id}/package"),
        format!("/api/v1/cases/{id}/evidence"),
        "/api/v1/cases".to_string(),
    ] {
        assert_eq!(app.get_bytes(&app.admin, &path).await.0, 403, "{path}");
    }
}
