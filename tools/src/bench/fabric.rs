//! `glint bench fabric`, in the manner of lnet_selftest: small-RPC round
//! trips and bulk bandwidth over the tcp LND on loopback, each printed
//! beside the limit measured in the same run (a raw TCP ping-pong of the
//! same size, and single-stream iperf3).

use super::{Stats, iperf3_gbits};
use anyhow::{Context, Result};
use fabric::memory::{Access, BulkHandle};
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Errno, IoBuf, Nid, Pid, ProcessId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORTAL: u16 = 99;
const PING: u16 = 1;
const PULL: u16 = 2;

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
}

struct Sink;

impl Service for Sink {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            match req.opcode {
                PING => Ok(req.body().to_vec()),
                PULL => {
                    let b = req.body();
                    let h = BulkHandle {
                        addr: u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EINVAL)?),
                        len: u64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EINVAL)?),
                        key: u64::from_le_bytes(b[16..24].try_into().map_err(|_| Errno::EINVAL)?),
                    };
                    let buf = POOL.with(|p| p.clone()).get().await;
                    let (_buf, r) = req.bulk.get(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(Vec::new())
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        })
    }
}

thread_local! {
    static POOL: Arc<fabric::BufferPool> = fabric::BufferPool::new(1 << 20, 64, None).expect("bench pool");
}

pub async fn run(args: FabricBench) -> Result<()> {
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

    // Small RPCs, one at a time: latency.
    // Both loops run as runtime tasks, as every glint client's calls do,
    // so neither pays for waking the thread that started the runtime.
    let body = vec![7u8; args.small];
    let (c, b) = (client.clone(), body.clone());
    let mut lat = tokio::spawn(async move {
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
    let mut raw = tokio::spawn(raw_ping_pong(args.small, dur)).await??;
    println!(
        "small RPC ({} B): {:.0} round trips/s, p50 {:.1} us, p99 {:.1} us | raw TCP ping-pong p50 {:.1} us | ratio p50 {:.2}x",
        args.small,
        lat.count() as f64 / dur.as_secs_f64(),
        lat.pct(50.0),
        lat.pct(99.0),
        raw.pct(50.0),
        lat.pct(50.0) / raw.pct(50.0)
    );

    // Small RPCs, many in flight: throughput.
    let rate = concurrent_pings(&client, peer, &body, 64, dur).await?;
    println!("small RPC ({} B), 64 in flight: {:.0} RPCs/s", args.small, rate);

    let iperf = if args.no_iperf { None } else { iperf3_gbits(5).ok() };
    for inflight in [1usize, 4, 16] {
        let gbits = bulk(&client, peer, inflight, dur).await?;
        match iperf {
            Some(i) => println!(
                "bulk 1 MiB, {inflight:>2} in flight: {gbits:.2} Gbit/s | iperf3 single stream {i:.2} Gbit/s | ratio {:.0}%",
                gbits / i * 100.0
            ),
            None => println!("bulk 1 MiB, {inflight:>2} in flight: {gbits:.2} Gbit/s | iperf3 not measured"),
        }
    }
    client.shutdown();
    server.shutdown();
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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

async fn bulk(client: &Endpoint, peer: ProcessId, inflight: usize, dur: Duration) -> Result<f64> {
    let end = Instant::now() + dur;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..inflight {
        let client = client.clone();
        tasks.spawn(async move {
            let buf = IoBuf::alloc(1 << 20, None)?;
            let ex = client.registry().expose(&buf, Access::Read);
            let h = ex.handle();
            let body = [h.addr.to_le_bytes(), h.len.to_le_bytes(), h.key.to_le_bytes()].concat();
            let mut bytes = 0u64;
            while Instant::now() < end {
                client.call(peer, PORTAL, PULL, &body).await?;
                bytes += 1 << 20;
            }
            Ok::<u64, anyhow::Error>(bytes)
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    Ok(total as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e9)
}
