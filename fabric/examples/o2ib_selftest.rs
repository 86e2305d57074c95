//! Exercise the o2ib LND and the RPC layer over it for real, on one RDMA
//! device (Soft-RoCE `rxe1` at 169.254.77.1 in the soft-roce-tests VM):
//! immediate messages both ways, credits exhausted and refilled, bulk by
//! RDMA READ and WRITE verified, many transfers in flight, the
//! registration cache, forged handles refused, a peer process killed in
//! the middle of transfers, RPCs over o2ib, and tcp fallback when o2ib is
//! switched off for a peer or its o2ib connection fails. `--mode bench`
//! measures 1 MiB bulk through the LND (RDMA WRITE and READ, 16 in
//! flight), to set beside `ib_write_bw`/`ib_read_bw`.
//!
//! Exit status: 0 when every check passed, 1 when one failed, 2 when the
//! host has no RDMA device.
//!
//! ```text
//! o2ib_selftest [--addr 169.254.77.1] [--port 18530] [--tcp-port 18540] [--mode all|checks|bench] [--seconds 3]
//! ```

use fabric::lnd::{Deliver, Lnd, LndError, RecvBuf};
use fabric::memory::{Access, BulkHandle, MemoryRegistry};
use fabric::o2ib::{O2ibConfig, O2ibError, O2ibLnd, list_devices};
use fabric::rpc::{Endpoint, EndpointConfig, FallbackCause, Request, Response, Service};
use fabric::{BufferPool, Errno, IoBuf, Net, Nid, Pid, ProcessId};
use std::error::Error;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const MIB: usize = 1 << 20;
const IN_FLIGHT: usize = 16;
/// Bounds a hang; it times nothing (Soft-RoCE under an emulated CPU is slow).
const WAIT: Duration = Duration::from_secs(120);
const CLIENT_PID: u32 = Pid::USER_FLAG | 4242;
const CHILD_PID: u32 = Pid::USER_FLAG | 4343;

struct Args {
    addr: IpAddr,
    port: u16,
    tcp_port: u16,
    checks: bool,
    bench: bool,
    seconds: f64,
    /// Run as the child peer that the parent kills: `--child SERVER_PORT`.
    child: bool,
    /// `--only TEXT`: run only the checks whose names contain TEXT.
    only: Option<String>,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        addr: [169, 254, 77, 1].into(),
        port: 18530,
        tcp_port: 18540,
        checks: true,
        bench: true,
        seconds: 3.0,
        child: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value()?.parse()?,
            "--port" => args.port = value()?.parse()?,
            "--tcp-port" => args.tcp_port = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--child" => args.child = true,
            "--only" => args.only = Some(value()?),
            "--mode" => match value()?.as_str() {
                "all" => (args.checks, args.bench) = (true, true),
                "checks" => (args.checks, args.bench) = (true, false),
                "bench" => (args.checks, args.bench) = (false, true),
                other => return Err(format!("unknown mode {other}").into()),
            },
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        return Err("--seconds must be in (0, 600]".into());
    }
    Ok(args)
}

/// What an LND hands up, as channels the checks read.
struct Inbox {
    msgs: mpsc::UnboundedSender<(ProcessId, Box<dyn RecvBuf>)>,
    downs: mpsc::UnboundedSender<ProcessId>,
}

impl Deliver for Inbox {
    fn deliver(&self, from: ProcessId, msg: Box<dyn RecvBuf>) {
        let _ = self.msgs.send((from, msg));
    }
    fn peer_down(&self, peer: ProcessId) {
        let _ = self.downs.send(peer);
    }
}

struct Node {
    id: ProcessId,
    lnd: O2ibLnd,
    registry: Arc<MemoryRegistry>,
    msgs: mpsc::UnboundedReceiver<(ProcessId, Box<dyn RecvBuf>)>,
    downs: mpsc::UnboundedReceiver<ProcessId>,
}

impl Node {
    async fn start(addr: IpAddr, port: u16, pid: u32, listen: bool) -> Result<Node, O2ibError> {
        let nid = Nid::new(addr, Net::o2ib(0));
        let mut cfg = O2ibConfig::new(nid, pid, listen);
        cfg.port = port;
        let registry = MemoryRegistry::new();
        let (mtx, msgs) = mpsc::unbounded_channel();
        let (dtx, downs) = mpsc::unbounded_channel();
        let lnd = O2ibLnd::start(cfg, registry.clone(), Arc::new(Inbox { msgs: mtx, downs: dtx })).await?;
        Ok(Node { id: ProcessId { nid, pid }, lnd, registry, msgs, downs })
    }

    async fn recv(&mut self) -> Res<(ProcessId, Box<dyn RecvBuf>)> {
        let got = tokio::time::timeout(WAIT, self.msgs.recv()).await.map_err(|_| "no message arrived")?;
        Ok(got.ok_or("the LND is gone")?)
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    // Eight bytes per step: the VM's emulated CPU makes byte-wise
    // generation of many MiB cost seconds.
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn filled(len: usize, seed: u64) -> Res<IoBuf> {
    let mut buf = IoBuf::alloc(len, None)?;
    buf.copy_from_slice(&pattern(len, seed));
    Ok(buf)
}

/// Whether `bytes` start with `len` bytes of pattern `seed`.
fn verify(bytes: &[u8], len: usize, seed: u64) -> bool {
    bytes.len() >= len && bytes[..len] == pattern(len, seed)[..]
}

fn ensure(ok: bool, what: impl Into<String>) -> Res<()> {
    if ok { Ok(()) } else { Err(what.into().into()) }
}

/// Waits (polling) for `cond`, failing after WAIT.
async fn until(what: &str, mut cond: impl FnMut() -> bool) -> Res<()> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > WAIT {
            return Err(format!("gave up waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    /// Run only the checks whose names contain this (and the NIs' start).
    only: Option<String>,
}

impl Tally {
    async fn check<F: Future<Output = Res<()>>>(&mut self, name: &str, f: F) -> bool {
        if self.only.as_ref().is_some_and(|o| !name.contains(o.as_str()) && !name.starts_with("o2ib NIs up"))
        {
            return true;
        }
        let start = Instant::now();
        let r = match tokio::time::timeout(WAIT * 2, f).await {
            Ok(r) => r,
            Err(_) => Err("timed out (hung)".into()),
        };
        let secs = start.elapsed().as_secs_f64();
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("PASS {name} ({secs:.2} s)");
                true
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name}: {e} ({secs:.2} s)");
                false
            }
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("o2ib_selftest: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(O2ibError::NoRdmaDevice) = list_devices() {
        println!("o2ib_selftest: no RDMA device");
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("o2ib_selftest: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if args.child {
        return match rt.block_on(child(&args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("o2ib_selftest child: {e}");
                ExitCode::from(1)
            }
        };
    }
    let tally = rt.block_on(run(&args));
    println!("o2ib_selftest: {} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

async fn run(args: &Args) -> Tally {
    let mut t = Tally { only: args.only.clone(), ..Tally::default() };
    let mut pair = None;
    let ok = t
        .check("o2ib NIs up (server listening, client)", async {
            let server = Node::start(args.addr, args.port, Pid::SERVER, true).await?;
            let client = Node::start(args.addr, args.port, CLIENT_PID, false).await?;
            println!("o2ib NIs on {} at {}:{}", server.lnd.device(), args.addr, args.port);
            pair = Some((server, client));
            Ok(())
        })
        .await;
    let Some((mut server, mut client)) = pair.filter(|_| ok) else { return t };
    let pool = match BufferPool::new(MIB, 2 * IN_FLIGHT + 4, None) {
        Ok(p) => p,
        Err(e) => {
            t.failed += 1;
            println!("FAIL buffer pool: {e}");
            return t;
        }
    };
    if args.checks {
        t.check("immediate messages both ways (1 B .. 64 KiB, gathered)", messages(&mut server, &mut client))
            .await;
        t.check("credits exhausted and refilled", credits(&mut server, &mut client)).await;
        t.check("bulk: RDMA READ and WRITE 1 MiB, verified", bulk_one(&server, &client, &pool)).await;
        t.check(
            "bulk: 16 READs and 16 WRITEs of 1 MiB in flight, verified",
            bulk_many(&server, &client, &pool),
        )
        .await;
        t.check(
            "registrations: each exposure carries its rkey, withdrawn with it; the pool registers once",
            reg_cache(&mut server, &client, &pool),
        )
        .await;
        t.check(
            "forged, out-of-range and wrong-way handles refused",
            forged(&mut server, &mut client, &pool),
        )
        .await;
        t.check(
            "peer killed mid-transfer: transfers fail, peer_down, nothing hangs",
            killed(args, &mut server, &mut client),
        )
        .await;
        t.check("RPC over o2ib: calls, bulk both ways, 32 in flight", rpc(args)).await;
        t.check("tcp fallback: o2ib switched off for one peer", fallback_switched_off(args)).await;
        t.check("tcp fallback: o2ib connection to the peer fails", fallback_connect_failed(args)).await;
    }
    if args.bench {
        for write in [true, false] {
            let name = if write {
                "bandwidth: LND RDMA WRITE (bulk_put)"
            } else {
                "bandwidth: LND RDMA READ (bulk_get)"
            };
            t.check(name, bench(args, &mut server, &client, &pool, write)).await;
        }
    }
    server.lnd.shutdown();
    client.lnd.shutdown();
    t
}

async fn messages(server: &mut Node, client: &mut Node) -> Res<()> {
    for (i, len) in [1usize, 4096, 65536].into_iter().enumerate() {
        let body = pattern(len, i as u64);
        let (a, b) = body.split_at(len / 3);
        client.lnd.send(server.id, &[a, b]).await?;
        let (from, msg) = server.recv().await?;
        ensure(from == client.id, format!("message from {from}, expected {}", client.id))?;
        ensure(msg.bytes() == body, format!("{len}-byte message corrupted"))?;
        let back = pattern(len, 100 + i as u64);
        server.lnd.send(client.id, &[&back]).await?;
        let (from, msg) = client.recv().await?;
        ensure(from == server.id, "reply from the wrong peer")?;
        ensure(msg.bytes() == back, format!("{len}-byte reply corrupted"))?;
    }
    match client.lnd.send(server.id, &[&vec![0u8; 65537]]).await {
        Err(LndError::TooLarge { .. }) => Ok(()),
        other => Err(format!("a 65537-byte message: {other:?}").into()),
    }
}

async fn credits(server: &mut Node, client: &mut Node) -> Res<()> {
    // Start at rest: the credits of earlier messages back (the server
    // returns them by NOOP once a quarter of the queue is owed).
    until("credits at rest", || client.lnd.peer_credits(server.id).is_none_or(|c| c >= 12)).await?;
    let total = 48u32;
    let sent_before = client.lnd.stats().tx_msgs.load(Ordering::Relaxed);
    let lnd = client.lnd.clone();
    let to = server.id;
    let sender = tokio::spawn(async move {
        for i in 0..total {
            lnd.send(to, &[&i.to_le_bytes()]).await?;
        }
        Ok::<_, LndError>(())
    });
    // Hold every message: the client must stop when the server's receive
    // buffers are all taken, not overrun them.
    let mut held = Vec::new();
    let client_lnd = client.lnd.clone();
    let start = Instant::now();
    loop {
        while let Ok(m) = server.msgs.try_recv() {
            held.push(m);
        }
        let sent = client_lnd.stats().tx_msgs.load(Ordering::Relaxed) - sent_before;
        // None while (re)connecting: not a stall.
        let stalled = client_lnd.peer_credits(server.id).is_some_and(|c| c <= 1);
        if stalled && sent == held.len() as u64 {
            break;
        }
        ensure(start.elapsed() < WAIT, "the sender never ran out of credits")?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure(held.len() <= 16, format!("{} messages held with 16 receive buffers", held.len()))?;
    ensure(held.len() >= 8, format!("only {} messages before credits ran out", held.len()))?;
    ensure(!sender.is_finished(), "the sender finished without credits")?;
    let stalled_at = held.len();
    // Consume them: credits go back and the rest flows.
    let mut got: Vec<u32> = Vec::new();
    for (_, m) in held.drain(..) {
        got.push(u32::from_le_bytes(m.bytes().try_into()?));
    }
    while got.len() < total as usize {
        let (_, m) = server.recv().await?;
        got.push(u32::from_le_bytes(m.bytes().try_into()?));
    }
    tokio::time::timeout(WAIT, sender).await??.map_err(|e| format!("sender: {e}"))?;
    ensure(got == (0..total).collect::<Vec<_>>(), "messages out of order or lost")?;
    // With nothing going the other way, NOOPs bring the credits back.
    // At rest the server owes fewer credits than a NOOP is worth (a
    // quarter of the queue), so the client holds at least the rest.
    until("credits to come back", || client.lnd.peer_credits(server.id).unwrap_or(0) >= 12).await?;
    let noops = server.lnd.noops_sent(client.id).unwrap_or(0);
    ensure(noops > 0, "no NOOP returned credits")?;
    println!("credits: stalled after {stalled_at} of {total} messages; {noops} NOOPs returned credits");
    Ok(())
}

async fn bulk_one(server: &Node, client: &Node, pool: &Arc<BufferPool>) -> Res<()> {
    let src = filled(MIB, 7)?;
    let ex = client.registry.expose(&src, Access::Read);
    let (buf, r) = server.lnd.bulk_get(client.id, ex.handle(), pool.get().await, 0).await;
    r?;
    ensure(buf[..] == src[..], "RDMA READ data differs")?;
    // A sub-range into an offset of the local buffer.
    let part = ex.handle().slice(8192, 65536).ok_or("slice")?;
    let (buf, r) = server.lnd.bulk_get(client.id, part, buf, 4096).await;
    r?;
    ensure(buf[4096..4096 + 65536] == src[8192..8192 + 65536], "RDMA READ of a sub-range differs")?;
    drop(ex);

    let dst = IoBuf::alloc(MIB, None)?;
    let ex = client.registry.expose(&dst, Access::Write);
    let mut out = pool.get().await;
    out.copy_from_slice(&pattern(MIB, 8));
    let (_, r) = server.lnd.bulk_put(client.id, ex.handle(), out, 0).await;
    r?;
    drop(ex);
    ensure(dst[..] == pattern(MIB, 8)[..], "RDMA WRITE data differs")?;
    Ok(())
}

async fn bulk_many(server: &Node, client: &Node, pool: &Arc<BufferPool>) -> Res<()> {
    let mut tasks: tokio::task::JoinSet<Res<()>> = tokio::task::JoinSet::new();
    let mut keep = Vec::new();
    for i in 0..IN_FLIGHT as u64 {
        let src = filled(MIB, 1000 + i)?;
        let ex = client.registry.expose(&src, Access::Read);
        let (lnd, peer, h, buf) = (server.lnd.clone(), client.id, ex.handle(), pool.get().await);
        tasks.spawn(async move {
            let (buf, r) = lnd.bulk_get(peer, h, buf, 0).await;
            r.map_err(|e| format!("READ {i}: {e}"))?;
            ensure(buf[..] == pattern(MIB, 1000 + i)[..], format!("READ {i} data differs"))
        });
        keep.push((src, ex));

        let dst = IoBuf::alloc(MIB, None)?;
        let ex = client.registry.expose(&dst, Access::Write);
        let mut out = pool.get().await;
        out.copy_from_slice(&pattern(MIB, 2000 + i));
        let (lnd, h) = (server.lnd.clone(), ex.handle());
        tasks.spawn(async move {
            let (_, r) = lnd.bulk_put(peer, h, out, 0).await;
            r.map_err(|e| format!("WRITE {i}: {e}"))?;
            Ok(())
        });
        keep.push((dst, ex));
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    for (i, (buf, _)) in keep.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let n = (i / 2) as u64;
        ensure(buf[..] == pattern(MIB, 2000 + n)[..], format!("WRITE {n} data differs"))?;
    }
    Ok(())
}

async fn reg_cache(server: &mut Node, client: &Node, pool: &Arc<BufferPool>) -> Res<()> {
    // Connected and the server's pool registered first (the client dials;
    // one transfer), so what is counted below is the exposures' alone
    // even when this check runs by itself.
    client.lnd.send(server.id, &[b"registrations"]).await?;
    drop(server.recv().await?);
    let src = filled(MIB, 55)?;
    let (buf, r) = server
        .lnd
        .bulk_get(client.id, client.registry.expose(&src, Access::Read).handle(), pool.get().await, 0)
        .await;
    r?;
    let mut buf = buf;
    let server_before = server.lnd.reg_cache_stats();
    let client_before = client.lnd.reg_cache_stats();
    let (reg_before, dereg_before) = client.lnd.exposure_registrations();
    for i in 0..3 {
        // A new exposure of the same buffer each time, as every RPC makes:
        // registered for exactly its bytes, carried in the handle, and
        // deregistered when it is withdrawn.
        let ex = client.registry.expose(&src, Access::Read);
        ensure(ex.handle().rkey.is_some(), "an exposure on an o2ib node carries no rkey")?;
        let (b, r) = server.lnd.bulk_get(client.id, ex.handle(), buf, 0).await;
        r?;
        buf = b;
        ensure(verify(buf.io().as_slice(), MIB, 55), format!("transfer {i} moved the wrong bytes"))?;
        drop(ex);
    }
    // What an exposure costs now that it registers (and its withdrawal
    // deregisters): printed beside a 1 MiB transfer's time, not checked.
    let cycles = 20u32;
    let t = Instant::now();
    for _ in 0..cycles {
        drop(client.registry.expose(&src, Access::Read));
    }
    let per_exposure = t.elapsed() / cycles;
    let t = Instant::now();
    let (b, r) =
        server.lnd.bulk_get(client.id, client.registry.expose(&src, Access::Read).handle(), buf, 0).await;
    r?;
    let per_transfer = t.elapsed();
    drop(b);
    println!(
        "registrations: expose and withdraw 1 MiB {per_exposure:?}, one 1 MiB RDMA READ {per_transfer:?}"
    );
    let (reg, dereg) = client.lnd.exposure_registrations();
    let (reg, dereg) = (reg - u64::from(cycles) - 1, dereg - u64::from(cycles) - 1);
    ensure(reg - reg_before == 3, format!("3 exposures, {} registrations", reg - reg_before))?;
    ensure(dereg - dereg_before == 3, format!("3 withdrawn, {} deregistered", dereg - dereg_before))?;
    let client_after = client.lnd.reg_cache_stats();
    ensure(client_after.misses == client_before.misses, "the client asked for an rkey grant")?;
    let server_after = server.lnd.reg_cache_stats();
    ensure(server_after.misses == server_before.misses, "the server's pool was registered again")?;
    println!(
        "registrations: client exposures {reg} registered {dereg} deregistered; server cache {} entries {} bytes",
        server_after.entries, server_after.bytes
    );
    Ok(())
}

/// A forged handle: refused by the HCA when it carries an rkey (the queue
/// pair breaks, as a remote access error does on any RC connection, and the
/// client reconnects), by the owner when it carries none (the rkey grant
/// path; the connection stays up).
async fn forged(server: &mut Node, client: &mut Node, pool: &Arc<BufferPool>) -> Res<()> {
    let src = filled(64 * 1024, 3)?;
    let ex = client.registry.expose(&src, Access::Read);
    let h = ex.handle();
    let rkey = h.rkey.ok_or("no rkey in the handle")?;
    let dst = IoBuf::alloc(64 * 1024, None)?;
    let dst_ex = client.registry.expose(&dst, Access::Write);
    let by_hca = [
        ("a forged rkey", BulkHandle { rkey: Some(rkey ^ 0x5a5a_5a00), ..h }, false),
        ("a range past the registration", BulkHandle { len: h.len + 4096, ..h }, false),
        ("an address before it", BulkHandle { addr: h.addr - 4096, ..h }, false),
        ("a write into a read-only registration", h, true),
    ];
    let mut buf = pool.get().await;
    buf.io_mut().as_mut_slice()[..64 * 1024].fill(0xee);
    for (what, handle, write) in by_hca {
        println!("forged: {what}");
        // The client dials (the server cannot: a client does not listen).
        client.lnd.send(server.id, &[b"reconnect"]).await?;
        let (_, m) = server.recv().await?;
        ensure(m.bytes() == b"reconnect", "message before a forged handle")?;
        drop(m);
        let (b, r) = if write {
            server.lnd.bulk_put(client.id, handle, buf, 0).await
        } else {
            server.lnd.bulk_get(client.id, handle, buf, 0).await
        };
        buf = b;
        println!("forged: {what}: {r:?}");
        match r {
            Err(LndError::BulkRefused { errno: Errno::EACCES, .. }) => {}
            other => return Err(format!("{what}: {other:?}, wanted a remote access error (EACCES)").into()),
        }
        ensure(verify(src.as_slice(), 64 * 1024, 3), format!("{what}: the exposed bytes changed"))?;
        let down = tokio::time::timeout(WAIT, server.downs.recv()).await?.ok_or("no peer_down")?;
        ensure(down == client.id, format!("{what}: peer_down for {down}"))?;
        let down = tokio::time::timeout(WAIT, client.downs.recv()).await?.ok_or("the owner saw no error")?;
        ensure(down == server.id, format!("{what}: owner's peer_down for {down}"))?;
    }
    // The real handles work on the new connection; a write lands only in
    // the buffer exposed for writing.
    client.lnd.send(server.id, &[b"after"]).await?;
    drop(server.recv().await?);
    let (b, r) = server.lnd.bulk_get(client.id, h, buf, 0).await;
    r?;
    let (b, r) = server.lnd.bulk_put(client.id, dst_ex.handle(), b, 0).await;
    r?;
    buf = b;
    ensure(verify(dst.as_slice(), 64 * 1024, 3), "the genuine handles moved the wrong bytes")?;

    // Without an rkey, the owner checks key, range and direction.
    let h = BulkHandle { rkey: None, ..h };
    let refused_before = client.lnd.stats().bulk_refused.load(Ordering::Relaxed);
    let by_owner = [
        ("a forged key", BulkHandle { key: h.key ^ 0x5a5a_5a5a, ..h }, false, Errno::EACCES),
        ("a range past the exposure", BulkHandle { len: h.len + 4096, ..h }, false, Errno::EFAULT),
        ("an address before it", BulkHandle { addr: h.addr - 4096, ..h }, false, Errno::EFAULT),
        ("a write into a read-only exposure", h, true, Errno::EACCES),
    ];
    for (what, handle, write, want) in by_owner {
        let (b, r) = if write {
            server.lnd.bulk_put(client.id, handle, buf, 0).await
        } else {
            server.lnd.bulk_get(client.id, handle, buf, 0).await
        };
        buf = b;
        match r {
            Err(LndError::BulkRefused { errno, .. }) if errno == want => {}
            other => return Err(format!("{what} (no rkey): {other:?}, wanted {want}").into()),
        }
    }
    let refused = client.lnd.stats().bulk_refused.load(Ordering::Relaxed) - refused_before;
    ensure(refused == 4, format!("the owner counted {refused} refusals"))?;
    // The genuine handle without an rkey goes by the grant.
    buf.io_mut().as_mut_slice()[..64 * 1024].fill(0xee);
    let (b, r) = server.lnd.bulk_get(client.id, h, buf, 0).await;
    r.map_err(|e| format!("a genuine handle without an rkey: {e}"))?;
    ensure(verify(b.io().as_slice(), 64 * 1024, 3), "the granted READ moved the wrong bytes")?;
    // The connection survives the owner's refusals.
    client.lnd.send(server.id, &[b"still here"]).await?;
    let (_, m) = server.recv().await?;
    ensure(m.bytes() == b"still here", "message after refusals")?;
    ensure(
        client.downs.try_recv().is_err() && server.downs.try_recv().is_err(),
        "an owner's refusal dropped the connection",
    )?;
    Ok(())
}

/// The child peer: exposes twelve 4 MiB buffers, sends their handles to
/// the server, and waits to be killed.
async fn child(args: &Args) -> Res<()> {
    let me = Node::start(args.addr, args.port, CHILD_PID, false).await?;
    let mut keep = Vec::new();
    let mut handles = Vec::new();
    for i in 0..12 {
        let buf = filled(4 * MIB, 500 + i)?;
        let ex = me.registry.expose(&buf, Access::Read);
        handles.push(ex.handle());
        keep.push((buf, ex));
    }
    let server = ProcessId { nid: Nid::new(args.addr, Net::o2ib(0)), pid: Pid::SERVER };
    let body = postcard::to_allocvec(&handles)?;
    me.lnd.send(server, &[&body]).await?;
    tokio::time::sleep(WAIT * 4).await;
    Ok(())
}

async fn killed(args: &Args, server: &mut Node, client: &mut Node) -> Res<()> {
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["--child", "--addr", &args.addr.to_string(), "--port", &args.port.to_string()])
        .spawn()?;
    let result = async {
        let (from, msg) = server.recv().await?;
        ensure(from.pid == CHILD_PID, format!("expected the child, got {from}"))?;
        let handles: Vec<BulkHandle> = postcard::from_bytes(msg.bytes())?;
        drop(msg);
        let (first, rest) = handles.split_first().ok_or("no handle")?;
        // One transfer alone shows data flowing; then the rest go at once
        // and the child is killed while they are in flight. (Killing it
        // when the first of twelve parallel transfers was done found the
        // others done too: they share the link and finish together.)
        let buf = IoBuf::alloc(first.len as usize, None)?;
        server.lnd.bulk_get(from, *first, buf, 0).await.1.map_err(|e| format!("the first transfer: {e}"))?;
        let mut tasks = tokio::task::JoinSet::new();
        for h in rest.iter().copied() {
            let lnd = server.lnd.clone();
            tasks.spawn(async move {
                let buf = IoBuf::alloc(h.len as usize, None).map_err(|e| e.to_string())?;
                lnd.bulk_get(from, h, buf, 0).await.1.map_err(|e| e.to_string())
            });
        }
        child.kill()?;
        child.wait()?;
        let (mut ok, mut failed) = (1, 0);
        while let Some(r) = tasks.join_next().await {
            match r? {
                Ok(()) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        ensure(failed > 0, "every transfer finished before the kill took effect")?;
        let down = tokio::time::timeout(WAIT, server.downs.recv()).await?.ok_or("no peer_down")?;
        ensure(down == from, format!("peer_down for {down}, expected {from}"))?;
        ensure(!server.lnd.connected_peers().contains(&from), "the dead peer is still connected")?;
        println!("killed peer: {ok} transfers done, {failed} failed");
        // The other peer is unaffected.
        client.lnd.send(server.id, &[b"after the kill"]).await?;
        let (_, m) = server.recv().await?;
        ensure(m.bytes() == b"after the kill", "message after the kill")?;
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

const PORTAL: u16 = 9;
const ECHO: u16 = 1;
const PULL: u16 = 2;
const PUSH: u16 = 3;

fn encode(h: BulkHandle) -> Vec<u8> {
    h.to_bytes().to_vec()
}

fn decode(b: &[u8]) -> Result<BulkHandle, Errno> {
    BulkHandle::from_bytes(b).map_err(|_| Errno::EINVAL)
}

/// Echoes with the network the request came by; pulls (answering the
/// data's crc32c) or pushes a pattern through the caller's handle.
struct TestService {
    pool: Arc<BufferPool>,
}

impl Service for TestService {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            match req.opcode {
                ECHO => {
                    let mut out = format!("{}:", req.from.nid.net).into_bytes();
                    out.extend_from_slice(req.body());
                    Ok(out)
                }
                PULL => {
                    let h = decode(req.body())?;
                    let buf = IoBuf::alloc(h.len as usize, None).map_err(Errno::from)?;
                    let (buf, r) = req.bulk.get(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(crc32c::crc32c(&buf).to_le_bytes().to_vec())
                }
                PUSH => {
                    let h = decode(req.body())?;
                    let mut buf = self.pool.get().await;
                    buf[..h.len as usize].copy_from_slice(&pattern(h.len as usize, 77));
                    let (_, r) = req.bulk.put(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(Vec::new())
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        })
    }
}

/// A server endpoint on tcp `tcp_port` and, when `o2ib_port` is given, on
/// o2ib too.
async fn server_endpoint(args: &Args, tcp_port: u16, o2ib_port: Option<u16>) -> Res<Endpoint> {
    let mut cfg = EndpointConfig::server(Nid::new(args.addr, Net::tcp(0)));
    cfg.tcp.port = tcp_port;
    if let Some(port) = o2ib_port {
        let mut o2ib = O2ibConfig::new(Nid::new(args.addr, Net::o2ib(0)), Pid::SERVER, true);
        o2ib.port = port;
        cfg.o2ib = Some(o2ib);
    }
    let ep = Endpoint::start(cfg).await?;
    ep.register(PORTAL, Arc::new(TestService { pool: BufferPool::new(MIB, 8, None)? }));
    Ok(ep)
}

/// A client endpoint with tcp and o2ib NIs, dialing servers on these ports.
async fn client_endpoint(args: &Args, tcp_port: u16, o2ib_port: u16) -> Res<Endpoint> {
    let mut cfg = EndpointConfig::client(Nid::new(args.addr, Net::tcp(0)));
    cfg.tcp.port = tcp_port;
    let mut o2ib = O2ibConfig::new(Nid::new(args.addr, Net::o2ib(0)), cfg.tcp.pid, false);
    o2ib.port = o2ib_port;
    cfg.o2ib = Some(o2ib);
    Ok(Endpoint::start(cfg).await?)
}

fn o2ib_server(args: &Args) -> ProcessId {
    ProcessId { nid: Nid::new(args.addr, Net::o2ib(0)), pid: Pid::SERVER }
}

async fn echo(client: &Endpoint, to: ProcessId, body: &[u8]) -> Res<String> {
    let reply = client.call(to, PORTAL, ECHO, body).await?;
    Ok(String::from_utf8_lossy(reply.body()).into_owned())
}

async fn rpc(args: &Args) -> Res<()> {
    let server = server_endpoint(args, args.tcp_port, Some(args.port + 1)).await?;
    let client = client_endpoint(args, args.tcp_port, args.port + 1).await?;
    let result = async {
        ensure(server.o2ib().is_some() && client.o2ib().is_some(), "an o2ib NI did not start")?;
        let to = o2ib_server(args);
        let said = echo(&client, to, b"hello").await?;
        ensure(said == "o2ib:hello", format!("echo answered {said:?}"))?;

        let src = filled(4 * MIB, 21)?;
        let ex = client.registry().expose(&src, Access::Read);
        let reply = client.call(to, PORTAL, PULL, &encode(ex.handle())).await?;
        ensure(reply.body() == crc32c::crc32c(&src).to_le_bytes(), "pulled data differs")?;
        drop(ex);

        let dst = IoBuf::alloc(MIB, None)?;
        let ex = client.registry().expose(&dst, Access::Write);
        client.call(to, PORTAL, PUSH, &encode(ex.handle())).await?;
        drop(ex);
        ensure(dst[..] == pattern(MIB, 77)[..], "pushed data differs")?;

        let mut calls = tokio::task::JoinSet::new();
        for i in 0..32u32 {
            let client = client.clone();
            calls.spawn(async move {
                let body = i.to_le_bytes();
                let reply = client.call(to, PORTAL, ECHO, &body).await.map_err(|e| e.to_string())?;
                ensure(reply.body()[5..] == body, format!("call {i} answered wrong"))
                    .map_err(|e| e.to_string())
            });
        }
        while let Some(r) = calls.join_next().await {
            r??;
        }
        let fallbacks = client.stats().tcp_fallbacks.load(Ordering::Relaxed);
        ensure(fallbacks == 0, format!("{fallbacks} messages fell back to tcp"))?;
        let o2ib = server.o2ib().ok_or("no o2ib")?.stats();
        let rdma =
            o2ib.rdma_read_bytes.load(Ordering::Relaxed) + o2ib.rdma_write_bytes.load(Ordering::Relaxed);
        ensure(rdma == (5 * MIB) as u64, format!("the server moved {rdma} bytes by RDMA"))?;
        ensure(server.tcp().stats().rx_msgs.load(Ordering::Relaxed) == 0, "requests came by tcp")?;
        prometheus_figures(&server, &client)
    }
    .await;
    client.shutdown();
    server.shutdown();
    result
}

/// The sample of `name` in `fams` whose labels include `labels`.
fn sample(fams: &[prometheus::proto::MetricFamily], name: &str, labels: &[(&str, &str)]) -> Res<f64> {
    let f = fams.iter().find(|f| f.name() == name).ok_or(format!("no metric {name}"))?;
    let m = f
        .get_metric()
        .iter()
        .find(|m| labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v)))
        .ok_or(format!("no {name} with {labels:?}"))?;
    Ok(match f.get_field_type() {
        prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
        _ => m.get_counter().get_value(),
    })
}

/// What the `rpc` check moved, as Prometheus sees it on both sides: the
/// server's RDMA bytes per peer, messages per peer both ways, credits, no
/// tcp traffic and no fallback, and no exposure left registered.
fn prometheus_figures(server: &Endpoint, client: &Endpoint) -> Res<()> {
    use prometheus::core::Collector;
    let s = fabric::metrics::FabricCollector::new(server).collect();
    let c = fabric::metrics::FabricCollector::new(client).collect();
    let (sid, cid) = (o2ib_server_of(server)?, o2ib_client_of(client)?);
    let at_client = [("lnd", "o2ib"), ("peer", cid.as_str())];
    let at_server = [("lnd", "o2ib"), ("peer", sid.as_str())];
    let read = sample(&s, "glint_fabric_rdma_read_bytes_total", &at_client)?;
    let written = sample(&s, "glint_fabric_rdma_write_bytes_total", &at_client)?;
    ensure(
        read == (4 * MIB) as f64 && written == MIB as f64,
        format!("server RDMA read {read}, wrote {written}"),
    )?;
    let sent = sample(&c, "glint_fabric_tx_messages_total", &at_server)?;
    let got = sample(&s, "glint_fabric_rx_messages_total", &at_client)?;
    ensure(sent == 35.0 && got == 35.0, format!("35 requests: client sent {sent}, server got {got}"))?;
    let replies = sample(&c, "glint_fabric_rx_messages_total", &at_server)?;
    ensure(replies == 35.0, format!("35 replies, client got {replies}"))?;
    let credits = sample(&c, "glint_fabric_peer_credits", &at_server)?;
    ensure(credits > 0.0, "no credits left for the server")?;
    ensure(sample(&c, "glint_fabric_ni_up", &[("lnd", "o2ib")])? == 1.0, "o2ib NI not up")?;
    ensure(sample(&c, "glint_fabric_tcp_fallbacks_total", &[])? == 0.0, "fallbacks counted")?;
    ensure(
        sample(&c, "glint_fabric_rdma_exposures", &[("lnd", "o2ib")])? == 0.0,
        "an exposure is still registered after its RPC",
    )?;
    let tcp_bytes: f64 = s
        .iter()
        .filter(|f| f.name() == "glint_fabric_rx_bytes_total" || f.name() == "glint_fabric_tx_bytes_total")
        .flat_map(|f| f.get_metric())
        .filter(|m| m.get_label().iter().any(|l| l.name() == "lnd" && l.value() == "tcp"))
        .map(|m| m.get_counter().get_value())
        .sum();
    ensure(tcp_bytes == 0.0, format!("the server moved {tcp_bytes} bytes over tcp"))?;
    println!(
        "prometheus: server RDMA read {read} B, wrote {written} B; {got} requests, {replies} replies over o2ib"
    );
    Ok(())
}

fn o2ib_server_of(ep: &Endpoint) -> Res<String> {
    let nid = ep.o2ib().ok_or("no o2ib NI")?.nid();
    Ok(ProcessId { nid, pid: Pid::SERVER }.to_string())
}

fn o2ib_client_of(ep: &Endpoint) -> Res<String> {
    let nid = ep.o2ib().ok_or("no o2ib NI")?.nid();
    Ok(ProcessId { nid, pid: ep.id().pid }.to_string())
}

async fn fallback_switched_off(args: &Args) -> Res<()> {
    let server = server_endpoint(args, args.tcp_port + 1, Some(args.port + 2)).await?;
    let client = client_endpoint(args, args.tcp_port + 1, args.port + 2).await?;
    let result = async {
        let to = o2ib_server(args);
        ensure(echo(&client, to, b"a").await? == "o2ib:a", "first call not over o2ib")?;
        client.set_o2ib_for_peer(to.nid, false);
        ensure(echo(&client, to, b"b").await? == "tcp:b", "o2ib switched off, but not over tcp")?;
        let route = client.peer_routes().into_iter().find(|r| r.peer == to.nid).ok_or("no route shown")?;
        ensure(route.fallback == Some(FallbackCause::SwitchedOff), format!("route {route:?}"))?;
        ensure(route.via == Nid::new(args.addr, Net::tcp(0)), format!("route {route:?}"))?;
        ensure(client.stats().tcp_fallbacks.load(Ordering::Relaxed) == 1, "fallback not counted")?;
        client.set_o2ib_for_peer(to.nid, true);
        ensure(echo(&client, to, b"c").await? == "o2ib:c", "o2ib switched on again, but not over o2ib")?;
        Ok(())
    }
    .await;
    client.shutdown();
    server.shutdown();
    result
}

async fn fallback_connect_failed(args: &Args) -> Res<()> {
    // A server with no o2ib NI: the o2ib connection is refused.
    let server = server_endpoint(args, args.tcp_port + 2, None).await?;
    let client = client_endpoint(args, args.tcp_port + 2, args.port + 3).await?;
    let result = async {
        let to = o2ib_server(args);
        ensure(echo(&client, to, b"x").await? == "tcp:x", "not answered over tcp")?;
        let route = client.peer_routes().into_iter().find(|r| r.peer == to.nid).ok_or("no route shown")?;
        match &route.fallback {
            Some(FallbackCause::ConnectFailed(why)) => println!("fallback after: {why}"),
            other => return Err(format!("route shows {other:?}").into()),
        }
        ensure(client.stats().tcp_fallbacks.load(Ordering::Relaxed) >= 1, "fallback not counted")?;
        Ok(())
    }
    .await;
    client.shutdown();
    server.shutdown();
    result
}

/// 1 MiB transfers with IN_FLIGHT outstanding for `seconds`, as a server
/// moves a client's data: WRITE into its buffers or READ from them.
async fn bench(
    args: &Args,
    server: &mut Node,
    client: &Node,
    pool: &Arc<BufferPool>,
    write: bool,
) -> Res<()> {
    let mut exposures = Vec::new();
    for i in 0..IN_FLIGHT {
        let buf = filled(MIB, 9000 + i as u64)?;
        let ex = client.registry.expose(&buf, if write { Access::Write } else { Access::Read });
        exposures.push((buf, ex));
    }
    let handles: Vec<BulkHandle> = exposures.iter().map(|(_, ex)| ex.handle()).collect();
    // The client connects (a client does not listen, so it dials); then an
    // untimed third of the run registers the server's pool and, under an
    // emulator, translates the code's first pass, as perftest sets up
    // before its clock starts.
    client.lnd.send(server.id, &[b"bench"]).await?;
    drop(server.recv().await?);
    let limit = Duration::from_secs_f64(args.seconds);
    transfers(&server.lnd, client.id, &handles, pool, write, limit / 3).await?;
    let start = Instant::now();
    let done = transfers(&server.lnd, client.id, &handles, pool, write, limit).await?;
    let secs = start.elapsed().as_secs_f64();
    let mib_s = done as f64 / secs;
    let op = if write { "WRITE" } else { "READ" };
    println!(
        "o2ib-lnd-bw {op} size={MIB} inflight={IN_FLIGHT} transfers={done} MiB/s={mib_s:.1} Gb/s={:.3}",
        mib_s * 8.0 * MIB as f64 / 1e9
    );
    Ok(())
}

/// Keeps one 1 MiB transfer in flight per handle until `limit` has passed,
/// then waits for those in flight; returns how many completed.
async fn transfers(
    lnd: &O2ibLnd,
    peer: ProcessId,
    handles: &[BulkHandle],
    pool: &Arc<BufferPool>,
    write: bool,
    limit: Duration,
) -> Res<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    type Done = (usize, fabric::PoolBuf, Result<(), LndError>);
    let start_op = |tasks: &mut tokio::task::JoinSet<Done>, i: usize, buf: fabric::PoolBuf| {
        let (lnd, h) = (lnd.clone(), handles[i]);
        tasks.spawn(async move {
            let (buf, r) =
                if write { lnd.bulk_put(peer, h, buf, 0).await } else { lnd.bulk_get(peer, h, buf, 0).await };
            (i, buf, r)
        });
    };
    let start = Instant::now();
    for i in 0..handles.len() {
        start_op(&mut tasks, i, pool.get().await);
    }
    let mut done = 0u64;
    while let Some(r) = tasks.join_next().await {
        let (i, buf, res) = r?;
        res?;
        done += 1;
        if start.elapsed() < limit {
            start_op(&mut tasks, i, buf);
        }
    }
    Ok(done)
}
