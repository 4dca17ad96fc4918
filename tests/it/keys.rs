//! Key rotation: a new signing key for new packages; the old key retired but still published,
//! so packages it signed keep verifying; the rotation entered in the transparency log.

use crate::common::*;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_signing_key_keeps_old_packages_verifiable() {
    let app = TestApp::spawn().await;
    let (s, a) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let k1 = a["package"]["signature"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Rotate from the command line while the server runs on the same data.
    let out = Command::new(bin())
        .args(["keys", "rotate"])
        .env("GUIDANG_DATA_DIR", app.dir.path())
        .env("DATABASE_URL", app.archive.settings().database_url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("retired {k1}")), "{text}");
    assert!(
        app.dir
            .path()
            .join(format!("keys/retired/signing-{k1}.ed25519"))
            .exists(),
        "the old key is kept"
    );

    // The running server signs new packages with the new key.
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/with-docx.zip"))
        .await;
    assert_eq!(s, 201);
    let k2 = b["package"]["signature"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(k1, k2);
    assert!(text.contains(&format!("active  {k2}")), "{text}");

    let keys = app.keys().await;
    let find = |id: &str| {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == id)
            .unwrap()
            .clone()
    };
    assert!(find(&k1)["retired_at"].is_string());
    assert!(find(&k2)["retired_at"].is_null());

    // The package signed by the retired key still verifies against the published keys.
    let trusted = app.dir.path().join("keys.json");
    std::fs::write(&trusted, keys.to_string()).unwrap();
    let id = a["archive_id"].as_str().unwrap();
    let (_, pkg) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id}/package"))
        .await;
    let path = app.dir.path().join("old.zip");
    std::fs::write(&path, pkg).unwrap();
    let out = Command::new(bin())
        .arg("verify")
        .arg(&path)
        .arg("--trusted-keys")
        .arg(&trusted)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("key retired"), "{text}");

    // The rotation is a log event between the two packages.
    let r = app
        .client
        .get(app.url("/api/v1/log/checkpoint"))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    let cp = r.text().await.unwrap();
    assert!(cp.starts_with("guidang.local/log\n3\n"), "{cp}");
}
