//! Registered memory: page-aligned, locked regions on one NUMA node, the
//! fixed-size buffer pools carved from them, and the bulk handles through
//! which a peer may read or write one range of one region.
//!
//! A peer never names raw memory: it names an *exposure* by key, and every
//! byte it asks for is checked against the exposed range and direction, the
//! way an RDMA NIC checks an rkey.

mod exposure;
mod pool;
mod region;

pub use exposure::{Access, BulkHandle, Exposure, HANDLE_LEN, HandleError, MemoryRegistry, RemoteKeys};
pub use pool::{BufferPool, PoolBuf};
pub use region::{IoBuf, Region};

/// Why a bulk access was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error("bulk handle key {key:#x} is not exposed")]
    UnknownKey { key: u64 },
    #[error("bulk access {addr:#x}+{len} is outside handle {h_addr:#x}+{h_len}")]
    OutOfRange { addr: u64, len: u64, h_addr: u64, h_len: u64 },
    #[error("bulk handle key {key:#x} does not allow {wanted:?}")]
    WrongAccess { key: u64, wanted: Access },
    #[error("local buffer of {local} bytes does not match bulk length {remote}")]
    LengthMismatch { local: usize, remote: u64 },
}

impl BulkError {
    pub fn errno(&self) -> crate::Errno {
        match self {
            BulkError::UnknownKey { .. } | BulkError::WrongAccess { .. } => crate::Errno::EACCES,
            BulkError::OutOfRange { .. } => crate::Errno::EFAULT,
            BulkError::LengthMismatch { .. } => crate::Errno::EINVAL,
        }
    }
}
