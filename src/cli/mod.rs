//! Command line (CONTRACT.md §1): thin wrappers over the archive core.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod digitised;
mod filing;
mod log;
mod transfer;

use crate::app::App;
use crate::auth::{Principal, Role};
use crate::config::Settings;
use crate::ingest::{IngestError, Outcome};
use crate::pipeline::unpack::Source;
use crate::verify;

#[derive(Parser)]
#[command(
    name = "guidang",
    version,
    about = "Archive for government-service case records (归档)"
)]
pub struct Cli {
    /// TOML configuration file (default: ./guidang.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP service (starts a new archive if the data directory holds none).
    Serve,
    /// Start a new archive: data directory, database and signing keys. Every command but `serve`
    /// and `verify` needs one.
    Init,
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Offline archiving of submission ZIPs or unpacked submission folders.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Who is importing (recorded in the package's events).
        #[arg(long)]
        name: Option<String>,
    },
    /// Verify archival packages offline: no server, no database.
    Verify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Public keys to trust (the JSON of `guidang keys export`).
        #[arg(long)]
        trusted_keys: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// A c2sp.org/tlog-proof@v1 inclusion proof (default: PACKAGE.tlog-proof if present).
        #[arg(long)]
        proof: Option<PathBuf>,
        /// Earlier versions of the same case's package: each is verified too, and every version
        /// must extend the one before it. (Versions given as PATHs are chained the same way.)
        #[arg(long)]
        previous: Vec<PathBuf>,
    },
    /// Digitised copies of paper originals.
    Digitised {
        #[command(subcommand)]
        cmd: DigitisedCmd,
    },
    /// Transfer to the archive authority.
    Transfer {
        #[command(subcommand)]
        cmd: TransferCmd,
    },
    /// The transparency log.
    Log {
        #[command(subcommand)]
        cmd: LogCmd,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// The yearly filing (归档) of the cases completed in a year.
    Filing {
        #[command(subcommand)]
        cmd: FilingCmd,
    },
}

#[derive(Subcommand)]
pub enum DigitisedCmd {
    /// Add scans of a case's paper originals (a folder or ZIP with digitisation.xml) as the next
    /// version of its package. Exit 0 added, 1 refused, 2 could not run.
    Add {
        archive_id: String,
        path: PathBuf,
        /// Who is adding them (recorded in the version's events; default: $USER).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TransferCmd {
    /// Write an approved batch's volumes (built first if needed), volumes.xml and its signatures
    /// to DIR, for media. Exit 0 written, 1 refused, 2 could not run.
    Export {
        transfer_id: String,
        #[arg(long)]
        out: PathBuf,
        /// Largest volume: 25G (BD-R, default), 4.7G (DVD), 700M, or bytes.
        #[arg(long)]
        volume_size: Option<String>,
    },
    /// At the archive authority: check volumes (files, or folders with volumes.xml), keep what
    /// is accepted, write the signed receipt. Exit 0 all accepted, 1 something refused, 2 could
    /// not run.
    Receive {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The sending unit's public keys (its `guidang keys export`).
        #[arg(long)]
        trusted_keys: PathBuf,
        /// Where the receipt is written (default: the current folder).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// At the sender: record a receipt (receipt.xml with its signature beside it) after checking
    /// it under the authority's pinned keys. Exit 0 recorded, 1 refused, 2 could not run.
    Ack {
        receipt: PathBuf,
        /// The archive authority's public keys.
        #[arg(long)]
        trusted_keys: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum FilingCmd {
    /// File year YEAR: check, code and register every archived, unfiled case of it; resumes an
    /// interrupted batch. Exit 0 filed, 1 nothing to file or some cases refused, 2 could not run.
    Run {
        #[arg(long)]
        year: i64,
    },
    /// Where year YEAR stands: filed, pending, refused, late, rejected, missing.
    Status {
        #[arg(long)]
        year: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it once.
    Create {
        /// submitter, archivist, auditor, admin, or transferor (a unit delivering transfers to
        /// this archive online; give it to that unit).
        #[arg(long)]
        role: String,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// When it stops working: YYYY-MM-DD (its start, UTC) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        /// An auditor token that may also read files and whole packages (personal data); without
        /// it an auditor reads the evidence of packages only.
        #[arg(long)]
        content: bool,
    },
    /// List the tokens: id, role, organisation, name, created, expires, last used, revoked.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it is refused (401) from the next request on, on every server.
    Revoke { token_id: String },
}

#[derive(Subcommand)]
pub enum LogCmd {
    /// Prove that checkpoint NEW extends checkpoint OLD (exit 0), or show a rewritten or forked
    /// log (exit 1).
    Consistency {
        old: PathBuf,
        new: PathBuf,
        /// The consistency proof (base64 hashes, one a line), as served by the log.
        #[arg(long, conflicts_with = "server")]
        proof: Option<PathBuf>,
        /// Fetch the proof from this server (token in GUIDANG_TOKEN).
        #[arg(long)]
        server: Option<String>,
        /// Pinned keys (the JSON of `guidang keys export`) to check both checkpoints' signatures.
        #[arg(long)]
        trusted_keys: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Print the public keys for auditors to pin.
    Export,
    /// Start a new package-signing key; the old one is retired but stays published.
    Rotate,
}

/// Who runs a command, for the audit trail.
/// The operator at this terminal.
fn cli_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}

fn settings(config: Option<&std::path::Path>) -> Result<Settings, ExitCode> {
    Settings::load(config).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

async fn open(config: Option<&std::path::Path>) -> Result<std::sync::Arc<App>, ExitCode> {
    let s = settings(config)?;
    App::open(s).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Runs `f` on an opened archive, then stops its background work (the recorder drains and a
/// last checkpoint is published) before the command exits.
async fn with_app<F, Fut>(config: Option<&std::path::Path>, f: F) -> Result<ExitCode, ExitCode>
where
    F: FnOnce(std::sync::Arc<App>) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let app = open(config).await?;
    let code = f(app.clone()).await;
    app.shutdown(std::time::Duration::from_secs(30)).await;
    Ok(code)
}

pub async fn run(cli: Cli) -> ExitCode {
    let cfg = cli.config.as_deref();
    if matches!(cli.command, Command::Filing { .. }) {
        // Refused cases and a resumed batch are reported as warnings.
        crate::telemetry::init_with(false, "warn,sqlx=error");
    }
    let r = match cli.command {
        Command::Serve => serve(cfg).await,
        Command::Init => init(cfg).await,
        Command::Token {
            cmd:
                TokenCmd::Create {
                    role,
                    org,
                    name,
                    expires,
                    content,
                },
        } => token_create(cfg, &role, org, name, expires, content).await,
        Command::Token {
            cmd: TokenCmd::List { json },
        } => with_app(cfg, |app| async move { token_list(&app, json).await }).await,
        Command::Token {
            cmd: TokenCmd::Revoke { token_id },
        } => {
            with_app(
                cfg,
                |app| async move { token_revoke(&app, &token_id).await },
            )
            .await
        }
        Command::Import { paths, name } => import(cfg, paths, name).await,
        Command::Verify {
            paths,
            trusted_keys,
            json,
            proof,
            previous,
        } => Ok(verify_cmd(paths, trusted_keys, json, proof, previous)),
        Command::Log {
            cmd:
                LogCmd::Consistency {
                    old,
                    new,
                    proof,
                    server,
                    trusted_keys,
                },
        } => Ok(log::consistency(
            &old,
            &new,
            proof.as_deref(),
            server.as_deref(),
            trusted_keys.as_deref(),
        )
        .await),
        Command::Keys {
            cmd: KeysCmd::Export,
        } => keys_export(cfg).await,
        Command::Keys {
            cmd: KeysCmd::Rotate,
        } => keys_rotate(cfg).await,
        Command::Digitised {
            cmd:
                DigitisedCmd::Add {
                    archive_id,
                    path,
                    name,
                },
        } => {
            let user = name.unwrap_or_else(cli_user);
            with_app(cfg, |app| async move {
                digitised::add(&app, &archive_id, &path, &Principal::operator(&user)).await
            })
            .await
        }
        Command::Transfer {
            cmd:
                TransferCmd::Export {
                    transfer_id,
                    out,
                    volume_size,
                },
        } => {
            with_app(cfg, |app| async move {
                transfer::export(
                    &app,
                    &transfer_id,
                    &out,
                    volume_size.as_deref(),
                    &Principal::operator(&cli_user()),
                )
                .await
            })
            .await
        }
        Command::Transfer {
            cmd:
                TransferCmd::Receive {
                    paths,
                    trusted_keys,
                    out,
                    json,
                },
        } => {
            with_app(cfg, |app| async move {
                transfer::receive(
                    &app,
                    &paths,
                    &trusted_keys,
                    &out,
                    json,
                    &Principal::operator(&cli_user()),
                )
                .await
            })
            .await
        }
        Command::Transfer {
            cmd:
                TransferCmd::Ack {
                    receipt,
                    trusted_keys,
                },
        } => {
            with_app(cfg, |app| async move {
                transfer::ack(
                    &app,
                    &receipt,
                    &trusted_keys,
                    &Principal::operator(&cli_user()),
                )
                .await
            })
            .await
        }
        Command::Filing {
            cmd: FilingCmd::Run { year },
        } => {
            with_app(cfg, |app| async move {
                filing::run(&app, year, &Principal::operator(&cli_user())).await
            })
            .await
        }
        Command::Filing {
            cmd: FilingCmd::Status { year, json },
        } => {
            with_app(
                cfg,
                |app| async move { filing::status(&app, year, json).await },
            )
            .await
        }
    };
    r.unwrap_or_else(|code| code)
}

async fn serve(cfg: Option<&std::path::Path>) -> Result<ExitCode, ExitCode> {
    let s = settings(cfg)?;
    crate::telemetry::init(s.log_format == crate::config::LogFormat::Json);
    let listen = s.listen.clone();
    let app = crate::http::Application::build(s).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    tracing::info!(listen = %listen, port = app.port(), "guidang serving");
    app.run_until_stopped().await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn init(cfg: Option<&std::path::Path>) -> Result<ExitCode, ExitCode> {
    let s = settings(cfg)?;
    let key = s.signing_key_path();
    let existed = key.exists();
    let data_dir = crate::config::absolute(&s.data_dir);
    let app = App::create(s).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    app.shutdown(std::time::Duration::from_secs(30)).await;
    if existed {
        eprintln!(
            "{} already holds an archive; nothing changed",
            data_dir.display()
        );
    } else {
        eprintln!(
            "new archive in {}; give auditors the keys of `guidang keys export`",
            data_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_create(
    cfg: Option<&std::path::Path>,
    role: &str,
    org: Option<String>,
    name: Option<String>,
    expires: Option<String>,
    content: bool,
) -> Result<ExitCode, ExitCode> {
    let by = Principal::operator_as(&cli_user(), Role::Admin);
    let expires = match expires
        .as_deref()
        .map(crate::auth::parse_expiry)
        .transpose()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    with_app(cfg, |app| async move {
        match app
            .tokens()
            .create(role, org.as_deref(), name.as_deref(), expires, content, &by)
            .await
        {
            Ok((token, row)) => {
                println!("{token}");
                eprintln!(
                    "token {} created for role {}; it is shown only this once",
                    row.token_id, row.role
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
    .await
}

async fn token_list(app: &App, json: bool) -> ExitCode {
    let tokens = match app.tokens().list().await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "tokens": tokens }))
                .unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for t in tokens {
        println!(
            "{}  {:<9}  org {}  name {}  created {}  expires {}  last used {}  revoked {}",
            t.token_id,
            t.role,
            dash(&t.org),
            dash(&t.name),
            t.created_at,
            dash(&t.expires_at),
            dash(&t.last_used_at),
            dash(&t.revoked_at)
        );
    }
    ExitCode::SUCCESS
}

async fn token_revoke(app: &App, token_id: &str) -> ExitCode {
    let by = Principal::operator_as(&cli_user(), Role::Admin);
    match app.tokens().revoke(token_id, &by).await {
        Ok(true) => {
            println!("revoked {token_id}");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("error: no live token {token_id} (see guidang token list)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn keys_export(cfg: Option<&std::path::Path>) -> Result<ExitCode, ExitCode> {
    with_app(cfg, |app| async move {
        match app.keys().published().await {
            Ok(keys) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"keys": keys}))
                        .unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
    .await
}

async fn keys_rotate(cfg: Option<&std::path::Path>) -> Result<ExitCode, ExitCode> {
    with_app(cfg, |app| async move {
        match app.keys().rotate().await {
            Ok((old, new)) => {
                println!(
                    "retired {} at {}",
                    old.key_id,
                    old.retired_at.unwrap_or_default()
                );
                println!("active  {}", new.key_id);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
    .await
}

async fn import(
    cfg: Option<&std::path::Path>,
    paths: Vec<PathBuf>,
    name: Option<String>,
) -> Result<ExitCode, ExitCode> {
    let archive = open(cfg).await?;
    let user = name
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "archivist".into());
    let agent = Principal::operator(&user);
    let bar = indicatif::ProgressBar::new(paths.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut archived, mut present, mut rejected) = (0usize, 0usize, 0usize);
    for p in &paths {
        bar.set_message(p.display().to_string());
        let source = match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Source::Folder(p.clone()),
            Ok(_) => Source::Zip(p.clone()),
            Err(e) => {
                rejected += 1;
                say(&bar, format!("rejected  {}: cannot read: {e}", p.display()));
                bar.inc(1);
                continue;
            }
        };
        // The ingest service writes the audit-trail row of each submission, whatever its outcome.
        let result = archive.ingest().ingest(source, agent.clone()).await;
        let line = match result {
            Ok(Outcome::Created(s)) => {
                archived += 1;
                let mut l = format!("archived  {} -> {}", p.display(), s.archive_id);
                for w in &s.warnings {
                    l.push_str(&format!(
                        "\n          warning {} {}: {}",
                        w.code,
                        w.path.as_deref().unwrap_or(""),
                        w.message
                    ));
                }
                l
            }
            Ok(Outcome::Existing(s)) => {
                present += 1;
                format!(
                    "present   {} -> {} (identical submission already archived)",
                    p.display(),
                    s.archive_id
                )
            }
            Err(IngestError::Rejected(probs)) => {
                rejected += 1;
                let mut l = format!(
                    "rejected  {}: {} problem(s)",
                    p.display(),
                    probs.errors.len()
                );
                for e in &probs.errors {
                    let at = e.path.as_deref().or(e.field.as_deref()).unwrap_or("-");
                    l.push_str(&format!("\n          {} {}: {}", e.code, at, e.message));
                }
                l
            }
            Err(IngestError::Unreadable(m)) => {
                rejected += 1;
                format!("rejected  {}: not_a_zip: {m}", p.display())
            }
            Err(e @ IngestError::Conflict { .. }) => {
                rejected += 1;
                format!("rejected  {}: case_exists: {e}", p.display())
            }
            Err(e) => {
                rejected += 1;
                format!("failed    {}: {e}", p.display())
            }
        };
        say(&bar, line);
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{archived} archived, {present} already present, {rejected} rejected");
    archive.shutdown(std::time::Duration::from_secs(30)).await;
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Per-submission lines go above the progress bar on a terminal, to stdout otherwise.
fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn verify_cmd(
    paths: Vec<PathBuf>,
    trusted_keys: Option<PathBuf>,
    json: bool,
    proof: Option<PathBuf>,
    previous: Vec<PathBuf>,
) -> ExitCode {
    let trusted = match trusted_keys
        .as_deref()
        .map(verify::load_trusted_keys)
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut reports = Vec::new();
    for p in &paths {
        match verify::verify_package(p, trusted.as_deref(), proof.as_deref()) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Earlier versions: the explicit proof belongs to the packages named first, not to these.
    for p in &previous {
        match verify::verify_package(p, trusted.as_deref(), None) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    verify::chain(&mut reports);
    if json {
        let all_valid = reports.iter().all(|r| r.valid);
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"valid": all_valid, "packages": reports})
            )
            .unwrap_or_default()
        );
    } else {
        for r in &reports {
            print!("{}", r.human());
        }
    }
    if reports.iter().all(|r| r.valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
