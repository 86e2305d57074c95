//! The o2ib LND: glint's fabric over verbs, in the manner of o2iblnd.
//!
//! - A peer is connected with rdma_cm on the first send to it (or accepted
//!   by the listener); each side's first message is a hello naming it.
//! - Immediate messages go by SEND into the peer's pre-posted receive
//!   buffers under credits, and are handed up without a copy: the buffer
//!   is posted again when the message is dropped. The LND's own messages
//!   (hello, rkey requests and grants, NOOPs) have buffers and credits of
//!   their own, so messages the layer above holds never block them (see
//!   `credits`).
//! - Bulk is one-sided and driven by the side that calls `bulk_get` /
//!   `bulk_put` (the server). The handle the owner sent in its request
//!   carries the rkey of a registration of exactly the exposed range and
//!   direction (see `exposed`), so the server RDMA READs or WRITEs at
//!   once, straight between the two registered buffers, and the HCA
//!   refuses any other byte or direction. A handle without an rkey (its
//!   owner had no o2ib NI when it exposed the range) costs a round trip
//!   first: a BulkReq, which the owner checks against its exposures, and
//!   a grant of a cached registration. The server's own buffers are
//!   registered once and cached.
//! - One poller thread sleeps on the completion channel and the rdma_cm
//!   channels and hands completions on: messages to `Deliver`, bulk
//!   completions to the waiting futures.
//! - An error completion, a disconnect or a protocol error tears the
//!   connection down, fails what waited on it and calls `peer_down`.

use super::cm::connect_watched;
use super::exposed::ExposureKeys;
use super::peer::{Conn, GrantResult, Waiter, pump, try_post};
use super::reg_cache::{RegCache, RegCacheStats};
use super::stats::{O2ibStats, PeerStats};
use super::wire::{HEADER_LEN, Header, Hello, MsgType};
use super::{ConnConfig, Hca, Listener, O2ibError, RemoteBuf};
use crate::lnd::{BulkBuf, Deliver, Lnd, LndError, MAX_BULK, MAX_IMMEDIATE};
use crate::memory::{BulkError, BulkHandle, MemoryRegistry};
use crate::{Net, Nid, ProcessId};
use sideway::ibverbs::completion::CompletionChannel;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// o2iblnd's rdma_cm port.
pub const DEFAULT_PORT: u16 = 987;

/// The rdma_cm port every node of the file system uses: `GLINT_O2IB_PORT`
/// when set (as `GLINT_PORT` moves the tcp one), else 987.
pub fn cluster_port() -> u16 {
    std::env::var("GLINT_O2IB_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PORT)
}

/// How an o2ib NI is set up.
#[derive(Clone, Debug)]
pub struct O2ibConfig {
    /// The NI's NID; its address picks the RDMA device.
    pub nid: Nid,
    pub pid: u32,
    /// The rdma_cm port every node of the file system listens on.
    pub port: u16,
    /// Servers listen; a client only connects.
    pub listen: bool,
    /// Receive buffers posted per connection for messages to the layer
    /// above: the credits each side holds (both ends must agree).
    pub peer_credits: u16,
    /// Receive buffers posted per connection for the LND's own messages
    /// (hello, rkey requests and grants, NOOPs); both ends must agree.
    pub ctrl_credits: u16,
    /// Bulk transfers in flight per connection.
    pub rdma_slots: usize,
    pub connect_timeout: Duration,
    /// Bytes of registered memory the cache keeps beyond what is in use.
    pub reg_cache_bytes: usize,
}

impl O2ibConfig {
    pub fn new(nid: Nid, pid: u32, listen: bool) -> O2ibConfig {
        O2ibConfig {
            nid,
            pid,
            port: cluster_port(),
            listen,
            peer_credits: 16,
            ctrl_credits: 16,
            rdma_slots: 32,
            connect_timeout: Duration::from_secs(20),
            reg_cache_bytes: 512 << 20,
        }
    }

    /// One receive buffer: the largest immediate message and the header.
    pub fn msg_size(&self) -> usize {
        (MAX_IMMEDIATE + HEADER_LEN).div_ceil(4096) * 4096
    }
}

struct PeerSlot {
    stats: Arc<PeerStats>,
    conn: Mutex<Option<Arc<Conn>>>,
    incarnation: Mutex<Option<u64>>,
    connecting: tokio::sync::Mutex<()>,
}

pub(crate) struct Inner {
    pub(crate) cfg: O2ibConfig,
    pub(crate) hca: Arc<Hca>,
    pub(crate) incarnation: u64,
    pub(crate) registry: Arc<MemoryRegistry>,
    pub(crate) deliver: Arc<dyn Deliver>,
    pub(crate) regs: RegCache,
    pub(crate) comp_channel: Arc<CompletionChannel>,
    /// Dropped at shutdown, which stops listening.
    pub(crate) listener: Mutex<Option<Listener>>,
    /// Every live connection, by id.
    pub(crate) conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Live connections by completion queue, as channel events name them.
    pub(crate) by_cq: Mutex<HashMap<usize, Arc<Conn>>>,
    /// Connections the poller has not armed yet.
    pub(crate) fresh: Mutex<Vec<Arc<Conn>>>,
    peers: Mutex<HashMap<ProcessId, Arc<PeerSlot>>>,
    next_conn: AtomicU64,
    next_cookie: AtomicU64,
    pub(crate) stats: O2ibStats,
    /// Exposures of this node registered for RDMA, and those withdrawn.
    exposures_registered: Arc<AtomicU64>,
    exposures_deregistered: Arc<AtomicU64>,
    pub(crate) shutdown: AtomicBool,
    /// An eventfd that wakes the poller.
    pub(crate) wake: OwnedFd,
    pub(crate) rt: tokio::runtime::Handle,
}

/// An o2ib network interface.
#[derive(Clone)]
pub struct O2ibLnd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for O2ibLnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("O2ibLnd").field("nid", &self.inner.cfg.nid).field("hca", &self.inner.hca).finish()
    }
}

fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ ((std::process::id() as u64) << 32)
}

fn eventfd() -> Result<OwnedFd, O2ibError> {
    // SAFETY: eventfd creates a new descriptor or fails.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(O2ibError::call("eventfd", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Inner {
    pub(crate) fn wake_poller(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    }

    pub(crate) fn conn_config(&self) -> ConnConfig {
        let depth = usize::from(self.cfg.peer_credits) + usize::from(self.cfg.ctrl_credits);
        ConnConfig {
            msg_size: self.cfg.msg_size(),
            recv_slots: depth,
            // Sends are bounded by credits; a few more cover completions
            // not yet polled when credits are already back.
            send_slots: depth + 4,
            rdma_slots: self.cfg.rdma_slots,
            timeout: self.cfg.connect_timeout,
            comp_channel: Some(self.comp_channel.clone()),
        }
    }

    fn peer_slot(&self, id: ProcessId) -> Arc<PeerSlot> {
        self.peers
            .lock()
            .expect("peers lock")
            .entry(id)
            .or_insert_with(|| {
                Arc::new(PeerSlot {
                    stats: Arc::new(PeerStats::default()),
                    conn: Mutex::new(None),
                    incarnation: Mutex::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Names the peer at the other end of `conn`, so what moves on it is
    /// counted as that peer's.
    pub(crate) fn bind_peer(&self, conn: &Conn, peer: ProcessId) {
        let _ = conn.peer.set(peer);
        let _ = conn.stats.set(self.peer_slot(peer).stats.clone());
    }

    fn current(&self, id: ProcessId) -> Option<Arc<Conn>> {
        let slot = self.peers.lock().expect("peers lock").get(&id).cloned()?;
        let conn = slot.conn.lock().expect("peer lock").clone()?;
        (!conn.is_dead()).then_some(conn)
    }

    /// Hands a new connection to the poller.
    pub(crate) fn adopt(&self, conn: Arc<Conn>) {
        self.conns.lock().expect("conns lock").insert(conn.id, conn.clone());
        self.by_cq.lock().expect("by_cq lock").insert(conn.cq_key, conn.clone());
        self.fresh.lock().expect("fresh lock").push(conn);
        self.wake_poller();
    }

    pub(crate) fn new_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes `conn` the one messages to `peer` go on: the newest hello
    /// names the freshest path. A peer that restarted (a new incarnation)
    /// loses its old connection; an older live connection of the same
    /// incarnation (both sides dialed at once, or a reconnect the peer made
    /// before this side saw the old one go) stays up and keeps receiving.
    pub(crate) fn install(&self, peer: ProcessId, conn: &Arc<Conn>, incarnation: u64) {
        let slot = self.peer_slot(peer);
        let mut cur = slot.conn.lock().expect("peer lock");
        let mut inc = slot.incarnation.lock().expect("peer lock");
        let restarted = inc.is_some_and(|i| i != incarnation);
        if conn.is_dead() {
            return;
        }
        if inc.is_some() {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let old = cur.replace(conn.clone());
        *inc = Some(incarnation);
        drop(inc);
        drop(cur);
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, conn = conn.id, active = conn.active, "o2ib connection up");
        if let Some(old) = old
            && restarted
        {
            tracing::info!(%peer, "o2ib peer restarted; dropping its old connection");
            self.teardown(&old, "peer restarted");
        }
    }

    /// Ends `conn`: its queue pair is destroyed, what waited on it fails,
    /// and the layer above hears the peer is down.
    pub(crate) fn teardown(&self, conn: &Arc<Conn>, why: &str) {
        let Some(remains) = conn.kill() else { return };
        self.conns.lock().expect("conns lock").remove(&conn.id);
        self.by_cq.lock().expect("by_cq lock").remove(&conn.cq_key);
        self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
        let peer = conn.peer.get().copied();
        match peer {
            Some(peer) => {
                tracing::info!(%peer, conn = conn.id, reason = why, "o2ib connection closed");
                remains.fail(peer);
                if let Some(slot) = self.peers.lock().expect("peers lock").get(&peer).cloned() {
                    let mut cur = slot.conn.lock().expect("peer lock");
                    if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                        // Another live connection of the same peer, if
                        // any, carries its messages from now on.
                        *cur = self
                            .conns
                            .lock()
                            .expect("conns lock")
                            .values()
                            .find(|c| {
                                !c.is_dead()
                                    && c.peer.get() == Some(&peer)
                                    && c.incarnation.get() == conn.incarnation.get()
                            })
                            .cloned();
                    }
                }
                self.deliver.peer_down(peer);
            }
            None => {
                tracing::debug!(conn = conn.id, reason = why, "o2ib connection closed before its hello");
                remains.fail(ProcessId { nid: self.cfg.nid, pid: 0 });
            }
        }
        // The active side's rdma_cm channel leaves the poller's set.
        self.wake_poller();
    }

    /// Queues a control message and sends what credits allow.
    pub(crate) fn queue_ctrl(&self, conn: &Arc<Conn>, h: Header, body: Vec<u8>) {
        let mut st = conn.lock();
        if st.verbs.is_none() {
            return;
        }
        st.ctrl.push_back((h, body));
        if let Err(e) = pump(&mut st) {
            drop(st);
            self.teardown(conn, &format!("send failed: {e}"));
        }
    }

    pub(crate) fn hello(&self) -> Hello {
        Hello {
            nid: self.cfg.nid,
            pid: self.cfg.pid,
            incarnation: self.incarnation,
            queue_depth: self.cfg.peer_credits,
            ctrl_depth: self.cfg.ctrl_credits,
            msg_size: self.cfg.msg_size() as u32,
        }
    }

    /// Whether a peer's hello describes a connection this node can run.
    pub(crate) fn check_hello(&self, hello: &Hello) -> Result<(), String> {
        let theirs = (hello.queue_depth, hello.ctrl_depth, hello.msg_size as usize);
        let ours = (self.cfg.peer_credits, self.cfg.ctrl_credits, self.cfg.msg_size());
        if theirs != ours {
            return Err(format!(
                "peer {} runs (credits, control credits, message size) {theirs:?}, this node {ours:?}",
                hello.id()
            ));
        }
        Ok(())
    }

    /// The live connection to `peer`, dialing it if there is none.
    async fn connection(self: &Arc<Self>, peer: ProcessId) -> Result<Arc<Conn>, LndError> {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(LndError::Shutdown);
        }
        if let Some(c) = self.current(peer) {
            return Ok(c);
        }
        let slot = self.peer_slot(peer);
        let _one = slot.connecting.lock().await;
        if let Some(c) = self.current(peer) {
            return Ok(c);
        }
        let unreachable = |reason: String| LndError::Unreachable { peer, reason };
        let dst = SocketAddr::new(peer.nid.addr, self.cfg.port);
        let hca = self.hca.clone();
        let cfg = self.conn_config();
        let (verbs, channel) = tokio::task::spawn_blocking(move || connect_watched(&hca, dst, &cfg))
            .await
            .map_err(|e| unreachable(format!("connect task: {e}")))?
            .map_err(|e| unreachable(format!("o2ib connect to {dst}: {e}")))?;
        let conn = Conn::new(
            self.new_conn_id(),
            verbs,
            Some(channel),
            true,
            self.cfg.peer_credits,
            self.cfg.ctrl_credits,
        );
        // Known before the hello, so a message that follows the peer's hello
        // at once is handed up with its sender.
        self.bind_peer(&conn, peer);
        let (tx, rx) = tokio::sync::oneshot::channel();
        *conn.hello_tx.lock().expect("hello lock") = Some(tx);
        self.adopt(conn.clone());
        let hello = self.hello().encode();
        self.queue_ctrl(&conn, Header::new(MsgType::Hello), hello);
        let theirs = match tokio::time::timeout(self.cfg.connect_timeout, rx).await {
            Ok(Ok(h)) => h,
            Ok(Err(_)) => {
                self.teardown(&conn, "no hello");
                return Err(unreachable("connection closed before the peer's hello".into()));
            }
            Err(_) => {
                self.teardown(&conn, "no hello");
                return Err(unreachable(format!("no hello within {:?}", self.cfg.connect_timeout)));
            }
        };
        if theirs.id() != peer {
            self.teardown(&conn, "wrong peer");
            return Err(unreachable(format!("{dst} is {}, not {peer}", theirs.id())));
        }
        if let Err(why) = self.check_hello(&theirs) {
            self.teardown(&conn, &why);
            return Err(unreachable(why));
        }
        let _ = conn.incarnation.set(theirs.incarnation);
        self.install(peer, &conn, theirs.incarnation);
        if conn.is_dead() {
            return Err(LndError::ConnectionLost { peer });
        }
        Ok(conn)
    }

    /// Posts one message under credits, waiting for a credit and a send
    /// buffer.
    async fn post(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        peer: ProcessId,
        h: Header,
        parts: &[&[u8]],
    ) -> Result<(), LndError> {
        loop {
            let notified = conn.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = conn.lock();
                if st.verbs.is_none() {
                    return Err(LndError::ConnectionLost { peer });
                }
                let posted = pump(&mut st)
                    .and_then(|()| if st.ctrl.is_empty() { try_post(&mut st, h, parts) } else { Ok(false) });
                match posted {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(e) => {
                        drop(st);
                        self.teardown(conn, &format!("send failed: {e}"));
                        return Err(LndError::ConnectionLost { peer });
                    }
                }
            }
            notified.await;
        }
    }

    /// RDMA between `buf[off..off+remote.len]` and the peer's `remote`
    /// range: READ for `bulk_get`, WRITE for `bulk_put`.
    async fn bulk<B: BulkBuf>(
        self: &Arc<Self>,
        write: bool,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> (B, Result<(), LndError>) {
        let len = remote.len as usize;
        if len > MAX_BULK || off.checked_add(len).is_none_or(|e| e > buf.io().len()) {
            let err = BulkError::LengthMismatch { local: buf.io().len(), remote: remote.len };
            return (buf, Err(err.into()));
        }
        if len == 0 {
            return (buf, Ok(()));
        }
        let conn = match self.connection(peer).await {
            Ok(c) => c,
            Err(e) => return (buf, Err(e)),
        };
        let local = match self.regs.for_region(buf.io().region()) {
            Ok(r) => r,
            Err(e) => return (buf, Err(LndError::Io(std::io::Error::other(e.to_string())))),
        };
        let local_off = (buf.io().addr() - local.addr()) as usize + off;
        let cookie = self.next_cookie.fetch_add(1, Ordering::Relaxed);
        let rkey = match remote.rkey {
            // The handle carries its registration: the HCA checks it.
            Some(rkey) => rkey,
            None => match self.grant(&conn, peer, cookie, write, remote).await {
                Ok(rkey) => rkey,
                Err(e) => return (buf, Err(e)),
            },
        };
        self.rdma(
            conn,
            write,
            peer,
            cookie,
            &local,
            local_off,
            RemoteBuf { addr: remote.addr, len: len as u32, rkey },
            buf,
        )
        .await
    }

    /// Asks the owner of `remote` for an rkey covering it (a handle made
    /// before the owner had an o2ib NI carries none); the owner checks key,
    /// range and direction against its exposures.
    async fn grant(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        peer: ProcessId,
        cookie: u64,
        write: bool,
        remote: BulkHandle,
    ) -> Result<u32, LndError> {
        let (gtx, grx) = tokio::sync::oneshot::channel::<GrantResult>();
        {
            let mut st = conn.lock();
            if st.verbs.is_none() {
                return Err(LndError::ConnectionLost { peer });
            }
            st.grants.insert(cookie, gtx);
        }
        let mut req = Header::new(MsgType::BulkReq);
        req.cookie = cookie;
        req.key = remote.key;
        req.addr = remote.addr;
        req.blen = remote.len;
        req.status = i32::from(write);
        if let Err(e) = self.post(conn, peer, req, &[]).await {
            conn.lock().grants.remove(&cookie);
            return Err(e);
        }
        match grx.await {
            Ok(Ok(rkey)) => Ok(rkey),
            Ok(Err(errno)) => Err(LndError::BulkRefused { peer, errno }),
            Err(_) => Err(LndError::ConnectionLost { peer }),
        }
    }

    /// Posts the RDMA READ (`write` false) or WRITE between
    /// `local[local_off..]` and `target` when an RDMA slot is free, and
    /// waits for its completion.
    #[allow(clippy::too_many_arguments)]
    async fn rdma<B: BulkBuf>(
        self: &Arc<Self>,
        conn: Arc<Conn>,
        write: bool,
        peer: ProcessId,
        cookie: u64,
        local: &Arc<super::Registration>,
        local_off: usize,
        target: RemoteBuf,
        buf: B,
    ) -> (B, Result<(), LndError>) {
        let len = target.len;
        let (waiter, rx) = Waiter::new(buf, peer);
        let mut waiter = Some(waiter);
        loop {
            let notified = conn.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = conn.lock();
                let Some(verbs) = st.verbs.as_mut() else {
                    let buf = waiter.take().expect("waiter until posted").into_buf();
                    return (buf, Err(LndError::ConnectionLost { peer }));
                };
                if verbs.free_rdma_slots() > 0 {
                    let posted = if write {
                        verbs.post_write(cookie, local, local_off, target)
                    } else {
                        verbs.post_read(cookie, local, local_off, target)
                    };
                    match posted {
                        Ok(()) => {
                            st.rdma.insert(cookie, Box::new(waiter.take().expect("waiter until posted")));
                            break;
                        }
                        Err(e) => {
                            drop(st);
                            self.teardown(&conn, &format!("RDMA post failed: {e}"));
                            let buf = waiter.take().expect("waiter until posted").into_buf();
                            return (buf, Err(LndError::ConnectionLost { peer }));
                        }
                    }
                }
            }
            notified.await;
        }
        let done = rx.await.expect("a bulk waiter always answers");
        match &done.1 {
            Ok(()) => {
                let counter = if write { &self.stats.rdma_write_bytes } else { &self.stats.rdma_read_bytes };
                counter.fetch_add(u64::from(len), Ordering::Relaxed);
                if let Some(p) = conn.stats.get() {
                    let counter = if write { &p.rdma_write_bytes } else { &p.rdma_read_bytes };
                    counter.fetch_add(u64::from(len), Ordering::Relaxed);
                }
            }
            Err(LndError::BulkRefused { .. }) => {
                self.stats.rdma_refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        done
    }
}

impl O2ibLnd {
    /// Starts the NI on the RDMA device that serves `cfg.nid`'s address,
    /// listening when configured to. `NoRdmaDevice` on a node without one
    /// (or without rdma-core): the node then simply has no o2ib NI.
    pub async fn start(
        cfg: O2ibConfig,
        registry: Arc<MemoryRegistry>,
        deliver: Arc<dyn Deliver>,
    ) -> Result<O2ibLnd, O2ibError> {
        if cfg.peer_credits.min(cfg.ctrl_credits) < super::credits::MIN_DEPTH {
            return Err(O2ibError::BadConfig(format!(
                "peer_credits and ctrl_credits must be at least {}",
                super::credits::MIN_DEPTH
            )));
        }
        let rt = tokio::runtime::Handle::current();
        let setup = cfg.clone();
        let (hca, comp_channel) = tokio::task::spawn_blocking(move || {
            let hca = Hca::for_address(setup.nid.addr)?;
            let channel = CompletionChannel::new(hca.context())
                .map_err(|e| O2ibError::call("ibv_create_comp_channel", e))?;
            channel.set_nonblocking(true).map_err(|e| O2ibError::call("comp channel non-blocking", e))?;
            Ok::<_, O2ibError>((hca, channel))
        })
        .await
        .map_err(|e| O2ibError::call("o2ib setup task", std::io::Error::other(e.to_string())))??;
        let mut inner = Inner {
            regs: RegCache::new(hca.clone(), cfg.reg_cache_bytes),
            hca,
            incarnation: incarnation(),
            registry,
            deliver,
            comp_channel,
            listener: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            by_cq: Mutex::new(HashMap::new()),
            fresh: Mutex::new(Vec::new()),
            peers: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            next_cookie: AtomicU64::new(1),
            stats: O2ibStats::default(),
            exposures_registered: Arc::new(AtomicU64::new(0)),
            exposures_deregistered: Arc::new(AtomicU64::new(0)),
            shutdown: AtomicBool::new(false),
            wake: eventfd()?,
            rt,
            cfg,
        };
        if inner.cfg.listen {
            let addr = SocketAddr::new(inner.cfg.nid.addr, inner.cfg.port);
            inner.listener = Mutex::new(Some(Listener::bind(&inner.hca, addr, inner.conn_config())?));
        }
        let keys = ExposureKeys {
            hca: inner.hca.clone(),
            registered: inner.exposures_registered.clone(),
            deregistered: inner.exposures_deregistered.clone(),
        };
        if !inner.registry.set_remote_keys(Arc::new(keys)) {
            tracing::warn!(nid = %inner.cfg.nid, "another o2ib NI registers this registry's exposures; peers of this one ask for rkeys");
        }
        let inner = Arc::new(inner);
        let poller = inner.clone();
        std::thread::Builder::new()
            .name(format!("o2ib-poll-{}", inner.cfg.nid))
            .spawn(move || super::poller::run(poller))
            .map_err(|e| O2ibError::call("spawn the o2ib poller", e))?;
        tracing::info!(nid = %inner.cfg.nid, device = inner.hca.name(), listen = inner.cfg.listen, "o2ib NI up");
        Ok(O2ibLnd { inner })
    }

    pub fn stats(&self) -> &O2ibStats {
        &self.inner.stats
    }

    /// Exposures of this node registered for RDMA so far, and how many of
    /// them were withdrawn and deregistered.
    pub fn exposure_registrations(&self) -> (u64, u64) {
        (
            self.inner.exposures_registered.load(Ordering::Relaxed),
            self.inner.exposures_deregistered.load(Ordering::Relaxed),
        )
    }

    pub fn reg_cache_stats(&self) -> RegCacheStats {
        self.inner.regs.stats()
    }

    pub fn device(&self) -> &str {
        self.inner.hca.name()
    }

    pub fn port(&self) -> u16 {
        self.inner.cfg.port
    }

    /// The peers with a live connection.
    pub fn connected_peers(&self) -> Vec<ProcessId> {
        let peers = self.inner.peers.lock().expect("peers lock");
        let mut v: Vec<ProcessId> = peers
            .iter()
            .filter(|(_, s)| s.conn.lock().expect("peer lock").as_ref().is_some_and(|c| !c.is_dead()))
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// Every peer this NI has been connected to, with what it exchanged
    /// with each.
    pub fn peer_stats(&self) -> Vec<(ProcessId, Arc<PeerStats>)> {
        let peers = self.inner.peers.lock().expect("peers lock");
        let mut v: Vec<_> = peers.iter().map(|(id, s)| (*id, s.stats.clone())).collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// Credits held for sending to `peer` now (None when not connected).
    pub fn peer_credits(&self, peer: ProcessId) -> Option<u32> {
        self.inner.current(peer).map(|c| c.lock().credits.msg.have())
    }

    /// NOOPs sent to `peer` on its current connection, to return credits.
    pub fn noops_sent(&self, peer: ProcessId) -> Option<u64> {
        self.inner.current(peer).map(|c| c.lock().noops)
    }

    /// Drops the connection to `peer`, as a network failure would.
    pub fn disconnect(&self, peer: ProcessId) {
        if let Some(c) = self.inner.current(peer) {
            self.inner.teardown(&c, "disconnected locally");
        }
    }
}

impl Lnd for O2ibLnd {
    fn net(&self) -> Net {
        self.inner.cfg.nid.net
    }

    fn nid(&self) -> Nid {
        self.inner.cfg.nid
    }

    async fn send(&self, peer: ProcessId, parts: &[&[u8]]) -> Result<(), LndError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_IMMEDIATE {
            return Err(LndError::TooLarge { len, max: MAX_IMMEDIATE });
        }
        // A message goes out of at most three pieces; more are joined.
        let joined: Vec<u8>;
        let one: [&[u8]; 1];
        let parts = if parts.len() > 3 {
            joined = parts.concat();
            one = [joined.as_slice()];
            &one[..]
        } else {
            parts
        };
        let conn = self.inner.connection(peer).await?;
        self.inner.post(&conn, peer, Header::new(MsgType::Msg), parts).await?;
        self.inner.stats.tx_msgs.fetch_add(1, Ordering::Relaxed);
        self.inner.stats.tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        if let Some(p) = conn.stats.get() {
            p.sent(len);
        }
        Ok(())
    }

    async fn bulk_get<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> (B, Result<(), LndError>) {
        self.inner.bulk(false, peer, remote, buf, off).await
    }

    async fn bulk_put<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> (B, Result<(), LndError>) {
        self.inner.bulk(true, peer, remote, buf, off).await
    }

    fn shutdown(&self) {
        if self.inner.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        drop(self.inner.listener.lock().expect("listener lock").take());
        let conns: Vec<Arc<Conn>> = self.inner.conns.lock().expect("conns lock").values().cloned().collect();
        for c in conns {
            self.inner.teardown(&c, "shutdown");
        }
        self.inner.wake_poller();
    }
}
