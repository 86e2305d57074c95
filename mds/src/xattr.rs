//! Extended attributes: namespaces and who may touch which.

use crate::batch::Batch;
use crate::error::{MdsError, refuse};
use crate::perm::{self, MAY_READ, MAY_WRITE};
use crate::records::Inode;
use crate::tables::View;
use fabric::Errno;
use proto::{Cred, Fid, Timestamp};

/// Longest value, as Linux's XATTR_SIZE_MAX.
pub const XATTR_VALUE_MAX: usize = 65536;
/// Longest name, as Linux's XATTR_NAME_MAX.
pub const XATTR_NAME_MAX: usize = 255;

/// How a set treats an existing attribute (`XATTR_CREATE`/`XATTR_REPLACE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XattrMode {
    /// Create or replace.
    #[default]
    Any,
    /// Fail with EEXIST if it exists.
    Create,
    /// Fail with ENODATA if it does not.
    Replace,
}

impl XattrMode {
    /// From setxattr(2) flags.
    pub fn from_flags(flags: i32) -> Result<XattrMode, Errno> {
        const CREATE: i32 = 1;
        const REPLACE: i32 = 2;
        match flags {
            0 => Ok(XattrMode::Any),
            CREATE => Ok(XattrMode::Create),
            REPLACE => Ok(XattrMode::Replace),
            _ => Err(Errno::EINVAL),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Namespace {
    User,
    Trusted,
    Security,
}

fn namespace(name: &str) -> Result<Namespace, Errno> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    let (ns, rest) = name.split_once('.').ok_or(Errno::EOPNOTSUPP)?;
    let ns = match ns {
        "user" => Namespace::User,
        "trusted" => Namespace::Trusted,
        "security" => Namespace::Security,
        // system.* holds ACLs, which glint does not store yet.
        _ => return Err(Errno::EOPNOTSUPP),
    };
    if rest.is_empty() || name.contains('\0') {
        return Err(Errno::EINVAL);
    }
    Ok(ns)
}

/// Whether `cred` may read attribute `name` of `inode`.
pub fn check_read(cred: &Cred, inode: &Inode, name: &str) -> Result<(), Errno> {
    match namespace(name)? {
        Namespace::Trusted => perm::check_root(cred),
        // user.* exists only on files and directories.
        Namespace::User if !inode.is_reg() && !inode.is_dir() => Err(Errno::ENODATA),
        Namespace::User => perm::check(cred, inode, MAY_READ),
        Namespace::Security => Ok(()),
    }
}

fn check_write(cred: &Cred, inode: &Inode, name: &str) -> Result<(), Errno> {
    match namespace(name)? {
        Namespace::Trusted => perm::check_root(cred),
        Namespace::User => {
            if !inode.is_reg() && !inode.is_dir() {
                return Err(Errno::EPERM);
            }
            if inode.is_dir() && inode.mode & libc::S_ISVTX != 0 {
                perm::check_owner(cred, inode)?;
            }
            perm::check(cred, inode, MAY_WRITE)
        }
        Namespace::Security => perm::check(cred, inode, MAY_WRITE),
    }
}

/// Whether `cred` sees attribute `name` in a listing (trusted.* is root's).
pub fn listed(cred: &Cred, name: &str) -> bool {
    !name.starts_with("trusted.") || cred.uid == 0
}

pub fn set(
    b: &mut Batch,
    cred: &Cred,
    fid: Fid,
    name: &str,
    value: &[u8],
    mode: XattrMode,
) -> Result<(), MdsError> {
    let mut inode = b.t.existing(fid)?;
    check_write(cred, &inode, name)?;
    if value.len() > XATTR_VALUE_MAX {
        return refuse(Errno::E2BIG);
    }
    let exists = b.t.xattr(fid, name)?.is_some();
    match mode {
        XattrMode::Create if exists => return refuse(Errno::EEXIST),
        XattrMode::Replace if !exists => return refuse(Errno::ENODATA),
        _ => {}
    }
    b.put_xattr(fid, name, value)?;
    inode.ctime = Timestamp::now();
    b.put_inode(fid, &inode)
}

pub fn remove(b: &mut Batch, cred: &Cred, fid: Fid, name: &str) -> Result<(), MdsError> {
    let mut inode = b.t.existing(fid)?;
    check_write(cred, &inode, name)?;
    if b.t.xattr(fid, name)?.is_none() {
        return refuse(Errno::ENODATA);
    }
    b.remove_xattr(fid, name)?;
    inode.ctime = Timestamp::now();
    b.put_inode(fid, &inode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags() {
        assert_eq!(namespace(""), Err(Errno::ERANGE));
        assert_eq!(namespace(&format!("user.{}", "a".repeat(251))), Err(Errno::ERANGE));
        assert_eq!(namespace("user."), Err(Errno::EINVAL));
        assert_eq!(namespace("system.posix_acl_access"), Err(Errno::EOPNOTSUPP));
        assert_eq!(namespace("nodot"), Err(Errno::EOPNOTSUPP));
        assert!(namespace("user.x").is_ok());
        assert_eq!(XattrMode::from_flags(3), Err(Errno::EINVAL));
        assert_eq!(XattrMode::from_flags(2), Ok(XattrMode::Replace));
    }
}
