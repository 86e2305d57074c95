//! Translations between glint's wire types and what the kernel's FUSE
//! protocol speaks: attributes, times, file types, errnos, and the
//! permission rule `access(2)` applies.

use fabric::Errno;
use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};
use proto::{Attr, Cred, Timestamp};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn to_fuse_errno(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.0)
}

pub(crate) fn system_time(t: Timestamp) -> SystemTime {
    let nsec = Duration::from_nanos(u64::from(t.nsec.min(999_999_999)));
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.sec as u64) + nsec
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + nsec
    }
}

pub(crate) fn timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp { sec: d.as_secs() as i64, nsec: d.subsec_nanos() },
        Err(e) => {
            // Before the epoch: whole seconds down, nanoseconds up.
            let d = e.duration();
            let (sec, nsec) = (d.as_secs() as i64, d.subsec_nanos());
            if nsec == 0 {
                Timestamp { sec: -sec, nsec: 0 }
            } else {
                Timestamp { sec: -sec - 1, nsec: 1_000_000_000 - nsec }
            }
        }
    }
}

/// One time a setattr asks for: an explicit value, or "now", which the
/// MDS takes from its own clock (`SetAttr::atime_now`), not this node's.
pub(crate) fn time_or_now(t: Option<TimeOrNow>) -> (Option<Timestamp>, bool) {
    match t {
        Some(TimeOrNow::SpecificTime(t)) => (Some(timestamp(t)), false),
        Some(TimeOrNow::Now) => (None, true),
        None => (None, false),
    }
}

/// The FUSE file type of a mode's type bits.
pub(crate) fn file_type(mode: u32) -> Option<FileType> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG => FileType::RegularFile,
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => return None,
    })
}

/// `st_blksize`: tools size their buffers by it (cp, stdio), so a file
/// says the RPC size and large I/O reaches the mount in RPC-size pieces.
pub(crate) fn file_attr(ino: u64, a: &Attr, blksize: u32) -> Result<FileAttr, Errno> {
    let kind = file_type(a.mode).ok_or_else(|| {
        tracing::warn!(fid = %a.fid, mode = format!("{:o}", a.mode), "inode with an unknown file type");
        Errno::EIO
    })?;
    Ok(FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind,
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize,
        flags: 0,
    })
}

/// Whether `cred` may access a file with attributes `a` for `mask`
/// (`R_OK | W_OK | X_OK`, or `F_OK`), as `access(2)` decides: root may read
/// and write anything and execute what anyone may execute (or search any
/// directory); everyone else gets the owner, group or other bits.
pub(crate) fn access_allowed(cred: &Cred, a: &Attr, mask: i32) -> bool {
    let want = (mask & (libc::R_OK | libc::W_OK | libc::X_OK)) as u32;
    if want == 0 {
        return true;
    }
    if cred.uid == 0 {
        return want & libc::X_OK as u32 == 0 || a.is_dir() || a.mode & 0o111 != 0;
    }
    let bits = if cred.uid == a.uid {
        (a.mode >> 6) & 7
    } else if cred.in_group(a.gid) {
        (a.mode >> 3) & 7
    } else {
        a.mode & 7
    };
    bits & want == want
}

/// What `rename(2)` flags ask for, as far as the mount can honour them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameMode {
    Replace,
    NoReplace,
}

pub(crate) fn rename_mode(flags: u32) -> Result<RenameMode, Errno> {
    // The MDS has no atomic exchange, and whiteouts belong to overlayfs.
    let unsupported = libc::RENAME_EXCHANGE | libc::RENAME_WHITEOUT;
    if flags & unsupported != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & !libc::RENAME_NOREPLACE != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(if flags & libc::RENAME_NOREPLACE != 0 { RenameMode::NoReplace } else { RenameMode::Replace })
}

/// A name from the kernel as the MDS takes it. glint names are UTF-8.
pub(crate) fn name_str(name: &std::ffi::OsStr) -> Result<&str, Errno> {
    name.to_str().ok_or(Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attr(mode: u32, uid: u32, gid: u32) -> Attr {
        Attr { mode, uid, gid, ..Default::default() }
    }

    fn cred(uid: u32, gid: u32, groups: &[u32]) -> Cred {
        Cred { uid, gid, groups: groups.to_vec() }
    }

    #[test]
    fn access_follows_owner_group_other() {
        let f = attr(libc::S_IFREG | 0o640, 10, 20);
        assert!(access_allowed(&cred(10, 99, &[]), &f, libc::R_OK | libc::W_OK));
        assert!(!access_allowed(&cred(10, 99, &[]), &f, libc::X_OK));
        assert!(access_allowed(&cred(11, 20, &[]), &f, libc::R_OK));
        assert!(!access_allowed(&cred(11, 20, &[]), &f, libc::W_OK));
        assert!(access_allowed(&cred(11, 5, &[20]), &f, libc::R_OK));
        assert!(!access_allowed(&cred(11, 5, &[]), &f, libc::R_OK));
        assert!(access_allowed(&cred(11, 5, &[]), &f, libc::F_OK));
        // The owner class decides even when the group would allow more.
        let g = attr(libc::S_IFREG | 0o070, 10, 20);
        assert!(!access_allowed(&cred(10, 20, &[]), &g, libc::R_OK));
    }

    #[test]
    fn root_executes_only_what_someone_may() {
        let f = attr(libc::S_IFREG | 0o600, 10, 20);
        assert!(access_allowed(&cred(0, 0, &[]), &f, libc::R_OK | libc::W_OK));
        assert!(!access_allowed(&cred(0, 0, &[]), &f, libc::X_OK));
        assert!(access_allowed(&cred(0, 0, &[]), &attr(libc::S_IFREG | 0o001, 1, 1), libc::X_OK));
        assert!(access_allowed(&cred(0, 0, &[]), &attr(libc::S_IFDIR, 1, 1), libc::X_OK));
    }

    #[test]
    fn rename_flags() {
        assert_eq!(rename_mode(0), Ok(RenameMode::Replace));
        assert_eq!(rename_mode(libc::RENAME_NOREPLACE), Ok(RenameMode::NoReplace));
        assert_eq!(rename_mode(libc::RENAME_EXCHANGE), Err(Errno::EINVAL));
        assert_eq!(rename_mode(libc::RENAME_WHITEOUT), Err(Errno::EINVAL));
        assert_eq!(rename_mode(1 << 20), Err(Errno::EINVAL));
    }

    #[test]
    fn attrs_keep_type_and_permission_bits() {
        let mut a = attr(libc::S_IFDIR | 0o1777, 3, 4);
        a.size = 4096;
        a.mtime = Timestamp { sec: 1_700_000_000, nsec: 5 };
        let f = file_attr(42, &a, 4096).unwrap();
        assert_eq!(f.kind, FileType::Directory);
        assert_eq!(f.perm, 0o1777);
        assert_eq!(f.ino, INodeNo(42));
        assert_eq!(timestamp(f.mtime), a.mtime);
        assert_eq!(file_attr(1, &attr(0o644, 0, 0), 4096), Err(Errno::EIO));
        for m in [libc::S_IFLNK, libc::S_IFIFO, libc::S_IFCHR, libc::S_IFBLK, libc::S_IFSOCK, libc::S_IFREG] {
            assert!(file_type(m).is_some());
        }
    }

    proptest! {
        #[test]
        fn times_round_trip(sec in -(1i64 << 40)..(1i64 << 40), nsec in 0u32..1_000_000_000) {
            let t = Timestamp { sec, nsec };
            prop_assert_eq!(timestamp(system_time(t)), t);
        }
    }
}
