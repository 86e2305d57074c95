//! Numbers as `lfs` takes them: sizes with binary suffixes (`-S 4M`,
//! `--size +1G`) and the `[+-]N` comparisons of `lfs find`.

use super::error::LfsError;

/// How a `[+-]N` argument compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `+N`: more than N.
    Above,
    /// `-N`: less than N.
    Below,
    /// `N`: exactly N (in the argument's unit, rounded up as find(1) does).
    Exactly,
}

/// A `[+-]N[unit]` argument: N counted in `unit`s of bytes (or days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub cmp: Cmp,
    pub n: u64,
    pub unit: u64,
}

impl Bound {
    /// Whether `value` (in bytes, or whatever the unit counts) matches.
    /// `+`/`-` compare against N units exactly; a bare N matches values
    /// that round up to N units.
    pub fn matches(&self, value: u64) -> bool {
        let limit = self.n.saturating_mul(self.unit);
        match self.cmp {
            Cmp::Above => value > limit,
            Cmp::Below => value < limit,
            Cmp::Exactly => value.div_ceil(self.unit) == self.n,
        }
    }
}

fn unit_of(suffix: &str) -> Option<u64> {
    Some(match suffix {
        "" | "c" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        "p" | "P" => 1 << 50,
        "e" | "E" => 1 << 60,
        _ => return None,
    })
}

fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// A size in bytes: `1048576`, `64k`, `4M`, `1G`.
pub fn parse_size(what: &'static str, s: &str) -> Result<u64, LfsError> {
    let bad = |reason: &str| LfsError::BadArg { what, value: s.to_string(), reason: reason.to_string() };
    let (digits, suffix) = split_number(s);
    if digits.is_empty() {
        return Err(bad("expected a number with an optional k, M, G, T, P or E suffix"));
    }
    let unit = unit_of(suffix).ok_or_else(|| bad("unknown unit suffix (k, M, G, T, P or E)"))?;
    let n: u64 = digits.parse().map_err(|_| bad("number too large"))?;
    n.checked_mul(unit).ok_or_else(|| bad("size too large"))
}

/// `[+-]N[kMGTPE]`, as `lfs find --size` takes it.
pub fn parse_size_bound(s: &str) -> Result<Bound, LfsError> {
    let (cmp, rest) = split_sign(s);
    let (digits, suffix) = split_number(rest);
    let bad =
        |reason: &str| LfsError::BadArg { what: "size", value: s.to_string(), reason: reason.to_string() };
    if digits.is_empty() {
        return Err(bad("expected [+-]N[kMGTPE]"));
    }
    let unit = unit_of(suffix).ok_or_else(|| bad("unknown unit suffix (k, M, G, T, P or E)"))?;
    let n: u64 = digits.parse().map_err(|_| bad("number too large"))?;
    n.checked_mul(unit).ok_or_else(|| bad("size too large"))?;
    Ok(Bound { cmp, n, unit })
}

/// `[+-]N` without units (stripe counts, days).
pub fn parse_count_bound(what: &'static str, s: &str) -> Result<Bound, LfsError> {
    let (cmp, rest) = split_sign(s);
    let n: u64 = rest.parse().map_err(|_| LfsError::BadArg {
        what,
        value: s.to_string(),
        reason: "expected [+-]N".to_string(),
    })?;
    Ok(Bound { cmp, n, unit: 1 })
}

fn split_sign(s: &str) -> (Cmp, &str) {
    if let Some(r) = s.strip_prefix('+') {
        (Cmp::Above, r)
    } else if let Some(r) = s.strip_prefix('-') {
        (Cmp::Below, r)
    } else {
        (Cmp::Exactly, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stripe_sizes() {
        assert_eq!(parse_size("stripe size", "4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("stripe size", "64k").unwrap(), 65536);
        assert_eq!(parse_size("stripe size", "1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("stripe size", "2G").unwrap(), 2 << 30);
        for bad in ["", "M", "4X", "4MB", "-4M", "99999999999999999999", "16E"] {
            assert!(parse_size("stripe size", bad).is_err(), "{bad}");
        }
        let e = parse_size("stripe size", "4Q").unwrap_err();
        assert_eq!(e.to_string(), "invalid stripe size '4Q': unknown unit suffix (k, M, G, T, P or E)");
    }

    #[test]
    fn find_size_bounds() {
        let b = parse_size_bound("+1M").unwrap();
        assert_eq!(b, Bound { cmp: Cmp::Above, n: 1, unit: 1 << 20 });
        assert!(b.matches((1 << 20) + 1) && !b.matches(1 << 20));
        let b = parse_size_bound("-1M").unwrap();
        assert!(b.matches(0) && b.matches((1 << 20) - 1) && !b.matches(1 << 20));
        let b = parse_size_bound("2k").unwrap();
        assert!(b.matches(1025) && b.matches(2048) && !b.matches(1024) && !b.matches(2049));
        let b = parse_size_bound("100").unwrap();
        assert!(b.matches(100) && !b.matches(99) && !b.matches(101));
        assert!(parse_size_bound("+").is_err() && parse_size_bound("+1Z").is_err());
    }

    #[test]
    fn count_bounds() {
        let b = parse_count_bound("stripe count", "+2").unwrap();
        assert!(b.matches(3) && !b.matches(2));
        assert!(parse_count_bound("stripe count", "-3").unwrap().matches(2));
        assert!(parse_count_bound("stripe count", "4").unwrap().matches(4));
        assert!(parse_count_bound("stripe count", "x").is_err());
    }

    proptest! {
        #[test]
        fn sizes_round_trip(n in 0u64..(1 << 20), unit in 0usize..4) {
            let (suffix, mul) = [("", 1u64), ("k", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)][unit];
            prop_assert_eq!(parse_size("size", &format!("{n}{suffix}")).unwrap(), n * mul);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,12}") {
            let _ = parse_size("size", &s);
            let _ = parse_size_bound(&s);
            let _ = parse_count_bound("count", &s);
        }

        #[test]
        fn exactly_is_the_rounded_up_unit(size in 0u64..(1 << 40), n in 0u64..2048) {
            let b = Bound { cmp: Cmp::Exactly, n, unit: 1 << 20 };
            prop_assert_eq!(b.matches(size), size.div_ceil(1 << 20) == n);
            let above = Bound { cmp: Cmp::Above, ..b };
            let below = Bound { cmp: Cmp::Below, ..b };
            prop_assert!(!(above.matches(size) && below.matches(size)));
        }
    }
}
