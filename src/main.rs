use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = guidang::cli::Cli::parse();
    guidang::cli::run(cli).await
}
