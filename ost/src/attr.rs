//! What an OST knows about one object: its size, its allocated blocks and
//! its times. Owner, mode and the rest belong to the MDS's inode.

pub use proto::ObjAttr;
use proto::Timestamp;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// An object's attributes from its backing file's metadata: what the OST
/// sends on the wire, so no conversion stands between them.
pub(crate) fn from_metadata(m: &Metadata) -> ObjAttr {
    let ts = |sec: i64, nsec: i64| Timestamp { sec, nsec: nsec.clamp(0, 999_999_999) as u32 };
    ObjAttr {
        size: m.size(),
        blocks: m.blocks(),
        atime: ts(m.atime(), m.atime_nsec()),
        mtime: ts(m.mtime(), m.mtime_nsec()),
        ctime: ts(m.ctime(), m.ctime_nsec()),
    }
}

/// Times a setattr changes; `None` leaves a time as it is. The change time
/// is not settable: the backing file system stamps it on every change, as
/// it does for any file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ObjTimes {
    pub atime: Option<Timestamp>,
    pub mtime: Option<Timestamp>,
}

/// Sets the times of `file` (`futimens`).
pub(crate) fn set_times(file: &File, times: ObjTimes) -> io::Result<()> {
    let spec = |t: Option<Timestamp>| match t {
        Some(t) => libc::timespec { tv_sec: t.sec, tv_nsec: i64::from(t.nsec) },
        None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
    };
    let ts = [spec(times.atime), spec(times.mtime)];
    // SAFETY: `ts` is an array of two timespecs as futimens requires.
    if unsafe { libc::futimens(file.as_raw_fd(), ts.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
