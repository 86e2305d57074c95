//! CPU partitions (CPTs), as Lustre's libcfs has them: the machine's cores
//! are cut into partitions, normally one per NUMA node, and every service
//! thread, queue and buffer pool belongs to one partition, so a request is
//! handled by cores next to the memory it touches.
//!
//! - [`TopologyDesc`] describes packages, NUMA nodes, cores and memory,
//!   read from the machine (hwloc) or written out for tests.
//! - [`CptTable`] cuts a topology into partitions: one per NUMA node, a
//!   given count (`cpu_npartitions`), or an explicit `cpu_pattern`.
//! - [`CptPool`] runs pinned service threads per partition that take work
//!   from a bounded queue per partition.
//! - [`device_numa_node`] and [`CptTable::cpt_for_device`] find the
//!   partition nearest a NIC.

mod affinity;
mod error;
mod nic;
mod partition;
mod pattern;
pub(crate) mod pool;
mod table;
mod topology;

pub use affinity::{current_thread_affinity, pin_current_thread};
pub use error::{CptError, PatternError};
pub use nic::{device_numa_node, device_numa_node_in, interface_of_addr};
pub use pool::{CptPool, CptPoolConfig, ServiceThread, ShutdownReport, SubmitError, ThreadsPerCpt};
pub use table::{Cpt, CptConfig, CptTable};
pub use topology::{NumaNodeDesc, TopologyDesc};

pub(crate) use topology::system_hwloc;
