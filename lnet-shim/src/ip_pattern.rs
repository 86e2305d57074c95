//! The IPv4 address patterns Lustre accepts in `ip2nets` and `routes`:
//! four dot-separated octet expressions, each `*`, a number, or a
//! bracketed list of numbers, ranges `a-b` and strided ranges `a-b/s`
//! (`10.0.[0-3].[1-254]`, `192.168.0.[2,4]`, `132.6.[1-3].[2-8/2]`).
//! Ranges are only allowed inside brackets, as in Lustre.

use crate::error::ConfigError;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// `lo..=hi` taking every `step`-th value from `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OctetRange {
    pub lo: u8,
    pub hi: u8,
    pub step: u8,
}

impl OctetRange {
    pub fn matches(&self, v: u8) -> bool {
        v >= self.lo && v <= self.hi && (v - self.lo).is_multiple_of(self.step)
    }

    fn values(self) -> impl Iterator<Item = u8> {
        (u32::from(self.lo)..=u32::from(self.hi)).step_by(usize::from(self.step)).map(|v| v as u8)
    }
}

/// One octet's expression: the value matches if any range does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OctetExpr {
    pub ranges: Vec<OctetRange>,
}

impl OctetExpr {
    pub fn matches(&self, v: u8) -> bool {
        self.ranges.iter().any(|r| r.matches(v))
    }

    /// The matching values, ascending and without repeats.
    pub fn values(&self) -> Vec<u8> {
        let mut hit = [false; 256];
        for r in &self.ranges {
            for v in r.values() {
                hit[usize::from(v)] = true;
            }
        }
        (0..=255u8).filter(|v| hit[usize::from(*v)]).collect()
    }
}

/// A pattern over IPv4 addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPattern {
    pub octets: [OctetExpr; 4],
}

impl IpPattern {
    pub fn matches(&self, addr: Ipv4Addr) -> bool {
        self.octets.iter().zip(addr.octets()).all(|(e, v)| e.matches(v))
    }

    /// How many addresses match.
    pub fn count(&self) -> u64 {
        self.octets.iter().map(|o| o.values().len() as u64).product()
    }

    /// Every matching address, ascending. Callers bound [`IpPattern::count`] first.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| self.octets[i].values());
        a.into_iter().flat_map(move |a| {
            let (c, d) = (c.clone(), d.clone());
            b.clone().into_iter().flat_map(move |b| {
                let d = d.clone();
                c.clone()
                    .into_iter()
                    .flat_map(move |c| d.clone().into_iter().map(move |d| Ipv4Addr::new(a, b, c, d)))
            })
        })
    }
}

fn bad(pattern: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Pattern { pattern: pattern.to_string(), reason: reason.into() }
}

fn number(pattern: &str, s: &str) -> Result<u8, ConfigError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(pattern, format!("`{s}` is not a number")));
    }
    s.parse::<u8>().map_err(|_| bad(pattern, format!("{s} is larger than 255")))
}

fn range(pattern: &str, s: &str) -> Result<OctetRange, ConfigError> {
    let s = s.trim();
    if s == "*" {
        return Ok(OctetRange { lo: 0, hi: 255, step: 1 });
    }
    let (span, step) = match s.split_once('/') {
        Some((span, step)) => (span, number(pattern, step)?),
        None => (s, 1),
    };
    if step == 0 {
        return Err(bad(pattern, format!("`{s}` has a step of 0")));
    }
    let (lo, hi) = match span.split_once('-') {
        Some((lo, hi)) => (number(pattern, lo)?, number(pattern, hi)?),
        None if step != 1 => return Err(bad(pattern, format!("`{s}`: a step needs a range `a-b/step`"))),
        None => {
            let v = number(pattern, span)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(bad(pattern, format!("`{s}` is an empty range ({lo} > {hi})")));
    }
    Ok(OctetRange { lo, hi, step })
}

fn octet(pattern: &str, s: &str) -> Result<OctetExpr, ConfigError> {
    if s == "*" {
        return Ok(OctetExpr { ranges: vec![range(pattern, s)?] });
    }
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| bad(pattern, format!("`{s}` has `[` without a closing `]`")))?;
        if inner.trim().is_empty() {
            return Err(bad(pattern, "`[]` matches nothing"));
        }
        let ranges = inner.split(',').map(|r| range(pattern, r)).collect::<Result<_, _>>()?;
        return Ok(OctetExpr { ranges });
    }
    if s.contains(['-', '/', ',', ']']) {
        return Err(bad(pattern, format!("`{s}`: ranges and lists go in brackets, e.g. `[{s}]`")));
    }
    let v = number(pattern, s)?;
    Ok(OctetExpr { ranges: vec![OctetRange { lo: v, hi: v, step: 1 }] })
}

impl FromStr for IpPattern {
    type Err = ConfigError;

    fn from_str(pattern: &str) -> Result<IpPattern, ConfigError> {
        let parts: Vec<&str> = pattern.trim().split('.').collect();
        if parts.len() != 4 {
            return Err(bad(
                pattern,
                format!("has {} dot-separated parts, an IPv4 pattern has 4", parts.len()),
            ));
        }
        let mut octets = Vec::with_capacity(4);
        for p in parts {
            octets.push(octet(pattern, p.trim())?);
        }
        let octets: [OctetExpr; 4] = octets.try_into().map_err(|_| bad(pattern, "internal: not 4 octets"))?;
        Ok(IpPattern { octets })
    }
}

impl fmt::Display for OctetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.lo == self.hi, self.step) {
            (true, _) => write!(f, "{}", self.lo),
            (false, 1) => write!(f, "{}-{}", self.lo, self.hi),
            (false, s) => write!(f, "{}-{}/{s}", self.lo, self.hi),
        }
    }
}

impl fmt::Display for OctetExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ranges.as_slice() {
            [r] if r.lo == 0 && r.hi == 255 && r.step == 1 => f.write_str("*"),
            [r] if r.lo == r.hi => write!(f, "{}", r.lo),
            rs => {
                f.write_str("[")?;
                for (i, r) in rs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{r}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for IpPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = &self.octets;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn lustre_manual_examples() {
        let p: IpPattern = "192.168.0.*".parse().unwrap();
        assert!(p.matches(ip("192.168.0.0")) && p.matches(ip("192.168.0.255")));
        assert!(!p.matches(ip("192.168.1.1")));

        let p: IpPattern = "10.0.[0-3].[1-254]".parse().unwrap();
        assert!(p.matches(ip("10.0.3.254")) && p.matches(ip("10.0.0.1")));
        assert!(!p.matches(ip("10.0.4.1")) && !p.matches(ip("10.0.0.0")) && !p.matches(ip("10.0.1.255")));

        let p: IpPattern = "192.168.0.[2,4]".parse().unwrap();
        assert!(p.matches(ip("192.168.0.2")) && p.matches(ip("192.168.0.4")));
        assert!(!p.matches(ip("192.168.0.3")));

        let p: IpPattern = "132.6.[1-3].[2-8/2]".parse().unwrap();
        assert!(p.matches(ip("132.6.2.6")) && p.matches(ip("132.6.1.8")));
        assert!(!p.matches(ip("132.6.2.7")) && !p.matches(ip("132.6.2.10")));
        assert_eq!(p.count(), 3 * 4);

        let p: IpPattern = "[10,11].[0-255/128].*.[ 1 , 3-5 ]".parse().unwrap();
        assert!(p.matches(ip("11.128.9.4")) && !p.matches(ip("11.127.9.4")));
        assert_eq!(p.to_string(), "[10,11].[0-255/128].*.[1,3-5]");
    }

    #[test]
    fn rejects_with_the_reason() {
        for (text, why) in [
            ("10.0.0", "has 3 dot-separated parts"),
            ("10.0.0.1.2", "has 5 dot-separated parts"),
            ("10.0.0.256", "256 is larger than 255"),
            ("10.0.0.1-5", "ranges and lists go in brackets"),
            ("10.0.0.[1-5", "without a closing `]`"),
            ("10.0.0.[5-1]", "empty range (5 > 1)"),
            ("10.0.0.[1-9/0]", "step of 0"),
            ("10.0.0.[3/2]", "a step needs a range"),
            ("10.0.0.[]", "matches nothing"),
            ("10.0.x.1", "`x` is not a number"),
            ("10.0.+1.1", "`+1` is not a number"),
            ("10.0..1", "`` is not a number"),
        ] {
            let e = text.parse::<IpPattern>().expect_err(text).to_string();
            assert!(e.contains(why) && e.contains(text), "{text}: {e}");
        }
    }

    #[test]
    fn addresses_enumerates_exactly_the_matches() {
        let p: IpPattern = "10.[1,3].0.[1-7/3]".parse().unwrap();
        let all: Vec<String> = p.addresses().map(|a| a.to_string()).collect();
        assert_eq!(all, ["10.1.0.1", "10.1.0.4", "10.1.0.7", "10.3.0.1", "10.3.0.4", "10.3.0.7"]);
        assert_eq!(p.count(), 6);
    }

    /// A generated octet expression as text, with the set of values it stands for.
    fn octet_expr() -> impl Strategy<Value = (String, Vec<bool>)> {
        let one_range = (any::<u8>(), any::<u8>(), 1u8..=20, 0u8..4).prop_map(|(a, b, step, form)| {
            let (lo, hi) = (a.min(b), a.max(b));
            let mut set = vec![false; 256];
            let text = match form {
                0 => {
                    set[usize::from(lo)] = true;
                    lo.to_string()
                }
                1 => {
                    (lo..=hi).for_each(|v| set[usize::from(v)] = true);
                    format!("{lo}-{hi}")
                }
                2 => {
                    (u32::from(lo)..=u32::from(hi))
                        .step_by(usize::from(step))
                        .for_each(|v| set[v as usize] = true);
                    format!("{lo}-{hi}/{step}")
                }
                _ => {
                    set.iter_mut().for_each(|s| *s = true);
                    "*".to_string()
                }
            };
            (text, set)
        });
        prop_oneof![
            any::<u8>().prop_map(|v| {
                let mut set = vec![false; 256];
                set[usize::from(v)] = true;
                (v.to_string(), set)
            }),
            Just(("*".to_string(), vec![true; 256])),
            prop::collection::vec(one_range, 1..4).prop_map(|rs| {
                let text = format!("[{}]", rs.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(","));
                let set = (0..256).map(|v| rs.iter().any(|(_, s)| s[v])).collect();
                (text, set)
            }),
        ]
    }

    proptest! {
        #[test]
        fn matches_iff_every_octet_is_in_its_set(
            exprs in prop::array::uniform4(octet_expr()),
            addr in any::<[u8; 4]>(),
            from_pattern in any::<bool>(),
            pick in any::<[prop::sample::Index; 4]>(),
        ) {
            let text = exprs.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(".");
            let p: IpPattern = text.parse().unwrap();
            // Half the cases draw the address from the pattern's own sets so
            // that matches are as common as misses.
            let addr = if from_pattern {
                let mut a = [0u8; 4];
                for i in 0..4 {
                    let vals: Vec<usize> = (0..256).filter(|v| exprs[i].1[*v]).collect();
                    a[i] = vals[pick[i].index(vals.len())] as u8;
                }
                a
            } else {
                addr
            };
            let expected = (0..4).all(|i| exprs[i].1[usize::from(addr[i])]);
            prop_assert_eq!(p.matches(Ipv4Addr::from(addr)), expected, "{} vs {:?}", text, addr);
            // The printed form is the same pattern.
            let again: IpPattern = p.to_string().parse().unwrap();
            prop_assert_eq!(again.matches(Ipv4Addr::from(addr)), expected);
            prop_assert_eq!(again.count(), p.count());
        }

        #[test]
        fn parse_never_panics(s in "[0-9\\[\\]\\-/,*. x]{0,30}") {
            let _ = s.parse::<IpPattern>();
        }
    }
}
