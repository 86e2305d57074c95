//! The RPC layer over the tcp LND on loopback: immediate messages, bulk in
//! both directions, forged handles, many calls in flight, resend after a
//! lost connection answered from the reply cache, and garbage on the wire.

use fabric::memory::{Access, BulkHandle};
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Errno, IoBuf, Nid, Pid, ProcessId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PORTAL: u16 = 7;
const ECHO: u16 = 1;
const PULL: u16 = 2;
const PUSH: u16 = 3;
const SLOW_COUNT: u16 = 4;
const WHERE: u16 = 5;
/// SLOW_COUNT, declared idempotent: its replies are not cached.
const SLOW_COUNT_AGAIN: u16 = 6;

/// A loopback address of this test's own, so tests run in parallel.
fn unique_nid() -> Nid {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte array.
    unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 3, 0) };
    format!("127.{}.{}.{}@tcp", b[0], b[1], b[2].max(2)).parse().unwrap()
}

fn handle(body: &[u8]) -> BulkHandle {
    BulkHandle {
        addr: u64::from_le_bytes(body[0..8].try_into().unwrap()),
        len: u64::from_le_bytes(body[8..16].try_into().unwrap()),
        key: u64::from_le_bytes(body[16..24].try_into().unwrap()),
        rkey: None,
    }
}

fn encode(h: BulkHandle) -> Vec<u8> {
    [h.addr.to_le_bytes(), h.len.to_le_bytes(), h.key.to_le_bytes()].concat()
}

struct TestService {
    runs: AtomicU64,
}

impl Service for TestService {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            match req.opcode {
                ECHO => Ok(req.body().to_vec()),
                PULL => {
                    // Pull the client's bytes and answer with their checksum.
                    let h = handle(req.body());
                    let buf = IoBuf::alloc(h.len as usize, None).map_err(Errno::from)?;
                    let (buf, r) = req.bulk.get(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(crc32c::crc32c(&buf).to_le_bytes().to_vec())
                }
                PUSH => {
                    let h = handle(req.body());
                    let mut buf = IoBuf::alloc(h.len as usize, None).map_err(Errno::from)?;
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = (i % 251) as u8;
                    }
                    let (_, r) = req.bulk.put(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(Vec::new())
                }
                SLOW_COUNT | SLOW_COUNT_AGAIN => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(self.runs.fetch_add(1, Ordering::SeqCst).to_le_bytes().to_vec())
                }
                WHERE => Ok(std::thread::current().name().unwrap_or("").as_bytes().to_vec()),
                _ => Err(Errno::EOPNOTSUPP),
            }
        })
    }

    fn idempotent(&self, opcode: u16) -> bool {
        opcode == SLOW_COUNT_AGAIN
    }
}

async fn pair() -> (Endpoint, Endpoint, ProcessId, Arc<TestService>) {
    let server_nid = unique_nid();
    let server = Endpoint::start(EndpointConfig::server(server_nid)).await.unwrap();
    let svc = Arc::new(TestService { runs: AtomicU64::new(0) });
    server.register(PORTAL, svc.clone());
    let client = Endpoint::start(EndpointConfig::client(unique_nid())).await.unwrap();
    (server, client, ProcessId { nid: server_nid, pid: Pid::SERVER }, svc)
}

#[tokio::test]
async fn immediate_and_bulk_both_ways() {
    let (_server, client, srv, _) = pair().await;
    let r = client.call(srv, PORTAL, ECHO, b"hello").await.unwrap();
    assert_eq!(r.body(), b"hello");

    let mut data = IoBuf::alloc(3 << 20, None).unwrap();
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 % 256) as u8;
    }
    let ex = client.registry().expose(&data, Access::Read);
    let r = client.call(srv, PORTAL, PULL, &encode(ex.handle())).await.unwrap();
    assert_eq!(r.body(), crc32c::crc32c(&data).to_le_bytes());

    let mut sink = IoBuf::alloc(1 << 20, None).unwrap();
    let ex = client.registry().expose(&sink, Access::Write);
    client.call(srv, PORTAL, PUSH, &encode(ex.handle())).await.unwrap();
    drop(ex);
    assert!(sink.as_mut_slice().iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

    let err = client.call(srv, PORTAL, 99, b"").await.err().unwrap();
    assert_eq!(err.errno(), Errno::EOPNOTSUPP);
    let err = client.call(srv, PORTAL + 1, ECHO, b"").await.err().unwrap();
    assert_eq!(err.errno(), Errno::EOPNOTSUPP);
}

#[tokio::test]
async fn requests_run_on_pinned_service_threads_not_the_network_runtime() {
    let (server, client, srv, _) = pair().await;
    let threads = server.service_threads();
    assert!(!threads.is_empty() && threads.iter().all(|&n| n >= 1), "{threads:?}");
    for _ in 0..8 {
        let r = client.call(srv, PORTAL, WHERE, b"").await.unwrap();
        let name = String::from_utf8_lossy(r.body()).into_owned();
        assert!(name.starts_with("ptlrpc"), "served on {name:?}");
    }
    // A client with no services starts no service threads.
    assert!(client.service_threads().is_empty());
    assert_eq!(server.stats().dispatch_overflows.load(Ordering::Relaxed), 0);
    // The server's service threads read the client's socket themselves, so
    // the requests were queued there without waking another thread (the
    // connection was made after the service was registered).
    assert!(server.requests_queued_in_place() >= 8, "{}", server.requests_queued_in_place());
}

#[tokio::test]
async fn a_client_reads_its_replies_on_its_own_runtime() {
    // A client's service threads answer callbacks only: its connections
    // stay on the runtime its callers wait on.
    let (server, client, srv, _) = pair().await;
    let back = Arc::new(TestService { runs: AtomicU64::new(0) });
    client.register(PORTAL, back);
    for _ in 0..4 {
        client.call(srv, PORTAL, ECHO, b"x").await.unwrap();
    }
    let r = server.call(client.id(), PORTAL, WHERE, b"").await.unwrap();
    assert!(String::from_utf8_lossy(r.body()).starts_with("ptlrpc"));
    assert_eq!(client.requests_queued_in_place(), 0);
}

#[tokio::test]
async fn forged_and_out_of_range_handles_are_refused() {
    let (server, client, srv, _) = pair().await;
    let data = IoBuf::alloc(8192, None).unwrap();
    let ex = client.registry().expose_range(&data, 0, 4096, Access::Read).unwrap();
    let h = ex.handle();
    for forged in [
        BulkHandle { key: h.key ^ 0x55, ..h },
        BulkHandle { len: 8192, ..h },
        BulkHandle { addr: h.addr + 1, ..h },
    ] {
        let err = client.call(srv, PORTAL, PULL, &encode(forged)).await.err().expect("refused");
        assert!(matches!(err.errno(), Errno::EACCES | Errno::EFAULT), "{err}");
    }
    // Reading into a range exposed only for reading is refused too.
    let err = client.call(srv, PORTAL, PUSH, &encode(h)).await.err().expect("refused");
    assert_eq!(err.errno(), Errno::EACCES);
    // And the connection still serves.
    assert_eq!(client.call(srv, PORTAL, ECHO, b"ok").await.unwrap().body(), b"ok");
    assert!(client.tcp().stats().bulk_refused.load(Ordering::Relaxed) >= 4);
    drop(server);
}

#[tokio::test]
async fn many_calls_in_flight_share_credits() {
    let (_server, client, srv, _) = pair().await;
    let calls = (0..200u32).map(|i| {
        let client = client.clone();
        async move {
            let body = i.to_le_bytes();
            let r = client.call(srv, PORTAL, ECHO, &body).await.unwrap();
            assert_eq!(r.body(), body);
        }
    });
    futures_join_all(calls).await;
    // Every credit came back.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(client.tcp().peer_credits(srv), Some(8));
}

async fn futures_join_all<F: Future<Output = ()> + Send + 'static>(fs: impl Iterator<Item = F>) {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn resend_after_lost_connection_runs_once() {
    let (_server, client, srv, svc) = pair().await;
    let c2 = client.clone();
    let call = tokio::spawn(async move { c2.call(srv, PORTAL, SLOW_COUNT, b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.tcp().disconnect(srv);
    let r = call.await.unwrap().unwrap();
    assert_eq!(r.body(), 0u64.to_le_bytes());
    assert_eq!(svc.runs.load(Ordering::SeqCst), 1, "the resent request ran once");
    assert!(client.stats().resends.load(Ordering::Relaxed) >= 1);
}

/// A request its service declares idempotent keeps no reply in the reply
/// cache: resent, it runs again, and the caller still gets an answer.
#[tokio::test]
async fn an_idempotent_request_resent_runs_again() {
    let (server, client, srv, svc) = pair().await;
    let c2 = client.clone();
    let call = tokio::spawn(async move { c2.call(srv, PORTAL, SLOW_COUNT_AGAIN, b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.tcp().disconnect(srv);
    call.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(svc.runs.load(Ordering::SeqCst), 2, "the resent request ran again");
    assert_eq!(server.stats().replays.load(Ordering::Relaxed), 0, "nothing came from the reply cache");
}

#[tokio::test]
async fn lost_connections_are_counted_per_process_whoever_drops_them() {
    let (server, client, srv, _) = pair().await;
    client.call(srv, PORTAL, ECHO, b"up").await.unwrap();
    assert_eq!(client.connection_losses(srv), 0);
    // The server drops the client (as an OST evicting it does): the client
    // counts it once its reader sees the connection go.
    server.tcp().disconnect(client.id());
    let seen = std::time::Instant::now();
    while client.connection_losses(srv) == 0 {
        assert!(seen.elapsed() < Duration::from_secs(10), "the client never saw its connection go");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.connection_losses(srv), 1, "one loss, reported once by the set's several readers");
    // The same process under its o2ib NID (reached over tcp when o2ib is
    // not there) has lost the same connection.
    let as_o2ib = ProcessId { nid: format!("{}@o2ib", srv.nid.addr).parse().unwrap(), pid: srv.pid };
    assert_eq!(client.connection_losses(as_o2ib), 1);
    // Another process at that address has not.
    assert_eq!(client.connection_losses(ProcessId { nid: srv.nid, pid: srv.pid + 1 }), 0);
    client.call(srv, PORTAL, ECHO, b"again").await.unwrap();
    client.tcp().disconnect(srv);
    assert_eq!(client.connection_losses(srv), 2);
}

#[tokio::test]
async fn garbage_on_the_wire_drops_that_connection_only() {
    let (server, client, srv, _) = pair().await;
    for garbage in [vec![0u8; 48], b"GET / HTTP/1.1\r\n\r\n".to_vec(), {
        // A well-formed header that claims an absurd length.
        let mut h = fabric::tcp::Header::new(fabric::tcp::FrameType::Hello);
        h.len = u32::MAX;
        h.seal(&[]).to_vec()
    }] {
        let mut s = tokio::net::TcpStream::connect(srv.nid.socket_addr(server.tcp().port())).await.unwrap();
        s.write_all(&garbage).await.unwrap();
        let _ = s.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.call(srv, PORTAL, ECHO, b"still here").await.unwrap().body(), b"still here");
    assert!(server.tcp().stats().frames_refused.load(Ordering::Relaxed) >= 3);
}

#[tokio::test]
async fn dead_server_gives_a_clear_error() {
    let mut cfg = EndpointConfig::client(unique_nid());
    cfg.retry_limit = Duration::from_millis(500);
    let client = Endpoint::start(cfg).await.unwrap();
    let nobody = ProcessId { nid: unique_nid(), pid: Pid::SERVER };
    let err = client.call(nobody, PORTAL, ECHO, b"").await.err().unwrap();
    assert_eq!(err.errno(), Errno::ETIMEDOUT, "{err}");
}
