//! Parameter names and the patterns `lctl get_param` takes: dotted names
//! (`osc.glint-OST0000-osc-ffff8c1d.max_rpcs_in_flight`) matched component
//! by component, where `*` is any run of characters and `?` any one
//! character within a component, as the shell globs Lustre's lctl hands
//! to glob(3) over /proc paths. A `*` never crosses a dot.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut p = pattern.split('.');
    let mut n = name.split('.');
    loop {
        match (p.next(), n.next()) {
            (None, None) => return true,
            (Some(pc), Some(nc)) if component(pc.as_bytes(), nc.as_bytes()) => {}
            _ => return false,
        }
    }
}

/// One component: `*` and `?` wildcards, everything else literal.
fn component(p: &[u8], n: &[u8]) -> bool {
    // The classic linear matcher: on a mismatch, go back to just after
    // the last `*` and let it swallow one more character.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lustre_style_patterns() {
        let n = "osc.glint-OST0001-osc-ffff88.max_rpcs_in_flight";
        assert!(matches("osc.*.max_rpcs_in_flight", n));
        assert!(matches("osc.glint-OST000?-osc-*.max_*", n));
        assert!(matches("*.*.*", n));
        assert!(matches(n, n));
        assert!(!matches("osc.*", n), "a pattern names every component");
        assert!(!matches("osc.*.max_pages_per_rpc", n));
        assert!(!matches("*", n), "a star stays within its component");
        assert!(!matches("mdc.*.max_rpcs_in_flight", n));
        assert!(matches("obdfilter.*-OST0000.stats", "obdfilter.glint-OST0000.stats"));
        assert!(!matches("obdfilter.*-OST0000.stats", "obdfilter.glint-OST0001.stats"));
    }

    /// A reference matcher: recursive, obviously right, slow.
    fn reference(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(b'?'), Some(_)) => reference(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &n[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(p in "[ab*?]{0,8}", n in "[ab]{0,10}") {
            prop_assert_eq!(component(p.as_bytes(), n.as_bytes()), reference(p.as_bytes(), n.as_bytes()));
        }

        #[test]
        fn a_name_matches_itself_and_all_stars(parts in proptest::collection::vec("[a-z0-9_-]{1,12}", 1..5)) {
            let name = parts.join(".");
            prop_assert!(matches(&name, &name));
            let stars = vec!["*"; parts.len()].join(".");
            prop_assert!(matches(&stars, &name));
            let fewer = vec!["*"; parts.len() + 1].join(".");
            prop_assert!(!matches(&fewer, &name));
        }
    }
}
