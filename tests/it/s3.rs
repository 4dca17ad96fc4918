//! Packages in an S3-compatible object store (moto's server, a real S3 API over HTTP): committed
//! as a multipart upload, downloaded whole, read by range, verified offline.
//! Needs `moto_server` (scripts/test.sh installs it and sets GUIDANG_MOTO_SERVER).

use crate::common::*;
use std::process::{Child, Command, Stdio};

struct Moto(Child);
impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_live_in_an_s3_compatible_store() {
    let moto = std::env::var("GUIDANG_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {moto} (pip install 'moto[server]'; scripts/test.sh does): {e}")
        });
    let _moto = Moto(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(&endpoint).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "moto_server did not start");
    assert!(
        http.put(format!("{endpoint}/archive"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    // The real binary, with the store's settings in its own environment (setting them in this
    // process would race with the other tests' threads).
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    // The background audit re-reads every package as often as it can: a SIGTERM then lands
    // while it is reading an object from the store.
    std::fs::write(
        dir.path().join("guidang.toml"),
        "fixity_min_interval_secs = 0\nfixity_bytes_per_hour = 1099511627776\n",
    )
    .unwrap();
    let cmd = || {
        let mut c = crate::cli::guidang(dir.path(), &db);
        c.env("GUIDANG_OBJECT_STORE", "s3://archive/guidang")
            .env("AWS_ENDPOINT", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
        c
    };
    let out = cmd().arg("init").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = |role: &str| {
        let out = cmd()
            .args(["token", "create", "--role", role])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let archivist = token("archivist");
    let mut server = Reaped(
        cmd()
            .arg("serve")
            .env("GUIDANG_LISTEN", "127.0.0.1:0")
            .env("GUIDANG_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let base = format!(
        "http://127.0.0.1:{}",
        crate::cli::wait_for_port(&mut server)
    );
    let ready: serde_json::Value = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["object_store"], "ok");

    let r = http
        .post(format!("{base}/api/v1/cases"))
        .bearer_auth(&archivist)
        .header("content-type", "application/zip")
        .body(fixture("valid/food-licence.zip"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let b: serde_json::Value = r.json().await.unwrap();
    let id = b["archive_id"].as_str().unwrap();
    // The object is in the bucket, under the prefix, and nothing was left in local staging.
    let listing = http
        .get(format!(
            "{endpoint}/archive?list-type=2&prefix=guidang/packages/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains(&format!("guidang/packages/{id}/v1.zip")),
        "{listing}"
    );
    assert!(staging_files(dir.path()).is_empty());

    // Whole package and one file by range.
    let get = |path: String| {
        let (http, reader) = (http.clone(), archivist.clone());
        async move {
            let r = http.get(path).bearer_auth(&reader).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    let (s, pkg) = get(format!("{base}/api/v1/cases/{id}/package")).await;
    assert_eq!(s, 200);
    assert_eq!(pkg.len() as i64, b["package"]["size"].as_i64().unwrap());
    let (s, bytes) = get(format!(
        "{base}/api/v1/cases/{id}/files/files/05-准予许可决定书.ofd"
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(bytes, fixture("files/decision.ofd"));
    let path = dir.path().join("pkg.zip");
    std::fs::write(&path, &pkg).unwrap();
    let out = Command::new(bin())
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The background audit reads the package from the store over and over; SIGTERM in the
    // middle ends the server cleanly (it used to panic in object_store's GET as the runtime
    // shut down under it).
    let mut audited = false;
    for _ in 0..100 {
        let (_, l) = get(format!("{base}/api/v1/audits")).await;
        let l: serde_json::Value = serde_json::from_slice(&l).unwrap_or_default();
        if l["items"].as_array().is_some_and(|v| !v.is_empty()) {
            audited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(audited, "the background audit ran against the store");
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let status = server.wait().unwrap();
    let mut log = String::new();
    use std::io::Read;
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
