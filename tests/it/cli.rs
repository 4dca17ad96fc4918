//! The command line (CONTRACT.md §1) as an archivist and an auditor use it: the real binary.

use crate::common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

pub(crate) fn guidang(dir: &std::path::Path, db: &str) -> Command {
    let mut c = Command::new(bin());
    c.env("GUIDANG_DATA_DIR", dir)
        .env("DATABASE_URL", db)
        .env_remove("GUIDANG_FAILPOINT")
        .current_dir(dir);
    c
}

/// A new archive in `dir` and an archivist token for it, made with the command line as an
/// operator would before the first `serve`.
pub(crate) fn init_with_archivist(dir: &std::path::Path, db: &str) -> String {
    init(dir, db);
    let out = guidang(dir, db)
        .args(["token", "create", "--role", "archivist"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `guidang init`: only `serve` and `init` start an archive; other commands need one.
pub(crate) fn init(dir: &std::path::Path, db: &str) {
    let out = guidang(dir, db).arg("init").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn archived_package(app: &TestApp) -> (std::path::PathBuf, String) {
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let id = b["archive_id"].as_str().unwrap().to_string();
    let (_, pkg) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id}/package"))
        .await;
    let path = app.dir.path().join(format!("{id}.zip"));
    std::fs::write(&path, pkg).unwrap();
    (path, id)
}

fn keys_file(app: &TestApp, keys: &serde_json::Value) -> std::path::PathBuf {
    let p = app.dir.path().join("trusted-keys.json");
    std::fs::write(&p, serde_json::to_vec(keys).unwrap()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_accepts_a_downloaded_package_and_reports_tampering() {
    let app = TestApp::spawn().await;
    let (pkg, id) = archived_package(&app).await;
    let keys = app.keys().await;
    let trusted = keys_file(&app, &keys);

    // Valid against the pinned key.
    let out = Command::new(bin())
        .arg("verify")
        .arg(&pkg)
        .arg("--trusted-keys")
        .arg(&trusted)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("VALID") && text.contains("pinned key"),
        "{text}"
    );

    // Without pinned keys: valid, but said plainly that the key is not pinned.
    let out = Command::new(bin())
        .arg("verify")
        .arg(&pkg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(text.contains("NOT pinned"), "{text}");

    // JSON for machines.
    let out = Command::new(bin())
        .args(["verify", "--json"])
        .arg(&pkg)
        .arg("--trusted-keys")
        .arg(&trusted)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["valid"], true);
    assert_eq!(j["packages"][0]["archive_id"], id.as_str());

    // One changed byte inside a stored file.
    let mut bytes = std::fs::read(&pkg).unwrap();
    let needle = b"STSong-Light";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] = b'X';
    let tampered = app.dir.path().join("tampered.zip");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = Command::new(bin())
        .args(["verify", "--json"])
        .arg(&tampered)
        .arg("--trusted-keys")
        .arg(&trusted)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = j["packages"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"payload_digests"), "{j}");

    // An extra payload file, and a missing one.
    let unpacked = app.dir.path().join("unpacked");
    let mut z = zip::ZipArchive::new(std::fs::File::open(&pkg).unwrap()).unwrap();
    z.extract(&unpacked).unwrap();
    let bag = unpacked.join(&id);
    std::fs::write(bag.join("data/submission/files/extra.txt"), "x").unwrap();
    let out = Command::new(bin())
        .arg("verify")
        .arg(&bag)
        .arg("--trusted-keys")
        .arg(&trusted)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not in the manifests"));
    std::fs::remove_file(bag.join("data/submission/files/extra.txt")).unwrap();
    std::fs::remove_file(bag.join("data/submission/files/01-食品经营许可申请书.pdf")).unwrap();
    let out = Command::new(bin())
        .arg("verify")
        .arg(&bag)
        .arg("--trusted-keys")
        .arg(&trusted)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing"));

    // A key the auditor does not trust.
    let other = serde_json::json!({"keys": [{"key_id": "00", "algorithm": "Ed25519", "public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "created_at": "2025-01-01T00:00:00Z", "retired_at": null}]});
    let untrusted = app.dir.path().join("other-keys.json");
    std::fs::write(&untrusted, serde_json::to_vec(&other).unwrap()).unwrap();
    let out = Command::new(bin())
        .arg("verify")
        .arg(&pkg)
        .arg("--trusted-keys")
        .arg(&untrusted)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not among the trusted keys"));

    // Could not run at all.
    let out = Command::new(bin())
        .arg("verify")
        .arg(app.dir.path().join("nope.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bagit_python_validates_the_package() {
    let app = TestApp::spawn().await;
    let (pkg, id) = archived_package(&app).await;
    let dest = app.dir.path().join("bag");
    zip::ZipArchive::new(std::fs::File::open(&pkg).unwrap())
        .unwrap()
        .extract(&dest)
        .unwrap();
    let out = Command::new("python3")
        .args(["-m", "bagit", "--validate"])
        .arg(dest.join(&id))
        .output()
        .expect("python3 with bagit (installed by .ci/run)");
    assert!(
        out.status.success(),
        "bagit.py --validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_archives_offline_with_the_same_rules_while_the_server_runs() {
    let app = TestApp::spawn().await;
    let db = app.archive.settings().database_url();
    // The server archives one case first; import then runs beside it on the same data.
    let (s, _) = app
        .submit(&app.archivist, fixture("valid/with-docx.zip"))
        .await;
    assert_eq!(s, 201);
    let out = guidang(app.dir.path(), &db)
        .arg("import")
        .arg(fixtures().join("valid/food-licence"))
        .arg(fixtures().join("bad/encrypted_file-user-password.zip"))
        .arg(fixtures().join("valid/with-docx.zip"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejections make import exit 1: {text}"
    );
    assert!(
        text.contains("1 archived, 1 already present, 1 rejected"),
        "{text}"
    );
    assert!(
        text.contains("encrypted_file files/90-加密文件.pdf"),
        "{text}"
    );
    // Imported from a folder, the case is the same as the ZIP's: the online submission is a duplicate.
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, case) = app
        .get_json(
            &app.archivist,
            &format!("/api/v1/cases/{}", b["archive_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(case["channel"], "offline");
    let out = guidang(app.dir.path(), &db)
        .arg("import")
        .arg(fixtures().join("valid/food-licence.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 archived, 1 already present, 0 rejected")
    );

    // --json: one document a program can read, the same outcomes and problem codes.
    let out = guidang(app.dir.path(), &db)
        .args(["import", "--json"])
        .arg(fixtures().join("valid/food-licence.zip"))
        .arg(fixtures().join("bad/encrypted_file-user-password.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(
        (v["present"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["results"][0]["outcome"], "present");
    assert_eq!(v["results"][0]["archive_id"], b["archive_id"]);
    assert_eq!(v["results"][1]["outcome"], "rejected");
    assert_eq!(v["results"][1]["problems"][0]["code"], "encrypted_file");

    // A path that does not exist is a mistake in the command (exit 2), not a rejection, and
    // nothing of the command is imported — not even the path beside it.
    let before = app.stored_packages().len();
    let out = guidang(app.dir.path(), &db)
        .arg("import")
        .arg(fixtures().join("bad/encrypted_file-odt.zip"))
        .arg(app.dir.path().join("no-such-submission.zip"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no-such-submission.zip") && err.contains("nothing was imported"),
        "{err}"
    );
    assert_eq!(app.stored_packages().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_keys_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    init(dir.path(), &db);
    let out = guidang(dir.path(), &db)
        .args([
            "token",
            "create",
            "--role",
            "submitter",
            "--org",
            AGENCY,
            "--name",
            "审批系统",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("gd_") && token.len() > 40);
    let out = guidang(dir.path(), &db)
        .args(["token", "create", "--role", "submitter"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a submitter needs --org");
    // --json: the token with its record, for scripts; the list shows it without the token.
    let out = guidang(dir.path(), &db)
        .args([
            "token",
            "create",
            "--role",
            "auditor",
            "--content",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(made["token"].as_str().unwrap().starts_with("gd_"));
    assert_eq!(
        (made["role"].as_str(), made["content"].as_i64()),
        (Some("auditor"), Some(1))
    );
    let out = guidang(dir.path(), &db)
        .args(["token", "list", "--json"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains(made["token_id"].as_str().unwrap()), "{list}");
    assert!(!list.contains(made["token"].as_str().unwrap()));
    // Unknown roles are refused by the argument parser, naming the values allowed.
    let out = guidang(dir.path(), &db)
        .args(["token", "create", "--role", "superuser"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("transferor"));
    let out = guidang(dir.path(), &db)
        .args(["keys", "export"])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let purposes: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["purpose"].as_str().unwrap())
        .collect();
    assert!(
        purposes.contains(&"package") && purposes.contains(&"log"),
        "{keys}"
    );
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["algorithm"] == "Ed25519")
    );
    let log = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "log")
        .unwrap();
    assert!(
        log["vkey"]
            .as_str()
            .unwrap()
            .starts_with("guidang.local/log+")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys/signing.ed25519"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the signing key is private");
    }
}

pub(crate) fn wait_for_port(child: &mut std::process::Child) -> u16 {
    // The server logs its port; read stderr until it appears.
    let stderr = child.stderr.as_mut().unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if stderr.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        buf.push(byte[0]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(i) = text.find("port=") {
            let digits: String = text[i + 5..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if text[i + 5..].len() > digits.len() {
                return digits.parse().unwrap();
            }
        }
    }
    panic!("server did not start: {}", String::from_utf8_lossy(&buf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_store_and_record_leaves_nothing_half_archived() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let token = init_with_archivist(dir.path(), &db);
    let client = reqwest::Client::new();

    let mut child = Reaped(
        guidang(dir.path(), &db)
            .arg("serve")
            .env("GUIDANG_LISTEN", "127.0.0.1:0")
            .env("GUIDANG_FAILPOINT", "after_store")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port = wait_for_port(&mut child);
    let r = client
        .post(format!("http://127.0.0.1:{port}/api/v1/cases"))
        .bearer_auth(&token)
        .header("content-type", "application/zip")
        .body(fixture("valid/food-licence.zip"))
        .send()
        .await;
    assert!(r.is_err(), "the server died mid-request");
    let status = child.wait().unwrap();
    assert!(!status.success());
    let stored = || walk(&dir.path().join("objects/packages"));
    assert_eq!(
        stored().len(),
        1,
        "the package had reached storage before the crash"
    );

    // Restart: the orphan is removed, the case does not exist, and the case system's retry succeeds.
    let mut child = Reaped(
        guidang(dir.path(), &db)
            .arg("serve")
            .env("GUIDANG_LISTEN", "127.0.0.1:0")
            .env("GUIDANG_RECOVERY_GRACE_SECS", "0")
            .env("GUIDANG_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port = wait_for_port(&mut child);
    assert!(stored().is_empty(), "orphaned package removed at start");
    let base = format!("http://127.0.0.1:{port}");
    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/cases"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
    let r = client
        .post(format!("{base}/api/v1/cases"))
        .bearer_auth(&token)
        .header("content-type", "application/zip")
        .body(fixture("valid/food-licence.zip"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(stored().len(), 1);

    // Nothing personal in the server's log.
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("case archived"), "{log}");
    for secret in ["370102199001011234", "王小明"] {
        assert!(!log.contains(secret), "personal data in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_submissions_finish_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let token = init_with_archivist(dir.path(), &db);
    let mut child = Reaped(
        guidang(dir.path(), &db)
            .arg("serve")
            .env("GUIDANG_LISTEN", "127.0.0.1:0")
            .env("GUIDANG_AUDIT_HEAD_EVERY_SECS", "1")
            .env("GUIDANG_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port = wait_for_port(&mut child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    // Eight submissions in flight, and SIGTERM while they are.
    let mut sent = vec![];
    for i in 0..8 {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        sent.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/cases"))
                .bearer_auth(&token)
                .header("content-type", "application/zip")
                .body(case_zip(
                    &format!("TERM-{i}"),
                    "2025-04-04T10:00:00+08:00",
                    "D30",
                ))
                .send()
                .await
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let mut archived: Vec<String> = vec![];
    let mut refused = vec![];
    let mut done = vec![];
    for h in sent {
        done.push(match h.await {
            Ok(Ok(r)) => Ok(Ok((
                r.status().as_u16(),
                r.text().await.unwrap_or_default(),
            ))),
            Ok(Err(e)) => Ok(Err(e)),
            Err(e) => Err(e),
        });
    }
    for h in done {
        // A submission the server took before it stopped listening is archived in full, or
        // refused whole; one that arrived after gets no answer at all.
        if let Ok(Ok((code, body))) = h {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            match code {
                201 => archived.push(v["archive_id"].as_str().unwrap().to_string()),
                _ => refused.push((code, body)),
            }
        }
    }
    assert!(
        refused.iter().all(|(c, _)| *c >= 500),
        "only a server-side refusal: {refused:?}"
    );
    let status = child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop: {log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("stopped"),
        "the background work was drained: {log}"
    );

    // Restarted: every answered case is there with its package, and the log is consistent.
    let mut child = Reaped(
        guidang(dir.path(), &db)
            .arg("serve")
            .env("GUIDANG_LISTEN", "127.0.0.1:0")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port = wait_for_port(&mut child);
    let base = format!("http://127.0.0.1:{port}");
    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/cases?per_page=100"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for id in &archived {
        let r = client
            .get(format!("{base}/api/v1/cases/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "an answered 201 is a recorded case"
        );
    }
    assert!(
        list["total"].as_i64().unwrap() >= archived.len() as i64,
        "{list}"
    );
    assert_eq!(
        walk(&dir.path().join("objects/packages")).len() as i64,
        list["total"].as_i64().unwrap(),
        "one package per recorded case, none half-archived"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn the_fixture_metadata_validates_against_the_schema() {
    let xsd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/case.xsd");
    let m = "valid/food-licence/metadata.xml";
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(fixtures().join(m))
        .output()
        .expect("xmllint (libxml2-utils, installed by scripts/test.sh)");
    assert!(
        out.status.success(),
        "{m}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the schema is not a rubber stamp: a malformed region_code fails it.
    let bad = std::fs::read_to_string(fixtures().join("valid/food-licence/metadata.xml"))
        .unwrap()
        .replace("<region_code>370102<", "<region_code>37A102<");
    let mut child = Reaped(
        Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&xsd)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bad.as_bytes())
        .unwrap();
    assert!(!child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filing_that_crashes_mid_batch_resumes_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    init(dir.path(), &db);
    // Two cases a transaction, and a lease short enough to expire while the test waits.
    std::fs::write(
        dir.path().join("guidang.toml"),
        "[filing]\nbatch_size = 2\nlease_secs = 1\n",
    )
    .unwrap();
    let mut zips = vec![];
    for i in 1..=5 {
        let p = dir.path().join(format!("case-{i}.zip"));
        std::fs::write(
            &p,
            case_zip(
                &format!("K-{i}"),
                &format!("2025-0{i}-01T10:00:00+08:00"),
                "D30",
            ),
        )
        .unwrap();
        zips.push(p);
    }
    let out = guidang(dir.path(), &db)
        .arg("import")
        .args(&zips)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let crashed = guidang(dir.path(), &db)
        .args(["filing", "run", "--year", "2025"])
        .env("GUIDANG_FAILPOINT", "filing_chunk")
        .output()
        .unwrap();
    assert!(
        !crashed.status.success(),
        "the filing was aborted after its first chunk"
    );
    let status = |db: &str| {
        let out = guidang(dir.path(), db)
            .args(["filing", "status", "--year", "2025", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let st = status(&db);
    assert_eq!(st["batches"][0]["state"], "running", "{st}");
    assert_eq!(
        st["counts"]["filed"], 2,
        "the first chunk committed whole: {st}"
    );

    // While the crashed run's lease lasts another run is refused; then it resumes the same batch.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let out = guidang(dir.path(), &db)
        .args(["filing", "run", "--year", "2025"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = status(&db);
    assert_eq!(
        st["batches"].as_array().unwrap().len(),
        1,
        "resumed, not restarted: {st}"
    );
    assert_eq!(st["batches"][0]["state"], "complete");
    assert_eq!(st["batches"][0]["cases"], 5);
    assert_eq!(st["counts"]["filed"], 5);
    assert!(
        text.contains("filings/2025/") && text.contains("register.csv"),
        "{text}"
    );

    // Item numbers 1..5 in the order the cases were completed, each once.
    let register = walk(&dir.path().join("objects/filings"))
        .into_iter()
        .find(|p| p.ends_with("register.csv"))
        .expect("register stored");
    let csv = std::fs::read_to_string(register).unwrap();
    let codes: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(
        codes,
        (1..=5)
            .map(|i| format!("GD01-ZY·2025-D30-{AGENCY}-{i:04}"))
            .collect::<Vec<_>>()
    );
    let ids: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["K-1", "K-2", "K-3", "K-4", "K-5"]);
    // Running it again finds nothing left to file.
    let out = guidang(dir.path(), &db)
        .args(["filing", "run", "--year", "2025"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no archived case waiting"));
}
