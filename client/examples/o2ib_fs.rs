//! The whole file system over o2ib, for real, on one RDMA device (Soft-RoCE
//! `rxe1` over the dummy `srt0` in the soft-roce-tests VM): an MGS/MDS and
//! two OSSs started in this process with o2ib NIDs, each on an address of
//! its own (the o2ib rdma_cm port is the same on every node, so two servers
//! cannot share an address), a client mounted with `ADDR@o2ib:/FSNAME`, a
//! file striped over both OSTs written and read back and compared, and the
//! LNDs' counters showing the RPCs and the bulk went over o2ib, not tcp.
//!
//! Prints one `PASS ...` or `FAIL ...` line per check. Exit status: 0 when
//! every check passed, 1 when one failed, 2 when the host has no RDMA
//! device.
//!
//! ```text
//! o2ib_fs --addrs MDS_ADDR,OSS0_ADDR,OSS1_ADDR [--tcp-port 18560] [--mib 16]
//! ```

use client::{Client, ClientTunables, process_cred};
use fabric::rpc::Endpoint;
use fabric::{Net, NetType, Nid};
use mds::{Mds, MdsConfig};
use ost::{ObjectStore, Oss, OssConfig, TargetConfig};
use proto::StripeSpec;
use std::error::Error;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const FSNAME: &str = "o2ibfs";
const STRIPE: u64 = 1 << 20;
/// Bounds a hang; it times nothing (Soft-RoCE under an emulated CPU is slow).
const WAIT: Duration = Duration::from_secs(240);

struct Args {
    addrs: Vec<IpAddr>,
    tcp_port: u16,
    mib: usize,
}

fn parse_args() -> Res<Args> {
    let mut a = Args { addrs: Vec::new(), tcp_port: 18560, mib: 16 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addrs" => {
                a.addrs = value()?.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?;
            }
            "--tcp-port" => a.tcp_port = value()?.parse()?,
            "--mib" => a.mib = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.addrs.len() != 3 {
        return Err("--addrs needs three addresses on the RDMA interface: the MDS's and two OSSs'".into());
    }
    if a.mib == 0 {
        return Err("--mib must be at least 1".into());
    }
    Ok(a)
}

struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            println!("PASS {what}");
        } else {
            println!("FAIL {what}");
            self.failed += 1;
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn list(nids: &[Nid]) -> String {
    nids.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

/// What one endpoint moved over each LND.
fn traffic(name: &str, ep: &Endpoint) -> (u64, u64, u64) {
    let t = ep.tcp().stats();
    let tcp = t.tx_msgs.load(Ordering::Relaxed) + t.rx_msgs.load(Ordering::Relaxed);
    let tcp_bulk = t.bulk_tx_bytes.load(Ordering::Relaxed) + t.bulk_rx_bytes.load(Ordering::Relaxed);
    let (msgs, rdma) = match ep.o2ib() {
        Some(l) => {
            let s = l.stats();
            let rdma = s.rdma_read_bytes.load(Ordering::Relaxed) + s.rdma_write_bytes.load(Ordering::Relaxed);
            println!(
                "o2ib-fs {name}: o2ib tx_msgs={} rx_msgs={} rdma_read_bytes={} rdma_write_bytes={} | tcp msgs={tcp} bulk_bytes={tcp_bulk} | tcp_fallbacks={}",
                s.tx_msgs.load(Ordering::Relaxed),
                s.rx_msgs.load(Ordering::Relaxed),
                s.rdma_read_bytes.load(Ordering::Relaxed),
                s.rdma_write_bytes.load(Ordering::Relaxed),
                ep.stats().tcp_fallbacks.load(Ordering::Relaxed),
            );
            (s.tx_msgs.load(Ordering::Relaxed) + s.rx_msgs.load(Ordering::Relaxed), rdma)
        }
        None => (0, 0),
    };
    (msgs, rdma, tcp + tcp_bulk + ep.stats().tcp_fallbacks.load(Ordering::Relaxed))
}

async fn run(a: Args, r: &mut Report) -> Res<()> {
    let o2ib = |addr: IpAddr| Nid::new(addr, Net::o2ib(0));
    let dir = tempfile::tempdir()?;
    let mdt_dir = dir.path().join("mdt");
    mds::format(&mdt_dir, FSNAME)?;
    let mgs = o2ib(a.addrs[0]);
    let cfg = MdsConfig { dir: mdt_dir, nid: mgs, port: a.tcp_port, metrics: None, root_squash: None };
    let mds = Mds::start(cfg).await?;
    let mut osses = Vec::new();
    for index in 0..2u32 {
        let odir = dir.path().join(format!("ost{index}"));
        std::fs::create_dir_all(&odir)?;
        ObjectStore::format(&odir, FSNAME, index)?;
        let mut cfg = OssConfig::new(
            FSNAME,
            o2ib(a.addrs[1 + index as usize]),
            mgs,
            vec![TargetConfig { dir: odir, index }],
        );
        cfg.port = a.tcp_port;
        cfg.buffers = 8;
        cfg.io_threads = 2;
        // Long enough for an emulated client to answer, short enough that
        // the eviction below does not hold the run up.
        cfg.ldlm.callback_timeout = Duration::from_secs(5);
        osses.push(Oss::start(cfg).await?);
    }
    let servers: Vec<(String, &Endpoint)> = std::iter::once(("mds".to_string(), &mds.endpoint))
        .chain(osses.iter().enumerate().map(|(i, o)| (format!("oss{i}"), &o.endpoint)))
        .collect();
    for (name, ep) in &servers {
        let nids = ep.nids();
        r.check(
            ep.o2ib().is_some() && nids.first().is_some_and(|n| n.net.kind == NetType::O2ib),
            &format!("{name} serves on {} (o2ib NI down: {})", list(&nids), ep.o2ib_down().unwrap_or("no")),
        );
    }
    let config = mds.mds.mgs().config(FSNAME).ok_or("the MGS has no configuration")?;
    let registered: Vec<_> = config.mdt.iter().chain(config.osts.iter()).map(|t| t.nids.clone()).collect();
    r.check(
        registered.len() == 3
            && registered
                .iter()
                .all(|n| n.len() == 2 && n[0].net.kind == NetType::O2ib && n[1].net.kind == NetType::Tcp),
        &format!(
            "the MDT and both OSTs registered their o2ib and tcp NIDs: {}",
            registered.iter().map(|n| list(n)).collect::<Vec<_>>().join(" ")
        ),
    );

    let spec = format!("{mgs}:/{FSNAME}");
    let tunables = ClientTunables { port: a.tcp_port, ..Default::default() };
    let c = Client::mount_with(&spec, tunables.clone()).await?;
    r.check(
        c.endpoint().o2ib().is_some() && c.endpoint().id().nid.addr == a.addrs[0],
        &format!("mounted {spec} (client NIDs {})", list(&c.endpoint().nids())),
    );

    let cred = process_cred();
    let stripe = StripeSpec { stripe_count: Some(2), stripe_size: Some(STRIPE), stripe_offset: None };
    let (attr, layout) = c.create(&cred, c.root(), "striped", 0o644, stripe, true).await?;
    let layout = layout.ok_or("a regular file without a layout")?;
    let mut osts: Vec<u32> =
        layout.raid0().map(|l| l.objects.iter().map(|o| o.ost_idx).collect()).unwrap_or_default();
    osts.sort();
    r.check(osts == [0, 1], &format!("the file is striped over OSTs {osts:?}"));
    // Not a whole number of stripes, so the last one is partial.
    let data = pattern(a.mib * (1 << 20) + 12345);
    c.pwrite(&layout, 0, &data, false).await?;
    let mut back = vec![0u8; data.len()];
    let n = c.pread(&layout, 0, &mut back).await?;
    r.check(
        n == data.len() && back == data,
        &format!("{} bytes written and read back identical", data.len()),
    );
    let (full, _) = c.getattr(&cred, attr.fid).await?;
    r.check(full.size == data.len() as u64, &format!("the file's size is {}", full.size));

    // Every RPC and every byte of bulk went over o2ib: the OSSs pulled the
    // written data by RDMA READ and pushed the read data by RDMA WRITE,
    // all but the last 12345 bytes, which are short I/O (inside the RPCs).
    let (client_msgs, _, client_tcp) = traffic("client", c.endpoint());
    r.check(client_msgs > 0 && client_tcp == 0, "the client's RPCs went over o2ib, none over tcp");
    let mut rdma = 0;
    let mut server_tcp = 0;
    for (name, ep) in &servers {
        let (_, bytes, tcp) = traffic(name, ep);
        rdma += bytes;
        server_tcp += tcp;
    }
    let short = 12345u64;
    r.check(
        short <= tunables.short_io_bytes as u64 && rdma >= 2 * (data.len() as u64 - short),
        &format!(
            "the OSSs moved {rdma} bytes by RDMA READ and WRITE (file {} bytes, written and read; \
             the last {short} as short I/O)",
            data.len()
        ),
    );
    r.check(
        server_tcp == 0,
        "no server sent or received anything over tcp (MGS registration and MDS-OSS RPCs included)",
    );
    r.check(
        c.endpoint().peer_routes().iter().all(|p| p.fallback.is_none() && p.via.net.kind == NetType::O2ib),
        &format!(
            "the client reaches every o2ib peer over o2ib: {}",
            c.endpoint()
                .peer_routes()
                .iter()
                .map(|p| format!("{} via {}", p.peer, p.via))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let oss_ids: Vec<_> = osses.iter().map(|o| o.endpoint.id()).collect();
    locks_over_o2ib(r, &c, &spec, &tunables, &layout, &data, &oss_ids).await?;
    c.endpoint().shutdown();
    for o in &osses {
        o.endpoint.shutdown();
    }
    mds.endpoint.shutdown();
    Ok(())
}

/// Reads `[from, to)` of the file in 1 MiB calls, as a streaming reader.
async fn read_along(c: &std::sync::Arc<Client>, layout: &proto::Layout, from: u64, to: u64) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = from;
    while off < to {
        let mut buf = vec![0u8; (to - off).min(1 << 20) as usize];
        let n = c.pread(layout, off, &mut buf).await?;
        out.extend_from_slice(&buf[..n]);
        off += (1 << 20) as u64;
    }
    Ok(out)
}

/// Extent locks over o2ib: a second client's write reaches a reader that
/// caches (blocking callback over o2ib), and a reader whose callbacks are
/// lost is evicted, sees the OSS drop its o2ib connection, and reads the
/// new bytes rather than its cache.
async fn locks_over_o2ib(
    r: &mut Report,
    a: &std::sync::Arc<Client>,
    spec: &str,
    tunables: &ClientTunables,
    layout: &proto::Layout,
    data: &[u8],
    osses: &[fabric::ProcessId],
) -> Res<()> {
    let mib = 1u64 << 20;
    let b = Client::mount_with(spec, tunables.clone()).await?;
    let whole = read_along(a, layout, 0, 4 * mib).await?;
    r.check(
        whole[..] == data[..4 * mib as usize] && a.cached_bytes() > 0 && a.lock_count() > 0,
        &format!(
            "client A reads ahead under locks over o2ib ({} bytes cached, {} locks)",
            a.cached_bytes(),
            a.lock_count()
        ),
    );
    let new = pattern(3 * mib as usize + 7);
    let new = &new[7..];
    b.pwrite(layout, 4 * mib, new, false).await?;
    let got = read_along(a, layout, 4 * mib, 7 * mib).await?;
    r.check(got == new, "a write by client B reaches client A, whose cache its callback dropped (over o2ib)");

    let got = read_along(a, layout, 7 * mib, 12 * mib).await?;
    r.check(got[..] == data[7 * mib as usize..12 * mib as usize], "client A reads on, ahead again");
    // The OSS (one per OST, OSS i serving OST i) holding stripe 8.
    let ost = layout.raid0().map(|l| l.objects[8 % l.objects.len()].ost_idx).ok_or("no raid0 layout")?;
    let oss = osses[ost as usize];
    let losses = a.endpoint().connection_losses(oss);
    a.lose_lock_callbacks(u32::MAX);
    let newer = pattern(mib as usize + 11);
    let newer = &newer[11..];
    b.pwrite(layout, 8 * mib, newer, false).await?;
    let seen = std::time::Instant::now();
    while a.endpoint().connection_losses(oss) == losses && seen.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.check(
        a.endpoint().connection_losses(oss) > losses,
        &format!("client A, its callbacks lost, is evicted: the OSS of OST {ost} dropped its o2ib connection and A saw it"),
    );
    a.lose_lock_callbacks(0);
    let got = read_along(a, layout, 8 * mib, 9 * mib).await?;
    r.check(got == newer, "the evicted client A reads what B wrote after, not its cache");
    b.endpoint().shutdown();
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("o2ib_fs: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = fabric::o2ib::list_devices() {
        println!("FAIL no RDMA device: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("o2ib_fs: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut r = Report { failed: 0 };
    let out = rt.block_on(async { tokio::time::timeout(WAIT, run(a, &mut r)).await });
    match out {
        Ok(Ok(())) => {}
        Ok(Err(e)) => r.check(false, &format!("the file system over o2ib: {e}")),
        Err(_) => r.check(false, &format!("the file system over o2ib did not finish within {WAIT:?}")),
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    if r.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
