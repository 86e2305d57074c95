use fabric::{Errno, RpcError};
use proto::CodecError;

/// What a client operation failed with; `errno()` is what an application
/// (or the FUSE mount) reports.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Errno(Errno),
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("unexpected reply from {service}")]
    UnexpectedReply { service: &'static str },
    #[error("bad mount spec `{spec}`: {reason}")]
    MountSpec { spec: String, reason: String },
    #[error("file system `{0}` has no MDT registered with the MGS yet")]
    NoMdt(String),
    #[error("OST index {0} is not in the file system's configuration")]
    UnknownOst(u32),
    #[error("checksum mismatch on data from OST {ost}: {want:#010x} != {got:#010x}")]
    Checksum { ost: u32, want: u32, got: u32 },
}

impl ClientError {
    pub fn errno(&self) -> Errno {
        match self {
            ClientError::Errno(e) => *e,
            ClientError::Rpc(e) => e.errno(),
            ClientError::Codec(e) => e.errno(),
            ClientError::UnexpectedReply { .. } => Errno::EPROTO,
            ClientError::MountSpec { .. } => Errno::EINVAL,
            ClientError::NoMdt(_) => Errno::ENODEV,
            ClientError::UnknownOst(_) => Errno::EIO,
            ClientError::Checksum { .. } => Errno::EIO,
        }
    }
}

impl From<Errno> for ClientError {
    fn from(e: Errno) -> Self {
        ClientError::Errno(e)
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;
