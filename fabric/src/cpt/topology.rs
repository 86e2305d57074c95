//! A description of the machine's processors and memory, in the only terms
//! partitioning needs: NUMA nodes, the package each sits in, the cores of
//! each node (a core being its SMT sibling cpus) and each node's memory. It
//! is read from the running machine through hwloc, or written out by hand
//! so that partitioning can be tested for machines we do not have.

use super::CptError;
use hwlocality::Topology;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::ObjectType;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// One NUMA node: its memory and the cpus (OS ids, as in
/// `/sys/devices/system/cpu/cpuN`) next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNodeDesc {
    /// OS index of the node (`/sys/devices/system/node/nodeN`).
    pub id: usize,
    /// OS index of the package (socket) the node's cpus sit in; `None` for
    /// a node without cpus (memory-only, e.g. CXL or HBM).
    pub package: Option<usize>,
    /// Physical cores, each the list of its hardware threads (SMT siblings).
    pub cores: Vec<Vec<usize>>,
    /// Local memory in bytes (0 when unknown).
    pub memory_bytes: u64,
}

impl NumaNodeDesc {
    /// Every cpu of the node, core by core.
    pub fn cpus(&self) -> impl Iterator<Item = usize> + '_ {
        self.cores.iter().flatten().copied()
    }

    pub fn cpu_count(&self) -> usize {
        self.cores.iter().map(Vec::len).sum()
    }
}

/// The NUMA nodes of a machine, sorted by id. Every cpu belongs to exactly
/// one core of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDesc {
    nodes: Vec<NumaNodeDesc>,
    /// cpu id -> (index into `nodes`, index of its core in that node).
    cpu_index: BTreeMap<usize, (usize, usize)>,
}

impl TopologyDesc {
    /// Checks and indexes a hand-written (or detected) description.
    pub fn new(mut nodes: Vec<NumaNodeDesc>) -> Result<TopologyDesc, CptError> {
        nodes.sort_by_key(|n| n.id);
        if nodes.is_empty() {
            return Err(CptError::Topology("no NUMA nodes".into()));
        }
        let mut cpu_index = BTreeMap::new();
        for (ni, node) in nodes.iter().enumerate() {
            if ni > 0 && nodes[ni - 1].id == node.id {
                return Err(CptError::Topology(format!("NUMA node {} is listed twice", node.id)));
            }
            for (ci, core) in node.cores.iter().enumerate() {
                if core.is_empty() {
                    return Err(CptError::Topology(format!("NUMA node {} has a core without cpus", node.id)));
                }
                for &cpu in core {
                    if let Some((other, _)) = cpu_index.insert(cpu, (ni, ci)) {
                        return Err(CptError::Topology(format!(
                            "cpu {cpu} is listed twice (NUMA nodes {} and {})",
                            nodes[other].id, node.id
                        )));
                    }
                }
            }
        }
        if cpu_index.is_empty() {
            return Err(CptError::Topology("no cpus".into()));
        }
        Ok(TopologyDesc { nodes, cpu_index })
    }

    /// A regular machine: `packages` sockets of `nodes_per_package` NUMA
    /// nodes of `cores_per_node` cores of `threads_per_core` hardware
    /// threads. Cpus are numbered as Linux numbers them on x86: the first
    /// thread of every core first (0..cores), then the second thread of
    /// every core, so cpu `c` and `c + total_cores` are siblings.
    pub fn uniform(
        packages: usize,
        nodes_per_package: usize,
        cores_per_node: usize,
        threads_per_core: usize,
        memory_per_node: u64,
    ) -> Result<TopologyDesc, CptError> {
        if packages == 0 || nodes_per_package == 0 || cores_per_node == 0 || threads_per_core == 0 {
            return Err(CptError::Topology("every count of a uniform topology must be at least 1".into()));
        }
        let total_cores = packages
            .checked_mul(nodes_per_package)
            .and_then(|n| n.checked_mul(cores_per_node))
            .filter(|&c| c.checked_mul(threads_per_core).is_some_and(|t| t <= 1 << 20))
            .ok_or_else(|| CptError::Topology("more than 2^20 cpus".into()))?;
        let mut nodes = Vec::new();
        for p in 0..packages {
            for n in 0..nodes_per_package {
                let id = p * nodes_per_package + n;
                let cores = (0..cores_per_node)
                    .map(|c| {
                        let core = id * cores_per_node + c;
                        (0..threads_per_core).map(|t| core + t * total_cores).collect()
                    })
                    .collect();
                nodes.push(NumaNodeDesc { id, package: Some(p), cores, memory_bytes: memory_per_node });
            }
        }
        TopologyDesc::new(nodes)
    }

    /// This machine, as hwloc sees it (only the cpus this process may use).
    pub fn detect() -> Result<TopologyDesc, CptError> {
        let topo = system_hwloc().ok_or_else(|| CptError::Detect("hwloc failed to load".into()))?;
        let mut nodes = Vec::new();
        for node in topo.objects_with_type(ObjectType::NUMANode) {
            let id = node.os_index().ok_or_else(|| CptError::Detect("a NUMA node has no OS index".into()))?;
            let memory_bytes = match node.attributes() {
                Some(ObjectAttributes::NUMANode(a)) => a.local_memory().map_or(0, |m| m.get()),
                _ => 0,
            };
            let mut package = None;
            // Cores keyed by hwloc's logical core index; a PU without a
            // Core parent (some VMs) is a core of its own.
            let mut cores: BTreeMap<(bool, usize), Vec<usize>> = BTreeMap::new();
            if let Some(cpuset) = node.cpuset() {
                for pu in topo.pus_from_cpuset(cpuset) {
                    let Some(cpu) = pu.os_index() else { continue };
                    if package.is_none() {
                        package = pu.first_ancestor_with_type(ObjectType::Package).and_then(|p| p.os_index());
                    }
                    let key = match pu.first_ancestor_with_type(ObjectType::Core) {
                        Some(core) => (true, core.logical_index()),
                        None => (false, cpu),
                    };
                    cores.entry(key).or_default().push(cpu);
                }
            }
            let mut cores: Vec<Vec<usize>> = cores.into_values().collect();
            for core in &mut cores {
                core.sort_unstable();
            }
            cores.sort_by_key(|c| c[0]);
            if !cores.is_empty() && package.is_none() {
                // No Package object at all: treat the machine as one socket.
                package = Some(0);
            }
            nodes.push(NumaNodeDesc { id, package, cores, memory_bytes });
        }
        TopologyDesc::new(nodes)
    }

    pub fn nodes(&self) -> &[NumaNodeDesc] {
        &self.nodes
    }

    pub fn node(&self, id: usize) -> Option<&NumaNodeDesc> {
        self.nodes.binary_search_by_key(&id, |n| n.id).ok().map(|i| &self.nodes[i])
    }

    /// Package ids, ascending.
    pub fn packages(&self) -> Vec<usize> {
        self.nodes.iter().filter_map(|n| n.package).collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// Every cpu, ascending.
    pub fn cpus(&self) -> impl Iterator<Item = usize> + '_ {
        self.cpu_index.keys().copied()
    }

    pub fn cpu_count(&self) -> usize {
        self.cpu_index.len()
    }

    pub fn has_cpu(&self, cpu: usize) -> bool {
        self.cpu_index.contains_key(&cpu)
    }

    /// The NUMA node a cpu belongs to.
    pub fn node_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.cpu_index.get(&cpu).map(|&(ni, _)| self.nodes[ni].id)
    }

    /// The physical core a cpu belongs to, as (NUMA node id, core index in
    /// that node): two cpus with the same answer are SMT siblings.
    pub fn core_of_cpu(&self, cpu: usize) -> Option<(usize, usize)> {
        self.cpu_index.get(&cpu).map(|&(ni, ci)| (self.nodes[ni].id, ci))
    }

    /// Nodes that have cpus, the ones service threads can run on.
    pub(crate) fn cpu_nodes(&self) -> impl Iterator<Item = &NumaNodeDesc> {
        self.nodes.iter().filter(|n| !n.cores.is_empty())
    }
}

/// hwloc's view of this machine, loaded once: loading walks sysfs and takes
/// milliseconds, and both topology detection and memory binding need it.
pub(crate) fn system_hwloc() -> Option<&'static Topology> {
    static TOPOLOGY: OnceLock<Option<Topology>> = OnceLock::new();
    TOPOLOGY
        .get_or_init(|| match Topology::new() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "hwloc cannot load the machine topology");
                None
            }
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_numbers_smt_siblings_like_linux() {
        let t = TopologyDesc::uniform(2, 4, 16, 2, 1 << 30).unwrap();
        assert_eq!(t.nodes().len(), 8);
        assert_eq!(t.cpu_count(), 256);
        assert_eq!(t.packages(), vec![0, 1]);
        // 128 cores: cpu 5 and cpu 133 are the two threads of core 5.
        assert_eq!(t.core_of_cpu(5), t.core_of_cpu(133));
        assert_ne!(t.core_of_cpu(5), t.core_of_cpu(6));
        assert_eq!(t.node_of_cpu(133), Some(0));
        assert_eq!(t.node_of_cpu(16), Some(1));
        assert_eq!(t.node(7).unwrap().package, Some(1));
        assert_eq!(t.node(3).unwrap().cores[0], vec![48, 176]);
    }

    #[test]
    fn refuses_inconsistent_descriptions() {
        let node = |id, cores: Vec<Vec<usize>>| NumaNodeDesc { id, package: Some(0), cores, memory_bytes: 0 };
        assert!(TopologyDesc::new(vec![]).is_err());
        assert!(TopologyDesc::new(vec![node(0, vec![])]).is_err(), "no cpus at all");
        assert!(TopologyDesc::new(vec![node(0, vec![vec![0]]), node(0, vec![vec![1]])]).is_err());
        assert!(TopologyDesc::new(vec![node(0, vec![vec![0]]), node(1, vec![vec![0]])]).is_err());
        assert!(TopologyDesc::new(vec![node(0, vec![vec![]])]).is_err());
        assert!(TopologyDesc::uniform(0, 1, 1, 1, 0).is_err());
        assert!(TopologyDesc::uniform(1 << 20, 1 << 20, 1 << 20, 1, 0).is_err());
        let memory_only = NumaNodeDesc { id: 1, package: None, cores: vec![], memory_bytes: 1 << 30 };
        let t = TopologyDesc::new(vec![memory_only, node(0, vec![vec![0, 1]])]).unwrap();
        assert_eq!(t.nodes()[0].id, 0, "sorted by id");
        assert_eq!(t.cpu_nodes().count(), 1);
    }

    #[test]
    fn detects_this_machine() {
        let t = TopologyDesc::detect().unwrap();
        // Every cpu the kernel lets this thread run on is one hwloc knows.
        let allowed = super::super::current_thread_affinity().unwrap();
        assert!(!allowed.is_empty());
        for cpu in allowed {
            assert!(t.has_cpu(cpu), "cpu {cpu} missing from {t:?}");
        }
        assert!(t.nodes().iter().any(|n| n.memory_bytes > 0));
        for node in t.cpu_nodes() {
            assert!(node.package.is_some());
        }
    }
}
