//! Transparency-log benchmark (not a test): appends/s and inclusion-proof latency.
//!
//!   cargo run --release --example log_bench -- [LEAVES] [DATABASE_URL]
//!
//! Appends LEAVES entries (default 1,000,000) in transactions of 1,000 — as the recorder's group
//! commit does under load — to a fresh SQLite database (or the PostgreSQL URL given), then times
//! inclusion proofs for random leaves and a consistency proof against the full tree.

use std::sync::Arc;
use std::time::Instant;

use guidang::db::Db;
use guidang::evidence::log::{Log, append_on};
use guidang::evidence::merkle;
use guidang::signing::Signer;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = args.get(2).cloned().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )
    });
    let db = Db::connect(&url, 4, 30_000).await.expect("database");
    let signer = Arc::new(Signer::load_or_create(&dir.path().join("log.key")).expect("key"));
    let log = Log::new(db.clone(), signer, "bench.local/log".into());

    let started = Instant::now();
    let mut i = 0u64;
    while i < n {
        let mut tx = db.pool.begin().await.expect("begin");
        let end = (i + 1000).min(n);
        while i < end {
            let entry = format!("guidang-aip-v1\nbench-{i:08}\n{:064x}\n", i);
            append_on(&mut tx, db.postgres, "aip", None, &entry)
                .await
                .expect("append");
            i += 1;
        }
        tx.commit().await.expect("commit");
        if i.is_multiple_of(100_000) {
            eprintln!(
                "{i} appended, {:.0}/s",
                i as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let append_s = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let cp = log.publish().await.expect("checkpoint");
    let checkpoint_ms = t.elapsed().as_secs_f64() * 1000.0;
    let root = log.root(n).await.expect("root");

    let mut worst = 0f64;
    let mut total = 0f64;
    let samples = 200u64;
    for k in 0..samples {
        let idx = (k * 7_919_993 + 13) % n;
        let t = Instant::now();
        let proof = log.inclusion(idx, n).await.expect("proof");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let entry = format!("guidang-aip-v1\nbench-{idx:08}\n{:064x}\n", idx);
        assert!(merkle::verify_inclusion(
            &merkle::leaf_hash(entry.as_bytes()),
            idx,
            n,
            &proof,
            &root
        ));
        worst = worst.max(ms);
        total += ms;
    }
    println!(
        "{{\"leaves\": {n}, \"append_seconds\": {append_s:.1}, \"appends_per_second\": {:.0}, \"checkpoint_ms\": {checkpoint_ms:.1}, \"checkpoint_size\": {}, \"proof_ms_mean\": {:.2}, \"proof_ms_max\": {worst:.2}, \"backend\": \"{}\"}}",
        n as f64 / append_s,
        cp.size,
        total / samples as f64,
        if db.postgres { "postgres" } else { "sqlite" }
    );
}
