//! The DA/T 70 four-property check report (archiving stage), and virus scanning by the real
//! ClamAV engine loaded with a one-signature database for the EICAR test string.

use crate::common::*;
use std::io::Read;

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn result_of(report: &serde_json::Value, code: &str) -> String {
    report["stages"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == code)
        .unwrap_or_else(|| panic!("{code} in {report}"))["result"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_archived_case_carries_its_archiving_check_report() {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let id = b["archive_id"].as_str().unwrap();
    let (s, r) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{id}/checks"))
        .await;
    assert_eq!(s, 200);
    let items = r["stages"][0]["items"].as_array().unwrap();
    for p in ["GD-1-", "GD-2-", "GD-3-", "GD-4-"] {
        assert!(
            items
                .iter()
                .any(|i| i["code"].as_str().unwrap().starts_with(p)),
            "{p}"
        );
    }
    assert_eq!(result_of(&r, "GD-1-1"), "pass");
    assert_eq!(
        result_of(&r, "GD-1-2"),
        "pass",
        "the fixture declares the SHA-256 of its five files"
    );
    assert_eq!(result_of(&r, "GD-2-4"), "pass", "one e-licence");
    // Nothing configured is never reported as passed; online submissions have no carrier.
    assert_eq!(result_of(&r, "GD-4-1"), "not_configured");
    assert_eq!(result_of(&r, "GD-4-2"), "not_applicable");
    // The same report is inside the package.
    let (_, pkg) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id}/package"))
        .await;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(pkg)).unwrap();
    let mut xml = String::new();
    z.by_name(&format!("{id}/data/archive.xml"))
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    assert!(
        xml.contains("<check code=\"GD-4-1\" property=\"security\" result=\"not_configured\""),
        "{xml}"
    );

    // Offline: the carrier needs a person.
    let out = std::process::Command::new(bin())
        .arg("import")
        .arg(fixtures().join("valid/with-docx.zip"))
        .env("GUIDANG_DATA_DIR", app.dir.path())
        .env("DATABASE_URL", app.archive.settings().database_url())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (_, list) = app
        .get_json(&app.auditor, "/api/v1/cases?q=370102-SPJY-20250303-0002")
        .await;
    let id2 = list["items"][0]["archive_id"].as_str().unwrap();
    let (_, r2) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{id2}/checks"))
        .await;
    assert_eq!(result_of(&r2, "GD-4-2"), "manual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamav_rejects_a_submission_carrying_eicar() {
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("guidang-test.ndb");
    std::fs::write(
        &db,
        format!("Guidang-Test-EICAR:0:*:{}\n", hex::encode(EICAR)),
    )
    .unwrap();
    let app = TestApp::spawn_with(|s| {
        s.antivirus.clamscan = Some("clamscan".into());
        s.antivirus.database = Some(db.clone());
    })
    .await;

    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(
        s, 201,
        "clamscan (Debian's clamav, installed by scripts/test.sh) must run: {b}"
    );
    let id = b["archive_id"].as_str().unwrap();
    let (_, r) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{id}/checks"))
        .await;
    assert_eq!(result_of(&r, "GD-4-1"), "pass");

    let infected = valid_with_metadata(|m| {
        m.replace("370102-SPJY-20250303-0001", "370102-SPJY-20250303-0099").replace(
            "  </files>",
            "    <file><path>files/06-说明.txt</path><name>说明</name><stage>3</stage><format>txt</format></file>\n  </files>",
        )
    });
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(infected)).unwrap();
    let mut entries: Vec<(String, Vec<u8>)> = vec![];
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let mut v = vec![];
        e.read_to_end(&mut v).unwrap();
        entries.push((e.name().unwrap().to_string(), v));
    }
    entries.push(("files/06-说明.txt".into(), EICAR.to_vec()));
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (s, b) = app.submit(&app.archivist, zip_of(&refs)).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(problem_codes(&b), ["virus_found"]);
    assert_eq!(b["problems"][0]["path"], "files/06-说明.txt");
    assert!(
        b["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Guidang-Test-EICAR")
    );
    assert_eq!(
        app.stored_packages().len(),
        1,
        "nothing stored for the infected submission"
    );
}

/// Issue 9, item 12: every item performs its check or says it did not (`not_checked`, `manual`)
/// and why; formats carry their PRONOM identifiers; embedded signatures are found and reported as
/// not checked; the archiving environment is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_items_claim_only_what_they_checked() {
    use std::io::Write;
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["archive_id"].as_str().unwrap();
    let (_, r) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{id}/checks"))
        .await;
    let detail_of = |code: &str| {
        r["stages"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["code"] == code)
            .map(|i| i["detail"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        result_of(&r, "GD-3-2"),
        "not_checked",
        "readability is not rendered"
    );
    assert!(detail_of("GD-3-2").contains("not checked"));
    assert_eq!(result_of(&r, "GD-4-3"), "manual");
    assert!(!detail_of("GD-2-1").contains("as listed in metadata.xml"));
    assert!(detail_of("GD-2-1").contains("declares no sizes"));
    assert_eq!(result_of(&r, "GD-1-6"), "not_applicable");
    assert_eq!(result_of(&r, "GD-1-7"), "pass");
    assert_eq!(result_of(&r, "GD-2-5"), "pass");
    assert_eq!(result_of(&r, "GD-2-6"), "pass");
    assert!(
        detail_of("GD-2-6").contains("guidang "),
        "{}",
        detail_of("GD-2-6")
    );
    // PRONOM identifiers next to the project's format names.
    let (_, case) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
        .await;
    for f in case["files"].as_array().unwrap() {
        match f["format"].as_str().unwrap() {
            "pdf" => assert!(
                f["puid"].as_str().is_some_and(|p| p.starts_with("fmt/")),
                "{f}"
            ),
            "ofd" => assert!(f["puid"].is_null(), "PRONOM has no OFD: {f}"),
            _ => {}
        }
    }
    let (_, pkg) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id}/package"))
        .await;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(pkg)).unwrap();
    let mut xml = String::new();
    z.by_name(&format!("{id}/data/archive.xml"))
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    assert!(xml.contains("puid=\"fmt/"), "{xml}");
    assert!(xml.contains("<environment>guidang "), "{xml}");

    // A licence OFD with a seal: found, and its validity reported as not checked.
    let entries = valid_entries();
    let mut signed = vec![];
    for (name, bytes) in &entries {
        let bytes = if name.ends_with(".ofd") && name.starts_with("licenses/") {
            let mut src = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for i in 0..src.len() {
                w.raw_copy_file(src.by_index(i).unwrap()).unwrap();
            }
            w.start_file(
                "Doc_0/Signs/Signatures.xml",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            w.write_all(b"<?xml version=\"1.0\"?><ofd:Signatures xmlns:ofd=\"http://www.ofdspec.org/2016\"/>")
                .unwrap();
            w.finish().unwrap().into_inner()
        } else {
            bytes.clone()
        };
        signed.push((name.clone(), bytes));
    }
    let meta = String::from_utf8(
        signed
            .iter()
            .find(|(n, _)| n == "metadata.xml")
            .unwrap()
            .1
            .clone(),
    )
    .unwrap()
    .replace("370102-SPJY-20250303-0001", "370102-SPJY-20250303-0002");
    let refs: Vec<(&str, &[u8])> = signed
        .iter()
        .map(|(n, b)| {
            if n == "metadata.xml" {
                (n.as_str(), meta.as_bytes())
            } else {
                (n.as_str(), b.as_slice())
            }
        })
        .collect();
    let (s, b) = app.submit(&app.archivist, zip_of(&refs)).await;
    assert_eq!(s, 201, "{b}");
    let id = b["archive_id"].as_str().unwrap();
    let (_, r) = app
        .get_json(&app.auditor, &format!("/api/v1/cases/{id}/checks"))
        .await;
    assert_eq!(result_of(&r, "GD-1-6"), "not_checked", "{r}");
}
