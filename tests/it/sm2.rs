//! SM2 with SM3 (GB/T 32918, user id 1234567812345678) beside Ed25519 (issue 11, point 6):
//! packages signed with the archive's SM2 key verify under OpenSSL 3, and `guidang verify` checks
//! signatures OpenSSL made. OpenSSL is the independent implementation.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::common::*;

fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let mut f = z.by_name(name).unwrap();
    let mut v = vec![];
    std::io::Read::read_to_end(&mut f, &mut v).unwrap();
    v
}

/// The package with `name` replaced by `bytes`.
fn with_entry(zip: &[u8], name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let f = z.by_index(i).unwrap();
        if f.name().unwrap() != name {
            out.raw_copy_file(f).unwrap();
        }
    }
    out.start_file(
        name,
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
    )
    .unwrap();
    std::io::Write::write_all(&mut out, bytes).unwrap();
    out.finish().unwrap().into_inner()
}

fn verify(dir: &Path, pkg: &[u8], keys: Option<&Value>) -> Value {
    let p = dir.join("pkg.zip");
    std::fs::write(&p, pkg).unwrap();
    let mut c = Command::new(bin());
    c.arg("verify").arg(&p).arg("--json");
    if let Some(k) = keys {
        let kp = dir.join("keys.json");
        std::fs::write(&kp, k.to_string()).unwrap();
        c.arg("--trusted-keys").arg(&kp);
    }
    let out = c.output().unwrap();
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["packages"][0].clone()
}

fn check<'a>(pkg: &'a Value, name: &str) -> &'a Value {
    pkg["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sm2_signatures_interoperate_with_openssl_both_ways() {
    let app = TestApp::spawn_with(|s| {
        s.sm2.enabled = true;
        s.sm2.sign_packages = true;
    })
    .await;
    let dir = app.dir.path().join("sm2");
    std::fs::create_dir_all(&dir).unwrap();
    // The SM2 key is published beside the Ed25519 ones.
    let keys = app.keys().await;
    let sm2_key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["algorithm"] == "SM2-SM3")
        .expect("an SM2 key is published")
        .clone();
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["archive_id"].as_str().unwrap().to_string();
    let (s, pkg) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id}/package"))
        .await;
    assert_eq!(s, 200);
    let tagmanifest = entry(&pkg, &format!("{id}/tagmanifest-sha256.txt"));
    let sig: Value =
        serde_json::from_slice(&entry(&pkg, &format!("{id}/signature-sm2.json"))).unwrap();
    assert_eq!(sig["algorithm"], "SM2-SM3");
    assert_eq!(sig["user_id"], "1234567812345678");
    assert_eq!(sig["public_key"], sm2_key["public_key"]);
    assert_eq!(sig["key_id"], sm2_key["key_id"]);

    // OpenSSL verifies the archive's SM2 signature over the exact tag-manifest bytes.
    std::fs::write(dir.join("tm.txt"), &tagmanifest).unwrap();
    std::fs::write(
        dir.join("pub.der"),
        B64.decode(sig["public_key"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("sig.der"),
        B64.decode(sig["signature"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let verify_args = [
        "pkeyutl",
        "-verify",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        "pub.der",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        "distid:1234567812345678",
        "-sigfile",
        "sig.der",
        "-in",
    ];
    let (ok, out) = openssl(&[&verify_args[..], &["tm.txt"]].concat(), &dir);
    assert!(ok, "openssl refused the archive's SM2 signature: {out}");
    std::fs::write(dir.join("other.txt"), b"other bytes").unwrap();
    let (ok, _) = openssl(&[&verify_args[..], &["other.txt"]].concat(), &dir);
    assert!(!ok, "openssl must refuse the signature over other bytes");

    // guidang verify: the SM2 signature under the pinned key.
    let p = verify(&dir, &pkg, Some(&keys));
    assert_eq!(p["valid"], true, "{p}");
    assert_eq!(check(&p, "signature_sm2")["status"], "pass", "{p}");
    // The evidence download carries it too.
    let (s, ev) = app
        .get_bytes(&app.auditor, &format!("/api/v1/cases/{id}/evidence"))
        .await;
    assert_eq!(s, 200);
    let p = verify(&dir, &ev, Some(&keys));
    assert_eq!(check(&p, "signature_sm2")["status"], "pass", "{p}");

    // A signature OpenSSL made, with a key OpenSSL made, is checked by guidang verify.
    let (ok, out) = openssl(&["genpkey", "-algorithm", "SM2", "-out", "k.pem"], &dir);
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        &[
            "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "k.der",
        ],
        &dir,
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "k.pem",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-in",
            "tm.txt",
            "-out",
            "os.der",
        ],
        &dir,
    );
    assert!(ok, "{out}");
    let spki = std::fs::read(dir.join("k.der")).unwrap();
    let key_id = sha256_hex(&spki);
    let made = json!({
        "algorithm": "SM2-SM3",
        "key_id": key_id,
        "public_key": B64.encode(&spki),
        "user_id": "1234567812345678",
        "signed_file": "tagmanifest-sha256.txt",
        "signature": B64.encode(std::fs::read(dir.join("os.der")).unwrap()),
        "signed_at": "2026-12-02T00:00:00Z",
    });
    let name = format!("{id}/signature-sm2.json");
    let swapped = with_entry(&pkg, &name, made.to_string().as_bytes());
    // Without pins: valid, and said to be unpinned.
    let p = verify(&dir, &swapped, None);
    assert_eq!(check(&p, "signature_sm2")["status"], "warn", "{p}");
    // With the archive's keys only: an SM2 key nobody pinned is refused.
    let p = verify(&dir, &swapped, Some(&keys));
    assert_eq!(check(&p, "signature_sm2")["status"], "fail", "{p}");
    assert_eq!(p["valid"], false);
    // With OpenSSL's key pinned: valid.
    let mut pinned = keys["keys"].as_array().unwrap().clone();
    pinned.push(
        json!({"key_id": key_id, "algorithm": "SM2-SM3", "public_key": B64.encode(&spki),
        "created_at": "2026-12-02T00:00:00Z", "retired_at": null}),
    );
    let p = verify(&dir, &swapped, Some(&json!({"keys": pinned.clone()})));
    assert_eq!(check(&p, "signature_sm2")["status"], "pass", "{p}");
    assert_eq!(p["valid"], true, "{p}");
    // A flipped bit in OpenSSL's signature fails.
    let mut bad = std::fs::read(dir.join("os.der")).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let mut broken = made.clone();
    broken["signature"] = json!(B64.encode(&bad));
    let p = verify(
        &dir,
        &with_entry(&pkg, &name, broken.to_string().as_bytes()),
        Some(&json!({"keys": pinned})),
    );
    assert_eq!(check(&p, "signature_sm2")["status"], "fail", "{p}");
}
