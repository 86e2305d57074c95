//! What admins write for LNet (`networks=`, `ip2nets=`, `routes=`, and
//! lnet.conf YAML as `lnetctl export` writes it): no parser panics on any
//! text; a configuration from any of them exports as YAML that imports
//! back to the same configuration; and resolving or selecting against a
//! fixed host never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lnet_shim::{HostInterfaces, Interface, Ip2Nets, LnetConfig, parse_routes};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

/// A host with an IB port, two Ethernet ports (one with an alias) and
/// loopback: enough for NIs, ip2nets rules and errors to have something to
/// match.
fn host() -> &'static HostInterfaces {
    static HOST: OnceLock<HostInterfaces> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut lo = Interface::up("lo", &[Ipv4Addr::LOCALHOST]);
        lo.loopback = true;
        let mut down = Interface::up("eth2", &[Ipv4Addr::new(172, 16, 0, 9)]);
        down.up = false;
        HostInterfaces::new(vec![
            lo,
            Interface::up("ib0", &[Ipv4Addr::new(192, 168, 1, 71)]),
            Interface::up("eth0", &[Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 1, 5)]),
            Interface::up("eth0:1", &[Ipv4Addr::new(10, 0, 2, 5)]),
            down,
        ])
    })
}

fn exports_and_imports(from: &str, text: &str, c: &LnetConfig) {
    let yaml = c.to_yaml();
    match LnetConfig::from_yaml(&yaml) {
        Ok(back) => assert_eq!(&back, c, "{from} {text:?} exported as\n{yaml}"),
        Err(e) => panic!("{from} {text:?} exported as YAML that does not import: {e}\n{yaml}"),
    }
    let _ = c.resolve(host());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = LnetConfig::from_networks(text) {
        exports_and_imports("networks", text, &c);
    }
    if let Ok(c) = LnetConfig::from_yaml(text) {
        exports_and_imports("lnet.conf", text, &c);
    }
    if let Ok(table) = Ip2Nets::parse(text)
        && let Ok(nets) = table.select(host())
    {
        exports_and_imports("ip2nets", text, &LnetConfig::with_nets(nets));
    }
    if let Ok(routes) = parse_routes(text) {
        let c = LnetConfig { routes, ..LnetConfig::default() };
        exports_and_imports("routes", text, &c);
    }
});
