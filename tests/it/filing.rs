//! Retention rules, the yearly filing, its deadline and completeness, through the HTTP API, the
//! command line and the injectable clock.

use std::sync::Arc;

use crate::common::*;
use guidang::clock::ManualClock;
use serde_json::{Value, json};

#[tokio::test]
async fn retention_rules_are_versioned_and_set_each_case() {
    let app = TestApp::spawn().await;
    let (s, v0) = app
        .get_json(&app.archivist, "/api/v1/retention/rules")
        .await;
    assert_eq!((s, v0["version"].as_i64()), (200, Some(0)), "{v0}");

    let rules = json!({"rules": [
        {"task_type": "XK", "retention": "D10", "basis": "许可类办件 10 年（示例依据）"},
        {"task_code": "11370102MB2854637Q437011700*", "retention": "Y", "basis": "本事项永久（示例依据）"},
    ]});
    let (s, _) = app.put_rules_as(&app.archivist, rules.clone()).await;
    assert_eq!(s, 403, "only an administrator sets retention rules");
    let bad = json!({"rules": [{"task_type": "XK", "retention": "D20", "basis": "x"}]});
    let (s, body) = app.put_rules_as(&app.admin, bad).await;
    assert_eq!(s, 400);
    assert!(
        body["message"].as_str().unwrap().contains("rule 0"),
        "{body}"
    );
    let (s, v1) = app.put_rules_as(&app.admin, rules).await;
    assert_eq!((s, v1["version"].as_i64()), (200, Some(1)), "{v1}");

    // The task-code rule is more specific than the task-type rule: permanent, and the proposal
    // (D30) is shorter, so it is not kept and the submitter is told.
    let (s, body) = app
        .submit(
            &app.submitter,
            case_zip("R-1", "2025-05-01T10:00:00+08:00", "D30"),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let warn: Vec<&str> = body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(warn.contains(&"retention_raised"), "{body}");
    let id1 = body["archive_id"].as_str().unwrap().to_string();
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id1}"))
        .await;
    assert_eq!(c["retention"], "Y");
    assert_eq!(c["retention_rule_version"], 1);
    assert!(c["retention_basis"].as_str().unwrap().contains("永久"));
    // The retention is sealed in the signed package's archive.xml.
    let (_, pkg) = app
        .get_bytes(&app.archivist, &format!("/api/v1/cases/{id1}/package"))
        .await;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(pkg)).unwrap();
    let mut ax = String::new();
    std::io::Read::read_to_string(
        &mut z.by_name(&format!("{id1}/data/archive.xml")).unwrap(),
        &mut ax,
    )
    .unwrap();
    assert!(
        ax.contains("<assigned>Y</assigned>") && ax.contains("<rule_version>1</rule_version>"),
        "{ax}"
    );

    // A new version applies to new cases only…
    let v2 =
        json!({"rules": [{"task_type": "XK", "retention": "D30", "basis": "许可类办件 30 年"}]});
    app.put_rules(v2).await;
    let id2 = app
        .archive_case("R-2", "2025-05-02T10:00:00+08:00", "D10")
        .await;
    let (_, c2) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id2}"))
        .await;
    assert_eq!(
        (
            c2["retention"].as_str(),
            c2["retention_rule_version"].as_i64()
        ),
        (Some("D30"), Some(2))
    );
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id1}"))
        .await;
    assert_eq!(c["retention"], "Y", "existing cases keep their retention");

    // …and existing ones change only through an explicit re-evaluation.
    let (s, _) = app
        .post_json(&app.archivist, "/api/v1/retention/reevaluate", json!({}))
        .await;
    assert_eq!(s, 403);
    let (s, dry) = app
        .post_json(
            &app.admin,
            "/api/v1/retention/reevaluate",
            json!({"dry_run": true}),
        )
        .await;
    assert_eq!((s, dry["changed"].as_u64()), (200, Some(1)), "{dry}");
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id1}"))
        .await;
    assert_eq!(c["retention"], "Y", "a dry run changes nothing");
    let (_, done) = app
        .post_json(&app.admin, "/api/v1/retention/reevaluate", json!({}))
        .await;
    assert_eq!(done["changes"][0]["archive_id"], id1.as_str(), "{done}");
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id1}"))
        .await;
    assert_eq!(
        (
            c["retention"].as_str(),
            c["retention_rule_version"].as_i64()
        ),
        (Some("D30"), Some(2))
    );
    assert!(
        c["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "retention_reevaluated"),
        "{c}"
    );
    let (_, trail) = app.get_json(&app.auditor, "/api/v1/audit?limit=100").await;
    assert!(
        trail.to_string().contains("retention_reevaluate"),
        "{trail}"
    );
}

fn items_of(codes: &[String]) -> Vec<i64> {
    let mut v: Vec<i64> = codes
        .iter()
        .map(|c| c.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    v.sort();
    v
}

async fn codes_of(app: &TestApp, year: i64) -> Vec<String> {
    let (_, l) = app
        .get_json(
            &app.archivist,
            &format!("/api/v1/cases?year={year}&per_page=500"),
        )
        .await;
    l["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["archival_code"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn filing_over_http_codes_registers_reports_and_files_late_arrivals() {
    let clock = Arc::new(ManualClock::new(shanghai("2026-03-01T09:00:00")));
    let app = TestApp::spawn_clocked(clock.clone(), |s| {
        s.filing.org_codes.insert(AGENCY.into(), "LXSP".into());
    })
    .await;
    let mut ids = vec![];
    for i in 1..=3 {
        ids.push(
            app.archive_case(
                &format!("F-{i}"),
                &format!("2025-0{i}-10T10:00:00+08:00"),
                "D30",
            )
            .await,
        );
    }
    // Completed at 23:30 on 31 December 2025 UTC = 2026 in Shanghai: a case of 2026.
    app.archive_case("F-2026", "2025-12-31T23:30:00Z", "D30")
        .await;
    // A refused submission of 2025 (a listed file is missing) is counted as rejected.
    let broken: Vec<(String, Vec<u8>)> = valid_entries()
        .into_iter()
        .filter(|(n, _)| !n.ends_with("04-审查意见.pdf"))
        .map(|(n, b)| {
            if n == "metadata.xml" {
                (
                    n,
                    String::from_utf8(b)
                        .unwrap()
                        .replace("370102-SPJY-20250303-0001", "F-BAD")
                        .into_bytes(),
                )
            } else {
                (n, b)
            }
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = broken
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (s, _) = app.submit(&app.submitter, zip_of(&refs)).await;
    assert_eq!(s, 422);

    // The case system declares what it completed in 2025: three of them and one never sent.
    let mut declared: Vec<Value> = (1..=3)
        .map(|i| json!({"task_code": "11370102MB2854637Q4370117001000", "project_id": format!("F-{i}")}))
        .collect();
    declared.push(
        json!({"task_code": "11370102MB2854637Q4370117001000", "project_id": "F-NEVER-SENT"}),
    );
    let (s, body) = app
        .send_json(
            reqwest::Method::PUT,
            &app.submitter,
            "/api/v1/filings/2025/expected",
            json!({"cases": declared}),
        )
        .await;
    assert_eq!((s, body["cases"].as_u64()), (200, Some(4)), "{body}");
    let (s, _) = app
        .send_json(
            reqwest::Method::PUT,
            &app.submitter,
            "/api/v1/filings/2025/expected",
            json!({"social_code": "91370000MA3C5TJ85X", "cases": []}),
        )
        .await;
    assert_eq!(
        s, 403,
        "a case system declares for its own organisation only"
    );

    let (_, st) = app.get_json(&app.archivist, "/api/v1/filings/2025").await;
    assert_eq!(st["counts"]["archived"], 3, "{st}");
    assert_eq!(st["counts"]["pending"], 3);
    assert_eq!(st["counts"]["rejected"], 1);
    assert_eq!(st["deadline"], "2026-06-30");
    assert_eq!(st["days_left"], 121);
    assert_eq!(st["completeness"]["missing_count"], 1);
    assert_eq!(
        st["completeness"]["missing"][0]["project_id"],
        "F-NEVER-SENT"
    );
    assert_eq!(st["completeness"]["unexpected_count"], 0);

    let (s, body) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2026}))
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("year_not_over")),
        "{body}"
    );
    let (s, body) = app
        .post_json(&app.auditor, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 403, "{body}");

    // One stored package is damaged before the filing: the check refuses it, the others are coded.
    let damaged = &ids[1];
    let stored = app.stored_packages();
    let path = stored
        .iter()
        .find(|p| p.to_string_lossy().contains(damaged.as_str()))
        .expect("stored package");
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(b"tagmanifest-sha256.txt".len())
        .position(|w| w == b"tagmanifest-sha256.txt")
        .unwrap()
        + 200;
    bytes[at] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();

    let (s, b) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (b["kind"].as_str(), b["state"].as_str()),
        (Some("regular"), Some("complete"))
    );
    assert_eq!(
        (
            b["cases"].as_i64(),
            b["refused"].as_i64(),
            b["late"].as_i64()
        ),
        (Some(2), Some(1), Some(0)),
        "{b}"
    );
    let codes = codes_of(&app, 2025).await;
    assert_eq!(items_of(&codes), vec![1, 2], "{codes:?}");
    assert!(
        codes
            .iter()
            .all(|c| c.starts_with("GD01-ZY·2025-D30-LXSP-")),
        "{codes:?}"
    );

    let (_, st) = app.get_json(&app.archivist, "/api/v1/filings/2025").await;
    assert_eq!(
        (
            st["counts"]["filed"].as_i64(),
            st["counts"]["pending"].as_i64(),
            st["counts"]["refused"].as_i64()
        ),
        (Some(2), Some(1), Some(1)),
        "{st}"
    );
    assert_eq!(st["refused"][0]["archive_id"], damaged.as_str());
    assert!(!st["refused"][0]["problem"].as_str().unwrap().is_empty());

    // The register and the registration form, with the digests the batch recorded.
    let batch_id = b["batch_id"].as_str().unwrap();
    for d in b["documents"].as_array().unwrap() {
        let name = d["name"].as_str().unwrap();
        let (s, bytes) = app
            .get_bytes(
                &app.auditor,
                &format!("/api/v1/filings/2025/batches/{batch_id}/{name}"),
            )
            .await;
        assert_eq!(s, 200, "{name}");
        assert_eq!(sha256_hex(&bytes), d["sha256"].as_str().unwrap(), "{name}");
        let text = String::from_utf8(bytes).unwrap();
        match name {
            "register.csv" => {
                let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
                assert_eq!(lines.len(), 3, "{text}");
                assert!(lines[0].contains("档号"));
                assert!(
                    lines[1].starts_with("GD01-ZY·2025-D30-LXSP-0001,"),
                    "{text}"
                );
            }
            "register.xml" | "form.xml" => {
                let f = app.dir.path().join(name);
                std::fs::write(&f, &text).unwrap();
                let ok = std::process::Command::new("xmllint")
                    .arg("--noout")
                    .arg(&f)
                    .status()
                    .unwrap();
                assert!(ok.success(), "{name} is well-formed XML");
                if name == "form.xml" {
                    assert!(
                        text.contains("<cases>2</cases>") && text.contains("<refused>1</refused>"),
                        "{text}"
                    );
                    assert!(text.contains("<on_time>true</on_time>"));
                    // "passed" says what it rests on (issue 9, item 12): no scanner configured,
                    // readability not checked, process security for a person.
                    assert!(
                        text.contains("<passed_every_item>0</passed_every_item>")
                            && text.contains("<passed>0</passed>")
                            && text.contains("<filed>2</filed>"),
                        "{text}"
                    );
                    // Both cases came over the network.
                    assert!(
                        text.contains("<carrier online=\"2\" offline=\"0\">在线</carrier>"),
                        "{text}"
                    );
                    assert!(
                        text.contains("<archival_code_form cases=\"2\" malformed=\"0\">pass</archival_code_form>"),
                        "{text}"
                    );
                    assert!(
                        text.contains("<item_continuity classes=\"1\" gaps=\"0\" duplicates=\"0\">pass</item_continuity>"),
                        "{text}"
                    );
                    for (r, n) in [("not_configured", 2), ("manual", 2), ("not_checked", 2)] {
                        assert!(
                            text.contains(&format!("<open_items result=\"{r}\">{n}</open_items>")),
                            "{r}: {text}"
                        );
                    }
                    assert!(
                        text.contains(d["sha256"].as_str().map(|_| "algorithm=\"SM3\"").unwrap())
                    );
                }
            }
            "form.html" => {
                // Served as a page a browser shows and prints, not as XML.
                let r = app
                    .client
                    .get(app.url(&format!(
                        "/api/v1/filings/2025/batches/{batch_id}/form.html"
                    )))
                    .bearer_auth(&app.archivist)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
                // The form to print: the same numbers, the checks with their results.
                assert!(
                    text.starts_with("<!DOCTYPE html>") && text.contains("归档登记表"),
                    "{text}"
                );
                assert!(text.contains("<th>归档办件数</th><td>2</td>"), "{text}");
                assert!(
                    text.contains("<th>全部项目检查合格</th><td>0</td>"),
                    "{text}"
                );
                assert!(text.contains("在线（在线 2，离线 0）"), "{text}");
            }
            other => panic!("unexpected document {other}"),
        }
    }
    // Run again with only the refused case waiting: it is retried (and refused again), nothing
    // else happens.
    let (s, again) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(
        (
            again["kind"].as_str(),
            again["cases"].as_i64(),
            again["refused"].as_i64()
        ),
        (Some("supplementary"), Some(0), Some(1))
    );

    // After the deadline a 2025 case arrives: a supplementary batch files it, late, numbering on.
    clock.set(shanghai("2026-07-02T09:00:00"));
    let late_id = app
        .archive_case("F-LATE", "2025-12-20T10:00:00+08:00", "D30")
        .await;
    let (_, st) = app.get_json(&app.archivist, "/api/v1/filings/2025").await;
    assert_eq!(st["deadline_passed"], true);
    let (s, b2) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{b2}");
    assert_eq!(b2["kind"], "supplementary");
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{late_id}"))
        .await;
    assert_eq!(c["filing"]["late"], true, "{c}");
    assert_eq!(c["status"], "filed");
    let codes = codes_of(&app, 2025).await;
    assert_eq!(items_of(&codes), vec![1, 2, 3], "{codes:?}");
    // The refused (damaged) case stays refused and unfiled.
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{damaged}"))
        .await;
    assert_eq!(
        (c["status"].as_str(), c["archival_code"].as_str()),
        (Some("archived"), None)
    );
}

/// A tiny HTTP receiver for the webhook: collects every JSON body POSTed to it.
async fn webhook() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notices", l.local_addr().unwrap());
    let got = Arc::new(std::sync::Mutex::new(vec![]));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = l.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = vec![];
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body: Value =
                                serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap();
                            g.lock().unwrap().push(body);
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, got)
}

#[tokio::test]
async fn a_year_of_calendar_reports_warns_files_by_itself_and_flags_the_overdue() {
    let clock = Arc::new(ManualClock::new(shanghai("2026-01-01T08:00:00")));
    let (url, got) = webhook().await;
    let app = TestApp::spawn_clocked(clock.clone(), |s| {
        s.filing.webhook = Some(url);
        s.filing.report_from = guidang::config::MonthDay::parse("05-01").unwrap();
        s.filing.warn_days = vec![60, 30, 7];
        s.filing.auto_run_on = "06-25".to_string().try_into().unwrap();
    })
    .await;
    for i in 1..=2 {
        app.archive_case(&format!("Y-{i}"), "2025-11-11T11:00:00+08:00", "D30")
            .await;
    }
    // Day by day through the first half of 2026 and a little beyond.
    let mut notices: Vec<(String, guidang::filing::schedule::Notice)> = vec![];
    let mut day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let last = chrono::NaiveDate::from_ymd_opt(2026, 7, 10).unwrap();
    while day <= last {
        clock.set(shanghai(&format!("{day}T09:00:00")));
        if day.to_string() == "2026-07-02" {
            // After the deadline, one more case of 2025 arrives.
            app.archive_case("Y-LATE", "2025-12-30T11:00:00+08:00", "D30")
                .await;
        }
        for n in app.archive.filing().tick().await.unwrap() {
            notices.push((day.to_string(), n));
        }
        // A second look the same day gives nothing new.
        assert!(
            app.archive.filing().tick().await.unwrap().is_empty()
                || day.to_string() == "2026-07-02"
        );
        day = day.succ_opt().unwrap();
    }
    let kinds = |k: &str| -> Vec<String> {
        notices
            .iter()
            .filter(|(_, n)| n.kind == k)
            .map(|(d, _)| d.clone())
            .collect()
    };
    assert!(
        notices.iter().all(|(d, _)| d.as_str() >= "2026-05-01"),
        "nothing before the report date"
    );
    assert_eq!(
        kinds("warning"),
        vec!["2026-05-01", "2026-05-31", "2026-06-23"],
        "60, 30 and 7 days before, while unfiled"
    );
    assert_eq!(
        kinds("filed").first().map(String::as_str),
        Some("2026-06-25"),
        "filed by itself on the configured day"
    );
    let reports = kinds("report");
    assert_eq!(reports.first().map(String::as_str), Some("2026-05-01"));
    assert_eq!(
        reports.len(),
        61,
        "daily from 1 May to 30 June while nothing is pending after"
    );
    // The late arrival is filed by a supplementary batch the day after it came, flagged late.
    assert!(
        kinds("filed").contains(&"2026-07-02".to_string())
            || kinds("filed").contains(&"2026-07-03".to_string()),
        "{:?}",
        kinds("filed")
    );
    assert!(
        kinds("overdue").is_empty(),
        "nothing was left unfiled for long enough to be overdue: {:?}",
        kinds("overdue")
    );
    let (_, st) = app.get_json(&app.archivist, "/api/v1/filings/2025").await;
    assert_eq!(
        (
            st["counts"]["filed"].as_i64(),
            st["counts"]["pending"].as_i64(),
            st["counts"]["late"].as_i64()
        ),
        (Some(3), Some(0), Some(1)),
        "{st}"
    );
    assert_eq!(st["batches"][0]["origin"], "scheduled");
    // Every notice also went to the webhook, and the metrics count them.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(got.lock().unwrap().len(), notices.len());
    assert!(
        app.metrics()
            .await
            .contains(&format!("guidang_filing_notices_total {}", notices.len()))
    );
}

#[tokio::test]
async fn unfiled_cases_past_the_deadline_are_reported_overdue_once() {
    let clock = Arc::new(ManualClock::new(shanghai("2026-06-20T09:00:00")));
    let app = TestApp::spawn_clocked(clock.clone(), |s| {
        s.filing.auto_run_on = guidang::config::OptionalDay(None);
        s.filing.warn_days = vec![14, 7];
    })
    .await;
    app.archive_case("O-1", "2025-08-08T08:00:00+08:00", "D30")
        .await;
    let mut seen = vec![];
    for d in [
        "2026-06-20",
        "2026-06-23",
        "2026-06-30",
        "2026-07-01",
        "2026-07-02",
    ] {
        clock.set(shanghai(&format!("{d}T09:00:00")));
        for n in app.archive.filing().tick().await.unwrap() {
            if n.kind != "report" {
                seen.push(format!("{d} {} {}", n.kind, n.days_left));
            }
        }
    }
    assert_eq!(
        seen,
        vec![
            "2026-06-20 warning 10",
            "2026-06-23 warning 7",
            "2026-07-01 overdue -1"
        ]
    );
    let (_, st) = app.get_json(&app.archivist, "/api/v1/filings/2025").await;
    assert_eq!(st["counts"]["late"], 1, "{st}");
    assert!(app.metrics().await.contains("guidang_filing_days_left -2"));
}

#[tokio::test]
async fn the_scheduler_inside_serve_files_on_the_configured_day() {
    let clock = Arc::new(ManualClock::new(shanghai("2026-06-21T09:00:00")));
    let app = TestApp::spawn_clocked(clock.clone(), |s| {
        s.filing.auto_run_on = "06-22".to_string().try_into().unwrap();
        s.filing.scheduler_every_ms = 20;
    })
    .await;
    let id = app
        .archive_case("S-1", "2025-08-08T08:00:00+08:00", "D30")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
        .await;
    assert_eq!(c["status"], "archived", "not before the configured day");
    clock.set(shanghai("2026-06-22T09:00:00"));
    let mut status = String::new();
    for _ in 0..200 {
        let (_, c) = app
            .get_json(&app.archivist, &format!("/api/v1/cases/{id}"))
            .await;
        status = c["status"].as_str().unwrap_or("").to_string();
        if status == "filed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(status, "filed");
}

#[tokio::test]
async fn two_servers_filing_at_once_file_each_case_exactly_once() {
    // Two servers on one database and one object store, each with its own lease identity.
    let clock = Arc::new(ManualClock::new(shanghai("2026-03-01T09:00:00")));
    let a = TestApp::spawn_clocked(clock.clone(), |s| s.filing.batch_size = 3).await;
    let mut s2 = a.archive.settings().clone();
    s2.listen = "127.0.0.1:0".into();
    let b = TestApp::start_clocked(tempfile::tempdir().unwrap(), s2, clock.clone()).await;
    for i in 0..24 {
        a.archive_case(&format!("C-{i:02}"), "2025-04-04T10:00:00+08:00", "D30")
            .await;
    }
    let who = guidang::auth::Principal::scheduler();
    let (ra, rb) = tokio::join!(
        a.archive.filing().run(2025, "manual", &who),
        b.archive.filing().run(2025, "manual", &who),
    );
    let oks = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(oks, 1, "exactly one server files: {ra:?} / {rb:?}");
    for r in [&ra, &rb] {
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    guidang::filing::FilingError::Busy(_)
                        | guidang::filing::FilingError::Nothing(_)
                ),
                "{e}"
            );
        }
    }
    let codes = codes_of(&a, 2025).await;
    assert_eq!(items_of(&codes), (1..=24).collect::<Vec<i64>>());
    let (_, st) = b.get_json(&b.archivist, "/api/v1/filings/2025").await;
    assert_eq!(st["batches"].as_array().unwrap().len(), 1, "{st}");
}

#[tokio::test]
async fn a_filing_that_takes_longer_than_the_request_goes_on_in_the_background() {
    let clock = Arc::new(ManualClock::new(shanghai("2026-03-01T09:00:00")));
    let app = TestApp::spawn_clocked(clock, |s| {
        s.filing.respond_within_ms = 0;
        s.filing.batch_size = 1;
    })
    .await;
    for i in 0..3 {
        app.archive_case(&format!("BG-{i}"), "2025-04-04T10:00:00+08:00", "D30")
            .await;
    }
    let r = app
        .client
        .post(app.url("/api/v1/filings"))
        .bearer_auth(&app.archivist)
        .json(&json!({"year": 2025}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.headers()["location"], "/api/v1/filings/2025");
    let mut st = Value::Null;
    for _ in 0..200 {
        st = app.get_json(&app.archivist, "/api/v1/filings/2025").await.1;
        if st["batches"][0]["state"] == "complete" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(st["batches"][0]["state"], "complete", "{st}");
    assert_eq!(st["counts"]["filed"], 3);
}

#[tokio::test]
async fn a_case_whose_recorded_archiving_check_failed_is_not_filed() {
    let clock = Arc::new(ManualClock::new(shanghai("2026-03-01T09:00:00")));
    let app = TestApp::spawn_clocked(clock, |_| {}).await;
    let good = app
        .archive_case("G-1", "2025-04-04T10:00:00+08:00", "D30")
        .await;
    let bad = app
        .archive_case("G-2", "2025-04-05T10:00:00+08:00", "D30")
        .await;
    // As if the report had recorded a failed item (ingest rejects such a case; a row edited or
    // migrated from elsewhere could carry one).
    let report: String = sqlx::query_scalar("SELECT checks_json FROM cases WHERE archive_id = $1")
        .bind(&bad)
        .fetch_one(&app.archive.db().pool)
        .await
        .unwrap();
    let report = report.replacen("\"result\":\"pass\"", "\"result\":\"fail\"", 1);
    sqlx::query("UPDATE cases SET checks_json = $1 WHERE archive_id = $2")
        .bind(&report)
        .bind(&bad)
        .execute(&app.archive.db().pool)
        .await
        .unwrap();
    let (s, b) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(
        (s, b["cases"].as_i64(), b["refused"].as_i64()),
        (201, Some(1), Some(1)),
        "{b}"
    );
    let (_, st) = app.get_json(&app.archivist, "/api/v1/filings/2025").await;
    assert_eq!(st["refused"][0]["archive_id"], bad.as_str());
    assert!(
        st["refused"][0]["problem"]
            .as_str()
            .unwrap()
            .starts_with("GD-1-1 failed at archiving"),
        "{st}"
    );
    let (_, c) = app
        .get_json(&app.archivist, &format!("/api/v1/cases/{good}"))
        .await;
    assert_eq!(c["status"], "filed");
}

/// Issue 9, item 12: the archival codes of the year are checked at every batch — each has the
/// configured form, and item numbers run without a gap or a repeat — and the form says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archival_codes_are_checked_for_form_and_continuity() {
    use sqlx::{Connection, Executor};
    let app = TestApp::spawn().await;
    for i in 1..=3 {
        app.archive_case(
            &format!("CODE-{i}"),
            &format!("2025-04-0{i}T10:00:00+08:00"),
            "D30",
        )
        .await;
    }
    let (s, b) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{b}");
    let form = |b: serde_json::Value| {
        let app = &app;
        async move {
            let batch = b["batch_id"].as_str().unwrap().to_string();
            let (s, bytes) = app
                .get_bytes(
                    &app.auditor,
                    &format!("/api/v1/filings/2025/batches/{batch}/form.xml"),
                )
                .await;
            assert_eq!(s, 200);
            String::from_utf8(bytes).unwrap()
        }
    };
    let text = form(b).await;
    assert!(
        text.contains("malformed=\"0\">pass</archival_code_form>"),
        "{text}"
    );
    assert!(
        text.contains("gaps=\"0\" duplicates=\"0\">pass</item_continuity>"),
        "{text}"
    );

    // Someone rewrites the second code behind the archive's back; the next batch's check sees
    // the broken form and the gap it leaves.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.archive.settings().database_url())
        .await
        .unwrap();
    conn.execute("UPDATE cases SET archival_code = 'BROKEN' WHERE project_id = 'CODE-2'")
        .await
        .unwrap();
    app.archive_case("CODE-4", "2025-04-04T10:00:00+08:00", "D30")
        .await;
    let (s, b) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2025}))
        .await;
    assert_eq!(s, 201, "{b}");
    let text = form(b).await;
    assert!(
        text.contains("<archival_code_form cases=\"4\" malformed=\"1\">fail</archival_code_form>"),
        "{text}"
    );
    assert!(
        text.contains("gaps=\"1\" duplicates=\"0\">fail</item_continuity>"),
        "{text}"
    );
}
