//! The glint command: bring a file system up and down, format and run
//! targets, mount it, and the Lustre tools (lfs, lctl, lnetctl) users know.

mod bench;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "glint", version, about = "glint: an RDMA-first parallel file system in the Lustre mould")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Benchmarks that print each figure beside the limit measured in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Small-RPC latency and bulk bandwidth over the tcp LND (like lnet_selftest).
    Fabric(bench::fabric::FabricBench),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GLINT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.cmd {
        Cmd::Bench(BenchCmd::Fabric(a)) => rt.block_on(bench::fabric::run(a)),
    }
}
