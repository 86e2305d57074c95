//! What an LNet configuration says, whichever way it was written
//! (`networks=`, `ip2nets=`, lnet.conf YAML): local networks and their
//! NIs, peers, routes, tunables and global settings; and how its NIs turn
//! into NIDs on a given host.

use crate::error::ConfigError;
use crate::interfaces::HostInterfaces;
use fabric::{Net, Nid};
use std::net::IpAddr;
use std::time::Duration;

/// Per-network credits and timeouts (LNet keeps them per network and
/// `lnetctl` prints them under each NI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NiTunables {
    /// Seconds without news before a peer is presumed dead (0 = never).
    pub peer_timeout: u32,
    /// Messages in flight to one peer.
    pub peer_credits: u32,
    /// Router buffer credits per peer (0 = same as peer_credits).
    pub peer_buffer_credits: u32,
    /// Messages in flight on the NI as a whole.
    pub credits: u32,
}

impl Default for NiTunables {
    fn default() -> NiTunables {
        NiTunables { peer_timeout: 180, peer_credits: 8, peer_buffer_credits: 0, credits: 256 }
    }
}

/// One local NI as configured: an interface, an address, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NiSpec {
    /// The interface name (`eth0`, `ib0`); `None` takes the host's first
    /// usable interface.
    pub interface: Option<String>,
    /// An explicit address; with an interface it must be one of its addresses.
    pub address: Option<IpAddr>,
    /// CPU partitions the NI is bound to; empty means all.
    pub cpts: Vec<u32>,
}

impl NiSpec {
    pub fn interface(name: &str) -> NiSpec {
        NiSpec { interface: Some(name.to_string()), ..NiSpec::default() }
    }
}

/// A local network and its NIs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSpec {
    pub net: Net,
    pub nis: Vec<NiSpec>,
    pub tunables: NiTunables,
}

impl NetSpec {
    pub fn new(net: Net, nis: Vec<NiSpec>) -> NetSpec {
        NetSpec { net, nis, tunables: NiTunables::default() }
    }
}

/// A peer known from configuration, with all its NIDs (primary first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    pub primary_nid: Nid,
    pub nids: Vec<Nid>,
    pub multi_rail: bool,
}

/// A route to a remote network through a gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub net: Net,
    pub gateway: Nid,
    /// Hop count; `None` is LNet's "undefined" (printed as -1).
    pub hops: Option<u32>,
    /// Lower is preferred.
    pub priority: u32,
}

/// Settings that apply to the whole node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalSettings {
    pub numa_range: u32,
    pub max_intf: u32,
    pub discovery: bool,
    pub drop_asym_route: bool,
    /// Resends of a message before it fails.
    pub retry_count: u32,
    /// Seconds a message (all its tries) may take.
    pub transaction_timeout: u32,
    /// Health lost per failure and regained per success.
    pub health_sensitivity: u32,
    /// Seconds between recovery pings of an unhealthy NI.
    pub recovery_interval: u32,
    pub router_sensitivity: u32,
    pub response_tracking: u32,
    pub recovery_limit: u32,
    /// Cap, in seconds, of the recovery ping back-off.
    pub max_recovery_ping_interval: u32,
}

impl Default for GlobalSettings {
    fn default() -> GlobalSettings {
        GlobalSettings {
            numa_range: 0,
            max_intf: 200,
            discovery: true,
            drop_asym_route: false,
            retry_count: 2,
            transaction_timeout: 150,
            health_sensitivity: crate::health::Health::DEFAULT_SENSITIVITY,
            recovery_interval: 1,
            router_sensitivity: 100,
            response_tracking: 3,
            recovery_limit: 0,
            max_recovery_ping_interval: 900,
        }
    }
}

impl GlobalSettings {
    /// How long one try may take: the transaction timeout shared among
    /// the first send and its retries, as LNet computes its LND timeout.
    pub fn lnd_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.transaction_timeout / (self.retry_count + 1)).max(1))
    }

    pub fn transaction_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.transaction_timeout))
    }

    /// Checks the relations LNet enforces, naming the field at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let field = |f: &str, reason: String| ConfigError::Field { field: format!("global.{f}"), reason };
        if self.transaction_timeout == 0 {
            return Err(field("transaction_timeout", "must be at least 1 second".into()));
        }
        if self.retry_count > self.transaction_timeout {
            return Err(field(
                "retry_count",
                format!(
                    "{} retries do not fit in a transaction timeout of {} s",
                    self.retry_count, self.transaction_timeout
                ),
            ));
        }
        if self.health_sensitivity > crate::health::Health::MAX.value() {
            return Err(field(
                "health_sensitivity",
                format!("{} is more than the maximum health 1000", self.health_sensitivity),
            ));
        }
        if self.recovery_interval == 0 {
            return Err(field("recovery_interval", "must be at least 1 second".into()));
        }
        Ok(())
    }
}

/// A whole LNet configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LnetConfig {
    pub nets: Vec<NetSpec>,
    pub peers: Vec<PeerSpec>,
    pub routes: Vec<RouteSpec>,
    pub global: GlobalSettings,
}

/// A local NI with its NID decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedNi {
    pub nid: Nid,
    /// The interface the NI is bound to, when there is one.
    pub interface: Option<String>,
    pub tunables: NiTunables,
    pub cpts: Vec<u32>,
}

impl LnetConfig {
    /// A configuration of these networks with default settings.
    pub fn with_nets(nets: Vec<NetSpec>) -> LnetConfig {
        LnetConfig { nets, ..LnetConfig::default() }
    }

    /// From module-style `networks="o2ib0(ib0),tcp0(eth0)"`.
    pub fn from_networks(text: &str) -> Result<LnetConfig, ConfigError> {
        Ok(LnetConfig::with_nets(crate::networks::parse_networks(text)?))
    }

    /// From `ip2nets="..."`, taking the networks whose rules match one of
    /// `host`'s addresses.
    pub fn from_ip2nets(text: &str, host: &HostInterfaces) -> Result<LnetConfig, ConfigError> {
        Ok(LnetConfig::with_nets(crate::ip2nets::Ip2Nets::parse(text)?.select(host)?))
    }

    /// The network spec for `net`, if configured.
    pub fn net(&self, net: Net) -> Option<&NetSpec> {
        self.nets.iter().find(|n| n.net == net)
    }

    /// Turns every NI into a NID using `host`'s interfaces.
    pub fn resolve(&self, host: &HostInterfaces) -> Result<Vec<ResolvedNi>, ConfigError> {
        let mut out: Vec<ResolvedNi> = Vec::new();
        for net in &self.nets {
            for ni in &net.nis {
                let (addr, interface) = resolve_ni(net.net, ni, host)?;
                let nid = Nid::new(addr, net.net);
                if out.iter().any(|r| r.nid == nid) {
                    return Err(ConfigError::DuplicateNid { nid: nid.to_string() });
                }
                tracing::debug!(%nid, interface = interface.as_deref().unwrap_or("-"), "local NI resolved");
                out.push(ResolvedNi { nid, interface, tunables: net.tunables, cpts: ni.cpts.clone() });
            }
        }
        Ok(out)
    }
}

fn resolve_ni(net: Net, ni: &NiSpec, host: &HostInterfaces) -> Result<(IpAddr, Option<String>), ConfigError> {
    match (&ni.interface, ni.address) {
        (Some(name), Some(address)) => {
            host.address_of(net, name)?;
            let iface = host.get(name).expect("address_of found it");
            if !iface.ipv4.iter().any(|a| IpAddr::V4(*a) == address) {
                let has = iface.ipv4.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
                return Err(ConfigError::AddressNotOnInterface {
                    net,
                    name: name.clone(),
                    address: address.to_string(),
                    has,
                });
            }
            Ok((address, Some(name.clone())))
        }
        (Some(name), None) => Ok((IpAddr::V4(host.address_of(net, name)?), Some(name.clone()))),
        // An explicit address without an interface is taken as given: any
        // 127.0.0.0/8 address works on loopback although only 127.0.0.1 is listed.
        (None, Some(address)) => Ok((address, None)),
        (None, None) => {
            let iface = host.default_interface().ok_or(ConfigError::NoUsableInterface { net })?;
            Ok((IpAddr::V4(iface.ipv4[0]), Some(iface.name.clone())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interfaces::Interface;
    use std::net::Ipv4Addr;

    fn host() -> HostInterfaces {
        HostInterfaces::new(vec![
            Interface { name: "lo".into(), ipv4: vec![Ipv4Addr::LOCALHOST], up: true, loopback: true },
            Interface::up("eth0", &[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]),
            Interface::up("eth1", &[Ipv4Addr::new(10, 1, 0, 1)]),
            Interface::up("ib0", &[Ipv4Addr::new(192, 168, 0, 1)]),
        ])
    }

    fn nids(c: &LnetConfig) -> Vec<String> {
        c.resolve(&host()).unwrap().iter().map(|r| r.nid.to_string()).collect()
    }

    #[test]
    fn resolves_interfaces_to_nids() {
        let c = LnetConfig::from_networks("o2ib0(ib0),tcp0(eth0),tcp1(eth1,lo)").unwrap();
        assert_eq!(nids(&c), ["192.168.0.1@o2ib", "10.0.0.1@tcp", "10.1.0.1@tcp1", "127.0.0.1@tcp1"]);
        let c = LnetConfig::from_networks("tcp").unwrap();
        assert_eq!(nids(&c), ["10.0.0.1@tcp"], "no interface: first usable, never loopback");
        let r = c.resolve(&host()).unwrap();
        assert_eq!(r[0].interface.as_deref(), Some("eth0"));
        assert_eq!(r[0].tunables, NiTunables::default());
    }

    #[test]
    fn explicit_addresses() {
        let mut c = LnetConfig::with_nets(vec![NetSpec::new(
            Net::tcp(0),
            vec![NiSpec { address: Some("10.0.0.2".parse().unwrap()), ..NiSpec::interface("eth0") }],
        )]);
        assert_eq!(nids(&c), ["10.0.0.2@tcp"]);
        c.nets[0].nis[0].address = Some("10.9.9.9".parse().unwrap());
        let e = c.resolve(&host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tcp: address 10.9.9.9 is not on interface `eth0` (it has 10.0.0.1, 10.0.0.2)"
        );
        c.nets[0].nis[0].interface = None;
        c.nets[0].nis[0].address = Some("127.0.0.7".parse().unwrap());
        assert_eq!(nids(&c), ["127.0.0.7@tcp"]);
    }

    #[test]
    fn resolution_errors() {
        let e = LnetConfig::from_networks("tcp(eth7)").unwrap().resolve(&host()).unwrap_err();
        assert_eq!(e.to_string(), "tcp: interface `eth7` does not exist on this host");
        let e = LnetConfig::from_networks("tcp(eth0),tcp1(eth0)").unwrap();
        assert!(e.resolve(&host()).is_ok(), "one interface may serve two networks");
        let e = LnetConfig::from_networks("tcp(eth0,eth0)").unwrap_err();
        assert!(e.to_string().contains("interface `eth0` is listed twice"), "{e}");
        let only_lo = HostInterfaces::new(vec![Interface {
            name: "lo".into(),
            ipv4: vec![Ipv4Addr::LOCALHOST],
            up: true,
            loopback: true,
        }]);
        let e = LnetConfig::from_networks("tcp").unwrap().resolve(&only_lo).unwrap_err();
        assert!(e.to_string().starts_with("tcp: no interface given and no up, non-loopback"), "{e}");
        assert_eq!(e.errno(), fabric::Errno::ENODEV);
    }

    #[test]
    fn globals_defaults_and_checks() {
        let g = GlobalSettings::default();
        assert_eq!((g.transaction_timeout, g.retry_count, g.health_sensitivity), (150, 2, 100));
        assert_eq!(g.lnd_timeout(), Duration::from_secs(50));
        g.validate().unwrap();
        let bad = GlobalSettings { health_sensitivity: 1001, ..g };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "lnet.conf: global.health_sensitivity: 1001 is more than the maximum health 1000"
        );
        let bad = GlobalSettings { transaction_timeout: 3, retry_count: 5, ..g };
        assert!(bad.validate().unwrap_err().to_string().contains("global.retry_count"));
        assert_eq!(GlobalSettings { retry_count: 0, ..g }.lnd_timeout(), Duration::from_secs(150));
    }
}
