//! `guidang transfer export ID --out DIR [--volume-size SIZE]`: an approved batch's volumes, for
//! media (built first if they are not yet).

use std::path::Path;
use std::process::ExitCode;

use futures_util::StreamExt;

use crate::app::App;
use crate::auth::Principal;
use crate::transfer::TransferError;

/// Exit 0 written, 1 refused (state, changes since approval), 2 could not run.
pub async fn export(
    app: &App,
    id: &str,
    out: &Path,
    volume_size: Option<&str>,
    who: &Principal,
) -> ExitCode {
    let size = match volume_size
        .map(crate::transfer::build::parse_size)
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --volume-size: {e}");
            return ExitCode::from(2);
        }
    };
    let t = app.transfers();
    let view = match t.view(id).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if matches!(view.batch.state.as_str(), "approved" | "building") {
        if view.batch.state == "approved"
            && let Err(e) = t.start_build(id, size, who).await
        {
            eprintln!("refused: {e}");
            return ExitCode::from(1);
        }
        // Here, not in the background: the command ends when the volumes are written.
        if let Err(e) = t.build_here(id).await {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let vols = match t.volumes(id).await {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => {
            eprintln!(
                "refused: transfer {id} has no volumes (state {})",
                view.batch.state
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("error: {}: {e}", out.display());
        return ExitCode::from(2);
    }
    let mut names: Vec<String> = vols.iter().map(|v| format!("{}.zip", v.name)).collect();
    names.extend([
        "volumes.xml".into(),
        "volumes.xml.signature.json".into(),
        "registration.xml".into(),
        "registration.html".into(),
    ]);
    for name in &names {
        match copy_out(t, id, name, &out.join(name)).await {
            Ok(bytes) => println!("written   {} ({bytes} bytes)", out.join(name).display()),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // The SM2 signature, where the build made one (the server's SM2 key, whatever this
    // process is configured with).
    let sm2 = "volumes.xml.signature-sm2.json";
    if let Ok(bytes) = copy_out(t, id, sm2, &out.join(sm2)).await {
        println!("written   {} ({bytes} bytes)", out.join(sm2).display());
    }
    ExitCode::SUCCESS
}

async fn copy_out(
    t: &crate::transfer::Transfers,
    id: &str,
    name: &str,
    to: &Path,
) -> Result<u64, String> {
    use std::io::Write;
    let (_, mut stream) = t
        .object(id, name)
        .await
        .map_err(|e: TransferError| e.to_string())?;
    let tmp = to.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        f.write_all(&chunk).map_err(|e| e.to_string())?;
        n += chunk.len() as u64;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, to).map_err(|e| e.to_string())?;
    Ok(n)
}

fn keys(path: &Path) -> Result<Vec<crate::signing::PublicKeyInfo>, ExitCode> {
    crate::verify::load_trusted_keys(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub async fn receive(
    app: &App,
    paths: &[std::path::PathBuf],
    trusted: &Path,
    out: &Path,
    json: bool,
    who: &Principal,
) -> ExitCode {
    let trusted = match keys(trusted) {
        Ok(k) => k,
        Err(c) => return c,
    };
    match app.transfers().receive(paths, &trusted, out, who).await {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                for v in &r.volumes {
                    if v.accepted {
                        println!("volume    {} accepted", v.name);
                    } else {
                        println!("volume    {} REFUSED: {}", v.name, v.reason);
                    }
                }
                for c in &r.cases {
                    if c.accepted {
                        println!("accepted  {} {}", c.archival_code, c.archive_id);
                    } else {
                        println!(
                            "refused   {} {}: {}",
                            c.archival_code, c.archive_id, c.reason
                        );
                    }
                }
                println!("receipt   {}", r.receipt.display());
            }
            if r.all_accepted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub async fn ack(app: &App, receipt: &Path, trusted: &Path, who: &Principal) -> ExitCode {
    let trusted = match keys(trusted) {
        Ok(k) => k,
        Err(c) => return c,
    };
    match app.transfers().ack(receipt, &trusted, who).await {
        Ok((tid, accepted, refused)) => {
            println!(
                "recorded  receipt of {tid}: {accepted} case(s) transferred, {refused} refused"
            );
            ExitCode::SUCCESS
        }
        Err(e @ (TransferError::Invalid(_) | TransferError::State(_))) => {
            eprintln!("refused: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
