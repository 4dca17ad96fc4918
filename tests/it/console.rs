//! The browser console over real HTTP, as a browser speaks it: sign-in for a session cookie,
//! pages in Chinese behind it, personal data masked by role, links into the API that the
//! session may follow for reading only, CSRF on sign-out, and sessions that end with their
//! token.

use crate::common::*;

/// A client that keeps no cookies and follows no redirects: the test reads each answer.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(app: &TestApp, c: &reqwest::Client, token: &str) -> reqwest::Response {
    c.post(app.url("/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

fn session_cookie(r: &reqwest::Response) -> String {
    let set = r
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

async fn get(
    app: &TestApp,
    c: &reqwest::Client,
    cookie: &str,
    path: &str,
) -> (u16, String, reqwest::header::HeaderMap) {
    let r = c
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, r.text().await.unwrap(), h)
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archivists_sign_in_find_a_case_read_its_report_and_sign_out() {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.submitter, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["archive_id"].as_str().unwrap().to_string();
    let c = browser();

    // Without a session every page leads to sign-in; the sign-in page is locked down.
    let r = c.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let r = c.get(app.url("/login")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.text().await.unwrap().contains("登录控制台"));

    // Wrong tokens and tokens of case systems do not open the console.
    let r = sign_in(&app, &c, "not-a-token").await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("令牌无效"));
    let r = sign_in(&app, &c, &app.submitter).await;
    assert_eq!(r.status().as_u16(), 403);

    let r = sign_in(&app, &c, &app.archivist).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = session_cookie(&r);
    assert!(
        !cookie.contains(&app.archivist),
        "the cookie is not the token"
    );

    // The overview counts what the archive holds.
    let (s, html, _) = get(&app, &c, &cookie, "/").await;
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("概览") && html.contains("每月归档办件") && html.contains("<svg"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"n\">1</span><span>已归档办件</span>"),
        "{html}"
    );

    // Search by project name finds it; a search that matches nothing says so.
    let (s, html, _) = get(
        &app,
        &c,
        &cookie,
        "/cases?q=%E6%B3%89%E5%9F%8E&year=&task_code=",
    )
    .await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains(&format!("/cases/{id}")), "{html}");
    assert!(html.contains("共 1 件"), "{html}");
    let (_, html, _) = get(&app, &c, &cookie, "/cases?q=nothing-like-this").await;
    assert!(html.contains("没有符合条件的办件"), "{html}");

    // The case page: facts, the applicant as an archivist may see them, files, the GD report.
    let (s, html, _) = get(&app, &c, &cookie, &format!("/cases/{id}")).await;
    assert_eq!(s, 200, "{html}");
    for want in [
        "济南泉城小吃店食品经营许可申请",
        "370102199001011234",
        "GD-1-1",
        "通过",
        "files/01-食品经营许可申请书.pdf",
        "窗口受理员 李娜",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    // Its file links are API routes the session may read …
    let (s, body, _) = get(
        &app,
        &c,
        &cookie,
        &format!("/api/v1/cases/{id}/files/files/04-%E5%AE%A1%E6%9F%A5%E6%84%8F%E8%A7%81.pdf"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.starts_with("%PDF-"));
    // … but a cookie changes nothing: writes need a token.
    let r = c
        .post(app.url("/api/v1/filings"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"year": 2025}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (s, _, _) = get(&app, &c, &cookie, "/cases/no-such-case").await;
    assert_eq!(s, 404);

    // Rejections: what was refused, each problem beside its Chinese name, filterable by code.
    let (s, _) = app
        .submit(&app.submitter, fixture("bad/encrypted_file-owner-only.zip"))
        .await;
    assert_eq!(s, 422);
    let (s, html, _) = get(&app, &c, &cookie, "/rejections").await;
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("文件已加密 <code>encrypted_file</code>"),
        "{html}"
    );
    assert!(html.contains("共 1 次"), "{html}");
    let (_, html, _) = get(&app, &c, &cookie, "/rejections?code=virus_found").await;
    assert!(html.contains("没有驳回记录"), "{html}");
    // The audit trail is for auditors and administrators, in the console as in the API.
    let (s, html, _) = get(&app, &c, &cookie, "/audit").await;
    assert_eq!(s, 403, "{html}");
    assert!(html.contains("档案员角色不能查看此页"), "{html}");

    // Sign-out needs the page's CSRF token, then the session is gone.
    let (_, html, _) = get(&app, &c, &cookie, "/").await;
    let csrf = csrf_of(&html);
    let r = c
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (s, _, _) = get(&app, &c, &cookie, "/").await;
    assert_eq!(s, 200, "a refused sign-out leaves the session");
    let r = c
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (s, _, h) = get(&app, &c, &cookie, "/").await;
    assert_eq!((s, h["location"].to_str().unwrap()), (303, "/login"));
    let (s, _, _) = get(&app, &c, &cookie, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_see_masked_personal_data_and_revoked_tokens_end_sessions() {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.submitter, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["archive_id"].as_str().unwrap().to_string();
    let c = browser();
    let cookie = session_cookie(&sign_in(&app, &c, &app.auditor).await);
    let (s, html, _) = get(&app, &c, &cookie, &format!("/cases/{id}")).await;
    assert_eq!(s, 200, "{html}");
    assert!(
        !html.contains("370102199001011234"),
        "the ID number is masked for auditors"
    );
    assert!(!html.contains("王小明"), "so is the applicant's name");
    assert!(html.contains("审计员"), "{html}");
    assert!(html.contains("不能读取文件内容"), "{html}");
    let (s, _, _) = get(
        &app,
        &c,
        &cookie,
        &format!("/api/v1/cases/{id}/files/files/04-%E5%AE%A1%E6%9F%A5%E6%84%8F%E8%A7%81.pdf"),
    )
    .await;
    assert_eq!(s, 403, "the session has the token's permissions, no more");

    // The auditor reads the audit trail, its chain intact, this sign-in in it.
    // (The trail is written by the recorder, a moment after the request.)
    let mut html = String::new();
    for _ in 0..50 {
        let (s, h, _) = get(&app, &c, &cookie, "/audit").await;
        assert_eq!(s, 200, "{h}");
        html = h;
        if html.contains("<code>console_sign_in</code>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(html.contains("哈希链完整"), "{html}");
    assert!(html.contains("<code>console_sign_in</code>"), "{html}");

    // Revoking the token (an administrator, in the console) ends its sessions at once.
    let (s, html, _) = get(&app, &c, &cookie, "/admin/tokens").await;
    assert_eq!(s, 403, "the token page is for administrators: {html}");
    let admin = session_cookie(&sign_in(&app, &c, &app.admin).await);
    let (s, _, _) = get(&app, &c, &admin, &format!("/cases/{id}")).await;
    assert_eq!(
        s, 403,
        "administrators see register-level data only, as in the API"
    );
    let (s, html, _) = get(&app, &c, &admin, "/admin/tokens").await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("当前会话"), "{html}");
    let (_, list) = app.get_json(&app.admin, "/api/v1/tokens").await;
    let token_id = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "auditor")
        .unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .post(app.url(&format!("/admin/tokens/{token_id}/revoke")))
        .header("cookie", &admin)
        .form(&[("csrf", "f".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a form without the session's CSRF token changes nothing"
    );
    let (s, _, _) = get(&app, &c, &cookie, &format!("/cases/{id}")).await;
    assert_eq!(s, 200);
    let r = c
        .post(app.url(&format!("/admin/tokens/{token_id}/revoke")))
        .header("cookie", &admin)
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (s, _, h) = get(&app, &c, &cookie, &format!("/cases/{id}")).await;
    assert_eq!((s, h["location"].to_str().unwrap()), (303, "/login"));
}

/// The console in headless Chromium (tests/browser/console_test.py over WebDriver): the whole
/// path of an archivist and two administrators, every page checked for console errors, labels,
/// keyboard access and axe-core's serious violations, and photographed into
/// target/browser-screenshots/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    use serde_json::json;
    let app = TestApp::spawn().await;
    app.put_rules(json!({"rules": [
        {"task_type": "XK", "retention": "D10", "basis": "许可类办件 10 年（示例依据）"},
    ]}))
    .await;
    // Two cases of 2012 kept ten years: filed, due for disposal now.
    for p in ["B-1", "B-2"] {
        app.archive_case(p, "2012-05-05T10:00:00+08:00", "D10")
            .await;
    }
    let (s, f) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2012}))
        .await;
    assert_eq!(s, 201, "{f}");
    // A filed 2013 case drafted for transfer: the batch page and its progress part.
    app.archive_case("B-3", "2013-05-05T10:00:00+08:00", "Y")
        .await;
    let (s, f) = app
        .post_json(&app.archivist, "/api/v1/filings", json!({"year": 2013}))
        .await;
    assert_eq!(s, 201, "{f}");
    let (s, t) = app
        .post_json(&app.archivist, "/api/v1/transfers", json!({"year": 2013}))
        .await;
    assert_eq!(s, 201, "{t}");
    let (_, list) = app
        .get_json(&app.archivist, "/api/v1/cases?year=2012")
        .await;
    let code = list["items"][0]["archival_code"]
        .as_str()
        .expect("an archival code")
        .to_string();
    let token = |role: &'static str, name: &'static str| {
        let db = app.archive.clone();
        async move {
            guidang::auth::create_token(db.db(), role, None, Some(name))
                .await
                .unwrap()
                .0
        }
    };
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/browser-screenshots")
        .join(if use_postgres() { "postgres" } else { "sqlite" });
    // This run's pictures only.
    let _ = std::fs::remove_dir_all(&shots);
    let cfg = json!({
        "base": app.addr,
        "archivist": token("archivist", "档案室 张敏").await,
        "admin_same_person": token("admin", "档案室 张敏").await,
        "admin_other": token("admin", "分管领导 刘强").await,
        "archival_code": code,
        "year": 2012,
        "transfer_id": t["transfer_id"],
        "import_zip": fixtures().join("valid/food-licence.zip"),
        "rejected_zip": fixtures().join("bad/encrypted_file-user-password.zip"),
        "screenshots": shots,
    });
    let file = app.dir.path().join("browser.json");
    std::fs::write(&file, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console_test.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(file)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .expect("python3 (scripts/test.sh puts the venv with selenium first on PATH)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("browser test passed"), "{text}");
    // What the pages did went through the API: the disposal list is approved by the second
    // administrator, and the imported case exists.
    let (_, lists) = app.get_json(&app.admin, "/api/v1/disposal/lists").await;
    assert_eq!(lists["items"][0]["state"], "approved", "{lists}");
    let (_, all) = app.get_json(&app.archivist, "/api/v1/cases").await;
    assert_eq!(all["total"], 4, "{all}");
}
