//! Namespace operations of the mount: names, attributes, links,
//! directories, extended attributes, and space. Each is one or a few MDS
//! calls made with the calling process's credentials.

use super::convert::{RenameMode, access_allowed, file_type, name_str, rename_mode};
use super::cred::Caller;
use super::handles::DirHandle;
use super::inodes::ROOT_INO;
use super::mounted::{Mounted, OrErrno, R};
use crate::client::attr_reply;
use fabric::Errno;
use fuser::{FileAttr, FileType};
use proto::{MdsReply, MdsRequest, SetAttr, StatFs};
use std::ffi::OsStr;

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
        }
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
        self.flush_inode(ino).await?;
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
        let attr = self.client.mkdir(&caller.cred(), pfid, name, mode & 0o7777).await.or_errno()?;
        self.entry(parent, attr, None).await
    }

    pub async fn unlink(&self, caller: Caller, parent: u64, name: &OsStr) -> R<()> {
        let pfid = self.inodes.fid(parent)?;
        self.client.unlink(&caller.cred(), pfid, name_str(name)?).await.or_errno()
    }

    pub async fn rmdir(&self, caller: Caller, parent: u64, name: &OsStr) -> R<()> {
        let pfid = self.inodes.fid(parent)?;
        self.client.rmdir(&caller.cred(), pfid, name_str(name)?).await.or_errno()
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
        let fid = self.inodes.fid(ino)?;
        let op = MdsRequest::Setxattr { fid, name: name_str(name)?.to_string(), value, flags: flags as u32 };
        self.client.md_as(caller.cred(), op).await.or_errno().map(|_| ())
    }

    pub async fn removexattr(&self, caller: Caller, ino: u64, name: &OsStr) -> R<()> {
        let fid = self.inodes.fid(ino)?;
        let op = MdsRequest::Removexattr { fid, name: name_str(name)?.to_string() };
        self.client.md_as(caller.cred(), op).await.or_errno().map(|_| ())
    }

    /// Opens a directory; the MDS checks that the caller may read it.
    pub async fn opendir(&self, caller: Caller, ino: u64) -> R<u64> {
        let fid = self.inodes.fid(ino)?;
        self.client
            .md_as(caller.cred(), MdsRequest::Open { fid, flags: libc::O_RDONLY as u32 })
            .await
            .or_errno()?;
        Ok(self.handles.add_dir(DirHandle { ino, fid, listing: tokio::sync::Mutex::new(Vec::new()) }))
    }

    /// Entries from position `offset` (0 is the start, which reads the
    /// directory afresh), at most `max`.
    pub async fn readdir(&self, caller: Caller, fh: u64, offset: u64, max: usize) -> R<Vec<Listed>> {
        let h = self.handles.dir(fh)?;
        let mut listing = h.listing.lock().await;
        if offset == 0 {
            *listing = self.client.readdir_all(&caller.cred(), h.fid).await.or_errno()?;
        }
        let parent = if h.ino == ROOT_INO { ROOT_INO } else { self.inodes.parent(h.ino) };
        let dots = [(h.ino, ".".to_string()), (parent, "..".to_string())];
        let mut out = Vec::new();
        let mut pos = offset;
        while out.len() < max {
            let (ino, kind, name) = match pos {
                0 | 1 => (dots[pos as usize].0, FileType::Directory, dots[pos as usize].1.clone()),
                _ => match listing.get((pos - 2) as usize) {
                    Some(e) => (
                        self.inodes.ino_of(e.fid),
                        file_type(e.kind).unwrap_or(FileType::RegularFile),
                        e.name.clone(),
                    ),
                    None => break,
                },
            };
            pos += 1;
            out.push(Listed { ino, next: pos, kind, name });
        }
        Ok(out)
    }

    pub async fn releasedir(&self, caller: Caller, fh: u64) -> R<()> {
        let h = self.handles.remove_dir(fh).ok_or(Errno::EBADF)?;
        self.client.md_as(caller.cred(), MdsRequest::Close { fid: h.fid }).await.or_errno().map(|_| ())
    }
}
