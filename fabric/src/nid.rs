//! Network identifiers as Lustre users write them: `ADDR@NET`.
//!
//! `tcp` alone means `tcp0`, and the loopback NID is `0@lo`. Parsing names
//! the part that is wrong, so a typo in a config file is found quickly.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// The kind of LND a network uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NetType {
    /// Loopback inside one process (`0@lo`).
    Lo,
    /// Sockets.
    Tcp,
    /// Verbs (InfiniBand, RoCE).
    O2ib,
}

impl NetType {
    pub fn as_str(self) -> &'static str {
        match self {
            NetType::Lo => "lo",
            NetType::Tcp => "tcp",
            NetType::O2ib => "o2ib",
        }
    }
}

/// A network: LND type and number (`tcp1`, `o2ib0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Net {
    pub kind: NetType,
    pub num: u32,
}

impl Net {
    pub const LO: Net = Net { kind: NetType::Lo, num: 0 };

    pub fn tcp(num: u32) -> Net {
        Net { kind: NetType::Tcp, num }
    }

    pub fn o2ib(num: u32) -> Net {
        Net { kind: NetType::O2ib, num }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lustre prints network 0 without its number (`tcp`, `o2ib`) and
        // every other with it (`tcp1`).
        if self.num == 0 {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{}{}", self.kind.as_str(), self.num)
        }
    }
}

impl FromStr for Net {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, NidError> {
        // "o2ib" has a digit of its own, so the type is matched by name
        // before the network number is split off.
        let (kind, digits) = [("o2ib", NetType::O2ib), ("tcp", NetType::Tcp), ("lo", NetType::Lo)]
            .iter()
            .find_map(|(name, kind)| s.strip_prefix(name).map(|rest| (*kind, rest)))
            .ok_or_else(|| {
                let name = s.trim_end_matches(|c: char| c.is_ascii_digit());
                if name.is_empty() {
                    NidError::new(s, "network", "empty network name")
                } else {
                    NidError::new(
                        s,
                        "network",
                        format!("unknown network type `{name}` (expected tcp, o2ib or lo)"),
                    )
                }
            })?;
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(NidError::new(s, "network", format!("bad network number `{digits}`")));
        }
        let num = if digits.is_empty() {
            0
        } else {
            if digits.len() > 1 && digits.starts_with('0') {
                return Err(NidError::new(s, "network", "network number has a leading zero"));
            }
            digits
                .parse::<u32>()
                .map_err(|_| NidError::new(s, "network", format!("bad network number `{digits}`")))?
        };
        if kind == NetType::Lo && num != 0 {
            return Err(NidError::new(s, "network", "the loopback network has no number"));
        }
        Ok(Net { kind, num })
    }
}

/// A node's address on one network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Nid {
    pub addr: IpAddr,
    pub net: Net,
}

impl Nid {
    pub const LO: Nid = Nid { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), net: Net::LO };

    pub fn new(addr: IpAddr, net: Net) -> Nid {
        Nid { addr, net }
    }

    /// The socket address this NID listens on for a socket-based LND.
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.addr, port)
    }
}

impl fmt::Display for Nid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.net.kind, self.addr) {
            (NetType::Lo, _) => f.write_str("0@lo"),
            (_, IpAddr::V4(a)) => write!(f, "{a}@{}", self.net),
            (_, IpAddr::V6(a)) => write!(f, "[{a}]@{}", self.net),
        }
    }
}

impl FromStr for Nid {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, NidError> {
        let s = s.trim();
        let (addr, net) = s
            .rsplit_once('@')
            .ok_or_else(|| NidError::new(s, "nid", "missing `@NET` (e.g. 10.0.0.1@tcp)"))?;
        let net: Net = net.parse().map_err(|e: NidError| NidError::new(s, e.part, e.reason))?;
        if net.kind == NetType::Lo {
            return if addr == "0" {
                Ok(Nid::LO)
            } else {
                Err(NidError::new(s, "address", "the loopback NID is `0@lo`"))
            };
        }
        let ip = if let Some(inner) = addr.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| NidError::new(s, "address", "unclosed `[` in IPv6 address"))?;
            inner
                .parse::<std::net::Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| NidError::new(s, "address", format!("`{inner}` is not an IPv6 address")))?
        } else {
            addr.parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| NidError::new(s, "address", format!("`{addr}` is not an IPv4 address")))?
        };
        Ok(Nid { addr: ip, net })
    }
}

/// An LNet process: a NID and a process id on that node. Servers use
/// [`Pid::SERVER`]; each client process has its own, so several mounts on
/// one node are distinct peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessId {
    pub nid: Nid,
    pub pid: u32,
}

impl ProcessId {
    /// Whether both name one process, whichever network each came over
    /// (a client reaching a server over o2ib and over tcp is one client).
    pub fn same_process(&self, other: &ProcessId) -> bool {
        self.nid.addr == other.nid.addr && self.pid == other.pid
    }
}

/// Process ids on a node.
pub struct Pid;

impl Pid {
    /// The pid every server answers on, as Lustre's LNET_PID_LUSTRE.
    pub const SERVER: u32 = 12345;
    /// Set on every client pid, as Lustre's LNET_PID_USERFLAG, so a client
    /// can never be taken for a server.
    pub const USER_FLAG: u32 = 0x8000_0000;

    /// A pid for a new client endpoint of this process: the OS pid (below
    /// 2^22 on Linux) with a per-process counter above it.
    pub fn next_client() -> u32 {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0x1ff;
        Pid::USER_FLAG | (n << 22) | (std::process::id() & 0x3f_ffff)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.pid, self.nid)
    }
}

/// A NID or network that did not parse, with the part that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {part} in `{input}`: {reason}")]
pub struct NidError {
    pub input: String,
    pub part: &'static str,
    pub reason: String,
}

impl NidError {
    fn new(input: &str, part: &'static str, reason: impl Into<String>) -> NidError {
        NidError { input: input.to_string(), part, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_lustre_users_write() {
        for (text, printed) in [
            ("10.1.0.5@o2ib", "10.1.0.5@o2ib"),
            ("127.0.0.1@tcp", "127.0.0.1@tcp"),
            ("127.0.0.1@tcp0", "127.0.0.1@tcp"),
            ("192.168.3.4@tcp1", "192.168.3.4@tcp1"),
            ("[::1]@tcp", "[::1]@tcp"),
            ("0@lo", "0@lo"),
            ("10.0.0.1@o2ib12", "10.0.0.1@o2ib12"),
        ] {
            let nid: Nid = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(nid.to_string(), printed);
        }
        let n: Nid = "192.168.3.4@tcp1".parse().unwrap();
        assert_eq!(n.net, Net::tcp(1));
    }

    #[test]
    fn rejects_garbage_naming_the_part() {
        for (text, part) in [
            ("10.0.0.1", "nid"),
            ("10.0.0.1@", "network"),
            ("10.0.0.1@eth0", "network"),
            ("10.0.0.1@tcp01", "network"),
            ("10.0.0.1@tcpx", "network"),
            ("10.0.0.256@tcp", "address"),
            ("[::1@tcp", "address"),
            ("::1@tcp", "address"),
            ("1@lo", "address"),
            ("0@lo3", "network"),
            ("@tcp", "address"),
        ] {
            let err = text.parse::<Nid>().expect_err(text);
            assert_eq!(err.part, part, "{text}: {err}");
            assert!(err.to_string().contains(text), "{err}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(a in any::<[u8; 4]>(), six in any::<[u16; 8]>(), v6 in any::<bool>(),
                       o2ib in any::<bool>(), num in 0u32..1000) {
            let addr = if v6 { IpAddr::from(six) } else { IpAddr::from(a) };
            let net = if o2ib { Net::o2ib(num) } else { Net::tcp(num) };
            let nid = Nid::new(addr, net);
            prop_assert_eq!(nid.to_string().parse::<Nid>().unwrap(), nid);
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = s.parse::<Nid>();
        }
    }
}
