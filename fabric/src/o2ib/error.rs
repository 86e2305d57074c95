use crate::Errno;
use sideway::ibverbs::completion::WorkCompletionStatus;
use std::error::Error as StdError;

/// The boxed error a verbs or rdma_cm call returned, kept as the source.
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// Why a verbs operation failed.
#[derive(Debug, thiserror::Error)]
pub enum O2ibError {
    /// No usable RDMA device: none is present, or libibverbs/librdmacm
    /// cannot be loaded. The node simply has no o2ib NI.
    #[error("no RDMA device")]
    NoRdmaDevice,
    /// A verbs or rdma_cm call failed.
    #[error("{op} failed: {source}")]
    Call {
        op: &'static str,
        #[source]
        source: Cause,
    },
    /// rdma_cm reported an event other than the one the handshake needed
    /// (address/route error, rejection, unreachable peer...).
    #[error("rdma_cm: expected {expected} during {during}, got {got} (status {status})")]
    CmEvent { during: &'static str, expected: &'static str, got: String, status: i32 },
    /// The handshake did not progress within its deadline.
    #[error("rdma_cm: no {expected} within {millis} ms")]
    CmTimeout { expected: &'static str, millis: u128 },
    /// The connection was set up on another device than the one asked for.
    #[error("peer is reached through device {got}, not {expected}")]
    WrongDevice { expected: String, got: String },
    /// A byte range falls outside the registered region it names.
    #[error("range {off}+{len} is outside a region of {region_len} bytes")]
    OutOfRange { off: usize, len: usize, region_len: usize },
    /// A memory registration from another protection domain was handed to
    /// a connection.
    #[error("memory registration belongs to another protection domain")]
    ForeignRegistration,
    /// An immediate message is larger than a receive buffer.
    #[error("message of {len} bytes is larger than the {max}-byte receive buffers")]
    TooLarge { len: usize, max: usize },
    /// Every send slot or RDMA slot is in flight; poll completions first.
    #[error("all {slots} {what} slots are in flight")]
    Busy { what: &'static str, slots: usize },
    /// Connection sizes that cannot work.
    #[error("bad o2ib connection config: {0}")]
    BadConfig(String),
    /// A work request completed with an error status.
    #[error("work request {wr_id} completed with {status:?}")]
    Completion { wr_id: u64, status: WorkCompletionStatus },
}

impl O2ibError {
    pub(crate) fn call<E>(op: &'static str, source: E) -> O2ibError
    where
        E: StdError + Send + Sync + 'static,
    {
        O2ibError::Call { op, source: Box::new(source) }
    }

    /// The errno this failure travels as.
    pub fn errno(&self) -> Errno {
        match self {
            O2ibError::NoRdmaDevice | O2ibError::WrongDevice { .. } => Errno::ENODEV,
            O2ibError::Call { .. } => Errno::EIO,
            O2ibError::CmEvent { .. } => Errno::ECONNREFUSED,
            O2ibError::CmTimeout { .. } => Errno::ETIMEDOUT,
            O2ibError::OutOfRange { .. } => Errno::ERANGE,
            O2ibError::ForeignRegistration | O2ibError::BadConfig(_) => Errno::EINVAL,
            O2ibError::TooLarge { .. } => Errno::E2BIG,
            O2ibError::Busy { .. } => Errno::EAGAIN,
            O2ibError::Completion { status, .. } => completion_errno(*status),
        }
    }
}

/// The errno for a failed work completion: a remote key or range the
/// peer refused is a permission problem, a dead peer is a reset.
pub fn completion_errno(status: WorkCompletionStatus) -> Errno {
    use WorkCompletionStatus as S;
    match status {
        S::RemoteAccessError | S::LocalProtectionError | S::LocalAccessError => Errno::EACCES,
        S::RemoteInvalidRequestError | S::LocalLengthError => Errno::EINVAL,
        S::RetryCounterExceededError | S::ResponderNotReadyRetryCounterExceededError => Errno::ETIMEDOUT,
        S::WorkRequestFlushedError => Errno::ECONNRESET,
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_keys_are_permission_errors() {
        let e = O2ibError::Completion { wr_id: 7, status: WorkCompletionStatus::RemoteAccessError };
        assert_eq!(e.errno(), Errno::EACCES);
        assert!(e.to_string().contains("RemoteAccessError"), "{e}");
    }

    #[test]
    fn missing_device_is_enodev() {
        assert_eq!(O2ibError::NoRdmaDevice.errno(), Errno::ENODEV);
        assert_eq!(O2ibError::NoRdmaDevice.to_string(), "no RDMA device");
    }

    #[test]
    fn flushed_requests_mean_the_connection_is_gone() {
        assert_eq!(completion_errno(WorkCompletionStatus::WorkRequestFlushedError), Errno::ECONNRESET);
        assert_eq!(completion_errno(WorkCompletionStatus::RetryCounterExceededError), Errno::ETIMEDOUT);
    }
}
