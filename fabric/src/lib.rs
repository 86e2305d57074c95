//! The fabric moves bytes between glint nodes, in the manner of LNet:
//! NIDs name nodes, LNDs (tcp, o2ib) carry small immediate messages and
//! server-driven bulk between registered buffers, credits bound what is in
//! flight, and an RPC layer on top matches requests to replies, resends
//! after reconnect and runs each request once. CPTs keep service threads
//! and their buffers on one NUMA node.

pub mod cpt;
pub mod errno;
pub mod lnd;
pub mod memory;
pub mod metrics;
pub mod nid;
pub mod numa;
pub mod o2ib;
pub mod rpc;
pub mod tcp;

pub use cpt::{
    Cpt, CptConfig, CptError, CptPool, CptPoolConfig, CptTable, ServiceThread, SubmitError, TopologyDesc,
};
pub use errno::Errno;
pub use lnd::{BulkBuf, Deliver, Lnd, LndError, RecvBuf};
pub use memory::{Access, BufferPool, BulkHandle, Exposure, IoBuf, MemoryRegistry, PoolBuf, Region};
pub use nid::{Net, NetType, Nid, NidError, Pid, ProcessId};
pub use numa::{NumaError, NumaMem, alloc_region};
pub use rpc::{Endpoint, EndpointConfig, RpcError, Service};
