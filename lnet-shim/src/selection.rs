//! Which local NI talks to which of a peer's NIDs. A peer reachable on an
//! o2ib network is reached over o2ib; when this node's o2ib NI is down (no
//! RDMA device, no rdma-core), the peer has no o2ib NID, no o2ib network
//! is shared, or the o2ib connection to the peer failed, a tcp pair is
//! chosen and the reason is returned so it can be logged and shown. Among
//! pairs of the same kind the healthiest wins (peer NI first, then local
//! NI), as in LNet; ties go to the peer's primary NID and the first local NI.

use crate::health::Health;
use fabric::{Errno, Net, NetType, Nid};
use std::fmt;

/// Whether a local NI's LND is running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NiStatus {
    Up,
    /// Not running; the reason is shown to the admin (e.g. "no RDMA device",
    /// "librdmacm.so.1 not found").
    Down {
        reason: String,
    },
}

impl NiStatus {
    pub fn is_up(&self) -> bool {
        matches!(self, NiStatus::Up)
    }

    /// As `lnetctl net show` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            NiStatus::Up => "up",
            NiStatus::Down { .. } => "down",
        }
    }
}

/// A local NI as selection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNi {
    pub nid: Nid,
    pub status: NiStatus,
    pub health: Health,
}

impl LocalNi {
    pub fn up(nid: Nid) -> LocalNi {
        LocalNi { nid, status: NiStatus::Up, health: Health::MAX }
    }

    pub fn down(nid: Nid, reason: impl Into<String>) -> LocalNi {
        LocalNi { nid, status: NiStatus::Down { reason: reason.into() }, health: Health::MAX }
    }
}

/// One NID of a peer and what we know of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerNiState {
    pub nid: Nid,
    pub health: Health,
    /// The last o2ib connection failure to this NID, cleared by a success.
    /// While set, the NID is not chosen if any other pair works.
    pub connect_failure: Option<String>,
}

/// A peer and its NIDs (from configuration, the MGS or discovery), primary first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerState {
    pub primary_nid: Nid,
    pub nis: Vec<PeerNiState>,
}

impl PeerState {
    /// A peer with these NIDs; the primary is added first if missing, repeats dropped.
    pub fn new(primary_nid: Nid, nids: impl IntoIterator<Item = Nid>) -> PeerState {
        let mut p = PeerState { primary_nid, nis: Vec::new() };
        p.add_nid(primary_nid);
        for nid in nids {
            p.add_nid(nid);
        }
        p
    }

    /// Adds a NID learned later (discovery, MGS); known NIDs are left as they are.
    pub fn add_nid(&mut self, nid: Nid) {
        if self.ni(nid).is_none() {
            self.nis.push(PeerNiState { nid, health: Health::MAX, connect_failure: None });
        }
    }

    pub fn ni(&self, nid: Nid) -> Option<&PeerNiState> {
        self.nis.iter().find(|n| n.nid == nid)
    }

    fn ni_mut(&mut self, nid: Nid) -> Option<&mut PeerNiState> {
        self.nis.iter_mut().find(|n| n.nid == nid)
    }

    /// A message to `nid` completed (or it answered a recovery ping).
    pub fn record_success(&mut self, nid: Nid, sensitivity: u32) {
        if let Some(ni) = self.ni_mut(nid) {
            ni.health = ni.health.succeeded(sensitivity);
            if ni.connect_failure.take().is_some() {
                tracing::info!(%nid, "peer NID reachable again");
            }
        }
    }

    /// A message to `nid` failed (timeout, error, drop).
    pub fn record_failure(&mut self, nid: Nid, sensitivity: u32) {
        if let Some(ni) = self.ni_mut(nid) {
            ni.health = ni.health.failed(sensitivity);
            tracing::debug!(%nid, health = %ni.health, "peer NID failure");
        }
    }

    /// Connecting to `nid` failed; an o2ib NID is then avoided until a success.
    pub fn record_connect_failure(&mut self, nid: Nid, error: impl Into<String>, sensitivity: u32) {
        let error = error.into();
        if let Some(ni) = self.ni_mut(nid) {
            ni.health = ni.health.failed(sensitivity);
            tracing::warn!(%nid, %error, health = %ni.health, "connect to peer NID failed");
            if nid.net.kind == NetType::O2ib {
                ni.connect_failure = Some(error);
            }
        }
    }
}

/// Why a tcp pair was chosen although o2ib was in the picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// This node's o2ib NIs are all down.
    NoRdmaDevice { detail: String },
    /// This node has no o2ib network configured, the peer has one.
    NoLocalO2ib,
    /// The peer has no o2ib NID.
    PeerHasNoO2ib,
    /// Both have o2ib, but on different networks.
    NoCommonO2ibNet { local: Vec<Net>, peer: Vec<Net> },
    /// The o2ib connection to the peer failed.
    O2ibConnectFailed { nid: Nid, error: String },
}

fn nets(list: &[Net]) -> String {
    list.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackReason::NoRdmaDevice { detail } => write!(f, "no RDMA device: {detail}"),
            FallbackReason::NoLocalO2ib => f.write_str("this node has no o2ib network"),
            FallbackReason::PeerHasNoO2ib => f.write_str("peer has no o2ib NID"),
            FallbackReason::NoCommonO2ibNet { local, peer } => {
                write!(f, "no common o2ib network (local {}, peer {})", nets(local), nets(peer))
            }
            FallbackReason::O2ibConnectFailed { nid, error } => {
                write!(f, "o2ib connect failed: {nid}: {error}")
            }
        }
    }
}

/// The chosen pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub local: Nid,
    pub peer: Nid,
    /// Set when tcp was chosen although o2ib was configured on one side.
    pub fallback: Option<FallbackReason>,
}

impl Selection {
    /// The LND that carries the traffic.
    pub fn lnd(&self) -> NetType {
        self.local.net.kind
    }
}

/// Why no pair could be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no local NI is up")]
    NoLocalNi,
    #[error(
        "peer {peer} is unreachable: its NIDs are on {}, this node is on {}",
        nets(peer_nets),
        nets(local_nets)
    )]
    Unreachable { peer: Nid, peer_nets: Vec<Net>, local_nets: Vec<Net> },
}

impl SelectError {
    pub fn errno(&self) -> Errno {
        match self {
            SelectError::NoLocalNi => Errno(libc::ENETDOWN),
            SelectError::Unreachable { .. } => Errno::EHOSTUNREACH,
        }
    }
}

impl From<SelectError> for Errno {
    fn from(e: SelectError) -> Errno {
        e.errno()
    }
}

fn dedup(mut v: Vec<Net>) -> Vec<Net> {
    let mut seen = Vec::new();
    v.retain(|n| {
        let new = !seen.contains(n);
        seen.push(*n);
        new
    });
    v
}

/// Chooses the (local NI, peer NID) pair for traffic to `peer`.
pub fn select(local: &[LocalNi], peer: &PeerState) -> Result<Selection, SelectError> {
    if !local.iter().any(|l| l.status.is_up()) {
        return Err(SelectError::NoLocalNi);
    }
    // Every usable pair on a shared network, in preference order of the
    // inputs (peer NIDs first, then local NIs).
    let pairs: Vec<(&PeerNiState, &LocalNi)> = peer
        .nis
        .iter()
        .flat_map(|p| {
            local.iter().filter(move |l| l.status.is_up() && l.nid.net == p.nid.net).map(move |l| (p, l))
        })
        .collect();
    let best = |keep: &dyn Fn(&PeerNiState, &LocalNi) -> bool| {
        let mut best: Option<(&PeerNiState, &LocalNi)> = None;
        for &(p, l) in pairs.iter().filter(|(p, l)| keep(p, l)) {
            if best.is_none_or(|(bp, bl)| (p.health, l.health) > (bp.health, bl.health)) {
                best = Some((p, l));
            }
        }
        best
    };
    let is_o2ib = |p: &PeerNiState| p.nid.net.kind == NetType::O2ib;

    if let Some((p, l)) = best(&|p, _| is_o2ib(p) && p.connect_failure.is_none()) {
        return Ok(Selection { local: l.nid, peer: p.nid, fallback: None });
    }
    if let Some((p, l)) = best(&|p, _| !is_o2ib(p)) {
        let fallback = if p.nid.net.kind == NetType::Tcp { fallback_reason(local, peer) } else { None };
        if let Some(reason) = &fallback {
            tracing::info!(peer = %peer.primary_nid, via = %p.nid, %reason, "using tcp instead of o2ib");
        }
        return Ok(Selection { local: l.nid, peer: p.nid, fallback });
    }
    // Only o2ib pairs whose connection failed are left: trying one again
    // beats declaring the peer unreachable.
    if let Some((p, l)) = best(&|_, _| true) {
        tracing::debug!(peer = %p.nid, "retrying o2ib: no other path");
        return Ok(Selection { local: l.nid, peer: p.nid, fallback: None });
    }
    Err(SelectError::Unreachable {
        peer: peer.primary_nid,
        peer_nets: dedup(peer.nis.iter().map(|p| p.nid.net).collect()),
        local_nets: dedup(local.iter().filter(|l| l.status.is_up()).map(|l| l.nid.net).collect()),
    })
}

fn fallback_reason(local: &[LocalNi], peer: &PeerState) -> Option<FallbackReason> {
    let local_o2ib: Vec<&LocalNi> = local.iter().filter(|l| l.nid.net.kind == NetType::O2ib).collect();
    let peer_o2ib: Vec<&PeerNiState> = peer.nis.iter().filter(|p| p.nid.net.kind == NetType::O2ib).collect();
    if local_o2ib.is_empty() {
        // A tcp-only cluster is no fallback; a tcp-only node among o2ib peers is.
        return (!peer_o2ib.is_empty()).then_some(FallbackReason::NoLocalO2ib);
    }
    let up: Vec<&LocalNi> = local_o2ib.iter().copied().filter(|l| l.status.is_up()).collect();
    if up.is_empty() {
        let detail = local_o2ib
            .iter()
            .find_map(|l| match &l.status {
                NiStatus::Down { reason } => Some(reason.clone()),
                NiStatus::Up => None,
            })
            .unwrap_or_default();
        return Some(FallbackReason::NoRdmaDevice { detail });
    }
    if peer_o2ib.is_empty() {
        return Some(FallbackReason::PeerHasNoO2ib);
    }
    let common: Vec<&PeerNiState> =
        peer_o2ib.iter().copied().filter(|p| up.iter().any(|l| l.nid.net == p.nid.net)).collect();
    match common.iter().find(|p| p.connect_failure.is_some()) {
        Some(p) => Some(FallbackReason::O2ibConnectFailed {
            nid: p.nid,
            error: p.connect_failure.clone().unwrap_or_default(),
        }),
        None => Some(FallbackReason::NoCommonO2ibNet {
            local: dedup(up.iter().map(|l| l.nid.net).collect()),
            peer: dedup(peer_o2ib.iter().map(|p| p.nid.net).collect()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nid(s: &str) -> Nid {
        s.parse().unwrap()
    }

    fn peer(nids: &[&str]) -> PeerState {
        PeerState::new(nid(nids[0]), nids.iter().map(|s| nid(s)))
    }

    const S: u32 = Health::DEFAULT_SENSITIVITY;

    #[test]
    fn selection_table() {
        let ib = LocalNi::up(nid("192.168.0.1@o2ib"));
        let ib_down = LocalNi::down(nid("192.168.0.1@o2ib"), "no RDMA device (librdmacm.so.1 not found)");
        let ib1 = LocalNi::up(nid("192.168.1.1@o2ib1"));
        let eth = LocalNi::up(nid("10.0.0.1@tcp"));
        let both = &["192.168.0.2@o2ib", "10.0.0.2@tcp"][..];
        let tcp_only = &["10.0.0.2@tcp"][..];
        let ib_only = &["192.168.0.2@o2ib"][..];

        struct Case<'a> {
            local: Vec<LocalNi>,
            peer: &'a [&'a str],
            want: (&'a str, &'a str),
            why: Option<&'a str>,
        }
        let cases = [
            Case {
                local: vec![ib.clone(), eth.clone()],
                peer: both,
                want: ("192.168.0.1@o2ib", "192.168.0.2@o2ib"),
                why: None,
            },
            // Order of the lists does not matter: o2ib wins.
            Case {
                local: vec![eth.clone(), ib.clone()],
                peer: &["10.0.0.2@tcp", "192.168.0.2@o2ib"],
                want: ("192.168.0.1@o2ib", "192.168.0.2@o2ib"),
                why: None,
            },
            Case {
                local: vec![ib_down.clone(), eth.clone()],
                peer: both,
                want: ("10.0.0.1@tcp", "10.0.0.2@tcp"),
                why: Some("no RDMA device: no RDMA device (librdmacm.so.1 not found)"),
            },
            Case {
                local: vec![ib.clone(), eth.clone()],
                peer: tcp_only,
                want: ("10.0.0.1@tcp", "10.0.0.2@tcp"),
                why: Some("peer has no o2ib NID"),
            },
            Case {
                local: vec![eth.clone()],
                peer: both,
                want: ("10.0.0.1@tcp", "10.0.0.2@tcp"),
                why: Some("this node has no o2ib network"),
            },
            Case {
                local: vec![eth.clone()],
                peer: tcp_only,
                want: ("10.0.0.1@tcp", "10.0.0.2@tcp"),
                why: None,
            },
            Case {
                local: vec![ib1.clone(), eth.clone()],
                peer: both,
                want: ("10.0.0.1@tcp", "10.0.0.2@tcp"),
                why: Some("no common o2ib network (local o2ib1, peer o2ib)"),
            },
            Case {
                local: vec![ib.clone()],
                peer: ib_only,
                want: ("192.168.0.1@o2ib", "192.168.0.2@o2ib"),
                why: None,
            },
            Case {
                local: vec![LocalNi::up(Nid::LO), eth.clone()],
                peer: &["0@lo"],
                want: ("0@lo", "0@lo"),
                why: None,
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let s = select(&c.local, &peer(c.peer)).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!((s.local.to_string().as_str(), s.peer.to_string().as_str()), c.want, "case {i}");
            assert_eq!(s.fallback.as_ref().map(|f| f.to_string()).as_deref(), c.why, "case {i}");
            assert_eq!(s.lnd(), s.local.net.kind);
        }
    }

    #[test]
    fn connect_failure_falls_back_and_success_restores_o2ib() {
        let local = [LocalNi::up(nid("192.168.0.1@o2ib")), LocalNi::up(nid("10.0.0.1@tcp"))];
        let mut p = peer(&["192.168.0.2@o2ib", "10.0.0.2@tcp"]);
        p.record_connect_failure(nid("192.168.0.2@o2ib"), "rdma_cm: RDMA_CM_EVENT_UNREACHABLE", S);
        let s = select(&local, &p).unwrap();
        assert_eq!(s.peer, nid("10.0.0.2@tcp"));
        assert_eq!(
            s.fallback.unwrap().to_string(),
            "o2ib connect failed: 192.168.0.2@o2ib: rdma_cm: RDMA_CM_EVENT_UNREACHABLE"
        );
        assert_eq!(p.ni(nid("192.168.0.2@o2ib")).unwrap().health.value(), 900);
        // A tcp connect failure only costs health.
        p.record_connect_failure(nid("10.0.0.2@tcp"), "ECONNREFUSED", S);
        assert_eq!(p.ni(nid("10.0.0.2@tcp")).unwrap().connect_failure, None);
        p.record_success(nid("192.168.0.2@o2ib"), S);
        let s = select(&local, &p).unwrap();
        assert_eq!((s.peer, s.fallback), (nid("192.168.0.2@o2ib"), None));
        assert!(p.ni(nid("192.168.0.2@o2ib")).unwrap().health.is_full());
    }

    #[test]
    fn failed_o2ib_is_retried_when_nothing_else_exists() {
        let local = [LocalNi::up(nid("192.168.0.1@o2ib"))];
        let mut p = peer(&["192.168.0.2@o2ib"]);
        p.record_connect_failure(nid("192.168.0.2@o2ib"), "timeout", S);
        assert_eq!(select(&local, &p).unwrap().peer, nid("192.168.0.2@o2ib"));
    }

    #[test]
    fn health_picks_among_a_peers_nids_and_local_nis() {
        let local = [LocalNi::up(nid("10.0.0.1@tcp")), LocalNi::up(nid("10.0.1.1@tcp"))];
        let mut p = peer(&["10.0.0.2@tcp", "10.0.0.3@tcp"]);
        assert_eq!(select(&local, &p).unwrap().peer, nid("10.0.0.2@tcp"), "tie: primary");
        p.record_failure(nid("10.0.0.2@tcp"), S);
        assert_eq!(select(&local, &p).unwrap().peer, nid("10.0.0.3@tcp"));
        p.record_failure(nid("10.0.0.3@tcp"), S);
        p.record_failure(nid("10.0.0.3@tcp"), S);
        assert_eq!(select(&local, &p).unwrap().peer, nid("10.0.0.2@tcp"), "900 beats 800");
        let mut sick = local.clone();
        sick[0].health = Health::new(300);
        assert_eq!(select(&sick, &p).unwrap().local, nid("10.0.1.1@tcp"));
        // Health ranks within a kind, never across: a sick o2ib still beats tcp.
        let local = [LocalNi::up(nid("192.168.0.1@o2ib")), LocalNi::up(nid("10.0.0.1@tcp"))];
        let mut p = peer(&["192.168.0.2@o2ib", "10.0.0.2@tcp"]);
        for _ in 0..5 {
            p.record_failure(nid("192.168.0.2@o2ib"), S);
        }
        assert_eq!(select(&local, &p).unwrap().peer, nid("192.168.0.2@o2ib"));
    }

    #[test]
    fn unreachable_and_no_ni() {
        let local = [LocalNi::up(nid("10.0.0.1@tcp")), LocalNi::down(nid("192.168.0.1@o2ib"), "no device")];
        let e = select(&local, &peer(&["10.0.0.2@tcp1", "192.168.0.2@o2ib"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "peer 10.0.0.2@tcp1 is unreachable: its NIDs are on tcp1,o2ib, this node is on tcp"
        );
        assert_eq!(e.errno(), Errno::EHOSTUNREACH);
        let e = select(&local[1..], &peer(&["10.0.0.2@tcp"])).unwrap_err();
        assert_eq!(e, SelectError::NoLocalNi);
    }

    #[test]
    fn peer_nid_bookkeeping() {
        let mut p = PeerState::new(nid("10.0.0.2@tcp"), [nid("10.0.0.3@tcp"), nid("10.0.0.2@tcp")]);
        assert_eq!(p.nis.len(), 2);
        p.add_nid(nid("192.168.0.2@o2ib"));
        p.add_nid(nid("10.0.0.3@tcp"));
        assert_eq!(p.nis.len(), 3);
        p.record_failure(nid("1.2.3.4@tcp"), S); // unknown NIDs are ignored
    }

    fn arb_nid() -> impl Strategy<Value = Nid> {
        (
            0u8..4,
            prop_oneof![Just(fabric::Net::tcp(0)), Just(fabric::Net::tcp(1)), Just(fabric::Net::o2ib(0))],
        )
            .prop_map(|(h, net)| Nid::new(std::net::IpAddr::from([10, 0, 0, h]), net))
    }

    proptest! {
        /// Whatever the states, a choice is on a shared network, uses an up
        /// NI, prefers o2ib when a clean o2ib pair exists, and gives a
        /// reason exactly when it chose tcp while o2ib was configured somewhere.
        #[test]
        fn choices_are_sound(
            local in prop::collection::vec((arb_nid(), any::<bool>(), 0u32..=1000), 1..4),
            peer_nids in prop::collection::vec((arb_nid(), 0u32..=1000, any::<bool>()), 1..4),
        ) {
            let local: Vec<LocalNi> = local.into_iter().map(|(n, up, h)| LocalNi {
                nid: n,
                status: if up { NiStatus::Up } else { NiStatus::Down { reason: "x".into() } },
                health: Health::new(h),
            }).collect();
            let mut p = PeerState::new(peer_nids[0].0, peer_nids.iter().map(|x| x.0));
            for (n, h, failed) in &peer_nids {
                let ni = p.nis.iter_mut().find(|x| x.nid == *n).unwrap();
                ni.health = Health::new(*h);
                if *failed && n.net.kind == NetType::O2ib {
                    ni.connect_failure = Some("refused".into());
                }
            }
            let clean_o2ib = p.nis.iter().any(|pn| pn.nid.net.kind == NetType::O2ib && pn.connect_failure.is_none()
                && local.iter().any(|l| l.status.is_up() && l.nid.net == pn.nid.net));
            match select(&local, &p) {
                Ok(s) => {
                    prop_assert_eq!(s.local.net, s.peer.net);
                    prop_assert!(local.iter().any(|l| l.nid == s.local && l.status.is_up()));
                    prop_assert!(p.ni(s.peer).is_some());
                    if clean_o2ib {
                        prop_assert_eq!(s.lnd(), NetType::O2ib);
                        prop_assert!(s.fallback.is_none());
                    }
                    let o2ib_anywhere = local.iter().any(|l| l.nid.net.kind == NetType::O2ib)
                        || p.nis.iter().any(|pn| pn.nid.net.kind == NetType::O2ib);
                    prop_assert_eq!(s.fallback.is_some(), s.lnd() == NetType::Tcp && o2ib_anywhere);
                }
                Err(SelectError::NoLocalNi) => prop_assert!(local.iter().all(|l| !l.status.is_up())),
                Err(SelectError::Unreachable { .. }) => prop_assert!(!p.nis.iter().any(|pn|
                    local.iter().any(|l| l.status.is_up() && l.nid.net == pn.nid.net))),
            }
        }
    }
}
