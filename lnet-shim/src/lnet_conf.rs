//! lnet.conf: the YAML `lnetctl export` writes and `lnetctl import` reads
//! (`net:`, `peer:`, `route:`, `global:`). Reading accepts a full export
//! (status, statistics and the like are read and ignored) but refuses keys
//! lnetctl never writes, so a typo does not pass silently. Errors carry the
//! field path and the line. Writing produces what `lnetctl export --backup`
//! would, which this module reads back to the same configuration.

use crate::config::{GlobalSettings, LnetConfig, NetSpec, NiSpec, NiTunables, PeerSpec, RouteSpec};
use crate::error::ConfigError;
use crate::show::{cpt_node, interfaces_node, tunables_node};
use crate::yaml_out::{Node, raw, render, text};
use fabric::{Net, NetType, Nid};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _, IgnoredAny};
use std::collections::BTreeMap;

/// Parses a text field, naming it in the error: serde_norway places a
/// value's own error at the enclosing mapping, so the field name would
/// otherwise be lost.
fn parse_field<'de, D, T>(d: D, name: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s = String::deserialize(d)?;
    s.trim().parse().map_err(|e| D::Error::custom(format!("{name}: {e}")))
}

macro_rules! text_field {
    ($fn:ident, $ty:ty, $name:literal) => {
        fn $fn<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            parse_field(d, $name)
        }
    };
}

text_field!(de_net_type, Net, "net type");
text_field!(de_route_net, Net, "net");
text_field!(de_primary_nid, Nid, "primary nid");
text_field!(de_nid, Nid, "nid");
text_field!(de_gateway, Nid, "gateway");

fn de_opt_nid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nid>, D::Error> {
    parse_field(d, "nid").map(Some)
}

/// A flag as lnetctl writes it (`0`/`1`, `True`/`False`), naming the field on error.
fn parse_flag<'de, D: Deserializer<'de>>(d: D, name: &str) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        B(bool),
        N(u64),
    }
    match Raw::deserialize(d)
        .map_err(|_| D::Error::custom(format!("{name}: expected 0, 1, true or false")))?
    {
        Raw::B(b) => Ok(Some(b)),
        Raw::N(0) => Ok(Some(false)),
        Raw::N(1) => Ok(Some(true)),
        Raw::N(n) => Err(D::Error::custom(format!("{name}: expected 0 or 1, found {n}"))),
    }
}

macro_rules! flag_field {
    ($fn:ident, $name:literal) => {
        fn $fn<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
            parse_flag(d, $name)
        }
    };
}

flag_field!(de_multi_rail, "Multi-Rail");
flag_field!(de_discovery, "discovery");
flag_field!(de_drop_asym_route, "drop_asym_route");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    net: Option<Vec<NetDoc>>,
    peer: Option<Vec<PeerDoc>>,
    route: Option<Vec<RouteDoc>>,
    global: Option<GlobalDoc>,
    // Written by `lnetctl export`, configured elsewhere or not at all here.
    #[serde(rename = "routing")]
    _routing: Option<IgnoredAny>,
    #[serde(rename = "buffers")]
    _buffers: Option<IgnoredAny>,
    #[serde(rename = "udsp")]
    _udsp: Option<IgnoredAny>,
    #[serde(rename = "numa")]
    _numa: Option<IgnoredAny>,
    #[serde(rename = "discovery")]
    _discovery: Option<IgnoredAny>,
    #[serde(rename = "show")]
    _show: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetDoc {
    #[serde(rename = "net type", deserialize_with = "de_net_type")]
    net_type: Net,
    #[serde(rename = "local NI(s)")]
    local_nis: Option<Vec<NiDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NiDoc {
    #[serde(default, deserialize_with = "de_opt_nid")]
    nid: Option<Nid>,
    interfaces: Option<BTreeMap<u32, String>>,
    tunables: Option<TunablesDoc>,
    #[serde(rename = "CPT")]
    cpt: Option<String>,
    #[serde(rename = "status")]
    _status: Option<IgnoredAny>,
    #[serde(rename = "lnd tunables")]
    _lnd_tunables: Option<IgnoredAny>,
    #[serde(rename = "dev cpt")]
    _dev_cpt: Option<IgnoredAny>,
    #[serde(rename = "tcp bonding")]
    _tcp_bonding: Option<IgnoredAny>,
    #[serde(rename = "statistics")]
    _statistics: Option<IgnoredAny>,
    #[serde(rename = "sent_stats")]
    _sent: Option<IgnoredAny>,
    #[serde(rename = "received_stats")]
    _received: Option<IgnoredAny>,
    #[serde(rename = "dropped_stats")]
    _dropped: Option<IgnoredAny>,
    #[serde(rename = "health stats")]
    _health: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TunablesDoc {
    peer_timeout: Option<u32>,
    peer_credits: Option<u32>,
    peer_buffer_credits: Option<u32>,
    credits: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerDoc {
    #[serde(rename = "primary nid", deserialize_with = "de_primary_nid")]
    primary_nid: Nid,
    #[serde(rename = "Multi-Rail", default, deserialize_with = "de_multi_rail")]
    multi_rail: Option<bool>,
    #[serde(rename = "peer ni")]
    peer_ni: Option<Vec<PeerNiDoc>>,
    // Our own keys from `peer show`, harmless if pasted back.
    #[serde(rename = "lnd")]
    _lnd: Option<IgnoredAny>,
    #[serde(rename = "fallback")]
    _fallback: Option<IgnoredAny>,
    #[serde(rename = "peer state")]
    _peer_state: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerNiDoc {
    #[serde(deserialize_with = "de_nid")]
    nid: Nid,
    #[serde(rename = "state")]
    _state: Option<IgnoredAny>,
    #[serde(rename = "max_ni_tx_credits")]
    _a: Option<IgnoredAny>,
    #[serde(rename = "available_tx_credits")]
    _b: Option<IgnoredAny>,
    #[serde(rename = "min_tx_credits")]
    _c: Option<IgnoredAny>,
    #[serde(rename = "tx_q_num_of_buf")]
    _d: Option<IgnoredAny>,
    #[serde(rename = "available_rtr_credits")]
    _e: Option<IgnoredAny>,
    #[serde(rename = "min_rtr_credits")]
    _f: Option<IgnoredAny>,
    #[serde(rename = "refcount")]
    _g: Option<IgnoredAny>,
    #[serde(rename = "statistics")]
    _h: Option<IgnoredAny>,
    #[serde(rename = "sent_stats")]
    _i: Option<IgnoredAny>,
    #[serde(rename = "received_stats")]
    _j: Option<IgnoredAny>,
    #[serde(rename = "dropped_stats")]
    _k: Option<IgnoredAny>,
    #[serde(rename = "health stats")]
    _l: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    #[serde(deserialize_with = "de_route_net")]
    net: Net,
    #[serde(deserialize_with = "de_gateway")]
    gateway: Nid,
    hop: Option<i64>,
    priority: Option<u32>,
    #[serde(rename = "health_sensitivity")]
    _health_sensitivity: Option<IgnoredAny>,
    #[serde(rename = "state")]
    _state: Option<IgnoredAny>,
    #[serde(rename = "type")]
    _type: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalDoc {
    numa_range: Option<u32>,
    #[serde(alias = "max_interfaces")]
    max_intf: Option<u32>,
    #[serde(default, deserialize_with = "de_discovery")]
    discovery: Option<bool>,
    #[serde(default, deserialize_with = "de_drop_asym_route")]
    drop_asym_route: Option<bool>,
    retry_count: Option<u32>,
    transaction_timeout: Option<u32>,
    health_sensitivity: Option<u32>,
    recovery_interval: Option<u32>,
    router_sensitivity: Option<u32>,
    response_tracking: Option<u32>,
    recovery_limit: Option<u32>,
    max_recovery_ping_interval: Option<u32>,
    // Derived from transaction_timeout and retry_count.
    #[serde(rename = "lnd_timeout")]
    _lnd_timeout: Option<IgnoredAny>,
}

fn field(path: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field { field: path, reason: reason.into() }
}

fn parse_cpt_list(path: &str, text: &str) -> Result<Vec<u32>, ConfigError> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| field(path.to_string(), format!("`{text}` is not a CPT list like \"[0,1]\"")))?;
    inner
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| field(path.to_string(), format!("CPT `{}` is not a number", s.trim())))
        })
        .collect()
}

fn tunables(doc: Option<TunablesDoc>) -> NiTunables {
    let d = NiTunables::default();
    match doc {
        None => d,
        Some(t) => NiTunables {
            peer_timeout: t.peer_timeout.unwrap_or(d.peer_timeout),
            peer_credits: t.peer_credits.unwrap_or(d.peer_credits),
            peer_buffer_credits: t.peer_buffer_credits.unwrap_or(d.peer_buffer_credits),
            credits: t.credits.unwrap_or(d.credits),
        },
    }
}

impl LnetConfig {
    /// Reads lnet.conf YAML.
    pub fn from_yaml(text: &str) -> Result<LnetConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(LnetConfig::default());
        }
        let doc: Doc = serde_norway::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let mut cfg = LnetConfig::default();

        for (i, net) in doc.net.unwrap_or_default().into_iter().enumerate() {
            let n = net.net_type;
            let path = format!("net[{i}] ({n})");
            if n.kind == NetType::Lo {
                // lnetctl exports the loopback network; it is always there.
                continue;
            }
            let nis_doc = net.local_nis.unwrap_or_default();
            if nis_doc.is_empty() {
                return Err(field(path, "`local NI(s)` lists no NI"));
            }
            let mut nis = Vec::new();
            let mut net_tunables: Option<NiTunables> = None;
            for (j, ni) in nis_doc.into_iter().enumerate() {
                let path = format!("{path}.local NI(s)[{j}]");
                let address = match ni.nid {
                    Some(nid) if nid.net != n => {
                        return Err(field(format!("{path}.nid"), format!("{nid} is not on network {n}")));
                    }
                    Some(nid) => Some(nid.addr),
                    None => None,
                };
                let cpts = match &ni.cpt {
                    Some(c) => parse_cpt_list(&format!("{path}.CPT"), c)?,
                    None => Vec::new(),
                };
                let t = tunables(ni.tunables);
                match net_tunables {
                    Some(prev) if prev != t => {
                        return Err(field(
                            format!("{path}.tunables"),
                            format!("differ from the first NI of {n}; tunables apply to a whole network"),
                        ));
                    }
                    _ => net_tunables = Some(t),
                }
                let ifaces: Vec<String> = ni.interfaces.unwrap_or_default().into_values().collect();
                // Neither `interfaces` nor `nid`: the network's default
                // interface, as `networks="tcp"` means and exports.
                if ifaces.len() > 1 && address.is_some() {
                    return Err(field(path, "a `nid` cannot apply to several interfaces"));
                }
                if ifaces.is_empty() {
                    nis.push(NiSpec { interface: None, address, cpts: cpts.clone() });
                }
                for name in ifaces {
                    if name.trim().is_empty() || name.contains(char::is_whitespace) {
                        return Err(field(
                            format!("{path}.interfaces"),
                            format!("bad interface name `{name}`"),
                        ));
                    }
                    nis.push(NiSpec { interface: Some(name), address, cpts: cpts.clone() });
                }
            }
            let tunables = net_tunables.unwrap_or_default();
            match cfg.nets.iter_mut().find(|s| s.net == n) {
                Some(existing) if existing.tunables != tunables => {
                    return Err(field(path, format!("network {n} appears twice with different tunables")));
                }
                Some(existing) => existing.nis.extend(nis),
                None => cfg.nets.push(NetSpec { net: n, nis, tunables }),
            }
            let spec = cfg.net(n).expect("just added");
            for (a, ni) in spec.nis.iter().enumerate() {
                if spec.nis[..a].contains(ni) {
                    let what = ni.interface.clone().or(ni.address.map(|a| a.to_string())).unwrap_or_default();
                    return Err(field(format!("net[{i}] ({n})"), format!("NI `{what}` is listed twice")));
                }
            }
        }

        for (i, peer) in doc.peer.unwrap_or_default().into_iter().enumerate() {
            let primary = peer.primary_nid;
            let mut nids = vec![primary];
            for ni in peer.peer_ni.unwrap_or_default() {
                if !nids.contains(&ni.nid) {
                    nids.push(ni.nid);
                }
            }
            if cfg.peers.iter().any(|p| p.nids.iter().any(|n| nids.contains(n))) {
                return Err(field(format!("peer[{i}] ({primary})"), "shares a NID with an earlier peer"));
            }
            cfg.peers.push(PeerSpec {
                primary_nid: primary,
                nids,
                multi_rail: peer.multi_rail.unwrap_or(false),
            });
        }

        for (i, route) in doc.route.unwrap_or_default().into_iter().enumerate() {
            let path = format!("route[{i}]");
            let (net, gateway) = (route.net, route.gateway);
            let hops = match route.hop {
                None | Some(-1) => None,
                Some(h @ 1..=255) => Some(h as u32),
                Some(h) => return Err(field(format!("{path}.hop"), format!("{h} is not -1 or in 1..=255"))),
            };
            if gateway.net == net {
                return Err(field(
                    format!("{path}.gateway"),
                    format!("{gateway} is on the network it routes to"),
                ));
            }
            if net.kind == NetType::Lo || gateway.net.kind == NetType::Lo {
                return Err(field(path, "routes cannot involve the loopback network"));
            }
            cfg.routes.push(RouteSpec { net, gateway, hops, priority: route.priority.unwrap_or(0) });
        }

        if let Some(g) = doc.global {
            let d = GlobalSettings::default();
            cfg.global = GlobalSettings {
                numa_range: g.numa_range.unwrap_or(d.numa_range),
                max_intf: g.max_intf.unwrap_or(d.max_intf),
                discovery: g.discovery.unwrap_or(d.discovery),
                drop_asym_route: g.drop_asym_route.unwrap_or(d.drop_asym_route),
                retry_count: g.retry_count.unwrap_or(d.retry_count),
                transaction_timeout: g.transaction_timeout.unwrap_or(d.transaction_timeout),
                health_sensitivity: g.health_sensitivity.unwrap_or(d.health_sensitivity),
                recovery_interval: g.recovery_interval.unwrap_or(d.recovery_interval),
                router_sensitivity: g.router_sensitivity.unwrap_or(d.router_sensitivity),
                response_tracking: g.response_tracking.unwrap_or(d.response_tracking),
                recovery_limit: g.recovery_limit.unwrap_or(d.recovery_limit),
                max_recovery_ping_interval: g
                    .max_recovery_ping_interval
                    .unwrap_or(d.max_recovery_ping_interval),
            };
            cfg.global.validate()?;
        }
        Ok(cfg)
    }

    /// Writes lnet.conf YAML in `lnetctl export --backup` form.
    pub fn to_yaml(&self) -> String {
        let mut doc: Vec<(String, Node)> = Vec::new();
        if !self.nets.is_empty() {
            let nets = self.nets.iter().map(|net| {
                let nis = net.nis.iter().map(|ni| {
                    let mut e: Vec<(String, Node)> = Vec::new();
                    if let Some(a) = ni.address {
                        e.push(("nid".into(), text(Nid::new(a, net.net).to_string())));
                    }
                    if let Some(name) = &ni.interface {
                        e.push(("interfaces".into(), interfaces_node(std::slice::from_ref(name))));
                    }
                    e.push(("tunables".into(), tunables_node(&net.tunables)));
                    if !ni.cpts.is_empty() {
                        e.push(("CPT".into(), cpt_node(&ni.cpts)));
                    }
                    Node::Map(e)
                });
                Node::Map(vec![
                    ("net type".into(), text(net.net.to_string())),
                    ("local NI(s)".into(), Node::Seq(nis.collect())),
                ])
            });
            doc.push(("net".into(), Node::Seq(nets.collect())));
        }
        if !self.routes.is_empty() {
            let routes = self.routes.iter().map(|r| {
                Node::Map(vec![
                    ("net".into(), text(r.net.to_string())),
                    ("gateway".into(), text(r.gateway.to_string())),
                    ("hop".into(), raw(r.hops.map_or(-1, i64::from))),
                    ("priority".into(), raw(r.priority)),
                ])
            });
            doc.push(("route".into(), Node::Seq(routes.collect())));
        }
        if !self.peers.is_empty() {
            let peers = self.peers.iter().map(|p| {
                let nis = p.nids.iter().map(|n| Node::Map(vec![("nid".into(), text(n.to_string()))]));
                Node::Map(vec![
                    ("primary nid".into(), text(p.primary_nid.to_string())),
                    ("Multi-Rail".into(), raw(if p.multi_rail { "True" } else { "False" })),
                    ("peer ni".into(), Node::Seq(nis.collect())),
                ])
            });
            doc.push(("peer".into(), Node::Seq(peers.collect())));
        }
        let g = &self.global;
        let flag = |b: bool| raw(u8::from(b));
        doc.push((
            "global".into(),
            Node::Map(vec![
                ("numa_range".into(), raw(g.numa_range)),
                ("max_intf".into(), raw(g.max_intf)),
                ("discovery".into(), flag(g.discovery)),
                ("drop_asym_route".into(), flag(g.drop_asym_route)),
                ("retry_count".into(), raw(g.retry_count)),
                ("transaction_timeout".into(), raw(g.transaction_timeout)),
                ("health_sensitivity".into(), raw(g.health_sensitivity)),
                ("recovery_interval".into(), raw(g.recovery_interval)),
                ("router_sensitivity".into(), raw(g.router_sensitivity)),
                ("lnd_timeout".into(), raw(g.lnd_timeout().as_secs())),
                ("response_tracking".into(), raw(g.response_tracking)),
                ("recovery_limit".into(), raw(g.recovery_limit)),
                ("max_recovery_ping_interval".into(), raw(g.max_recovery_ping_interval)),
            ]),
        ));
        render(&doc)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_ni_without_interface_is_the_default_interface_and_round_trips() {
        let c = super::LnetConfig::from_networks("tcp,o2ib").unwrap();
        let back = super::LnetConfig::from_yaml(&c.to_yaml()).unwrap();
        assert_eq!(back.nets, c.nets);
    }

    use super::*;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn nid(s: &str) -> Nid {
        s.parse().unwrap()
    }

    /// What `lnetctl export --backup` writes after `lnetctl route add`
    /// (the shape of Lustre's sanity-lnet expectations).
    const BACKUP_EXPORT: &str = "\
net:
    - net type: tcp
      local NI(s):
        - interfaces:
              0: eth0
          tunables:
              peer_timeout: 180
              peer_credits: 8
              peer_buffer_credits: 0
              credits: 256
          lnd tunables:
              conns_per_peer: 1
route:
    - net: tcp8
      gateway: 8.8.8.10@tcp
      hop: -1
      priority: 0
      health_sensitivity: 1
    - net: tcp8
      gateway: 8.8.8.9@tcp
      hop: 2
      priority: 1
      health_sensitivity: 1
peer:
    - primary nid: 8.8.8.9@tcp
      Multi-Rail: False
      peer ni:
        - nid: 8.8.8.9@tcp
    - primary nid: 8.8.8.10@tcp
      Multi-Rail: False
      peer ni:
        - nid: 8.8.8.10@tcp
global:
    numa_range: 0
    max_intf: 200
    discovery: 1
    drop_asym_route: 0
    retry_count: 2
    transaction_timeout: 50
    health_sensitivity: 100
    recovery_interval: 1
    router_sensitivity: 100
    lnd_timeout: 16
    response_tracking: 3
    recovery_limit: 0
";

    /// A full `lnetctl export` (with statistics) of a multi-rail server.
    const FULL_EXPORT: &str = "\
net:
    - net type: lo
      local NI(s):
        - nid: 0@lo
          status: up
          statistics:
              send_count: 942
              recv_count: 942
              drop_count: 0
          tunables:
              peer_timeout: 0
              peer_credits: 0
              peer_buffer_credits: 0
              credits: 0
          dev cpt: 0
          tcp bonding: 0
          CPT: \"[0]\"
    - net type: o2ib1
      local NI(s):
        - nid: 192.168.1.71@o2ib1
          status: up
          interfaces:
              0: ib0
          statistics:
              send_count: 171621
              recv_count: 459717
              drop_count: 0
          sent_stats:
              put: 119492
              get: 52129
              reply: 0
              ack: 0
              hello: 0
          received_stats:
              put: 119492
              get: 0
              reply: 340225
              ack: 0
              hello: 0
          dropped_stats:
              put: 0
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
              peer_timeout: 100
              peer_credits: 32
              peer_buffer_credits: 0
              credits: 2048
          lnd tunables:
              peercredits_hiw: 16
              map_on_demand: 1
              concurrent_sends: 64
              fmr_pool_size: 512
              fmr_flush_trigger: 384
              fmr_cache: 1
              ntx: 512
              conns_per_peer: 1
          dev cpt: 1
          CPT: \"[0,1]\"
        - nid: 192.168.2.71@o2ib1
          status: up
          interfaces:
              0: ib1
          tunables:
              peer_timeout: 100
              peer_credits: 32
              peer_buffer_credits: 0
              credits: 2048
          CPT: \"[0,1]\"
peer:
    - primary nid: 10.73.20.12@tcp
      Multi-Rail: True
      peer ni:
        - nid: 10.73.20.12@tcp
          state: NA
          max_ni_tx_credits: 8
          available_tx_credits: 8
          min_tx_credits: 5
          tx_q_num_of_buf: 0
          available_rtr_credits: 8
          min_rtr_credits: 8
          refcount: 1
          statistics:
              send_count: 1628
              recv_count: 1628
              drop_count: 0
          health stats:
              health value: 1000
              dropped: 3
              timeout: 0
              error: 7
              network timeout: 0
        - nid: 192.168.1.12@o2ib1
          state: NA
global:
    numa_range: 0
    max_interfaces: 200
    discovery: 1
    drop_asym_route: 0
";

    #[test]
    fn reads_a_backup_export() {
        let c = LnetConfig::from_yaml(BACKUP_EXPORT).unwrap();
        assert_eq!(c.nets, vec![NetSpec::new(Net::tcp(0), vec![NiSpec::interface("eth0")])]);
        assert_eq!(
            c.routes,
            vec![
                RouteSpec { net: Net::tcp(8), gateway: nid("8.8.8.10@tcp"), hops: None, priority: 0 },
                RouteSpec { net: Net::tcp(8), gateway: nid("8.8.8.9@tcp"), hops: Some(2), priority: 1 },
            ]
        );
        assert_eq!(c.peers.len(), 2);
        assert_eq!(
            c.peers[0],
            PeerSpec { primary_nid: nid("8.8.8.9@tcp"), nids: vec![nid("8.8.8.9@tcp")], multi_rail: false }
        );
        assert_eq!(c.global.transaction_timeout, 50);
        assert_eq!(c.global.retry_count, 2);
        assert!(c.global.discovery && !c.global.drop_asym_route);
    }

    #[test]
    fn reads_a_full_export_ignoring_counters() {
        let c = LnetConfig::from_yaml(FULL_EXPORT).unwrap();
        assert_eq!(c.nets.len(), 1, "lo is implicit");
        let o2ib = &c.nets[0];
        assert_eq!(o2ib.net, Net::o2ib(1));
        assert_eq!(
            o2ib.tunables,
            NiTunables { peer_timeout: 100, peer_credits: 32, peer_buffer_credits: 0, credits: 2048 }
        );
        assert_eq!(o2ib.nis.len(), 2);
        assert_eq!(o2ib.nis[0].interface.as_deref(), Some("ib0"));
        assert_eq!(o2ib.nis[0].address, Some("192.168.1.71".parse::<IpAddr>().unwrap()));
        assert_eq!(o2ib.nis[1].cpts, [0, 1]);
        assert_eq!(c.peers[0].nids, [nid("10.73.20.12@tcp"), nid("192.168.1.12@o2ib1")]);
        assert!(c.peers[0].multi_rail);
        assert_eq!(c.global.max_intf, 200);
        assert_eq!(c.global.transaction_timeout, 150, "missing keys take LNet defaults");
    }

    #[test]
    fn small_hand_written_files() {
        assert_eq!(LnetConfig::from_yaml("").unwrap(), LnetConfig::default());
        let c = LnetConfig::from_yaml(
            "net:\n  - net type: tcp1\n    local NI(s):\n      - interfaces: {0: eth1, 1: eth2}\n",
        )
        .unwrap();
        assert_eq!(c.nets[0].nis, vec![NiSpec::interface("eth1"), NiSpec::interface("eth2")]);
        let c =
            LnetConfig::from_yaml("net:\n- net type: tcp\n  local NI(s):\n  - nid: 127.0.0.2@tcp\n").unwrap();
        assert_eq!(
            c.nets[0].nis[0],
            NiSpec { address: Some("127.0.0.2".parse().unwrap()), ..NiSpec::default() }
        );
        let c = LnetConfig::from_yaml("global:\n    discovery: false\n    retry_count: 0\n").unwrap();
        assert!(!c.global.discovery);
        assert_eq!(c.global.retry_count, 0);
        // The same network written twice merges.
        let c = LnetConfig::from_yaml(
            "net:\n- net type: tcp\n  local NI(s):\n  - interfaces: {0: eth0}\n- net type: tcp\n  local NI(s):\n  - interfaces: {0: eth1}\n",
        )
        .unwrap();
        assert_eq!(c.nets.len(), 1);
        assert_eq!(c.nets[0].nis.len(), 2);
    }

    #[test]
    fn broken_files_name_the_field_and_line() {
        let mut wrong = Vec::new();
        for (text, want) in [
            (
                "net:\n    - net type: eth\n",
                "net[0]: net type: bad network in `eth`: unknown network type `eth`",
            ),
            ("net:\n    - net type: eth\n", "line 2"),
            (
                "net:\n    - net type: tcp\n      local NI(s):\n        - interfaces:\n              0: eth0\n          tunables:\n              peer_credit: 8\n",
                "net[0].local NI(s)[0].tunables: unknown field `peer_credit`",
            ),
            (
                "net:\n    - net type: tcp\n      local NI(s):\n        - interfaces:\n              0: eth0\n          tunables:\n              peer_credits: lots\n",
                "line 7",
            ),
            ("nets:\n    - net type: tcp\n", "unknown field `nets`"),
            (
                "peer:\n    - primary nid: 10.0.0.300@tcp\n",
                "peer[0]: primary nid: bad address in `10.0.0.300@tcp`",
            ),
            (
                "peer:\n    - primary nid: 10.0.0.3@tcp\n      Multi-Rail: maybe\n",
                "peer[0]: Multi-Rail: expected 0, 1, true or false",
            ),
            (
                "route:\n    - net: tcp8\n      gateway: 8.8.8.8\n",
                "route[0]: gateway: bad nid in `8.8.8.8`: missing `@NET`",
            ),
            ("route:\n    - net: tcp8\n", "route[0]: missing field `gateway`"),
            (
                "global:\n    transaction_timeout: -5\n",
                "global.transaction_timeout: invalid type: integer `-5`, expected u32 at line 2",
            ),
            ("net: [\n", "did not find expected"),
            ("net:\n    - net type: tcp\n", "net[0] (tcp): `local NI(s)` lists no NI"),
            (
                "net:\n    - net type: tcp\n      local NI(s):\n        - nid: 10.0.0.1@tcp1\n",
                "net[0] (tcp).local NI(s)[0].nid: 10.0.0.1@tcp1 is not on network tcp",
            ),
            (
                "net:\n    - net type: tcp\n      local NI(s):\n        - interfaces: {0: eth0}\n        - interfaces: {0: eth0}\n",
                "net[0] (tcp): NI `eth0` is listed twice",
            ),
            (
                "net:\n    - net type: tcp\n      local NI(s):\n        - interfaces: {0: eth0}\n        - interfaces: {0: eth1}\n          tunables: {peer_credits: 16}\n",
                "net[0] (tcp).local NI(s)[1].tunables: differ from the first NI of tcp",
            ),
            (
                "net:\n    - net type: tcp\n      local NI(s):\n        - interfaces: {0: eth0}\n          CPT: \"[0,x]\"\n",
                "net[0] (tcp).local NI(s)[0].CPT: CPT `x` is not a number",
            ),
            (
                "route:\n    - net: tcp8\n      gateway: 8.8.8.8@tcp8\n",
                "route[0].gateway: 8.8.8.8@tcp8 is on the network it routes to",
            ),
            (
                "route:\n    - net: tcp8\n      gateway: 8.8.8.8@tcp\n      hop: 0\n",
                "route[0].hop: 0 is not -1 or in 1..=255",
            ),
            (
                "peer:\n    - primary nid: 10.0.0.3@tcp\n    - primary nid: 10.0.0.4@tcp\n      peer ni:\n        - nid: 10.0.0.3@tcp\n",
                "peer[1] (10.0.0.4@tcp): shares a NID with an earlier peer",
            ),
            (
                "global:\n    health_sensitivity: 2000\n",
                "global.health_sensitivity: 2000 is more than the maximum",
            ),
            ("global:\n    discovery: 2\n", "global: discovery: expected 0 or 1, found 2"),
        ] {
            let e = LnetConfig::from_yaml(text).expect_err(text);
            let msg = e.to_string();
            if !msg.contains(want) || !msg.starts_with("lnet.conf: ") {
                wrong.push(format!("{text}=> {msg}\nwanted: {want}\n"));
            }
            assert_eq!(e.errno(), fabric::Errno::EINVAL);
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn export_is_lnetctl_shaped() {
        let mut c = LnetConfig::from_networks("tcp(eth0)").unwrap();
        c.routes.push(RouteSpec { net: Net::tcp(7), gateway: nid("7.7.7.7@tcp"), hops: None, priority: 0 });
        c.peers.push(PeerSpec {
            primary_nid: nid("7.7.7.7@tcp"),
            nids: vec![nid("7.7.7.7@tcp")],
            multi_rail: false,
        });
        assert_eq!(
            c.to_yaml(),
            "\
net:
    - net type: tcp
      local NI(s):
        - interfaces:
              0: eth0
          tunables:
              peer_timeout: 180
              peer_credits: 8
              peer_buffer_credits: 0
              credits: 256
route:
    - net: tcp7
      gateway: 7.7.7.7@tcp
      hop: -1
      priority: 0
peer:
    - primary nid: 7.7.7.7@tcp
      Multi-Rail: False
      peer ni:
        - nid: 7.7.7.7@tcp
global:
    numa_range: 0
    max_intf: 200
    discovery: 1
    drop_asym_route: 0
    retry_count: 2
    transaction_timeout: 150
    health_sensitivity: 100
    recovery_interval: 1
    router_sensitivity: 100
    lnd_timeout: 50
    response_tracking: 3
    recovery_limit: 0
    max_recovery_ping_interval: 900
"
        );
    }

    #[test]
    fn real_exports_round_trip() {
        for text in [BACKUP_EXPORT, FULL_EXPORT] {
            let c = LnetConfig::from_yaml(text).unwrap();
            let again = LnetConfig::from_yaml(&c.to_yaml()).unwrap();
            assert_eq!(again, c);
            assert_eq!(again.to_yaml(), c.to_yaml());
        }
    }

    fn arb_net() -> impl Strategy<Value = Net> {
        (any::<bool>(), 0u32..4).prop_map(|(ib, n)| if ib { Net::o2ib(n) } else { Net::tcp(n) })
    }

    fn arb_nid() -> impl Strategy<Value = Nid> {
        (any::<[u8; 4]>(), arb_net()).prop_map(|(a, n)| Nid::new(IpAddr::from(a), n))
    }

    fn arb_config() -> impl Strategy<Value = LnetConfig> {
        let ni = (
            prop::option::of("[a-z]{2,5}[0-9]"),
            prop::option::of(any::<[u8; 4]>()),
            prop::collection::vec(0u32..8, 0..3),
        )
            .prop_filter("an NI needs an interface or an address", |(i, a, _)| i.is_some() || a.is_some())
            .prop_map(|(interface, address, mut cpts)| {
                cpts.dedup();
                NiSpec { interface, address: address.map(IpAddr::from), cpts }
            });
        let tunables = (0u32..500, 1u32..64, 0u32..64, 1u32..4096).prop_map(|(a, b, c, d)| NiTunables {
            peer_timeout: a,
            peer_credits: b,
            peer_buffer_credits: c,
            credits: d,
        });
        let net = (arb_net(), prop::collection::vec(ni, 1..4), tunables);
        let nets = prop::collection::vec(net, 0..4).prop_map(|v| {
            let mut out: Vec<NetSpec> = Vec::new();
            for (net, mut nis, tunables) in v {
                if out.iter().any(|n| n.net == net) {
                    continue;
                }
                let mut uniq: Vec<NiSpec> = Vec::new();
                nis.retain(|n| {
                    let new = !uniq.contains(n);
                    uniq.push(n.clone());
                    new
                });
                out.push(NetSpec { net, nis, tunables });
            }
            out
        });
        let peers = prop::collection::vec((prop::collection::vec(arb_nid(), 1..4), any::<bool>()), 0..4)
            .prop_map(|v| {
                let mut out: Vec<PeerSpec> = Vec::new();
                for (mut nids, multi_rail) in v {
                    nids.dedup();
                    if out.iter().any(|p| p.nids.iter().any(|n| nids.contains(n)))
                        || nids.iter().skip(1).any(|n| *n == nids[0])
                    {
                        continue;
                    }
                    out.push(PeerSpec { primary_nid: nids[0], nids, multi_rail });
                }
                out
            });
        let routes =
            prop::collection::vec((arb_net(), arb_nid(), prop::option::of(1u32..=255), 0u32..10), 0..4)
                .prop_map(|v| {
                    v.into_iter()
                        .filter(|(net, gw, _, _)| gw.net != *net)
                        .map(|(net, gateway, hops, priority)| RouteSpec { net, gateway, hops, priority })
                        .collect()
                });
        let global = (0u32..5, any::<bool>(), 1u32..300, 0u32..=1000).prop_map(|(retry, disc, tt, hs)| {
            GlobalSettings {
                retry_count: retry,
                discovery: disc,
                transaction_timeout: tt.max(retry),
                health_sensitivity: hs,
                ..GlobalSettings::default()
            }
        });
        (nets, peers, routes, global).prop_map(|(nets, peers, routes, global)| LnetConfig {
            nets,
            peers,
            routes,
            global,
        })
    }

    proptest! {
        #[test]
        fn parse_export_parse_round_trips(c in arb_config()) {
            let text = c.to_yaml();
            let back = LnetConfig::from_yaml(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&back, &c);
        }

        #[test]
        fn garbage_never_panics(s in "[a-zA-Z :\\-\\n0-9@.\\[\\]{}]{0,120}") {
            let _ = LnetConfig::from_yaml(&s);
        }
    }
}
