//! The contract every LND (network driver) meets, so the RPC layer runs
//! the same over sockets and verbs.
//!
//! An LND carries two things: *immediate* messages, small and copied into
//! the receiver's posted buffers under credit flow control; and *bulk*,
//! which a server moves between its own registered buffer and a range a
//! peer exposed (RDMA READ/WRITE on verbs, the bulk connections on tcp).

use crate::memory::{BulkError, BulkHandle, IoBuf, PoolBuf};
use crate::{Errno, Net, Nid, ProcessId};
use std::future::Future;

/// The largest immediate message, header included. Bigger payloads move
/// by bulk.
pub const MAX_IMMEDIATE: usize = 64 * 1024;
/// The largest single bulk transfer (one descriptor), as LNet's 1 MiB
/// LNET_MTU times the 16 MiB RPC ceiling glint allows.
pub const MAX_BULK: usize = 16 * 1024 * 1024;

/// Why an LND operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LndError {
    #[error("cannot reach {peer}: {reason}")]
    Unreachable { peer: ProcessId, reason: String },
    #[error("connection to {peer} lost")]
    ConnectionLost { peer: ProcessId },
    #[error("message of {len} bytes is larger than the {max}-byte immediate limit")]
    TooLarge { len: usize, max: usize },
    #[error("peer {peer} refused bulk: {errno}")]
    BulkRefused { peer: ProcessId, errno: Errno },
    #[error("bulk refused locally: {0}")]
    Bulk(#[from] BulkError),
    #[error("the LND is shut down")]
    Shutdown,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl LndError {
    pub fn errno(&self) -> Errno {
        match self {
            LndError::Unreachable { .. } => Errno::EHOSTUNREACH,
            LndError::ConnectionLost { .. } => Errno::ECONNRESET,
            LndError::TooLarge { .. } => Errno::E2BIG,
            LndError::BulkRefused { errno, .. } => *errno,
            LndError::Bulk(e) => e.errno(),
            LndError::Shutdown => Errno::ESHUTDOWN,
            LndError::Io(e) => Errno::from_io(e),
        }
    }

    /// Whether reconnecting and trying again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, LndError::Unreachable { .. } | LndError::ConnectionLost { .. } | LndError::Io(_))
    }
}

/// An immediate message as received: it holds one of the receiver's
/// posted buffers, and returns a credit to the sender when dropped.
pub trait RecvBuf: Send + Sync + 'static {
    fn bytes(&self) -> &[u8];
}

/// A registered buffer a server moves bulk through. Handed to the LND for
/// the length of a transfer and given back, so a cancelled transfer can
/// never leave the LND writing into memory someone else reuses.
pub trait BulkBuf: Send + 'static {
    fn io(&self) -> &IoBuf;
    fn io_mut(&mut self) -> &mut IoBuf;
}

impl BulkBuf for IoBuf {
    fn io(&self) -> &IoBuf {
        self
    }
    fn io_mut(&mut self) -> &mut IoBuf {
        self
    }
}

impl BulkBuf for PoolBuf {
    fn io(&self) -> &IoBuf {
        PoolBuf::io(self)
    }
    fn io_mut(&mut self) -> &mut IoBuf {
        PoolBuf::io_mut(self)
    }
}

/// Where an LND hands what arrives. The RPC endpoint implements it.
pub trait Deliver: Send + Sync + 'static {
    /// An immediate message from `from`.
    fn deliver(&self, from: ProcessId, msg: Box<dyn RecvBuf>);
    /// Every connection to `peer` is gone: whatever waits on it should
    /// reconnect and resend.
    fn peer_down(&self, peer: ProcessId);
}

/// The LND contract. Connection setup is implicit: the first send to a
/// peer connects, and a lost connection is re-made on the next send.
pub trait Lnd: Send + Sync + 'static {
    fn net(&self) -> Net;
    fn nid(&self) -> Nid;

    /// Sends one immediate message made of `parts`, waiting for a credit.
    fn send(&self, peer: ProcessId, parts: &[&[u8]]) -> impl Future<Output = Result<(), LndError>> + Send;

    /// Reads the peer's exposed range `remote` into `buf[off..off+remote.len]`
    /// (RDMA READ on verbs). The buffer comes back whatever happens.
    fn bulk_get<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> impl Future<Output = (B, Result<(), LndError>)> + Send;

    /// Writes `buf[off..off+remote.len]` into the peer's exposed range
    /// (RDMA WRITE on verbs).
    fn bulk_put<B: BulkBuf>(
        &self,
        peer: ProcessId,
        remote: BulkHandle,
        buf: B,
        off: usize,
    ) -> impl Future<Output = (B, Result<(), LndError>)> + Send;

    /// Closes every connection and stops accepting.
    fn shutdown(&self);
}
