//! What `lnetctl net show`, `peer show`, `stats show` and `ping` print,
//! rendered from plain data the running fabric fills in. The keys and
//! layout follow lnetctl, so scripts written against Lustre read them.
//! `peer show` adds two keys of ours per peer: `lnd` (the LND in use) and,
//! after a fallback to tcp, `fallback` (why).

use crate::config::NiTunables;
use crate::health::Health;
use crate::selection::{FallbackReason, NiStatus, PeerState, Selection};
use crate::yaml_out::{Node, map, quoted, raw, render, text};
use fabric::{Errno, Net, NetType, Nid};

/// Messages sent, received and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgCounts {
    pub send_count: u64,
    pub recv_count: u64,
    pub drop_count: u64,
}

/// Messages by LNet message type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgTypeCounts {
    pub put: u64,
    pub get: u64,
    pub reply: u64,
    pub ack: u64,
    pub hello: u64,
}

/// Health counters of a local NI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NiHealthStats {
    pub health_value: Health,
    pub interrupts: u64,
    pub dropped: u64,
    pub aborted: u64,
    pub no_route: u64,
    pub timeouts: u64,
    pub error: u64,
}

/// Health counters of a peer NI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerNiHealthStats {
    pub health_value: Health,
    pub dropped: u64,
    pub timeout: u64,
    pub error: u64,
    pub network_timeout: u64,
}

/// `lnetctl net show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetShow {
    pub nets: Vec<NetShowNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetShowNet {
    pub net: Net,
    pub nis: Vec<NetShowNi>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetShowNi {
    pub nid: Nid,
    pub status: NiStatus,
    /// Printed as `interfaces:` when not empty (the loopback NI has none).
    pub interfaces: Vec<String>,
    /// The `-v` part; printed when present.
    pub detail: Option<NetShowNiDetail>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetShowNiDetail {
    pub statistics: MsgCounts,
    pub sent_stats: MsgTypeCounts,
    pub received_stats: MsgTypeCounts,
    pub dropped_stats: MsgTypeCounts,
    pub health: NiHealthStats,
    pub tunables: NiTunables,
    /// NUMA-derived CPT of the device, -1 when unknown.
    pub dev_cpt: i32,
    pub cpts: Vec<u32>,
}

/// `lnetctl peer show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerShow {
    pub peers: Vec<PeerShowPeer>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerShowPeer {
    pub primary_nid: Nid,
    pub multi_rail: bool,
    /// The LND carrying traffic to this peer, once chosen.
    pub lnd: Option<NetType>,
    pub fallback: Option<FallbackReason>,
    pub nis: Vec<PeerShowNi>,
}

/// What LNet knows of a peer NI's liveness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerNiLiveness {
    /// Not tracked (printed `NA`, as LNet does for non-routers).
    #[default]
    NotTracked,
    Up,
    Down,
}

impl PeerNiLiveness {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerNiLiveness::NotTracked => "NA",
            PeerNiLiveness::Up => "up",
            PeerNiLiveness::Down => "down",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerShowNi {
    pub nid: Nid,
    pub state: PeerNiLiveness,
    /// The `-v` part; printed when present.
    pub detail: Option<PeerShowNiDetail>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerShowNiDetail {
    pub max_ni_tx_credits: i64,
    pub available_tx_credits: i64,
    pub min_tx_credits: i64,
    pub tx_q_num_of_buf: i64,
    pub available_rtr_credits: i64,
    pub min_rtr_credits: i64,
    pub refcount: i64,
    pub statistics: MsgCounts,
    pub sent_stats: MsgTypeCounts,
    pub received_stats: MsgTypeCounts,
    pub dropped_stats: MsgTypeCounts,
    pub health: PeerNiHealthStats,
}

/// `lnetctl stats show`: node-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsShow {
    pub msgs_alloc: u64,
    pub msgs_max: u64,
    pub rst_alloc: u64,
    pub errors: u64,
    pub send_count: u64,
    pub resend_count: u64,
    pub response_timeout_count: u64,
    pub local_interrupt_count: u64,
    pub local_dropped_count: u64,
    pub local_aborted_count: u64,
    pub local_no_route_count: u64,
    pub local_timeout_count: u64,
    pub local_error_count: u64,
    pub remote_dropped_count: u64,
    pub remote_error_count: u64,
    pub remote_timeout_count: u64,
    pub network_timeout_count: u64,
    pub recv_count: u64,
    pub route_count: u64,
    pub drop_count: u64,
    pub send_length: u64,
    pub recv_length: u64,
    pub route_length: u64,
    pub drop_length: u64,
}

/// One answered `lnetctl ping`: the peer's NIDs as it reported them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingReply {
    pub primary_nid: Nid,
    pub multi_rail: bool,
    pub nids: Vec<Nid>,
}

/// One unanswered `lnetctl ping`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingFailure {
    pub nid: Nid,
    pub errno: Errno,
}

fn yes_no(b: bool) -> Node {
    raw(if b { "True" } else { "False" })
}

fn msg_counts(c: &MsgCounts) -> Node {
    map([
        ("send_count", raw(c.send_count)),
        ("recv_count", raw(c.recv_count)),
        ("drop_count", raw(c.drop_count)),
    ])
}

fn type_counts(c: &MsgTypeCounts) -> Node {
    map([
        ("put", raw(c.put)),
        ("get", raw(c.get)),
        ("reply", raw(c.reply)),
        ("ack", raw(c.ack)),
        ("hello", raw(c.hello)),
    ])
}

pub(crate) fn tunables_node(t: &NiTunables) -> Node {
    map([
        ("peer_timeout", raw(t.peer_timeout)),
        ("peer_credits", raw(t.peer_credits)),
        ("peer_buffer_credits", raw(t.peer_buffer_credits)),
        ("credits", raw(t.credits)),
    ])
}

pub(crate) fn cpt_node(cpts: &[u32]) -> Node {
    quoted(format!("[{}]", cpts.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")))
}

pub(crate) fn interfaces_node(names: &[String]) -> Node {
    Node::Map(names.iter().enumerate().map(|(i, n)| (i.to_string(), text(n))).collect())
}

impl NetShow {
    pub fn to_yaml(&self) -> String {
        let nets = self.nets.iter().map(|net| {
            let nis = net.nis.iter().map(|ni| {
                let mut e = vec![
                    ("nid".to_string(), text(ni.nid.to_string())),
                    ("status".into(), raw(ni.status.as_str())),
                ];
                if !ni.interfaces.is_empty() {
                    e.push(("interfaces".into(), interfaces_node(&ni.interfaces)));
                }
                if let Some(d) = &ni.detail {
                    let h = &d.health;
                    e.extend([
                        ("statistics".into(), msg_counts(&d.statistics)),
                        ("sent_stats".into(), type_counts(&d.sent_stats)),
                        ("received_stats".into(), type_counts(&d.received_stats)),
                        ("dropped_stats".into(), type_counts(&d.dropped_stats)),
                        (
                            "health stats".into(),
                            map([
                                ("health value", raw(h.health_value)),
                                ("interrupts", raw(h.interrupts)),
                                ("dropped", raw(h.dropped)),
                                ("aborted", raw(h.aborted)),
                                ("no route", raw(h.no_route)),
                                ("timeouts", raw(h.timeouts)),
                                ("error", raw(h.error)),
                            ]),
                        ),
                        ("tunables".into(), tunables_node(&d.tunables)),
                        ("dev cpt".into(), raw(d.dev_cpt)),
                        ("CPT".into(), cpt_node(&d.cpts)),
                    ]);
                }
                Node::Map(e)
            });
            map([("net type", text(net.net.to_string())), ("local NI(s)", Node::Seq(nis.collect()))])
        });
        render(&[("net".into(), Node::Seq(nets.collect()))])
    }
}

impl PeerShowPeer {
    /// A peer's entry from the selection state: its NIDs, the LND chosen
    /// and the fallback reason, without the `-v` counters.
    pub fn from_state(peer: &PeerState, multi_rail: bool, selection: Option<&Selection>) -> PeerShowPeer {
        PeerShowPeer {
            primary_nid: peer.primary_nid,
            multi_rail,
            lnd: selection.map(Selection::lnd),
            fallback: selection.and_then(|s| s.fallback.clone()),
            nis: peer
                .nis
                .iter()
                .map(|n| PeerShowNi { nid: n.nid, state: PeerNiLiveness::NotTracked, detail: None })
                .collect(),
        }
    }
}

fn peer_nodes(peer: &PeerShowPeer) -> Node {
    let mut e = vec![
        ("primary nid".to_string(), text(peer.primary_nid.to_string())),
        ("Multi-Rail".into(), yes_no(peer.multi_rail)),
    ];
    if let Some(lnd) = peer.lnd {
        e.push(("lnd".into(), raw(lnd.as_str())));
    }
    if let Some(f) = &peer.fallback {
        e.push(("fallback".into(), text(f.to_string())));
    }
    let nis = peer.nis.iter().map(|ni| {
        let mut n =
            vec![("nid".to_string(), text(ni.nid.to_string())), ("state".into(), raw(ni.state.as_str()))];
        if let Some(d) = &ni.detail {
            let h = &d.health;
            n.extend([
                ("max_ni_tx_credits".into(), raw(d.max_ni_tx_credits)),
                ("available_tx_credits".into(), raw(d.available_tx_credits)),
                ("min_tx_credits".into(), raw(d.min_tx_credits)),
                ("tx_q_num_of_buf".into(), raw(d.tx_q_num_of_buf)),
                ("available_rtr_credits".into(), raw(d.available_rtr_credits)),
                ("min_rtr_credits".into(), raw(d.min_rtr_credits)),
                ("refcount".into(), raw(d.refcount)),
                ("statistics".into(), msg_counts(&d.statistics)),
                ("sent_stats".into(), type_counts(&d.sent_stats)),
                ("received_stats".into(), type_counts(&d.received_stats)),
                ("dropped_stats".into(), type_counts(&d.dropped_stats)),
                (
                    "health stats".into(),
                    map([
                        ("health value", raw(h.health_value)),
                        ("dropped", raw(h.dropped)),
                        ("timeout", raw(h.timeout)),
                        ("error", raw(h.error)),
                        ("network timeout", raw(h.network_timeout)),
                    ]),
                ),
            ]);
        }
        Node::Map(n)
    });
    e.push(("peer ni".into(), Node::Seq(nis.collect())));
    Node::Map(e)
}

impl PeerShow {
    pub fn to_yaml(&self) -> String {
        render(&[("peer".into(), Node::Seq(self.peers.iter().map(peer_nodes).collect()))])
    }
}

impl StatsShow {
    pub fn to_yaml(&self) -> String {
        let s = self;
        let stats = map([
            ("msgs_alloc", raw(s.msgs_alloc)),
            ("msgs_max", raw(s.msgs_max)),
            ("rst_alloc", raw(s.rst_alloc)),
            ("errors", raw(s.errors)),
            ("send_count", raw(s.send_count)),
            ("resend_count", raw(s.resend_count)),
            ("response_timeout_count", raw(s.response_timeout_count)),
            ("local_interrupt_count", raw(s.local_interrupt_count)),
            ("local_dropped_count", raw(s.local_dropped_count)),
            ("local_aborted_count", raw(s.local_aborted_count)),
            ("local_no_route_count", raw(s.local_no_route_count)),
            ("local_timeout_count", raw(s.local_timeout_count)),
            ("local_error_count", raw(s.local_error_count)),
            ("remote_dropped_count", raw(s.remote_dropped_count)),
            ("remote_error_count", raw(s.remote_error_count)),
            ("remote_timeout_count", raw(s.remote_timeout_count)),
            ("network_timeout_count", raw(s.network_timeout_count)),
            ("recv_count", raw(s.recv_count)),
            ("route_count", raw(s.route_count)),
            ("drop_count", raw(s.drop_count)),
            ("send_length", raw(s.send_length)),
            ("recv_length", raw(s.recv_length)),
            ("route_length", raw(s.route_length)),
            ("drop_length", raw(s.drop_length)),
        ]);
        render(&[("statistics".into(), stats)])
    }
}

impl PingReply {
    fn node(&self) -> Node {
        let nis = self.nids.iter().map(|n| map([("nid", text(n.to_string()))])).collect();
        map([
            ("primary nid", text(self.primary_nid.to_string())),
            ("Multi-Rail", yes_no(self.multi_rail)),
            ("peer ni", Node::Seq(nis)),
        ])
    }

    pub fn to_yaml(&self) -> String {
        ping_yaml(std::slice::from_ref(self))
    }
}

/// `lnetctl ping` of several NIDs: one `ping:` list.
pub fn ping_yaml(replies: &[PingReply]) -> String {
    render(&[("ping".into(), Node::Seq(replies.iter().map(PingReply::node).collect()))])
}

impl PingFailure {
    /// As lnetctl reports a failed ping: errno negative, as the kernel returns it.
    pub fn to_yaml(&self) -> String {
        let descr =
            format!("failed to ping {}: {}", self.nid, std::io::Error::from_raw_os_error(self.errno.0));
        let body = map([("errno", raw(-self.errno.0)), ("descr", text(descr))]);
        render(&[("manage".into(), Node::Seq(vec![map([("ping", body)])]))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::{LocalNi, select};

    fn nid(s: &str) -> Nid {
        s.parse().unwrap()
    }

    #[test]
    fn net_show_matches_lnetctl() {
        let show = NetShow {
            nets: vec![
                NetShowNet {
                    net: Net::LO,
                    nis: vec![NetShowNi {
                        nid: Nid::LO,
                        status: NiStatus::Up,
                        interfaces: vec![],
                        detail: None,
                    }],
                },
                NetShowNet {
                    net: Net::tcp(0),
                    nis: vec![NetShowNi {
                        nid: nid("10.0.0.1@tcp"),
                        status: NiStatus::Up,
                        interfaces: vec!["eth0".into()],
                        detail: None,
                    }],
                },
                NetShowNet {
                    net: Net::o2ib(1),
                    nis: vec![NetShowNi {
                        nid: nid("192.168.0.1@o2ib1"),
                        status: NiStatus::Down { reason: "no RDMA device".into() },
                        interfaces: vec!["ib0".into()],
                        detail: None,
                    }],
                },
            ],
        };
        assert_eq!(
            show.to_yaml(),
            "\
net:
    - net type: lo
      local NI(s):
        - nid: 0@lo
          status: up
    - net type: tcp
      local NI(s):
        - nid: 10.0.0.1@tcp
          status: up
          interfaces:
              0: eth0
    - net type: o2ib1
      local NI(s):
        - nid: 192.168.0.1@o2ib1
          status: down
          interfaces:
              0: ib0
"
        );
    }

    #[test]
    fn verbose_net_show() {
        let show = NetShow {
            nets: vec![NetShowNet {
                net: Net::tcp(0),
                nis: vec![NetShowNi {
                    nid: nid("10.73.20.11@tcp"),
                    status: NiStatus::Up,
                    interfaces: vec!["eth1".into()],
                    detail: Some(NetShowNiDetail {
                        statistics: MsgCounts { send_count: 3825, recv_count: 3736, drop_count: 30 },
                        sent_stats: MsgTypeCounts { put: 3821, get: 4, ..Default::default() },
                        received_stats: MsgTypeCounts { put: 3698, get: 1, reply: 3, ack: 34, hello: 0 },
                        dropped_stats: MsgTypeCounts { put: 30, ..Default::default() },
                        health: NiHealthStats { health_value: Health::MAX, ..Default::default() },
                        tunables: NiTunables::default(),
                        dev_cpt: -1,
                        cpts: vec![0],
                    }),
                }],
            }],
        };
        assert_eq!(
            show.to_yaml(),
            "\
net:
    - net type: tcp
      local NI(s):
        - nid: 10.73.20.11@tcp
          status: up
          interfaces:
              0: eth1
          statistics:
              send_count: 3825
              recv_count: 3736
              drop_count: 30
          sent_stats:
              put: 3821
              get: 4
              reply: 0
              ack: 0
              hello: 0
          received_stats:
              put: 3698
              get: 1
              reply: 3
              ack: 34
              hello: 0
          dropped_stats:
              put: 30
              get: 0
              reply: 0
              ack: 0
              hello: 0
          health stats:
              health value: 1000
              interrupts: 0
              dropped: 0
              aborted: 0
              no route: 0
              timeouts: 0
              error: 0
          tunables:
              peer_timeout: 180
              peer_credits: 8
              peer_buffer_credits: 0
              credits: 256
          dev cpt: -1
          CPT: \"[0]\"
"
        );
        // Whatever we print must be YAML a reader accepts.
        let v: serde_norway::Value = serde_norway::from_str(&show.to_yaml()).unwrap();
        assert_eq!(v["net"][0]["local NI(s)"][0]["CPT"], serde_norway::Value::from("[0]"));
    }

    #[test]
    fn peer_show_with_lnd_and_fallback() {
        let local = [LocalNi::up(nid("192.168.0.1@o2ib")), LocalNi::up(nid("10.0.0.1@tcp"))];
        let mut state = PeerState::new(nid("192.168.0.2@o2ib"), [nid("10.0.0.2@tcp")]);
        state.record_connect_failure(nid("192.168.0.2@o2ib"), "ECONNREFUSED", 100);
        let sel = select(&local, &state).unwrap();
        let plain = PeerState::new(nid("10.0.0.3@tcp"), []);
        let show = PeerShow {
            peers: vec![
                PeerShowPeer::from_state(&state, true, Some(&sel)),
                PeerShowPeer::from_state(&plain, false, None),
            ],
        };
        let out = show.to_yaml();
        assert_eq!(
            out,
            "\
peer:
    - primary nid: 192.168.0.2@o2ib
      Multi-Rail: True
      lnd: tcp
      fallback: \"o2ib connect failed: 192.168.0.2@o2ib: ECONNREFUSED\"
      peer ni:
        - nid: 192.168.0.2@o2ib
          state: NA
        - nid: 10.0.0.2@tcp
          state: NA
    - primary nid: 10.0.0.3@tcp
      Multi-Rail: False
      peer ni:
        - nid: 10.0.0.3@tcp
          state: NA
"
        );
        let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
        assert_eq!(
            v["peer"][0]["fallback"].as_str().unwrap(),
            "o2ib connect failed: 192.168.0.2@o2ib: ECONNREFUSED"
        );
        assert_eq!(v["peer"][1]["Multi-Rail"], serde_norway::Value::Bool(false));
    }

    #[test]
    fn verbose_peer_show() {
        let show = PeerShow {
            peers: vec![PeerShowPeer {
                primary_nid: nid("10.73.20.12@tcp"),
                multi_rail: true,
                lnd: Some(NetType::Tcp),
                fallback: None,
                nis: vec![PeerShowNi {
                    nid: nid("10.73.20.12@tcp"),
                    state: PeerNiLiveness::Up,
                    detail: Some(PeerShowNiDetail {
                        max_ni_tx_credits: 8,
                        available_tx_credits: 8,
                        min_tx_credits: 5,
                        available_rtr_credits: 8,
                        min_rtr_credits: 8,
                        refcount: 1,
                        statistics: MsgCounts { send_count: 1628, recv_count: 1628, drop_count: 0 },
                        health: PeerNiHealthStats {
                            health_value: Health::new(900),
                            dropped: 3,
                            error: 7,
                            ..Default::default()
                        },
                        ..Default::default()
                    }),
                }],
            }],
        };
        let out = show.to_yaml();
        assert!(out.starts_with(
            "peer:\n    - primary nid: 10.73.20.12@tcp\n      Multi-Rail: True\n      lnd: tcp\n      peer ni:\n        \
             - nid: 10.73.20.12@tcp\n          state: up\n          max_ni_tx_credits: 8\n          \
             available_tx_credits: 8\n          min_tx_credits: 5\n          tx_q_num_of_buf: 0\n"
        ), "{out}");
        assert!(out.ends_with(
            "          health stats:\n              health value: 900\n              dropped: 3\n              \
             timeout: 0\n              error: 7\n              network timeout: 0\n"
        ), "{out}");
        serde_norway::from_str::<serde_norway::Value>(&out).unwrap();
    }

    #[test]
    fn stats_show_keys_in_lnetctl_order() {
        let s = StatsShow { msgs_max: 126, send_count: 243901, drop_length: 7, ..Default::default() };
        let out = s.to_yaml();
        let keys: Vec<&str> = out.lines().skip(1).map(|l| l.trim().split(':').next().unwrap()).collect();
        assert_eq!(keys.len(), 24);
        assert_eq!(keys[..5], ["msgs_alloc", "msgs_max", "rst_alloc", "errors", "send_count"]);
        assert_eq!(keys[23], "drop_length");
        assert!(out.starts_with("statistics:\n    msgs_alloc: 0\n    msgs_max: 126\n"));
        assert!(out.contains("\n    send_count: 243901\n") && out.ends_with("    drop_length: 7\n"));
    }

    #[test]
    fn ping_output() {
        let r = PingReply {
            primary_nid: nid("10.1.1.67@tcp"),
            multi_rail: true,
            nids: vec![nid("10.1.1.67@tcp"), nid("192.168.1.67@o2ib")],
        };
        assert_eq!(
            r.to_yaml(),
            "\
ping:
    - primary nid: 10.1.1.67@tcp
      Multi-Rail: True
      peer ni:
        - nid: 10.1.1.67@tcp
        - nid: 192.168.1.67@o2ib
"
        );
        let f = PingFailure { nid: nid("10.1.1.99@tcp"), errno: Errno::EIO };
        let out = f.to_yaml();
        assert!(
            out.starts_with(
                "manage:\n    - ping:\n          errno: -5\n          descr: \"failed to ping 10.1.1.99@tcp: "
            ),
            "{out}"
        );
        let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
        assert_eq!(v["manage"][0]["ping"]["errno"], serde_norway::Value::from(-5));
    }
}
