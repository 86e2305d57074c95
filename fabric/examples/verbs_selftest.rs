//! Exercise the o2ib verbs layer for real: in one process, a server and a
//! client connected over rdma_cm on one RDMA device (Soft-RoCE `rxe0` on
//! 127.0.0.1 in the soft-roce-tests VM), then immediate messages both
//! ways, verified 1 MiB RDMA WRITE and READ, 16 transfers in flight, and
//! refused keys and ranges. `--mode bandwidth` measures RDMA WRITE and READ
//! of 1 MiB with 16 in flight, to set beside `ib_write_bw`/`ib_read_bw`.
//!
//! Bulk is driven by the server, as glint does it: the client sends a
//! descriptor of its buffer in an immediate message, and the server
//! WRITEs into it (a read RPC) or READs from it (a write RPC).
//!
//! Exit status: 0 when every check passed, 1 when one failed, 2 when the
//! host has no RDMA device.
//!
//! ```text
//! verbs_selftest [--addr 127.0.0.1] [--port 18515] [--mode all|checks|bandwidth] [--seconds 3]
//! ```

use fabric::o2ib::{
    ConnConfig, Connection, Hca, Listener, O2ibError, Op, Registration, RemoteBuf, WorkCompletionStatus,
    connect, list_devices,
};
use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

const MIB: usize = 1 << 20;
const IN_FLIGHT: usize = 16;
/// Generous: under an emulated CPU Soft-RoCE is slow, and this only
/// bounds a hang, it times nothing.
const WAIT: Duration = Duration::from_secs(120);

struct Args {
    addr: IpAddr,
    port: u16,
    checks: bool,
    bandwidth: bool,
    seconds: f64,
}

fn parse_args() -> Res<Args> {
    let mut args =
        Args { addr: [127, 0, 0, 1].into(), port: 18515, checks: true, bandwidth: true, seconds: 3.0 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value()?.parse()?,
            "--port" => args.port = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--mode" => match value()?.as_str() {
                "all" => (args.checks, args.bandwidth) = (true, true),
                "checks" => (args.checks, args.bandwidth) = (true, false),
                "bandwidth" => (args.checks, args.bandwidth) = (false, true),
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

/// One completion, owned, as the harness records it.
#[derive(Debug)]
struct Done {
    op: Op,
    wr_id: u64,
    status: WorkCompletionStatus,
    data: Vec<u8>,
}

/// A connected server/client pair on one device, driven from one thread.
struct Pair {
    server: Connection,
    client: Connection,
    server_done: Vec<Done>,
    client_done: Vec<Done>,
}

fn poll_into(conn: &mut Connection, out: &mut Vec<Done>) -> Res<usize> {
    Ok(conn.poll(|c| out.push(Done { op: c.op, wr_id: c.wr_id, status: c.status, data: c.data.to_vec() }))?)
}

impl Pair {
    fn open(hca: &Arc<Hca>, listener: &Listener, cfg: &ConnConfig) -> Res<Pair> {
        let addr = listener.local_addr();
        let (server, client) = std::thread::scope(|s| {
            let accept = s.spawn(|| listener.accept(Some(cfg.timeout)));
            let client = connect(hca, addr, cfg).map_err(|e| format!("client: {e}"))?;
            let server = accept.join().map_err(|_| "accept thread panicked")?;
            Ok::<_, Box<dyn Error>>((server.map_err(|e| format!("server: {e}"))?, client))
        })?;
        Ok(Pair { server, client, server_done: Vec::new(), client_done: Vec::new() })
    }

    fn pump(&mut self) -> Res<usize> {
        Ok(poll_into(&mut self.server, &mut self.server_done)?
            + poll_into(&mut self.client, &mut self.client_done)?)
    }

    /// Poll both sides until `done` holds.
    fn wait(&mut self, what: &str, done: impl Fn(&Pair) -> bool) -> Res<()> {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            if self.pump()? == 0 {
                if Instant::now() > deadline {
                    return Err(format!("no progress within {WAIT:?} waiting for {what}").into());
                }
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// Take the server's next received message.
    fn server_recv(&mut self) -> Res<Vec<u8>> {
        self.wait("a message at the server", |p| p.server_done.iter().any(|d| d.op == Op::Recv))?;
        take_recv(&mut self.server_done)
    }

    fn client_recv(&mut self) -> Res<Vec<u8>> {
        self.wait("a message at the client", |p| p.client_done.iter().any(|d| d.op == Op::Recv))?;
        take_recv(&mut self.client_done)
    }
}

fn take_recv(done: &mut Vec<Done>) -> Res<Vec<u8>> {
    let at = done.iter().position(|d| d.op == Op::Recv).ok_or("no message")?;
    let d = done.remove(at);
    if d.status != WorkCompletionStatus::Success {
        return Err(format!("receive failed: {:?}", d.status).into());
    }
    Ok(d.data)
}

/// Every completion of `op` with these ids, or an error naming the first
/// one that failed.
fn take_ok(done: &mut Vec<Done>, op: Op, ids: &[u64]) -> Res<()> {
    for &id in ids {
        let at =
            done.iter().position(|d| d.op == op && d.wr_id == id).ok_or(format!("{op:?} {id} missing"))?;
        let d = done.remove(at);
        if d.status != WorkCompletionStatus::Success {
            return Err(format!("{op:?} {id} completed with {:?}", d.status).into());
        }
    }
    Ok(())
}

fn has(done: &[Done], op: Op, id: u64) -> bool {
    done.iter().any(|d| d.op == op && d.wr_id == id)
}

/// Deterministic bytes for buffer `seed` (xorshift), so every transfer
/// carries different data.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
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

fn read_all(reg: &Registration, off: usize, len: usize) -> Res<Vec<u8>> {
    let mut out = vec![0u8; len];
    reg.read_at(off, &mut out)?;
    Ok(out)
}

fn encode_buf(b: &RemoteBuf) -> Res<Vec<u8>> {
    Ok(postcard::to_allocvec(b)?)
}

fn decode_buf(bytes: &[u8]) -> Res<RemoteBuf> {
    Ok(postcard::from_bytes(bytes)?)
}

/// Send with back-pressure: when every send slot is busy, poll and retry.
fn send_retrying(pair: &mut Pair, from_client: bool, wr_id: u64, msg: &[u8]) -> Res<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let conn = if from_client { &mut pair.client } else { &mut pair.server };
        match conn.send(wr_id, msg) {
            Ok(()) => return Ok(()),
            Err(O2ibError::Busy { .. }) if Instant::now() < deadline => {
                pair.pump()?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

// ---- checks ---------------------------------------------------------------

fn check_path_mtu(pair: &mut Pair) -> Res<()> {
    let (s, c) = (pair.server.path_mtu()?, pair.client.path_mtu()?);
    if s != 4096 || c != 4096 {
        return Err(format!("path MTU server {s}, client {c}; want 4096").into());
    }
    Ok(())
}

/// 100 messages each way, sizes 0..=4096, more than the receive slots so
/// the receivers must repost as they go; content and order verified.
fn check_messages(pair: &mut Pair) -> Res<()> {
    const COUNT: u64 = 100;
    for from_client in [true, false] {
        let mut received = Vec::new();
        for i in 0..COUNT {
            let len = ((i * 997) % 4097) as usize;
            let mut msg = pattern(i + 1000 * from_client as u64, len);
            if len >= 8 {
                msg[..8].copy_from_slice(&i.to_le_bytes());
            }
            send_retrying(pair, from_client, i, &msg)?;
            // Drain what has arrived so far, keeping order.
            pair.pump()?;
            let done = if from_client { &mut pair.server_done } else { &mut pair.client_done };
            while let Ok(m) = take_recv(done) {
                received.push(m);
            }
        }
        while (received.len() as u64) < COUNT {
            let m = if from_client { pair.server_recv()? } else { pair.client_recv()? };
            received.push(m);
        }
        for (i, got) in received.iter().enumerate() {
            let i = i as u64;
            let len = ((i * 997) % 4097) as usize;
            let mut want = pattern(i + 1000 * from_client as u64, len);
            if len >= 8 {
                want[..8].copy_from_slice(&i.to_le_bytes());
            }
            if *got != want {
                return Err(
                    format!("message {i} (from_client={from_client}) differs: {} bytes", got.len()).into()
                );
            }
        }
        let ids: Vec<u64> = (0..COUNT).collect();
        pair.wait("the send completions", |p| {
            let done = if from_client { &p.client_done } else { &p.server_done };
            ids.iter().all(|&id| has(done, Op::Send, id))
        })?;
        let sender = if from_client { &mut pair.client_done } else { &mut pair.server_done };
        take_ok(sender, Op::Send, &ids)?;
    }
    Ok(())
}

/// The client exposes `count` MiB; the server WRITEs a different pattern
/// into each MiB with all in flight; the client verifies.
fn check_write(pair: &mut Pair, count: usize) -> Res<()> {
    let hca = Arc::clone(pair.client.hca());
    let sink = Registration::alloc(&hca, count * MIB, None)?;
    let desc = sink.remote(0, count * MIB)?;
    send_retrying(pair, true, 1, &encode_buf(&desc)?)?;
    let got = decode_buf(&pair.server_recv()?)?;

    let source = Registration::alloc(&hca, count * MIB, None)?;
    let ids: Vec<u64> = (0..count as u64).map(|i| 100 + i).collect();
    for (i, &id) in ids.iter().enumerate() {
        source.write_at(i * MIB, &pattern(id, MIB))?;
        let target = RemoteBuf { addr: got.addr + (i * MIB) as u64, len: MIB as u32, rkey: got.rkey };
        pair.server.post_write(id, &source, i * MIB, target)?;
    }
    if count > 1 && pair.server.in_flight() < 2 {
        println!("  note: only {} transfers were still in flight after posting", pair.server.in_flight());
    }
    pair.wait("the WRITE completions", |p| ids.iter().all(|&id| has(&p.server_done, Op::Write, id)))?;
    take_ok(&mut pair.server_done, Op::Write, &ids)?;
    pair.wait("the client's send completion", |p| has(&p.client_done, Op::Send, 1))?;
    take_ok(&mut pair.client_done, Op::Send, &[1])?;
    for (i, &id) in ids.iter().enumerate() {
        if read_all(&sink, i * MIB, MIB)? != pattern(id, MIB) {
            return Err(format!("MiB {i} written by RDMA WRITE differs").into());
        }
    }
    Ok(())
}

/// The client fills `count` MiB with patterns and exposes them; the server
/// READs them all with every read in flight and verifies.
fn check_read(pair: &mut Pair, count: usize) -> Res<()> {
    let hca = Arc::clone(pair.client.hca());
    let exposed = Registration::alloc(&hca, count * MIB, None)?;
    let ids: Vec<u64> = (0..count as u64).map(|i| 200 + i).collect();
    for (i, &id) in ids.iter().enumerate() {
        exposed.write_at(i * MIB, &pattern(id, MIB))?;
    }
    send_retrying(pair, true, 2, &encode_buf(&exposed.remote(0, count * MIB)?)?)?;
    let got = decode_buf(&pair.server_recv()?)?;

    let sink = Registration::alloc(&hca, count * MIB, None)?;
    for (i, &id) in ids.iter().enumerate() {
        let from = RemoteBuf { addr: got.addr + (i * MIB) as u64, len: MIB as u32, rkey: got.rkey };
        pair.server.post_read(id, &sink, i * MIB, from)?;
    }
    pair.wait("the READ completions", |p| ids.iter().all(|&id| has(&p.server_done, Op::Read, id)))?;
    take_ok(&mut pair.server_done, Op::Read, &ids)?;
    pair.wait("the client's send completion", |p| has(&p.client_done, Op::Send, 2))?;
    take_ok(&mut pair.client_done, Op::Send, &[2])?;
    for (i, &id) in ids.iter().enumerate() {
        if read_all(&sink, i * MIB, MIB)? != pattern(id, MIB) {
            return Err(format!("MiB {i} fetched by RDMA READ differs").into());
        }
    }
    Ok(())
}

/// The server attempts `op` against a descriptor the client never handed
/// out (a forged key, or a range past the end); it must complete with a
/// remote access error, and a refused WRITE must leave the memory as it
/// was.
fn check_refused(pair: &mut Pair, op: Op, forge: impl Fn(RemoteBuf) -> RemoteBuf) -> Res<()> {
    let hca = Arc::clone(pair.client.hca());
    let exposed = Registration::alloc(&hca, MIB, None)?;
    exposed.write_at(0, &pattern(7, MIB))?;
    send_retrying(pair, true, 3, &encode_buf(&exposed.remote(0, MIB)?)?)?;
    let genuine = decode_buf(&pair.server_recv()?)?;
    let forged = forge(genuine);

    let local = Registration::alloc(&hca, MIB, None)?;
    local.write_at(0, &pattern(8, MIB))?;
    match op {
        Op::Write => pair.server.post_write(300, &local, 0, forged)?,
        _ => pair.server.post_read(300, &local, 0, forged)?,
    }
    pair.wait("the refused request's completion", |p| has(&p.server_done, op, 300))?;
    let at =
        pair.server_done.iter().position(|d| d.op == op && d.wr_id == 300).ok_or("completion vanished")?;
    let status = pair.server_done[at].status;
    if status != WorkCompletionStatus::RemoteAccessError {
        return Err(
            format!("{op:?} with {forged:?} completed with {status:?}, want RemoteAccessError").into()
        );
    }
    if read_all(&exposed, 0, MIB)? != pattern(7, MIB) {
        return Err("the exposed buffer changed under a refused request".into());
    }
    Ok(())
}

// ---- bandwidth ------------------------------------------------------------

/// Keep IN_FLIGHT 1 MiB transfers of `op` going for `seconds`; MiB/s.
fn bandwidth(pair: &mut Pair, op: Op, seconds: f64) -> Res<(f64, u64)> {
    let hca = Arc::clone(pair.client.hca());
    let exposed = Registration::alloc(&hca, IN_FLIGHT * MIB, None)?;
    send_retrying(pair, true, 4, &encode_buf(&exposed.remote(0, IN_FLIGHT * MIB)?)?)?;
    let remote = decode_buf(&pair.server_recv()?)?;
    let local = Registration::alloc(&hca, IN_FLIGHT * MIB, None)?;

    let post = |conn: &mut Connection, slot: usize, id: u64| -> Res<()> {
        let r = RemoteBuf { addr: remote.addr + (slot * MIB) as u64, len: MIB as u32, rkey: remote.rkey };
        match op {
            Op::Write => conn.post_write(id, &local, slot * MIB, r)?,
            _ => conn.post_read(id, &local, slot * MIB, r)?,
        }
        Ok(())
    };
    let start = Instant::now();
    let stop_posting = start + Duration::from_secs_f64(seconds);
    let mut next_id = 0u64;
    for slot in 0..IN_FLIGHT {
        post(&mut pair.server, slot, next_id)?;
        next_id += 1;
    }
    let mut completed = 0u64;
    let mut outstanding = IN_FLIGHT;
    let mut finished = Vec::with_capacity(64);
    let mut last_progress = Instant::now();
    while outstanding > 0 {
        finished.clear();
        pair.server.poll(|c| finished.push((c.wr_id, c.status)))?;
        pair.client.poll(|_| {})?;
        if finished.is_empty() {
            if last_progress.elapsed() > WAIT {
                return Err("bandwidth run stalled".into());
            }
            continue;
        }
        last_progress = Instant::now();
        for &(id, status) in &finished {
            if status != WorkCompletionStatus::Success {
                return Err(format!("{op:?} {id} completed with {status:?}").into());
            }
            completed += 1;
            outstanding -= 1;
            if Instant::now() < stop_posting {
                post(&mut pair.server, (id % IN_FLIGHT as u64) as usize, next_id)?;
                next_id += 1;
                outstanding += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Each transfer is one MiB.
    Ok((completed as f64 / secs, completed))
}

// ---- main -----------------------------------------------------------------

fn run_check(name: &str, passed: &mut u32, failed: &mut u32, f: impl FnOnce() -> Res<()>) {
    let start = Instant::now();
    match f() {
        Ok(()) => {
            *passed += 1;
            println!("PASS {name} ({:.2} s)", start.elapsed().as_secs_f64());
        }
        Err(e) => {
            *failed += 1;
            println!("FAIL {name}: {e}");
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("verbs_selftest: {e}");
            return ExitCode::from(1);
        }
    };
    let devices = match list_devices() {
        Ok(d) => d,
        Err(O2ibError::NoRdmaDevice) => {
            eprintln!("verbs_selftest: no RDMA device");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("verbs_selftest: listing RDMA devices: {e}");
            return ExitCode::from(1);
        }
    };
    for d in &devices {
        for p in &d.ports {
            println!(
                "device {} port {}: {} mtu {} {} gids {}",
                d.name,
                p.num,
                if p.active { "ACTIVE" } else { "down" },
                p.active_mtu,
                if p.ethernet { "ethernet" } else { "infiniband" },
                p.gid_table_len
            );
        }
    }
    let hca = match Hca::for_address(args.addr) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("verbs_selftest: no RDMA device for {}: {e}", args.addr);
            return ExitCode::from(if matches!(e, O2ibError::NoRdmaDevice) { 2 } else { 1 });
        }
    };
    println!(
        "using {} port {} for {} (max RDMA READ depth {})",
        hca.name(),
        hca.port(),
        args.addr,
        hca.max_rd_atomic()
    );

    let (mut passed, mut failed) = (0u32, 0u32);
    let cfg = ConnConfig::default();
    let listener = match Listener::bind(&hca, SocketAddr::new(args.addr, args.port), cfg.clone()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("verbs_selftest: listen on {}:{}: {e}", args.addr, args.port);
            return ExitCode::from(1);
        }
    };

    if args.checks {
        let mut main_pair = None;
        run_check("connect (rdma_cm, RC)", &mut passed, &mut failed, || {
            main_pair = Some(Pair::open(&hca, &listener, &cfg)?);
            Ok(())
        });
        if let Some(mut pair) = main_pair {
            run_check("path MTU 4096", &mut passed, &mut failed, || check_path_mtu(&mut pair));
            run_check("messages both ways", &mut passed, &mut failed, || check_messages(&mut pair));
            run_check("RDMA WRITE 1 MiB", &mut passed, &mut failed, || check_write(&mut pair, 1));
            run_check("RDMA READ 1 MiB", &mut passed, &mut failed, || check_read(&mut pair, 1));
            run_check("RDMA WRITE 16 x 1 MiB in flight", &mut passed, &mut failed, || {
                check_write(&mut pair, IN_FLIGHT)
            });
            run_check("RDMA READ 16 x 1 MiB in flight", &mut passed, &mut failed, || {
                check_read(&mut pair, IN_FLIGHT)
            });
        }
        // A refused request breaks its queue pair, so each gets its own.
        run_check("WRITE with a forged rkey is refused", &mut passed, &mut failed, || {
            let mut pair = Pair::open(&hca, &listener, &cfg)?;
            check_refused(&mut pair, Op::Write, |b| RemoteBuf { rkey: b.rkey ^ 0x00ff_ff00, ..b })
        });
        run_check("READ with a forged rkey is refused", &mut passed, &mut failed, || {
            let mut pair = Pair::open(&hca, &listener, &cfg)?;
            check_refused(&mut pair, Op::Read, |b| RemoteBuf { rkey: b.rkey ^ 0x00ff_ff00, ..b })
        });
        run_check("READ past the exposed range is refused", &mut passed, &mut failed, || {
            let mut pair = Pair::open(&hca, &listener, &cfg)?;
            check_refused(&mut pair, Op::Read, |b| RemoteBuf { addr: b.addr + 4096, ..b })
        });
    }

    if args.bandwidth {
        let mut pair = None;
        run_check("connect for bandwidth", &mut passed, &mut failed, || {
            pair = Some(Pair::open(&hca, &listener, &cfg)?);
            Ok(())
        });
        if let Some(mut pair) = pair {
            for (op, name) in [(Op::Write, "WRITE"), (Op::Read, "READ")] {
                run_check(&format!("bandwidth RDMA {name}"), &mut passed, &mut failed, || {
                    let (mib_s, n) = bandwidth(&mut pair, op, args.seconds)?;
                    let gbit_s = mib_s * MIB as f64 * 8.0 / 1e9;
                    println!(
                        "verbs-bw {name} size={MIB} inflight={IN_FLIGHT} transfers={n} \
                         MiB/s={mib_s:.1} Gb/s={gbit_s:.3}"
                    );
                    Ok(())
                });
            }
        }
    }

    println!("verbs_selftest: {passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
