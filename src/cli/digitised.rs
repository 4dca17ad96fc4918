//! `guidang digitised add ARCHIVE_ID DIR_OR_ZIP`: the offline form of the digitised-copy route.

use std::path::Path;
use std::process::ExitCode;

use crate::app::App;
use crate::auth::Principal;
use crate::digitised::DigitisedError;
use crate::pipeline::unpack::Source;

/// Exit 0 added, 1 refused (every problem printed), 2 could not run.
pub async fn add(app: &App, archive_id: &str, path: &Path, who: &Principal) -> ExitCode {
    let source = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Source::Folder(path.to_path_buf()),
        Ok(_) => Source::Zip(path.to_path_buf()),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    match app.digitised().add(archive_id, source, who).await {
        Ok(a) => {
            println!(
                "added     {} page(s) to {} as package version {} (tag manifest sha256 {}, extends {})",
                a.pages,
                a.version.archive_id,
                a.version.version,
                a.version.tagmanifest_sha256,
                a.version.previous_sha256
            );
            for m in &a.images {
                println!(
                    "image     {} original {} page {}{}: {} {} {} dpi",
                    m.path,
                    m.original,
                    m.first_page,
                    if m.pages > 1 {
                        format!("-{}", m.first_page + m.pages - 1)
                    } else {
                        String::new()
                    },
                    m.format.as_str(),
                    m.colour_mode.as_str(),
                    m.dpi.map(|d| d.to_string()).unwrap_or_else(|| "?".into())
                );
            }
            ExitCode::SUCCESS
        }
        Err(DigitisedError::Rejected(p)) => {
            println!(
                "refused   {}: {} problem(s); the case's package is unchanged",
                path.display(),
                p.errors.len()
            );
            for e in &p.errors {
                let at = e.path.as_deref().or(e.field.as_deref()).unwrap_or("-");
                println!("  {} {at}: {}", e.code, e.message);
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
