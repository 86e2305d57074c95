//! This node's NIs as `lnetctl net show` lists them. The networks come
//! from `GLINT_NETWORKS` (module-parameter syntax, `o2ib(ib0),tcp(eth0)`),
//! else /etc/lnet.conf (lnetctl's YAML), else glint's default: o2ib on
//! the first usable interface (RDMA first) and tcp on every up,
//! non-loopback interface. `0@lo` is always there. An o2ib NI is down
//! when the node has no usable RDMA device, with the reason.

use fabric::{Net, NetType, Nid};
use lnet_shim::{
    ConfigError, HostInterfaces, LnetConfig, LocalNi, MsgCounts, NetShow, NetShowNet, NetShowNi,
    NetShowNiDetail, NetSpec, NiHealthStats, NiSpec, NiStatus, ResolvedNi,
};

/// Where the configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Env,
    File(String),
    Default,
}

pub const ENV: &str = "GLINT_NETWORKS";
pub const LNET_CONF: &str = "/etc/lnet.conf";

/// Whether this node can run the o2ib LND; the reason completes "no
/// RDMA device: ...", as NI selection reports a fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rdma {
    Usable,
    Unusable(String),
}

/// Looks at /sys/class/infiniband, then asks verbs for an active port.
pub fn probe_rdma() -> Rdma {
    let dir = "/sys/class/infiniband";
    match std::fs::read_dir(dir).map(|mut d| d.next().is_none()) {
        Err(_) => return Rdma::Unusable(format!("{dir} is missing")),
        Ok(true) => return Rdma::Unusable(format!("{dir} is empty")),
        Ok(false) => {}
    }
    match fabric::o2ib::list_devices() {
        Ok(devs) if devs.iter().any(|d| d.ports.iter().any(|p| p.active)) => Rdma::Usable,
        Ok(_) => Rdma::Unusable("no RDMA port is active".into()),
        Err(fabric::o2ib::O2ibError::NoRdmaDevice) => Rdma::Unusable("libibverbs lists none".into()),
        Err(e) => Rdma::Unusable(e.to_string()),
    }
}

/// glint's networks when nothing is configured.
pub fn default_config(host: &HostInterfaces) -> LnetConfig {
    let usable: Vec<NiSpec> =
        host.iter().filter(|i| i.usable()).map(|i| NiSpec::interface(&i.name)).collect();
    let mut nets = Vec::new();
    if let Some(first) = usable.first() {
        nets.push(NetSpec::new(Net::o2ib(0), vec![first.clone()]));
        nets.push(NetSpec::new(Net::tcp(0), usable));
    }
    LnetConfig::with_nets(nets)
}

/// The configuration in force, and where it came from.
pub fn load(host: &HostInterfaces) -> Result<(LnetConfig, Source), ConfigError> {
    if let Ok(text) = std::env::var(ENV) {
        return Ok((LnetConfig::from_networks(&text)?, Source::Env));
    }
    match std::fs::read_to_string(LNET_CONF) {
        Ok(text) => Ok((LnetConfig::from_yaml(&text)?, Source::File(LNET_CONF.into()))),
        Err(_) => Ok((default_config(host), Source::Default)),
    }
}

/// One local NI with its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNet {
    pub ni: ResolvedNi,
    pub status: NiStatus,
}

/// Resolves every configured NI on `host`. An o2ib network that cannot
/// be resolved (its interface is absent, as on a node without an HCA) is
/// skipped with a note rather than failing the others; a tcp one fails.
pub fn local_nis(
    cfg: &LnetConfig,
    host: &HostInterfaces,
    rdma: &Rdma,
) -> Result<(Vec<LocalNet>, Vec<String>), ConfigError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for net in &cfg.nets {
        let one = LnetConfig::with_nets(vec![net.clone()]);
        let resolved = match one.resolve(host) {
            Ok(r) => r,
            Err(e) if net.net.kind == NetType::O2ib => {
                notes.push(format!("{}: not started: {e}", net.net));
                continue;
            }
            Err(e) => return Err(e),
        };
        for ni in resolved {
            let status = match (ni.nid.net.kind, rdma) {
                (NetType::O2ib, Rdma::Unusable(reason)) => {
                    notes.push(format!("{}: down: no RDMA device: {reason}", ni.nid));
                    NiStatus::Down { reason: reason.clone() }
                }
                _ => NiStatus::Up,
            };
            out.push(LocalNet { ni, status });
        }
    }
    Ok((out, notes))
}

/// The CPTs an NI runs on when it names none: one per NUMA node.
fn all_cpts() -> Vec<u32> {
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("node").is_some_and(|i| i.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);
    (0..nodes.max(1) as u32).collect()
}

/// `lnetctl net show [-v]`: the counters are those of this command's
/// process, which has sent nothing (a running server's are in its metrics).
pub fn net_show(nis: &[LocalNet], verbose: bool) -> NetShow {
    let detail = |ni: &ResolvedNi| {
        verbose.then(|| NetShowNiDetail {
            statistics: MsgCounts::default(),
            health: NiHealthStats { health_value: lnet_shim::Health::MAX, ..Default::default() },
            tunables: ni.tunables,
            dev_cpt: -1,
            cpts: if ni.cpts.is_empty() { all_cpts() } else { ni.cpts.clone() },
            ..Default::default()
        })
    };
    let mut nets = vec![NetShowNet {
        net: Net::LO,
        nis: vec![NetShowNi { nid: Nid::LO, status: NiStatus::Up, interfaces: vec![], detail: None }],
    }];
    for l in nis {
        let ni = NetShowNi {
            nid: l.ni.nid,
            status: l.status.clone(),
            interfaces: l.ni.interface.iter().cloned().collect(),
            detail: detail(&l.ni),
        };
        match nets.iter_mut().find(|n| n.net == l.ni.nid.net) {
            Some(n) => n.nis.push(ni),
            None => nets.push(NetShowNet { net: l.ni.nid.net, nis: vec![ni] }),
        }
    }
    NetShow { nets }
}

/// The NIs as NI selection sees them.
pub fn selection_nis(nis: &[LocalNet]) -> Vec<LocalNi> {
    nis.iter()
        .map(|l| match &l.status {
            NiStatus::Up => LocalNi::up(l.ni.nid),
            NiStatus::Down { reason } => LocalNi::down(l.ni.nid, reason.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnet_shim::Interface;
    use std::net::Ipv4Addr;

    fn host() -> HostInterfaces {
        HostInterfaces::new(vec![
            Interface { name: "lo".into(), ipv4: vec![Ipv4Addr::LOCALHOST], up: true, loopback: true },
            Interface::up("eth0", &[Ipv4Addr::new(10, 0, 0, 1)]),
            Interface::up("eth1", &[Ipv4Addr::new(10, 1, 0, 1)]),
        ])
    }

    #[test]
    fn default_is_o2ib_then_tcp_on_every_interface() {
        let no_rdma = Rdma::Unusable("/sys/class/infiniband is missing".into());
        let (nis, notes) = local_nis(&default_config(&host()), &host(), &no_rdma).unwrap();
        let show = net_show(&nis, false).to_yaml();
        assert_eq!(
            show,
            "\
net:
    - net type: lo
      local NI(s):
        - nid: 0@lo
          status: up
    - net type: o2ib
      local NI(s):
        - nid: 10.0.0.1@o2ib
          status: down
          interfaces:
              0: eth0
    - net type: tcp
      local NI(s):
        - nid: 10.0.0.1@tcp
          status: up
          interfaces:
              0: eth0
        - nid: 10.1.0.1@tcp
          status: up
          interfaces:
              0: eth1
"
        );
        assert_eq!(notes, ["10.0.0.1@o2ib: down: no RDMA device: /sys/class/infiniband is missing"]);
        let sel = lnet_shim::select(
            &selection_nis(&nis),
            &lnet_shim::PeerState::new("10.0.0.9@o2ib".parse().unwrap(), ["10.0.0.9@tcp".parse().unwrap()]),
        )
        .unwrap();
        assert_eq!(sel.lnd(), NetType::Tcp, "no RDMA device: tcp carries the traffic");
        let why = sel.fallback.unwrap().to_string();
        assert_eq!(why, "no RDMA device: /sys/class/infiniband is missing");
    }

    #[test]
    fn configured_o2ib_without_its_interface_is_a_note() {
        let cfg = LnetConfig::from_networks("o2ib(ib0),tcp(eth1)").unwrap();
        let (nis, notes) = local_nis(&cfg, &host(), &Rdma::Usable).unwrap();
        assert_eq!(nis.len(), 1);
        assert_eq!(nis[0].ni.nid.to_string(), "10.1.0.1@tcp");
        assert!(notes[0].starts_with("o2ib: not started: "), "{notes:?}");
        let cfg = LnetConfig::from_networks("tcp(eth9)").unwrap();
        assert!(local_nis(&cfg, &host(), &Rdma::Usable).is_err(), "a tcp NI that cannot start is an error");
    }

    #[test]
    fn verbose_shows_tunables_and_cpts() {
        let cfg = LnetConfig::from_networks("tcp(eth0)").unwrap();
        let (nis, _) = local_nis(&cfg, &host(), &Rdma::Usable).unwrap();
        let out = net_show(&nis, true).to_yaml();
        assert!(out.contains("          tunables:\n              peer_timeout: 180\n"), "{out}");
        assert!(out.contains("          CPT: \"[0"), "{out}");
        serde_norway::from_str::<serde_norway::Value>(&out).unwrap();
    }
}
