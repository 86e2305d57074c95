//! `ip2nets`: one configuration for a whole cluster, each rule naming
//! networks and the address patterns of the hosts that join them:
//! `ip2nets="o2ib0(ib0) 192.168.0.*; tcp0(eth0) 10.0.[0-3].[1-254]"`.
//! Rules are separated by `;` or newlines and `#` comments run to the next
//! separator, as in LNet. A host joins a rule's networks when any of its
//! up, non-loopback IPv4 addresses matches any of the rule's patterns; the
//! first matching rule for a network wins. A network with no interface
//! named binds to the interface whose address matched.

use crate::config::{NetSpec, NiSpec};
use crate::error::ConfigError;
use crate::interfaces::HostInterfaces;
use crate::ip_pattern::IpPattern;
use crate::networks::{parse_net_spec, split_top, strip_key_and_quotes};

/// One rule: the networks to join and who joins them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip2NetsRule {
    pub nets: Vec<NetSpec>,
    pub patterns: Vec<IpPattern>,
    /// The rule as written, for messages.
    pub text: String,
}

/// A parsed `ip2nets` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip2Nets {
    pub rules: Vec<Ip2NetsRule>,
}

/// Splits text into LNet entries: separated by `;` or newline, with `#`
/// comments running to the next separator.
pub(crate) fn entries(text: &str) -> Vec<&str> {
    text.split([';', '\n'])
        .map(|e| e.split_once('#').map_or(e, |(before, _)| before).trim())
        .filter(|e| !e.is_empty())
        .collect()
}

/// Splits at whitespace outside parentheses, so `tcp(eth0, eth1)` stays whole.
fn tokens(entry: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start: Option<usize> = None;
    for (i, c) in entry.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth <= 0 {
            if let Some(s) = start.take() {
                out.push(&entry[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(&entry[s..]);
    }
    out
}

impl Ip2Nets {
    pub fn parse(text: &str) -> Result<Ip2Nets, ConfigError> {
        let body = strip_key_and_quotes(text, "ip2nets");
        let mut rules = Vec::new();
        for (i, entry) in entries(body).into_iter().enumerate() {
            let err = |reason: String| ConfigError::Ip2nets { rule: i + 1, text: entry.to_string(), reason };
            let toks = tokens(entry);
            let (netspec, patterns) = toks.split_first().ok_or_else(|| err("empty rule".into()))?;
            let mut nets: Vec<NetSpec> = Vec::new();
            for item in split_top(netspec, ',').map_err(err)? {
                let spec = parse_net_spec(item).map_err(err)?;
                if nets.iter().any(|n| n.net == spec.net) {
                    return Err(err(format!("network {} is given twice", spec.net)));
                }
                nets.push(spec);
            }
            if patterns.is_empty() {
                return Err(err("no address pattern after the networks (e.g. `192.168.0.*`)".into()));
            }
            let patterns = patterns
                .iter()
                .map(|p| {
                    p.parse::<IpPattern>().map_err(|e| match e {
                        ConfigError::Pattern { pattern, reason } => {
                            err(format!("pattern `{pattern}`: {reason}"))
                        }
                        other => other,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Ip2NetsRule { nets, patterns, text: entry.to_string() });
        }
        if rules.is_empty() {
            return Err(ConfigError::Ip2nets {
                rule: 0,
                text: text.trim().to_string(),
                reason: "no rules".into(),
            });
        }
        Ok(Ip2Nets { rules })
    }

    /// The networks this host joins.
    pub fn select(&self, host: &HostInterfaces) -> Result<Vec<NetSpec>, ConfigError> {
        let mut chosen: Vec<NetSpec> = Vec::new();
        for rule in &self.rules {
            let mut matched_ifaces: Vec<&str> = Vec::new();
            for (iface, addr) in host.usable_addresses() {
                if rule.patterns.iter().any(|p| p.matches(addr))
                    && !matched_ifaces.contains(&iface.name.as_str())
                {
                    matched_ifaces.push(&iface.name);
                }
            }
            if matched_ifaces.is_empty() {
                continue;
            }
            for spec in &rule.nets {
                if chosen.iter().any(|c| c.net == spec.net) {
                    tracing::debug!(net = %spec.net, rule = %rule.text, "ip2nets: network already matched by an earlier rule");
                    continue;
                }
                let mut spec = spec.clone();
                if let [ni] = spec.nis.as_slice()
                    && ni.interface.is_none()
                {
                    let cpts = ni.cpts.clone();
                    spec.nis = matched_ifaces
                        .iter()
                        .map(|name| NiSpec { cpts: cpts.clone(), ..NiSpec::interface(name) })
                        .collect();
                }
                tracing::info!(net = %spec.net, rule = %rule.text, "ip2nets: rule matches this host");
                chosen.push(spec);
            }
        }
        if chosen.is_empty() {
            let addresses: Vec<String> =
                host.usable_addresses().map(|(i, a)| format!("{}={a}", i.name)).collect();
            let addresses =
                if addresses.is_empty() { "none usable".to_string() } else { addresses.join(", ") };
            return Err(ConfigError::Ip2netsNoMatch { addresses });
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LnetConfig;
    use crate::interfaces::Interface;
    use std::net::Ipv4Addr;

    fn host(addrs: &[(&str, [u8; 4])]) -> HostInterfaces {
        let mut v =
            vec![Interface { name: "lo".into(), ipv4: vec![Ipv4Addr::LOCALHOST], up: true, loopback: true }];
        for (name, a) in addrs {
            v.push(Interface::up(name, &[Ipv4Addr::from(*a)]));
        }
        HostInterfaces::new(v)
    }

    fn chosen(text: &str, h: &HostInterfaces) -> Vec<String> {
        LnetConfig::from_ip2nets(text, h)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .resolve(h)
            .unwrap()
            .iter()
            .map(|r| r.nid.to_string())
            .collect()
    }

    #[test]
    fn cluster_table_picks_per_host() {
        let table = "ip2nets=\"o2ib0(ib0) 192.168.0.*; tcp0(eth0) 10.0.[0-3].[1-254]\"";
        let both = host(&[("eth0", [10, 0, 2, 7]), ("ib0", [192, 168, 0, 7])]);
        assert_eq!(chosen(table, &both), ["192.168.0.7@o2ib", "10.0.2.7@tcp"]);
        let tcp_only = host(&[("eth0", [10, 0, 3, 9])]);
        assert_eq!(chosen(table, &tcp_only), ["10.0.3.9@tcp"]);
        let stranger = host(&[("eth0", [10, 0, 4, 9])]);
        let e = LnetConfig::from_ip2nets(table, &stranger).unwrap_err();
        assert_eq!(e.to_string(), "ip2nets matches none of this host's addresses (eth0=10.0.4.9)");
        assert_eq!(e.errno(), fabric::Errno::ENOENT);
    }

    #[test]
    fn manual_style_table_with_comments_and_first_match_wins() {
        let table = "\
            # servers on the fast fabric\n\
            o2ib(ib0) 132.6.[1-3].[2-8/2]   # even hosts only\n\
            tcp(eth1,eth2) 192.168.0.[2,4]; tcp 192.168.0.*\n";
        let h = host(&[("eth1", [192, 168, 0, 4]), ("eth2", [192, 168, 1, 4]), ("ib0", [132, 6, 2, 6])]);
        assert_eq!(chosen(table, &h), ["132.6.2.6@o2ib", "192.168.0.4@tcp", "192.168.1.4@tcp"]);
        // Host .9 falls to the catch-all rule, bound to the interface that matched.
        let h = host(&[("eth3", [192, 168, 0, 9]), ("ib0", [132, 6, 2, 7])]);
        assert_eq!(chosen(table, &h), ["192.168.0.9@tcp"]);
        let r = LnetConfig::from_ip2nets(table, &h).unwrap();
        assert_eq!(r.nets[0].nis[0].interface.as_deref(), Some("eth3"));
    }

    #[test]
    fn loopback_and_down_interfaces_never_match() {
        let mut h = host(&[]);
        let e = LnetConfig::from_ip2nets("tcp 127.0.0.*", &h).unwrap_err();
        assert_eq!(e.to_string(), "ip2nets matches none of this host's addresses (none usable)");
        h = HostInterfaces::new(vec![Interface {
            name: "eth0".into(),
            ipv4: vec![Ipv4Addr::new(10, 0, 0, 1)],
            up: false,
            loopback: false,
        }]);
        assert!(LnetConfig::from_ip2nets("tcp 10.0.0.*", &h).is_err());
    }

    #[test]
    fn broken_tables_name_the_rule() {
        for (text, why) in [
            ("", "no rules"),
            ("# only a comment", "no rules"),
            ("tcp(eth0)", "rule 1 `tcp(eth0)`: no address pattern"),
            ("tcp 10.0.0.*; eth0 10.0.1.*", "rule 2 `eth0 10.0.1.*`: unknown network type `eth`"),
            (
                "tcp 10.0.0.[1-300]",
                "rule 1 `tcp 10.0.0.[1-300]`: pattern `10.0.0.[1-300]`: 300 is larger than 255",
            ),
            ("tcp,tcp0 10.0.0.*", "network tcp is given twice"),
            ("tcp 10.0.0", "has 3 dot-separated parts"),
            ("tcp(eth0 10.0.0.1", "`(` without a closing `)`"),
        ] {
            let e = Ip2Nets::parse(text).expect_err(text).to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn spaces_inside_interface_lists_are_one_token() {
        let t = Ip2Nets::parse("tcp(eth0, eth1) 10.0.0.*").unwrap();
        assert_eq!(t.rules[0].nets[0].nis.len(), 2);
        assert_eq!(t.rules[0].patterns.len(), 1);
    }
}
