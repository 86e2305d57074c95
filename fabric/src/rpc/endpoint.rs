use super::dispatch::{Dispatcher, Job};
use super::header::{FLAG_RESEND, Kind, RPC_HEADER_LEN, RPC_VERSION, RpcHeader};
use super::reply_cache::{Begin, ReplyCache};
use super::route::{Lnds, PeerRoute};
use super::timeout::{AdaptiveTimeouts, TimeoutBounds};
use crate::cpt::{CptConfig, CptPoolConfig, CptTable};
use crate::lnd::{BulkBuf, Deliver, LndError, RecvBuf};
use crate::memory::{BulkHandle, MemoryRegistry};
use crate::metrics::OpHistograms;
use crate::o2ib::{O2ibConfig, O2ibLnd};
use crate::tcp::{TcpConfig, TcpLnd};
use crate::{Errno, Nid, ProcessId};
use prometheus::HistogramVec;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};

/// How an endpoint is set up.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub tcp: TcpConfig,
    /// An o2ib NI beside the tcp one; it runs when this host has an RDMA
    /// device, and o2ib peers fall back to tcp when it does not.
    pub o2ib: Option<O2ibConfig>,
    pub timeouts: TimeoutBounds,
    /// How long a request keeps being resent before the caller gets an
    /// error. Lustre's "hard mount" waits forever; a bound keeps a dead
    /// server from hanging tools for good.
    pub retry_limit: Duration,
    /// How the machine is cut into CPU partitions for service threads.
    pub cpts: CptConfig,
    /// The service threads that run requests: their name, how many per
    /// partition, and each partition's queue depth.
    pub service: CptPoolConfig,
}

impl EndpointConfig {
    pub fn server(nid: Nid) -> EndpointConfig {
        EndpointConfig {
            tcp: TcpConfig::new(nid, crate::Pid::SERVER, true),
            o2ib: None,
            timeouts: TimeoutBounds::default(),
            retry_limit: Duration::from_secs(120),
            cpts: CptConfig::PerNumaNode,
            service: service_threads(),
        }
    }

    /// A client endpoint. Each gets a pid of its own, so several clients in
    /// one process (two mounts, a tool and a mount) are distinct peers.
    pub fn client(nid: Nid) -> EndpointConfig {
        EndpointConfig {
            tcp: TcpConfig::new(nid, crate::Pid::next_client(), false),
            o2ib: None,
            timeouts: TimeoutBounds::default(),
            retry_limit: Duration::from_secs(120),
            cpts: CptConfig::PerNumaNode,
            service: service_threads(),
        }
    }

    /// A server answering on `nid`. An o2ib NID gets a tcp NI on the same
    /// address beside its o2ib NI, so peers without RDMA (or this host,
    /// when it has none) are served over tcp.
    pub fn server_at(nid: Nid) -> EndpointConfig {
        Self::on(nid, EndpointConfig::server)
    }

    /// A client whose own NID is `nid`, the same way as `server_at`.
    pub fn client_at(nid: Nid) -> EndpointConfig {
        Self::on(nid, EndpointConfig::client)
    }

    fn on(nid: Nid, base: fn(Nid) -> EndpointConfig) -> EndpointConfig {
        match nid.net.kind {
            crate::NetType::O2ib => base(Nid::new(nid.addr, crate::Net::tcp(0))).with_o2ib(nid),
            _ => base(nid),
        }
    }

    /// Adds an o2ib NI at `nid` (same pid, listening as the tcp NI does):
    /// o2ib peers are reached over it where this host has an RDMA device,
    /// and over tcp to the same address where it has none.
    pub fn with_o2ib(mut self, nid: Nid) -> EndpointConfig {
        self.o2ib = Some(O2ibConfig::new(nid, self.tcp.pid, self.tcp.listen));
        self
    }
}

/// One thread per core of each partition: handlers await rather than
/// block, so a thread serves many requests at once. The queue holds what
/// a few hundred peers' credits let them send.
fn service_threads() -> CptPoolConfig {
    let mut c = CptPoolConfig::new("ptlrpc");
    c.queue_depth = 4096;
    c
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The server ran the request and answered with an error.
    #[error("server answered {0}")]
    Remote(Errno),
    #[error("{0}")]
    Network(#[from] LndError),
    #[error("no reply from {peer} after {waited:?}")]
    Timeout { peer: ProcessId, waited: Duration },
    #[error("malformed reply: {0}")]
    BadReply(String),
    #[error("no network to reach {0}")]
    NoRoute(Nid),
}

impl RpcError {
    pub fn errno(&self) -> Errno {
        match self {
            RpcError::Remote(e) => *e,
            RpcError::Network(e) => e.errno(),
            RpcError::Timeout { .. } => Errno::ETIMEDOUT,
            RpcError::BadReply(_) => Errno::EPROTO,
            RpcError::NoRoute(_) => Errno::EHOSTUNREACH,
        }
    }
}

/// A server's answer: the reply body, or an errno for the client.
pub type Response = Result<Vec<u8>, Errno>;

/// A service on one portal.
pub trait Service: Send + Sync + 'static {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>>;

    /// Whether running `opcode` twice does no harm (a read): its replies
    /// are not kept in the reply cache, which holds every other reply
    /// until the client has seen it, so large read replies cost no memory
    /// there.
    fn idempotent(&self, _opcode: u16) -> bool {
        false
    }
}

/// Moves bulk between a server's buffers and the ranges the requesting
/// client exposed.
#[derive(Clone)]
pub struct BulkCtx {
    ep: Endpoint,
    peer: ProcessId,
}

impl BulkCtx {
    pub fn peer(&self) -> ProcessId {
        self.peer
    }

    /// Pulls the client's range into `buf[off..]` (a write's data).
    pub async fn get<B: BulkBuf>(&self, remote: BulkHandle, buf: B, off: usize) -> (B, Result<(), LndError>) {
        self.ep.inner.lnds().bulk_get(self.peer, remote, buf, off).await
    }

    /// Pushes `buf[off..off+remote.len]` into the client's range (a read's data).
    pub async fn put<B: BulkBuf>(&self, remote: BulkHandle, buf: B, off: usize) -> (B, Result<(), LndError>) {
        self.ep.inner.lnds().bulk_put(self.peer, remote, buf, off).await
    }
}

/// An arriving request.
pub struct Request {
    pub from: ProcessId,
    pub xid: u64,
    pub opcode: u16,
    pub resent: bool,
    pub bulk: BulkCtx,
    msg: Box<dyn RecvBuf>,
}

impl Request {
    pub fn body(&self) -> &[u8] {
        &self.msg.bytes()[RPC_HEADER_LEN..]
    }
}

/// A successful reply.
pub struct Reply {
    pub header: RpcHeader,
    msg: Box<dyn RecvBuf>,
}

impl Reply {
    pub fn body(&self) -> &[u8] {
        &self.msg.bytes()[RPC_HEADER_LEN..]
    }
}

/// Counters of the RPC layer.
#[derive(Default, Debug)]
pub struct RpcStats {
    pub requests_sent: AtomicU64,
    pub resends: AtomicU64,
    pub timeouts: AtomicU64,
    pub late_replies: AtomicU64,
    pub requests_handled: AtomicU64,
    pub replays: AtomicU64,
    pub bad_messages: AtomicU64,
    /// Requests being served now.
    pub serving: AtomicU64,
    /// Requests served on the network runtime because their partition's
    /// queue was full.
    pub dispatch_overflows: AtomicU64,
    /// Messages to a peer on an RDMA network that went over tcp instead
    /// (no local RDMA device, o2ib switched off for it, o2ib connect failed).
    pub tcp_fallbacks: AtomicU64,
}

/// A portal's service, and how long its requests take to serve.
type Portal = (Arc<dyn Service>, Arc<OpHistograms>);

struct Inner {
    me: ProcessId,
    cfg: EndpointConfig,
    lnds: OnceLock<Lnds>,
    /// Messages the tcp NI delivered while a slower o2ib NI was still
    /// coming up; served once every NI runs. Dropping them instead left a
    /// client waiting a whole initial timeout (30 s) to resend.
    early: Mutex<Vec<(ProcessId, Box<dyn RecvBuf>)>>,
    registry: Arc<MemoryRegistry>,
    pending: Mutex<BTreeMap<u64, oneshot::Sender<Box<dyn RecvBuf>>>>,
    peer_events: Mutex<HashMap<ProcessId, Arc<Notify>>>,
    /// Connections lost, per process (address and pid) someone asked
    /// about with `connection_losses`: a server that never asks keeps none.
    losses: Mutex<HashMap<(IpAddr, u32), u64>>,
    services: RwLock<HashMap<u16, Portal>>,
    /// Service threads, started with the first service.
    dispatch: OnceLock<Option<Dispatcher>>,
    /// The runtime the endpoint started on: the network side's.
    rt: tokio::runtime::Handle,
    /// Time to serve a request, per portal and opcode.
    latency: HistogramVec,
    replies: ReplyCache,
    timeouts: AdaptiveTimeouts,
    next_xid: AtomicU64,
    stats: RpcStats,
}

/// One node's RPC endpoint: its NIs, its services, its outstanding calls.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl Inner {
    fn tcp(&self) -> &TcpLnd {
        self.lnds().tcp()
    }

    fn lnds(&self) -> &Lnds {
        self.lnds.get().expect("endpoint started")
    }

    fn peer_event(&self, peer: ProcessId) -> Arc<Notify> {
        self.peer_events.lock().expect("events lock").entry(peer).or_default().clone()
    }

    fn min_unreplied(&self) -> u64 {
        let p = self.pending.lock().expect("pending lock");
        p.keys().next().copied().unwrap_or_else(|| self.next_xid.load(Ordering::Relaxed))
    }
}

/// Whom a reply record belongs to: the peer's address and pid, whatever
/// network carried the request, so a request first sent over o2ib and
/// resent over tcp to the same address (the fallback) is answered from
/// the record instead of running twice.
fn reply_key(peer: ProcessId) -> ProcessId {
    ProcessId { nid: Nid::new(peer.nid.addr, crate::Net::tcp(0)), pid: peer.pid }
}

/// Hands what the LND receives to the endpoint without keeping it alive.
struct Inbox(Weak<Inner>);

impl Deliver for Inbox {
    fn deliver(&self, from: ProcessId, msg: Box<dyn RecvBuf>) {
        if let Some(inner) = self.0.upgrade() {
            {
                // Checked under the lock `start` drains with, so a message
                // is either kept for it or sees every NI running.
                let mut early = inner.early.lock().expect("early lock");
                if inner.lnds.get().is_none() {
                    tracing::debug!(peer = %from, "message before every NI is up: kept until they are");
                    early.push((from, msg));
                    return;
                }
            }
            Endpoint { inner }.incoming(from, msg);
        }
    }

    fn peer_down(&self, peer: ProcessId) {
        if let Some(inner) = self.0.upgrade() {
            if let Some(n) = inner.losses.lock().expect("losses lock").get_mut(&(peer.nid.addr, peer.pid)) {
                *n += 1;
            }
            inner.peer_event(peer).notify_waiters();
        }
    }
}

/// Turns a panic while polling the inner future into `Err`.
struct CatchPanic<F>(F);

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

/// Removes an abandoned call's reply slot.
struct PendingGuard<'a> {
    inner: &'a Inner,
    xid: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending.lock().expect("pending lock").remove(&self.xid);
    }
}

impl Endpoint {
    pub async fn start(cfg: EndpointConfig) -> std::io::Result<Endpoint> {
        let registry = MemoryRegistry::new();
        let first_xid = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        let inner = Arc::new(Inner {
            me: ProcessId { nid: cfg.tcp.nid, pid: cfg.tcp.pid },
            timeouts: AdaptiveTimeouts::new(cfg.timeouts),
            cfg: cfg.clone(),
            lnds: OnceLock::new(),
            early: Mutex::new(Vec::new()),
            registry: registry.clone(),
            pending: Mutex::new(BTreeMap::new()),
            peer_events: Mutex::new(HashMap::new()),
            losses: Mutex::new(HashMap::new()),
            services: RwLock::new(HashMap::new()),
            dispatch: OnceLock::new(),
            rt: tokio::runtime::Handle::current(),
            replies: ReplyCache::default(),
            next_xid: AtomicU64::new(first_xid),
            stats: RpcStats::default(),
            latency: crate::metrics::latency_histogram(
                "glint_fabric_rpc_service_seconds",
                "Time from a request's arrival to its reply being ready, per portal and opcode.",
                &["portal", "opcode"],
            ),
        });
        let inbox: Arc<dyn Deliver> = Arc::new(Inbox(Arc::downgrade(&inner)));
        let lnds = Lnds::start(cfg.tcp, cfg.o2ib, registry, inbox).await?;
        let _ = inner.lnds.set(lnds);
        let early = std::mem::take(&mut *inner.early.lock().expect("early lock"));
        let ep = Endpoint { inner };
        for (from, msg) in early {
            ep.incoming(from, msg);
        }
        Ok(ep)
    }

    pub fn id(&self) -> ProcessId {
        self.inner.me
    }

    pub fn registry(&self) -> &Arc<MemoryRegistry> {
        &self.inner.registry
    }

    pub fn tcp(&self) -> &TcpLnd {
        self.inner.tcp()
    }

    /// Connections to the process `peer` names lost since the first time
    /// this was asked of it, over any LND and either of its NIDs on the
    /// same address (an o2ib peer may be reached over tcp). What a peer
    /// granted over a connection (a lock) may be gone once this moves: the
    /// peer may have restarted, or cut this node off.
    pub fn connection_losses(&self, peer: ProcessId) -> u64 {
        *self.inner.losses.lock().expect("losses lock").entry((peer.nid.addr, peer.pid)).or_default()
    }

    /// The o2ib NI, when one is configured and this host runs it.
    pub fn o2ib(&self) -> Option<&O2ibLnd> {
        self.inner.lnds().o2ib()
    }

    /// Why the configured o2ib NI is down (e.g. "no RDMA device").
    pub fn o2ib_down(&self) -> Option<&str> {
        self.inner.lnds().o2ib_down()
    }

    /// The NIDs this endpoint answers on, as a target registers them: the
    /// o2ib NID when that NI runs, then the tcp NID.
    pub fn nids(&self) -> Vec<Nid> {
        self.inner.lnds().nids()
    }

    /// Which of a peer's registered NIDs to address it by (see
    /// [`super::pick_nid`]).
    pub fn pick_nid(&self, nids: &[Nid]) -> Option<Nid> {
        self.inner.lnds().pick(nids)
    }

    /// Switches o2ib off (or back on) for one peer NID: its messages go
    /// over tcp to the same address meanwhile.
    pub fn set_o2ib_for_peer(&self, peer: Nid, on: bool) {
        self.inner.lnds().set_o2ib(peer, on)
    }

    /// How each o2ib peer this endpoint sent to is reached, and why over
    /// tcp when it is.
    pub fn peer_routes(&self) -> Vec<PeerRoute> {
        self.inner.lnds().routes()
    }

    pub fn stats(&self) -> &RpcStats {
        &self.inner.stats
    }

    /// Requests sent and still waiting for their replies.
    pub fn in_flight(&self) -> usize {
        self.inner.pending.lock().expect("pending lock").len()
    }

    /// How long requests took to serve, labelled `portal` and `opcode`.
    pub fn service_latency(&self) -> &HistogramVec {
        &self.inner.latency
    }

    /// Pinned service threads per CPU partition (none before the first
    /// service is registered, or where they could not start).
    pub fn service_threads(&self) -> Vec<usize> {
        self.inner.dispatch.get().and_then(Option::as_ref).map(|d| d.threads().to_vec()).unwrap_or_default()
    }

    /// Requests a service thread queued for itself from a connection it
    /// reads (no wake-up: see `rpc::dispatch`).
    pub fn requests_queued_in_place(&self) -> u64 {
        self.inner.dispatch.get().and_then(Option::as_ref).map_or(0, |d| d.queued_in_place())
    }

    pub fn register(&self, portal: u16, service: Arc<dyn Service>) {
        let cfg = &self.inner.cfg;
        // A server's service threads read its peers' tcp sockets too; a
        // client's answer callbacks only, and its replies are best read on
        // the runtime its callers await them on.
        let network = cfg.tcp.listen;
        let mut started = false;
        self.inner.dispatch.get_or_init(|| {
            started = true;
            match CptTable::detect(&cfg.cpts).and_then(|t| Dispatcher::start(&t, &cfg.service, network)) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "no service threads; requests run on the network runtime");
                    None
                }
            }
        });
        if started && network {
            let inner = Arc::downgrade(&self.inner);
            self.inner.tcp().set_placement(Box::new(move |peer| {
                let inner = inner.upgrade()?;
                inner.dispatch.get().and_then(Option::as_ref).map(|d| d.runtime_for(peer))
            }));
        }
        let hist = Arc::new(OpHistograms::new(self.inner.latency.clone(), &[&portal.to_string()]));
        self.inner.services.write().expect("services lock").insert(portal, (service, hist));
    }

    pub fn shutdown(&self) {
        self.inner.lnds().shutdown();
    }

    /// Whether `shutdown` was called: nothing will be sent or received.
    pub fn is_shut_down(&self) -> bool {
        self.inner.lnds().is_shut_down()
    }

    /// Sends a request and waits for its reply, resending with the same
    /// xid after a lost connection or a timeout until `retry_limit`.
    pub async fn call(
        &self,
        peer: ProcessId,
        portal: u16,
        opcode: u16,
        body: &[u8],
    ) -> Result<Reply, RpcError> {
        if !self.inner.lnds().reaches(peer.nid) {
            return Err(RpcError::NoRoute(peer.nid));
        }
        let inner = &*self.inner;
        let xid = inner.next_xid.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        inner.pending.lock().expect("pending lock").insert(xid, tx);
        let _guard = PendingGuard { inner, xid };
        inner.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut header = RpcHeader::request(portal, opcode, xid);
        header.body_len = body.len() as u32;
        let mut backoff = Duration::from_millis(50);
        loop {
            let via = inner.lnds().route(peer, &inner.stats.tcp_fallbacks);
            let down = inner.peer_event(via);
            let lost = down.notified();
            tokio::pin!(lost);
            lost.as_mut().enable();
            header.aux = inner.min_unreplied();
            let sent_at = Instant::now();
            let raw = header.encode();
            let retry = match inner.lnds().send(via, &[&raw, body]).await {
                Ok(()) => {
                    let wait = inner.timeouts.timeout(peer, portal);
                    tokio::select! {
                        r = &mut rx => {
                            let msg = r.map_err(|_| RpcError::BadReply("reply slot dropped".into()))?;
                            return self.finish_call(peer, portal, sent_at, msg);
                        }
                        _ = &mut lost => format!("connection to {peer} lost"),
                        _ = tokio::time::sleep(wait) => {
                            inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                            format!("no reply in {wait:?}")
                        }
                    }
                }
                Err(e) if inner.lnds().fell_back(peer, via, &e) => continue,
                Err(e) if e.is_transient() => e.to_string(),
                Err(e) => return Err(e.into()),
            };
            if started.elapsed() >= inner.cfg.retry_limit {
                return Err(RpcError::Timeout { peer, waited: started.elapsed() });
            }
            tracing::debug!(%peer, xid, reason = %retry, "resending");
            inner.stats.resends.fetch_add(1, Ordering::Relaxed);
            header.flags |= FLAG_RESEND;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    fn finish_call(
        &self,
        peer: ProcessId,
        portal: u16,
        sent_at: Instant,
        msg: Box<dyn RecvBuf>,
    ) -> Result<Reply, RpcError> {
        let header = RpcHeader::decode(msg.bytes()).map_err(|e| RpcError::BadReply(e.to_string()))?;
        self.inner.timeouts.observe(peer, portal, sent_at.elapsed());
        if header.status != 0 {
            return Err(RpcError::Remote(Errno(header.status)));
        }
        Ok(Reply { header, msg })
    }

    fn incoming(&self, from: ProcessId, msg: Box<dyn RecvBuf>) {
        let inner = &self.inner;
        let header = match RpcHeader::decode(msg.bytes()) {
            Ok(h) => h,
            Err(e) => {
                inner.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %from, error = %e, "dropping a malformed RPC message");
                return;
            }
        };
        match header.kind {
            Kind::Reply => {
                let tx = inner.pending.lock().expect("pending lock").remove(&header.xid);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(msg);
                    }
                    None => {
                        inner.stats.late_replies.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Kind::Request => self.request(from, header, msg),
        }
    }

    fn request(&self, from: ProcessId, header: RpcHeader, msg: Box<dyn RecvBuf>) {
        let inner = &self.inner;
        if header.version != RPC_VERSION {
            tracing::warn!(peer = %from, theirs = header.version, ours = RPC_VERSION, "refusing a request of another protocol version");
            self.spawn_reply(from, &header, Err(Errno::EPROTO), Duration::ZERO, false);
            return;
        }
        let service = inner.services.read().expect("services lock").get(&header.portal).cloned();
        let Some((service, latency)) = service else {
            tracing::warn!(peer = %from, portal = header.portal, "request for a portal with no service");
            self.spawn_reply(from, &header, Err(Errno::EOPNOTSUPP), Duration::ZERO, false);
            return;
        };
        let cache = !service.idempotent(header.opcode);
        let begin =
            if cache { inner.replies.begin(reply_key(from), header.xid, header.aux) } else { Begin::Run };
        match begin {
            Begin::Running => {}
            Begin::Replay(reply) => {
                inner.stats.replays.fetch_add(1, Ordering::Relaxed);
                let ep = self.clone();
                tokio::spawn(async move {
                    let _ = ep.inner.lnds().send(from, &[&reply]).await;
                });
            }
            Begin::Run => {
                let req = Request {
                    from,
                    xid: header.xid,
                    opcode: header.opcode,
                    resent: header.flags & FLAG_RESEND != 0,
                    bulk: BulkCtx { ep: self.clone(), peer: from },
                    msg,
                };
                let ep = self.clone();
                inner.stats.serving.fetch_add(1, Ordering::Relaxed);
                let job: Job = Box::pin(async move {
                    let started = Instant::now();
                    // A handler that panics answers EIO instead of leaving
                    // the client to time out, and the server keeps serving.
                    let response = CatchPanic(service.handle(req)).await.unwrap_or_else(|_| {
                        tracing::error!(peer = %from, xid = header.xid, opcode = header.opcode, "request handler panicked");
                        Err(Errno::EIO)
                    });
                    let took = started.elapsed();
                    latency.observe(header.opcode, || header.opcode.to_string(), took.as_secs_f64());
                    ep.inner.stats.requests_handled.fetch_add(1, Ordering::Relaxed);
                    ep.inner.stats.serving.fetch_sub(1, Ordering::Relaxed);
                    ep.send_reply(from, &header, response, took, cache).await;
                });
                self.dispatch(from, job);
            }
        }
    }

    /// Hands a request to a service thread of the peer's partition.
    fn dispatch(&self, from: ProcessId, job: Job) {
        let inner = &self.inner;
        let job = match inner.dispatch.get().and_then(Option::as_ref) {
            Some(d) => match d.submit(d.cpt_of(from), job) {
                Ok(()) => return,
                Err(job) => {
                    inner.stats.dispatch_overflows.fetch_add(1, Ordering::Relaxed);
                    job
                }
            },
            None => job,
        };
        inner.rt.spawn(job);
    }

    fn spawn_reply(&self, to: ProcessId, req: &RpcHeader, response: Response, took: Duration, cache: bool) {
        let ep = self.clone();
        let req = *req;
        tokio::spawn(async move { ep.send_reply(to, &req, response, took, cache).await });
    }

    async fn send_reply(
        &self,
        to: ProcessId,
        req: &RpcHeader,
        response: Response,
        took: Duration,
        cache: bool,
    ) {
        let (status, body) = match response {
            Ok(b) => (0, b),
            Err(e) => (e.0, Vec::new()),
        };
        let header = RpcHeader {
            version: RPC_VERSION,
            kind: Kind::Reply,
            flags: 0,
            portal: req.portal,
            opcode: req.opcode,
            status,
            xid: req.xid,
            aux: 0,
            last_committed: 0,
            service_us: took.as_micros().min(u32::MAX as u128) as u32,
            body_len: body.len() as u32,
        };
        let mut msg = Vec::with_capacity(RPC_HEADER_LEN + body.len());
        msg.extend_from_slice(&header.encode());
        msg.extend_from_slice(&body);
        let msg = Arc::new(msg);
        if cache {
            self.inner.replies.finish(reply_key(to), req.xid, msg.clone());
        }
        if let Err(e) = self.inner.lnds().send(to, &[&msg]).await {
            // The client resends and gets the cached reply.
            tracing::debug!(peer = %to, xid = req.xid, error = %e, "reply not delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resend_over_the_tcp_fallback_is_answered_from_the_record() {
        let cache = ReplyCache::default();
        let over_o2ib: ProcessId = ProcessId { nid: "10.0.0.7@o2ib".parse().unwrap(), pid: 42 };
        let over_tcp: ProcessId = ProcessId { nid: "10.0.0.7@tcp".parse().unwrap(), pid: 42 };
        assert!(matches!(cache.begin(reply_key(over_o2ib), 9, 9), Begin::Run));
        cache.finish(reply_key(over_o2ib), 9, Arc::new(vec![1, 2, 3]));
        match cache.begin(reply_key(over_tcp), 9, 9) {
            Begin::Replay(r) => assert_eq!(*r, vec![1, 2, 3]),
            _ => panic!("the resend over tcp would run the request again"),
        }
        let other_host: ProcessId = ProcessId { nid: "10.0.0.8@tcp".parse().unwrap(), pid: 42 };
        assert!(matches!(cache.begin(reply_key(other_host), 9, 9), Begin::Run));
    }
}
