//! Temporary: runs `lfs`/`lnetctl` as main.rs will once wired.
#[path = "../src/lfs/mod.rs"]
mod lfs;
#[path = "../src/lnetctl/mod.rs"]
mod lnetctl;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(subcommand)]
    Lfs(lfs::LfsCmd),
    #[command(subcommand)]
    Lnetctl(lnetctl::LnetctlCmd),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GLINT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let code = rt.block_on(async {
        match cli.cmd {
            Cmd::Lfs(c) => lfs::run(c).await,
            Cmd::Lnetctl(c) => lnetctl::run(c).await,
        }
    });
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("glint: {e:#}");
            std::process::exit(1)
        }
    }
}
