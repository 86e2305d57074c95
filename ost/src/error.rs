//! What can go wrong in an object store, and the errno each failure carries
//! back to the client that asked.

use fabric::Errno;
use proto::Fid;
use std::path::PathBuf;

/// An object-store failure. Every variant maps to the errno a local file
/// system would have returned for the same mistake.
#[derive(Debug, thiserror::Error)]
pub enum OstError {
    #[error("{dir}: not a formatted glint target (no label file; run format first)")]
    NotFormatted { dir: PathBuf },

    #[error("{dir}: already formatted as {found} (refusing to format over it)")]
    AlreadyFormatted { dir: PathBuf, found: String },

    #[error(
        "{dir}: target label is fsname `{found_fsname}` index {found_index}, \
         but fsname `{fsname}` index {index} was expected"
    )]
    LabelMismatch { dir: PathBuf, fsname: String, index: u32, found_fsname: String, found_index: u32 },

    #[error("{path}: damaged target: {reason}")]
    Damaged { path: PathBuf, reason: String },

    #[error("bad fsname `{0}`: 1 to 8 characters of [A-Za-z0-9_-]")]
    BadFsname(String),

    #[error("object {0} does not exist")]
    NoSuchObject(Fid),

    #[error("object {0} already exists")]
    ObjectExists(Fid),

    #[error("object {fid}: range at {off} of {len} bytes goes past the largest object size {max}")]
    TooBig { fid: Fid, off: u64, len: u64, max: u64 },

    #[error("object {fid}: no space left for {len} bytes at {off}")]
    NoSpace { fid: Fid, off: u64, len: u64 },

    #[error("{0}")]
    InvalidArgument(String),

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl OstError {
    /// The errno this failure is reported with on the wire.
    pub fn errno(&self) -> Errno {
        match self {
            OstError::NotFormatted { .. } => Errno::ENODEV,
            OstError::AlreadyFormatted { .. } => Errno::EEXIST,
            OstError::LabelMismatch { .. } => Errno::ENODEV,
            OstError::Damaged { .. } => Errno::EIO,
            OstError::BadFsname(_) => Errno::EINVAL,
            OstError::NoSuchObject(_) => Errno::ENOENT,
            OstError::ObjectExists(_) => Errno::EEXIST,
            OstError::TooBig { .. } => Errno::EFBIG,
            OstError::NoSpace { .. } => Errno::ENOSPC,
            OstError::InvalidArgument(_) => Errno::EINVAL,
            OstError::Io { source, .. } => Errno::from_io(source),
        }
    }

    /// Wraps an I/O error with what was being done and to which path or object.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> OstError {
        OstError::Io { what: what.into(), source }
    }
}

impl From<OstError> for Errno {
    fn from(e: OstError) -> Errno {
        e.errno()
    }
}

/// Results of object-store operations.
pub type Result<T, E = OstError> = std::result::Result<T, E>;
