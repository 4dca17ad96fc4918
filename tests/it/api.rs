//! The online archiving API (CONTRACT.md §3) end to end over real HTTP, on the backend chosen by
//! GUIDANG_TEST_DB (SQLite by default, PostgreSQL in CI's second run).

use crate::common::*;
use std::io::Read;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_case_is_archived_and_can_be_inspected_and_downloaded() {
    let app = TestApp::spawn().await;
    let zip = fixture("valid/food-licence.zip");
    let r = app
        .client
        .post(app.url("/api/v1/cases"))
        .bearer_auth(&app.submitter)
        .header("content-type", "application/zip")
        .body(zip.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    let id = body["archive_id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/cases/{id}"));
    assert_eq!(body["package"]["signature"]["algorithm"], "Ed25519");
    assert_eq!(body["year"], 2025);

    // Every file's digests are those of the bytes sent, and its format is identified from content.
    for (name, bytes) in valid_entries() {
        let f = body["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(f["sha256"], sha256_hex(&bytes), "{name}");
        assert_eq!(f["size"], bytes.len(), "{name}");
        assert_eq!(f["sm3"].as_str().unwrap().len(), 64);
    }
    let fmt = |p: &str| {
        body["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .unwrap()["format"]
            .clone()
    };
    assert_eq!(fmt("files/05-准予许可决定书.ofd"), "ofd");
    assert_eq!(fmt("files/03-现场核查照片.jpg"), "jpeg");
    assert_eq!(fmt("licenses/食品经营许可证.ofd"), "ofd");
    let pdfa = body["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "files/04-审查意见.pdf")
        .unwrap();
    assert_eq!(pdfa["note"], "PDF/A-2B");

    // Inspect as archivist: metadata in full, events, package digest.
    let (s, case) = app.get_json(&app.archivist, &location).await;
    assert_eq!(s, 200);
    assert_eq!(case["metadata"]["apply_card_no"], "370102199001011234");
    assert_eq!(case["licenses"][0]["number"], "JY23701020012345");
    assert_eq!(case["package"]["digest"], body["package"]["digest"]);
    let kinds: Vec<&str> = case["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["received", "validated", "signed", "stored"]);
    // The auditor does not need the applicant's ID number or name.
    let (_, audited) = app.get_json(&app.auditor, &location).await;
    assert_eq!(audited["metadata"]["apply_card_no"], "3701************34");
    assert_ne!(audited["metadata"]["apply_name"], "王小明");

    // One file's bytes, served straight from the stored package.
    let (s, bytes) = app
        .get_bytes(
            &app.archivist,
            &format!("{location}/files/files/01-食品经营许可申请书.pdf"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bytes, fixture("files/application.pdf"));
    let (s, _) = app
        .get_bytes(&app.archivist, &format!("{location}/files/files/nope.pdf"))
        .await;
    assert_eq!(s, 404);

    // The package: one top folder named by the archive id, the submission byte for byte.
    let (s, pkg) = app
        .get_bytes(&app.archivist, &format!("{location}/package"))
        .await;
    assert_eq!(s, 200);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(pkg.clone())).unwrap();
    for (name, bytes) in valid_entries() {
        let mut e = z
            .by_name(&format!("{id}/data/submission/{name}"))
            .unwrap_or_else(|_| panic!("{name} in package"));
        let mut got = vec![];
        e.read_to_end(&mut got).unwrap();
        assert_eq!(got, bytes, "{name} kept byte for byte");
    }
    for tag in [
        "bagit.txt",
        "bag-info.txt",
        "manifest-sha256.txt",
        "manifest-sm3.txt",
        "tagmanifest-sha256.txt",
        "signature.json",
        "data/archive.xml",
    ] {
        assert!(z.by_name(&format!("{id}/{tag}")).is_ok(), "{tag}");
    }
    let mut tagm = String::new();
    z.by_name(&format!("{id}/tagmanifest-sha256.txt"))
        .unwrap()
        .read_to_string(&mut tagm)
        .unwrap();
    assert_eq!(
        sha256_hex(tagm.as_bytes()),
        body["package"]["digest"].as_str().unwrap()
    );
    assert!(!tagm.contains("signature.json"));
    let mut archive_xml = String::new();
    z.by_name(&format!("{id}/data/archive.xml"))
        .unwrap()
        .read_to_string(&mut archive_xml)
        .unwrap();
    assert!(archive_xml.contains(&format!("<archive_id>{id}</archive_id>")));
    assert!(archive_xml.contains("<proposed>D30</proposed>"));
    assert!(archive_xml.contains("algorithm=\"SM3\""));

    // Published keys verify the signature over the tag manifest.
    let keys = app.keys().await;
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "package")
        .unwrap();
    assert_eq!(key["key_id"], body["package"]["signature"]["key_id"]);
    guidang::signing::verify_signature(
        key["public_key"].as_str().unwrap(),
        body["package"]["signature"]["signature"].as_str().unwrap(),
        tagm.as_bytes(),
    )
    .expect("signature verifies with the published key");

    // The list shows it; filters narrow it.
    let (_, list) = app
        .get_json(&app.archivist, "/api/v1/cases?year=2025")
        .await;
    assert_eq!(list["total"], 1);
    let (_, list) = app
        .get_json(&app.archivist, "/api/v1/cases?year=2024")
        .await;
    assert_eq!(list["total"], 0);
    let (_, list) = app
        .get_json(&app.archivist, "/api/v1/cases?q=%E6%B3%89%E5%9F%8E")
        .await; // 泉城
    assert_eq!(list["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_fixture_is_refused_with_its_code_and_nothing_is_archived() {
    let app = TestApp::spawn().await;
    let (s, _) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
    let mut seen = 0;
    let mut names: Vec<_> = std::fs::read_dir(fixtures().join("bad"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for path in names {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let code = stem.split('-').next().unwrap().to_string();
        let (status, body) = app
            .submit(&app.archivist, std::fs::read(&path).unwrap())
            .await;
        let want_status = match code.as_str() {
            "not_a_zip" => 400,
            "case_exists" => 409,
            _ => 422,
        };
        assert_eq!(status, want_status, "{stem}: {body}");
        let codes = problem_codes(&body);
        assert!(
            codes.contains(&code),
            "{stem}: expected {code}, got {codes:?}"
        );
        for p in body["problems"].as_array().unwrap() {
            if code != "not_a_zip" {
                assert!(
                    p["path"].is_string() || p["field"].is_string(),
                    "{stem}: a problem names its file or field: {p}"
                );
            }
            assert!(!p["message"].as_str().unwrap().is_empty());
        }
        seen += 1;
    }
    assert!(seen >= 30, "all bad fixtures ran ({seen})");
    let (_, list) = app.get_json(&app.archivist, "/api/v1/cases").await;
    assert_eq!(list["total"], 1, "only the valid case exists");
    assert_eq!(
        app.stored_packages().len(),
        1,
        "no package stored for a rejected submission"
    );
    let leftovers = staging_files(app.dir.path());
    assert!(
        leftovers.is_empty(),
        "staging is empty after rejections: {leftovers:?}"
    );
    // The traversal entry was never written anywhere.
    assert!(!app.dir.path().join("../../etc/cron.d/evil").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_lists_every_problem_at_once() {
    let app = TestApp::spawn().await;
    let body = valid_with_metadata(|m| {
        m.replace("<task_name>食品经营许可</task_name>", "")
            .replace(
                "<region_code>370102</region_code>",
                "<region_code>3701</region_code>",
            )
            .replace(
                "2025-03-18T16:40:00+08:00</transact_time>",
                "2025-03-01T16:40:00+08:00</transact_time>",
            )
            .replace("<result>approved</result>", "<result>ok</result>")
    });
    let (s, b) = app.submit(&app.archivist, body).await;
    assert_eq!(s, 422);
    let fields: Vec<String> = b["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["field"].as_str().map(str::to_string))
        .collect();
    for f in ["task_name", "region_code", "transact_time", "result"] {
        assert!(fields.contains(&f.to_string()), "{f} reported: {b}");
    }
    let before = b["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["field"] == "transact_time")
        .unwrap();
    assert!(
        before["message"]
            .as_str()
            .unwrap()
            .contains("before receive_time")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_come_back_with_an_accepted_case() {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/with-docx.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
    let w = b["warnings"].as_array().unwrap();
    assert!(
        w.iter()
            .any(|w| w["code"] == "not_fixed_layout" && w["path"] == "files/06-现场核查记录.docx"),
        "{b}"
    );
    let txt = b["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "files/07-办件备注.txt")
        .unwrap();
    assert_eq!(txt["format"], "txt");
    assert_eq!(txt["note"], "encoding GB18030");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_identical_is_200_other_content_is_409_and_twenty_at_once_make_one_case() {
    let app = TestApp::spawn().await;
    let zip = fixture("valid/food-licence.zip");
    let mut handles = vec![];
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/api/v1/cases");
        let tok = app.archivist.clone();
        let body = zip.clone();
        handles.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(tok)
                .header("content-type", "application/zip")
                .body(body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            let b: serde_json::Value = r.json().await.unwrap();
            (s, b["archive_id"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let (s, id) = h.await.unwrap();
        assert!(s == 201 || s == 200, "status {s}");
        if s == 201 {
            created += 1;
        }
        ids.insert(id);
    }
    assert_eq!(created, 1, "exactly one submission created the case");
    assert_eq!(ids.len(), 1, "all answers name the same case");
    assert_eq!(app.stored_packages().len(), 1, "one package stored");

    // Re-zipped with the same files in another order is still the identical submission.
    let mut entries = valid_entries();
    entries.reverse();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (s, b) = app.submit(&app.archivist, zip_of(&refs)).await;
    assert_eq!(s, 200);
    assert_eq!(
        &b["archive_id"].as_str().unwrap().to_string(),
        ids.iter().next().unwrap()
    );

    let (s, b) = app
        .submit(&app.archivist, fixture("bad/case_exists.zip"))
        .await;
    assert_eq!(s, 409);
    assert_eq!(problem_codes(&b), ["case_exists"]);
    assert_eq!(
        &b["archive_id"].as_str().unwrap().to_string(),
        ids.iter().next().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let app = TestApp::spawn().await;
    let zip = fixture("valid/food-licence.zip");
    // No token, unknown token: 401.
    let r = app
        .client
        .post(app.url("/api/v1/cases"))
        .body(zip.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (s, b) = app.submit("gd_not-a-token", zip.clone()).await;
    assert_eq!(s, 401);
    assert_eq!(b["error"], "unauthorized");
    // Auditors and admins may not submit.
    assert_eq!(app.submit(&app.auditor, zip.clone()).await.0, 403);
    assert_eq!(app.submit(&app.admin, zip.clone()).await.0, 403);
    // A submitter of another organisation may not submit this organisation's case.
    let other = guidang::auth::create_token(
        app.archive.db(),
        "submitter",
        Some("91370102MA3C5XY7KE"),
        None,
    )
    .await;
    let other = match other {
        Ok((t, _)) => t,
        Err(_) => {
            let code = guidang::codes::uscc_with_check("91370102MA3C5XY7K").unwrap();
            guidang::auth::create_token(app.archive.db(), "submitter", Some(&code), None)
                .await
                .unwrap()
                .0
        }
    };
    assert_eq!(app.submit(&other, zip.clone()).await.0, 403);
    let (s, b) = app.submit(&app.submitter, zip.clone()).await;
    assert_eq!(s, 201);
    let id = b["archive_id"].as_str().unwrap();
    // Submitters see their own organisation's cases only; they may not download packages.
    assert_eq!(
        app.get_json(&app.submitter, "/api/v1/cases").await.1["total"],
        1
    );
    assert_eq!(app.get_json(&other, "/api/v1/cases").await.1["total"], 0);
    assert_eq!(
        app.get_json(&other, &format!("/api/v1/cases/{id}")).await.0,
        404
    );
    assert_eq!(
        app.get_bytes(&app.submitter, &format!("/api/v1/cases/{id}/package"))
            .await
            .0,
        403
    );
    // Tokens are stored hashed.
    let row = app
        .archive
        .db()
        .token_by_hash(
            &guidang::auth::hash_token(&app.archivist),
            "2000-01-01T00:00:00.000Z",
        )
        .await
        .unwrap();
    assert!(row.is_some());
    assert!(
        app.archive
            .db()
            .token_by_hash(&app.archivist, "2000-01-01T00:00:00.000Z")
            .await
            .unwrap()
            .is_none()
    );
    // Public routes.
    assert_eq!(
        app.client
            .get(app.url("/api/v1/keys"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "ok");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("guidang_cases_archived_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_without_inflating_or_crashing() {
    let app = TestApp::spawn_with(|s| {
        s.limits.max_body_bytes = 2 << 20;
        s.limits.max_entries = 20;
        s.limits.max_total_bytes = 1 << 20;
    })
    .await;
    // Over the body limit: 413, with or without a Content-Length.
    let (s, b) = app.submit(&app.archivist, vec![0u8; 3 << 20]).await;
    assert_eq!(s, 413, "{b}");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'x'; 100_000])).collect();
    let r = app
        .client
        .post(app.url("/api/v1/cases"))
        .bearer_auth(&app.archivist)
        .header("content-type", "application/zip")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
    }
    // Too many entries; declared sizes over the total.
    let many: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| (format!("files/{i}.txt"), b"x\n".to_vec()))
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (s, b) = app.submit(&app.archivist, zip_of(&refs)).await;
    assert_eq!(s, 422);
    assert_eq!(problem_codes(&b), ["zip_limits"]);
    let big = vec![b'a'; 1_500_000];
    let (s, b) = app
        .submit(
            &app.archivist,
            zip_of(&[("metadata.xml", b"<x/>"), ("files/big.txt", &big)]),
        )
        .await;
    assert_eq!(s, 422);
    assert!(problem_codes(&b).contains(&"zip_limits".to_string()), "{b}");
    // Garbage, an empty body and a truncated ZIP are 400 not_a_zip.
    for body in [
        b"PK\x03\x04garbage".to_vec(),
        vec![],
        fixture("valid/food-licence.zip")[..5000].to_vec(),
    ] {
        let (s, b) = app.submit(&app.archivist, body).await;
        assert_eq!(s, 400);
        assert_eq!(problem_codes(&b), ["not_a_zip"]);
    }
    // A ZIP whose central directory claims a size its data does not have is damaged, not archived.
    let mut z = fixture("valid/food-licence.zip");
    let n = z.len();
    z[n / 3] ^= 0xff;
    let (s, _) = app.submit(&app.archivist, z).await;
    assert!(s == 400 || s == 422, "corrupt data is refused ({s})");
    // The server is still up and nothing was stored.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert!(app.stored_packages().is_empty());
    // Wrong media type.
    let r = app
        .client
        .post(app.url("/api/v1/cases"))
        .bearer_auth(&app.archivist)
        .header("content-type", "multipart/form-data")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfd_file_names_match_their_nfc_listing() {
    let app = TestApp::spawn().await;
    // macOS writes decomposed names; metadata.xml lists the composed form.
    let entries: Vec<(String, Vec<u8>)> = valid_entries()
        .into_iter()
        .map(|(n, b)| {
            if n == "metadata.xml" {
                let m = String::from_utf8(b)
                    .unwrap()
                    .replace("files/03-现场核查照片.jpg", "files/03-photo-\u{e9}.jpg");
                (n, m.into_bytes())
            } else if n == "files/03-现场核查照片.jpg" {
                ("files/03-photo-e\u{301}.jpg".to_string(), b)
            } else {
                (n, b)
            }
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (s, b) = app.submit(&app.archivist, zip_of(&refs)).await;
    assert_eq!(s, 201, "{b}");
    assert!(
        b["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "files/03-photo-\u{e9}.jpg")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_policy_is_configuration() {
    use guidang::pipeline::identify::Action;
    // An archive that refuses office documents outright and accepts RTF without comment.
    let app = TestApp::spawn_with(|s| {
        s.format_policy
            .insert("docx".into(), Action::ProprietaryFormat);
    })
    .await;
    let (s, b) = app
        .submit(&app.archivist, fixture("valid/with-docx.zip"))
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(problem_codes(&b), ["proprietary_format"]);
    assert_eq!(b["problems"][0]["path"], "files/06-现场核查记录.docx");
    // Defaults elsewhere are untouched.
    let (s, _) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201);
}

/// A ZIP written by a streaming writer: sizes and CRC in data descriptors after each entry.
fn streamed_zip(method: zip::CompressionMethod) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut w = zip::ZipWriter::new_stream(&mut out);
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, data) in valid_entries() {
            w.start_file(name, opts).unwrap();
            w.write_all(&data).unwrap();
        }
        w.finish().unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zips_from_streaming_writers_archive_the_same_case_and_lying_local_headers_are_refused() {
    let app = TestApp::spawn().await;
    // Deflated entries with data descriptors are unpacked while they arrive.
    let (s, a) = app
        .submit(
            &app.archivist,
            streamed_zip(zip::CompressionMethod::Deflated),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("guidang_ingests_unpacked_while_receiving_total 1"),
        "{metrics}"
    );
    // Stored entries with data descriptors cannot be delimited while streaming: the spool file is
    // unpacked afterwards, with the same result (the identical submission).
    let (s, b) = app
        .submit(&app.archivist, streamed_zip(zip::CompressionMethod::Stored))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(a["archive_id"], b["archive_id"]);

    // A local header whose name disagrees with the central directory makes the ZIP ambiguous
    // (an unzip tool would write the other name): refused, naming the entry, nothing archived.
    let app = TestApp::spawn().await;
    let mut z = fixture("valid/food-licence.zip");
    let needle = "files/02-受理通知书.pdf".as_bytes();
    let at = z
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("local header name");
    z[at] = b'X';
    let (s, b) = app.submit(&app.archivist, z).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(problem_codes(&b), ["unsafe_path"], "{b}");
    assert_eq!(b["problems"][0]["path"], "files/02-受理通知书.pdf", "{b}");
    assert!(
        b["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Xiles/02"),
        "{b}"
    );
    assert!(app.stored_packages().is_empty());
}
