use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Everything guidang writes (database, packages, registers, keys, staging) is for its own
    // user only: data directories 0700, files 0600, whatever the caller's umask.
    // SAFETY: umask(2) only changes this process's file-creation mask; nothing runs yet.
    unsafe {
        libc::umask(0o077);
    }
    let cli = guidang::cli::Cli::parse();
    guidang::cli::run(cli).await
}
