//! Errors as they travel on the wire: Linux errno numbers, so a failure on
//! any server reaches the application as the errno it would get from a
//! local file system.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A Linux errno value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const E2BIG: Errno = Errno(libc::E2BIG);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const EXDEV: Errno = Errno(libc::EXDEV);
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EFBIG: Errno = Errno(libc::EFBIG);
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const EMLINK: Errno = Errno(libc::EMLINK);
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const ENOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
    pub const ELOOP: Errno = Errno(libc::ELOOP);
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    pub const EOVERFLOW: Errno = Errno(libc::EOVERFLOW);
    pub const EPROTO: Errno = Errno(libc::EPROTO);
    pub const EBADMSG: Errno = Errno(libc::EBADMSG);
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    pub const ECONNRESET: Errno = Errno(libc::ECONNRESET);
    pub const ENOTCONN: Errno = Errno(libc::ENOTCONN);
    pub const ESHUTDOWN: Errno = Errno(libc::ESHUTDOWN);
    pub const ETIMEDOUT: Errno = Errno(libc::ETIMEDOUT);
    pub const ECONNREFUSED: Errno = Errno(libc::ECONNREFUSED);
    pub const EHOSTUNREACH: Errno = Errno(libc::EHOSTUNREACH);
    pub const ESTALE: Errno = Errno(libc::ESTALE);
    pub const ENOLCK: Errno = Errno(libc::ENOLCK);
    /// The server is recovering: ask again shortly (as Lustre's clients
    /// treat -EINPROGRESS).
    pub const EINPROGRESS: Errno = Errno(libc::EINPROGRESS);
    pub const ENOTSUP: Errno = Errno(libc::ENOTSUP);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const ETXTBSY: Errno = Errno(libc::ETXTBSY);

    /// The errno an I/O error carries, or EIO when it has none.
    pub fn from_io(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or_else(|| match e.kind() {
            std::io::ErrorKind::NotFound => libc::ENOENT,
            std::io::ErrorKind::PermissionDenied => libc::EACCES,
            std::io::ErrorKind::AlreadyExists => libc::EEXIST,
            std::io::ErrorKind::InvalidInput => libc::EINVAL,
            std::io::ErrorKind::TimedOut => libc::ETIMEDOUT,
            std::io::ErrorKind::StorageFull => libc::ENOSPC,
            std::io::ErrorKind::UnexpectedEof => libc::EPROTO,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => libc::ECONNRESET,
            std::io::ErrorKind::ConnectionRefused => libc::ECONNREFUSED,
            _ => libc::EIO,
        }))
    }

    /// The conventional name (`ENOENT`), or the number when unknown.
    pub fn name(self) -> String {
        let known = [
            (Errno::EPERM, "EPERM"),
            (Errno::ENOENT, "ENOENT"),
            (Errno::EIO, "EIO"),
            (Errno::EACCES, "EACCES"),
            (Errno::EEXIST, "EEXIST"),
            (Errno::EXDEV, "EXDEV"),
            (Errno::ENOTDIR, "ENOTDIR"),
            (Errno::EISDIR, "EISDIR"),
            (Errno::EINVAL, "EINVAL"),
            (Errno::EFBIG, "EFBIG"),
            (Errno::ENOSPC, "ENOSPC"),
            (Errno::ENAMETOOLONG, "ENAMETOOLONG"),
            (Errno::ENOTEMPTY, "ENOTEMPTY"),
            (Errno::ENODATA, "ENODATA"),
            (Errno::EPROTO, "EPROTO"),
            (Errno::ETIMEDOUT, "ETIMEDOUT"),
            (Errno::ENOTCONN, "ENOTCONN"),
            (Errno::ESTALE, "ESTALE"),
            (Errno::ENOLCK, "ENOLCK"),
            (Errno::EINPROGRESS, "EINPROGRESS"),
            (Errno::EFAULT, "EFAULT"),
            (Errno::ENOSYS, "ENOSYS"),
            (Errno::ERANGE, "ERANGE"),
        ];
        known
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| format!("errno {}", self.0))
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        Errno::from_io(&e)
    }
}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.0)
    }
}
