//! POSIX permission rules: who may read, write or search an inode, and
//! who may change its owner, group, mode and times.

use crate::records::Inode;
use fabric::Errno;
use proto::Cred;

pub const MAY_READ: u32 = 4;
pub const MAY_WRITE: u32 = 2;
pub const MAY_EXEC: u32 = 1;

fn is_root(c: &Cred) -> bool {
    c.uid == 0
}

/// Whether `cred` may access `inode` for `mask` (a set of MAY_*). The class
/// is chosen first (owner, then group, then other) and only its bits count,
/// as in POSIX. Root may read and write anything, and execute anything that
/// is a directory or has an execute bit for someone.
pub fn may(cred: &Cred, inode: &Inode, mask: u32) -> bool {
    if is_root(cred) {
        return mask & MAY_EXEC == 0 || inode.is_dir() || inode.mode & 0o111 != 0;
    }
    let bits = if cred.uid == inode.uid {
        (inode.mode >> 6) & 7
    } else if cred.in_group(inode.gid) {
        (inode.mode >> 3) & 7
    } else {
        inode.mode & 7
    };
    bits & mask == mask
}

/// `may`, as an EACCES refusal.
pub fn check(cred: &Cred, inode: &Inode, mask: u32) -> Result<(), Errno> {
    if may(cred, inode, mask) { Ok(()) } else { Err(Errno::EACCES) }
}

/// In a sticky directory only the owner of an entry, the owner of the
/// directory or root may remove or rename it.
pub fn check_sticky(cred: &Cred, dir: &Inode, victim: &Inode) -> Result<(), Errno> {
    if dir.mode & libc::S_ISVTX == 0 || is_root(cred) || cred.uid == dir.uid || cred.uid == victim.uid {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Owner-only changes (chmod, explicit times, xattrs on sticky dirs).
pub fn check_owner(cred: &Cred, inode: &Inode) -> Result<(), Errno> {
    if is_root(cred) || cred.uid == inode.uid { Ok(()) } else { Err(Errno::EPERM) }
}

/// chown: only root changes the owner; an owner may "change" it to itself.
pub fn check_chown(cred: &Cred, inode: &Inode, uid: u32) -> Result<(), Errno> {
    if is_root(cred) || (cred.uid == inode.uid && uid == inode.uid) { Ok(()) } else { Err(Errno::EPERM) }
}

/// chgrp: root, or the owner to a group it belongs to (or the same group).
pub fn check_chgrp(cred: &Cred, inode: &Inode, gid: u32) -> Result<(), Errno> {
    if is_root(cred) || (cred.uid == inode.uid && (gid == inode.gid || cred.in_group(gid))) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// The mode a chmod stores: permission bits from `mode`, the type kept;
/// setgid dropped when a non-root caller is not in the file's group.
pub fn chmod_mode(cred: &Cred, inode: &Inode, mode: u32, gid: u32) -> u32 {
    let mut perm = mode & 0o7777;
    if !is_root(cred) && !cred.in_group(gid) {
        perm &= !libc::S_ISGID;
    }
    inode.kind() | perm
}

/// The setuid/setgid bits that go when a file changes owner or is written
/// by a non-root caller: setuid always, setgid when it means "run as group"
/// (group execute set) rather than mandatory locking.
pub fn kill_priv(mode: u32) -> u32 {
    let mut m = mode & !libc::S_ISUID;
    if m & libc::S_IXGRP != 0 {
        m &= !libc::S_ISGID;
    }
    m
}

/// Owner, group and mode of a new inode in `parent`: the group is the
/// directory's when it is setgid (and new subdirectories stay setgid),
/// else the caller's; a non-root caller outside that group cannot create a
/// setgid file.
pub fn new_owner(cred: &Cred, parent: &Inode, mode: u32) -> (u32, u32, u32) {
    let kind = mode & libc::S_IFMT;
    let mut perm = mode & 0o7777;
    let gid = if parent.mode & libc::S_ISGID != 0 {
        if kind == libc::S_IFDIR {
            perm |= libc::S_ISGID;
        }
        parent.gid
    } else {
        cred.gid
    };
    if kind != libc::S_IFDIR && perm & libc::S_ISGID != 0 && !is_root(cred) && !cred.in_group(gid) {
        perm &= !libc::S_ISGID;
    }
    (cred.uid, gid, kind | perm)
}

/// Whether `cred` is root, for the few operations only root may do
/// (device nodes, trusted xattrs, file-system defaults).
pub fn check_root(cred: &Cred) -> Result<(), Errno> {
    if is_root(cred) { Ok(()) } else { Err(Errno::EPERM) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::HsmState;
    use proto::{Fid, Timestamp};

    fn inode(mode: u32, uid: u32, gid: u32) -> Inode {
        Inode {
            mode,
            uid,
            gid,
            nlink: 1,
            size: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            rdev: 0,
            projid: 0,
            hsm_state: HsmState::Resident,
            archive_id: 0,
            parent: Fid::default(),
            next_index: 0,
            symlink: Vec::new(),
        }
    }

    fn cred(uid: u32, gid: u32, groups: &[u32]) -> Cred {
        Cred { uid, gid, groups: groups.to_vec() }
    }

    #[test]
    fn class_is_chosen_before_bits() {
        // Owner with no bits is refused even though other may read.
        let f = inode(libc::S_IFREG | 0o004, 10, 20);
        assert!(!may(&cred(10, 20, &[]), &f, MAY_READ));
        // Group member with no group bits is refused even though other may.
        assert!(!may(&cred(11, 20, &[]), &f, MAY_READ));
        assert!(may(&cred(11, 21, &[]), &f, MAY_READ));
    }

    #[test]
    fn permission_matrix() {
        let f = inode(libc::S_IFREG | 0o640, 10, 20);
        let cases = [
            (cred(10, 99, &[]), MAY_READ | MAY_WRITE, true),
            (cred(10, 99, &[]), MAY_EXEC, false),
            (cred(11, 20, &[]), MAY_READ, true),
            (cred(11, 20, &[]), MAY_WRITE, false),
            (cred(11, 30, &[5, 20]), MAY_READ, true),
            (cred(11, 30, &[5]), MAY_READ, false),
            (cred(0, 0, &[]), MAY_READ | MAY_WRITE, true),
            (cred(0, 0, &[]), MAY_EXEC, false),
        ];
        for (c, mask, want) in cases {
            assert_eq!(may(&c, &f, mask), want, "{c:?} mask {mask}");
        }
        let x = inode(libc::S_IFREG | 0o001, 10, 20);
        assert!(may(&cred(0, 0, &[]), &x, MAY_EXEC));
        let d = inode(libc::S_IFDIR, 10, 20);
        assert!(may(&cred(0, 0, &[]), &d, MAY_EXEC | MAY_WRITE));
    }

    #[test]
    fn setgid_directories_pass_their_group_on() {
        let d = inode(libc::S_IFDIR | libc::S_ISGID | 0o775, 10, 50);
        let c = cred(11, 30, &[]);
        assert_eq!(new_owner(&c, &d, libc::S_IFDIR | 0o755), (11, 50, libc::S_IFDIR | libc::S_ISGID | 0o755));
        // A setgid file for a group the caller is not in loses the bit.
        assert_eq!(new_owner(&c, &d, libc::S_IFREG | 0o2755), (11, 50, libc::S_IFREG | 0o755));
        let plain = inode(libc::S_IFDIR | 0o777, 10, 50);
        assert_eq!(new_owner(&c, &plain, libc::S_IFREG | 0o644), (11, 30, libc::S_IFREG | 0o644));
    }

    #[test]
    fn chown_and_chmod_rules() {
        let f = inode(libc::S_IFREG | 0o6755, 10, 20);
        assert_eq!(check_chown(&cred(10, 20, &[]), &f, 11), Err(Errno::EPERM));
        assert_eq!(check_chown(&cred(10, 20, &[]), &f, 10), Ok(()));
        assert_eq!(check_chown(&cred(0, 0, &[]), &f, 11), Ok(()));
        assert_eq!(check_chgrp(&cred(10, 20, &[30]), &f, 30), Ok(()));
        assert_eq!(check_chgrp(&cred(10, 20, &[]), &f, 30), Err(Errno::EPERM));
        assert_eq!(check_chgrp(&cred(11, 20, &[30]), &f, 30), Err(Errno::EPERM));
        assert_eq!(kill_priv(f.mode), libc::S_IFREG | 0o755);
        assert_eq!(kill_priv(libc::S_IFREG | 0o2644), libc::S_IFREG | 0o2644);
        assert_eq!(chmod_mode(&cred(10, 99, &[]), &f, 0o2755, 20), libc::S_IFREG | 0o755);
        assert_eq!(chmod_mode(&cred(10, 20, &[]), &f, 0o2755, 20), libc::S_IFREG | 0o2755);
    }

    #[test]
    fn sticky_directories() {
        let d = inode(libc::S_IFDIR | 0o1777, 10, 20);
        let victim = inode(libc::S_IFREG | 0o644, 11, 20);
        assert_eq!(check_sticky(&cred(12, 20, &[]), &d, &victim), Err(Errno::EPERM));
        assert_eq!(check_sticky(&cred(11, 20, &[]), &d, &victim), Ok(()));
        assert_eq!(check_sticky(&cred(10, 20, &[]), &d, &victim), Ok(()));
        assert_eq!(check_sticky(&cred(0, 0, &[]), &d, &victim), Ok(()));
    }
}
