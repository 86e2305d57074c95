//! `glint bench md`, in the manner of mdtest: create, stat and unlink of
//! many empty files, in one shared directory and in a directory per
//! client, from one client and from several, beside the same work done
//! with std::fs on the local file system in the same run. Then how the
//! create and lookup rates of one client change as one directory grows.
//!
//! In the create/stat/unlink runs a client is a process of its own (this
//! program again, with a mount of its own) doing one operation at a time,
//! as an mdtest rank is; the parent starts each phase in every client at
//! once and times it until the last one is done. The growth measurement
//! drives mounts inside this process. The MDS commits every change
//! durably before it answers, while the local file system is not asked to
//! sync.

use super::cluster::{BenchFs, fs_type};
use super::ost::XorShift;
use super::report::{rate, ratio};
use anyhow::{Context, Result, bail};
use client::{Client, process_cred};
use proto::{Cred, Fid, StripeSpec};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// The longest wait for the servers' background work before a local run.
const SETTLE: Duration = Duration::from_secs(60);
/// Creates in flight per client while a directory is filled between
/// measurements (untimed, so as fast as group commit allows).
const FILL_PER_CLIENT: usize = 8;

#[derive(clap::Args, Debug)]
pub struct MdBench {
    /// Files per phase, shared out among the clients. The default keeps a
    /// run near two minutes on a small machine; mdtest's usual is 100000.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    pub files: u64,
    /// The "several clients" of the multi-client runs.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Directory on the disk for the MDT, the OST and the local run
    /// (default: a temporary directory under /var/tmp).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Directory sizes at which one client's create and lookup rates are
    /// measured.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub growth: Vec<u64>,
    /// Also measure at 1,000,000 entries (fills one directory with a
    /// million files: minutes).
    #[arg(long)]
    pub million: bool,
    /// Operations timed at each directory size.
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
    /// Skip the growth measurement.
    #[arg(long)]
    pub no_growth: bool,
    /// Only the growth measurement (e.g. with --million).
    #[arg(long, conflicts_with = "no_growth")]
    pub growth_only: bool,
    /// Run as one client process of a parent `glint bench md`, on the file
    /// system with this mount spec.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
    /// The worker's directory (a FID).
    #[arg(long, hide = true)]
    pub worker_dir: Option<String>,
    /// The worker's rank, which names its files.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_rank: usize,
}

/// Rates of one run, operations per second.
#[derive(Clone, Copy, Debug)]
struct Rates {
    create: f64,
    stat: f64,
    unlink: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Create,
    Stat,
    Unlink,
}

impl Op {
    /// The word a parent sends a worker to start a phase.
    fn word(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Stat => "stat",
            Op::Unlink => "unlink",
        }
    }

    fn from_word(w: &str) -> Option<Op> {
        [Op::Create, Op::Stat, Op::Unlink].into_iter().find(|o| o.word() == w)
    }
}

/// Name of file `i` of client `c`, as mdtest names them.
fn file_name(c: usize, i: u64) -> String {
    format!("file.mdtest.{c}.{i}")
}

/// The files of client `c` when `total` are shared out among `clients`.
fn share(total: u64, clients: usize, c: usize) -> u64 {
    let clients = clients as u64;
    total / clients + u64::from((c as u64) < total % clients)
}

pub async fn run(a: MdBench) -> Result<()> {
    if let Some(spec) = &a.worker {
        return worker(spec, &a).await;
    }
    if a.files == 0 || a.clients == 0 || a.clients > 256 || a.window == 0 {
        bail!("--files, --clients (at most 256) and --window must be positive");
    }
    let mut sizes: Vec<u64> = a.growth.iter().copied().filter(|s| *s > 0).collect();
    if a.million {
        sizes.push(1_000_000);
    }
    sizes.sort_unstable();
    sizes.dedup();
    let base = a.dir.clone().unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let work = tempfile::Builder::new()
        .prefix("glint-bench-md")
        .tempdir_in(&base)
        .with_context(|| format!("making a directory under {}", base.display()))?;
    let fs = BenchFs::start(&work.path().join("mdt"), &[work.path().join("ost0")]).await?;
    println!(
        "glint bench md: {} empty files per phase; MDS and one OST in this process on {} ({}), \
         tcp LND on loopback; local file system: std::fs in {} with the same number of threads",
        a.files,
        work.path().display(),
        fs_type(work.path()),
        work.path().display()
    );
    println!(
        "(a client is a process with a mount of its own doing one operation at a time, the local run a thread; \
         the MDS commits each change durably, the local run does not sync)"
    );
    let result = survey(&fs, work.path(), &a, &sizes).await;
    fs.shutdown();
    result
}

async fn survey(fs: &BenchFs, work: &Path, a: &MdBench, sizes: &[u64]) -> Result<()> {
    let mut clients = Vec::new();
    for _ in 0..a.clients {
        clients.push(Client::mount(&fs.spec()).await.context("mounting a benchmark client")?);
    }
    let cred = process_cred();
    let root = clients[0].root();
    let mut counts = vec![1];
    if a.clients > 1 {
        counts.push(a.clients);
    }
    let mut run = 0;
    let counts = if a.growth_only { Vec::new() } else { counts };
    for &n in &counts {
        for shared in [true, false] {
            run += 1;
            let tag = format!("run{run}");
            let g = glint_run(&clients[0], &fs.spec(), &cred, root, &tag, n, shared, a.files).await?;
            fs.settle(SETTLE).await;
            let local_dir = work.join("local").join(&tag);
            let files = a.files;
            let l = tokio::task::spawn_blocking(move || local_run(&local_dir, n, shared, files))
                .await
                .context("local run")??;
            let what = format!(
                "{n} client{}, {}",
                if n == 1 { "" } else { "s" },
                if shared { "one shared directory" } else { "a directory per client" }
            );
            println!("\n{what}:");
            for (op, gr, lr) in
                [("create", g.create, l.create), ("stat  ", g.stat, l.stat), ("unlink", g.unlink, l.unlink)]
            {
                println!(
                    "  {op}: glint {:>8} ops/s | local fs {:>8} ops/s | ratio {:>4}",
                    rate(gr),
                    rate(lr),
                    ratio(gr, lr)
                );
            }
        }
    }
    if !a.no_growth && !sizes.is_empty() {
        let g = glint_growth(&clients, &cred, root, sizes, a.window).await?;
        fs.settle(SETTLE).await;
        let local_dir = work.join("local").join("growth");
        let (s, w, threads) = (sizes.to_vec(), a.window, a.clients);
        let l = tokio::task::spawn_blocking(move || local_growth(&local_dir, threads, &s, w))
            .await
            .context("local growth run")??;
        println!("\none directory as it grows, one client, {} operations timed at each size:", a.window);
        println!(
            "  {:>9}  {:>14} {:>14}  {:>14} {:>14}",
            "entries", "glint create/s", "local create/s", "glint lookup/s", "local lookup/s"
        );
        for ((size, gc, gl), (_, lc, ll)) in g.iter().zip(&l) {
            println!("  {size:>9}  {:>14} {:>14}  {:>14} {:>14}", rate(*gc), rate(*lc), rate(*gl), rate(*ll));
        }
        if let (Some(first), Some(last)) = (g.first(), g.last()) {
            println!(
                "  glint at {} entries vs {}: create {}, lookup {}",
                last.0,
                first.0,
                ratio(last.1, first.1),
                ratio(last.2, first.2)
            );
        }
    }
    for c in &clients {
        c.endpoint().shutdown();
    }
    Ok(())
}

/// The directory each client works in: `tag` itself when shared, else
/// `tag/c<i>`.
async fn make_dirs(
    client: &Client,
    cred: &Cred,
    root: Fid,
    tag: &str,
    clients: usize,
    shared: bool,
) -> Result<Vec<Fid>> {
    let top = client.mkdir(cred, root, tag, 0o755).await?.fid;
    if shared {
        return Ok(vec![top; clients]);
    }
    let mut dirs = Vec::new();
    for c in 0..clients {
        dirs.push(client.mkdir(cred, top, &format!("c{c}"), 0o755).await?.fid);
    }
    Ok(dirs)
}

/// The create, stat and unlink phases of one run, each client a process.
#[allow(clippy::too_many_arguments)]
async fn glint_run(
    first: &Client,
    spec: &str,
    cred: &Cred,
    root: Fid,
    tag: &str,
    clients: usize,
    shared: bool,
    files: u64,
) -> Result<Rates> {
    let dirs = make_dirs(first, cred, root, tag, clients, shared).await?;
    let spec = spec.to_string();
    let mut ranks = tokio::task::spawn_blocking(move || Ranks::start(&spec, &dirs, files))
        .await
        .context("starting the client processes")??;
    let mut r = Rates { create: 0.0, stat: 0.0, unlink: 0.0 };
    for op in [Op::Create, Op::Stat, Op::Unlink] {
        let (back, took) = tokio::task::spawn_blocking(move || {
            let took = ranks.phase(op);
            (ranks, took)
        })
        .await
        .context("client processes")?;
        ranks = back;
        let per_sec = files as f64 / took?.as_secs_f64();
        match op {
            Op::Create => r.create = per_sec,
            Op::Stat => r.stat = per_sec,
            Op::Unlink => r.unlink = per_sec,
        }
    }
    tokio::task::spawn_blocking(move || ranks.finish()).await.context("client processes")??;
    Ok(r)
}

/// One client process: this program run as `glint bench md --worker`.
struct Rank {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
}

/// The client processes of one run. Blocking: drive them from a blocking
/// thread, not the runtime that serves the file system.
struct Ranks {
    ranks: Vec<Rank>,
}

impl Ranks {
    /// Starts one client per directory in `dirs` (client `c` works in
    /// `dirs[c]` on its share of `files`) and waits until every one has
    /// mounted.
    fn start(spec: &str, dirs: &[Fid], files: u64) -> Result<Ranks> {
        let exe = std::env::current_exe().context("finding this program to run its client processes")?;
        let mut ranks = Ranks { ranks: Vec::new() };
        for (c, dir) in dirs.iter().enumerate() {
            let mine = share(files, dirs.len(), c);
            let mut child = Command::new(&exe)
                .args(["bench", "md", "--worker", spec, "--worker-dir", &dir.to_string()])
                .args(["--worker-rank", &c.to_string(), "--files", &mine.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting client process {c}"))?;
            let stdin = child.stdin.take();
            let out = BufReader::new(child.stdout.take().context("the client's stdout")?);
            ranks.ranks.push(Rank { child, stdin, out });
        }
        for c in 0..ranks.ranks.len() {
            ranks.expect(c, "ready")?;
        }
        Ok(ranks)
    }

    fn expect(&mut self, c: usize, want: &str) -> Result<()> {
        let mut line = String::new();
        self.ranks[c].out.read_line(&mut line).with_context(|| format!("reading client process {c}"))?;
        if line.trim() != want {
            bail!("client process {c} said {:?} instead of {want:?} (its errors are above)", line.trim());
        }
        Ok(())
    }

    /// Starts `op` in every client at once; the time until the last is done.
    fn phase(&mut self, op: Op) -> Result<Duration> {
        let started = Instant::now();
        for (c, r) in self.ranks.iter_mut().enumerate() {
            let stdin = r.stdin.as_mut().context("client process already told to stop")?;
            writeln!(stdin, "{}", op.word())
                .and_then(|()| stdin.flush())
                .with_context(|| format!("starting {} in client process {c}", op.word()))?;
        }
        for c in 0..self.ranks.len() {
            self.expect(c, "done")?;
        }
        Ok(started.elapsed())
    }

    /// Tells every client to stop (its stdin closes) and waits for it.
    fn finish(mut self) -> Result<()> {
        for (c, r) in self.ranks.iter_mut().enumerate() {
            r.stdin = None;
            let status = r.child.wait().with_context(|| format!("waiting for client process {c}"))?;
            if !status.success() {
                bail!("client process {c} ended with {status}");
            }
        }
        self.ranks.clear();
        Ok(())
    }
}

impl Drop for Ranks {
    /// A run that failed part way leaves no client processes behind.
    fn drop(&mut self) {
        for r in &mut self.ranks {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// The client process side: mount, say "ready", then run each phase the
/// parent names on stdin over this client's files, saying "done" after
/// each, until stdin closes.
async fn worker(spec: &str, a: &MdBench) -> Result<()> {
    let dir: Fid = a
        .worker_dir
        .as_deref()
        .context("--worker needs --worker-dir")?
        .parse()
        .context("--worker-dir is not a FID")?;
    let client = Client::mount(spec).await.with_context(|| format!("mounting {spec}"))?;
    let cred = process_cred();
    let say = |w: &str| -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{w}")?;
        Ok(out.flush()?)
    };
    say("ready")?;
    loop {
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await
        .context("reading the parent's orders")??;
        let word = line.trim();
        if word.is_empty() {
            break;
        }
        let op = Op::from_word(word).with_context(|| format!("unknown order {word:?}"))?;
        for i in 0..a.files {
            glint_op(&client, &cred, dir, &file_name(a.worker_rank, i), op).await?;
        }
        say("done")?;
    }
    client.endpoint().shutdown();
    Ok(())
}

async fn glint_op(client: &Client, cred: &Cred, dir: Fid, name: &str, op: Op) -> Result<()> {
    match op {
        Op::Create => {
            client
                .create(cred, dir, name, libc::S_IFREG | 0o644, StripeSpec::default(), true)
                .await
                .with_context(|| format!("create {name}"))?;
        }
        // stat(2) of a name: the MDS's lookup, which returns the attributes.
        Op::Stat => {
            client.lookup(cred, dir, name).await.with_context(|| format!("stat {name}"))?;
        }
        Op::Unlink => {
            client.unlink(cred, dir, name).await.with_context(|| format!("unlink {name}"))?;
        }
    }
    Ok(())
}

fn local_run(top: &Path, threads: usize, shared: bool, files: u64) -> Result<Rates> {
    std::fs::create_dir_all(top)?;
    let dirs: Vec<PathBuf> =
        (0..threads).map(|c| if shared { top.to_path_buf() } else { top.join(format!("c{c}")) }).collect();
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    let mut r = Rates { create: 0.0, stat: 0.0, unlink: 0.0 };
    for op in [Op::Create, Op::Stat, Op::Unlink] {
        let started = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(c, dir)| {
                    let mine = share(files, threads, c);
                    s.spawn(move || -> Result<()> {
                        for i in 0..mine {
                            local_op(&dir.join(file_name(c, i)), op)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("local thread panicked"))?)
        })?;
        let per_sec = files as f64 / started.elapsed().as_secs_f64();
        match op {
            Op::Create => r.create = per_sec,
            Op::Stat => r.stat = per_sec,
            Op::Unlink => r.unlink = per_sec,
        }
    }
    Ok(r)
}

fn local_op(path: &Path, op: Op) -> Result<()> {
    match op {
        Op::Create => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("create {}", path.display()))?;
        }
        Op::Stat => {
            std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        }
        Op::Unlink => std::fs::remove_file(path).with_context(|| format!("unlink {}", path.display()))?,
    }
    Ok(())
}

/// For each size: (entries, creates/s, lookups/s) of one client, timed
/// over the last `window` creates that bring the directory to that size
/// and `window` lookups of random names in it. The directory is filled
/// in between by every client, several creates in flight each.
async fn glint_growth(
    clients: &[Arc<Client>],
    cred: &Cred,
    root: Fid,
    sizes: &[u64],
    window: u64,
) -> Result<Vec<(u64, f64, f64)>> {
    let dir = clients[0].mkdir(cred, root, "growth", 0o755).await?.fid;
    let mut have = 0u64;
    let mut out = Vec::new();
    let mut rng = XorShift::new(1);
    for &size in sizes {
        let timed_from = size.saturating_sub(window).max(have);
        // Fill: filler f creates indices have + f, have + f + n, ... below
        // timed_from, several fillers per client.
        let mut tasks = JoinSet::new();
        let fillers = clients.len() * FILL_PER_CLIENT;
        for f in 0..fillers {
            let (client, cred, n) = (clients[f % clients.len()].clone(), cred.clone(), fillers as u64);
            tasks.spawn(async move {
                let mut i = have + f as u64;
                while i < timed_from {
                    glint_op(&client, &cred, dir, &file_name(0, i), Op::Create).await?;
                    i += n;
                }
                Ok::<(), anyhow::Error>(())
            });
        }
        while let Some(t) = tasks.join_next().await {
            t.context("fill task")??;
        }
        let started = Instant::now();
        for i in timed_from..size {
            glint_op(&clients[0], cred, dir, &file_name(0, i), Op::Create).await?;
        }
        let create = (size - timed_from) as f64 / started.elapsed().as_secs_f64();
        have = size;
        let started = Instant::now();
        for _ in 0..window {
            glint_op(&clients[0], cred, dir, &file_name(0, rng.below(size)), Op::Stat).await?;
        }
        let lookup = window as f64 / started.elapsed().as_secs_f64();
        out.push((size, create, lookup));
    }
    Ok(out)
}

/// [`glint_growth`] on the local file system, filled by `threads` threads.
fn local_growth(dir: &Path, threads: usize, sizes: &[u64], window: u64) -> Result<Vec<(u64, f64, f64)>> {
    std::fs::create_dir_all(dir)?;
    let mut have = 0u64;
    let mut out = Vec::new();
    let mut rng = XorShift::new(2);
    for &size in sizes {
        let timed_from = size.saturating_sub(window).max(have);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|c| {
                    s.spawn(move || -> Result<()> {
                        let mut i = have + c;
                        while i < timed_from {
                            local_op(&dir.join(file_name(0, i)), Op::Create)?;
                            i += threads as u64;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("local thread panicked"))?)
        })?;
        let started = Instant::now();
        for i in timed_from..size {
            local_op(&dir.join(file_name(0, i)), Op::Create)?;
        }
        let create = (size - timed_from) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        have = size;
        let started = Instant::now();
        for _ in 0..window {
            local_op(&dir.join(file_name(0, rng.below(size))), Op::Stat)?;
        }
        let lookup = window as f64 / started.elapsed().as_secs_f64().max(1e-9);
        out.push((size, create, lookup));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shares_add_up_and_differ_by_at_most_one(total in 0u64..1 << 40, clients in 1usize..300) {
            let shares: Vec<u64> = (0..clients).map(|c| share(total, clients, c)).collect();
            prop_assert_eq!(shares.iter().sum::<u64>(), total);
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            prop_assert!(max - min <= 1);
        }
    }

    #[test]
    fn names_differ_between_clients() {
        assert_ne!(file_name(0, 12), file_name(1, 2));
        assert_ne!(file_name(1, 12), file_name(11, 2));
    }

    #[test]
    fn the_local_run_leaves_an_empty_directory() {
        let d = tempfile::tempdir().unwrap();
        let r = local_run(&d.path().join("t"), 3, false, 100).unwrap();
        assert!(r.create > 0.0 && r.stat > 0.0 && r.unlink > 0.0);
        for c in 0..3 {
            assert_eq!(std::fs::read_dir(d.path().join("t").join(format!("c{c}"))).unwrap().count(), 0);
        }
        let g = local_growth(&d.path().join("g"), 2, &[10, 50], 5).unwrap();
        assert_eq!(g.iter().map(|x| x.0).collect::<Vec<_>>(), vec![10, 50]);
        assert_eq!(std::fs::read_dir(d.path().join("g")).unwrap().count(), 50);
    }
}
