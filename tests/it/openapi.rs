//! The OpenAPI description a program integrates against: valid by an independent validator,
//! true about roles (every route called with every role), and true about answers (schemathesis,
//! property-based, against a live server with a real case: no 5xx, no status, content type or
//! body outside the description).

use crate::common::*;

/// A tool from the test environment (scripts/test.sh installs it into the Python venv that
/// goes first on PATH); the test fails, naming the install, when it is missing.
fn tool(name: &str) -> String {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    found.unwrap_or_else(|| {
        panic!("{name} is not installed: run scripts/test.sh (it installs it into target/py-venv)")
    })
}

async fn description(app: &TestApp) -> serde_json::Value {
    // No token needed: a program reads the description before it has one.
    let r = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_is_valid_and_its_roles_are_the_ones_enforced() {
    let app = TestApp::spawn().await;
    let doc = description(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every problem code is in the description with its Chinese name.
    let codes = doc["components"]["schemas"]["ProblemCode"]["x-codes"]
        .as_array()
        .unwrap();
    assert!(
        codes
            .iter()
            .any(|c| c["code"] == "encrypted_file" && c["zh"] == "文件已加密")
    );

    let transferor = guidang::auth::create_token(app.archive.db(), "transferor", None, None)
        .await
        .unwrap()
        .0;
    let tokens = [
        ("submitter", app.submitter.clone()),
        ("archivist", app.archivist.clone()),
        ("auditor", app.auditor.clone()),
        ("admin", app.admin.clone()),
        ("transferor", transferor),
    ];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles: Vec<&str> = op["x-roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            // Placeholders that name nothing: an allowed role gets anything but 401/403.
            let url = app.url(
                &path
                    .replace("{year}", "2025")
                    .replace("{archive_id}", "nonexistent")
                    .replace(['{', '}'], ""),
            );
            for (role, token) in &tokens {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let r = app
                    .client
                    .request(m, &url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                if roles.is_empty() || roles.contains(role) {
                    assert!(
                        s != 401 && s != 403,
                        "{method} {path} as {role}: {s}, but the description allows {roles:?}"
                    );
                } else {
                    assert_eq!(
                        s, 403,
                        "{method} {path} as {role}: the description allows only {roles:?}"
                    );
                }
                checked += 1;
            }
            if !roles.is_empty() {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let r = app.client.request(m, &url).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 401, "{method} {path} without a token");
            }
        }
    }
    assert!(checked >= 48 * 5, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_description() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let app = TestApp::spawn().await;
    let (s, b) = app
        .submit(&app.submitter, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["archive_id"].as_str().unwrap().to_string();
    // The real case's id and a real file, so the success answers are checked too.
    let config = app.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\narchive_id = \"{id}\"\nyear = 2025\n"),
    )
    .unwrap();
    let st = tool("schemathesis");
    for (role, token) in [("archivist", &app.archivist), ("admin", &app.admin)] {
        let mut cmd = std::process::Command::new(&st);
        cmd
            .arg("--config-file")
            .arg(&config)
            .args(["run", &app.url("/api/v1/openapi.json"), "--url", &app.addr])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--workers",
                "2",
                "--no-color",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .current_dir(app.dir.path())
            .stdin(std::process::Stdio::null());
        // Off the runtime's threads: the server under test runs on them.
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "schemathesis as {role} found answers outside the description:\n{text}"
        );
        assert!(text.contains("Tested: 4"), "{text}");
    }
    // The case is still there after the fuzzing (a fresh token: the admin's run may have
    // revoked the ones it found through GET /api/v1/tokens).
    let reader = guidang::auth::create_token(app.archive.db(), "archivist", None, None)
        .await
        .unwrap()
        .0;
    let (s, v) = app.get_json(&reader, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_come_in_chinese_to_clients_that_prefer_it_with_the_codes_unchanged() {
    let app = TestApp::spawn().await;
    let send = |lang: Option<&'static str>| {
        let mut r = app
            .client
            .post(app.url("/api/v1/cases"))
            .bearer_auth(&app.submitter)
            .header("content-type", "application/zip")
            .body(fixture("bad/encrypted_file-user-password.zip"));
        if let Some(l) = lang {
            r = r.header("accept-language", l);
        }
        r.send()
    };
    let r = send(Some("zh-CN,zh;q=0.9,en;q=0.8")).await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(r.headers()["content-language"], "zh-CN");
    let zh: serde_json::Value = r.json().await.unwrap();
    assert_eq!(zh["error"], "rejected");
    assert!(zh["message"].as_str().unwrap().contains("拒收"), "{zh}");
    let p = &zh["problems"][0];
    assert_eq!(p["code"], "encrypted_file");
    assert!(
        p["message"].as_str().unwrap().starts_with("文件已加密（"),
        "{p}"
    );
    assert!(p["message_en"].as_str().unwrap().is_ascii(), "{p}");

    for lang in [None, Some("en-GB,en;q=0.9,zh;q=0.5")] {
        let r = send(lang).await.unwrap();
        assert!(r.headers().get("content-language").is_none());
        let en: serde_json::Value = r.json().await.unwrap();
        assert_eq!(en["problems"][0]["code"], "encrypted_file");
        assert_eq!(en["problems"][0]["path"], p["path"]);
        assert!(en["message"].as_str().unwrap().contains("rejected"), "{en}");
        assert!(en.get("message_en").is_none());
    }
    // An error that is not a submission's: the same, for any route.
    let r = app
        .client
        .get(app.url("/api/v1/cases/nonexistent"))
        .bearer_auth(&app.archivist)
        .header("accept-language", "zh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (b["error"].as_str(), b["message"].as_str()),
        (Some("not_found"), Some("未找到所请求的对象"))
    );
}
