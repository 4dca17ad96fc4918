//! Test harness: an application on a random port with its own data directory and its own
//! database (a fresh SQLite file, or a fresh PostgreSQL database when GUIDANG_TEST_DB=postgres).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guidang::app::App;
use guidang::config::Settings;
use guidang::http::Application;

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

pub fn use_postgres() -> bool {
    std::env::var("GUIDANG_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// A database URL for one test: a new PostgreSQL database, or a SQLite file in `dir`.
pub async fn database_url(dir: &Path) -> String {
    if use_postgres() {
        use sqlx::Executor;
        sqlx::any::install_default_drivers();
        let name = format!("guidang_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(PG_ADMIN)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (GUIDANG_TEST_DB=postgres)");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        format!("postgres://postgres@127.0.0.1:5432/{name}")
    } else {
        format!("sqlite://{}?mode=rwc", dir.join("guidang.db").display())
    }
}

pub async fn settings(dir: &Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        database_url: Some(database_url(dir).await),
        // Background audits would race with what tests count; tests/it/fixity.rs turns them on.
        fixity_bytes_per_hour: 0,
        ..Default::default()
    }
}

pub struct TestApp {
    pub addr: String,
    pub archive: Arc<App>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub archivist: String,
    pub auditor: String,
    pub submitter: String,
    pub admin: String,
}

/// The organisation of the fixture case (its social_code).
pub const AGENCY: &str = "11370102MB2854637K";

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(f: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path()).await;
        f(&mut s);
        Self::start(dir, s).await
    }

    pub async fn start(dir: tempfile::TempDir, s: Settings) -> TestApp {
        Self::start_clocked(dir, s, Arc::new(guidang::clock::SystemClock)).await
    }

    /// An application whose calendar is `clock` (filing deadlines, disposal dates).
    pub async fn spawn_clocked(
        clock: Arc<dyn guidang::clock::Clock>,
        f: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path()).await;
        f(&mut s);
        Self::start_clocked(dir, s, clock).await
    }

    pub async fn start_clocked(
        dir: tempfile::TempDir,
        s: Settings,
        clock: Arc<dyn guidang::clock::Clock>,
    ) -> TestApp {
        let app = Application::build_with_clock(s, clock)
            .await
            .expect("application starts");
        let addr = format!("http://127.0.0.1:{}", app.port());
        let archive = app.app();
        tokio::spawn(app.run_until_stopped());
        let tok = |role: &'static str, org: Option<&'static str>| {
            let a = archive.clone();
            async move {
                guidang::auth::create_token(a.db(), role, org, Some(role))
                    .await
                    .expect("token")
                    .0
            }
        };
        TestApp {
            archivist: tok("archivist", None).await,
            auditor: tok("auditor", None).await,
            submitter: tok("submitter", Some(AGENCY)).await,
            admin: tok("admin", None).await,
            addr,
            archive,
            dir,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub async fn submit(&self, token: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url("/api/v1/cases"))
            .bearer_auth(token)
            .header("content-type", "application/zip")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A JSON request with a JSON answer.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::POST, token, path, body)
            .await
    }

    /// Submits the valid case as `project_id`, completed at `when` (RFC 3339), proposing
    /// `retention`; returns its archive id.
    pub async fn archive_case(&self, project_id: &str, when: &str, retention: &str) -> String {
        let (status, body) = self
            .submit(&self.submitter, case_zip(project_id, when, retention))
            .await;
        assert_eq!(status, 201, "{body}");
        body["archive_id"].as_str().expect("archive_id").to_string()
    }

    /// `PUT /api/v1/retention/rules` with `token`.
    pub async fn put_rules_as(
        &self,
        token: &str,
        rules: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send_json(
            reqwest::Method::PUT,
            token,
            "/api/v1/retention/rules",
            rules,
        )
        .await
    }

    /// `PUT /api/v1/retention/rules` as the administrator; asserts it was taken.
    pub async fn put_rules(&self, rules: serde_json::Value) -> serde_json::Value {
        let (s, b) = self.put_rules_as(&self.admin, rules).await;
        assert_eq!(s, 200, "{b}");
        b
    }

    pub async fn get_json(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The published keys (`GET /api/v1/keys`, no token).
    pub async fn keys(&self) -> serde_json::Value {
        self.client
            .get(self.url("/api/v1/keys"))
            .send()
            .await
            .expect("keys")
            .json()
            .await
            .expect("json")
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn get_bytes(&self, token: &str, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (
            status,
            r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        )
    }

    /// Files under the object store's directory (packages actually stored).
    pub fn stored_packages(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        let root = self.dir.path().join("objects").join("packages");
        for d in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                out.push(f.path());
            }
        }
        out
    }
}

pub fn problem_codes(body: &serde_json::Value) -> Vec<String> {
    body["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds a ZIP from (name, bytes) pairs, deflated.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).expect("zip entry");
        w.write_all(data).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// The valid fixture's entries, read from its unpacked folder.
pub fn valid_entries() -> Vec<(String, Vec<u8>)> {
    let root = fixtures().join("valid/food-licence");
    let mut out = vec![];
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).expect("fixture dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&root)
                    .expect("rel")
                    .to_string_lossy()
                    .to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// The valid case with its metadata edited by `f`, re-zipped.
pub fn valid_with_metadata(f: impl Fn(String) -> String) -> Vec<u8> {
    let entries: Vec<(String, Vec<u8>)> = valid_entries()
        .into_iter()
        .map(|(n, b)| {
            if n == "metadata.xml" {
                (n, f(String::from_utf8(b).expect("utf8")).into_bytes())
            } else {
                (n, b)
            }
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_of(&refs)
}

/// The valid case as `project_id`, received and completed at `when`, proposing `retention`.
pub fn case_zip(project_id: &str, when: &str, retention: &str) -> Vec<u8> {
    let (p, w, r) = (
        project_id.to_string(),
        when.to_string(),
        retention.to_string(),
    );
    valid_with_metadata(move |m| {
        m.replace("370102-SPJY-20250303-0001", &p)
            .replace(
                "<receive_time>2025-03-03T09:15:00+08:00",
                &format!("<receive_time>{w}"),
            )
            .replace(
                "<transact_time>2025-03-18T16:40:00+08:00",
                &format!("<transact_time>{w}"),
            )
            .replace("<retention_period>D30", &format!("<retention_period>{r}"))
    })
}

/// A calendar instant: `local` (`YYYY-MM-DDTHH:MM:SS`) in Asia/Shanghai.
pub fn shanghai(local: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&format!("{local}+08:00"))
        .expect("time")
        .with_timezone(&chrono::Utc)
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_guidang")
}

/// Every file under the data directory's staging root except the processes' lock files: what a
/// submission, a filing or a disposal left behind.
pub fn staging_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![data_dir.join("tmp")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".lock") {
                out.push(p);
            }
        }
    }
    out
}

/// A child process (a server under test) killed and reaped when the test that started it ends,
/// even by a failed assertion: left running, it would hold the test runner's output open.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}
impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}
impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
