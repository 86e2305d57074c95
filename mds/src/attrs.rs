//! setattr and striping defaults: changes to one inode's attributes.

use crate::batch::Batch;
use crate::error::{MdsError, refuse};
use crate::perm::{self, MAY_WRITE};
use crate::records;
use crate::tables::{self, View};
use fabric::Errno;
use proto::layout::MAX_FILE_SIZE;
use proto::{Attr, Cred, Fid, SetAttr, StripeSpec, Timestamp};

/// chmod, chown, chgrp, truncate (the size the MDS records; the objects are
/// the caller's to truncate) and utimes, under POSIX rules. Explicit times
/// need the owner or root; times set to "now" (from this server's clock)
/// need the owner or write permission.
pub fn setattr(b: &mut Batch, cred: &Cred, fid: Fid, sa: &SetAttr) -> Result<Attr, MdsError> {
    let old = b.t.existing(fid)?;
    if let Some(uid) = sa.uid {
        perm::check_chown(cred, &old, uid)?;
    }
    if let Some(gid) = sa.gid {
        perm::check_chgrp(cred, &old, gid)?;
    }
    if sa.mode.is_some() {
        perm::check_owner(cred, &old)?;
    }
    if let Some(size) = sa.size {
        if old.is_dir() {
            return refuse(Errno::EISDIR);
        }
        if !old.is_reg() {
            return refuse(Errno::EINVAL);
        }
        if size > MAX_FILE_SIZE {
            return refuse(Errno::EFBIG);
        }
        perm::check(cred, &old, MAY_WRITE)?;
    }
    if sa.atime.is_some() || sa.mtime.is_some() || sa.ctime.is_some() {
        perm::check_owner(cred, &old)?;
    } else if (sa.atime_now || sa.mtime_now) && perm::check_owner(cred, &old).is_err() {
        // utimensat(UTIME_NOW) asks for write permission, not ownership.
        perm::check(cred, &old, MAY_WRITE)?;
    }

    let mut new = old.clone();
    if let Some(mode) = sa.mode {
        new.mode = perm::chmod_mode(cred, &old, mode, sa.gid.unwrap_or(old.gid));
    }
    let owner_changed = sa.uid.is_some_and(|u| u != old.uid) || sa.gid.is_some_and(|g| g != old.gid);
    new.uid = sa.uid.unwrap_or(old.uid);
    new.gid = sa.gid.unwrap_or(old.gid);
    if owner_changed && !old.is_dir() {
        new.mode = perm::kill_priv(new.mode);
    }
    let now = Timestamp::now();
    if let Some(size) = sa.size {
        new.size = size;
        new.mtime = now;
        if cred.uid != 0 {
            new.mode = perm::kill_priv(new.mode);
        }
    }
    new.atime = if sa.atime_now { now } else { sa.atime.unwrap_or(new.atime) };
    new.mtime = if sa.mtime_now { now } else { sa.mtime.unwrap_or(new.mtime) };
    new.ctime = sa.ctime.unwrap_or(now);
    b.put_inode(fid, &new)?;
    Ok(new.attr(fid))
}

/// Sets (or with `None` removes) a directory's default striping, which
/// new files and subdirectories in it inherit. Owner or root.
pub fn set_dir_stripe(
    b: &mut Batch,
    cred: &Cred,
    dir: Fid,
    spec: Option<&StripeSpec>,
) -> Result<(), MdsError> {
    let d = b.t.existing(dir)?;
    if !d.is_dir() {
        return refuse(Errno::ENOTDIR);
    }
    perm::check_owner(cred, &d)?;
    if let Some(s) = spec {
        s.validate().map_err(|_| MdsError::Posix(Errno::EINVAL))?;
    }
    b.put_dir_stripe(dir, spec)
}

/// Sets the file system's default striping. Root only; every field must be
/// given except the offset.
pub fn set_fs_stripe(b: &mut Batch, cred: &Cred, spec: &StripeSpec) -> Result<(), MdsError> {
    perm::check_root(cred)?;
    spec.validate().map_err(|_| MdsError::Posix(Errno::EINVAL))?;
    if spec.stripe_count.is_none() || spec.stripe_size.is_none() {
        return refuse(Errno::EINVAL);
    }
    b.put_meta(tables::META_FS_STRIPE, &records::encode_plain(spec))
}
