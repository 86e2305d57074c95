//! What can go wrong in the metadata store, and the errno each failure
//! reaches the client as.

use fabric::Errno;

/// A failed metadata operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MdsError {
    /// The operation was refused under POSIX rules (ENOENT, EACCES, ...);
    /// nothing was changed.
    #[error("{0}")]
    Posix(Errno),
    /// The store could not read or write (disk error, full disk, ...).
    #[error("metadata store: {0}")]
    Store(String),
    /// A record did not decode or a reference points nowhere.
    #[error("metadata store is inconsistent: {0}")]
    Corrupt(String),
    /// The path does not hold a formatted MDT.
    #[error("not a glint MDT: {0}")]
    NotFormatted(String),
    /// The committer has stopped (the MDT is closing or its thread died).
    #[error("the MDT is shutting down")]
    Shutdown,
}

impl MdsError {
    /// The errno a client sees for this failure.
    pub fn errno(&self) -> Errno {
        match self {
            MdsError::Posix(e) => *e,
            MdsError::Store(_) | MdsError::Corrupt(_) => Errno::EIO,
            MdsError::NotFormatted(_) => Errno::EINVAL,
            MdsError::Shutdown => Errno::ESHUTDOWN,
        }
    }
}

impl From<Errno> for MdsError {
    fn from(e: Errno) -> MdsError {
        MdsError::Posix(e)
    }
}

impl From<MdsError> for Errno {
    fn from(e: MdsError) -> Errno {
        e.errno()
    }
}

macro_rules! store_error {
    ($($t:ty),*) => {
        $(impl From<$t> for MdsError {
            fn from(e: $t) -> MdsError {
                MdsError::Store(e.to_string())
            }
        })*
    };
}

store_error!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);

/// Shorthand for a refusal with `errno`.
pub(crate) fn refuse<T>(errno: Errno) -> Result<T, MdsError> {
    Err(MdsError::Posix(errno))
}
