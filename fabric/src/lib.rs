//! The fabric moves bytes between glint nodes, in the manner of LNet:
//! NIDs name nodes, LNDs (tcp, o2ib) carry small immediate messages and
//! server-driven bulk between registered buffers, credits bound what is in
//! flight, and an RPC layer on top matches requests to replies, resends
//! after reconnect and runs each request once. CPTs keep service threads
//! and their buffers on one NUMA node.

pub mod errno;
pub mod nid;

pub use errno::Errno;
pub use nid::{Net, NetType, Nid, NidError, Pid, ProcessId};
