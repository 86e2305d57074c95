//! `glint bench fabric`, in the manner of lnet_selftest: small-RPC round
//! trips and bulk bandwidth, each printed beside the limit measured in the
//! same run. Over the tcp LND on loopback the limits are a TCP ping-pong of
//! the same size between two processes (sockperf, like netperf's TCP_RR)
//! and single-stream iperf3; over the o2ib LND
//! (`--net o2ib --addr ADDR`, an address on an RDMA interface: rdma_cm
//! cannot use loopback) they are perftest's `ib_read_bw` and `ib_write_bw`
//! at 1 MiB on the same device, run beside it.

use super::{Stats, iperf3_gbits, sockperf_ping_pong};
use anyhow::{Context, Result, bail};
use fabric::memory::{Access, BulkHandle};
use fabric::o2ib::O2ibConfig;
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Errno, IoBuf, Net, Nid, Pid, ProcessId};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORTAL: u16 = 99;
const PING: u16 = 1;
const PULL: u16 = 2;
const PUSH: u16 = 3;

/// Which LND the benchmark runs over.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchNet {
    Tcp,
    O2ib,
}

#[derive(clap::Args, Debug)]
pub struct FabricBench {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Payload of the small RPC and of the raw ping-pong.
    #[arg(long, default_value_t = 64)]
    pub small: usize,
    /// Skip iperf3 (its figure is then missing from the report).
    #[arg(long)]
    pub no_iperf: bool,
    /// Skip sockperf (its figure is then missing from the report).
    #[arg(long)]
    pub no_sockperf: bool,
    /// The LND to measure.
    #[arg(long, value_enum, default_value_t = BenchNet::Tcp)]
    pub net: BenchNet,
    /// The address both ends use with `--net o2ib`: one on an RDMA
    /// interface (rdma_cm cannot connect over loopback).
    #[arg(long)]
    pub addr: Option<IpAddr>,
    /// The rdma_cm port of the o2ib server.
    #[arg(long, default_value_t = 19870)]
    pub o2ib_port: u16,
    /// Skip perftest (its figures are then missing from the report).
    #[arg(long)]
    pub no_perftest: bool,
}

struct Sink;

impl Service for Sink {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            match req.opcode {
                PING => Ok(req.body().to_vec()),
                PULL => {
                    let h = decode_handle(req.body())?;
                    let buf = POOL.with(|p| p.clone()).get().await;
                    let (_buf, r) = req.bulk.get(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(Vec::new())
                }
                PUSH => {
                    let h = decode_handle(req.body())?;
                    let buf = POOL.with(|p| p.clone()).get().await;
                    let (_buf, r) = req.bulk.put(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(Vec::new())
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        })
    }
}

fn decode_handle(b: &[u8]) -> Result<BulkHandle, Errno> {
    BulkHandle::from_bytes(b).map_err(|_| Errno::EINVAL)
}

thread_local! {
    static POOL: Arc<fabric::BufferPool> = fabric::BufferPool::new(1 << 20, 64, None).expect("bench pool");
}

pub async fn run(args: FabricBench) -> Result<()> {
    if args.net == BenchNet::O2ib {
        return run_o2ib(args).await;
    }
    let dur = Duration::from_secs(args.seconds);
    let server_nid: Nid = "127.0.0.1@tcp".parse()?;
    let mut scfg = EndpointConfig::server(server_nid);
    scfg.tcp.port = free_port()?;
    let server = Endpoint::start(scfg.clone()).await.context("starting the bench server")?;
    server.register(PORTAL, Arc::new(Sink));
    let mut ccfg = EndpointConfig::client("127.0.0.1@tcp".parse()?);
    ccfg.tcp.port = scfg.tcp.port;
    let client = Endpoint::start(ccfg).await?;
    let peer = ProcessId { nid: server_nid, pid: Pid::SERVER };

    println!("glint bench fabric: tcp LND on loopback, {}s per figure", args.seconds);

    // Small RPCs, one at a time: latency, beside a ping-pong whose two ends
    // are processes that block in recv, as the RPC's client and service
    // thread do. Where waking a sleeping CPU is dear (a VM whose idle vCPUs
    // halt) that wake is most of both figures; the one-thread ping-pong
    // shows the kernel's loopback path alone.
    let body = vec![7u8; args.small];
    let mut lat = rpc_latency(&client, peer, &body, dur).await?;
    let yardstick = if args.no_sockperf {
        None
    } else {
        let (size, secs) = (args.small, args.seconds);
        Some(tokio::task::spawn_blocking(move || sockperf_ping_pong(size, secs)).await??)
    };
    let mut one_thread = tokio::spawn(raw_ping_pong(args.small, dur)).await??;
    let rpc = format!(
        "small RPC ({} B): {:.0} round trips/s, p50 {:.1} us, p99 {:.1} us",
        args.small,
        lat.count() as f64 / dur.as_secs_f64(),
        lat.pct(50.0),
        lat.pct(99.0),
    );
    match &yardstick {
        Some(pp) => println!(
            "{rpc} | sockperf TCP ping-pong p50 {:.1} us, p99 {:.1} us | ratio p50 {:.2}x",
            pp.p50_us,
            pp.p99_us,
            lat.pct(50.0) / pp.p50_us
        ),
        None => println!("{rpc} | sockperf not measured"),
    }
    println!(
        "  (a ping-pong with both ends on one thread, no wake-up between them: p50 {:.1} us)",
        one_thread.pct(50.0)
    );

    // Small RPCs, many in flight: throughput.
    let rate = concurrent_pings(&client, peer, &body, 64, dur).await?;
    println!("small RPC ({} B), 64 in flight: {:.0} RPCs/s", args.small, rate);

    let iperf = if args.no_iperf { None } else { iperf3_gbits(5).ok() };
    for inflight in [1usize, 4, 16] {
        let mut b = bulk_bytes(&client, peer, PULL, inflight, dur).await?;
        let gbits = b.rate * 8.0 / 1e9;
        let each = format!("each p50 {:.0} us, p99 {:.0} us", b.each.pct(50.0), b.each.pct(99.0));
        match iperf {
            Some(i) => println!(
                "bulk 1 MiB, {inflight:>2} in flight: {gbits:.2} Gbit/s ({each}) | iperf3 single stream {i:.2} Gbit/s | ratio {:.0}%",
                gbits / i * 100.0
            ),
            None => println!(
                "bulk 1 MiB, {inflight:>2} in flight: {gbits:.2} Gbit/s ({each}) | iperf3 not measured"
            ),
        }
        // One RPC at a time cannot hide the round trip that carries its
        // request and reply, which a stream never waits for: what that
        // leaves of the stream's rate is the most any RPC design gets here.
        if let (1, Some(i), Some(pp)) = (inflight, iperf, &yardstick) {
            let stream_us = (1u64 << 20) as f64 * 8.0 / (i * 1e9) * 1e6;
            println!(
                "  (at most {:.0}% of iperf3 here: the stream moves 1 MiB in {stream_us:.0} us, and one RPC at a \
                 time also waits a round trip, sockperf p50 {:.1} us)",
                stream_us / (stream_us + pp.p50_us) * 100.0,
                pp.p50_us
            );
        }
    }
    client.shutdown();
    server.shutdown();
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Round trips of one small RPC at a time for `dur`. The loop runs as a
/// runtime task, as every glint client's calls do, so it does not pay for
/// waking the thread that started the runtime.
async fn rpc_latency(client: &Endpoint, peer: ProcessId, body: &[u8], dur: Duration) -> Result<Stats> {
    let (c, b) = (client.clone(), body.to_vec());
    let lat = tokio::spawn(async move {
        let mut lat = Stats::default();
        let end = Instant::now() + dur;
        while Instant::now() < end {
            let t = Instant::now();
            c.call(peer, PORTAL, PING, &b).await?;
            lat.add(t.elapsed());
        }
        Ok::<_, fabric::RpcError>(lat)
    })
    .await??;
    Ok(lat)
}

async fn raw_ping_pong(size: usize, dur: Duration) -> Result<Stats> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = vec![0u8; size];
        loop {
            if s.read_exact(&mut buf).await.is_err() {
                return Ok::<_, std::io::Error>(());
            }
            s.write_all(&buf).await?;
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let mut buf = vec![7u8; size];
    let mut st = Stats::default();
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let t = Instant::now();
        c.write_all(&buf).await?;
        c.read_exact(&mut buf).await?;
        st.add(t.elapsed());
    }
    drop(c);
    let _ = server.await;
    Ok(st)
}

async fn concurrent_pings(
    client: &Endpoint,
    peer: ProcessId,
    body: &[u8],
    n: usize,
    dur: Duration,
) -> Result<f64> {
    let end = Instant::now() + dur;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let body = body.to_vec();
        tasks.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < end {
                client.call(peer, PORTAL, PING, &body).await?;
                done += 1;
            }
            Ok::<u64, fabric::RpcError>(done)
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    Ok(total as f64 / dur.as_secs_f64())
}

/// What a run of bulk RPCs made: bytes per second, and the time of each.
struct Bulk {
    rate: f64,
    each: Stats,
}

/// 1 MiB bulk RPCs (`PULL`: the server READs the
/// client's buffer; `PUSH`: it WRITEs into it), `inflight` at a time. The
/// clock starts once every caller has its buffer exposed and has made
/// calls for a third of `dur` (the first register buffers on both sides,
/// as perftest's setup does before its clock starts, and under an
/// emulator the first pass through the code is translated, slowly).
async fn bulk_bytes(
    client: &Endpoint,
    peer: ProcessId,
    op: u16,
    inflight: usize,
    dur: Duration,
) -> Result<Bulk> {
    let ready = Arc::new(tokio::sync::Barrier::new(inflight + 1));
    let warm_until = Instant::now() + dur / 3;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..inflight {
        let (client, ready) = (client.clone(), ready.clone());
        tasks.spawn(async move {
            let access = if op == PUSH { Access::Write } else { Access::Read };
            let setup = async {
                let buf = IoBuf::alloc(1 << 20, None)?;
                let ex = client.registry().expose(&buf, access);
                let body = ex.handle().to_bytes();
                client.call(peer, PORTAL, op, &body).await?;
                while Instant::now() < warm_until {
                    client.call(peer, PORTAL, op, &body).await?;
                }
                Ok::<_, anyhow::Error>((buf, ex, body))
            }
            .await;
            // Every caller passes the barrier, ready or not, so none waits
            // for one that failed.
            ready.wait().await;
            let (_buf, _ex, body) = setup?;
            let end = Instant::now() + dur;
            let mut each = Stats::default();
            while Instant::now() < end {
                let t = Instant::now();
                client.call(peer, PORTAL, op, &body).await?;
                each.add(t.elapsed());
            }
            Ok::<Stats, anyhow::Error>(each)
        });
    }
    ready.wait().await;
    let started = Instant::now();
    let mut all = Stats::default();
    while let Some(r) = tasks.join_next().await {
        all.merge(r??);
    }
    let rate = (all.count() << 20) as f64 / started.elapsed().as_secs_f64();
    Ok(Bulk { rate, each: all })
}

/// The same figures over the o2ib LND, beside perftest on the same device.
async fn run_o2ib(args: FabricBench) -> Result<()> {
    let addr = args.addr.context(
        "--net o2ib needs --addr: an address on an RDMA interface (rdma_cm cannot connect over loopback)",
    )?;
    let dur = Duration::from_secs(args.seconds);
    let tcp_port = free_port_on(addr)?;
    let mut scfg = EndpointConfig::server(Nid::new(addr, Net::tcp(0)));
    scfg.tcp.port = tcp_port;
    let mut o2ib = O2ibConfig::new(Nid::new(addr, Net::o2ib(0)), Pid::SERVER, true);
    o2ib.port = args.o2ib_port;
    scfg.o2ib = Some(o2ib);
    let server = Endpoint::start(scfg).await.context("starting the bench server")?;
    let Some(device) = server.o2ib().map(|l| l.device().to_owned()) else {
        server.shutdown();
        bail!("the o2ib NI did not start: {}", server.o2ib_down().unwrap_or("unknown reason"));
    };
    server.register(PORTAL, Arc::new(Sink));
    let mut ccfg = EndpointConfig::client(Nid::new(addr, Net::tcp(0)));
    ccfg.tcp.port = tcp_port;
    let mut o2ib = O2ibConfig::new(Nid::new(addr, Net::o2ib(0)), ccfg.tcp.pid, false);
    o2ib.port = args.o2ib_port;
    ccfg.o2ib = Some(o2ib);
    let client = Endpoint::start(ccfg).await?;
    let peer = ProcessId { nid: Nid::new(addr, Net::o2ib(0)), pid: Pid::SERVER };
    println!("glint bench fabric: o2ib LND on {device} at {addr}, {}s per figure", args.seconds);

    let body = vec![7u8; args.small];
    let mut lat = rpc_latency(&client, peer, &body, dur).await?;
    println!(
        "small RPC ({} B): {:.0} round trips/s, p50 {:.1} us, p99 {:.1} us",
        args.small,
        lat.count() as f64 / dur.as_secs_f64(),
        lat.pct(50.0),
        lat.pct(99.0)
    );
    let rate = concurrent_pings(&client, peer, &body, 64, dur).await?;
    println!("small RPC ({} B), 64 in flight: {:.0} RPCs/s", args.small, rate);

    // Each figure right beside its perftest run, glint before and after
    // it: the emulated machine's speed drifts within a minute, so figures
    // taken apart do not compare.
    let mib = (1u64 << 20) as f64;
    for (op, name) in [(PUSH, "RDMA WRITE (read RPC)"), (PULL, "RDMA READ (write RPC)")] {
        let tool = if op == PUSH { "ib_write_bw" } else { "ib_read_bw" };
        let before = bulk_bytes(&client, peer, op, 16, dur).await?.rate / mib;
        let yardstick = if args.no_perftest {
            None
        } else {
            let device = device.clone();
            // perftest now and then prints 0 MB/s (its cycle clock under
            // TCG): once more then.
            let run = move || match perftest_mibs(tool, &device, addr) {
                Ok(y) if y <= 0.0 => perftest_mibs(tool, &device, addr),
                other => other,
            };
            tokio::task::spawn_blocking(run).await?.ok()
        };
        let after = bulk_bytes(&client, peer, op, 16, dur).await?.rate / mib;
        let mibs = (before + after) / 2.0;
        match yardstick {
            Some(y) if y > 0.0 => println!(
                "bulk 1 MiB {name}, 16 in flight: {mibs:.1} MiB/s ({before:.1} before, {after:.1} after) | {tool} {y:.1} MiB/s | ratio {:.0}%",
                mibs / y * 100.0
            ),
            _ => println!("bulk 1 MiB {name}, 16 in flight: {mibs:.1} MiB/s | {tool} not measured"),
        }
    }
    let fallbacks = client.stats().tcp_fallbacks.load(std::sync::atomic::Ordering::Relaxed);
    client.shutdown();
    server.shutdown();
    if fallbacks > 0 {
        bail!("{fallbacks} messages went over tcp instead of o2ib: the figures are not o2ib's");
    }
    Ok(())
}

fn free_port_on(addr: IpAddr) -> Result<u16> {
    Ok(std::net::TcpListener::bind((addr, 0))?.local_addr()?.port())
}

/// perftest's bandwidth at 1 MiB on `device` through rdma_cm at `addr`, in
/// MiB/s (perftest's "MB/sec" is MiB/s).
fn perftest_mibs(tool: &str, device: &str, addr: IpAddr) -> Result<f64> {
    let port = free_port_on(addr)?.to_string();
    let args = ["-d", device, "-R", "-F", "-s", "1048576", "-n", "300", "-p", &port];
    let mut server = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {tool} (apt-get install perftest)"))?;
    let mut out = None;
    // The server listens through rdma_cm, invisible to a TCP probe: retry
    // the client while it starts.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let o = Command::new(tool).args(args).arg(addr.to_string()).output()?;
        if o.status.success() {
            out = Some(o);
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let out = out.with_context(|| format!("{tool} client never connected"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[0] == "1048576").then(|| f[3].parse::<f64>().ok()).flatten()
        })
        .next_back()
        .with_context(|| format!("no 1 MiB line in {tool}'s output"))
}
