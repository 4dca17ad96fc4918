//! Digitised copies of paper originals (issue 10, points 1 and 2): scans made by real tools are
//! checked from their own bytes, added as new package versions that never change the earlier
//! ones, and verified offline alone and as a chain.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cli::guidang;
use crate::common::*;

fn scans_dir(name: &str) -> PathBuf {
    fixtures().join("digitised").join(name)
}

/// A scan fixture folder as the ZIP an archivist would upload.
pub fn scans_zip(name: &str) -> Vec<u8> {
    let root = scans_dir(name);
    let mut entries: Vec<(String, Vec<u8>)> = vec![];
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&root).unwrap().to_string_lossy().to_string();
                entries.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    entries.sort();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_of(&refs)
}

pub async fn post_scans(app: &TestApp, token: &str, id: &str, zip: Vec<u8>) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/api/v1/cases/{id}/digitised")))
        .bearer_auth(token)
        .header("Content-Type", "application/zip")
        .body(zip)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("digitised/expected.json")).unwrap())
        .unwrap()
}

/// Every bad batch is refused with each problem it carries, naming the file or the original;
/// nothing changes in the case. Every good batch (JPEG, G4 TIFF, JPEG 2000, PDF, OFD) becomes a
/// new version, and what QC measured comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_are_checked_from_the_images_and_every_problem_is_listed() {
    let app = TestApp::spawn().await;
    let id = app
        .archive_case("D-1", "2025-05-10T10:00:00+08:00", "D30")
        .await;
    let want = expected();
    for (name, e) in want.as_object().unwrap() {
        if e["accepted"] == true {
            continue;
        }
        let (s, b) = post_scans(&app, &app.archivist, &id, scans_zip(name)).await;
        assert_eq!(s, 422, "{name}: {b}");
        assert_eq!(b["error"], "rejected", "{name}: {b}");
        let problems = b["problems"].as_array().unwrap();
        for p in e["problems"].as_array().unwrap() {
            let (code, at) = (p[0].as_str().unwrap(), p[1].as_str().unwrap());
            assert!(
                problems.iter().any(|q| q["code"] == code
                    && (q["path"].as_str() == Some(at)
                        || q["field"].as_str().is_some_and(|f| f.contains(at)))),
                "{name}: expected {code} at {at} in {b}"
            );
        }
        // Nothing else than what the fixture carries.
        assert_eq!(
            problems.len(),
            e["problems"].as_array().unwrap().len(),
            "{name}: {b}"
        );
    }
    // The lying tag is explained with the numbers that expose it.
    let (_, b) = post_scans(&app, &app.archivist, &id, scans_zip("bad-lying-dpi")).await;
    let msg = b["problems"].to_string();
    assert!(
        msg.contains("says 300 dpi") && msg.contains("150 dpi"),
        "{b}"
    );

    let (_, case) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
        .await;
    assert_eq!(case["version"], 1, "refusals change nothing: {case}");
    assert_eq!(case["versions"].as_array().unwrap().len(), 1);
    // Nothing half-written: one stored package for the case, nothing left in staging.
    let stored = |app: &TestApp| {
        app.stored_packages()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(id.as_str()))
            .count()
    };
    assert_eq!(stored(&app), 1);
    assert_eq!(staging_files(app.dir.path()), Vec::<PathBuf>::new());

    let mut version = 1;
    let mut pages = 0;
    for (name, e) in want.as_object().unwrap() {
        if e["accepted"] != true {
            continue;
        }
        let (s, b) = post_scans(&app, &app.archivist, &id, scans_zip(name)).await;
        assert_eq!(s, 201, "{name}: {b}");
        version += 1;
        pages += e["pages"].as_i64().unwrap();
        assert_eq!(b["version"], version, "{name}: {b}");
        assert_eq!(b["pages"], e["pages"], "{name}: {b}");
        for img in b["images"].as_array().unwrap() {
            assert!(img["dpi"].as_u64().unwrap() >= 200, "{name}: {img}");
        }
    }
    let (_, case) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{id}"))
        .await;
    assert_eq!(case["version"], version);
    assert_eq!(
        stored(&app) as i64,
        version,
        "one stored object per version"
    );
    assert_eq!(case["digitised_pages"], pages);
    let versions = case["versions"].as_array().unwrap();
    assert_eq!(versions.len() as i64, version);
    for w in versions.windows(2) {
        assert_eq!(
            w[1]["previous_sha256"], w[0]["tagmanifest_sha256"],
            "{case}"
        );
    }
    // The scans are files of the case, each read where it lies in its version's package.
    let tif = case["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("images/form.tif"))
        .expect("the TIFF is listed")
        .clone();
    let (s, bytes) = app
        .get_bytes(
            &app.archivist,
            &format!("/api/v1/cases/{id}/files/{}", tif["path"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        bytes,
        std::fs::read(scans_dir("tiff-g4-ok").join("images/form.tif")).unwrap()
    );
    // Other roles may not add scans; no case, no scans.
    let (s, _) = post_scans(&app, &app.submitter, &id, scans_zip("jpeg-ok")).await;
    assert_eq!(s, 403);
    let (s, b) = post_scans(&app, &app.archivist, "no-such-case", scans_zip("jpeg-ok")).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = post_scans(&app, &app.archivist, &id, b"not a zip".to_vec()).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("not_a_zip")), "{b}");
}

/// An auditor token made for content (`token create --role auditor --content`).
async fn content_auditor(app: &TestApp) -> String {
    guidang::auth::create_token_until(
        app.archive.db(),
        "auditor",
        None,
        Some("auditor with content"),
        None,
        true,
    )
    .await
    .unwrap()
    .0
}

async fn download(app: &TestApp, id: &str, version: i64, to: &Path) -> PathBuf {
    let auditor = content_auditor(app).await;
    let (s, bytes) = app
        .get_bytes(
            &auditor,
            &format!("/api/v1/cases/{id}/package?version={version}"),
        )
        .await;
    assert_eq!(s, 200);
    let p = to.join(format!("{id}.v{version}.zip"));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn verify(args: &[&Path], extra: &[&str]) -> (i32, Value) {
    let out = Command::new(bin())
        .arg("verify")
        .args(args)
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

fn check<'a>(pkg: &'a Value, name: &str) -> &'a Value {
    pkg["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or(&Value::Null)
}

/// An auditor downloads each version and verifies it offline: every version alone, and the newest
/// proves it extends the earlier one. The CLI adds scans the same way as the route; bagit-python
/// accepts a version as a bag; a version that does not extend the one given fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_verify_alone_and_as_a_chain() {
    let app = TestApp::spawn().await;
    let db = app.archive.settings().database_url();
    let id = app
        .archive_case("D-2", "2025-05-10T10:00:00+08:00", "D30")
        .await;
    let other = app
        .archive_case("D-3", "2025-05-11T10:00:00+08:00", "D30")
        .await;

    // Offline, beside the running server: refused with the problem listed, exit 1 ...
    let out = guidang(app.dir.path(), &db)
        .args(["digitised", "add", &id])
        .arg(scans_dir("bad-150dpi"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("resolution_too_low images/licence-0001.jpg"),
        "{text}"
    );
    // ... and added, exit 0.
    let out = guidang(app.dir.path(), &db)
        .args(["digitised", "add", &id])
        .arg(scans_dir("jpeg-ok"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("as package version 2"), "{text}");

    let dir = app.dir.path();
    let keys = dir.join("keys.json");
    std::fs::write(&keys, app.keys().await.to_string()).unwrap();
    let keys_arg = ["--trusted-keys", keys.to_str().unwrap()];
    let v1 = download(&app, &id, 1, dir).await;
    let v2 = download(&app, &id, 2, dir).await;
    let (s, b) = app
        .get_bytes(
            &content_auditor(&app).await,
            &format!("/api/v1/cases/{id}/package?version=3"),
        )
        .await;
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&b));

    // Version 2 alone: valid, and it says which version it extends without claiming the chain.
    let (code, r) = verify(&[&v2], &keys_arg);
    assert_eq!(code, 0, "{r}");
    let p = &r["packages"][0];
    assert_eq!(p["version"], 2);
    assert_eq!(check(p, "version")["status"], "pass", "{p}");
    assert_eq!(check(p, "version_chain")["status"], "not_configured", "{p}");
    // With version 1: the chain is checked.
    let (code, r) = verify(
        &[&v2],
        &[&keys_arg[..], &["--previous", v1.to_str().unwrap()]].concat(),
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        check(&r["packages"][0], "version_chain")["status"],
        "pass",
        "{r}"
    );
    // The first version of another case is not what version 2 extends.
    let w = download(&app, &other, 1, dir).await;
    let wrong = dir.join(format!("{id}.v1-wrong.zip"));
    std::fs::copy(&w, &wrong).unwrap();
    let (code, r) = verify(&[&v2, &wrong], &keys_arg);
    assert_eq!(
        code, 0,
        "another case's package is simply not this chain: {r}"
    );
    assert_eq!(
        check(&r["packages"][0], "version_chain")["status"],
        "not_configured"
    );
    // A tampered version 1 breaks the chain even though version 2 is intact.
    let mut bytes = std::fs::read(&v1).unwrap();
    let at = bytes
        .windows(b"Payload-Oxum".len())
        .position(|w| w == b"Payload-Oxum")
        .unwrap();
    bytes[at + 14] ^= 0x01;
    let bad = dir.join("tampered.v1.zip");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, r) = verify(
        &[&v2],
        &[&keys_arg[..], &["--previous", bad.to_str().unwrap()]].concat(),
    );
    assert_eq!(code, 1, "{r}");
    assert_eq!(
        check(&r["packages"][0], "version_chain")["status"],
        "fail",
        "{r}"
    );

    // The evidence of version 2 (no payload) proves it too, and names the declaration checked.
    let (s, ev) = app
        .get_bytes(
            &app.auditor,
            &format!("/api/v1/cases/{id}/evidence?version=2"),
        )
        .await;
    assert_eq!(s, 200);
    let evp = dir.join("v2.evidence.zip");
    std::fs::write(&evp, ev).unwrap();
    let (code, r) = verify(&[&evp], &keys_arg);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["packages"][0]["evidence"], true, "{r}");
    assert_eq!(check(&r["packages"][0], "version")["status"], "pass", "{r}");
    assert_eq!(
        check(&r["packages"][0], "log_inclusion")["status"],
        "pass",
        "{r}"
    );
    let (_, r) = verify(&[&v2], &keys_arg);
    assert!(
        check(&r["packages"][0], "xml_documents")["detail"]
            .as_str()
            .unwrap()
            .contains("data/digitised/2/digitisation.xml"),
        "{r}"
    );

    // Any BagIt tool accepts a version as a bag.
    let dest = dir.join("bag-v2");
    zip::ZipArchive::new(std::fs::File::open(&v2).unwrap())
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
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Version 2 holds the scans and the declaration, not another copy of the submission.
    let names: Vec<String> = zip::ZipArchive::new(std::fs::File::open(&v2).unwrap())
        .unwrap()
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("data/digitised/2/digitisation.xml")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("data/submission/")),
        "{names:?}"
    );
    // The log proof of version 2 leads to the log like any package's.
    let (s, proof) = app
        .get_bytes(&app.auditor, &format!("/api/v1/cases/{id}/proof?version=2"))
        .await;
    assert_eq!(s, 200);
    std::fs::write(dir.join("v2.proof"), proof).unwrap();
    let (code, r) = verify(
        &[&v2],
        &[
            &keys_arg[..],
            &["--proof", dir.join("v2.proof").to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        check(&r["packages"][0], "log_inclusion")["status"],
        "pass",
        "{r}"
    );
}

/// Fixity audits and the filing check cover every version: damage to version 1 is found though
/// version 2 is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_and_filing_check_every_version() {
    let app = TestApp::spawn().await;
    let id = app
        .archive_case("D-4", "2025-05-10T10:00:00+08:00", "D30")
        .await;
    let (s, b) = post_scans(&app, &app.archivist, &id, scans_zip("pdf-ok")).await;
    assert_eq!(s, 201, "{b}");
    let r = app
        .client
        .post(app.url(&format!("/api/v1/cases/{id}/verify")))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    let audit: Value = r.json().await.unwrap();
    assert_eq!(audit["ok"], true, "{audit}");

    // Damage version 1 where it is stored.
    let v1 = app
        .stored_packages()
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&id) && p.to_string_lossy().ends_with("v1.zip"))
        .expect("version 1 is stored");
    let mut bytes = std::fs::read(&v1).unwrap();
    let at = bytes
        .windows(b"Payload-Oxum".len())
        .position(|w| w == b"Payload-Oxum")
        .unwrap();
    bytes[at + 14] ^= 0x01;
    std::fs::write(&v1, &bytes).unwrap();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/cases/{id}/verify")))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    let audit: Value = r.json().await.unwrap();
    assert_eq!(audit["ok"], false, "{audit}");
    assert!(
        audit["findings"].to_string().contains("version 1"),
        "{audit}"
    );

    let (s, b) = app
        .post_json(
            &app.archivist,
            "/api/v1/filings",
            serde_json::json!({"year": 2025}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["refused"], 1, "{b}");
    let (_, case) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
        .await;
    assert!(
        case["filing"]["problem"].to_string().contains("version 1"),
        "{case}"
    );
}

/// digitisation.xml is held to `schemas/digitisation.xsd`: each variant xmllint refuses, the
/// service refuses too, naming the element; the fixture's own declaration passes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_are_held_to_their_schema() {
    let app = TestApp::spawn().await;
    let id = app
        .archive_case("D-5", "2025-05-10T10:00:00+08:00", "D30")
        .await;
    let dir = scans_dir("jpeg-ok");
    let base = std::fs::read_to_string(dir.join("digitisation.xml")).unwrap();
    let variants: Vec<(&str, String, &str, &str)> = vec![
        ("unchanged", base.clone(), "", ""),
        (
            "duplicate id",
            base.replace("<id>licence</id>", "<id>form</id>"),
            "field_invalid",
            "originals/original[2]/id",
        ),
        (
            "colour mode",
            base.replacen("<colour_mode>color", "<colour_mode>sepia", 1),
            "field_invalid",
            "images/image[1]/colour_mode",
        ),
        (
            "no scanner",
            base.replace("<scanner>Fujitsu fi-7160</scanner>", ""),
            "field_missing",
            "scanner",
        ),
        (
            "page zero",
            base.replacen("<page>1</page>", "<page>0</page>", 1),
            "field_invalid",
            "images/image[1]/page",
        ),
        (
            "bad date",
            base.replace("2026-11-30", "2026-13-40"),
            "field_invalid",
            "date",
        ),
        (
            "bad paper",
            base.replacen("<paper>A4</paper>", "<paper>A9</paper>", 1),
            "field_invalid",
            "originals/original[1]/paper",
        ),
        (
            "unknown element",
            base.replacen(
                "<format>jpeg</format>",
                "<format>jpeg</format><comment>x</comment>",
                1,
            ),
            "field_invalid",
            "images/image[1]/comment",
        ),
        (
            "namespace",
            base.replace("urn:guidang:digitisation:1", "urn:example:other"),
            "metadata_invalid",
            "digitisation",
        ),
    ];
    let images: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                format!("images/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    for (name, xml, code, field) in &variants {
        let path = app.dir.path().join("variant.xml");
        std::fs::write(&path, xml).unwrap();
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(fixtures().join("../schemas/digitisation.xsd"))
            .arg(&path)
            .output()
            .expect("xmllint (libxml2-utils, installed by .ci/run)");
        assert_eq!(
            out.status.success(),
            code.is_empty(),
            "xmllint on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code.is_empty() {
            continue;
        }
        let mut entries: Vec<(&str, &[u8])> = vec![("digitisation.xml", xml.as_bytes())];
        entries.extend(images.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
        let (s, b) = post_scans(&app, &app.archivist, &id, zip_of(&entries)).await;
        assert_eq!(s, 422, "{name}: {b}");
        assert!(
            b["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["code"] == *code && p["field"] == *field),
            "{name}: expected {code} at {field}: {b}"
        );
    }
}

/// A crash between storing a new version and recording it leaves the case at its old version;
/// the next start removes the orphan, and adding the scans again makes the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_adding_scans_leaves_the_case_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    crate::cli::init(dir.path(), &db);
    let out = guidang(dir.path(), &db)
        .arg("import")
        .arg(fixtures().join("valid/food-licence.zip"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let id = text
        .split("-> ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("archive id")
        .to_string();
    let stored = || {
        let mut n = 0;
        let mut stack = vec![dir.path().join("objects/packages").join(&id)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    n += 1;
                }
            }
        }
        n
    };
    assert_eq!(stored(), 1);
    let out = guidang(dir.path(), &db)
        .args(["digitised", "add", &id])
        .arg(scans_dir("jp2-ok"))
        .env("GUIDANG_FAILPOINT", "version_after_store")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the process died");
    assert_eq!(
        stored(),
        2,
        "the new version had reached storage before the crash"
    );

    // The next start removes the orphan; the case is still at version 1 and takes the scans.
    let out = guidang(dir.path(), &db)
        .args(["digitised", "add", &id])
        .arg(scans_dir("jp2-ok"))
        .env("GUIDANG_RECOVERY_GRACE_SECS", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("as package version 2"), "{text}");
    assert_eq!(stored(), 2, "the orphan went, the new version stayed");
}
