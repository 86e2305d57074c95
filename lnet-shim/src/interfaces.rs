//! This host's network interfaces and their IPv4 addresses, as LNet sees
//! them when it turns `tcp0(eth0)` into `10.0.0.1@tcp` or matches
//! `ip2nets` patterns. The table is plain data so that configurations can
//! be resolved against any host's interfaces, not only this one's.

use crate::error::ConfigError;
use fabric::Net;
use std::ffi::CStr;
use std::net::Ipv4Addr;

/// One network interface (an alias label such as `eth0:1` is its own entry,
/// as in the kernel's address list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// IPv4 addresses in the order the kernel lists them; the first is the
    /// one a NID uses.
    pub ipv4: Vec<Ipv4Addr>,
    pub up: bool,
    pub loopback: bool,
}

impl Interface {
    /// An up, non-loopback interface with these addresses.
    pub fn up(name: &str, ipv4: &[Ipv4Addr]) -> Interface {
        Interface { name: name.to_string(), ipv4: ipv4.to_vec(), up: true, loopback: false }
    }

    /// Whether LNet would consider this interface for ip2nets or a default NI:
    /// up, not loopback, with an IPv4 address.
    pub fn usable(&self) -> bool {
        self.up && !self.loopback && !self.ipv4.is_empty()
    }
}

/// The interfaces of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInterfaces {
    interfaces: Vec<Interface>,
}

impl HostInterfaces {
    pub fn new(interfaces: Vec<Interface>) -> HostInterfaces {
        HostInterfaces { interfaces }
    }

    /// This host's interfaces, read with `getifaddrs(3)`.
    pub fn system() -> Result<HostInterfaces, ConfigError> {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs writes a list head we own until freeifaddrs.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(ConfigError::Getifaddrs(std::io::Error::last_os_error()));
        }
        let mut host = HostInterfaces::default();
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: cur is a node of the list getifaddrs returned, not yet freed.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            if ifa.ifa_name.is_null() {
                continue;
            }
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
            let flags = ifa.ifa_flags;
            let entry = host.entry(&name);
            entry.up |= flags & libc::IFF_UP as u32 != 0;
            entry.loopback |= flags & libc::IFF_LOOPBACK as u32 != 0;
            if ifa.ifa_addr.is_null() {
                continue;
            }
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let addr = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !entry.ipv4.contains(&addr) {
                    entry.ipv4.push(addr);
                }
            }
        }
        // SAFETY: head came from a successful getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(head) };
        Ok(host)
    }

    fn entry(&mut self, name: &str) -> &mut Interface {
        let i = match self.interfaces.iter().position(|i| i.name == name) {
            Some(i) => i,
            None => {
                self.interfaces.push(Interface {
                    name: name.to_string(),
                    ipv4: Vec::new(),
                    up: false,
                    loopback: false,
                });
                self.interfaces.len() - 1
            }
        };
        &mut self.interfaces[i]
    }

    pub fn get(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces.iter()
    }

    /// The address a NI on `net` bound to interface `name` uses.
    pub fn address_of(&self, net: Net, name: &str) -> Result<Ipv4Addr, ConfigError> {
        let iface =
            self.get(name).ok_or_else(|| ConfigError::NoSuchInterface { net, name: name.to_string() })?;
        if !iface.up {
            return Err(ConfigError::InterfaceDown { net, name: name.to_string() });
        }
        iface.ipv4.first().copied().ok_or_else(|| ConfigError::NoAddress { net, name: name.to_string() })
    }

    /// The interface a NI that names none binds to: the first usable one,
    /// as the socket LND picks when `networks=tcp` gives no interface.
    pub fn default_interface(&self) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.usable())
    }

    /// Every (interface, address) pair that ip2nets may match against.
    pub fn usable_addresses(&self) -> impl Iterator<Item = (&Interface, Ipv4Addr)> {
        self.interfaces.iter().filter(|i| i.usable()).flat_map(|i| i.ipv4.iter().map(move |a| (i, *a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_table_has_loopback_with_its_address() {
        let host = HostInterfaces::system().expect("getifaddrs");
        let lo = host.iter().find(|i| i.loopback).expect("every Linux host has a loopback interface");
        assert!(lo.ipv4.contains(&Ipv4Addr::LOCALHOST), "{lo:?}");
        assert!(!lo.usable(), "loopback is never picked by default");
        assert_eq!(host.address_of(Net::tcp(0), &lo.name).unwrap(), Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn lookup_errors_say_what_is_wrong() {
        let host = HostInterfaces::new(vec![
            Interface::up("eth0", &[Ipv4Addr::new(10, 0, 0, 1)]),
            Interface::up("ib0", &[]),
            Interface {
                name: "eth1".into(),
                ipv4: vec![Ipv4Addr::new(10, 1, 0, 1)],
                up: false,
                loopback: false,
            },
        ]);
        let net = Net::tcp(0);
        assert_eq!(host.address_of(net, "eth0").unwrap(), Ipv4Addr::new(10, 0, 0, 1));
        let e = host.address_of(net, "eth9").unwrap_err();
        assert_eq!(e.to_string(), "tcp: interface `eth9` does not exist on this host");
        assert_eq!(e.errno(), fabric::Errno::ENODEV);
        let e = host.address_of(Net::o2ib(0), "ib0").unwrap_err();
        assert_eq!(e.to_string(), "o2ib: interface `ib0` has no IPv4 address");
        let e = host.address_of(net, "eth1").unwrap_err();
        assert_eq!(e.to_string(), "tcp: interface `eth1` is down");
        assert_eq!(host.default_interface().unwrap().name, "eth0");
    }
}
