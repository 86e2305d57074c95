//! `lnetctl ping NID`: a round trip to the glint server at a NID. There
//! is no LNet ping service; any glint server answers on the MGS portal,
//! so the ping asks it for the configuration of file system "" — any
//! reply, the expected ENOENT included, proves the peer is alive. A
//! connection that fails or a reply that does not come within the
//! timeout is a failed ping.

use fabric::rpc::{Endpoint, EndpointConfig, RpcError};
use fabric::{Errno, Nid, Pid, ProcessId};
use proto::{MgsRequest, encode, portal};
use std::time::{Duration, Instant};

/// The MGS serves GetConfig whatever the opcode; this is the number the
/// client library uses for it.
const GET_CONFIG_OPCODE: u16 = 1;

/// What one ping found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Alive { round_trip: Duration },
    Failed(Errno),
}

/// The local address this node uses to reach `nid`: the NID the ping comes from.
pub fn local_nid_towards(nid: Nid) -> Nid {
    let sock = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((nid.addr, 9)).map(|_| s))
        .and_then(|s| s.local_addr());
    match sock {
        Ok(a) => Nid::new(a.ip(), nid.net),
        Err(_) => Nid::new(nid.addr, nid.net),
    }
}

/// A client endpoint whose calls give up after `timeout`.
pub async fn endpoint(towards: Nid, timeout: Duration) -> Result<Endpoint, Errno> {
    let mut cfg = EndpointConfig::client(local_nid_towards(towards));
    cfg.retry_limit = timeout;
    cfg.tcp.connect_timeout = timeout;
    cfg.timeouts.initial = timeout;
    cfg.timeouts.min = cfg.timeouts.min.min(timeout);
    Endpoint::start(cfg).await.map_err(|e| Errno::from_io(&e))
}

/// Pings the server at `nid` through `ep`.
pub async fn ping(ep: &Endpoint, nid: Nid) -> Outcome {
    let peer = ProcessId { nid, pid: Pid::SERVER };
    let body = encode(&MgsRequest::GetConfig { fsname: String::new() });
    let started = Instant::now();
    let r = ep.call(peer, portal::MGS, GET_CONFIG_OPCODE, &body).await;
    let round_trip = started.elapsed();
    match r {
        Ok(_) | Err(RpcError::Remote(_)) => {
            tracing::info!(%nid, ?round_trip, "ping answered");
            Outcome::Alive { round_trip }
        }
        Err(e) => {
            tracing::info!(%nid, error = %e, "ping failed");
            Outcome::Failed(e.errno())
        }
    }
}
