//! Which LND carries a message: the endpoint's tcp NI, and its o2ib NI
//! when the config names one and this host has an RDMA device.
//!
//! A peer named by an o2ib NID is reached over o2ib. When that cannot be
//! although this node is configured with an o2ib NI (no local RDMA device
//! or rdma-core, o2ib switched off for the peer, or the o2ib connection to
//! it failed) the message goes over tcp to the same address on the local
//! tcp network, as IPoIB and RoCE interfaces carry both; the fallback is
//! logged, counted and shown per peer. A failed peer is tried over o2ib
//! again after a while. A node with no o2ib NI configured has no route to
//! an o2ib NID, as in LNet.

use crate::lnd::{BulkBuf, Deliver, Lnd, LndError};
use crate::memory::{BulkHandle, MemoryRegistry};
use crate::o2ib::{O2ibConfig, O2ibError, O2ibLnd};
use crate::tcp::{TcpConfig, TcpLnd};
use crate::{NetType, Nid, ProcessId};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a peer whose o2ib connection failed is reached over tcp before
/// o2ib is tried again.
pub const O2IB_RETRY: Duration = Duration::from_secs(60);

/// Why a peer on an o2ib network is reached over tcp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FallbackCause {
    /// This node's o2ib NI did not come up (no RDMA device, no rdma-core).
    NoRdmaDevice(String),
    /// o2ib was switched off for this peer.
    SwitchedOff,
    /// Connecting to the peer over o2ib failed.
    ConnectFailed(String),
}

impl fmt::Display for FallbackCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackCause::NoRdmaDevice(d) => write!(f, "no RDMA device ({d})"),
            FallbackCause::SwitchedOff => f.write_str("o2ib switched off for this peer"),
            FallbackCause::ConnectFailed(e) => write!(f, "o2ib connection failed: {e}"),
        }
    }
}

/// How one peer NID is reached, as `lnetctl peer show` tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRoute {
    /// The NID the peer was named by.
    pub peer: Nid,
    /// The NID messages go to.
    pub via: Nid,
    pub fallback: Option<FallbackCause>,
    /// Messages sent over tcp to this o2ib peer.
    pub fallbacks: u64,
}

struct Off {
    cause: FallbackCause,
    since: Instant,
}

#[derive(Default)]
struct PeerState {
    off: Option<Off>,
    fallbacks: u64,
    via: Option<Nid>,
}

/// The LNDs of one endpoint.
pub(crate) struct Lnds {
    tcp: TcpLnd,
    o2ib: Option<O2ibLnd>,
    /// Why the configured o2ib NI is not running.
    o2ib_down: Option<String>,
    peers: Mutex<HashMap<Nid, PeerState>>,
    shut_down: AtomicBool,
}

impl Lnds {
    /// Starts the tcp NI, and the o2ib NI if one is configured and this
    /// host can run it; a host without RDMA runs tcp only and says why.
    pub(crate) async fn start(
        tcp: TcpConfig,
        o2ib: Option<O2ibConfig>,
        registry: Arc<MemoryRegistry>,
        inbox: Arc<dyn Deliver>,
    ) -> std::io::Result<Lnds> {
        let tcp = TcpLnd::start(tcp, registry.clone(), inbox.clone()).await?;
        let (o2ib, o2ib_down) = match o2ib {
            None => (None, None),
            Some(cfg) => {
                let nid = cfg.nid;
                match O2ibLnd::start(cfg, registry, inbox).await {
                    Ok(lnd) => (Some(lnd), None),
                    Err(O2ibError::NoRdmaDevice) => {
                        tracing::warn!(%nid, "no RDMA device: the o2ib NI is down, o2ib peers are reached over tcp");
                        (None, Some("no RDMA device".to_owned()))
                    }
                    Err(e) => {
                        tracing::warn!(%nid, error = %e, "the o2ib NI did not start; o2ib peers are reached over tcp");
                        (None, Some(e.to_string()))
                    }
                }
            }
        };
        Ok(Lnds {
            tcp,
            o2ib,
            o2ib_down,
            peers: Mutex::new(HashMap::new()),
            shut_down: AtomicBool::new(false),
        })
    }

    pub(crate) fn tcp(&self) -> &TcpLnd {
        &self.tcp
    }

    pub(crate) fn o2ib(&self) -> Option<&O2ibLnd> {
        self.o2ib.as_ref()
    }

    /// Why the configured o2ib NI is down, if it is.
    pub(crate) fn o2ib_down(&self) -> Option<&str> {
        self.o2ib_down.as_deref()
    }

    /// Whether some LND can carry messages to `nid`: tcp always, o2ib when
    /// this node is configured with an o2ib NI (running or not).
    pub(crate) fn reaches(&self, nid: Nid) -> bool {
        match nid.net.kind {
            NetType::Tcp => true,
            NetType::O2ib => self.o2ib.is_some() || self.o2ib_down.is_some(),
            NetType::Lo => false,
        }
    }

    /// Whether this node is configured with an o2ib NI, running or not.
    pub(crate) fn has_o2ib_ni(&self) -> bool {
        self.o2ib.is_some() || self.o2ib_down.is_some()
    }

    /// The NIDs this node answers on: its o2ib NID when that NI runs, then
    /// its tcp NID.
    pub(crate) fn nids(&self) -> Vec<Nid> {
        self.o2ib.iter().map(|l| l.nid()).chain([self.tcp.nid()]).collect()
    }

    /// The same address on the local tcp network.
    fn tcp_twin(&self, peer: ProcessId) -> ProcessId {
        ProcessId { nid: Nid::new(peer.nid.addr, self.tcp.nid().net), pid: peer.pid }
    }

    /// Where a message to `peer` goes now; `fallbacks` counts each message
    /// to an o2ib peer that goes over tcp.
    pub(crate) fn route(&self, peer: ProcessId, fallbacks: &AtomicU64) -> ProcessId {
        if peer.nid.net.kind != NetType::O2ib {
            return peer;
        }
        let mut peers = self.peers.lock().expect("routes lock");
        let st = peers.entry(peer.nid).or_default();
        let cause = match (&self.o2ib, &self.o2ib_down, &st.off) {
            (Some(_), _, None) => None,
            (Some(_), _, Some(off)) => {
                let retry =
                    matches!(off.cause, FallbackCause::ConnectFailed(_)) && off.since.elapsed() >= O2IB_RETRY;
                if retry {
                    tracing::info!(peer = %peer.nid, "trying o2ib again");
                    st.off = None;
                    None
                } else {
                    Some(off.cause.clone())
                }
            }
            (None, why, _) => Some(FallbackCause::NoRdmaDevice(why.clone().unwrap_or_default())),
        };
        let via = match cause {
            None => peer,
            Some(cause) => {
                let twin = self.tcp_twin(peer);
                if st.fallbacks == 0 || st.via != Some(twin.nid) {
                    tracing::warn!(peer = %peer.nid, via = %twin.nid, %cause, "reaching an o2ib peer over tcp");
                }
                st.fallbacks += 1;
                fallbacks.fetch_add(1, Ordering::Relaxed);
                twin
            }
        };
        st.via = Some(via.nid);
        via
    }

    /// After `err` sending to `via` on behalf of `peer`: whether o2ib was
    /// given up for the peer, so the message should go again at once (over
    /// tcp).
    pub(crate) fn fell_back(&self, peer: ProcessId, via: ProcessId, err: &LndError) -> bool {
        if via.nid.net.kind != NetType::O2ib || !matches!(err, LndError::Unreachable { .. }) {
            return false;
        }
        tracing::warn!(peer = %peer.nid, error = %err, "o2ib connection failed; falling back to tcp");
        let mut peers = self.peers.lock().expect("routes lock");
        peers.entry(peer.nid).or_default().off =
            Some(Off { cause: FallbackCause::ConnectFailed(err.to_string()), since: Instant::now() });
        true
    }

    /// Switches o2ib off (or on again) for one peer: its messages go over
    /// tcp until switched back.
    pub(crate) fn set_o2ib(&self, peer: Nid, on: bool) {
        let mut peers = self.peers.lock().expect("routes lock");
        let st = peers.entry(peer).or_default();
        st.off = (!on).then(|| Off { cause: FallbackCause::SwitchedOff, since: Instant::now() });
        tracing::info!(%peer, on, "o2ib for peer");
    }

    /// How every o2ib peer this endpoint has sent to is reached.
    pub(crate) fn routes(&self) -> Vec<PeerRoute> {
        let peers = self.peers.lock().expect("routes lock");
        let mut v: Vec<PeerRoute> = peers
            .iter()
            .map(|(nid, st)| {
                let fallback = match (&self.o2ib, &self.o2ib_down, &st.off) {
                    (Some(_), _, off) => off.as_ref().map(|o| o.cause.clone()),
                    (None, why, _) => Some(FallbackCause::NoRdmaDevice(why.clone().unwrap_or_default())),
                };
                PeerRoute { peer: *nid, via: st.via.unwrap_or(*nid), fallback, fallbacks: st.fallbacks }
            })
            .collect();
        v.sort_by_key(|r| r.peer);
        v
    }

    /// Which of a peer's NIDs (as it registered them) to address it by.
    pub(crate) fn pick(&self, nids: &[Nid]) -> Option<Nid> {
        pick_nid(nids, self.has_o2ib_ni())
    }

    /// Sends over the LND of `via`'s network.
    pub(crate) async fn send(&self, via: ProcessId, parts: &[&[u8]]) -> Result<(), LndError> {
        match (via.nid.net.kind, &self.o2ib) {
            (NetType::O2ib, Some(o2ib)) => o2ib.send(via, parts).await,
            (NetType::O2ib, None) => self.tcp.send(self.tcp_twin(via), parts).await,
            _ => self.tcp.send(via, parts).await,
        }
    }

    /// Reads a peer's exposed range over the LND the peer's request came
    /// by.
    pub(crate) async fn bulk_get<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> (B, Result<(), LndError>) {
        match (peer.nid.net.kind, &self.o2ib) {
            (NetType::O2ib, Some(o2ib)) => o2ib.bulk_get(peer, remote, buf, off).await,
            (NetType::O2ib, None) => self.tcp.bulk_get(self.tcp_twin(peer), remote, buf, off).await,
            _ => self.tcp.bulk_get(peer, remote, buf, off).await,
        }
    }

    /// Writes into a peer's exposed range over the LND the peer's request
    /// came by.
    pub(crate) async fn bulk_put<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> (B, Result<(), LndError>) {
        match (peer.nid.net.kind, &self.o2ib) {
            (NetType::O2ib, Some(o2ib)) => o2ib.bulk_put(peer, remote, buf, off).await,
            (NetType::O2ib, None) => self.tcp.bulk_put(self.tcp_twin(peer), remote, buf, off).await,
            _ => self.tcp.bulk_put(peer, remote, buf, off).await,
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.tcp.shutdown();
        if let Some(o2ib) = &self.o2ib {
            o2ib.shutdown();
        }
    }
}

/// The NID to address a peer by, of those it answers on: an o2ib one when
/// this node has an o2ib NI configured (`route` then carries it over tcp,
/// counted, while that NI is down), else a tcp one; a peer with neither is
/// addressed by its first NID, which `call` refuses if nothing reaches it.
pub fn pick_nid(nids: &[Nid], o2ib_ni: bool) -> Option<Nid> {
    let on = |kind: NetType| nids.iter().copied().find(|n| n.net.kind == kind);
    o2ib_ni
        .then(|| on(NetType::O2ib))
        .flatten()
        .or_else(|| on(NetType::Tcp))
        .or_else(|| nids.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
    use crate::{Errno, Net};
    use std::future::Future;
    use std::pin::Pin;

    struct Echo;

    impl Service for Echo {
        fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
            Box::pin(async move {
                // Tell the caller which network its request came by.
                let mut out = req.from.nid.net.to_string().into_bytes();
                out.push(b':');
                out.extend_from_slice(req.body());
                Ok(out)
            })
        }
    }

    fn loopback() -> std::net::IpAddr {
        let mut b = [0u8; 3];
        // SAFETY: getrandom fills the 3-byte array.
        unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 3, 0) };
        std::net::IpAddr::from([127, b[0], b[1], b[2].max(2)])
    }

    #[test]
    fn a_peer_is_addressed_by_o2ib_only_from_a_node_with_an_o2ib_ni() {
        let n = |s: &str| s.parse::<Nid>().unwrap();
        let both = [n("10.0.0.1@o2ib"), n("10.0.0.1@tcp")];
        assert_eq!(pick_nid(&both, true), Some(n("10.0.0.1@o2ib")));
        assert_eq!(pick_nid(&both, false), Some(n("10.0.0.1@tcp")));
        // Registered order does not matter, and a peer without an o2ib NID
        // is reached over tcp from any node.
        let rev = [n("10.0.0.1@tcp"), n("10.0.0.1@o2ib")];
        assert_eq!(pick_nid(&rev, true), Some(n("10.0.0.1@o2ib")));
        assert_eq!(pick_nid(&[n("10.0.0.2@tcp")], true), Some(n("10.0.0.2@tcp")));
        // An o2ib-only peer is still named by its o2ib NID from a tcp-only
        // node: `call` then says there is no route, rather than guessing.
        assert_eq!(pick_nid(&[n("10.0.0.3@o2ib")], false), Some(n("10.0.0.3@o2ib")));
        assert_eq!(pick_nid(&[], true), None);
    }

    /// What happens on every host without an RDMA device (and this one has
    /// none): the configured o2ib NI stays down with its reason, and a call
    /// to a server's o2ib NID goes over tcp to the same address, counted
    /// and shown per peer. Where the host has a device this checks nothing
    /// about fallback (the VM tests cover o2ib itself).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_o2ib_peer_is_reached_over_tcp_without_an_rdma_device() {
        if crate::o2ib::list_devices().is_ok() {
            return;
        }
        let addr = loopback();
        // The address is this test's own, so any port is free on it.
        let port = 19880;
        let mut scfg = EndpointConfig::server(Nid::new(addr, Net::tcp(0)));
        scfg.tcp.port = port;
        let server = Endpoint::start(scfg).await.unwrap();
        server.register(9, Arc::new(Echo));

        let mut ccfg =
            EndpointConfig::client(Nid::new(addr, Net::tcp(0))).with_o2ib(Nid::new(addr, Net::o2ib(0)));
        ccfg.tcp.port = port;
        let client = Endpoint::start(ccfg).await.unwrap();
        assert!(client.o2ib().is_none());
        assert_eq!(client.o2ib_down(), Some("no RDMA device"));
        assert_eq!(client.nids(), vec![Nid::new(addr, Net::tcp(0))], "a down NI is not answered on");
        assert_eq!(
            client.pick_nid(&[Nid::new(addr, Net::tcp(0)), Nid::new(addr, Net::o2ib(0))]),
            Some(Nid::new(addr, Net::o2ib(0))),
            "an o2ib peer is named by its o2ib NID, and reached over tcp while this NI is down"
        );

        let target = ProcessId { nid: Nid::new(addr, Net::o2ib(0)), pid: crate::Pid::SERVER };
        let reply = client.call(target, 9, 1, b"hi").await.unwrap();
        assert_eq!(reply.body(), b"tcp:hi");
        assert_eq!(client.stats().tcp_fallbacks.load(Ordering::Relaxed), 1);
        let routes = client.peer_routes();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].peer, target.nid);
        assert_eq!(routes[0].via, Nid::new(addr, Net::tcp(0)));
        assert_eq!(routes[0].fallback, Some(FallbackCause::NoRdmaDevice("no RDMA device".into())));
        assert_eq!(routes[0].fallbacks, 1);

        // A tcp peer is no fallback, and a loopback NID has no route.
        let tcp_target = ProcessId { nid: Nid::new(addr, Net::tcp(0)), pid: crate::Pid::SERVER };
        client.call(tcp_target, 9, 1, b"x").await.unwrap();
        assert_eq!(client.stats().tcp_fallbacks.load(Ordering::Relaxed), 1);
        let lo = ProcessId { nid: Nid::LO, pid: 1 };
        assert_eq!(client.call(lo, 9, 1, b"x").await.err().map(|e| e.errno()), Some(Errno::EHOSTUNREACH));

        // Without an o2ib NI configured, an o2ib NID has no route at all.
        let mut tcp_only = EndpointConfig::client(Nid::new(addr, Net::tcp(0)));
        tcp_only.tcp.port = port;
        let tcp_only = Endpoint::start(tcp_only).await.unwrap();
        let r = tcp_only.call(target, 9, 1, b"x").await;
        assert_eq!(r.err().map(|e| e.errno()), Some(Errno::EHOSTUNREACH));
        assert!(tcp_only.peer_routes().is_empty());
        tcp_only.shutdown();
        client.shutdown();
        server.shutdown();
    }
}
