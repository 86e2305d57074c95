//! Cutting a machine into a given number of partitions
//! (`cpu_npartitions`). Lustre fills partitions cpu by cpu and lets one
//! straddle two nodes when the counts do not divide; we keep every
//! partition NUMA-local instead, because a straddling partition gives its
//! threads remote memory half the time:
//!
//! - at least as many partitions as nodes: each node gets a share of the
//!   partitions by its cpu count (at least one), and its cores are split
//!   evenly among them, SMT siblings kept together while there are enough
//!   cores;
//! - fewer partitions than nodes: whole nodes are grouped, consecutive
//!   nodes together, the largest group as small as possible and, among
//!   equals, as few groups as possible spanning two packages.

use super::{CptError, NumaNodeDesc, TopologyDesc};

/// The cpus of each of `count` partitions, in partition order.
pub(crate) fn split(topo: &TopologyDesc, count: usize) -> Result<Vec<Vec<usize>>, CptError> {
    let nodes: Vec<&NumaNodeDesc> = topo.cpu_nodes().collect();
    let cpus = topo.cpu_count();
    let refuse = |reason: String| Err(CptError::Count { requested: count, reason });
    if count == 0 {
        return refuse("at least one partition is needed".into());
    }
    if count > cpus {
        return refuse(format!("the machine has only {cpus} cpus"));
    }
    if count >= nodes.len() { Ok(split_nodes(&nodes, count)) } else { Ok(group_nodes(&nodes, count)) }
}

fn split_nodes(nodes: &[&NumaNodeDesc], count: usize) -> Vec<Vec<usize>> {
    // Hand out partitions one at a time to the node whose partitions are
    // currently the largest: this keeps the largest partition as small as
    // it can be.
    let mut shares = vec![1usize; nodes.len()];
    for _ in nodes.len()..count {
        let next = (0..nodes.len())
            .filter(|&i| shares[i] < nodes[i].cpu_count())
            .max_by(|&a, &b| {
                let size = |i: usize| nodes[i].cpu_count().div_ceil(shares[i]);
                size(a).cmp(&size(b)).then(b.cmp(&a))
            })
            .expect("count <= cpus leaves a node with room");
        shares[next] += 1;
    }
    nodes.iter().zip(shares).flat_map(|(node, share)| split_node(node, share)).collect()
}

/// Splits one node into `share` partitions of nearly equal size, whole
/// cores at a time when it has at least `share` cores.
fn split_node(node: &NumaNodeDesc, share: usize) -> Vec<Vec<usize>> {
    let units: Vec<Vec<usize>> =
        if share <= node.cores.len() { node.cores.clone() } else { node.cpus().map(|c| vec![c]).collect() };
    let (base, extra) = (units.len() / share, units.len() % share);
    let mut units = units.into_iter();
    (0..share).map(|i| units.by_ref().take(base + usize::from(i < extra)).flatten().collect()).collect()
}

fn group_nodes(nodes: &[&NumaNodeDesc], count: usize) -> Vec<Vec<usize>> {
    // best[g][i]: the best way to put the first i nodes into g groups, as
    // (largest group's cpus, groups spanning packages, start of last group).
    let n = nodes.len();
    let weight = |from: usize, to: usize| nodes[from..to].iter().map(|d| d.cpu_count()).sum::<usize>();
    let spans = |from: usize, to: usize| {
        usize::from(nodes[from..to].iter().any(|d| d.package != nodes[from].package))
    };
    let mut best = vec![vec![None::<(usize, usize, usize)>; n + 1]; count + 1];
    best[0][0] = Some((0, 0, 0));
    for g in 1..=count {
        for i in g..=n {
            // Last group is nodes j..i; trying the smallest last group first
            // keeps earlier groups large on ties.
            for j in (g - 1..i).rev() {
                let Some((largest, spanning, _)) = best[g - 1][j] else { continue };
                let cand = (largest.max(weight(j, i)), spanning + spans(j, i), j);
                if best[g][i].is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                    best[g][i] = Some(cand);
                }
            }
        }
    }
    let mut bounds = vec![n];
    let mut i = n;
    for g in (1..=count).rev() {
        i = best[g][i].expect("count < nodes leaves every group a node").2;
        bounds.push(i);
    }
    bounds.reverse();
    bounds.windows(2).map(|w| nodes[w[0]..w[1]].iter().flat_map(|d| d.cpus()).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topology() -> impl Strategy<Value = TopologyDesc> {
        // Up to 6 nodes, each 0..6 cores of 1..=2 threads, some memory-only.
        prop::collection::vec((0usize..6, 1usize..=2, 0usize..3), 1..7)
            .prop_filter("some cpus", |nodes| nodes.iter().any(|n| n.0 > 0))
            .prop_map(|spec| {
                let mut next = 0;
                let nodes = spec
                    .into_iter()
                    .enumerate()
                    .map(|(id, (cores, threads, package))| {
                        let cores = (0..cores)
                            .map(|_| {
                                next += threads;
                                (next - threads..next).collect()
                            })
                            .collect::<Vec<Vec<usize>>>();
                        let package = (!cores.is_empty()).then_some(package);
                        NumaNodeDesc { id, package, cores, memory_bytes: 0 }
                    })
                    .collect();
                TopologyDesc::new(nodes).unwrap()
            })
    }

    proptest! {
        #[test]
        fn every_count_partitions_every_cpu_once(topo in topology(), pick in 0usize..1000) {
            let count = 1 + pick % topo.cpu_count();
            let groups = split(&topo, count).unwrap();
            prop_assert_eq!(groups.len(), count);
            let mut all: Vec<usize> = groups.iter().flatten().copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, topo.cpus().collect::<Vec<_>>());
            let cpu_nodes = topo.cpu_nodes().count();
            for g in &groups {
                prop_assert!(!g.is_empty());
                let mut nodes: Vec<usize> = g.iter().map(|&c| topo.node_of_cpu(c).unwrap()).collect();
                nodes.sort_unstable();
                nodes.dedup();
                if count >= cpu_nodes {
                    prop_assert_eq!(nodes.len(), 1, "a partition spans nodes: {:?}", g);
                } else {
                    for node in nodes {
                        let whole = topo.node(node).unwrap().cpu_count();
                        let here = g.iter().filter(|&&c| topo.node_of_cpu(c) == Some(node)).count();
                        prop_assert_eq!(here, whole, "node {} is split", node);
                    }
                }
            }
            // Within a node, partitions differ by at most one core.
            if count >= cpu_nodes {
                for node in topo.cpu_nodes() {
                    let sizes: Vec<usize> = groups
                        .iter()
                        .filter(|g| topo.node_of_cpu(g[0]) == Some(node.id))
                        .map(Vec::len)
                        .collect();
                    let widest = node.cores.iter().map(Vec::len).max().unwrap();
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    prop_assert!(hi - lo <= widest, "node {} sizes {:?}", node.id, sizes);
                }
            }
        }
    }

    #[test]
    fn refuses_impossible_counts() {
        let topo = TopologyDesc::uniform(1, 2, 2, 1, 0).unwrap();
        assert!(matches!(split(&topo, 0), Err(CptError::Count { requested: 0, .. })));
        let err = split(&topo, 5).unwrap_err();
        assert_eq!(err.to_string(), "cannot make 5 CPU partitions: the machine has only 4 cpus");
        assert_eq!(err.errno(), crate::Errno::EINVAL);
    }
}
