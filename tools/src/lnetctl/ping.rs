//! `lnetctl ping NID`: a round trip to the glint server at a NID. There
//! is no LNet ping service; any glint server answers on the MGS portal,
//! so the ping asks it for the configuration of file system "" — any
//! reply, the expected ENOENT included, proves the peer is alive. A
//! connection that fails or a reply that does not come within the
//! timeout is a failed ping.

use fabric::o2ib::O2ibConfig;
use fabric::rpc::{Endpoint, EndpointConfig, RpcError};
use fabric::{Errno, Net, NetType, Nid, Pid, ProcessId};
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

/// A client endpoint whose calls give up after `timeout`. Towards an o2ib
/// NID it has an o2ib NI beside its tcp one, so o2ib NIDs are pinged over
/// o2ib where this node can run it.
pub async fn endpoint(towards: Nid, timeout: Duration) -> Result<Endpoint, Errno> {
    let local = local_nid_towards(towards);
    let o2ib = towards.net.kind == NetType::O2ib;
    let mut cfg = EndpointConfig::client(if o2ib { Nid::new(local.addr, Net::tcp(0)) } else { local });
    if o2ib {
        let mut ni = O2ibConfig::new(local, cfg.tcp.pid, false);
        ni.connect_timeout = timeout;
        cfg.o2ib = Some(ni);
    }
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
    if let Some(why) = o2ib_fallback(ep, nid) {
        // The server answered, but over tcp: its o2ib NID did not.
        tracing::info!(%nid, reason = %why, "ping answered over tcp, not o2ib");
        return Outcome::Failed(Errno::EHOSTUNREACH);
    }
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

/// Why messages to the o2ib NID `nid` went over tcp through `ep`, if they did.
pub fn o2ib_fallback(ep: &Endpoint, nid: Nid) -> Option<String> {
    ep.peer_routes().into_iter().find(|r| r.peer == nid).and_then(|r| r.fallback).map(|c| c.to_string())
}
