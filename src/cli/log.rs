//! `guidang log consistency OLD NEW`: an auditor's proof that the log only grew.

use std::path::Path;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::evidence::merkle::{self, Hash};
use crate::evidence::note::{self, Checkpoint};
use crate::verify::{load_trusted_keys, trusted_log_key};

fn read_checkpoint(
    path: &Path,
    keys: Option<&[crate::signing::PublicKeyInfo]>,
) -> Result<Checkpoint, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (body, _) = note::split(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let cp = Checkpoint::parse(body).map_err(|e| format!("{}: {e}", path.display()))?;
    match trusted_log_key(keys, &cp.origin) {
        Some((name, pk)) => {
            note::verify(&text, &name, &pk).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        None if keys.is_some() => {
            return Err(format!(
                "{}: no pinned log key for {}",
                path.display(),
                cp.origin
            ));
        }
        None => eprintln!(
            "warning: no --trusted-keys: the signature of {} was NOT checked",
            path.display()
        ),
    }
    Ok(cp)
}

fn parse_hashes(text: &str) -> Result<Vec<Hash>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            B64.decode(l.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| "a proof line is not a base64 SHA-256 hash".to_string())
        })
        .collect()
}

async fn fetch(server: &str, from: u64, to: u64) -> Result<String, String> {
    let url = format!(
        "{}/api/v1/log/consistency?from={from}&to={to}",
        server.trim_end_matches('/')
    );
    let mut req = reqwest::Client::new().get(&url);
    if let Ok(t) = std::env::var("GUIDANG_TOKEN") {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("{url} answered {}", r.status()));
    }
    r.text().await.map_err(|e| e.to_string())
}

/// Exit 0: NEW extends OLD. 1: it does not (rewritten or forked log). 2: could not check.
pub async fn consistency(
    old: &Path,
    new: &Path,
    proof: Option<&Path>,
    server: Option<&str>,
    trusted: Option<&Path>,
) -> ExitCode {
    let keys = match trusted.map(load_trusted_keys).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (a, b) = match (
        read_checkpoint(old, keys.as_deref()),
        read_checkpoint(new, keys.as_deref()),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            println!("INVALID: {e}");
            return ExitCode::from(1);
        }
    };
    if a.origin != b.origin {
        println!(
            "INVALID: the checkpoints are of different logs ({} and {})",
            a.origin, b.origin
        );
        return ExitCode::from(1);
    }
    if b.size < a.size {
        println!(
            "INVALID: NEW (size {}) is smaller than OLD (size {}): the log was truncated or rolled back",
            b.size, a.size
        );
        return ExitCode::from(1);
    }
    if a.size == 0 || a.size == b.size {
        return if a.size == b.size && a.root != b.root {
            println!(
                "INVALID: two different roots for size {}: the log has forked",
                a.size
            );
            ExitCode::from(1)
        } else {
            println!("CONSISTENT: {} size {} -> {}", a.origin, a.size, b.size);
            ExitCode::SUCCESS
        };
    }
    let text = match (proof, server) {
        (Some(p), _) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        }
        (None, Some(s)) => fetch(s, a.size, b.size).await,
        (None, None) => Err("give the consistency proof with --proof FILE or --server URL".into()),
    };
    let hashes = match text.and_then(|t| parse_hashes(&t)) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if merkle::verify_consistency(a.size, b.size, &a.root, &b.root, &hashes) {
        println!(
            "CONSISTENT: {} size {} -> {}: NEW extends OLD",
            a.origin, a.size, b.size
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "INVALID: NEW (size {}) does not extend OLD (size {}): the log was rewritten or has forked",
            b.size, a.size
        );
        ExitCode::from(1)
    }
}
