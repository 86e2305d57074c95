//! Namespace changes: create, mkdir, mknod, symlink, link, unlink, rmdir,
//! rename. Each runs inside a committer batch, checks everything, then
//! writes.

use crate::batch::Batch;
use crate::error::{MdsError, refuse};
use crate::names;
use crate::perm::{self, MAY_EXEC, MAY_WRITE};
use crate::records::{Dirent, HsmState, Inode};
use crate::tables::View;
use fabric::Errno;
use proto::layout::DEFAULT_STRIPE_SIZE;
use proto::{Attr, Cred, Fid, Layout, StripeSpec, Timestamp};

/// Most links one inode may have (and subdirectories one directory).
pub const LINK_MAX: u32 = 65000;
/// Deepest tree a rename's ancestry walk accepts before calling it corrupt.
const MAX_DEPTH: usize = 1 << 16;

fn new_inode(mode: u32, uid: u32, gid: u32, now: Timestamp) -> Inode {
    Inode {
        mode,
        uid,
        gid,
        nlink: 1,
        size: 0,
        atime: now,
        mtime: now,
        ctime: now,
        rdev: 0,
        projid: 0,
        hsm_state: HsmState::Resident,
        archive_id: 0,
        parent: Fid::default(),
        next_index: 0,
        symlink: Vec::new(),
    }
}

/// The root directory a new MDT starts with.
pub fn root_inode(now: Timestamp) -> Inode {
    let mut r = new_inode(libc::S_IFDIR | 0o755, 0, 0, now);
    r.nlink = 2;
    r.parent = Fid::ROOT;
    r.next_index = 1;
    r
}

/// A directory the caller may search (lookup in).
pub fn search_dir(v: &impl View, cred: &Cred, dir: Fid) -> Result<Inode, MdsError> {
    let d = v.existing(dir)?;
    if !d.is_dir() {
        return refuse(Errno::ENOTDIR);
    }
    perm::check(cred, &d, MAY_EXEC)?;
    Ok(d)
}

/// Checks shared by everything that adds a name: the name, the directory,
/// that the name is free, and write permission. Returns the directory.
fn prepare_new_entry(b: &Batch, cred: &Cred, parent: Fid, name: &[u8]) -> Result<Inode, MdsError> {
    names::check(name)?;
    let p = search_dir(&b.t, cred, parent)?;
    if names::is_dot(name) || b.t.dirent(parent, name)?.is_some() {
        return refuse(Errno::EEXIST);
    }
    perm::check(cred, &p, MAY_WRITE)?;
    Ok(p)
}

/// Writes a new inode and its entry; the parent's times move.
fn link_new(
    b: &mut Batch,
    parent: Fid,
    mut p: Inode,
    name: &[u8],
    fid: Fid,
    inode: &Inode,
    now: Timestamp,
) -> Result<(), MdsError> {
    b.take_fid(fid)?;
    b.put_inode(fid, inode)?;
    b.add_entry(parent, &mut p, name, fid, inode.kind())?;
    if inode.is_dir() {
        p.nlink += 1;
    }
    p.mtime = now;
    p.ctime = now;
    b.put_inode(parent, &p)
}

/// The striping a new file gets: the request, then the directory's
/// default, then the file system's.
pub fn resolve_stripe(v: &impl View, parent: Fid, req: &StripeSpec) -> Result<StripeSpec, MdsError> {
    let dir = v.dir_stripe(parent)?.unwrap_or_default();
    Ok(req.inherit(&dir).inherit(&v.fs_stripe()?))
}

pub fn create(
    b: &mut Batch,
    cred: &Cred,
    parent: Fid,
    name: &[u8],
    mode: u32,
    stripe: &StripeSpec,
) -> Result<(Attr, Layout), MdsError> {
    let kind = mode & libc::S_IFMT;
    if kind != 0 && kind != libc::S_IFREG {
        return refuse(Errno::EINVAL);
    }
    stripe.validate().map_err(|_| MdsError::Posix(Errno::EINVAL))?;
    let p = prepare_new_entry(b, cred, parent, name)?;
    let fid = b.peek_fid()?;
    let spec = resolve_stripe(&b.t, parent, stripe)?;
    let objects = b.allocate(spec.stripe_count.unwrap_or(1), spec.stripe_offset)?;
    let layout =
        Layout::new_raid0(spec.stripe_size.unwrap_or(DEFAULT_STRIPE_SIZE), spec.stripe_offset, objects);

    let now = Timestamp::now();
    let (uid, gid, mode) = perm::new_owner(cred, &p, libc::S_IFREG | (mode & 0o7777));
    let inode = new_inode(mode, uid, gid, now);
    link_new(b, parent, p, name, fid, &inode, now)?;
    b.put_layout(fid, &layout)?;
    Ok((inode.attr(fid), layout))
}

pub fn mkdir(b: &mut Batch, cred: &Cred, parent: Fid, name: &[u8], mode: u32) -> Result<Attr, MdsError> {
    let p = prepare_new_entry(b, cred, parent, name)?;
    if p.nlink >= LINK_MAX {
        return refuse(Errno::EMLINK);
    }
    let fid = b.peek_fid()?;
    let inherited = b.t.dir_stripe(parent)?;

    let now = Timestamp::now();
    let (uid, gid, mode) = perm::new_owner(cred, &p, libc::S_IFDIR | (mode & 0o7777));
    let mut inode = new_inode(mode, uid, gid, now);
    inode.nlink = 2;
    inode.parent = parent;
    inode.next_index = 1;
    link_new(b, parent, p, name, fid, &inode, now)?;
    if let Some(spec) = inherited {
        b.put_dir_stripe(fid, Some(&spec))?;
    }
    Ok(inode.attr(fid))
}

/// A special file: fifo, socket, or (root only) a character or block
/// device. A regular file is created as `create` with default striping.
pub fn mknod(
    b: &mut Batch,
    cred: &Cred,
    parent: Fid,
    name: &[u8],
    mode: u32,
    rdev: u64,
) -> Result<Attr, MdsError> {
    let kind = mode & libc::S_IFMT;
    match kind {
        libc::S_IFREG | 0 => return Ok(create(b, cred, parent, name, mode, &StripeSpec::default())?.0),
        libc::S_IFIFO | libc::S_IFSOCK => {}
        libc::S_IFCHR | libc::S_IFBLK => perm::check_root(cred)?,
        _ => return refuse(Errno::EINVAL),
    }
    let p = prepare_new_entry(b, cred, parent, name)?;
    let fid = b.peek_fid()?;

    let now = Timestamp::now();
    let (uid, gid, mode) = perm::new_owner(cred, &p, mode);
    let mut inode = new_inode(mode, uid, gid, now);
    if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
        inode.rdev = rdev;
    }
    link_new(b, parent, p, name, fid, &inode, now)?;
    Ok(inode.attr(fid))
}

pub fn symlink(
    b: &mut Batch,
    cred: &Cred,
    parent: Fid,
    name: &[u8],
    target: &[u8],
) -> Result<Attr, MdsError> {
    if target.is_empty() {
        return refuse(Errno::ENOENT);
    }
    if target.len() > names::SYMLINK_MAX {
        return refuse(Errno::ENAMETOOLONG);
    }
    if target.contains(&0) {
        return refuse(Errno::EINVAL);
    }
    let p = prepare_new_entry(b, cred, parent, name)?;
    let fid = b.peek_fid()?;

    let now = Timestamp::now();
    let (uid, gid, mode) = perm::new_owner(cred, &p, libc::S_IFLNK | 0o777);
    let mut inode = new_inode(mode, uid, gid, now);
    inode.symlink = target.to_vec();
    link_new(b, parent, p, name, fid, &inode, now)?;
    Ok(inode.attr(fid))
}

pub fn link(b: &mut Batch, cred: &Cred, fid: Fid, parent: Fid, name: &[u8]) -> Result<Attr, MdsError> {
    let mut inode = b.t.existing(fid)?;
    if inode.is_dir() {
        return refuse(Errno::EPERM);
    }
    let mut p = prepare_new_entry(b, cred, parent, name)?;
    if inode.nlink == 0 {
        return refuse(Errno::ENOENT);
    }
    if inode.nlink >= LINK_MAX {
        return refuse(Errno::EMLINK);
    }

    let now = Timestamp::now();
    inode.nlink += 1;
    inode.ctime = now;
    b.put_inode(fid, &inode)?;
    b.add_entry(parent, &mut p, name, fid, inode.kind())?;
    p.mtime = now;
    p.ctime = now;
    b.put_inode(parent, &p)?;
    Ok(inode.attr(fid))
}

/// Looks up an existing entry for removal and checks the caller may remove
/// it: write on the directory, and the sticky rule.
fn prepare_removal(
    b: &Batch,
    cred: &Cred,
    parent: Fid,
    name: &[u8],
) -> Result<(Inode, Dirent, Inode), MdsError> {
    let p = search_dir(&b.t, cred, parent)?;
    let d = b.t.dirent(parent, name)?.ok_or(MdsError::Posix(Errno::ENOENT))?;
    perm::check(cred, &p, MAY_WRITE)?;
    let child = b.t.target_of(&d)?;
    perm::check_sticky(cred, &p, &child)?;
    Ok((p, d, child))
}

pub fn unlink(b: &mut Batch, cred: &Cred, parent: Fid, name: &[u8]) -> Result<(), MdsError> {
    names::check(name)?;
    if names::is_dot(name) {
        return refuse(Errno::EISDIR);
    }
    let (mut p, d, child) = prepare_removal(b, cred, parent, name)?;
    if child.is_dir() {
        return refuse(Errno::EISDIR);
    }

    let now = Timestamp::now();
    b.remove_entry(parent, name, &d)?;
    p.mtime = now;
    p.ctime = now;
    b.put_inode(parent, &p)?;
    b.drop_link(d.fid, child, now)
}

pub fn rmdir(b: &mut Batch, cred: &Cred, parent: Fid, name: &[u8]) -> Result<(), MdsError> {
    names::check(name)?;
    match name {
        b"." => return refuse(Errno::EINVAL),
        b".." => return refuse(Errno::ENOTEMPTY),
        _ => {}
    }
    let (mut p, d, child) = prepare_removal(b, cred, parent, name)?;
    if !child.is_dir() {
        return refuse(Errno::ENOTDIR);
    }
    if !b.t.dir_is_empty(d.fid)? {
        return refuse(Errno::ENOTEMPTY);
    }

    let now = Timestamp::now();
    b.remove_entry(parent, name, &d)?;
    p.nlink = p.nlink.saturating_sub(1);
    p.mtime = now;
    p.ctime = now;
    b.put_inode(parent, &p)?;
    b.destroy(d.fid)
}

/// Whether `dir` is `ancestor` or lies below it.
fn is_within(v: &impl View, dir: Fid, ancestor: Fid) -> Result<bool, MdsError> {
    let mut cur = dir;
    for _ in 0..MAX_DEPTH {
        if cur == ancestor {
            return Ok(true);
        }
        if cur == Fid::ROOT {
            return Ok(false);
        }
        cur = v.inode(cur)?.ok_or_else(|| MdsError::Corrupt(format!("directory {cur} has no inode")))?.parent;
    }
    Err(MdsError::Corrupt(format!("directory {dir} is not below the root")))
}

pub fn rename(
    b: &mut Batch,
    cred: &Cred,
    src_parent: Fid,
    src_name: &[u8],
    dst_parent: Fid,
    dst_name: &[u8],
) -> Result<(), MdsError> {
    names::check(src_name)?;
    names::check(dst_name)?;
    if names::is_dot(src_name) || names::is_dot(dst_name) {
        return refuse(Errno::EBUSY);
    }
    let same_dir = src_parent == dst_parent;
    let mut sp = search_dir(&b.t, cred, src_parent)?;
    let mut dp = if same_dir { None } else { Some(search_dir(&b.t, cred, dst_parent)?) };
    let sd = b.t.dirent(src_parent, src_name)?.ok_or(MdsError::Posix(Errno::ENOENT))?;
    let mut child = b.t.target_of(&sd)?;
    let moving_dir = child.is_dir();
    if moving_dir && is_within(&b.t, dst_parent, sd.fid)? {
        return refuse(Errno::EINVAL);
    }
    perm::check(cred, &sp, MAY_WRITE)?;
    if let Some(dp) = &dp {
        perm::check(cred, dp, MAY_WRITE)?;
    }
    perm::check_sticky(cred, &sp, &child)?;
    if moving_dir && !same_dir {
        // Its `..` changes.
        perm::check(cred, &child, MAY_WRITE)?;
    }
    let target = match b.t.dirent(dst_parent, dst_name)? {
        Some(td) if td.fid == sd.fid => return Ok(()), // two names of one inode: POSIX says do nothing
        Some(td) => {
            let ti = b.t.target_of(&td)?;
            match (moving_dir, ti.is_dir()) {
                (true, false) => return refuse(Errno::ENOTDIR),
                (false, true) => return refuse(Errno::EISDIR),
                (true, true) if !b.t.dir_is_empty(td.fid)? => return refuse(Errno::ENOTEMPTY),
                _ => {}
            }
            perm::check_sticky(cred, dp.as_ref().unwrap_or(&sp), &ti)?;
            Some((td, ti))
        }
        None => {
            if moving_dir && !same_dir && dp.as_ref().is_some_and(|d| d.nlink >= LINK_MAX) {
                return refuse(Errno::EMLINK);
            }
            None
        }
    };

    let now = Timestamp::now();
    b.remove_entry(src_parent, src_name, &sd)?;
    let dpi = dp.as_mut().unwrap_or(&mut sp);
    match &target {
        Some((td, ti)) => {
            b.replace_entry(
                dst_parent,
                dst_name,
                td,
                Dirent { fid: sd.fid, kind: sd.kind, index: td.index },
            )?;
            if ti.is_dir() {
                dpi.nlink = dpi.nlink.saturating_sub(1);
                b.destroy(td.fid)?;
            } else {
                b.drop_link(td.fid, ti.clone(), now)?;
            }
        }
        None => b.add_entry(dst_parent, dpi, dst_name, sd.fid, sd.kind)?,
    }
    if moving_dir && !same_dir {
        dpi.nlink += 1;
    }
    if moving_dir && !same_dir {
        sp.nlink = sp.nlink.saturating_sub(1);
        child.parent = dst_parent;
    }
    child.ctime = now;
    b.put_inode(sd.fid, &child)?;
    sp.mtime = now;
    sp.ctime = now;
    b.put_inode(src_parent, &sp)?;
    if let Some(mut dp) = dp {
        dp.mtime = now;
        dp.ctime = now;
        b.put_inode(dst_parent, &dp)?;
    }
    Ok(())
}
