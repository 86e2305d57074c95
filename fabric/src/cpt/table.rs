//! The partition table: which cpus and NUMA nodes make up each CPT, built
//! from a topology the way Lustre's `cpu_pattern` / `cpu_npartitions`
//! module options build it.

use super::{CptError, TopologyDesc, partition, pattern};
use std::collections::{BTreeMap, BTreeSet};

/// How to cut the machine into partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CptConfig {
    /// One partition per NUMA node that has cpus (Lustre's default,
    /// `cpu_pattern="N"`).
    #[default]
    PerNumaNode,
    /// This many partitions (`cpu_npartitions=N`): a node's cores are split
    /// evenly when there are at least as many partitions as nodes (a
    /// partition then never spans two nodes); otherwise whole nodes are
    /// grouped.
    Count(usize),
    /// An explicit `cpu_pattern`: `0[0-3] 1[4-7]` by cpu, `N 0[0] 1[1]` by
    /// NUMA node, `N` for one partition per node.
    Pattern(String),
}

/// One CPU partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpt {
    id: usize,
    cpus: Vec<usize>,
    numa_nodes: Vec<usize>,
    home_node: usize,
    core_count: usize,
}

impl Cpt {
    /// Builds partition `id` from its cpus (all present in `topo`) and any
    /// memory-only nodes it was given explicitly.
    pub(crate) fn new(id: usize, mut cpus: Vec<usize>, extra_nodes: &[usize], topo: &TopologyDesc) -> Cpt {
        cpus.sort_unstable();
        cpus.dedup();
        let mut per_node: BTreeMap<usize, usize> = BTreeMap::new();
        let mut cores = BTreeSet::new();
        for &cpu in &cpus {
            if let Some(node) = topo.node_of_cpu(cpu) {
                *per_node.entry(node).or_default() += 1;
            }
            if let Some(core) = topo.core_of_cpu(cpu) {
                cores.insert(core);
            }
        }
        // The node holding most of the partition's cpus; the lowest id wins a tie.
        let home_node = per_node.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map_or(0, |(&n, _)| n);
        let mut numa_nodes: Vec<usize> = per_node.into_keys().chain(extra_nodes.iter().copied()).collect();
        numa_nodes.sort_unstable();
        numa_nodes.dedup();
        Cpt { id, cpus, numa_nodes, home_node, core_count: cores.len() }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    /// The partition's cpus (OS ids), ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// Every NUMA node the partition touches, ascending.
    pub fn numa_nodes(&self) -> &[usize] {
        &self.numa_nodes
    }

    /// The NUMA node to allocate the partition's memory on: the node that
    /// holds most of its cpus.
    pub fn home_node(&self) -> usize {
        self.home_node
    }

    /// Physical cores in the partition (SMT siblings count once).
    pub fn core_count(&self) -> usize {
        self.core_count
    }
}

/// The partitions of one machine, numbered from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CptTable {
    cpts: Vec<Cpt>,
}

impl CptTable {
    pub fn new(topo: &TopologyDesc, config: &CptConfig) -> Result<CptTable, CptError> {
        match config {
            CptConfig::PerNumaNode => Ok(CptTable::per_numa_node(topo)),
            CptConfig::Count(n) => CptTable::with_count(topo, *n),
            CptConfig::Pattern(p) => CptTable::from_pattern(topo, p),
        }
    }

    /// This machine, partitioned as configured.
    pub fn detect(config: &CptConfig) -> Result<CptTable, CptError> {
        CptTable::new(&TopologyDesc::detect()?, config)
    }

    /// One partition per NUMA node with cpus, in node order.
    pub fn per_numa_node(topo: &TopologyDesc) -> CptTable {
        let cpts = topo
            .cpu_nodes()
            .enumerate()
            .map(|(id, node)| Cpt::new(id, node.cpus().collect(), &[], topo))
            .collect();
        CptTable { cpts }
    }

    /// `count` partitions (see [`CptConfig::Count`]).
    pub fn with_count(topo: &TopologyDesc, count: usize) -> Result<CptTable, CptError> {
        let groups = partition::split(topo, count)?;
        let cpts = groups.into_iter().enumerate().map(|(id, cpus)| Cpt::new(id, cpus, &[], topo)).collect();
        Ok(CptTable { cpts })
    }

    /// Partitions from a Lustre `cpu_pattern` string.
    pub fn from_pattern(topo: &TopologyDesc, text: &str) -> Result<CptTable, CptError> {
        let cpts = pattern::parse(topo, text)
            .map_err(|error| CptError::Pattern { pattern: text.to_string(), error })?;
        Ok(CptTable { cpts })
    }

    /// One partition holding every cpu: for tools and tests that want no
    /// partitioning at all.
    pub fn single(topo: &TopologyDesc) -> CptTable {
        CptTable { cpts: vec![Cpt::new(0, topo.cpus().collect(), &[], topo)] }
    }

    pub fn len(&self) -> usize {
        self.cpts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cpts.is_empty()
    }

    pub fn cpts(&self) -> &[Cpt] {
        &self.cpts
    }

    pub fn cpt(&self, id: usize) -> Option<&Cpt> {
        self.cpts.get(id)
    }

    /// The partition a cpu belongs to (a pattern need not cover every cpu).
    pub fn cpt_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.cpts.iter().find(|c| c.cpus.binary_search(&cpu).is_ok()).map(|c| c.id)
    }

    /// The first partition whose home is `node`, else the first that
    /// touches it.
    pub fn cpt_of_numa_node(&self, node: usize) -> Option<usize> {
        self.cpts
            .iter()
            .find(|c| c.home_node == node)
            .or_else(|| self.cpts.iter().find(|c| c.numa_nodes.contains(&node)))
            .map(|c| c.id)
    }

    /// The partition nearest a network or RDMA device (`eth0`, `ib0`,
    /// `mlx5_0`): the one on the device's NUMA node when the kernel knows
    /// it, else partition 0.
    pub fn cpt_for_device(&self, dev: &str) -> usize {
        self.cpt_for_device_in(std::path::Path::new("/sys"), dev)
    }

    /// As [`CptTable::cpt_for_device`], reading another sysfs root.
    pub fn cpt_for_device_in(&self, sysfs: &std::path::Path, dev: &str) -> usize {
        super::device_numa_node_in(sysfs, dev).and_then(|n| self.cpt_of_numa_node(n)).unwrap_or(0)
    }

    /// The partition nearest the interface that holds a local address.
    pub fn cpt_for_addr(&self, addr: std::net::IpAddr) -> usize {
        super::interface_of_addr(addr).map_or(0, |dev| self.cpt_for_device(&dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpt::NumaNodeDesc;

    fn sizes(t: &CptTable) -> Vec<usize> {
        t.cpts().iter().map(|c| c.cpus().len()).collect()
    }

    fn nodes(t: &CptTable) -> Vec<Vec<usize>> {
        t.cpts().iter().map(|c| c.numa_nodes().to_vec()).collect()
    }

    #[test]
    fn default_is_one_partition_per_numa_node() {
        let topo = TopologyDesc::uniform(2, 2, 8, 1, 1 << 30).unwrap();
        let t = CptTable::new(&topo, &CptConfig::default()).unwrap();
        assert_eq!(t.len(), 4);
        for (i, cpt) in t.cpts().iter().enumerate() {
            assert_eq!(cpt.id(), i);
            assert_eq!(cpt.numa_nodes(), &[i]);
            assert_eq!(cpt.home_node(), i);
            assert_eq!(cpt.cpus(), (i * 8..i * 8 + 8).collect::<Vec<_>>());
            assert_eq!(cpt.core_count(), 8);
        }
        assert_eq!(t.cpt_of_cpu(17), Some(2));
        assert_eq!(t.cpt_of_cpu(99), None);
        assert_eq!(t.cpt_of_numa_node(3), Some(3));
    }

    #[test]
    fn two_packages_of_two_nodes() {
        let topo = TopologyDesc::uniform(2, 2, 8, 1, 1 << 30).unwrap();
        // Fewer partitions than nodes: whole nodes grouped, one package each.
        let t = CptTable::with_count(&topo, 2).unwrap();
        assert_eq!(nodes(&t), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(sizes(&t), vec![16, 16]);
        let t = CptTable::with_count(&topo, 1).unwrap();
        assert_eq!(nodes(&t), vec![vec![0, 1, 2, 3]]);
        // More partitions than nodes: each node split, never shared.
        let t = CptTable::with_count(&topo, 8).unwrap();
        assert_eq!(sizes(&t), vec![4; 8]);
        assert!(t.cpts().iter().all(|c| c.numa_nodes().len() == 1));
        assert_eq!(t.cpt(5).unwrap().cpus(), &[20, 21, 22, 23]);
        // Three groups of four nodes: one package stays whole.
        let t = CptTable::with_count(&topo, 3).unwrap();
        assert_eq!(nodes(&t), vec![vec![0, 1], vec![2], vec![3]]);
    }

    #[test]
    fn hb120_four_nodes_of_thirty_cores() {
        let topo = TopologyDesc::uniform(2, 2, 30, 1, 112 << 30).unwrap();
        assert_eq!(topo.cpu_count(), 120);
        let t = CptTable::per_numa_node(&topo);
        assert_eq!(sizes(&t), vec![30; 4]);
        let t = CptTable::with_count(&topo, 8).unwrap();
        assert_eq!(sizes(&t), vec![15; 8]);
        assert_eq!(nodes(&t), (0..4).flat_map(|n| [vec![n], vec![n]]).collect::<Vec<_>>());
        // 7 does not divide evenly: some nodes get two partitions, none is shared.
        let t = CptTable::with_count(&topo, 7).unwrap();
        assert_eq!(sizes(&t), vec![15, 15, 15, 15, 15, 15, 30]);
        assert!(t.cpts().iter().all(|c| c.numa_nodes().len() == 1));
        let t = CptTable::with_count(&topo, 120).unwrap();
        assert_eq!(sizes(&t), vec![1; 120]);
        assert!(matches!(CptTable::with_count(&topo, 121), Err(CptError::Count { requested: 121, .. })));
        assert!(CptTable::with_count(&topo, 0).is_err());
    }

    #[test]
    fn smt_siblings_stay_together_while_cores_suffice() {
        // 8 nodes x 16 cores x 2 threads: cpu c and c + 128 are siblings.
        let topo = TopologyDesc::uniform(2, 4, 16, 2, 1 << 30).unwrap();
        let t = CptTable::per_numa_node(&topo);
        assert_eq!(sizes(&t), vec![32; 8]);
        assert_eq!(t.cpt(0).unwrap().core_count(), 16);
        let t = CptTable::with_count(&topo, 32).unwrap();
        assert_eq!(sizes(&t), vec![8; 32]);
        for cpt in t.cpts() {
            assert_eq!(cpt.core_count(), 4, "{cpt:?}");
            for &cpu in cpt.cpus() {
                let sibling = if cpu < 128 { cpu + 128 } else { cpu - 128 };
                assert!(cpt.cpus().contains(&sibling), "{cpu} split from {sibling}");
            }
        }
        // More partitions than cores: siblings must part.
        let t = CptTable::with_count(&topo, 256).unwrap();
        assert_eq!(sizes(&t), vec![1; 256]);
        let t = CptTable::with_count(&topo, 4).unwrap();
        assert_eq!(nodes(&t), vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]]);
    }

    #[test]
    fn uneven_nodes() {
        let node = |id, package, cpus: std::ops::Range<usize>| NumaNodeDesc {
            id,
            package: Some(package),
            cores: cpus.map(|c| vec![c]).collect(),
            memory_bytes: 1 << 30,
        };
        let hbm = NumaNodeDesc { id: 3, package: None, cores: vec![], memory_bytes: 16 << 30 };
        let topo =
            TopologyDesc::new(vec![node(0, 0, 0..12), node(1, 0, 12..16), node(2, 1, 16..24), hbm]).unwrap();
        let t = CptTable::per_numa_node(&topo);
        assert_eq!(sizes(&t), vec![12, 4, 8], "the memory-only node gets no partition");
        // Six partitions: the big node takes three, the others share the rest.
        let t = CptTable::with_count(&topo, 6).unwrap();
        assert_eq!(nodes(&t), vec![vec![0], vec![0], vec![0], vec![1], vec![2], vec![2]]);
        assert_eq!(sizes(&t), vec![4, 4, 4, 4, 4, 4]);
        // Two partitions from three nodes: the balanced grouping.
        let t = CptTable::with_count(&topo, 2).unwrap();
        assert_eq!(nodes(&t), vec![vec![0], vec![1, 2]]);
        assert_eq!(sizes(&t), vec![12, 12]);
        assert_eq!(t.cpt_of_numa_node(2), Some(1));
        assert_eq!(t.cpt(1).unwrap().home_node(), 2);
    }

    #[test]
    fn one_node_machine() {
        let topo = TopologyDesc::uniform(1, 1, 2, 1, 8 << 30).unwrap();
        let t = CptTable::new(&topo, &CptConfig::PerNumaNode).unwrap();
        assert_eq!(sizes(&t), vec![2]);
        let t = CptTable::new(&topo, &CptConfig::Count(2)).unwrap();
        assert_eq!(t.cpts().iter().map(|c| c.cpus().to_vec()).collect::<Vec<_>>(), vec![vec![0], vec![1]]);
        assert_eq!(t.cpt_of_numa_node(0), Some(0));
        let t = CptTable::new(&topo, &CptConfig::Pattern("N".into())).unwrap();
        assert_eq!(sizes(&t), vec![2]);
        assert_eq!(CptTable::single(&topo).cpt(0).unwrap().cpus(), &[0, 1]);
    }

    #[test]
    fn detected_machine_partitions_cover_every_cpu() {
        let topo = TopologyDesc::detect().unwrap();
        let t = CptTable::per_numa_node(&topo);
        let mut all: Vec<usize> = t.cpts().iter().flat_map(|c| c.cpus().iter().copied()).collect();
        all.sort_unstable();
        assert_eq!(all, topo.cpus().collect::<Vec<_>>());
    }

    #[test]
    fn unknown_device_is_nearest_partition_zero() {
        let topo = TopologyDesc::uniform(1, 2, 2, 1, 0).unwrap();
        let t = CptTable::per_numa_node(&topo);
        assert_eq!(t.cpt_for_device("no-such-device0"), 0);
        assert_eq!(t.cpt_for_device("../../../etc"), 0);
        assert_eq!(t.cpt_for_addr("127.0.0.1".parse().unwrap()), 0);
    }
}
