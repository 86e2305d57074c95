//! Module-style network lists, as in `options lnet networks="..."`:
//! `o2ib0(ib0),tcp0(eth0)`, `tcp`, `tcp1(eth1,eth2)`, optionally with a
//! CPT list after the interfaces (`o2ib(ib0)[0,1]`). The `networks=` key,
//! quotes and whitespace are tolerated. Each interface becomes its own NI,
//! as in Multi-Rail LNet.

use crate::config::{NetSpec, NiSpec};
use crate::error::ConfigError;
use fabric::{Net, NetType};

/// Longest interface name Linux allows (IFNAMSIZ less the NUL).
const IFNAME_MAX: usize = 15;

/// Removes a leading `key=` and surrounding quotes, as admins paste them
/// from modprobe files.
pub(crate) fn strip_key_and_quotes<'a>(text: &'a str, key: &str) -> &'a str {
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix(key)
        && let Some(rest) = rest.trim_start().strip_prefix('=')
    {
        s = rest.trim();
    }
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].trim();
        }
    }
    s
}

/// Splits at `sep` outside `(...)` and `[...]`.
pub(crate) fn split_top(s: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut depth_paren = 0i32;
    let mut depth_bracket = 0i32;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth_paren += 1,
            ')' => depth_paren -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            c if c == sep && depth_paren == 0 && depth_bracket == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
        if depth_paren < 0 {
            return Err(format!("unmatched `)` at byte {i}"));
        }
        if depth_bracket < 0 {
            return Err(format!("unmatched `]` at byte {i}"));
        }
    }
    if depth_paren > 0 {
        return Err("`(` without a closing `)`".into());
    }
    if depth_bracket > 0 {
        return Err("`[` without a closing `]`".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// Parses a CPT list `[0,1,4-7]`.
fn parse_cpts(text: &str) -> Result<Vec<u32>, String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("`{text}` after the interfaces is not a CPT list like [0,1]"))?;
    let mut cpts = Vec::new();
    for part in inner.split(',') {
        let part = part.trim();
        let num = |s: &str| {
            s.trim().parse::<u32>().map_err(|_| format!("CPT `{}` in `{text}` is not a number", s.trim()))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (num(lo)?, num(hi)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi || hi - lo > 1024 {
            return Err(format!("CPT range `{part}` in `{text}` is empty or too large"));
        }
        for c in lo..=hi {
            if !cpts.contains(&c) {
                cpts.push(c);
            }
        }
    }
    Ok(cpts)
}

fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty interface name".into());
    }
    if name.len() > IFNAME_MAX {
        return Err(format!("interface name `{name}` is longer than {IFNAME_MAX} characters"));
    }
    if let Some(c) =
        name.chars().find(|c| c.is_whitespace() || matches!(c, '/' | '(' | ')' | '[' | ']' | ','))
    {
        return Err(format!("interface name `{name}` contains `{c}`"));
    }
    Ok(())
}

/// Parses one network spec `tcp1(eth1,eth2)[0,1]`.
pub(crate) fn parse_net_spec(item: &str) -> Result<NetSpec, String> {
    let item = item.trim();
    if item.is_empty() {
        return Err("empty network (stray comma?)".into());
    }
    let (name, rest) = match item.find(['(', '[']) {
        Some(i) => (item[..i].trim(), &item[i..]),
        None => (item, ""),
    };
    let net: Net = name.parse().map_err(|e: fabric::NidError| e.reason)?;
    if net.kind == NetType::Lo {
        return Err("the loopback network `lo` is always present and cannot be configured".into());
    }
    let (ifaces, rest) = match rest.strip_prefix('(') {
        Some(r) => {
            let close = r.find(')').ok_or_else(|| format!("`{item}`: `(` without a closing `)`"))?;
            (Some(&r[..close]), r[close + 1..].trim())
        }
        None => (None, rest.trim()),
    };
    let cpts = if rest.is_empty() { Vec::new() } else { parse_cpts(rest)? };
    let mut nis: Vec<NiSpec> = Vec::new();
    match ifaces {
        None => nis.push(NiSpec { cpts, ..NiSpec::default() }),
        Some(list) => {
            if list.trim().is_empty() {
                return Err(format!("`{item}`: empty interface list `()`"));
            }
            for name in list.split(',') {
                let name = name.trim();
                check_ifname(name)?;
                if nis.iter().any(|n| n.interface.as_deref() == Some(name)) {
                    return Err(format!("interface `{name}` is listed twice in {net}"));
                }
                nis.push(NiSpec { cpts: cpts.clone(), ..NiSpec::interface(name) });
            }
        }
    }
    Ok(NetSpec::new(net, nis))
}

/// Parses `networks=` text into network specs, in the order written.
pub fn parse_networks(text: &str) -> Result<Vec<NetSpec>, ConfigError> {
    let err = |reason: String| ConfigError::Networks { input: text.trim().to_string(), reason };
    let body = strip_key_and_quotes(text, "networks");
    if body.is_empty() {
        return Err(err("no networks given".into()));
    }
    let mut nets: Vec<NetSpec> = Vec::new();
    for item in split_top(body, ',').map_err(err)? {
        let spec = parse_net_spec(item).map_err(err)?;
        if nets.iter().any(|n| n.net == spec.net) {
            return Err(err(format!("network {} is given twice", spec.net)));
        }
        nets.push(spec);
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(text: &str) -> String {
        parse_networks(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .iter()
            .map(|n| {
                let nis: Vec<String> = n
                    .nis
                    .iter()
                    .map(|ni| {
                        let mut s = ni.interface.clone().unwrap_or_else(|| "*".into());
                        if !ni.cpts.is_empty() {
                            s += &format!("{:?}", ni.cpts);
                        }
                        s
                    })
                    .collect();
                format!("{}({})", n.net, nis.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn what_admins_write() {
        for (text, want) in [
            ("o2ib0(ib0),tcp0(eth0)", "o2ib(ib0) tcp(eth0)"),
            ("networks=\"o2ib0(ib0),tcp0(eth0)\"", "o2ib(ib0) tcp(eth0)"),
            ("networks = 'tcp1(eth1,eth2)'", "tcp1(eth1,eth2)"),
            ("tcp", "tcp(*)"),
            ("  tcp0 ( eth0 ) , o2ib1( ib1 ,ib2 ) ", "tcp(eth0) o2ib1(ib1,ib2)"),
            ("o2ib(ib0)[0,1]", "o2ib(ib0[0, 1])"),
            ("tcp(eth0)[2-4],o2ib[0]", "tcp(eth0[2, 3, 4]) o2ib(*[0])"),
            ("tcp(eth0:1)", "tcp(eth0:1)"),
            ("tcp2(bond0.100)", "tcp2(bond0.100)"),
        ] {
            assert_eq!(summary(text), want, "{text}");
        }
    }

    #[test]
    fn broken_configs_say_why() {
        for (text, why) in [
            ("", "no networks given"),
            ("networks=\"\"", "no networks given"),
            ("tcp0(eth0),", "empty network (stray comma?)"),
            ("tcp0(eth0", "`(` without a closing `)`"),
            ("tcp0 eth0)", "unmatched `)`"),
            ("eth0", "unknown network type `eth`"),
            ("tcp01(eth0)", "leading zero"),
            ("tcp(eth0),tcp0(eth1)", "network tcp is given twice"),
            ("tcp()", "empty interface list"),
            ("tcp(eth0,,eth1)", "empty interface name"),
            ("tcp(eth0,eth0)", "interface `eth0` is listed twice in tcp"),
            ("tcp(averyveryverylongname0)", "longer than 15 characters"),
            ("tcp(eth 0)", "contains ` `"),
            ("lo", "loopback network `lo` is always present"),
            ("tcp(eth0)x", "is not a CPT list"),
            ("tcp(eth0)[a]", "CPT `a`"),
            ("tcp(eth0)[3-1]", "empty or too large"),
            ("o2ib(ib0)[0", "`[` without a closing `]`"),
        ] {
            let e = parse_networks(text).expect_err(text);
            let msg = e.to_string();
            assert!(msg.contains(why), "{text}: {msg}");
            assert!(msg.starts_with("networks `"), "{msg}");
            assert_eq!(e.errno(), fabric::Errno::EINVAL);
        }
    }
}
