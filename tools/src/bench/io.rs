//! `glint bench io`: sequential 1 MiB write and read of one file striped
//! over several OSTs (on a tmpfs, so the disk is out of the way), through
//! the client library and through the FUSE mount (fio), 4 KiB random
//! reads, and 4 KiB sequential writes and reads one call at a time (what
//! `dd bs=4k` or a script's loop does); beside the limits measured in the
//! same run: raw TCP on loopback (iperf3) and fio on the local disk.

use super::cluster::{BenchFs, fs_type};
use super::fio::{FioJob, supports_direct_io};
use super::iperf3_gbits;
use super::ost::XorShift;
use super::report::{bandwidth, human, rate, ratio, size_arg, target};
use super::tmpfs::Tmpfs;
use anyhow::{Context, Result, bail};
use client::fuse::spawn_mount_async;
use client::{Client, MountOptions, process_cred};
use fabric::IoBuf;
use proto::{Layout, SetAttr, StripeSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Stripe size, RPC size and the block of every sequential run.
const MIB: u64 = 1 << 20;
/// Bytes of one library call; two are kept in flight, which with 4 OSTs
/// and 1 MiB stripes keeps 8 RPCs in flight per OST, the default limit.
const CALL: u64 = 16 << 20;
const CALLS_IN_FLIGHT: usize = 2;
const SMALL: u64 = 4096;
/// Bytes of the 4 KiB sequential runs.
const SMALL_RUN: u64 = 256 << 20;
/// Issue 6's targets.
const LIBRARY_VS_TCP_PCT: f64 = 70.0;
const MOUNT_VS_LIBRARY_PCT: f64 = 70.0;

#[derive(clap::Args, Debug)]
pub struct IoBench {
    /// Bytes of the striped file (a multiple of 16 MiB); the OSTs hold it
    /// in memory.
    #[arg(long, default_value = "4G", value_parser = size_arg)]
    pub size: u64,
    /// OSTs, one OSS each, the file is striped over.
    #[arg(long, default_value_t = 4)]
    pub osts: u32,
    /// Directory on the local disk for the MDT, the mount point and fio's
    /// local yardstick (default: a temporary directory under /var/tmp).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Operations in flight for the 4 KiB random reads, and fio's iodepth.
    #[arg(long, default_value_t = 8)]
    pub iodepth: usize,
    /// Seconds of each 4 KiB random-read run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Skip the FUSE mount.
    #[arg(long)]
    pub no_mount: bool,
    /// Skip iperf3 (the tcp limit is then missing from the report).
    #[arg(long)]
    pub no_iperf: bool,
}

/// What was measured through one path: bytes/s and IOPS.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    write: f64,
    read: f64,
    randread: f64,
    /// 4 KiB sequential, one call at a time: bytes/s.
    small_write: f64,
    small_read: f64,
}

pub async fn run(a: IoBench) -> Result<()> {
    if a.size < CALL || !a.size.is_multiple_of(CALL) {
        bail!("--size must be a positive multiple of 16 MiB");
    }
    if a.osts == 0 || a.osts > 64 || a.iodepth == 0 || a.iodepth > 256 || a.seconds == 0 {
        bail!("--osts (1..=64), --iodepth (1..=256) and --seconds must be positive");
    }
    let base = a.dir.clone().unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let work = tempfile::Builder::new()
        .prefix("glint-bench-io")
        .tempdir_in(&base)
        .with_context(|| format!("making a directory under {}", base.display()))?;
    // Room for the file, fio's beside it, and slack for the objects' metadata.
    let mem = Tmpfs::mount(2 * a.size + a.size / 8 + (256 << 20))?;
    let ost_dirs: Vec<PathBuf> = (0..a.osts).map(|i| mem.path().join(format!("ost{i}"))).collect();
    let fs = BenchFs::start(&work.path().join("mdt"), &ost_dirs).await?;
    println!(
        "glint bench io: a {} file striped over {} OSTs (1 MiB stripes, one OSS each) on tmpfs, \
         tcp LND on loopback; 1 MiB sequential, 4 KiB random reads with {} in flight for {}s",
        human(a.size),
        a.osts,
        a.iodepth,
        a.seconds
    );
    let result = survey(&fs, work.path(), mem.path(), &a).await;
    fs.shutdown();
    drop(mem);
    result
}

async fn survey(fs: &BenchFs, work: &Path, mem: &Path, a: &IoBench) -> Result<()> {
    // The limits first, while nothing else runs.
    let tcp = if a.no_iperf { None } else { Some(iperf3_gbits(5)? * 1e9 / 8.0) };
    let disk = local_disk(work, a).await?;
    println!(
        "limits measured in this run: tcp {} (iperf3, one stream on loopback); local disk {} ({}, fio libaio \
         iodepth {}, direct={}): write {}, read {}, 4 KiB random read {} IOPS",
        tcp.map(bandwidth).unwrap_or_else(|| "not measured".into()),
        work.display(),
        fs_type(work),
        a.iodepth,
        u8::from(supports_direct_io(work)),
        bandwidth(disk.write),
        bandwidth(disk.read),
        rate(disk.randread)
    );

    let client = Client::mount(&fs.spec()).await.context("mounting the library client")?;
    let stripe =
        StripeSpec { stripe_count: Some(a.osts as i32), stripe_size: Some(MIB), stripe_offset: None };
    let cred = process_cred();
    let (attr, layout) = client
        .create(&cred, client.root(), "io.dat", libc::S_IFREG | 0o644, stripe, false)
        .await
        .context("creating the striped file")?;
    let layout = layout.context("the MDS gave the new file no layout")?;
    let lib = library(&client, &layout, a).await;
    // Empty objects again, so the mount's writes allocate tmpfs pages as
    // the library's did; fio then rewrites the same striped file.
    let emptied = client.setattr(&cred, attr.fid, SetAttr { size: Some(0), ..Default::default() }).await;
    client.endpoint().shutdown();
    let lib = lib?;
    emptied.context("truncating the file for the mount's run")?;
    let mnt = if a.no_mount { None } else { Some(mount(fs, work, a).await?) };
    // The OSTs' writes allocated new tmpfs pages; so does fio's write of a
    // new file beside the objects (in a VM whose host backs guest memory
    // lazily, a new page can cost more than the network does).
    let tmpfs_write = fresh_write(mem, a).await?;
    println!(
        "the tmpfs the OSTs wrote to ({}), after them: fio write of a new {} file, 1 MiB blocks: {}",
        mem.display(),
        human(a.size),
        bandwidth(tmpfs_write)
    );

    let row = |what: &str, fig: f64, vs: &str, yard: f64, want: Option<f64>, show: fn(f64) -> String| {
        println!(
            "  {what:<8} {:>11} | {vs:<10} {:>11} | ratio {:>4}{}",
            show(fig),
            show(yard),
            ratio(fig, yard),
            want.map(|w| target(fig, yard, w)).unwrap_or_default()
        );
    };
    for (name, l, m, d) in [
        ("sequential write, 1 MiB", lib.write, mnt.map(|m| m.write), disk.write),
        ("sequential read, 1 MiB", lib.read, mnt.map(|m| m.read), disk.read),
    ] {
        println!("\n{name}:");
        match tcp {
            Some(t) => row("library", l, "tcp limit", t, Some(LIBRARY_VS_TCP_PCT), bandwidth),
            None => println!("  library  {:>11} | tcp limit not measured", bandwidth(l)),
        }
        if let Some(m) = m {
            row("mount", m, "library", l, Some(MOUNT_VS_LIBRARY_PCT), bandwidth);
        }
        row("library", l, "local disk", d, None, bandwidth);
        if name.contains("write") {
            row("library", l, "tmpfs", tmpfs_write, None, bandwidth);
        }
    }
    println!(
        "\nsequential 4 KiB, one call at a time ({}; the local disk buffered, fio dropping its cached pages first):",
        human(a.size.min(SMALL_RUN))
    );
    for (name, l, m, d) in [
        ("write", lib.small_write, mnt.map(|m| m.small_write), disk.small_write),
        ("read", lib.small_read, mnt.map(|m| m.small_read), disk.small_read),
    ] {
        println!("  {name}:");
        if let Some(m) = m {
            row("mount", m, "library", l, None, bandwidth);
        }
        row("library", l, "local disk", d, None, bandwidth);
    }
    let iops = |x: f64| format!("{} IOPS", rate(x));
    println!("\nrandom read, 4 KiB, {} in flight:", a.iodepth);
    row("library", lib.randread, "local disk", disk.randread, None, iops);
    if let Some(m) = mnt {
        row("mount", m.randread, "library", lib.randread, None, iops);
    }
    Ok(())
}

/// fio on the local disk: the same three workloads.
async fn local_disk(work: &Path, a: &IoBench) -> Result<Figures> {
    let file = work.join("fio.dat");
    let f = fio_jobs(&file, a, supports_direct_io(work)).await;
    let _ = std::fs::remove_file(&file);
    f
}

/// fio's sequential 1 MiB write of a new file in `dir`, bytes/s.
async fn fresh_write(dir: &Path, a: &IoBench) -> Result<f64> {
    let file = dir.join("fio.dat");
    let r = fio_job(&file, a, supports_direct_io(dir), "write", MIB, None).run_async().await;
    let _ = std::fs::remove_file(&file);
    Ok(r?.bytes_per_sec)
}

fn fio_job(
    file: &Path,
    a: &IoBench,
    direct: bool,
    rw: &'static str,
    block_size: u64,
    time_based: Option<Duration>,
) -> FioJob {
    FioJob {
        file: file.to_path_buf(),
        rw,
        block_size,
        size: a.size,
        iodepth: a.iodepth,
        direct,
        time_based,
        one_at_a_time: false,
    }
}

/// fio's 4 KiB sequential write, then read, of `file`, one call at a time
/// (buffered where the file system caches pages): bytes/s.
async fn fio_small(file: &Path, a: &IoBench) -> Result<(f64, f64)> {
    let job = |rw| FioJob {
        size: a.size.min(SMALL_RUN),
        one_at_a_time: true,
        ..fio_job(file, a, false, rw, SMALL, None)
    };
    let w = job("write").run_async().await?;
    let r = job("read").run_async().await?;
    Ok((w.bytes_per_sec, r.bytes_per_sec))
}

async fn fio_jobs(file: &Path, a: &IoBench, direct: bool) -> Result<Figures> {
    let job = |rw, block_size, time_based| fio_job(file, a, direct, rw, block_size, time_based);
    let w = job("write", MIB, None).run_async().await?;
    let r = job("read", MIB, None).run_async().await?;
    let rr = job("randread", SMALL, Some(Duration::from_secs(a.seconds))).run_async().await?;
    let small = file.with_file_name("small.dat");
    let (small_write, small_read) = fio_small(&small, a).await?;
    let _ = std::fs::remove_file(&small);
    Ok(Figures { write: w.bytes_per_sec, read: r.bytes_per_sec, randread: rr.iops, small_write, small_read })
}

/// The file through the FUSE mount, with fio.
async fn mount(fs: &BenchFs, work: &Path, a: &IoBench) -> Result<Figures> {
    let dir = work.join("mnt");
    std::fs::create_dir_all(&dir)?;
    let guard =
        spawn_mount_async(&fs.spec(), &dir, MountOptions::default()).await.context("mounting with FUSE")?;
    let direct = supports_direct_io(&dir);
    println!("(the mount takes fio's direct={})", u8::from(direct));
    // fio writes the (emptied) file the library wrote: same layout, and
    // the tmpfs holds one copy.
    let f = fio_jobs(&dir.join("io.dat"), a, direct).await;
    drop(guard);
    f
}

/// The library: sequential write and read of the whole file in 16 MiB
/// calls from registered buffers, two at a time, then 4 KiB random reads.
async fn library(client: &Arc<Client>, layout: &Layout, a: &IoBench) -> Result<Figures> {
    let size = a.size;
    let next = Arc::new(AtomicU64::new(0));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..CALLS_IN_FLIGHT {
        let (client, layout, next) = (client.clone(), layout.clone(), next.clone());
        tasks.spawn(async move {
            // Registered once, as an application of the library would.
            let mut buf = IoBuf::alloc(CALL as usize, None)?;
            fill(buf.as_mut_slice());
            loop {
                let off = next.fetch_add(CALL, Ordering::Relaxed);
                if off >= size {
                    return Ok::<(), anyhow::Error>(());
                }
                client
                    .pwrite_registered(&layout, off, &buf, false)
                    .await
                    .with_context(|| format!("write at {off}"))?;
            }
        });
    }
    join(&mut tasks).await?;
    let write = size as f64 / started.elapsed().as_secs_f64();
    let write_cpu = cpu_seconds() - cpu;

    next.store(0, Ordering::Relaxed);
    let cpu = cpu_seconds();
    let started = Instant::now();
    for _ in 0..CALLS_IN_FLIGHT {
        let (client, layout, next) = (client.clone(), layout.clone(), next.clone());
        tasks.spawn(async move {
            // Registered once, so the OSTs push straight into it.
            let mut buf = IoBuf::alloc(CALL as usize, None)?;
            loop {
                let off = next.fetch_add(CALL, Ordering::Relaxed);
                if off >= size {
                    return Ok::<(), anyhow::Error>(());
                }
                let n = client
                    .pread_registered(&layout, off, &mut buf)
                    .await
                    .with_context(|| format!("read at {off}"))?;
                if n != buf.len() {
                    bail!("short read at {off}: {n} bytes");
                }
            }
        });
    }
    join(&mut tasks).await?;
    let read = size as f64 / started.elapsed().as_secs_f64();
    let gib = size as f64 / (1u64 << 30) as f64;
    println!(
        "library CPU (client and servers of this process together): write {:.2} s/GiB, read {:.2} s/GiB",
        write_cpu / gib,
        (cpu_seconds() - cpu) / gib
    );
    // Every call wrote the same bytes: check one read back, untimed.
    let mut want = vec![0u8; CALL as usize];
    fill(&mut want);
    let mut got = vec![0u8; CALL as usize];
    client.pread(layout, size - CALL, &mut got).await?;
    if got != want {
        bail!("the file does not read back what was written");
    }

    let blocks = size / SMALL;
    let started = Instant::now();
    let end = started + Duration::from_secs(a.seconds);
    let mut counts = JoinSet::new();
    for t in 0..a.iodepth {
        let (client, layout) = (client.clone(), layout.clone());
        counts.spawn(async move {
            let mut rng = XorShift::new(t as u64);
            let mut buf = vec![0u8; SMALL as usize];
            let mut done = 0u64;
            while Instant::now() < end {
                let off = rng.below(blocks) * SMALL;
                client.pread(&layout, off, &mut buf).await.with_context(|| format!("read at {off}"))?;
                done += 1;
            }
            Ok::<u64, anyhow::Error>(done)
        });
    }
    let mut done = 0;
    while let Some(r) = counts.join_next().await {
        done += r.context("reader task")??;
    }
    let randread = done as f64 / started.elapsed().as_secs_f64();
    let (small_write, small_read) = library_small(client, a.size.min(SMALL_RUN)).await?;
    Ok(Figures { write, read, randread, small_write, small_read })
}

/// The library's 4 KiB sequential writes, then reads, of a file of its
/// own, one call at a time through `File` (writes gathered under PW locks,
/// reads served by readahead): bytes/s.
async fn library_small(client: &Arc<Client>, bytes: u64) -> Result<(f64, f64)> {
    let cred = process_cred();
    let path = "/small.dat";
    let mut block = vec![0u8; SMALL as usize];
    fill(&mut block);
    let f = client.open(&cred, path, libc::O_CREAT | libc::O_RDWR | libc::O_TRUNC, 0o644).await?;
    let started = Instant::now();
    for off in (0..bytes).step_by(SMALL as usize) {
        f.pwrite(off, &block).await.with_context(|| format!("4 KiB write at {off}"))?;
    }
    f.close().await.context("closing after 4 KiB writes")?;
    let write = bytes as f64 / started.elapsed().as_secs_f64();
    let f = client.open(&cred, path, libc::O_RDONLY, 0).await?;
    let started = Instant::now();
    for off in (0..bytes).step_by(SMALL as usize) {
        let n = f.pread(off, &mut block).await.with_context(|| format!("4 KiB read at {off}"))?;
        if n != SMALL as usize {
            bail!("short 4 KiB read at {off}: {n} bytes");
        }
    }
    let read = bytes as f64 / started.elapsed().as_secs_f64();
    f.close().await?;
    client.unlink(&cred, client.root(), "small.dat").await.context("removing the 4 KiB run's file")?;
    Ok((write, read))
}

/// CPU time this process has used so far (user and system), in seconds:
/// beside a throughput, what it cost, which other load on the machine
/// disturbs far less.
pub(super) fn cpu_seconds() -> f64 {
    // SAFETY: zeroed is a valid rusage; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn fill(buf: &mut [u8]) {
    buf.iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
}

async fn join(tasks: &mut JoinSet<Result<()>>) -> Result<()> {
    while let Some(r) = tasks.join_next().await {
        r.context("benchmark task")??;
    }
    Ok(())
}
