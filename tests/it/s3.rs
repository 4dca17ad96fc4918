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
    // SAFETY: this test binary has this one test; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("AWS_ENDPOINT", &endpoint);
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    let app = TestApp::spawn_with(|s| s.object_store = Some("s3://archive/guidang".into())).await;
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["object_store"], "ok");

    let (s, b) = app
        .submit(&app.archivist, fixture("valid/food-licence.zip"))
        .await;
    assert_eq!(s, 201, "{b}");
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
    assert!(
        std::fs::read_dir(app.dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );

    // Whole package and one file by range.
    let (s, pkg) = app
        .get_bytes(&app.auditor, &format!("/api/v1/cases/{id}/package"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(pkg.len() as i64, b["package"]["size"].as_i64().unwrap());
    let (s, bytes) = app
        .get_bytes(
            &app.auditor,
            &format!("/api/v1/cases/{id}/files/files/05-准予许可决定书.ofd"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bytes, fixture("files/decision.ofd"));
    let path = app.dir.path().join("pkg.zip");
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
}
