//! The transparency log (CONTRACT.md §5), checked by an independent verifier written in Python
//! from RFC 9162 and the C2SP texts (tests/interop/tlog_verify.py), and by `guidang` itself.

use crate::common::*;
use std::process::Command;

async fn text(app: &TestApp, path: &str) -> String {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.text().await.unwrap()
}

async fn archive_case(app: &TestApp, n: u32) -> (String, String) {
    let zip = valid_with_metadata(|m| {
        m.replace(
            "370102-SPJY-20250303-0001",
            &format!("370102-SPJY-LOG-{n:04}"),
        )
    });
    let (s, b) = app.submit(&app.archivist, zip).await;
    assert_eq!(s, 201, "{b}");
    (
        b["archive_id"].as_str().unwrap().to_string(),
        b["package"]["digest"].as_str().unwrap().to_string(),
    )
}

fn python(args: &[&std::path::Path]) -> i32 {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/tlog_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    out.status.code().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_proves_inclusion_and_growth_to_an_independent_verifier() {
    let app = TestApp::spawn().await;
    let dir = app.dir.path().to_path_buf();
    let w = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let mut cases = vec![];
    for n in 0..3 {
        cases.push(archive_case(&app, n).await);
    }
    let cp_a = text(&app, "/api/v1/log/checkpoint").await;
    assert!(cp_a.starts_with("guidang.local/log\n3\n"), "{cp_a}");
    for n in 3..5 {
        cases.push(archive_case(&app, n).await);
    }
    let cp_b = text(&app, "/api/v1/log/checkpoint").await;
    assert!(cp_b.starts_with("guidang.local/log\n5\n"), "{cp_b}");

    let keys = app.keys().await;
    let vkey = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "log")
        .unwrap()["vkey"]
        .as_str()
        .unwrap()
        .to_string();
    let vkey_file = w("log.vkey", &vkey);
    let keys_file = w("keys.json", &keys.to_string());

    // Inclusion of the first case, checked by the Python verifier from the entry alone.
    let (id0, digest0) = &cases[0];
    let proof = text(&app, &format!("/api/v1/cases/{id0}/proof")).await;
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nindex 0\n"),
        "{proof}"
    );
    let proof_file = w("case0.tlog-proof", &proof);
    let entry = w("entry0", &format!("guidang-aip-v1\n{id0}\n{digest0}\n"));
    assert_eq!(
        python(&[
            std::path::Path::new("inclusion"),
            &proof_file,
            &entry,
            &vkey_file
        ]),
        0
    );
    let wrong = w(
        "entry-wrong",
        &format!("guidang-aip-v1\n{id0}\n{}\n", "0".repeat(64)),
    );
    assert_eq!(
        python(&[
            std::path::Path::new("inclusion"),
            &proof_file,
            &wrong,
            &vkey_file
        ]),
        1
    );

    // Growth from size 3 to 5.
    let cons = text(&app, "/api/v1/log/consistency?from=3&to=5").await;
    let (fa, fb, fc) = (w("a.cp", &cp_a), w("b.cp", &cp_b), w("a-b.proof", &cons));
    assert_eq!(
        python(&[
            std::path::Path::new("consistency"),
            &fa,
            &fb,
            &fc,
            &vkey_file
        ]),
        0
    );
    let out = Command::new(bin())
        .args(["log", "consistency"])
        .arg(&fa)
        .arg(&fb)
        .arg("--proof")
        .arg(&fc)
        .arg("--trusted-keys")
        .arg(&keys_file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(bin())
        .args(["log", "consistency"])
        .arg(&fa)
        .arg(&fb)
        .arg("--server")
        .arg(&app.addr)
        .arg("--trusted-keys")
        .arg(&keys_file)
        .env("GUIDANG_TOKEN", &app.auditor)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // An insider with the log key rewrites the log: a checkpoint of size 5 with another root.
    let signer = guidang::signing::Signer::load_or_create(&dir.join("keys/log.ed25519")).unwrap();
    let forged_cp = guidang::evidence::note::Checkpoint {
        origin: "guidang.local/log".into(),
        size: 5,
        root: [7u8; 32],
    };
    let t = forged_cp.text();
    let forged = guidang::evidence::note::sign(
        &t,
        "guidang.local/log",
        &signer.public_bytes(),
        &signer.sign_raw(t.as_bytes()),
    );
    let ff = w("forged.cp", &forged);
    for old in [&fa, &fb] {
        let out = Command::new(bin())
            .args(["log", "consistency"])
            .arg(old)
            .arg(&ff)
            .arg("--proof")
            .arg(&fc)
            .arg("--trusted-keys")
            .arg(&keys_file)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(
        python(&[
            std::path::Path::new("consistency"),
            &fa,
            &ff,
            &fc,
            &vkey_file
        ]),
        1
    );
    // A checkpoint not signed by the pinned log key is refused outright.
    let unsigned = w("unsigned.cp", &cp_b.replace("\n5\n", "\n6\n"));
    let out = Command::new(bin())
        .args(["log", "consistency"])
        .arg(&fa)
        .arg(&unsigned)
        .arg("--proof")
        .arg(&fc)
        .arg("--trusted-keys")
        .arg(&keys_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // `guidang verify` checks a package's inclusion against a pinned log key.
    let (_, pkg) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id0}/package"))
        .await;
    let pkg_path = dir.join(format!("{id0}.zip"));
    std::fs::write(&pkg_path, pkg).unwrap();
    let out = Command::new(bin())
        .args(["verify", "--json"])
        .arg(&pkg_path)
        .arg("--proof")
        .arg(&proof_file)
        .arg("--trusted-keys")
        .arg(&keys_file)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{j}");
    let st = |j: &serde_json::Value, c: &str| {
        j["packages"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["check"] == c)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(st(&j, "log_inclusion"), "pass");
    assert_eq!(st(&j, "log_checkpoint"), "pass");
    // The proof of another case does not prove this package.
    let other = text(&app, &format!("/api/v1/cases/{}/proof", cases[1].0)).await;
    let other_file = w("case1.tlog-proof", &other);
    let out = Command::new(bin())
        .args(["verify", "--json"])
        .arg(&pkg_path)
        .arg("--proof")
        .arg(&other_file)
        .arg("--trusted-keys")
        .arg(&keys_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st(&j, "log_inclusion"), "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_never_changes_a_published_root() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        archive_case(&app, n).await;
    }
    let before = text(&app, "/api/v1/log/checkpoint").await;
    // A second server process on the same data (a restart, or another server) publishes the same root.
    let mut settings = app.archive.settings().clone();
    settings.listen = "127.0.0.1:0".into();
    let again = guidang::http::Application::build(settings).await.unwrap();
    let port = again.port();
    tokio::spawn(again.run_until_stopped());
    let r = app
        .client
        .get(format!("http://127.0.0.1:{port}/api/v1/log/checkpoint"))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    let after = r.text().await.unwrap();
    assert_eq!(before.split("\n\n").next(), after.split("\n\n").next());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_hashes_give_the_rfc_root_at_every_size() {
    use guidang::evidence::merkle::{self, MemoryTree};
    let app = TestApp::spawn().await;
    let db = app.archive.db().clone();
    let mut mem = MemoryTree::default();
    for i in 0..70u64 {
        let e = format!("guidang-test-v1\n{i}\n");
        let mut tx = db.pool.begin().await.unwrap();
        let idx = guidang::evidence::log::append_on(&mut tx, db.postgres, "test", None, &e)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(idx, i);
        mem.push(merkle::leaf_hash(e.as_bytes()));
        assert_eq!(
            app.archive.evidence().log().root(i + 1).await.unwrap(),
            merkle::root(&mut mem, i + 1).unwrap(),
            "size {}",
            i + 1
        );
    }
    let p = app
        .archive
        .evidence()
        .log()
        .consistency(13, 70)
        .await
        .unwrap();
    let (r13, r70) = (
        merkle::root(&mut mem, 13).unwrap(),
        merkle::root(&mut mem, 70).unwrap(),
    );
    assert!(merkle::verify_consistency(13, 70, &r13, &r70, &p));
}
