//! Namespace operations of the mount: names, attributes, links,
//! directories, extended attributes, and space. Each is one or a few MDS
//! calls made with the calling process's credentials.

use super::convert::{RenameMode, access_allowed, file_type, name_str, rename_mode};
use super::cred::Caller;
use super::handles::{DirHandle, Listing};
use super::inodes::ROOT_INO;
use super::mounted::{Mounted, OrErrno, R};
use crate::client::attr_reply;
use fabric::Errno;
use fuser::{FileAttr, FileType};
use proto::{Attr, Fid, Layout, MdsReply, MdsRequest, SetAttr, StatFs};
use std::ffi::OsStr;
use std::time::Duration;

/// Entries whose attributes one `readdirplus` reads ahead.
const STATAHEAD: usize = 128;

/// One line of a `readdirplus` listing: the entry, and its inode's
/// attributes for the kernel to keep for `ttl`.
#[derive(Debug, Clone)]
pub(crate) struct ListedPlus {
    pub listed: Listed,
    /// What to remember once the kernel took the entry (nothing for `.`
    /// and `..`, which it does not take).
    pub took: Option<Took>,
    pub attr: FileAttr,
    pub ttl: Duration,
}

/// An inode the kernel takes from a `readdirplus` reply.
#[derive(Debug, Clone)]
pub(crate) struct Took {
    pub fid: Fid,
    pub layout: Option<Layout>,
    /// Whether it has any extended attribute.
    pub xattrs: bool,
}

/// One line of a directory listing as the kernel wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub ino: u64,
    /// Where the next `readdir` continues after this entry.
    pub next: u64,
    pub kind: FileType,
    pub name: String,
}

impl Mounted {
    pub async fn lookup(&self, caller: Caller, parent: u64, name: &OsStr) -> R<FileAttr> {
        let name = name_str(name)?;
        let pfid = self.inodes.fid(parent)?;
        let (attr, layout) = self.client.lookup(&caller.cred(), pfid, name).await.or_errno()?;
        self.entry(parent, attr, layout.as_ref()).await
    }

    pub fn forget(&self, ino: u64, n: u64) {
        if self.inodes.forget(ino, n) {
            self.objects.forget(ino);
            self.dirs.forget(ino);
            self.no_xattrs.forget(ino);
        }
    }

    /// A directory's attributes as the MDS answered this mount's change
    /// in it a moment ago (see `fresh`): no RPC, and no task to wake.
    pub fn fresh_dir_attr(&self, ino: u64) -> Option<R<FileAttr>> {
        self.dirs.take(ino, self.opts.attr_ttl).map(|a| self.fattr(ino, &a))
    }

    /// Whether a listing just found `ino` without extended attributes.
    pub fn known_without_xattrs(&self, ino: u64) -> bool {
        self.no_xattrs.get(ino, self.opts.attr_ttl).is_some()
    }

    pub async fn getattr(&self, caller: Caller, ino: u64) -> R<FileAttr> {
        let fid = self.inodes.fid(ino)?;
        let (attr, layout) = self.client.getattr_md(&caller.cred(), fid).await.or_errno()?;
        let attr = self.with_object_attrs(ino, attr, layout.as_ref()).await?;
        self.fattr(ino, &attr)
    }

    pub async fn setattr(&self, caller: Caller, ino: u64, set: SetAttr) -> R<FileAttr> {
        let fid = self.inodes.fid(ino)?;
        // Bytes gathered before a truncate must land before it, not after,
        // and before a utimens, or their writing would move the time again.
        self.send_inode(ino).await;
        self.dirs.forget(ino);
        let cred = caller.cred();
        let (mut attr, layout) = self.client.setattr(&cred, fid, set).await.or_errno()?;
        if let Some(l) = &layout
            && set.sets_times()
        {
            // "Now" is the time the MDS just stored, from its clock.
            let atime = set.atime.or(set.atime_now.then_some(attr.atime));
            let mtime = set.mtime.or(set.mtime_now.then_some(attr.mtime));
            self.client.set_object_times(l, atime, mtime).await.or_errno()?;
            attr = self.client.getattr(&cred, fid).await.or_errno()?.0;
        }
        self.fattr(ino, &attr)
    }

    pub async fn readlink(&self, caller: Caller, ino: u64) -> R<Vec<u8>> {
        let fid = self.inodes.fid(ino)?;
        match self.client.md_as(caller.cred(), MdsRequest::Readlink { fid }).await.or_errno()? {
            MdsReply::Link { target } => Ok(target.into_bytes()),
            _ => Err(Errno::EPROTO),
        }
    }

    pub async fn mknod(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> R<FileAttr> {
        let name = name_str(name)?;
        let pfid = self.inodes.fid(parent)?;
        self.dirs.forget(parent);
        let cred = caller.cred();
        let (attr, layout) = if mode & libc::S_IFMT == libc::S_IFREG || mode & libc::S_IFMT == 0 {
            // A regular file needs objects, which only a create allocates.
            let mode = libc::S_IFREG | (mode & 0o7777);
            self.client.create(&cred, pfid, name, mode, self.opts.stripe, true).await.or_errno()?
        } else {
            let op = MdsRequest::Mknod { parent: pfid, name: name.to_string(), mode, rdev: u64::from(rdev) };
            attr_reply(self.client.md_as(cred, op).await.or_errno()?).or_errno()?
        };
        self.entry(parent, attr, layout.as_ref()).await
    }

    pub async fn mkdir(&self, caller: Caller, parent: u64, name: &OsStr, mode: u32) -> R<FileAttr> {
        let name = name_str(name)?;
        let pfid = self.inodes.fid(parent)?;
        self.dirs.forget(parent);
        let attr = self.client.mkdir(&caller.cred(), pfid, name, mode & 0o7777).await.or_errno()?;
        self.entry(parent, attr, None).await
    }

    pub async fn unlink(&self, caller: Caller, parent: u64, name: &OsStr) -> R<()> {
        let pfid = self.inodes.fid(parent)?;
        self.dirs.forget(parent);
        let after = self.client.unlink(&caller.cred(), pfid, name_str(name)?).await.or_errno()?;
        self.dirs.note(parent, after);
        Ok(())
    }

    pub async fn rmdir(&self, caller: Caller, parent: u64, name: &OsStr) -> R<()> {
        let pfid = self.inodes.fid(parent)?;
        self.dirs.forget(parent);
        let after = self.client.rmdir(&caller.cred(), pfid, name_str(name)?).await.or_errno()?;
        self.dirs.note(parent, after);
        Ok(())
    }

    pub async fn symlink(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        target: &std::path::Path,
    ) -> R<FileAttr> {
        let name = name_str(name)?;
        let target = target.to_str().ok_or(Errno::EINVAL)?;
        let pfid = self.inodes.fid(parent)?;
        self.dirs.forget(parent);
        let op = MdsRequest::Symlink { parent: pfid, name: name.to_string(), target: target.to_string() };
        let (attr, _) = attr_reply(self.client.md_as(caller.cred(), op).await.or_errno()?).or_errno()?;
        self.entry(parent, attr, None).await
    }

    pub async fn rename(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> R<()> {
        let mode = rename_mode(flags)?;
        let (name, new_name) = (name_str(name)?, name_str(new_name)?);
        let (pfid, npfid) = (self.inodes.fid(parent)?, self.inodes.fid(new_parent)?);
        self.dirs.forget(parent);
        self.dirs.forget(new_parent);
        let cred = caller.cred();
        if mode == RenameMode::NoReplace {
            // Checked here, not by the MDS: another client could create the
            // target between the check and the rename.
            match self.client.lookup(&cred, npfid, new_name).await {
                Ok(_) => return Err(Errno::EEXIST),
                Err(e) if e.errno() == Errno::ENOENT => {}
                Err(e) => return Err(e.errno()),
            }
        }
        self.client.rename(&cred, pfid, name, npfid, new_name).await.or_errno()
    }

    pub async fn link(&self, caller: Caller, ino: u64, new_parent: u64, new_name: &OsStr) -> R<FileAttr> {
        let fid = self.inodes.fid(ino)?;
        let pfid = self.inodes.fid(new_parent)?;
        self.dirs.forget(new_parent);
        let op = MdsRequest::Link { fid, parent: pfid, name: name_str(new_name)?.to_string() };
        let (attr, layout) = attr_reply(self.client.md_as(caller.cred(), op).await.or_errno()?).or_errno()?;
        self.entry(new_parent, attr, layout.as_ref()).await
    }

    pub async fn statfs(&self) -> R<StatFs> {
        self.client.statfs().await.or_errno()
    }

    pub async fn access(&self, caller: Caller, ino: u64, mask: i32) -> R<()> {
        let fid = self.inodes.fid(ino)?;
        let cred = caller.cred();
        let (attr, _) = self.client.getattr_md(&cred, fid).await.or_errno()?;
        if access_allowed(&cred, &attr, mask) { Ok(()) } else { Err(Errno::EACCES) }
    }

    pub async fn getxattr(&self, caller: Caller, ino: u64, name: &OsStr) -> R<Vec<u8>> {
        let fid = self.inodes.fid(ino)?;
        let op = MdsRequest::Getxattr { fid, name: name_str(name)?.to_string() };
        match self.client.md_as(caller.cred(), op).await.or_errno()? {
            MdsReply::Xattr { value } => Ok(value),
            _ => Err(Errno::EPROTO),
        }
    }

    /// The names, each ended by a NUL, as listxattr(2) returns them.
    pub async fn listxattr(&self, caller: Caller, ino: u64) -> R<Vec<u8>> {
        let fid = self.inodes.fid(ino)?;
        match self.client.md_as(caller.cred(), MdsRequest::Listxattr { fid }).await.or_errno()? {
            MdsReply::XattrNames { names } => {
                let mut out = Vec::new();
                for n in names {
                    out.extend_from_slice(n.as_bytes());
                    out.push(0);
                }
                Ok(out)
            }
            _ => Err(Errno::EPROTO),
        }
    }

    pub async fn setxattr(
        &self,
        caller: Caller,
        ino: u64,
        name: &OsStr,
        value: Vec<u8>,
        flags: i32,
    ) -> R<()> {
        self.no_xattrs.forget(ino);
        let fid = self.inodes.fid(ino)?;
        let op = MdsRequest::Setxattr { fid, name: name_str(name)?.to_string(), value, flags: flags as u32 };
        self.client.md_as(caller.cred(), op).await.or_errno().map(|_| ())
    }

    pub async fn removexattr(&self, caller: Caller, ino: u64, name: &OsStr) -> R<()> {
        self.no_xattrs.forget(ino);
        let fid = self.inodes.fid(ino)?;
        let op = MdsRequest::Removexattr { fid, name: name_str(name)?.to_string() };
        self.client.md_as(caller.cred(), op).await.or_errno().map(|_| ())
    }

    /// Opens a directory, with no RPC (as Lustre's opendir): the kernel
    /// has checked the caller may read it (default_permissions), and the
    /// MDS checks again at every readdir.
    pub fn opendir(&self, ino: u64) -> R<u64> {
        let fid = self.inodes.fid(ino)?;
        Ok(self.handles.add_dir(DirHandle { ino, fid, listing: Default::default() }))
    }

    /// Entries from position `offset` (0 is the start, which reads the
    /// directory afresh), at most `max`.
    pub async fn readdir(&self, caller: Caller, fh: u64, offset: u64, max: usize) -> R<Vec<Listed>> {
        let h = self.handles.dir(fh)?;
        let mut listing = h.listing.lock().await;
        if offset == 0 {
            self.reread(&caller, &h, &mut listing).await?;
        }
        let mut out = Vec::new();
        let mut pos = offset;
        while out.len() < max {
            let Some((ino, kind, name)) = self.line(&h, &listing, pos) else { break };
            pos += 1;
            out.push(Listed { ino, next: pos, kind, name });
        }
        Ok(out)
    }

    /// `readdir` with each entry's attributes, as `ls -l` wants them
    /// (FUSE's readdirplus): read ahead `STATAHEAD` entries at a time, the
    /// MDS's part in one call and the objects' in parallel (Lustre's
    /// statahead). The kernel keeps an entry for `ttl`: not at all where
    /// the OSTs could not say the size. (Who may search the directory the
    /// kernel checks against its mode: the mount has default_permissions.)
    pub async fn readdirplus(&self, caller: Caller, fh: u64, offset: u64, max: usize) -> R<Vec<ListedPlus>> {
        let h = self.handles.dir(fh)?;
        let mut listing = h.listing.lock().await;
        if offset == 0 {
            self.reread(&caller, &h, &mut listing).await?;
        }
        let first = offset.saturating_sub(2) as usize;
        // What the kernel has taken no longer needs its attributes.
        listing.ahead.retain(|i, _| *i >= first);
        self.read_ahead(&caller, &mut listing, first).await?;
        let trusted = self.opts.entry_ttl.min(self.opts.attr_ttl);
        let mut out = Vec::new();
        let mut pos = offset;
        while out.len() < max {
            let Some((ino, kind, name)) = self.line(&h, &listing, pos) else { break };
            pos += 1;
            let listed = Listed { ino, next: pos, kind, name };
            if pos <= 2 {
                // The kernel takes nothing from the attributes of `.` and
                // `..` but their inode number and type.
                let dir = Attr { fid: h.fid, mode: libc::S_IFDIR, nlink: 2, ..Attr::default() };
                let attr = self.fattr(ino, &dir)?;
                out.push(ListedPlus { listed, took: None, attr, ttl: Duration::ZERO });
                continue;
            }
            let i = (pos - 3) as usize;
            match listing.ahead.get(&i) {
                // Past what was read ahead: the next call reads on.
                None => break,
                // Gone since the listing was read.
                Some(None) => continue,
                Some(Some(st)) => {
                    let attr = self.fattr(ino, &st.attr)?;
                    let held =
                        st.layout.as_ref().is_none_or(|l| self.client.attrs_held(l.objects().map(|o| o.fid)));
                    let ttl = if st.sizes_known && held { trusted } else { Duration::ZERO };
                    let took = Some(Took { fid: st.attr.fid, layout: st.layout.clone(), xattrs: st.xattrs });
                    out.push(ListedPlus { listed, took, attr, ttl });
                }
            }
        }
        Ok(out)
    }

    /// The kernel took an entry of directory `parent` from a
    /// `readdirplus` reply, as from a lookup.
    pub fn took(&self, parent: u64, t: &Took) -> R<()> {
        let ino = self.inodes.remember(t.fid, parent)?;
        if let Some(l) = &t.layout {
            self.objects.note(ino, l);
        }
        if t.xattrs {
            self.no_xattrs.forget(ino);
        } else {
            self.no_xattrs.note(ino, ());
        }
        Ok(())
    }

    /// Reads the directory afresh for a listing from the start.
    async fn reread(&self, caller: &Caller, h: &DirHandle, listing: &mut Listing) -> R<()> {
        listing.entries = self.client.readdir_all(&caller.cred(), h.fid).await.or_errno()?;
        listing.ahead.clear();
        Ok(())
    }

    /// Position `pos` of a listing: `.`, `..`, then its entries.
    fn line(&self, h: &DirHandle, listing: &Listing, pos: u64) -> Option<(u64, FileType, String)> {
        match pos {
            0 => Some((h.ino, FileType::Directory, ".".to_string())),
            1 => {
                let parent = if h.ino == ROOT_INO { ROOT_INO } else { self.inodes.parent(h.ino) };
                Some((parent, FileType::Directory, "..".to_string()))
            }
            _ => listing.entries.get((pos - 2) as usize).map(|e| {
                (
                    self.inodes.ino_of(e.fid),
                    file_type(e.kind).unwrap_or(FileType::RegularFile),
                    e.name.clone(),
                )
            }),
        }
    }

    /// Makes sure the attributes of entries `first..first + STATAHEAD` are
    /// read. This mount's gathered writes to them go out first, so the
    /// sizes include them.
    async fn read_ahead(&self, caller: &Caller, listing: &mut Listing, first: usize) -> R<()> {
        let end = (first + STATAHEAD).min(listing.entries.len());
        let missing: Vec<usize> = (first..end).filter(|i| !listing.ahead.contains_key(i)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let fids: Vec<Fid> = missing.iter().map(|&i| listing.entries[i].fid).collect();
        for fid in &fids {
            self.send_inode(self.inodes.ino_of(*fid)).await;
        }
        let stats = self.client.getattr_many(&caller.cred(), &fids).await.or_errno()?;
        listing.ahead.extend(missing.into_iter().zip(stats));
        Ok(())
    }

    pub fn releasedir(&self, fh: u64) -> R<()> {
        self.handles.remove_dir(fh).map(|_| ()).ok_or(Errno::EBADF)
    }
}
