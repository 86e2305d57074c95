//! File attributes as they cross the wire.

use crate::fid::Fid;
use serde::{Deserialize, Serialize};

/// A point in time: seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp { sec: d.as_secs() as i64, nsec: d.subsec_nanos() }
    }
}

/// What `stat` returns for a file. `mode` holds the type bits
/// (`S_IFREG`, `S_IFDIR`, ...) and the permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attr {
    pub fid: Fid,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub rdev: u64,
    pub projid: u32,
}

impl Attr {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    pub fn is_reg(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
}

/// What a setattr changes; unset fields stay as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Timestamp>,
    pub mtime: Option<Timestamp>,
    pub ctime: Option<Timestamp>,
    /// Set atime from the server's clock (`utimensat(UTIME_NOW)`, `touch`),
    /// as Lustre's ATTR_ATIME without ATTR_ATIME_SET: the times of a file
    /// then come from one clock, not from each client's. `atime` is ignored.
    pub atime_now: bool,
    /// Set mtime from the server's clock; `mtime` is ignored.
    pub mtime_now: bool,
}

impl SetAttr {
    /// Whether any time changes, explicitly or to "now".
    pub fn sets_times(&self) -> bool {
        self.atime.is_some() || self.mtime.is_some() || self.atime_now || self.mtime_now
    }
}

/// The caller of an operation, for permission checks.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Cred {
    pub fn root() -> Cred {
        Cred { uid: 0, gid: 0, groups: Vec::new() }
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Space on one target or the whole file system, in bytes and inodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatFs {
    pub bsize: u32,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namelen: u32,
}
