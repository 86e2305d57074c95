//! What an `lfs` command failed with, as an errno (the exit status and
//! Lustre-style message come from it) plus the detail a user needs.

use client::ClientError;
use fabric::Errno;

#[derive(Debug, thiserror::Error)]
pub enum LfsError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{}", strerror(*.0))]
    Errno(Errno),
    #[error("invalid {what} '{value}': {reason}")]
    BadArg { what: &'static str, value: String, reason: String },
    #[error("'{0}' is not on a glint file system (no fuse.glint mount holds it)")]
    NotGlint(String),
    #[error("the glint mount on {dir} has source '{source_field}', not MGSNID:/FSNAME")]
    BadMountSource { dir: String, source_field: String },
    #[error("reading {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl LfsError {
    pub fn errno(&self) -> Errno {
        match self {
            LfsError::Client(e) => e.errno(),
            LfsError::Errno(e) => *e,
            LfsError::BadArg { .. } => Errno::EINVAL,
            LfsError::NotGlint(_) => Errno::ENODEV,
            LfsError::BadMountSource { .. } => Errno::EINVAL,
            LfsError::Io { source, .. } => Errno::from_io(source),
        }
    }

    /// `strerror` of the errno for errors that are only an errno, the
    /// full text otherwise: what follows `lfs CMD: ... 'PATH': `.
    pub fn reason(&self) -> String {
        match self {
            LfsError::Client(ClientError::Errno(e)) | LfsError::Errno(e) => strerror(*e),
            LfsError::Client(ClientError::Rpc(fabric::RpcError::Remote(e))) => strerror(*e),
            other => other.to_string(),
        }
    }
}

impl From<Errno> for LfsError {
    fn from(e: Errno) -> Self {
        LfsError::Errno(e)
    }
}

/// The C library's message for an errno ("File exists"), without Rust's
/// " (os error N)" suffix.
pub fn strerror(e: Errno) -> String {
    let full = std::io::Error::from_raw_os_error(e.0).to_string();
    match full.find(" (os error") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_libc() {
        assert_eq!(strerror(Errno::EEXIST), "File exists");
        assert_eq!(LfsError::from(Errno::ENOENT).reason(), "No such file or directory");
        let e = LfsError::Client(ClientError::Rpc(fabric::RpcError::Remote(Errno::EACCES)));
        assert_eq!(e.reason(), "Permission denied");
        assert_eq!(e.errno(), Errno::EACCES);
    }
}
