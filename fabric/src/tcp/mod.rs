//! The tcp LND: glint's fabric over sockets, in the manner of socklnd.
//!
//! Each peer gets a connection set made by the side that sends first: one
//! control connection for immediate messages and `bulk_conns` connections
//! for bulk data, so a 1 MiB transfer never sits in front of a small RPC.
//! Bulk follows RDMA's shape: the server asks for a client's exposed range
//! (GetReq, answered by GetData) or pushes into it (PutData, answered by
//! PutDone), and the client's LND checks every byte against its registry.

mod conn;
mod frame;
mod hello;

pub use frame::{FrameError, FrameType, HEADER_LEN, Header};

use crate::lnd::{BulkBuf, Deliver, Lnd, LndError, MAX_BULK, MAX_IMMEDIATE};
use crate::memory::{BulkHandle, MemoryRegistry};
use crate::{Net, Nid, ProcessId};
use conn::{ConnSet, Pending, Sink};
use crossbeam_queue::ArrayQueue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// socklnd's accept port.
pub const DEFAULT_PORT: u16 = 988;

/// The port every node of the file system uses: `GLINT_PORT` when set
/// (a file system run on another port, e.g. beside a real Lustre), else 988.
pub fn cluster_port() -> u16 {
    std::env::var("GLINT_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PORT)
}

/// How a tcp NI is set up.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    pub nid: Nid,
    pub pid: u32,
    /// The port every node of the file system listens on.
    pub port: u16,
    /// Servers listen; a client only connects.
    pub listen: bool,
    /// Immediate messages in flight to one peer.
    pub peer_credits: u16,
    pub bulk_conns: usize,
    pub connect_timeout: Duration,
}

impl TcpConfig {
    pub fn new(nid: Nid, pid: u32, listen: bool) -> TcpConfig {
        TcpConfig {
            nid,
            pid,
            port: cluster_port(),
            listen,
            peer_credits: 8,
            bulk_conns: 2,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of one tcp NI.
#[derive(Default, Debug)]
pub struct TcpStats {
    pub tx_msgs: AtomicU64,
    pub rx_msgs: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub bulk_tx_bytes: AtomicU64,
    pub bulk_rx_bytes: AtomicU64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub bulk_refused: AtomicU64,
    pub frames_refused: AtomicU64,
    /// Connections set up to a peer that had been connected before.
    pub reconnects: AtomicU64,
    /// Frames whose crc32c did not match (counted in frames_refused too).
    pub checksum_errors: AtomicU64,
}

/// Counters of the traffic with one peer, kept across its connections.
#[derive(Default, Debug)]
pub struct PeerStats {
    pub tx_msgs: AtomicU64,
    pub rx_msgs: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub bulk_tx_bytes: AtomicU64,
    pub bulk_rx_bytes: AtomicU64,
    pub connects: AtomicU64,
}

struct Peer {
    set: Mutex<Option<Arc<ConnSet>>>,
    connecting: tokio::sync::Mutex<()>,
    stats: Arc<PeerStats>,
}

pub(crate) struct Inner {
    cfg: TcpConfig,
    incarnation: u64,
    registry: Arc<MemoryRegistry>,
    deliver: Arc<dyn Deliver>,
    peers: Mutex<HashMap<ProcessId, Arc<Peer>>>,
    /// Connection sets still being assembled by the passive side.
    assembling: Mutex<HashMap<(ProcessId, u64), hello::Partial>>,
    msg_bufs: ArrayQueue<Vec<u8>>,
    next_cookie: AtomicU64,
    next_set: AtomicU64,
    stats: TcpStats,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The runtime the NI started on. Sockets are made and their tasks run
    /// there, even when the first send comes from a service thread's own
    /// runtime, so no connection depends on a runtime that may stop first.
    rt: tokio::runtime::Handle,
    /// Where each peer's sockets are read, when not on `rt`.
    placement: std::sync::OnceLock<Placement>,
}

/// Chooses the runtime that reads a peer's sockets (None: the NI's own).
pub type Placement = Box<dyn Fn(ProcessId) -> Option<tokio::runtime::Handle> + Send + Sync>;

/// A tcp network interface.
#[derive(Clone)]
pub struct TcpLnd {
    inner: Arc<Inner>,
}

impl Inner {
    fn peer(&self, id: ProcessId) -> Arc<Peer> {
        self.peers
            .lock()
            .expect("peers lock")
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Peer {
                    set: Mutex::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                    stats: Arc::default(),
                })
            })
            .clone()
    }

    fn current(&self, id: ProcessId) -> Option<Arc<ConnSet>> {
        let peer = self.peers.lock().expect("peers lock").get(&id).cloned()?;
        let set = peer.set.lock().expect("peer lock").clone()?;
        (!set.is_dead()).then_some(set)
    }

    /// Makes `set` the peer's live connection set, killing any older one.
    fn install(self: &Arc<Self>, set: Arc<ConnSet>) {
        let peer = self.peer(set.peer);
        let old = peer.set.lock().expect("peer lock").replace(set.clone());
        if let Some(old) = old
            && old.mark_dead()
        {
            self.connection_lost(&old);
        }
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        if peer.stats.connects.fetch_add(1, Ordering::Relaxed) > 0 {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(peer = %set.peer, set = set.set_id, "connection set up");
        tokio::spawn(set.clone().credit_returner());
    }

    fn connection_lost(&self, set: &Arc<ConnSet>) {
        if set.loss_reported.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
        if let Some(peer) = self.peers.lock().expect("peers lock").get(&set.peer).cloned() {
            let mut cur = peer.set.lock().expect("peer lock");
            if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, set)) {
                *cur = None;
            }
        }
        self.deliver.peer_down(set.peer);
    }

    /// The live connection set to `id`, connecting if there is none.
    async fn connection(self: &Arc<Self>, id: ProcessId) -> Result<Arc<ConnSet>, LndError> {
        if *self.shutdown.borrow() {
            return Err(LndError::Shutdown);
        }
        if let Some(set) = self.current(id) {
            return Ok(set);
        }
        let peer = self.peer(id);
        let _one = peer.connecting.lock().await;
        if let Some(set) = self.current(id) {
            return Ok(set);
        }
        let lnd = self.clone();
        let made = self.rt.spawn(async move {
            let (set, readers) = hello::connect(&lnd, id).await?;
            lnd.install(set.clone());
            hello::start_readers(&lnd, &set, readers);
            Ok(set)
        });
        made.await.unwrap_or(Err(LndError::Shutdown))
    }

    fn cookie(&self) -> u64 {
        self.next_cookie.fetch_add(1, Ordering::Relaxed)
    }
}

impl TcpLnd {
    /// Starts the NI: binds the listener when configured to listen.
    pub async fn start(
        cfg: TcpConfig,
        registry: Arc<MemoryRegistry>,
        deliver: Arc<dyn Deliver>,
    ) -> std::io::Result<TcpLnd> {
        let listener = if cfg.listen {
            let l = TcpListener::bind(cfg.nid.socket_addr(cfg.port)).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {}:{}: {e}", cfg.nid.addr, cfg.port))
            })?;
            Some(l)
        } else {
            None
        };
        let bufs = ArrayQueue::new(1024);
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            incarnation: hello::incarnation(),
            cfg,
            registry,
            deliver,
            peers: Mutex::new(HashMap::new()),
            assembling: Mutex::new(HashMap::new()),
            msg_bufs: bufs,
            next_cookie: AtomicU64::new(1),
            next_set: AtomicU64::new(1),
            stats: TcpStats::default(),
            shutdown,
            rt: tokio::runtime::Handle::current(),
            placement: std::sync::OnceLock::new(),
        });
        if let Some(l) = listener {
            tokio::spawn(hello::accept_loop(inner.clone(), l));
        }
        Ok(TcpLnd { inner })
    }

    pub fn stats(&self) -> &TcpStats {
        &self.inner.stats
    }

    /// Reads the sockets of connections made from now on where `place`
    /// says (set once; later calls are ignored).
    pub fn set_placement(&self, place: Placement) {
        let _ = self.inner.placement.set(place);
    }

    pub fn port(&self) -> u16 {
        self.inner.cfg.port
    }

    /// The peers with a live connection set.
    pub fn connected_peers(&self) -> Vec<ProcessId> {
        let peers = self.inner.peers.lock().expect("peers lock");
        let mut v: Vec<ProcessId> = peers
            .iter()
            .filter(|(_, p)| p.set.lock().expect("peer lock").as_ref().is_some_and(|s| !s.is_dead()))
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// The traffic counters of every peer this NI has known.
    pub fn peer_stats(&self) -> Vec<(ProcessId, Arc<PeerStats>)> {
        let peers = self.inner.peers.lock().expect("peers lock");
        let mut v: Vec<_> = peers.iter().map(|(id, p)| (*id, p.stats.clone())).collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// Credits available for sending to `peer` now (None when not connected).
    pub fn peer_credits(&self, peer: ProcessId) -> Option<usize> {
        self.inner.current(peer).map(|s| s.credits.available_permits())
    }

    /// Drops the connection to `peer`, as a network failure would.
    pub fn disconnect(&self, peer: ProcessId) {
        if let Some(set) = self.inner.current(peer)
            && set.mark_dead()
        {
            self.inner.connection_lost(&set);
        }
    }
}

impl Lnd for TcpLnd {
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
        let set = self.inner.connection(peer).await?;
        set.send_msg(parts).await?;
        self.inner.stats.tx_msgs.fetch_add(1, Ordering::Relaxed);
        self.inner.stats.tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        set.stats.tx_msgs.fetch_add(1, Ordering::Relaxed);
        set.stats.tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn bulk_get<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> (B, Result<(), LndError>) {
        let len = remote.len as usize;
        if len > MAX_BULK || off.checked_add(len).is_none_or(|e| e > buf.io().len()) {
            let err = crate::memory::BulkError::LengthMismatch { local: buf.io().len(), remote: remote.len };
            return (buf, Err(err.into()));
        }
        let set = match self.inner.connection(peer).await {
            Ok(s) => s,
            Err(e) => return (buf, Err(e)),
        };
        let cookie = self.inner.cookie();
        let (sink, rx) = Sink::new(buf, off, len, peer);
        // A refused registration drops the sink, which answers `rx`.
        if set.register(cookie, Pending::Get(Box::new(sink))).is_ok()
            && let Err(e) = set.send_get_req(cookie, remote.key, remote.addr, remote.len as u32).await
            && let Some(Pending::Get(sink)) = set.unregister(cookie)
        {
            sink.complete(Err(e));
        }
        rx.await.expect("a sink always answers")
    }

    async fn bulk_put<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> (B, Result<(), LndError>) {
        let len = remote.len as usize;
        if len > MAX_BULK || off.checked_add(len).is_none_or(|e| e > buf.io().len()) {
            let err = crate::memory::BulkError::LengthMismatch { local: buf.io().len(), remote: remote.len };
            return (buf, Err(err.into()));
        }
        let set = match self.inner.connection(peer).await {
            Ok(s) => s,
            Err(e) => return (buf, Err(e)),
        };
        let cookie = self.inner.cookie();
        let (tx, rx) = oneshot::channel();
        if set.register(cookie, Pending::Put(tx)).is_err() {
            return (buf, Err(LndError::ConnectionLost { peer }));
        }
        let data = &buf.io().as_slice()[off..off + len];
        if let Err(e) = set.send_put(cookie, remote.key, remote.addr, data).await {
            set.unregister(cookie);
            return (buf, Err(e));
        }
        self.inner.stats.bulk_tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        set.stats.bulk_tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        let r = rx.await.unwrap_or(Err(LndError::ConnectionLost { peer }));
        (buf, r)
    }

    fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let sets: Vec<Arc<ConnSet>> = self
            .inner
            .peers
            .lock()
            .expect("peers lock")
            .values()
            .filter_map(|p| p.set.lock().expect("peer lock").clone())
            .collect();
        for s in sets {
            s.mark_dead();
        }
    }
}
