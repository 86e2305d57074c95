//! File data through the mount: open, create, read, write, flush, fsync,
//! release. The kernel caches no file data (direct I/O): reads go through
//! the library's readahead. Small writes of one open file are gathered
//! under PW locks into RPC-size extents and sent on flush, fsync, close, a
//! non-contiguous write, a full buffer, before any read, stat or truncate
//! of that file on this mount, and when another client needs the range.

use super::convert::name_str;
use super::cred::Caller;
use super::handles::FileHandle;
use super::mounted::{Mounted, OrErrno, R};
use crate::client::attr_reply;
use crate::gather::gather_capacity;
use crate::io::{ReadBytes, ReadStart};
use crate::write_back::WriteBack;
use fabric::Errno;
use fuser::FileAttr;
use proto::layout::MAX_FILE_SIZE;
use proto::{Layout, LockMode, MdsRequest, SetAttr};
use std::ffi::OsStr;
use std::sync::Arc;

impl Mounted {
    fn gather_cap(&self, layout: Option<&Layout>) -> u64 {
        gather_capacity(self.opts.write_gather, self.client.tunables().rpc_size, layout)
    }

    fn new_handle(
        &self,
        ino: u64,
        attr_fid: proto::Fid,
        flags: i32,
        layout: Option<Layout>,
        mds_open: bool,
    ) -> u64 {
        let cap = self.gather_cap(layout.as_ref());
        let shared = self.handles.shared(ino);
        let dirty = layout.as_ref().map(|l| WriteBack::new(self.client.clone(), Some(l.clone()), cap));
        self.handles.add_file(|| FileHandle { ino, fid: attr_fid, flags, layout, mds_open, shared, dirty })
    }

    /// Opens `ino`; the MDS checks the access mode against the caller and
    /// hands out the layout.
    pub async fn open(&self, caller: Caller, ino: u64, flags: i32) -> R<u64> {
        let fid = self.inodes.fid(ino)?;
        let op = MdsRequest::Open { fid, flags: flags as u32 };
        let (attr, layout) = attr_reply(self.client.md_as(caller.cred(), op).await.or_errno()?).or_errno()?;
        if attr.is_dir() {
            return Err(Errno::EISDIR);
        }
        Ok(self.new_handle(ino, fid, flags, layout, true))
    }

    /// Creates and opens a regular file in one MDS call. A file this call
    /// made and opened for writing gets PW locks over its whole objects at
    /// once: their grants carry its attributes, as a lookup's PR locks do,
    /// and its first writes gather under them without an enqueue of their
    /// own.
    pub async fn create(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> R<(FileAttr, u64)> {
        let name = name_str(name)?;
        let pfid = self.inodes.fid(parent)?;
        let cred = caller.cred();
        let mode = libc::S_IFREG | (mode & 0o7777);
        let exclusive = flags & libc::O_EXCL != 0;
        let open = (flags & !(libc::O_TRUNC | libc::O_CREAT | libc::O_EXCL)) as u32;
        self.dirs.forget(parent);
        let c = self
            .client
            .create_open(&cred, pfid, name, mode, self.opts.stripe, exclusive, open)
            .await
            .or_errno()?;
        self.dirs.note(parent, c.parent);
        let fid = c.attr.fid;
        let made = async {
            let mut attr = c.attr;
            if let Some(l) = &c.layout {
                if c.new && flags & libc::O_ACCMODE != libc::O_RDONLY {
                    self.client.hold_whole(l, LockMode::PW).await.or_errno()?;
                } else if !c.new && flags & libc::O_TRUNC != 0 {
                    // Another client made the name since the kernel looked
                    // it up: this open(O_TRUNC) empties what it found.
                    let set = SetAttr { size: Some(0), ..SetAttr::default() };
                    attr = self.client.setattr(&cred, fid, set).await.or_errno()?.0;
                }
            }
            self.entry(parent, attr, c.layout.as_ref()).await
        }
        .await;
        match made {
            Ok(fa) => Ok((fa, self.new_handle(fa.ino.0, fid, flags, c.layout, true))),
            Err(e) => {
                // No release follows a failed create: the open goes here.
                let _ = self.client.md_as(cred, MdsRequest::Close { fid }).await;
                Err(e)
            }
        }
    }

    /// Data for one FUSE read: a 1 MiB read of a 1 MiB-aligned range is
    /// usually one readahead block, answered from it without a copy.
    pub async fn read(&self, fh: u64, off: u64, size: u32) -> R<ReadBytes> {
        let h = self.handles.file(fh)?;
        self.send_inode(h.ino).await;
        let (Some(layout), Some(len)) = (&h.layout, readable_len(off, size)) else {
            return Ok(ReadBytes::empty());
        };
        self.client.pread_shared(layout, off, len).await.or_errno()
    }

    /// A read as far as it goes without waiting (see
    /// `Client::pread_start`), for the FUSE thread to answer itself. None
    /// when this mount has writes of the file to send first: `read` it.
    pub fn read_start(&self, fh: u64, off: u64, size: u32) -> R<Option<ReadStart>> {
        let h = self.handles.file(fh)?;
        let clean = |o: &Arc<FileHandle>| o.dirty.as_ref().is_none_or(|w| w.is_clean());
        if !self.handles.files_of(h.ino).iter().all(clean) {
            return Ok(None);
        }
        let (Some(layout), Some(len)) = (&h.layout, readable_len(off, size)) else {
            return Ok(Some(ReadStart::Done(ReadBytes::empty())));
        };
        self.client.pread_start(layout, off, len).map(Some).or_errno()
    }

    /// Takes a write without waiting when the open file can gather it
    /// under PW locks this client holds (see `WriteBack::try_gather`);
    /// false: `write` it.
    pub fn write_now(&self, fh: u64, off: u64, data: &[u8]) -> bool {
        let Ok(h) = self.handles.file(fh) else { return false };
        if h.appends() || h.sync_writes() || u32::try_from(data.len()).is_err() {
            return false;
        }
        h.dirty.as_ref().is_some_and(|w| w.try_gather(off, data))
    }

    pub async fn write(&self, fh: u64, off: u64, data: Vec<u8>) -> R<u32> {
        let h = self.handles.file(fh)?;
        let layout = h.layout.as_ref().ok_or(Errno::EIO)?;
        let len = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        if h.appends() {
            // The kernel's offset comes from its cached size; the real end
            // is what this client's PW locks over every object say
            // (`WriteBack::append`), and the mutex keeps this client's
            // appends from landing on one another.
            let _one_at_a_time = h.shared.append.lock().await;
            self.send_inode(h.ino).await;
            h.dirty.as_ref().ok_or(Errno::EIO)?.append(&data, h.sync_writes()).await.or_errno()?;
            return Ok(len);
        }
        if h.sync_writes() {
            self.flush_handle(&h).await?;
            if let Some(w) = &h.dirty {
                w.send_others().await;
            }
            self.client.pwrite(layout, off, &data, true).await.or_errno()?;
            return Ok(len);
        }
        h.dirty.as_ref().ok_or(Errno::EIO)?.write(off, &data).await.or_errno()?;
        Ok(len)
    }

    /// Sends what one open file gathered.
    pub async fn flush_handle(&self, h: &FileHandle) -> R<()> {
        match &h.dirty {
            Some(w) => w.flush().await.or_errno(),
            None => Ok(()),
        }
    }

    /// close(2) of one descriptor: what was written reaches the OSTs, and a
    /// failure is reported to the closer.
    pub async fn flush(&self, fh: u64) -> R<()> {
        let h = self.handles.file(fh)?;
        self.flush_handle(&h).await
    }

    /// Gathered bytes go out (this open's, and what other opens of the
    /// file gathered: fsync(2) covers every write to the file), then every
    /// object is made durable.
    pub async fn fsync(&self, fh: u64) -> R<()> {
        let h = self.handles.file(fh)?;
        self.flush_handle(&h).await?;
        if let Some(w) = &h.dirty {
            w.sync_others().await.or_errno()?;
        }
        match &h.layout {
            Some(layout) => self.client.sync_objects(layout).await.or_errno(),
            None => Ok(()),
        }
    }

    /// The last close of an open: flush, then tell the MDS, which may now
    /// destroy a file unlinked while open.
    pub async fn release(&self, caller: Caller, fh: u64) -> R<()> {
        let h = self.handles.remove_file(fh).ok_or(Errno::EBADF)?;
        let flushed = self.flush_handle(&h).await;
        if h.mds_open {
            self.client.md_as(caller.cred(), MdsRequest::Close { fid: h.fid }).await.or_errno()?;
        }
        flushed
    }
}

/// How much of a `size`-byte read at `off` can hold data: none from the
/// largest file size on.
fn readable_len(off: u64, size: u32) -> Option<usize> {
    (off < MAX_FILE_SIZE).then(|| u64::from(size).min(MAX_FILE_SIZE - off) as usize)
}
