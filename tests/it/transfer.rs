//! Before transfer (issue 10, points 3–6): draft batches of filed cases chosen by year and filters,
//! what is left out and why, filing facts sealed into the packages, decisions by rule and by hand,
//! what blocks a batch, approval under four eyes, reopening, and refusals that write nothing.

use serde_json::{Value, json};

use crate::common::*;
use crate::digitised::{post_scans, scans_zip};

/// The valid case as `project_id`, completed at `when`, kept `retention`, with `paper` pages of
/// paper originals declared in its metadata.
fn case_with_paper(project_id: &str, when: &str, retention: &str, paper: Option<u32>) -> Vec<u8> {
    let base = case_zip(project_id, when, retention);
    let Some(pages) = paper else { return base };
    // Re-zip with <paper_pages> after <retention_period>.
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(base)).unwrap();
    let mut entries = vec![];
    for i in 0..z.len() {
        use std::io::Read;
        let mut f = z.by_index(i).unwrap();
        let mut b = vec![];
        f.read_to_end(&mut b).unwrap();
        let name = f.name().unwrap().to_string();
        if name == "metadata.xml" {
            let s = String::from_utf8(b).unwrap();
            let at = s.find("</retention_period>").unwrap() + "</retention_period>".len();
            b = format!(
                "{}\n  <paper_pages>{pages}</paper_pages>{}",
                &s[..at],
                &s[at..]
            )
            .into_bytes();
        }
        entries.push((name, b));
    }
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_of(&refs)
}

async fn archive(app: &TestApp, zip: Vec<u8>) -> String {
    let (s, b) = app.submit(&app.submitter, zip).await;
    assert_eq!(s, 201, "{b}");
    b["archive_id"].as_str().unwrap().to_string()
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["archive_id"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn decision_of<'a>(batch: &'a Value, id: &str) -> &'a Value {
    &batch["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["archive_id"] == id)
        .unwrap()["decision"]
}

fn blocker_codes(batch: &Value) -> Vec<String> {
    batch["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_drafted_decided_blocked_and_approved_under_four_eyes() {
    let app = TestApp::spawn().await;
    let a = archive(
        &app,
        case_with_paper("T-A", "2025-03-10T10:00:00+08:00", "D30", Some(2)),
    )
    .await;
    let b = archive(
        &app,
        case_with_paper("T-B", "2025-04-10T10:00:00+08:00", "D30", None),
    )
    .await;
    let c = archive(
        &app,
        case_with_paper("T-C", "2025-05-10T10:00:00+08:00", "Y", None),
    )
    .await;
    let d = archive(
        &app,
        case_with_paper("T-D", "2025-06-10T10:00:00+08:00", "D10", None),
    )
    .await;
    let e = archive(
        &app,
        case_with_paper("T-E", "2025-07-10T10:00:00+08:00", "D30", None),
    )
    .await;
    let (s, body) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/cases/{e}/holds"),
            json!({"reason": "an open information request"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (_, case_a) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{a}"))
        .await;
    assert_eq!(
        case_a["paper_pages"], 2,
        "the metadata element is read: {case_a}"
    );

    // Not filed yet: refused, naming how many cases wait; nothing is created.
    let (s, r) = app
        .post_json(&app.archivist, "/api/v1/transfers", json!({"year": 2025}))
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("year_not_filed")),
        "{r}"
    );
    assert_eq!(r["problems"][0]["count"], 5, "{r}");
    let (_, list) = app.get_json(&app.auditor, "/api/v1/transfers").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);

    let (s, r) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{r}");

    // A draft by filter: an archival-code range holding one case.
    let (_, case_d) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{d}"))
        .await;
    let code_d = case_d["archival_code"].as_str().unwrap().to_string();
    let (s, first) = app
        .post_json(
            &app.archivist,
            "/api/v1/transfers",
            json!({"year": 2025, "archival_code_from": code_d, "archival_code_to": code_d}),
        )
        .await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(ids(&first["cases"]), vec![d.clone()]);
    // Everything else of the year: the case on hold and the one in the first batch are left out.
    let (s, batch) = app
        .post_json(&app.archivist, "/api/v1/transfers", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{batch}");
    let tid = batch["transfer_id"].as_str().unwrap().to_string();
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort();
    assert_eq!(ids(&batch["cases"]), want, "{batch}");
    let excluded: Vec<(String, String)> = batch["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["archive_id"].as_str().unwrap().into(),
                x["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        excluded.contains(&(e.clone(), "on hold".into())),
        "{excluded:?}"
    );
    assert!(
        excluded
            .iter()
            .any(|(id, why)| *id == d && why.contains(first["transfer_id"].as_str().unwrap())),
        "{excluded:?}"
    );
    assert_eq!(batch["counts"]["cases"], 3);
    // By retention: the permanent case is in an open batch already, so nothing is free.
    let (s, r) = app
        .post_json(
            &app.archivist,
            "/api/v1/transfers",
            json!({"year": 2025, "retention": ["Y"]}),
        )
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("nothing_to_transfer")),
        "{r}"
    );
    assert_eq!(r["problems"][0]["archive_id"], c.as_str(), "{r}");
    assert!(batch["counts"]["bytes"].as_i64().unwrap() > 0);
    assert_eq!(batch["state"], "draft");
    assert_eq!(
        blocker_codes(&batch),
        vec!["no_decision", "not_digitised"],
        "{batch}"
    );
    assert_eq!(batch["ready"], false);

    // The filing facts are signed: each case's newest version carries them.
    let (_, case_b) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{b}"))
        .await;
    let versions = case_b["versions"].as_array().unwrap();
    assert_eq!(versions.last().unwrap()["kind"], "filing", "{case_b}");
    let auditor =
        guidang::auth::create_token_until(app.archive.db(), "auditor", None, Some("a"), None, true)
            .await
            .unwrap()
            .0;
    let (s, pkg) = app
        .get_bytes(&auditor, &format!("/api/v1/cases/{b}/package"))
        .await;
    assert_eq!(s, 200);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(pkg)).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut z.by_name(&format!("{b}/data/archive.xml")).unwrap(),
        &mut xml,
    )
    .unwrap();
    let code = case_b["archival_code"].as_str().unwrap();
    assert!(xml.contains(&format!("archival_code=\"{code}\"")), "{xml}");
    assert!(
        xml.contains(case_b["filing"]["batch_id"].as_str().unwrap()),
        "{xml}"
    );

    // Decisions for a case outside the batch: refused with the list, nothing recorded.
    let restricted = json!({"classification": {"action": "keep"}, "access": {"opinion": "restricted", "reason": "personal_information", "until": 2055}});
    let (s, r) = app
        .send_json(reqwest::Method::PUT, &app.archivist, &format!("/api/v1/transfers/{tid}/decisions"),
            json!({"cases": [{"archive_id": d, "classification": {"action": "keep"}, "access": {"opinion": "open"}},
                             {"archive_id": "no-such-case", "classification": {"action": "keep"}, "access": {"opinion": "open"}}]}))
        .await;
    assert_eq!((s, r["error"].as_str()), (422, Some("not_in_batch")), "{r}");
    let listed: Vec<&str> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["archive_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![d.as_str(), "no-such-case"]);
    // Invalid decisions: every problem named.
    let (s, r) = app
        .send_json(reqwest::Method::PUT, &app.archivist, &format!("/api/v1/transfers/{tid}/decisions"),
            json!({"rules": [{"classification": {"action": "change"}, "access": {"opinion": "restricted", "reason": "gossip"}}]}))
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("invalid_decision")),
        "{r}"
    );
    let fields: Vec<&str> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    for f in [
        "rules[0].classification.level",
        "rules[0].classification.basis",
        "rules[0].access.reason",
        "rules[0].access.until",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    let (_, now) = app
        .get_json(&app.archivist, &format!("/api/v1/transfers/{tid}"))
        .await;
    assert_eq!(now["counts"]["decided"], 0, "refusals write nothing: {now}");

    // By rule for all, a later rule for the permanent case, by hand for one case.
    let rules = json!([
        {"classification": {"action": "keep"}, "access": {"opinion": "restricted", "reason": "personal_information", "until": 2055}},
        {"match": {"retention": "Y"}, "classification": {"action": "keep"}, "access": {"opinion": "open"}}
    ]);
    let (s, r) = app
        .send_json(reqwest::Method::PUT, &app.archivist, &format!("/api/v1/transfers/{tid}/decisions"),
            json!({"rules": rules, "cases": [{"archive_id": b, "classification": {"action": "change", "level": "internal", "basis": "含企业经营信息，定为内部"}, "access": restricted["access"]}]}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(decision_of(&r, &a)["access"], "restricted");
    assert_eq!(decision_of(&r, &a)["source"], "rule 1");
    assert_eq!(
        decision_of(&r, &a)["level"],
        "none",
        "keep confirms the metadata's level"
    );
    assert_eq!(decision_of(&r, &c)["access"], "open");
    assert_eq!(decision_of(&r, &c)["source"], "rule 2");
    assert_eq!(decision_of(&r, &b)["level"], "internal");
    assert_eq!(decision_of(&r, &b)["source"], "manual");
    assert!(
        decision_of(&r, &b)["decided_by"]
            .as_str()
            .unwrap()
            .starts_with("archivist (archivist"),
        "{r}"
    );
    assert!(decision_of(&r, &b)["decided_at"].as_str().is_some());
    // A new rule set replaces the old rules' decisions; the one made by hand stays.
    let (s, r) = app
        .send_json(
            reqwest::Method::PUT,
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/decisions"),
            json!({"rules": [rules[0].clone()]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(decision_of(&r, &c)["access"], "restricted");
    assert_eq!(decision_of(&r, &b)["source"], "manual");
    assert_eq!(blocker_codes(&r), vec!["not_digitised"], "{r}");

    // Approval waits for what blocks: case A has 2 pages of paper originals and no scans.
    let (s, r) = app
        .post_json(
            &app.admin,
            &format!("/api/v1/transfers/{tid}/approve"),
            json!({}),
        )
        .await;
    assert_eq!((s, r["error"].as_str()), (422, Some("not_ready")), "{r}");
    assert!(r["message"].as_str().unwrap().contains(&a), "{r}");
    let (s, r) = post_scans(&app, &app.archivist, &a, scans_zip("jpeg-ok")).await;
    assert_eq!(s, 201, "{r}");
    let (_, now) = app
        .get_json(&app.archivist, &format!("/api/v1/transfers/{tid}"))
        .await;
    assert_eq!(now["ready"], true, "{now}");

    // Four eyes: not an archivist, not an administrator under the preparer's name.
    let (s, _) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403);
    let namesake = guidang::auth::create_token(app.archive.db(), "admin", None, Some("archivist"))
        .await
        .unwrap()
        .0;
    let (s, r) = app
        .post_json(
            &namesake,
            &format!("/api/v1/transfers/{tid}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403, "{r}");
    assert!(r["message"].as_str().unwrap().contains("four eyes"), "{r}");
    let (s, r) = app
        .post_json(
            &app.admin,
            &format!("/api/v1/transfers/{tid}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"], "approved");
    assert_eq!(r["approved_by_name"], "admin");
    let digest = r["approved_digest"].as_str().unwrap().to_string();
    // The approval is in the transparency log with the digest of what was approved.
    let entries: Vec<String> =
        sqlx::query_scalar("SELECT entry FROM log_entries WHERE kind = 'transfer'")
            .fetch_all(&app.archive.db().pool)
            .await
            .unwrap();
    assert_eq!(
        entries,
        vec![format!("guidang-transfer-v1\n{tid}\napproved\n{digest}\n")]
    );
    let (s, _) = app
        .post_json(
            &app.admin,
            &format!("/api/v1/transfers/{tid}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "an approved batch is not approved twice");

    // A change after approval reopens the batch.
    let (s, r) = app
        .send_json(reqwest::Method::PUT, &app.archivist, &format!("/api/v1/transfers/{tid}/decisions"),
            json!({"cases": [{"archive_id": c, "classification": {"action": "keep"}, "access": {"opinion": "open"}}]}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"], "draft");
    assert_eq!(r["reopened"], 1);
    assert!(r["approved_digest"].is_null());
    // A failed fixity audit of a case blocks the batch.
    let v1 = app
        .stored_packages()
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains(c.as_str()) && p.to_string_lossy().ends_with("v1.zip")
        })
        .unwrap();
    let mut bytes = std::fs::read(&v1).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"Payload-Oxum")
        .unwrap();
    bytes[at + 14] ^= 0x01;
    std::fs::write(&v1, &bytes).unwrap();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/cases/{c}/verify")))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, now) = app
        .get_json(&app.archivist, &format!("/api/v1/transfers/{tid}"))
        .await;
    assert_eq!(blocker_codes(&now), vec!["fixity_failed"], "{now}");
    assert_eq!(now["blockers"][0]["cases"], json!([c]));
    // The batch's bytes are every version of every case.
    let mut all = 0;
    for id in [&a, &b, &c] {
        let (_, v) = app
            .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
            .await;
        all += v["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["package_size"].as_i64().unwrap())
            .sum::<i64>();
    }
    assert_eq!(now["counts"]["bytes"], all);

    // Auditors and admins read batches; submitters do not; nobody but archivists drafts.
    let (s, _) = app
        .get_json(&app.auditor, &format!("/api/v1/transfers/{tid}"))
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .get_json(&app.submitter, &format!("/api/v1/transfers/{tid}"))
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .post_json(&app.admin, "/api/v1/transfers", json!({"year": 2025}))
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .get_json(&app.auditor, "/api/v1/transfers/TR-nope")
        .await;
    assert_eq!(s, 404);
}

/// A disposed case takes no scans (410) and is left out of a batch with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disposed_cases_take_no_scans() {
    let app = TestApp::spawn().await;
    let id = archive(
        &app,
        case_with_paper("T-X", "2025-03-10T10:00:00+08:00", "D30", None),
    )
    .await;
    // Disposal runs through its own four-eyes process (tests/it/disposal.rs); here only its
    // outcome matters, so the case is marked as that process leaves it.
    sqlx::query("UPDATE cases SET status = 'disposed' WHERE archive_id = $1")
        .bind(&id)
        .execute(&app.archive.db().pool)
        .await
        .unwrap();
    let (s, r) = post_scans(&app, &app.archivist, &id, scans_zip("jpeg-ok")).await;
    assert_eq!((s, r["error"].as_str()), (410, Some("gone")), "{r}");
}

async fn decide_and_approve(app: &TestApp, tid: &str, rules: &Value) {
    let (s, r) = app
        .send_json(
            reqwest::Method::PUT,
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/decisions"),
            rules.clone(),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = app
        .post_json(
            &app.admin,
            &format!("/api/v1/transfers/{tid}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
}

async fn wait_built(app: &TestApp, tid: &str) -> Value {
    for _ in 0..300 {
        let (_, v) = app
            .get_json(&app.archivist, &format!("/api/v1/transfers/{tid}"))
            .await;
        if v["state"] == "built" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("transfer {tid} was not built in 30 s");
}

/// An approved batch becomes signed BagIt volumes in the national carrier structure; each
/// volume verifies offline with every case package inside it, any BagIt tool accepts it, and
/// `guidang transfer export` writes them with the signed volumes.xml for media.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_batch_is_built_into_volumes_that_verify_and_are_exported() {
    let app = TestApp::spawn_with(|s| {
        s.sm2.enabled = true;
    })
    .await;
    let a = archive(
        &app,
        case_with_paper("V-A", "2025-03-10T10:00:00+08:00", "D30", None),
    )
    .await;
    let b = archive(
        &app,
        case_with_paper("V-B", "2025-04-10T10:00:00+08:00", "D30", None),
    )
    .await;
    let (s, r) = post_scans(&app, &app.archivist, &a, scans_zip("tiff-g4-ok")).await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, batch) = app
        .post_json(&app.archivist, "/api/v1/transfers", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{batch}");
    let tid = batch["transfer_id"].as_str().unwrap().to_string();
    let rules = json!({"rules": [{"classification": {"action": "keep"},
        "access": {"opinion": "restricted", "reason": "personal_information", "until": 2055}}]});
    let (s, r) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/build"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (409, Some("wrong_state")),
        "a draft is not built: {r}"
    );
    decide_and_approve(&app, &tid, &rules).await;
    // Scans added after the approval: what was approved is not what would be built.
    let (s, r) = post_scans(&app, &app.archivist, &b, scans_zip("jp2-ok")).await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/build"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("changed since it was approved"),
        "{r}"
    );
    decide_and_approve(&app, &tid, &rules).await;

    // Volumes of one byte: every case is larger, so each gets a volume of its own, with a warning.
    let (s, r) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/build"),
            json!({"volume_size": "1"}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let built = wait_built(&app, &tid).await;
    let vols = built["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 2, "{built}");
    assert_eq!(
        built["build_warnings"].as_array().unwrap().len(),
        2,
        "{built}"
    );
    assert_eq!(vols[0]["name"], format!("{tid}-001"));

    let dir = app.dir.path().join("volumes");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.json");
    std::fs::write(&keys, app.keys().await.to_string()).unwrap();
    let (s, v1) = app
        .get_bytes(
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/volumes/1"),
        )
        .await;
    assert_eq!(s, 200);
    let p1 = dir.join("v1.zip");
    std::fs::write(&p1, &v1).unwrap();
    let out = std::process::Command::new(bin())
        .args(["verify", "--json", "--trusted-keys"])
        .arg(&keys)
        .arg(&p1)
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &r["packages"][0];
    assert_eq!(out.status.code(), Some(0), "{r}");
    let status = |name: &str| {
        p["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status("case_packages"), Some(json!("pass")), "{p}");
    assert_eq!(status("signature_sm2"), Some(json!("pass")), "{p}");
    assert_eq!(status("xml_documents"), Some(json!("pass")), "{p}");
    // The carrier structure, as an archive authority opening data/ expects it.
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(v1.clone())).unwrap();
    let names: Vec<String> = z
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .collect();
    let top = format!("{tid}-001/data/");
    for want in [
        "说明文件.TXT",
        "文件目录.XML",
        "其他/transfer.xml",
        "其他/文件目录.CSV",
        "其他/登记表.XML",
        "其他/checkpoint.txt",
        "其他/schemas/case.xsd",
    ] {
        assert!(
            names.contains(&format!("{top}{want}")),
            "{want} in {names:?}"
        );
    }
    let pkgs: Vec<&String> = names
        .iter()
        .filter(|n| n.contains("/data/电子档案/2025/") && n.ends_with(".zip"))
        .collect();
    assert!(pkgs.len() >= 3, "every version of the case: {pkgs:?}");
    let mut catalogue = String::new();
    std::io::Read::read_to_string(
        &mut z.by_name(&format!("{top}文件目录.XML")).unwrap(),
        &mut catalogue,
    )
    .unwrap();
    assert!(
        catalogue.contains("<顺序号>1</顺序号>") && catalogue.contains("<档号>"),
        "{catalogue}"
    );
    // Any BagIt tool accepts the volume.
    let dest = dir.join("bag");
    z.extract(&dest).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "bagit", "--validate"])
        .arg(dest.join(format!("{tid}-001")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A flipped byte inside a case package is found.
    let mut bad = v1.clone();
    let at = bad
        .windows(14)
        .position(|w| w == b"Payload-Oxum: ")
        .unwrap();
    bad[at + 14] ^= 0x01;
    std::fs::write(dir.join("bad.zip"), &bad).unwrap();
    let out = std::process::Command::new(bin())
        .args(["verify", "--json", "--trusted-keys"])
        .arg(&keys)
        .arg(dir.join("bad.zip"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // For media: the volumes and the signed volumes.xml.
    let out_dir = dir.join("media");
    let db = app.archive.settings().database_url();
    let out = crate::cli::guidang(app.dir.path(), &db)
        .args(["transfer", "export", &tid, "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read(out_dir.join("volumes.xml")).unwrap();
    let sig: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("volumes.xml.signature.json")).unwrap())
            .unwrap();
    guidang::signing::verify_signature(
        sig["public_key"].as_str().unwrap(),
        sig["signature"].as_str().unwrap(),
        &xml,
    )
    .unwrap();
    let sm2: Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("volumes.xml.signature-sm2.json")).unwrap(),
    )
    .unwrap();
    guidang::signing_sm2::verify(
        sm2["public_key"].as_str().unwrap(),
        sm2["signature"].as_str().unwrap(),
        "1234567812345678",
        &xml,
    )
    .unwrap();
    // The registration form beside the volumes: the five checks each with result and method, the
    // digest sheet per carrier with the algorithm named, room for the receiver's half.
    let form = std::fs::read_to_string(out_dir.join("registration.xml")).unwrap();
    for item in ["准确性", "完整性", "可用性", "安全性", "载体外观"] {
        assert!(
            form.contains(&format!("<项目 名称=\"{item}\" 结果=")),
            "{item}: {form}"
        );
    }
    assert!(form.contains("<方法>"), "{form}");
    assert!(
        form.contains("算法=\"SM3\"") && form.contains("算法=\"SHA-256\""),
        "{form}"
    );
    let page = std::fs::read_to_string(out_dir.join("registration.html")).unwrap();
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("电子档案移交与接收登记表"),
        "{page}"
    );
    let text = String::from_utf8(xml).unwrap();
    for v in vols {
        assert!(
            form.contains(v["tagmanifest_sha256"].as_str().unwrap()),
            "{form}"
        );
        assert!(
            text.contains(v["tagmanifest_sha256"].as_str().unwrap()),
            "{text}"
        );
        assert!(
            text.contains(v["tagmanifest_sm3"].as_str().unwrap()),
            "{text}"
        );
        assert_eq!(
            std::fs::read(out_dir.join(format!("{}.zip", v["name"].as_str().unwrap())))
                .unwrap()
                .len() as i64,
            v["size"].as_i64().unwrap()
        );
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run(mut c: std::process::Command) -> (i32, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Offline, both sides on one machine: the unit exports volumes for media; the archive authority
/// (its own data directory, keys and log) receives them under the unit's pinned keys, refuses a
/// tampered case with the reason while keeping the rest, is idempotent on a replay, and signs a
/// receipt; the unit records the receipt only under the authority's pinned key, and its
/// transferred cases are then kept from disposal for five years.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_transfer_is_received_checked_and_acknowledged() {
    let app = TestApp::spawn().await;
    // Due for disposal by retention (D10 of 2012), so only the transfer keeps them.
    app.put_rules(json!({"rules": [{"task_type": "XK", "retention": "D10", "basis": "示例"}]}))
        .await;
    let a = archive(
        &app,
        case_with_paper("O-A", "2012-03-10T10:00:00+08:00", "D10", None),
    )
    .await;
    let b = archive(
        &app,
        case_with_paper("O-B", "2012-04-10T10:00:00+08:00", "D10", None),
    )
    .await;
    let (s, r) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2012}))
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, batch) = app
        .post_json(&app.archivist, "/api/v1/transfers", json!({"year": 2012}))
        .await;
    assert_eq!(s, 201, "{batch}");
    let tid = batch["transfer_id"].as_str().unwrap().to_string();
    let rules = json!({"rules": [{"classification": {"action": "keep"},
        "access": {"opinion": "restricted", "reason": "personal_information", "until": 2042}}]});
    decide_and_approve(&app, &tid, &rules).await;
    let root = app.dir.path().join("offline");
    let media = root.join("media");
    let db = app.archive.settings().database_url();
    let mut c = crate::cli::guidang(app.dir.path(), &db);
    c.args(["transfer", "export", &tid, "--volume-size", "1", "--out"])
        .arg(&media);
    let (code, text) = run(c);
    assert_eq!(code, 0, "{text}");
    let sender_keys = root.join("sender-keys.json");
    std::fs::write(&sender_keys, app.keys().await.to_string()).unwrap();

    // The archive authority: its own server, data directory, database, keys and log; its
    // command line runs beside it.
    let auth = TestApp::spawn().await;
    let adir = auth.dir.path().to_path_buf();
    let adb = auth.archive.settings().database_url();
    let authority = |args: &[&str]| {
        let mut c = crate::cli::guidang(&adir, &adb);
        c.args(args);
        c
    };
    let mut c = authority(&["keys", "export"]);
    c.stdout(std::process::Stdio::piped());
    let out = c.output().unwrap();
    let authority_keys = root.join("authority-keys.json");
    std::fs::write(&authority_keys, &out.stdout).unwrap();
    let receive = |from: &std::path::Path, keys: &std::path::Path, out: &std::path::Path| {
        let mut c = authority(&["transfer", "receive"]);
        c.arg(from)
            .arg("--trusted-keys")
            .arg(keys)
            .arg("--out")
            .arg(out)
            .arg("--json");
        c
    };

    // Under keys it did not pin, nothing is received.
    let (code, text) = run(receive(&media, &authority_keys, &root.join("r0")));
    assert_eq!(code, 1, "{text}");
    let r: Value = serde_json::from_str(&text[..text.rfind('}').unwrap() + 1]).unwrap();
    assert!(
        r["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["accepted"] == false),
        "{r}"
    );
    assert!(
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["accepted"] == false),
        "{r}"
    );

    // A flipped byte inside one case package: that case is refused with the reason, the other
    // volume's case is received.
    let tampered = root.join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    for e in std::fs::read_dir(&media).unwrap().flatten() {
        std::fs::copy(e.path(), tampered.join(e.file_name())).unwrap();
    }
    let v2 = tampered.join(format!("{tid}-002.zip"));
    let mut bytes = std::fs::read(&v2).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"Payload-Oxum: ")
        .unwrap();
    bytes[at + 14] ^= 0x01;
    std::fs::write(&v2, &bytes).unwrap();
    let (code, text) = run(receive(&tampered, &sender_keys, &root.join("r1")));
    assert_eq!(code, 1, "{text}");
    let r: Value = serde_json::from_str(&text[..text.rfind('}').unwrap() + 1]).unwrap();
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{r}");
    let first = cases
        .iter()
        .find(|c| c["volume"] == format!("{tid}-001"))
        .unwrap();
    let second = cases
        .iter()
        .find(|c| c["volume"] == format!("{tid}-002"))
        .unwrap();
    assert_eq!(first["accepted"], true, "{r}");
    assert_eq!(second["accepted"], false, "{r}");
    assert!(second["reason"].as_str().unwrap().contains("v1.zip"), "{r}");

    // The untouched volumes: everything received; the case taken before is not taken twice.
    let (code, text) = run(receive(&media, &sender_keys, &root.join("r2")));
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(receive(&media, &sender_keys, &root.join("r3")));
    assert_eq!(
        code, 0,
        "a replayed volume is received again without harm: {text}"
    );
    let rows: i64 = {
        // The authority's own log holds one guidang-received-v1 entry per case.
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&adb)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM log_entries WHERE kind = 'received'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(rows, 2);
    // Searchable by archival code at the authority.
    let (_, case_b) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{b}"))
        .await;
    let code_b = case_b["archival_code"].as_str().unwrap().to_string();
    let (s, found) = auth
        .get_json(
            &auth.archivist,
            &format!("/api/v1/received?archival_code={}", urlencode(&code_b)),
        )
        .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(ids(&found["items"]), vec![b.clone()], "{found}");
    let prefix = &code_b[..code_b.rfind('-').unwrap() + 1];
    let (_, found) = auth
        .get_json(
            &auth.auditor,
            &format!("/api/v1/received?archival_code={}*", urlencode(prefix)),
        )
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 2, "{found}");
    let receipt = root.join("r2").join("receipt.xml");
    let text = std::fs::read_to_string(&receipt).unwrap();
    // The receipt is what schemas/receipt.xsd says, as is the refusing one.
    for r in ["r1", "r2"] {
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(fixtures().join("../schemas/receipt.xsd"))
            .arg(root.join(r).join("receipt.xml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        text.contains(&tid) && text.contains("accepted=\"2\""),
        "{text}"
    );

    // The unit records the receipt only under the authority's pinned key.
    let mut c = crate::cli::guidang(app.dir.path(), &db);
    c.args(["transfer", "ack"])
        .arg(&receipt)
        .arg("--trusted-keys")
        .arg(&sender_keys);
    let (code, text) = run(c);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not pinned"), "{text}");
    let mut c = crate::cli::guidang(app.dir.path(), &db);
    c.args(["transfer", "ack"])
        .arg(&receipt)
        .arg("--trusted-keys")
        .arg(&authority_keys);
    let (code, text) = run(c);
    assert_eq!(code, 0, "{text}");
    let (_, now) = app
        .get_json(&app.archivist, &format!("/api/v1/transfers/{tid}"))
        .await;
    assert_eq!(now["state"], "transferred", "{now}");
    // Both cases are due by retention, yet kept: the sender keeps what it transferred.
    let (_, due) = app.get_json(&app.archivist, "/api/v1/disposal/due").await;
    assert!(due["total"].as_i64().unwrap() >= 2, "{due}");
    let (s, r) = app
        .post_json(
            &app.archivist,
            "/api/v1/disposal/lists",
            json!({"opinion": "到期", "cases": [
            {"archive_id": a, "appraisal": "到期"}, {"archive_id": b, "appraisal": "到期"}]}),
        )
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("not_disposable")),
        "{r}"
    );
    assert!(
        r["problems"]
            .to_string()
            .contains(&format!("transferred in {tid}")),
        "{r}"
    );
}

/// The unit's side of an offline test: two cases of 2024 filed, drafted, decided, approved and
/// exported one volume each; returns the batch, the media folder and the unit's keys.
async fn exported(
    app: &TestApp,
    root: &std::path::Path,
) -> (String, std::path::PathBuf, std::path::PathBuf) {
    archive(
        app,
        case_with_paper("M-A", "2024-03-10T10:00:00+08:00", "D30", None),
    )
    .await;
    archive(
        app,
        case_with_paper("M-B", "2024-04-10T10:00:00+08:00", "D30", None),
    )
    .await;
    let (s, r) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2024}))
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, batch) = app
        .post_json(&app.archivist, "/api/v1/transfers", json!({"year": 2024}))
        .await;
    assert_eq!(s, 201, "{batch}");
    let tid = batch["transfer_id"].as_str().unwrap().to_string();
    let rules =
        json!({"rules": [{"classification": {"action": "keep"}, "access": {"opinion": "open"}}]});
    decide_and_approve(app, &tid, &rules).await;
    let media = root.join("media");
    let db = app.archive.settings().database_url();
    let mut c = crate::cli::guidang(app.dir.path(), &db);
    c.args(["transfer", "export", &tid, "--volume-size", "1", "--out"])
        .arg(&media);
    let (code, text) = run(c);
    assert_eq!(code, 0, "{text}");
    let keys = root.join("unit-keys.json");
    std::fs::write(&keys, app.keys().await.to_string()).unwrap();
    (tid, media, keys)
}

/// `volume` with the entry `name` replaced by `bytes` (None: removed), its other entries copied
/// byte for byte.
fn rewrite(volume: &std::path::Path, name: &str, bytes: Option<&[u8]>) {
    let data = std::fs::read(volume).unwrap();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let f = z.by_index(i).unwrap();
        if f.name().unwrap() != name {
            out.raw_copy_file(f).unwrap();
        }
    }
    if let Some(b) = bytes {
        out.start_file(
            name,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        std::io::Write::write_all(&mut out, b).unwrap();
    }
    std::fs::write(volume, out.finish().unwrap().into_inner()).unwrap();
}

/// Each tamper is refused at the receiver with its reason, and what is intact is still received:
/// a case package replaced by another case's (validly bagged) package, a case removed, a volume
/// cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_volumes_are_refused_with_the_reason_and_the_rest_received() {
    let app = TestApp::spawn().await;
    let root = app.dir.path().join("tamper");
    let (tid, media, keys) = exported(&app, &root).await;
    let adir = tempfile::tempdir().unwrap();
    let adb = database_url(adir.path()).await;
    crate::cli::init(adir.path(), &adb);
    let v1 = format!("{tid}-001");
    let v2 = format!("{tid}-002");
    let package_in = |vol: &std::path::Path| -> (String, Vec<u8>) {
        let mut z = zip::ZipArchive::new(std::fs::File::open(vol).unwrap()).unwrap();
        let name = z
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.to_string()))
            .find(|n| n.contains("/data/电子档案/") && n.ends_with("/v1.zip"))
            .unwrap();
        let mut b = vec![];
        std::io::Read::read_to_end(&mut z.by_name(&name).unwrap(), &mut b).unwrap();
        (name, b)
    };
    let variant = |label: &str, f: &dyn Fn(&std::path::Path)| -> Value {
        let dir = root.join(label);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&media).unwrap().flatten() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        f(&dir);
        let mut c = crate::cli::guidang(adir.path(), &adb);
        c.args(["transfer", "receive"])
            .arg(&dir)
            .arg("--trusted-keys")
            .arg(&keys)
            .arg("--out")
            .arg(dir.join("receipt"))
            .arg("--json");
        let (code, text) = run(c);
        assert_eq!(code, 1, "{label}: {text}");
        serde_json::from_str(&text[..text.rfind('}').unwrap() + 1]).unwrap()
    };
    let case_in = |r: &Value, vol: &str| -> Value {
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["volume"] == vol)
            .cloned()
            .unwrap_or(Value::Null)
    };

    // Volume 2's package replaced by volume 1's: a valid bag, of another case.
    let r = variant("replaced", &|d| {
        let (_, other) = package_in(&d.join(format!("{v1}.zip")));
        let (name, _) = package_in(&d.join(format!("{v2}.zip")));
        rewrite(&d.join(format!("{v2}.zip")), &name, Some(&other));
    });
    assert_eq!(case_in(&r, &v1)["accepted"], true, "{r}");
    assert_eq!(case_in(&r, &v2)["accepted"], false, "{r}");
    // Its own log proof does not lead to it: the reason names the package and the check.
    let why = case_in(&r, &v2)["reason"].as_str().unwrap().to_string();
    assert!(
        why.contains("v1.zip")
            && (why.contains("log_inclusion") || why.contains("is the package of")),
        "{r}"
    );

    // Volume 2's first package version removed: the case is incomplete.
    let r = variant("version removed", &|d| {
        let (name, _) = package_in(&d.join(format!("{v2}.zip")));
        rewrite(&d.join(format!("{v2}.zip")), &name, None);
    });
    assert!(
        case_in(&r, &v2)["reason"]
            .as_str()
            .unwrap()
            .contains("version 1 of its package is missing"),
        "{r}"
    );
    // Every package of volume 2 removed: its catalogue row has no package.
    let r = variant("removed", &|d| {
        let p = d.join(format!("{v2}.zip"));
        let names: Vec<String> = zip::ZipArchive::new(std::fs::File::open(&p).unwrap())
            .unwrap()
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.to_string()))
            .filter(|n| n.contains("/data/电子档案/") && n.ends_with(".zip"))
            .collect();
        for n in names {
            rewrite(&p, &n, None);
        }
    });
    assert!(
        case_in(&r, &v2)["reason"]
            .as_str()
            .unwrap()
            .contains("carries no package"),
        "{r}"
    );

    // Volume 2 never arrived: volume 1 is received, and the receipt says the batch is short.
    let r = variant("volume missing", &|d| {
        std::fs::remove_file(d.join(format!("{v2}.zip"))).unwrap();
    });
    assert_eq!(case_in(&r, &v1)["accepted"], true, "{r}");
    let failed: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "fail")
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&"YJ-complete") && failed.contains(&"YJ-counts"),
        "{r}"
    );

    // Volume 2 cut short: refused whole, volume 1 received; volumes.xml says what is missing.
    let r = variant("truncated", &|d| {
        let p = d.join(format!("{v2}.zip"));
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    let vols = r["volumes"].as_array().unwrap();
    assert!(vols.iter().any(|v| v["accepted"] == false), "{r}");
    assert_eq!(case_in(&r, &v1)["accepted"], true, "{r}");
    let _ = tid;
}

/// Online, both sides as servers on one machine: the unit sends a built batch to the archive
/// authority with its transferor token; an upload that stopped halfway through a volume resumes
/// from the bytes the receiver holds; the receiver checks and keeps the cases and answers with a
/// signed receipt, which the unit records after checking it under the authority's pinned key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_delivery_resumes_and_is_receipted() {
    let dir = tempfile::tempdir().unwrap();
    let unit_keys = dir.path().join("unit-keys.json");
    let unit_keys2 = unit_keys.clone();
    let auth = TestApp::spawn_with(move |s| s.incoming_trusted_keys = Some(unit_keys2)).await;
    let transferor =
        guidang::auth::create_token(auth.archive.db(), "transferor", None, Some("unit"))
            .await
            .unwrap()
            .0;
    let authority_keys = dir.path().join("authority-keys.json");
    std::fs::write(&authority_keys, auth.keys().await.to_string()).unwrap();
    let (url, tok, ak) = (
        auth.addr.clone(),
        transferor.clone(),
        authority_keys.clone(),
    );
    let app = TestApp::spawn_with(move |s| {
        s.transfer_receiver_url = Some(url);
        s.transfer_receiver_token = Some(tok);
        s.transfer_receiver_keys = Some(ak);
    })
    .await;
    std::fs::write(&unit_keys, app.keys().await.to_string()).unwrap();
    let root = app.dir.path().join("online");
    let (tid, media, _) = exported(&app, &root).await;

    // A transferor token is for /incoming only; other roles may not deliver.
    let (s, _) = auth.get_json(&transferor, "/api/v1/cases").await;
    assert_eq!(s, 403);
    // An earlier attempt stopped halfway through volume 1.
    let v1 = std::fs::read(media.join(format!("{tid}-001.zip"))).unwrap();
    let half = v1.len() / 2;
    let put = |from: usize, to: usize| {
        auth.client
            .put(auth.url(&format!("/api/v1/incoming/{tid}/{tid}-001.zip")))
            .bearer_auth(&transferor)
            .header(
                "Content-Range",
                format!("bytes {from}-{}/{}", to - 1, v1.len()),
            )
            .body(v1[from..to].to_vec())
            .send()
    };
    let r = put(0, half).await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["Upload-Offset"], half.to_string().as_str());
    // Bytes from anywhere but the offset held are not taken.
    let r = put(half + 10, v1.len()).await.unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(r.headers()["Upload-Offset"], half.to_string().as_str());

    let (s, r) = app
        .post_json(
            &app.archivist,
            &format!("/api/v1/transfers/{tid}/send"),
            json!({}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let mut state = Value::Null;
    for _ in 0..300 {
        let (_, v) = app
            .get_json(&app.archivist, &format!("/api/v1/transfers/{tid}"))
            .await;
        state = v["state"].clone();
        if state == "transferred" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state, "transferred");
    // The receiver holds volume 1 exactly as sent, and keeps both cases.
    let r = auth
        .client
        .head(auth.url(&format!("/api/v1/incoming/{tid}/{tid}-001.zip")))
        .bearer_auth(&transferor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["Upload-Complete"], "true");
    assert_eq!(r.headers()["Upload-Offset"], v1.len().to_string().as_str());
    let (_, found) = auth
        .get_json(
            &auth.archivist,
            &format!("/api/v1/received?transfer_id={tid}"),
        )
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 2, "{found}");
}

/// A server process whose stderr is drained in the background (a full pipe would stall it);
/// returns its port once it logs it.
fn serve_process(
    mut c: std::process::Command,
) -> (Reaped, u16, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::Read;
    c.arg("serve").stderr(std::process::Stdio::piped());
    let mut child = Reaped(c.spawn().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut sent = false;
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut l = log2.lock().unwrap();
            l.push_str(&String::from_utf8_lossy(&buf[..n]));
            if !sent && let Some(i) = l.find("port=") {
                let digits: String = l[i + 5..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if l[i + 5..].len() > digits.len() {
                    let _ = tx.send(digits.parse::<u16>().unwrap());
                    sent = true;
                }
            }
        }
    });
    let port = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
    (child, port, log)
}

/// A private certificate authority and a server certificate it signed for localhost, made by
/// openssl as an archive authority's administrator would.
fn private_ca(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ossl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test Archive Authority CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    ossl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// Online delivery over HTTPS to an authority with a private CA, with both sides killed in the
/// middle of a volume: the unit refuses the authority's certificate until it is given the CA
/// (the reason shown on the batch), the authority dies with part of a request written and comes
/// back, the unit dies after a chunk and another of its servers takes the delivery over when
/// the lease lapses, sending exactly the bytes the authority does not hold; the receipt lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_delivery_over_https_survives_both_sides_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn().await;
    let (tid, media, unit_keys) = exported(&app, dir.path()).await;
    let (ca, cert, key) = private_ca(dir.path());

    // The archive authority: its own data directory and database, HTTPS on a fixed port.
    let auth_dir = dir.path().join("authority");
    std::fs::create_dir_all(&auth_dir).unwrap();
    let auth_db = database_url(&auth_dir).await;
    crate::cli::init(&auth_dir, &auth_db);
    let stdout = |args: &[&str]| {
        let out = crate::cli::guidang(&auth_dir, &auth_db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let transferor = stdout(&["token", "create", "--role", "transferor", "--name", "某局"]);
    let auth_keys = stdout(&["keys", "export"]);
    let auth_keys_file = dir.path().join("authority-keys.json");
    std::fs::write(&auth_keys_file, auth_keys.trim()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let authority = |failpoint: Option<&str>| {
        let mut c = crate::cli::guidang(&auth_dir, &auth_db);
        c.env("GUIDANG_LISTEN", format!("127.0.0.1:{port}"))
            .env("GUIDANG_TLS_CERT_FILE", &cert)
            .env("GUIDANG_TLS_KEY_FILE", &key)
            .env("GUIDANG_INCOMING_TRUSTED_KEYS", &unit_keys);
        if let Some(f) = failpoint {
            c.env("GUIDANG_FAILPOINT", f);
        }
        serve_process(c)
    };
    let db = app.archive.settings().database_url();
    let unit = |ca_file: Option<&std::path::Path>, failpoint: Option<&str>| {
        let mut c = crate::cli::guidang(app.dir.path(), &db);
        c.env("GUIDANG_LISTEN", "127.0.0.1:0")
            .env(
                "GUIDANG_TRANSFER_RECEIVER_URL",
                format!("https://localhost:{port}"),
            )
            .env("GUIDANG_TRANSFER_RECEIVER_TOKEN", &transferor)
            .env("GUIDANG_TRANSFER_RECEIVER_KEYS", &auth_keys_file)
            .env("GUIDANG_TRANSFER_SEND_EVERY_SECS", "1")
            .env("GUIDANG_TRANSFER_CHUNK_BYTES", "4096");
        if let Some(ca) = ca_file {
            c.env("GUIDANG_TRANSFER_RECEIVER_CA_FILE", ca);
        }
        if let Some(f) = failpoint {
            c.env("GUIDANG_FAILPOINT", f);
        }
        serve_process(c)
    };
    let client = reqwest::Client::new();
    let batch = |port: u16| {
        let (client, tok, tid) = (client.clone(), app.archivist.clone(), tid.clone());
        async move {
            client
                .get(format!("http://127.0.0.1:{port}/api/v1/transfers/{tid}"))
                .bearer_auth(tok)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let (mut a1, _, a1_log) = authority(Some("incoming_partial"));
    // 1. Without the authority's CA the unit does not trust its certificate, and says so.
    let (mut u1, u1_port, _) = unit(None, None);
    let r = client
        .post(format!(
            "http://127.0.0.1:{u1_port}/api/v1/transfers/{tid}/send"
        ))
        .bearer_auth(&app.archivist)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let mut v = Value::Null;
    for _ in 0..300 {
        v = batch(u1_port).await;
        if !v["send_error"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let err = v["send_error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "the batch says why: {v}"
    );
    assert_eq!(
        v["send_state"], "sending",
        "a certificate problem is retried: {v}"
    );
    assert_eq!(v["state"], "built");
    u1.kill().unwrap();
    u1.wait().unwrap();

    // 2. With the CA: the authority dies with part of a volume's request written …
    let (mut u2, _, u2_log) = unit(Some(&ca), Some("send_after_chunk"));
    let status = tokio::task::spawn_blocking(move || {
        let s = a1.wait().unwrap();
        (a1, s)
    });
    let (a1, st) = tokio::time::timeout(std::time::Duration::from_secs(60), status)
        .await
        .expect("the authority reached its failpoint")
        .unwrap();
    drop(a1);
    assert!(!st.success(), "{}", a1_log.lock().unwrap());
    let part: Vec<_> = std::fs::read_dir(auth_dir.join("incoming"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path().join(&tid)).unwrap().flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".zip.part"))
        .collect();
    assert_eq!(part.len(), 1, "a volume was cut off in the middle");
    // … and comes back; the unit resumes from what it holds and dies after the next chunk.
    let (_a2, a2_port, _) = authority(None);
    assert_eq!(a2_port, port);
    let st = tokio::task::spawn_blocking(move || {
        let s = u2.wait().unwrap();
        (u2, s)
    });
    let (u2, st) = tokio::time::timeout(std::time::Duration::from_secs(60), st)
        .await
        .expect("the unit reached its failpoint")
        .unwrap();
    drop(u2);
    assert!(!st.success(), "{}", u2_log.lock().unwrap());

    // What the authority holds now, file by file (nothing sends meanwhile).
    let https = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let mut files: Vec<String> = vec!["volumes.xml".into(), "volumes.xml.signature.json".into()];
    let mut names: Vec<String> = std::fs::read_dir(&media)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zip"))
        .collect();
    names.sort();
    files.extend(names);
    let (mut total, mut held) = (0u64, 0u64);
    for f in &files {
        total += std::fs::metadata(media.join(f)).unwrap().len();
        let r = https
            .head(format!(
                "https://localhost:{port}/api/v1/incoming/{tid}/{f}"
            ))
            .bearer_auth(&transferor)
            .send()
            .await
            .unwrap();
        held += r.headers()["Upload-Offset"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert!(
        held > 0 && held < total,
        "part of the batch arrived: {held} of {total}"
    );

    // 3. Another server of the unit takes the delivery over once the dead one's lease lapses.
    let (_u3, u3_port, u3_log) = unit(Some(&ca), None);
    let mut v = Value::Null;
    for _ in 0..600 {
        v = batch(u3_port).await;
        if v["state"] == "transferred" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(v["state"], "transferred", "{v}\n{}", u3_log.lock().unwrap());
    assert!(
        v["send_state"].is_null() && v["send_error"].is_null(),
        "{v}"
    );
    assert_eq!(v["sent_bytes"].as_u64(), Some(total), "{v}");
    // Exactly what the authority lacked was sent: no finished file again, no byte twice.
    let metrics = client
        .get(format!("http://127.0.0.1:{u3_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&metrics, "guidang_transfer_sent_bytes_total"),
        total - held
    );
    // The authority re-hashed and kept both cases.
    let auth_archivist = stdout(&["token", "create", "--role", "archivist"]);
    let found: Value = https
        .get(format!(
            "https://localhost:{port}/api/v1/received?transfer_id={tid}"
        ))
        .bearer_auth(&auth_archivist)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 2, "{found}");
}

/// The receiving archive judges what arrives by its own settings, file by file, from the bytes:
/// an authority that keeps no JPEG refuses the cases holding one, naming the file; an authority
/// with a virus scanner refuses the case whose package carries a signature it knows, keeps the
/// other, and says in the receipt what it scanned with. Both answers travel in the YJ report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_identifies_formats_and_scans_for_viruses_by_its_own_settings() {
    let app = TestApp::spawn().await;
    let root = app.dir.path().join("media-root");
    let (_tid, media, unit_keys) = exported(&app, &root).await;
    let receive = |adir: &std::path::Path, env: &[(&str, &std::path::Path)]| {
        let db = format!("sqlite://{}?mode=rwc", adir.join("guidang.db").display());
        crate::cli::init(adir, &db);
        let mut c = crate::cli::guidang(adir, &db);
        c.args(["transfer", "receive"])
            .arg(&media)
            .arg("--trusted-keys")
            .arg(&unit_keys)
            .arg("--out")
            .arg(adir.join("receipt"))
            .arg("--json");
        for (k, v) in env {
            c.env(k, v);
        }
        let (code, text) = run(c);
        let json: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|_| panic!("--json prints the outcome: {text}"));
        (code, json)
    };
    let yj = |r: &Value, code: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == code)
            .unwrap_or_else(|| panic!("{code} in {r}"))
            .clone()
    };

    // An authority that keeps no JPEG (its own format policy).
    let a = tempfile::tempdir().unwrap();
    std::fs::write(
        a.path().join("guidang.toml"),
        "[format_policy]\njpeg = \"unknown_format\"\n",
    )
    .unwrap();
    let (code, r) = receive(a.path(), &[]);
    assert_eq!(code, 1, "{r}");
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{r}");
    for c in cases {
        assert_eq!(c["accepted"], false, "{r}");
        let why = c["reason"].as_str().unwrap();
        assert!(
            why.contains("formats")
                && why.contains("files/03-现场核查照片.jpg")
                && why.contains("unknown_format"),
            "{why}"
        );
    }
    assert_eq!(yj(&r, "YJ-formats")["result"], "fail", "{r}");
    assert_eq!(yj(&r, "YJ-virus")["result"], "not_configured", "{r}");

    // An authority whose scanner knows a signature found in case M-B's metadata only.
    let b = tempfile::tempdir().unwrap();
    let sigs = b.path().join("authority-test.ndb");
    std::fs::write(
        &sigs,
        format!(
            "Guidang-Test-MB:0:*:{}\n",
            hex::encode("<project_id>M-B</project_id>")
        ),
    )
    .unwrap();
    let clamscan = std::path::PathBuf::from("clamscan");
    let (code, r) = receive(
        b.path(),
        &[
            ("GUIDANG_CLAMSCAN", &clamscan),
            ("GUIDANG_CLAMAV_DATABASE", &sigs),
        ],
    );
    assert_eq!(code, 1, "{r}");
    let by_volume = |v: &str| {
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["volume"].as_str().unwrap().ends_with(v))
            .unwrap()
            .clone()
    };
    assert_eq!(by_volume("-001")["accepted"], true, "{r}");
    let refused = by_volume("-002");
    assert_eq!(refused["accepted"], false, "{r}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("Guidang-Test-MB"),
        "{refused}"
    );
    let virus = yj(&r, "YJ-virus");
    assert_eq!(virus["result"], "fail", "{r}");
    assert_eq!(yj(&r, "YJ-formats")["result"], "pass", "{r}");
    // The refused case was not stored at the authority; the other was, every version of it.
    let stored: std::collections::BTreeSet<_> = walk(&b.path().join("objects"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/received/"))
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
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
