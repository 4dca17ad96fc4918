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
    about = "Archive for government-service case records (归档)",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// TOML configuration file; `GUIDANG_*` environment variables override it [default:
    /// ./guidang.toml if present, else the built-in defaults: SQLite and files under ./data]
    #[arg(long, global = true, value_name = "FILE")]
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
    /// Offline archiving of submission ZIPs or unpacked submission folders: the same checks and
    /// results as POST /api/v1/cases. Exit 0 all archived or already present, 1 some rejected,
    /// 2 could not run (a PATH that does not exist or cannot be read: nothing is imported).
    Import {
        /// Submission ZIPs or unpacked submission folders, one case each.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Who is importing, recorded in the package's events [default: $USER]
        #[arg(long)]
        name: Option<String>,
        /// One JSON document on stdout: per PATH its outcome (archived, present, rejected,
        /// failed), archive id, problems and warnings, then the counts.
        #[arg(long)]
        json: bool,
    },
    /// Verify archival packages or transfer volumes offline: no server, no database. Exit 0
    /// valid, 1 invalid, 2 could not run.
    Verify {
        /// Archival package ZIPs or transfer volumes.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Public keys to trust (the JSON of `guidang keys export`) [default: the keys inside
        /// each package, which proves integrity but not origin]
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
        /// One JSON report per package on stdout instead of text.
        #[arg(long)]
        json: bool,
        /// A c2sp.org/tlog-proof@v1 inclusion proof [default: PACKAGE.tlog-proof if present]
        #[arg(long, value_name = "FILE")]
        proof: Option<PathBuf>,
        /// Earlier versions of the same case's package: each is verified too, and every version
        /// must extend the one before it. (Versions given as PATHs are chained the same way.)
        #[arg(long, value_name = "PATH")]
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
        /// The case's archive id (as GET /api/v1/cases shows it).
        archive_id: String,
        /// A folder or ZIP with digitisation.xml and the images.
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
        /// The approved transfer batch.
        transfer_id: String,
        /// The folder the volumes are written to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Largest volume: 4.7G (DVD), 700M, or bytes [default: 25G (BD-R)]
        #[arg(long, value_name = "SIZE")]
        volume_size: Option<String>,
    },
    /// At the archive authority: check volumes (files, or folders with volumes.xml), keep what
    /// is accepted, write the signed receipt. Exit 0 all accepted, 1 something refused, 2 could
    /// not run.
    Receive {
        /// Volume ZIPs, or folders holding them with volumes.xml.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The sending unit's public keys (its `guidang keys export`).
        #[arg(long, value_name = "FILE")]
        trusted_keys: PathBuf,
        /// Where the receipt is written.
        #[arg(long, default_value = ".", value_name = "DIR")]
        out: PathBuf,
        /// The receipt's summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// At the sender: record a receipt (receipt.xml with its signature beside it) after checking
    /// it under the authority's pinned keys. Exit 0 recorded, 1 refused, 2 could not run.
    Ack {
        /// receipt.xml (its receipt.xml.signature.json beside it).
        receipt: PathBuf,
        /// The archive authority's public keys.
        #[arg(long, value_name = "FILE")]
        trusted_keys: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum FilingCmd {
    /// File year YEAR: check, code and register every archived, unfiled case of it; resumes an
    /// interrupted batch. Exit 0 filed, 1 nothing to file or some cases refused, 2 could not run.
    Run {
        /// The year whose cases are filed (the year they were completed).
        #[arg(long)]
        year: i64,
        /// The batch (counts, documents with their digests) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Where year YEAR stands: filed, pending, refused, late, rejected, missing. Exit 0, or 2
    /// could not run.
    Status {
        /// The year to report on.
        #[arg(long)]
        year: i64,
        /// The whole status as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it once. Exit 0, or 2 could not run (bad role, organisation or
    /// date).
    Create {
        /// submitter, archivist, auditor, admin, or transferor (a unit delivering transfers to
        /// this archive online; give it to that unit).
        #[arg(long, value_parser = ["submitter", "archivist", "auditor", "admin", "transferor"])]
        role: String,
        /// The organisation's unified social credit code (18 characters); a submitter token
        /// needs it and may push and read that organisation's cases only.
        #[arg(long, value_name = "SOCIAL_CODE")]
        org: Option<String>,
        /// A label for people: who or which system holds it.
        #[arg(long)]
        name: Option<String>,
        /// When it stops working: YYYY-MM-DD (its start, UTC) or an RFC 3339 time [default:
        /// never]
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// An auditor token that may also read files and whole packages (personal data); without
        /// it an auditor reads the evidence of packages only.
        #[arg(long)]
        content: bool,
        /// The token and its record as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens: id, role, organisation, name, created, expires, last used, revoked.
    List {
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it is refused (401) from the next request on, on every server; its
    /// console sessions end. Exit 0 revoked, 1 no such live token, 2 could not run.
    Revoke {
        /// The token's id (as `guidang token list` shows it; not the token itself).
        token_id: String,
    },
}

#[derive(Subcommand)]
pub enum LogCmd {
    /// Prove that checkpoint NEW extends checkpoint OLD (exit 0), or show a rewritten or forked
    /// log (exit 1).
    Consistency {
        /// The older checkpoint (a file saved from GET /api/v1/log/checkpoint).
        old: PathBuf,
        /// The newer checkpoint.
        new: PathBuf,
        /// The consistency proof (base64 hashes, one a line), as served by the log.
        #[arg(long, conflicts_with = "server", value_name = "FILE")]
        proof: Option<PathBuf>,
        /// Fetch the proof from this server, e.g. http://127.0.0.1:8080 (token in GUIDANG_TOKEN).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Pinned keys (the JSON of `guidang keys export`) to check both checkpoints' signatures.
        #[arg(long, value_name = "FILE")]
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

/// What every command's exit code means (shown under `guidang --help`).
const EXIT_CODES: &str = "Exit codes: 0 done; 1 the command ran and found something refused, \
rejected or invalid (it says what); 2 could not run (bad arguments, a path that does not exist, \
no archive, the database or object store unreachable). Commands that say more list it above.";

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
                    json,
                },
        } => token_create(cfg, &role, org, name, expires, content, json).await,
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
        Command::Import { paths, name, json } => import(cfg, paths, name, json).await,
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
            cmd: FilingCmd::Run { year, json },
        } => {
            with_app(cfg, |app| async move {
                filing::run(&app, year, json, &Principal::operator(&cli_user())).await
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
    json: bool,
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
            Ok((token, row)) if json => {
                let mut v = serde_json::to_value(&row).unwrap_or_default();
                v["token"] = serde_json::json!(token);
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
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
    json: bool,
) -> Result<ExitCode, ExitCode> {
    // A path that is not there is a mistake in the command, not a rejected submission: say so
    // before anything is imported.
    let mut missing = false;
    for p in &paths {
        if let Err(e) = std::fs::metadata(p) {
            eprintln!("error: {}: {e}", p.display());
            missing = true;
        }
    }
    if missing {
        eprintln!("nothing was imported");
        return Err(ExitCode::from(2));
    }
    let archive = open(cfg).await?;
    let user = name
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "archivist".into());
    let agent = Principal::operator(&user);
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(paths.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut archived, mut present, mut rejected) = (0usize, 0usize, 0usize);
    let mut results = Vec::new();
    for p in &paths {
        bar.set_message(p.display().to_string());
        let source = match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Source::Folder(p.clone()),
            Ok(_) => Source::Zip(p.clone()),
            Err(e) => {
                rejected += 1;
                let r = ImportResult::failed(p, format!("cannot read: {e}"));
                emit(&bar, json, &r, &mut results);
                bar.inc(1);
                continue;
            }
        };
        // The ingest service writes the audit-trail row of each submission, whatever its outcome.
        let r = match archive.ingest().ingest(source, agent.clone()).await {
            Ok(Outcome::Created(s)) => {
                archived += 1;
                ImportResult {
                    outcome: "archived",
                    archive_id: Some(s.archive_id.clone()),
                    warnings: s.warnings.clone(),
                    ..ImportResult::new(p)
                }
            }
            Ok(Outcome::Existing(s)) => {
                present += 1;
                ImportResult {
                    outcome: "present",
                    archive_id: Some(s.archive_id.clone()),
                    ..ImportResult::new(p)
                }
            }
            Err(IngestError::Rejected(probs)) => {
                rejected += 1;
                ImportResult {
                    outcome: "rejected",
                    problems: probs.errors.clone(),
                    warnings: probs.warnings.clone(),
                    ..ImportResult::new(p)
                }
            }
            Err(IngestError::Unreadable(m)) => {
                rejected += 1;
                ImportResult {
                    outcome: "rejected",
                    problems: vec![crate::problem::Problem::new(
                        crate::problem::Code::NotAZip,
                        m,
                    )],
                    ..ImportResult::new(p)
                }
            }
            Err(e @ IngestError::Conflict { .. }) => {
                rejected += 1;
                ImportResult {
                    outcome: "rejected",
                    problems: vec![crate::problem::Problem::field(
                        crate::problem::Code::CaseExists,
                        "project_id",
                        e.to_string(),
                    )],
                    ..ImportResult::new(p)
                }
            }
            Err(e) => {
                rejected += 1;
                ImportResult::failed(p, e.to_string())
            }
        };
        emit(&bar, json, &r, &mut results);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "results": results,
                "archived": archived,
                "present": present,
                "rejected": rejected,
            }))
            .unwrap_or_default()
        );
    } else {
        println!("{archived} archived, {present} already present, {rejected} rejected");
    }
    archive.shutdown(std::time::Duration::from_secs(30)).await;
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One submission's outcome, as `import` prints it (a line, or an element of `--json`).
#[derive(serde::Serialize)]
struct ImportResult {
    path: String,
    /// archived, present, rejected or failed.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    archive_id: Option<String>,
    problems: Vec<crate::problem::Problem>,
    warnings: Vec<crate::problem::Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl ImportResult {
    fn new(p: &std::path::Path) -> ImportResult {
        ImportResult {
            path: p.display().to_string(),
            outcome: "",
            archive_id: None,
            problems: Vec::new(),
            warnings: Vec::new(),
            error: None,
        }
    }

    fn failed(p: &std::path::Path, error: String) -> ImportResult {
        ImportResult {
            outcome: "failed",
            error: Some(error),
            ..ImportResult::new(p)
        }
    }

    fn line(&self) -> String {
        let id = self.archive_id.as_deref().unwrap_or("");
        let mut l = match self.outcome {
            "archived" => format!("archived  {} -> {id}", self.path),
            "present" => format!(
                "present   {} -> {id} (identical submission already archived)",
                self.path
            ),
            "rejected" => format!(
                "rejected  {}: {} problem(s)",
                self.path,
                self.problems.len()
            ),
            _ => format!(
                "failed    {}: {}",
                self.path,
                self.error.as_deref().unwrap_or("")
            ),
        };
        for e in &self.problems {
            let at = e.path.as_deref().or(e.field.as_deref()).unwrap_or("-");
            l.push_str(&format!(
                "\n          {} {}: {}",
                e.code.as_str(),
                at,
                e.message
            ));
        }
        for w in &self.warnings {
            l.push_str(&format!(
                "\n          warning {} {}: {}",
                w.code.as_str(),
                w.path.as_deref().unwrap_or(""),
                w.message
            ));
        }
        l
    }
}

/// A result as a line now, or kept for the JSON document at the end.
fn emit(
    bar: &indicatif::ProgressBar,
    json: bool,
    r: &ImportResult,
    results: &mut Vec<serde_json::Value>,
) {
    if json {
        results.push(serde_json::to_value(r).unwrap_or_default());
    } else {
        say(bar, r.line());
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option and argument of every subcommand says what it is, and every subcommand
    /// says what it does.
    #[test]
    fn every_option_of_every_subcommand_has_help() {
        fn walk(cmd: &clap::Command, at: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{at} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{at} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(format!("{name} (about)"));
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "guidang", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:?}");
        super::Cli::command().debug_assert();
    }
}
