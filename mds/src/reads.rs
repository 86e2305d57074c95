//! Operations that only read: each runs in its own read transaction, on a
//! committed snapshot, without the committer.

use crate::error::{MdsError, refuse};
use crate::mdt::Mdt;
use crate::names;
use crate::namespace::{self, search_dir};
use crate::perm::{self, MAY_READ, MAY_WRITE};
use crate::records;
use crate::tables::{self, View};
use crate::xattr;
use fabric::Errno;
use proto::{Attr, Cred, Fid, InodeAttrs, Layout, StatFs, StripeObject, StripeSpec};
use redb::ReadableTable;

/// One directory entry from readdir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub fid: Fid,
    /// The `S_IFMT` bits of the entry's inode.
    pub kind: u32,
    /// Pass this to the next readdir to continue after this entry.
    pub cookie: u64,
}

/// A page of readdir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    /// No entry follows the last one (as of this snapshot).
    pub eof: bool,
}

/// What an open returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub attr: Attr,
    /// Regular files' layout.
    pub layout: Option<Layout>,
}

impl Mdt {
    /// `name` in directory `parent` (`.` and `..` included); needs search
    /// permission on `parent`.
    pub fn lookup(&self, cred: &Cred, parent: Fid, name: impl AsRef<[u8]>) -> Result<Attr, MdsError> {
        let name = name.as_ref();
        names::check(name)?;
        let t = self.read()?;
        let p = search_dir(&t, cred, parent)?;
        let fid = match name {
            b"." => return Ok(p.attr(parent)),
            b".." => p.parent,
            _ => t.dirent(parent, name)?.ok_or(MdsError::Posix(Errno::ENOENT))?.fid,
        };
        Ok(t.existing(fid)?.attr(fid))
    }

    pub fn getattr(&self, fid: Fid) -> Result<Attr, MdsError> {
        Ok(self.read()?.existing(fid)?.attr(fid))
    }

    /// The inode and layout of each of `fids`, read in one transaction;
    /// `None` for one that does not exist. Like `getattr`, by FID, without
    /// a permission check.
    pub fn getattr_many(&self, fids: &[Fid]) -> Result<Vec<Option<InodeAttrs>>, MdsError> {
        let t = self.read()?;
        let mut out = Vec::with_capacity(fids.len());
        for &fid in fids {
            out.push(match t.inode(fid)? {
                Some(i) => {
                    let layout = if i.kind() == libc::S_IFREG { t.layout(fid)? } else { None };
                    Some(InodeAttrs { attr: i.attr(fid), layout, xattrs: t.has_xattrs(fid)? })
                }
                None => None,
            });
        }
        Ok(out)
    }

    /// Entries of `dir` after `cookie` (0: from the start), at most `limit`.
    /// Cookies stay valid while entries come and go: an entry present for
    /// the whole scan is returned exactly once. `.` and `..` are not listed.
    pub fn readdir(&self, cred: &Cred, dir: Fid, cookie: u64, limit: usize) -> Result<DirPage, MdsError> {
        let t = self.read()?;
        let d = t.existing(dir)?;
        if !d.is_dir() {
            return refuse(Errno::ENOTDIR);
        }
        perm::check(cred, &d, MAY_READ)?;
        let mut found = t.entries_after(dir, cookie, limit.saturating_add(1))?;
        let eof = found.len() <= limit;
        found.truncate(limit);
        let entries = found
            .into_iter()
            .map(|(index, e)| DirEntry { name: e.name, fid: e.fid, kind: e.kind, cookie: index })
            .collect();
        Ok(DirPage { entries, eof })
    }

    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, MdsError> {
        let i = self.read()?.existing(fid)?;
        if i.kind() != libc::S_IFLNK {
            return refuse(Errno::EINVAL);
        }
        Ok(i.symlink)
    }

    /// The layout of a file (ENODATA for anything without one).
    pub fn layout(&self, fid: Fid) -> Result<Layout, MdsError> {
        let t = self.read()?;
        t.existing(fid)?;
        t.layout(fid)?.ok_or(MdsError::Posix(Errno::ENODATA))
    }

    /// A directory's own default striping, if it has one.
    pub fn dir_stripe(&self, dir: Fid) -> Result<Option<StripeSpec>, MdsError> {
        let t = self.read()?;
        if !t.existing(dir)?.is_dir() {
            return refuse(Errno::ENOTDIR);
        }
        t.dir_stripe(dir)
    }

    /// The striping a file created now in `dir` with request `req` gets.
    pub fn effective_stripe(&self, dir: Fid, req: &StripeSpec) -> Result<StripeSpec, MdsError> {
        namespace::resolve_stripe(&self.read()?, dir, req)
    }

    pub fn fs_stripe(&self) -> Result<StripeSpec, MdsError> {
        self.read()?.fs_stripe()
    }

    pub fn getxattr(&self, cred: &Cred, fid: Fid, name: &str) -> Result<Vec<u8>, MdsError> {
        let t = self.read()?;
        let i = t.existing(fid)?;
        xattr::check_read(cred, &i, name)?;
        t.xattr(fid, name)?.ok_or(MdsError::Posix(Errno::ENODATA))
    }

    pub fn listxattr(&self, cred: &Cred, fid: Fid) -> Result<Vec<String>, MdsError> {
        let t = self.read()?;
        t.existing(fid)?;
        Ok(t.xattr_names(fid)?.into_iter().filter(|n| xattr::listed(cred, n)).collect())
    }

    /// Opens `fid` for `flags` (`O_RDONLY`/`O_WRONLY`/`O_RDWR`, `O_TRUNC`
    /// checked for write permission; the truncate itself is a setattr).
    /// An unlinked file stays until its last `close`.
    pub fn open_file(&self, cred: &Cred, fid: Fid, flags: i32) -> Result<Opened, MdsError> {
        self.shared.opens.open_with(fid, || {
            let t = self.read()?;
            let i = t.existing(fid)?;
            if i.nlink == 0 {
                return refuse(Errno::ENOENT);
            }
            let mut mask = match flags & libc::O_ACCMODE {
                libc::O_RDONLY => MAY_READ,
                libc::O_WRONLY => MAY_WRITE,
                libc::O_RDWR => MAY_READ | MAY_WRITE,
                _ => return refuse(Errno::EINVAL),
            };
            if flags & libc::O_TRUNC != 0 {
                mask |= MAY_WRITE;
            }
            match i.kind() {
                libc::S_IFDIR if mask & MAY_WRITE != 0 => return refuse(Errno::EISDIR),
                libc::S_IFLNK => return refuse(Errno::ELOOP),
                _ => {}
            }
            perm::check(cred, &i, mask)?;
            Ok(Opened { attr: i.attr(fid), layout: t.layout(fid)? })
        })
    }

    /// How many opens `fid` has.
    pub fn open_count(&self, fid: Fid) -> u32 {
        self.shared.opens.count(fid)
    }

    /// Unlinked inodes kept because they are open.
    pub fn orphans(&self) -> Result<Vec<Fid>, MdsError> {
        let t = self.read()?;
        let mut out = Vec::new();
        for item in t.orphans.iter()? {
            out.push(records::key_fid(item?.0.value()));
        }
        Ok(out)
    }

    /// Up to `limit` objects still to destroy on their OSTs, oldest first.
    pub fn destroy_log_pending(&self, limit: usize) -> Result<Vec<(u64, StripeObject)>, MdsError> {
        let t = self.read()?;
        let mut out = Vec::new();
        for item in t.destroy_log.iter()?.take(limit) {
            let (k, v) = item?;
            out.push((k.value(), records::decode_plain("destroy log", v.value())?));
        }
        Ok(out)
    }

    /// The highest object id of `seq` on OST `ost_idx` that a committed
    /// layout ever took (0: none). Everything the OST holds above it was
    /// precreated and never used.
    pub fn last_used_object(&self, ost_idx: u32, seq: u64) -> Result<u32, MdsError> {
        Ok(self.read()?.ost_used.get((ost_idx, seq))?.map_or(0, |g| g.value()))
    }

    /// Objects waiting in the destroy log to be destroyed on their OSTs.
    pub fn destroy_log_len(&self) -> Result<u64, MdsError> {
        Ok(redb::ReadableTableMetadata::len(&self.read()?.destroy_log)?)
    }

    /// Inodes in use (`files - ffree`) and FIDs left (`ffree`); the blocks
    /// of the file system holding the MDT, as `lfs df` shows an MDT's (the
    /// file system's totals count the OSTs' only).
    pub fn statfs(&self) -> Result<StatFs, MdsError> {
        let disk =
            StatFs::of_path(self.path()).map_err(|e| MdsError::Store(format!("statvfs of the MDT: {e}")))?;
        let t = self.read()?;
        let used = t.meta_u64(tables::META_INODES)?;
        let next = t.meta_u64(tables::META_NEXT_OID)?;
        let free = (u32::MAX as u64 + 1).saturating_sub(next);
        Ok(StatFs {
            files: used + free,
            ffree: free,
            namelen: names::NAME_MAX as u32,
            bsize: disk.bsize,
            blocks: disk.blocks,
            bfree: disk.bfree,
            bavail: disk.bavail,
        })
    }
}
