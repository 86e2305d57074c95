//! `glint bench ost`, in the manner of obdfilter-survey: one OST served by
//! an OSS in this process, driven over the tcp LND on loopback with raw
//! OST RPCs (no client library, no MDS in the path), beside fio on the
//! same directory in the same run. Once with the OST on the disk, once on
//! a tmpfs.

use super::cluster::{BenchFs, FSNAME, fs_type};
use super::fio::{FioJob, FioResult, supports_direct_io};
use super::io::cpu_seconds;
use super::iperf3_gbits;
use super::report::{bandwidth, human, rate, ratio, target};
use super::tmpfs::Tmpfs;
use anyhow::{Context, Result, bail};
use fabric::rpc::{Endpoint, EndpointConfig};
use fabric::{Access, IoBuf, Pid, ProcessId};
use proto::{Fid, OstCall, OstReply, OstRequest, decode_ost_reply, encode_ost_call, portal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Bytes per bulk RPC, and fio's block size for the sequential runs.
const RPC: u64 = 1 << 20;
/// Block size of the random runs.
const SMALL: u64 = 4096;
/// A sequence of its own, so the objects of the benchmark never meet the
/// ones the MDS precreates on this OST.
const BENCH_SEQ: u64 = Fid::OST_SEQ_BASE + 0xbe_0000;
/// The 1 MiB target of issue 4: at least this share of fio's throughput.
const TARGET_PCT: f64 = 90.0;

#[derive(clap::Args, Debug)]
pub struct OstBench {
    /// Directory on the disk under which the OST is made for the disk run
    /// (default: a temporary directory under /var/tmp).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Run only with the OST on a tmpfs.
    #[arg(long, conflicts_with = "no_tmpfs")]
    pub tmpfs: bool,
    /// Skip the tmpfs run (it needs root to mount the tmpfs).
    #[arg(long)]
    pub no_tmpfs: bool,
    /// Bytes written and read sequentially (a multiple of 1 MiB).
    #[arg(long, default_value = "1G", value_parser = super::report::size_arg)]
    pub size: u64,
    /// RPCs in flight, and fio's iodepth.
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Seconds of each 4 KiB random run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Skip iperf3 (the transport's limit is then missing from the report).
    #[arg(long)]
    pub no_iperf: bool,
}

pub async fn run(a: OstBench) -> Result<()> {
    if a.inflight == 0 || a.inflight > 256 {
        bail!("--inflight must be between 1 and 256");
    }
    if a.size < RPC || !a.size.is_multiple_of(RPC) {
        bail!("--size must be a positive multiple of 1 MiB");
    }
    if a.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    println!(
        "glint bench ost: one OST over the tcp LND on loopback, raw OST RPCs; sequential {} in 1 MiB RPCs \
         with {} in flight, 4 KiB random for {}s; beside fio (libaio, iodepth {}) on the same directory",
        human(a.size),
        a.inflight,
        a.seconds,
        a.inflight
    );
    // What the transport itself can carry: above this the OST cannot go,
    // whatever fio does on the directory.
    let tcp = if a.no_iperf { None } else { Some(iperf3_gbits(5)? * 1e9 / 8.0) };
    if let Some(t) = tcp {
        println!("tcp on loopback (iperf3, one stream): {}", bandwidth(t));
    }
    if !a.tmpfs {
        let base = a.dir.clone().unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let dir = tempfile::Builder::new()
            .prefix("glint-bench-ost")
            .tempdir_in(&base)
            .with_context(|| format!("making a directory under {}", base.display()))?;
        on(dir.path(), &a, tcp).await?;
    }
    if !a.no_tmpfs {
        // Room for the object and fio's file of the same size.
        let t = Tmpfs::mount(2 * a.size + (64 << 20))?;
        on(t.path(), &a, tcp).await?;
    }
    Ok(())
}

/// The whole survey with the OST in `dir`.
async fn on(dir: &Path, a: &OstBench, tcp: Option<f64>) -> Result<()> {
    let fs = BenchFs::start(&dir.join("mdt"), &[dir.join("ost0")]).await?;
    let result = survey(&fs, dir, a, tcp).await;
    fs.shutdown();
    result
}

async fn survey(fs: &BenchFs, dir: &Path, a: &OstBench, tcp: Option<f64>) -> Result<()> {
    let oss = &fs.osses[0];
    let store_direct = oss.oss.targets().next().is_some_and(|(_, t)| t.store.direct_io());
    let fio_direct = supports_direct_io(dir);
    println!(
        "\nOST on {} ({}): OST direct I/O {}, fio direct={}",
        dir.display(),
        fs_type(dir),
        if store_direct { "on" } else { "off" },
        u8::from(fio_direct)
    );
    let ost = OstDriver::connect(ProcessId { nid: oss.endpoint.id().nid, pid: Pid::SERVER }).await?;
    let result = async {
        let fid = ost.object(1).await?;
        let fio = |rw, block_size, time_based| FioJob {
            file: dir.join("fio.dat"),
            rw,
            block_size,
            size: a.size,
            iodepth: a.inflight,
            direct: fio_direct,
            time_based,
            one_at_a_time: false,
        };
        let secs = Some(Duration::from_secs(a.seconds));

        let gib = a.size as f64 / (1u64 << 30) as f64;
        let cpu = cpu_seconds();
        let g = ost.sequential(fid, a.size, a.inflight, true).await?;
        let write_cpu = (cpu_seconds() - cpu) / gib;
        let f = fio("write", RPC, None).run_async().await?;
        print_bw("seq write 1 MiB", g, f, tcp);
        // Again over the same bytes: blocks already allocated, as a
        // checkpoint rewritten in place; fio overwrites its file likewise.
        let cpu = cpu_seconds();
        let g = ost.sequential(fid, a.size, a.inflight, true).await?;
        let rewrite_cpu = (cpu_seconds() - cpu) / gib;
        let f = fio("write", RPC, None).run_async().await?;
        print_bw("seq rewrite 1 MiB", g, f, tcp);
        let cpu = cpu_seconds();
        let g = ost.sequential(fid, a.size, a.inflight, false).await?;
        let read_cpu = (cpu_seconds() - cpu) / gib;
        let f = fio("read", RPC, None).run_async().await?;
        print_bw("seq read  1 MiB", g, f, tcp);
        println!(
            "  CPU of the sequential runs (OSS and driver of this process together): write {write_cpu:.2} s/GiB, \
             rewrite {rewrite_cpu:.2} s/GiB, read {read_cpu:.2} s/GiB"
        );
        // Each by bulk and as short I/O (the data inside the RPC, as the
        // client sends transfers up to `short_io_bytes`), taking turns a
        // second at a time so a machine whose speed drifts treats both alike.
        let (bulk, short) = ost.random_both(fid, a.size, a.inflight, a.seconds, true).await?;
        let f = fio("randwrite", SMALL, secs).run_async().await?;
        print_iops("rand write 4 KiB, bulk", bulk, f);
        print_iops("rand write 4 KiB, short I/O", short, f);
        let (bulk, short) = ost.random_both(fid, a.size, a.inflight, a.seconds, false).await?;
        let f = fio("randread", SMALL, secs).run_async().await?;
        print_iops("rand read  4 KiB, bulk", bulk, f);
        print_iops("rand read  4 KiB, short I/O", short, f);
        Ok(())
    }
    .await;
    ost.ep.shutdown();
    let _ = std::fs::remove_file(dir.join("fio.dat"));
    result
}

/// The figure beside fio's, and beside the tcp limit too: where the
/// directory is faster than loopback tcp, the tcp figure is the ceiling.
fn print_bw(what: &str, glint: f64, fio: FioResult, tcp: Option<f64>) {
    let of_tcp = tcp.map(|t| format!(" | {:>4} of tcp", ratio(glint, t))).unwrap_or_default();
    println!(
        "  {what}: glint OST {:>11} | fio {:>11} | ratio {:>4}{}{of_tcp}",
        bandwidth(glint),
        bandwidth(fio.bytes_per_sec),
        ratio(glint, fio.bytes_per_sec),
        target(glint, fio.bytes_per_sec, TARGET_PCT)
    );
}

fn print_iops(what: &str, glint: f64, fio: FioResult) {
    println!(
        "  {what}: glint OST {:>7} IOPS | fio {:>7} IOPS | ratio {:>4}",
        rate(glint),
        rate(fio.iops),
        ratio(glint, fio.iops)
    );
}

/// A fabric client endpoint speaking OST RPCs to one target, as the client
/// library's OSC would, without its striping.
#[derive(Clone)]
struct OstDriver {
    ep: Endpoint,
    peer: ProcessId,
}

impl OstDriver {
    async fn connect(peer: ProcessId) -> Result<OstDriver> {
        let ep = Endpoint::start(EndpointConfig::client("127.0.0.1@tcp".parse()?)).await?;
        let d = OstDriver { ep, peer };
        match d.call(OstRequest::Connect { fsname: FSNAME.to_string(), index: 0 }).await? {
            OstReply::Connected { .. } => Ok(d),
            other => bail!("OST connect answered {other:?}"),
        }
    }

    async fn call(&self, op: OstRequest) -> Result<OstReply> {
        self.call_with_data(op, &[]).await.map(|(r, _)| r)
    }

    /// A call with a short write's bytes after it; the reply, and how many
    /// bytes a short read brought back (their crc checked).
    async fn call_with_data(&self, op: OstRequest, data: &[u8]) -> Result<(OstReply, usize)> {
        let opcode = op.opcode();
        let body = encode_ost_call(&OstCall { target: 0, op }, data);
        let r = self.ep.call(self.peer, portal::OST, opcode, &body).await?;
        let (reply, tail) = decode_ost_reply(r.body())?;
        if let OstReply::ReadShort { crc } = reply
            && crc != crc32c::crc32c(tail)
        {
            bail!("a short read's bytes do not match their crc");
        }
        Ok((reply, tail.len()))
    }

    /// Creates object `oid` of the benchmark's sequence.
    async fn object(&self, oid: u32) -> Result<Fid> {
        self.call(OstRequest::Precreate { seq: BENCH_SEQ, first_oid: oid, count: 1 }).await?;
        Ok(Fid::new(BENCH_SEQ, oid))
    }

    /// Writes or reads `[0, size)` of `fid` in 1 MiB RPCs, `inflight` at a
    /// time; bytes per second.
    async fn sequential(&self, fid: Fid, size: u64, inflight: usize, write: bool) -> Result<f64> {
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..inflight {
            let (me, next) = (self.clone(), next.clone());
            tasks.spawn(async move {
                let mut buf = IoBuf::alloc(RPC as usize, None)?;
                buf.as_mut_slice().iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
                // The buffer never changes, so its checksum is computed once:
                // the figure is the OST's, not a client's.
                let crc = crc32c::crc32c(buf.as_slice());
                let ex = me.ep.registry().expose(&buf, if write { Access::Read } else { Access::Write });
                loop {
                    let offset = next.fetch_add(RPC, Ordering::Relaxed);
                    if offset >= size {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let segs = vec![ex.handle()];
                    let op = if write {
                        OstRequest::Write { fid, offset, len: RPC, segs, crc, sync: false, lock: None }
                    } else {
                        OstRequest::Read { fid, offset, len: RPC, segs }
                    };
                    match me.call(op).await? {
                        OstReply::Written { len } if len == RPC => {}
                        // Every block was written with the same bytes.
                        OstReply::ReadDone { len, crc: got } if len == RPC && got == crc => {}
                        other => bail!("OST answered {other:?} at offset {offset}"),
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.context("benchmark task")??;
        }
        Ok(size as f64 / started.elapsed().as_secs_f64())
    }

    /// Operations per second by bulk and as short I/O, over `seconds`
    /// one-second turns of each.
    async fn random_both(
        &self,
        fid: Fid,
        size: u64,
        inflight: usize,
        seconds: u64,
        write: bool,
    ) -> Result<(f64, f64)> {
        let (mut bulk, mut short) = (0.0, 0.0);
        let turns = seconds.max(1);
        for _ in 0..turns {
            bulk += self.random(fid, size, inflight, Duration::from_secs(1), write, false).await?;
            short += self.random(fid, size, inflight, Duration::from_secs(1), write, true).await?;
        }
        Ok((bulk / turns as f64, short / turns as f64))
    }

    /// 4 KiB writes or reads at random aligned offsets of `[0, size)`,
    /// `inflight` at a time, for `dur`, by bulk or as short I/O;
    /// operations per second.
    async fn random(
        &self,
        fid: Fid,
        size: u64,
        inflight: usize,
        dur: Duration,
        write: bool,
        short: bool,
    ) -> Result<f64> {
        let blocks = size / SMALL;
        let started = Instant::now();
        let end = started + dur;
        let mut tasks = JoinSet::new();
        for t in 0..inflight {
            let me = self.clone();
            tasks.spawn(async move {
                let mut buf = IoBuf::alloc(SMALL as usize, None)?;
                buf.as_mut_slice().fill(0x5a);
                let crc = crc32c::crc32c(buf.as_slice());
                let ex = me.ep.registry().expose(&buf, if write { Access::Read } else { Access::Write });
                let mut rng = XorShift::new(t as u64);
                let mut done = 0u64;
                while Instant::now() < end {
                    let offset = rng.below(blocks) * SMALL;
                    let segs = vec![ex.handle()];
                    let (op, data) = match (write, short) {
                        (true, false) => (
                            OstRequest::Write { fid, offset, len: SMALL, segs, crc, sync: false, lock: None },
                            &[][..],
                        ),
                        (false, false) => (OstRequest::Read { fid, offset, len: SMALL, segs }, &[][..]),
                        (true, true) => (
                            OstRequest::WriteShort { fid, offset, crc, sync: false, lock: None },
                            buf.as_slice(),
                        ),
                        (false, true) => (OstRequest::ReadShort { fid, offset, len: SMALL }, &[][..]),
                    };
                    match me.call_with_data(op, data).await? {
                        (OstReply::Written { .. } | OstReply::ReadDone { .. }, _) => done += 1,
                        (OstReply::ReadShort { .. }, n) if n as u64 == SMALL => done += 1,
                        other => bail!("OST answered {other:?} at offset {offset}"),
                    }
                }
                Ok::<u64, anyhow::Error>(done)
            });
        }
        let mut total = 0;
        while let Some(r) = tasks.join_next().await {
            total += r.context("benchmark task")??;
        }
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }
}

/// A small, fast generator of random block numbers; quality beyond
/// "spread over the file" does not matter here.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(stream: u64) -> XorShift {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        XorShift((t.as_nanos() as u64 ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_blocks_stay_inside_the_file(stream in 0u64..1000, n in 0u64..1 << 40) {
            let mut r = XorShift::new(stream);
            for _ in 0..100 {
                let b = r.below(n);
                prop_assert!(b < n.max(1));
            }
        }
    }

    #[test]
    fn random_blocks_spread_over_the_file() {
        let mut r = XorShift::new(7);
        let mut seen = [false; 64];
        for _ in 0..10_000 {
            seen[r.below(64) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
