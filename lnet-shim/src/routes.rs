//! Module-style routes, as in `options lnet routes="..."`:
//! `NET [HOPS] GATEWAY[:PRIORITY] [GATEWAY...]`, entries separated by `;`
//! or newlines, where a gateway may be an address pattern
//! (`o2ib1 2 192.168.0.[1-2]@o2ib:1`) standing for every address it matches.

use crate::config::RouteSpec;
use crate::error::ConfigError;
use crate::ip_pattern::IpPattern;
use crate::ip2nets::entries;
use crate::networks::strip_key_and_quotes;
use fabric::{Net, NetType, Nid};
use std::net::IpAddr;

/// Gateways one pattern may stand for; more is surely a typo.
const MAX_GATEWAYS: u64 = 256;

/// LNet's largest hop count.
const MAX_HOPS: u32 = 255;

pub fn parse_routes(text: &str) -> Result<Vec<RouteSpec>, ConfigError> {
    let body = strip_key_and_quotes(text, "routes");
    let mut routes = Vec::new();
    for (i, entry) in entries(body).into_iter().enumerate() {
        let err = |reason: String| ConfigError::Routes { entry: i + 1, text: entry.to_string(), reason };
        let toks: Vec<&str> = entry.split_whitespace().collect();
        let (net, rest) = toks.split_first().ok_or_else(|| err("empty entry".into()))?;
        let net: Net = net.parse().map_err(|e: fabric::NidError| err(e.reason))?;
        if net.kind == NetType::Lo {
            return Err(err("cannot route to the loopback network".into()));
        }
        let (hops, gateways) = match rest.split_first() {
            Some((h, g)) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()) => {
                let hops = h.parse::<u32>().ok().filter(|h| (1..=MAX_HOPS).contains(h));
                (Some(hops.ok_or_else(|| err(format!("hop count {h} is not in 1..={MAX_HOPS}")))?), g)
            }
            _ => (None, rest),
        };
        if gateways.is_empty() {
            return Err(err("no gateway given".into()));
        }
        for gw in gateways {
            let (gw, priority) = match gw.rsplit_once(':') {
                Some((g, p)) => {
                    (g, p.parse::<u32>().map_err(|_| err(format!("priority `{p}` is not a number")))?)
                }
                None => (*gw, 0),
            };
            for gateway in expand_gateway(gw).map_err(err)? {
                if gateway.net == net {
                    return Err(err(format!("gateway {gateway} is on the network it routes to")));
                }
                if !routes.iter().any(|r: &RouteSpec| r.net == net && r.gateway == gateway) {
                    routes.push(RouteSpec { net, gateway, hops, priority });
                }
            }
        }
    }
    Ok(routes)
}

fn expand_gateway(text: &str) -> Result<Vec<Nid>, String> {
    let (addr, net) = text.rsplit_once('@').ok_or_else(|| format!("gateway `{text}` has no `@NET`"))?;
    let net: Net = net.parse().map_err(|e: fabric::NidError| e.reason)?;
    if net.kind == NetType::Lo {
        return Err(format!("gateway `{text}` is the loopback NID"));
    }
    let pattern: IpPattern = addr.parse().map_err(|e: ConfigError| e.to_string())?;
    let n = pattern.count();
    if n > MAX_GATEWAYS {
        return Err(format!("gateway pattern `{text}` stands for {n} gateways (at most {MAX_GATEWAYS})"));
    }
    Ok(pattern.addresses().map(|a| Nid::new(IpAddr::V4(a), net)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> Vec<String> {
        parse_routes(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .iter()
            .map(|r| format!("{} {:?} {} {}", r.net, r.hops, r.gateway, r.priority))
            .collect()
    }

    #[test]
    fn routes_as_admins_write_them() {
        assert_eq!(show("tcp1 10.0.0.1@o2ib"), ["tcp1 None 10.0.0.1@o2ib 0"]);
        assert_eq!(
            show("routes=\"o2ib1 2 192.168.0.[1-2]@o2ib:1; tcp2 10.0.0.9@tcp 10.0.0.10@tcp:3\""),
            [
                "o2ib1 Some(2) 192.168.0.1@o2ib 1",
                "o2ib1 Some(2) 192.168.0.2@o2ib 1",
                "tcp2 None 10.0.0.9@tcp 0",
                "tcp2 None 10.0.0.10@tcp 3"
            ]
        );
        assert_eq!(show("# none\n").len(), 0);
    }

    #[test]
    fn broken_routes_say_why() {
        for (text, why) in [
            ("tcp1", "entry 1 `tcp1`: no gateway given"),
            ("tcp1 3", "no gateway given"),
            ("tcp1 0 10.0.0.1@tcp", "hop count 0 is not in 1..=255"),
            ("tcp1 10.0.0.1", "has no `@NET`"),
            ("tcp1 10.0.0.1@tcp1", "is on the network it routes to"),
            ("tcp1 10.0.0.1@tcp:x", "priority `x`"),
            ("tcp1 10.0.*.*@tcp", "stands for 65536 gateways"),
            ("lo 10.0.0.1@tcp", "loopback"),
            ("tcp1 0@lo", "loopback NID"),
            ("ib1 10.0.0.1@tcp", "unknown network type `ib`"),
        ] {
            let e = parse_routes(text).expect_err(text).to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
