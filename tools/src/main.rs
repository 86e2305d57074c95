//! The glint command: bring a file system up and down, format and run
//! targets, mount it, and the Lustre tools (lfs, lctl, lnetctl) users know.

mod bench;
mod lctl;
mod lfs;
mod lnetctl;
mod metrics;
mod mount;
mod servers;
mod sized;
mod spec;
mod up;

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
    /// Format, start and mount a whole file system on this machine.
    Up(up::UpArgs),
    /// Print (or write) systemd units for one host of a cluster spec.
    Systemd(up::SystemdArgs),
    /// Unmount and stop what `glint up` started (the data stays).
    Down(up::StateArgs),
    /// Every server of the file system with its health, NIDs and space.
    Status(up::StateArgs),
    /// Format a target (MDT with its MGS, or OST) in a directory.
    Mkfs(servers::MkfsArgs),
    /// Run the MGS and MDS of a formatted MDT in the foreground.
    Mds(servers::MdsArgs),
    /// Run an OSS serving formatted OSTs in the foreground.
    Oss(servers::OssArgs),
    /// Mount a file system: glint mount MGSNID:/FSNAME DIR.
    Mount(mount::MountArgs),
    /// Unmount a glint mount.
    Umount(mount::UmountArgs),
    /// Lustre's lfs: striping, space, find and FIDs, through the client library.
    #[command(subcommand)]
    Lfs(lfs::LfsCmd),
    /// Lustre's lctl: dl, get_param, set_param, list_param, ping, on this node's glint processes.
    #[command(subcommand)]
    Lctl(lctl::LctlCmd),
    /// Lustre's lnetctl: net show, peer show, ping, stats show.
    #[command(subcommand)]
    Lnetctl(lnetctl::LnetctlCmd),
    /// Benchmarks that print each figure beside the limit measured in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Small-RPC latency and bulk bandwidth over the tcp LND (like lnet_selftest).
    Fabric(bench::fabric::FabricBench),
    /// An OST over the fabric with raw OST RPCs, beside fio on the same directory (like obdfilter-survey).
    Ost(bench::ost::OstBench),
    /// Create, stat and unlink of many files, beside the local file system (like mdtest).
    Md(bench::md::MdBench),
    /// A striped file through the library and the mount, beside tcp and the local disk.
    Io(bench::io::IoBench),
    /// Small files through the FUSE mount (tar x, ls -l, cat, rm -r), beside the local file system.
    Files(bench::files::FilesBench),
}

fn main() {
    // Like any Unix tool, end quietly when the reader of our output goes
    // away (`glint status | head`).
    // SAFETY: restoring the default disposition of one signal at start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GLINT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("glint: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run() -> Result<i32> {
    let args = lfs::targets::find_style_args(std::env::args().collect());
    // `mount -t fuse.glint SPEC DIR -o OPTS` runs `mount.fuse.glint SPEC DIR -o OPTS`.
    let argv0 = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    let cli = if argv0 == "lfs" || argv0 == "lnetctl" || argv0 == "lctl" {
        let mut v = vec!["glint".to_string(), argv0.clone()];
        v.extend(args.into_iter().skip(1));
        Cli::parse_from(v)
    } else if argv0 == "mount.fuse.glint" || argv0 == "mount.glint" {
        let mut v = vec!["glint".to_string(), "mount".to_string(), "--daemon".to_string()];
        v.extend(args.into_iter().skip(1));
        Cli::parse_from(v)
    } else {
        Cli::parse_from(args)
    };
    match cli.cmd {
        Cmd::Up(a) => runtime()?.block_on(up::up(a)).map(|_| 0),
        Cmd::Down(a) => up::down(a).map(|_| 0),
        Cmd::Systemd(a) => up::systemd(a).map(|_| 0),
        Cmd::Status(a) => runtime()?.block_on(up::status(a)),
        Cmd::Mkfs(a) => servers::mkfs(a).map(|_| 0),
        Cmd::Mds(a) => runtime()?.block_on(servers::mds(a)).map(|_| 0),
        Cmd::Oss(a) => runtime()?.block_on(servers::oss(a)).map(|_| 0),
        Cmd::Mount(a) => mount::mount(a).map(|_| 0),
        Cmd::Umount(a) => mount::umount(a).map(|_| 0),
        Cmd::Lfs(c) => runtime()?.block_on(lfs::run(c)),
        Cmd::Lctl(c) => runtime()?.block_on(lctl::run(c)),
        Cmd::Lnetctl(c) => runtime()?.block_on(lnetctl::run(c)),
        Cmd::Bench(BenchCmd::Fabric(a)) => runtime()?.block_on(bench::fabric::run(a)).map(|_| 0),
        Cmd::Bench(BenchCmd::Ost(a)) => runtime()?.block_on(bench::ost::run(a)).map(|_| 0),
        Cmd::Bench(BenchCmd::Md(a)) => runtime()?.block_on(bench::md::run(a)).map(|_| 0),
        Cmd::Bench(BenchCmd::Io(a)) => runtime()?.block_on(bench::io::run(a)).map(|_| 0),
        Cmd::Bench(BenchCmd::Files(a)) => runtime()?.block_on(bench::files::run(a)).map(|_| 0),
    }
}
