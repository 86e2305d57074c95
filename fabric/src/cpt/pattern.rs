//! Lustre's `cpu_pattern` syntax. A pattern lists partitions as
//! `ID[RANGES]`: `0[0-3] 1[4-7]` puts cpus 0-3 in partition 0 and 4-7 in
//! partition 1. A leading `N` makes the numbers NUMA node ids instead
//! (`N 0[0] 1[1-2]`), and `N` alone means one partition per NUMA node.
//! RANGES is a comma list of `A`, `A-B` or `A-B/STRIDE`. Partition ids run
//! from 0 to one less than the number of partitions, each given once.

use super::{Cpt, PatternError, TopologyDesc};
use std::collections::BTreeMap;

pub(crate) fn parse(topo: &TopologyDesc, text: &str) -> Result<Vec<Cpt>, PatternError> {
    let text = text.trim();
    let (by_node, mut rest) = match text.strip_prefix(['N', 'n']) {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if by_node && rest.trim().is_empty() {
        return Ok(topo
            .cpu_nodes()
            .enumerate()
            .map(|(id, n)| Cpt::new(id, n.cpus().collect(), &[], topo))
            .collect());
    }
    let count = rest.matches('[').count();
    if count == 0 {
        return Err(PatternError::Empty);
    }
    let (available, kind) =
        if by_node { (topo.nodes().len(), "NUMA nodes") } else { (topo.cpu_count(), "cpus") };
    if count > available {
        return Err(PatternError::TooMany { count, available, kind });
    }

    // Partition id -> (cpus, nodes named); and who already owns a cpu or node.
    let mut parts: Vec<Option<(Vec<usize>, Vec<usize>)>> = vec![None; count];
    let mut cpu_owner: BTreeMap<usize, usize> = BTreeMap::new();
    let mut node_owner: BTreeMap<usize, usize> = BTreeMap::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let cpt: usize = match rest[..digits].parse() {
            Ok(cpt) => cpt,
            Err(_) => return Err(PatternError::ExpectedPartition(snippet(rest))),
        };
        if cpt >= count {
            return Err(PatternError::PartitionOutOfRange { cpt, count });
        }
        if parts[cpt].is_some() {
            return Err(PatternError::DuplicatePartition(cpt));
        }
        rest = rest[digits..].trim_start();
        if !rest.starts_with('[') {
            return Err(PatternError::ExpectedBracket { cpt, found: snippet(rest) });
        }
        let close = rest.find(']').ok_or(PatternError::MissingBracket(cpt))?;
        let ids = ranges(cpt, &rest[1..close])?;
        rest = &rest[close + 1..];

        let (mut cpus, mut nodes) = (Vec::new(), Vec::new());
        for id in ids {
            if by_node {
                let node = topo.node(id).ok_or(PatternError::NoSuch { cpt, kind: "NUMA node", id })?;
                claim(&mut node_owner, "NUMA node", id, cpt)?;
                nodes.push(id);
                cpus.extend(node.cpus());
            } else {
                if !topo.has_cpu(id) {
                    return Err(PatternError::NoSuch { cpt, kind: "cpu", id });
                }
                cpus.push(id);
            }
        }
        for &cpu in &cpus {
            claim(&mut cpu_owner, "cpu", cpu, cpt)?;
        }
        if cpus.is_empty() {
            return Err(PatternError::NoCpus(cpt));
        }
        parts[cpt] = Some((cpus, nodes));
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(id, part)| {
            // Each partition consumed one `[`, so all are present; a stray
            // `[` inside a range list was refused by `ranges`.
            let (cpus, nodes) = part.ok_or(PatternError::NoCpus(id))?;
            Ok(Cpt::new(id, cpus, &nodes, topo))
        })
        .collect()
}

fn claim(
    owner: &mut BTreeMap<usize, usize>,
    kind: &'static str,
    id: usize,
    cpt: usize,
) -> Result<(), PatternError> {
    match owner.insert(id, cpt) {
        Some(first) => Err(PatternError::Twice { kind, id, first, second: cpt }),
        None => Ok(()),
    }
}

/// The ids a range list names, in order; ranges are checked against
/// nothing but their own syntax here, so a huge `0-4000000000` is refused
/// by the caller at its first missing id rather than enumerated.
fn ranges(cpt: usize, body: &str) -> Result<impl Iterator<Item = usize>, PatternError> {
    let bad = |reason: &'static str, range: &str| PatternError::BadRange {
        cpt,
        range: range.trim().to_string(),
        reason,
    };
    let number = |text: &str, range: &str| -> Result<usize, PatternError> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected a number, `A-B` or `A-B/STRIDE`", range));
        }
        text.parse().map_err(|_| bad("number too large", range))
    };
    let mut spans = Vec::new();
    for range in body.split(',') {
        if range.trim().is_empty() {
            return Err(bad("empty range", range));
        }
        let (span, stride) = match range.split_once('/') {
            Some((span, stride)) => (span, number(stride, range)?),
            None => (range, 1),
        };
        let (lo, hi) = match span.split_once('-') {
            Some((lo, hi)) => (number(lo, range)?, number(hi, range)?),
            None => {
                let n = number(span, range)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad("range starts after it ends", range));
        }
        if stride == 0 {
            return Err(bad("stride must be at least 1", range));
        }
        spans.push((lo, hi, stride));
    }
    Ok(spans.into_iter().flat_map(|(lo, hi, stride)| (lo..=hi).step_by(stride)))
}

fn snippet(s: &str) -> String {
    if s.is_empty() { "end of pattern".into() } else { s.chars().take(16).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;
    use crate::cpt::{CptError, CptTable, NumaNodeDesc};
    use proptest::prelude::*;

    fn cpus_of(cpts: &[Cpt]) -> Vec<Vec<usize>> {
        cpts.iter().map(|c| c.cpus().to_vec()).collect()
    }

    #[test]
    fn by_cpu() {
        let topo = TopologyDesc::uniform(1, 2, 4, 1, 0).unwrap();
        let cpts = parse(&topo, "0[0-3] 1[4-7]").unwrap();
        assert_eq!(cpus_of(&cpts), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert_eq!(cpts[1].numa_nodes(), &[1]);
        // Order, spacing, lists and strides.
        let cpts = parse(&topo, "  1 [ 1, 3 ,5-7/2]0[0,2,4,6-6]  ").unwrap();
        assert_eq!(cpus_of(&cpts), vec![vec![0, 2, 4, 6], vec![1, 3, 5, 7]]);
        // A partition across nodes is allowed when asked for by name.
        let cpts = parse(&topo, "0[3-4]").unwrap();
        assert_eq!(cpts[0].numa_nodes(), &[0, 1]);
        assert_eq!(cpts[0].home_node(), 0);
    }

    #[test]
    fn by_numa_node() {
        let topo = TopologyDesc::uniform(2, 2, 2, 2, 0).unwrap();
        let cpts = parse(&topo, "N 0[0] 1[1-3]").unwrap();
        assert_eq!(cpts.len(), 2);
        assert_eq!(cpts[0].numa_nodes(), &[0]);
        assert_eq!(cpts[0].cpus(), &[0, 1, 8, 9]);
        assert_eq!(cpts[1].numa_nodes(), &[1, 2, 3]);
        assert_eq!(cpts[1].core_count(), 6);
        let cpts = parse(&topo, "n").unwrap();
        assert_eq!(cpts.len(), 4);
        // A memory-only node may join a partition but not make one.
        let node = |id, cores| NumaNodeDesc { id, package: Some(0), cores, memory_bytes: 0 };
        let topo = TopologyDesc::new(vec![node(0, vec![vec![0], vec![1]]), node(1, vec![])]).unwrap();
        let cpts = parse(&topo, "N 0[0-1]").unwrap();
        assert_eq!(cpts[0].numa_nodes(), &[0, 1]);
        assert_eq!(cpts[0].home_node(), 0);
        assert_eq!(parse(&topo, "N 0[0] 1[1]").unwrap_err(), PatternError::NoCpus(1));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let topo = TopologyDesc::uniform(1, 2, 4, 1, 0).unwrap();
        let err = |p: &str| parse(&topo, p).unwrap_err();
        use PatternError::*;
        assert_eq!(err(""), Empty);
        assert_eq!(err("  "), Empty);
        assert_eq!(err("0 1 2"), Empty);
        assert_eq!(err("N 0 1"), Empty);
        assert_eq!(err("x[0]"), ExpectedPartition("x[0]".into()));
        assert_eq!(err("-1[0]"), ExpectedPartition("-1[0]".into()));
        assert_eq!(err("0[0] junk[1]"), ExpectedPartition("junk[1]".into()));
        assert_eq!(err("0[0] 1[1] 1[2]"), DuplicatePartition(1));
        assert_eq!(err("2[0] 1[1]"), PartitionOutOfRange { cpt: 2, count: 2 });
        assert_eq!(err("99999999999999999999999[0]"), ExpectedPartition("9999999999999999".into()));
        assert_eq!(err("0 x [0]"), ExpectedBracket { cpt: 0, found: "x [0]".into() });
        assert_eq!(err("0[0-3"), MissingBracket(0));
        assert_eq!(err("0[]"), BadRange { cpt: 0, range: "".into(), reason: "empty range" });
        assert_eq!(err("0[1,]"), BadRange { cpt: 0, range: "".into(), reason: "empty range" });
        assert_eq!(
            err("0[3-1]"),
            BadRange { cpt: 0, range: "3-1".into(), reason: "range starts after it ends" }
        );
        assert_eq!(
            err("0[0-3/0]"),
            BadRange { cpt: 0, range: "0-3/0".into(), reason: "stride must be at least 1" }
        );
        assert!(matches!(err("0[a-b]"), BadRange { reason: "expected a number, `A-B` or `A-B/STRIDE`", .. }));
        assert!(matches!(err("0[0[1]]"), BadRange { .. }));
        assert!(matches!(err("0[1-99999999999999999999999]"), BadRange { reason: "number too large", .. }));
        assert_eq!(err("0[0-8]"), NoSuch { cpt: 0, kind: "cpu", id: 8 });
        assert_eq!(err("0[0-4000000000]"), NoSuch { cpt: 0, kind: "cpu", id: 8 });
        assert_eq!(err("N 0[0] 1[2]"), NoSuch { cpt: 1, kind: "NUMA node", id: 2 });
        assert_eq!(err("0[0-3] 1[3-7]"), Twice { kind: "cpu", id: 3, first: 0, second: 1 });
        assert_eq!(err("N 0[0] 1[0]"), Twice { kind: "NUMA node", id: 0, first: 0, second: 1 });
        assert_eq!(err("N 0[0] 1[1] 2[1]"), TooMany { count: 3, available: 2, kind: "NUMA nodes" });
        let nine: String = (0..9).map(|i| format!("{i}[0] ")).collect();
        assert_eq!(err(&nine), TooMany { count: 9, available: 8, kind: "cpus" });

        let e = CptTable::from_pattern(&topo, "0[0-8]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad cpu_pattern `0[0-8]`: cpu 8 in partition 0 does not exist on this machine"
        );
        assert_eq!(e.errno(), Errno::ENODEV);
        assert!(matches!(e, CptError::Pattern { .. }));
        assert_eq!(CptTable::from_pattern(&topo, "0[").unwrap_err().errno(), Errno::EINVAL);
        assert_eq!(CptTable::from_pattern(&topo, "0[3-1]").unwrap_err().errno(), Errno::ERANGE);
    }

    /// Writes ids as compact ranges with random spacing, as a person might.
    fn render(ids: &[usize], spaced: bool) -> String {
        let mut out = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let mut j = i;
            while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
                j += 1;
            }
            out.push(if i == j { ids[i].to_string() } else { format!("{}-{}", ids[i], ids[j]) });
            i = j + 1;
        }
        out.join(if spaced { " , " } else { "," })
    }

    proptest! {
        #[test]
        fn rendered_assignments_parse_back(
            assign in prop::collection::vec(0usize..5, 1..40),
            spaced: bool,
            reverse: bool,
        ) {
            // cpu i goes to partition assign[i]; partitions renumbered densely.
            let topo = TopologyDesc::uniform(1, 1, assign.len(), 1, 0).unwrap();
            let mut used: Vec<usize> = assign.clone();
            used.sort_unstable();
            used.dedup();
            let groups: Vec<Vec<usize>> = used
                .iter()
                .map(|p| (0..assign.len()).filter(|&c| assign[c] == *p).collect())
                .collect();
            let mut parts: Vec<String> =
                groups.iter().enumerate().map(|(id, g)| format!("{id}[{}]", render(g, spaced))).collect();
            if reverse {
                parts.reverse();
            }
            let cpts = parse(&topo, &parts.join(if spaced { "   " } else { " " })).unwrap();
            prop_assert_eq!(cpus_of(&cpts), groups);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[Nn0-9\\[\\]\\-/, x]{0,24}") {
            let topo = TopologyDesc::uniform(1, 2, 4, 1, 0).unwrap();
            if let Ok(cpts) = parse(&topo, &text) {
                prop_assert!(!cpts.is_empty());
                prop_assert!(cpts.iter().all(|c| !c.cpus().is_empty()));
            }
        }
    }
}
