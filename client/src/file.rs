//! Open files of the library, for applications that link glint instead of
//! going through the mount: open(2) flags and modes, a file position for
//! read/write, positioned pread/pwrite, fsync, stat, set_len, close.
//!
//! A file behaves as through the mount: small sequential writes are
//! gathered into whole RPCs and sent on a full buffer, a write elsewhere,
//! a read, fsync, stat, set_len and close; `O_APPEND` writes land at the
//! end the objects report, one at a time per file; reads go through the
//! client's readahead.

use crate::client::{Client, attr_reply};
use crate::error::{ClientError, Result};
use crate::gather::gather_capacity;
use crate::write_back::WriteBack;
use fabric::Errno;
use proto::layout::MAX_FILE_SIZE;
use proto::{Attr, Cred, Fid, Layout, MdsRequest, OstRequest, SetAttr, StripeSpec};
use std::collections::HashMap;
use std::io::SeekFrom;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::Mutex;

/// Bytes an open file gathers from small sequential writes (at least one
/// RPC per stripe; see `gather_capacity`), as the mount does by default.
const GATHER: usize = 4 << 20;

/// One lock per file this client appends to, shared by all its open
/// files of it: "find the end, write there" must not interleave.
#[derive(Default)]
pub(crate) struct AppendLocks(std::sync::Mutex<HashMap<Fid, Weak<Mutex<()>>>>);

impl AppendLocks {
    fn of(&self, fid: Fid) -> Arc<Mutex<()>> {
        let mut map = self.0.lock().expect("append locks");
        if let Some(l) = map.get(&fid).and_then(Weak::upgrade) {
            return l;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(Mutex::new(()));
        map.insert(fid, Arc::downgrade(&l));
        l
    }
}

/// An open regular file.
pub struct File {
    client: Arc<Client>,
    cred: Cred,
    fid: Fid,
    layout: Option<Layout>,
    flags: i32,
    pos: Mutex<u64>,
    /// Small sequential writes, gathered under PW locks.
    dirty: Arc<WriteBack>,
    /// With `O_APPEND`: the client's append lock of this file.
    append: Option<Arc<Mutex<()>>>,
    closed: AtomicBool,
}

fn errno(e: Errno) -> ClientError {
    e.into()
}

/// Splits `/a/b/c` into `/a/b` and `c`.
fn parent_and_name(path: &str) -> Result<(&str, &str)> {
    let path = path.trim_end_matches('/');
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    if name.is_empty() || name == "." || name == ".." {
        return Err(errno(Errno::EINVAL));
    }
    Ok((parent, name))
}

impl Client {
    /// Opens `path` with open(2)'s `flags` (`O_RDONLY`/`O_WRONLY`/`O_RDWR`,
    /// `O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_APPEND`, `O_SYNC`); `mode` is the
    /// new file's permission bits with `O_CREAT`. New files get the parent
    /// directory's default striping.
    pub async fn open(self: &Arc<Self>, cred: &Cred, path: &str, flags: i32, mode: u32) -> Result<File> {
        self.open_striped(cred, path, flags, mode, StripeSpec::default()).await
    }

    /// `open` that creates the file, if it does, with `stripe`.
    pub async fn open_striped(
        self: &Arc<Self>,
        cred: &Cred,
        path: &str,
        flags: i32,
        mode: u32,
        stripe: StripeSpec,
    ) -> Result<File> {
        let creating = flags & libc::O_CREAT != 0;
        let exclusive = creating && flags & libc::O_EXCL != 0;
        let found = if exclusive {
            None
        } else {
            match self.resolve(cred, path).await {
                Ok(f) => Some(f),
                Err(e) if creating && e.errno() == Errno::ENOENT => None,
                Err(e) => return Err(e),
            }
        };
        // The MDS checks the access mode against the caller (the creator
        // may use what it just made whatever the mode says, as open(2)).
        let open_flags = (flags & !(libc::O_TRUNC | libc::O_CREAT | libc::O_EXCL)) as u32;
        let (attr, layout, created) = match found {
            Some((attr, resolved)) => {
                if attr.is_dir() {
                    return Err(errno(Errno::EISDIR));
                }
                let op = MdsRequest::Open { fid: attr.fid, flags: open_flags };
                let (attr, layout) = attr_reply(self.md_as(cred.clone(), op).await?)?;
                (attr, layout.or(resolved), false)
            }
            None => {
                let (parent, name) = parent_and_name(path)?;
                let (dir, _) = self.resolve(cred, parent).await?;
                let mode = libc::S_IFREG | (mode & 0o7777);
                let c = self.create_open(cred, dir.fid, name, mode, stripe, exclusive, open_flags).await?;
                (c.attr, c.layout, c.new)
            }
        };
        let cap = gather_capacity(GATHER, self.tunables().rpc_size, layout.as_ref());
        let file = File {
            client: self.clone(),
            cred: cred.clone(),
            fid: attr.fid,
            dirty: WriteBack::new(self.clone(), layout.clone(), cap),
            layout,
            flags,
            pos: Mutex::new(0),
            append: (flags & libc::O_APPEND != 0).then(|| self.appends.of(attr.fid)),
            closed: AtomicBool::new(false),
        };
        if flags & libc::O_TRUNC != 0 && file.writable() && !created {
            file.set_len(0).await?;
        }
        Ok(file)
    }

    /// A file's size as its objects say (Lustre's glimpse).
    pub async fn glimpse_size(&self, layout: &Layout) -> Result<u64> {
        let Some(r0) = layout.raid0() else { return Ok(0) };
        let objs = self.object_attrs(layout).await?;
        Ok(objs.iter().enumerate().map(|(s, o)| r0.file_size_from_object(s, o.size)).max().unwrap_or(0))
    }

    /// Makes every object of `layout` durable, in parallel.
    pub async fn sync_objects(&self, layout: &Layout) -> Result<()> {
        let mut set = tokio::task::JoinSet::new();
        for o in layout.objects().copied() {
            let me = self.clone_handle();
            set.spawn(async move { me.ost(o.ost_idx, &OstRequest::Sync { fid: Some(o.fid) }).await });
        }
        let mut result = Ok(());
        while let Some(r) = set.join_next().await {
            let r = r.map_err(|_| errno(Errno::EIO)).and_then(|r| r.map(|_| ()));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl File {
    pub fn fid(&self) -> Fid {
        self.fid
    }

    /// The file's layout (None for a file with no objects yet).
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }

    fn readable(&self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_WRONLY
    }

    fn writable(&self) -> bool {
        matches!(self.flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
    }

    fn open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) { Err(errno(Errno::EBADF)) } else { Ok(()) }
    }

    /// Sends what this file gathered.
    async fn flush(&self) -> Result<()> {
        self.dirty.flush().await
    }

    /// Sends what this file and this client's other opens of it gathered,
    /// before a read, a stat, a truncate or a write that goes straight out.
    /// A failed send is reported by the next fsync or close, as the kernel
    /// reports a failed write-back: not to the read or stat.
    async fn send_all_opens(&self) {
        self.dirty.send_others().await;
        self.dirty.send().await;
    }

    /// Reads at `off` without moving the position; 0 at or past the end.
    pub async fn pread(&self, off: u64, buf: &mut [u8]) -> Result<usize> {
        self.open()?;
        if !self.readable() {
            return Err(errno(Errno::EBADF));
        }
        self.send_all_opens().await;
        let Some(layout) = &self.layout else { return Ok(0) };
        if off >= MAX_FILE_SIZE || buf.is_empty() {
            return Ok(0);
        }
        let len = (buf.len() as u64).min(MAX_FILE_SIZE - off) as usize;
        self.client.pread(layout, off, &mut buf[..len]).await
    }

    /// Writes at `off` without moving the position (at the end with
    /// `O_APPEND`, as pwrite(2) does on Linux). Returns `data.len()`.
    pub async fn pwrite(&self, off: u64, data: &[u8]) -> Result<usize> {
        self.write_at(off, data).await.map(|(n, _)| n)
    }

    /// Writes at `off` (the end with `O_APPEND`); gives the bytes written
    /// and the offset after them.
    async fn write_at(&self, off: u64, data: &[u8]) -> Result<(usize, u64)> {
        self.open()?;
        if !self.writable() {
            return Err(errno(Errno::EBADF));
        }
        let layout = self.layout.as_ref().ok_or(errno(Errno::EIO))?;
        let sync = self.flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        if let Some(one_at_a_time) = &self.append {
            // The end is where this client's other opens' bytes end too;
            // the mutex keeps this client's appends apart, the locks
            // (`WriteBack::append`) other clients'.
            let _one = one_at_a_time.lock().await;
            self.send_all_opens().await;
            let off = self.dirty.append(data, sync).await?;
            return Ok((data.len(), off + data.len() as u64));
        }
        let end = off.checked_add(data.len() as u64).filter(|&e| e <= MAX_FILE_SIZE);
        let end = end.ok_or(errno(Errno::EFBIG))?;
        if sync {
            self.send_all_opens().await;
            self.client.pwrite(layout, off, data, sync).await?;
        } else {
            self.dirty.write(off, data).await?;
        }
        Ok((data.len(), end))
    }

    /// Reads at the position and moves it past what was read.
    pub async fn read(&self, buf: &mut [u8]) -> Result<usize> {
        let mut pos = self.pos.lock().await;
        let n = self.pread(*pos, buf).await?;
        *pos += n as u64;
        Ok(n)
    }

    /// Writes at the position (the end with `O_APPEND`) and moves it past
    /// what was written.
    pub async fn write(&self, data: &[u8]) -> Result<usize> {
        let mut pos = self.pos.lock().await;
        let (n, end) = self.write_at(*pos, data).await?;
        *pos = end;
        Ok(n)
    }

    /// Moves the position, as lseek(2); `End` asks the objects for the size.
    pub async fn seek(&self, to: SeekFrom) -> Result<u64> {
        self.open()?;
        let mut pos = self.pos.lock().await;
        let base_plus = |base: u64, d: i64| base.checked_add_signed(d).ok_or(errno(Errno::EINVAL));
        let new = match to {
            SeekFrom::Start(o) => o,
            SeekFrom::Current(d) => base_plus(*pos, d)?,
            SeekFrom::End(d) => base_plus(self.stat().await?.size, d)?,
        };
        *pos = new;
        Ok(new)
    }

    /// Attributes with the size, blocks and times the objects report,
    /// after this file's gathered bytes went out.
    pub async fn stat(&self) -> Result<Attr> {
        self.open()?;
        self.send_all_opens().await;
        Ok(self.client.getattr(&self.cred, self.fid).await?.0)
    }

    /// Truncates or extends the file to `size` (every object is punched).
    pub async fn set_len(&self, size: u64) -> Result<()> {
        self.open()?;
        if !self.writable() {
            return Err(errno(Errno::EBADF));
        }
        if size > MAX_FILE_SIZE {
            return Err(errno(Errno::EFBIG));
        }
        self.send_all_opens().await;
        let set = SetAttr { size: Some(size), ..SetAttr::default() };
        self.client.setattr(&self.cred, self.fid, set).await.map(|_| ())
    }

    /// Gathered bytes go out, then every object is made durable: once this
    /// returns, what was written survives a crash of any server.
    pub async fn fsync(&self) -> Result<()> {
        self.open()?;
        self.dirty.sync_others().await?;
        self.flush().await?;
        match &self.layout {
            Some(layout) => self.client.sync_objects(layout).await,
            None => Ok(()),
        }
    }

    /// close(2): gathered bytes go out and the MDS hears the file is no
    /// longer open here (a file unlinked while open is destroyed on its
    /// last close). The first error is reported; the file is closed anyway.
    pub async fn close(self) -> Result<()> {
        self.open()?;
        let flushed = self.flush().await;
        self.closed.store(true, Ordering::Release);
        let closed = self.client.md_as(self.cred.clone(), MdsRequest::Close { fid: self.fid }).await;
        flushed.and(closed.map(|_| ()))
    }
}

impl Drop for File {
    /// A file dropped without `close` still sends what it gathered and its
    /// close, in the background on the current runtime (errors are logged:
    /// call `close` to see them).
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(fid = %self.fid, "file dropped outside a runtime: gathered bytes and close not sent");
            return;
        };
        let (client, cred, fid, dirty) =
            (self.client.clone(), self.cred.clone(), self.fid, self.dirty.clone());
        rt.spawn(async move {
            if let Err(err) = dirty.flush().await {
                tracing::warn!(%fid, error = %err, "a dropped file's gathered bytes could not be written");
            }
            if let Err(err) = client.md_as(cred, MdsRequest::Close { fid }).await {
                tracing::warn!(%fid, error = %err, "a dropped file's close failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_into_parent_and_name() {
        assert_eq!(parent_and_name("/a/b/c").unwrap(), ("/a/b", "c"));
        assert_eq!(parent_and_name("/c").unwrap(), ("", "c"));
        assert_eq!(parent_and_name("c").unwrap(), ("", "c"));
        assert_eq!(parent_and_name("/a/b/").unwrap(), ("/a", "b"));
        for bad in ["", "/", "/a/..", "/a/."] {
            assert!(parent_and_name(bad).is_err(), "{bad}");
        }
    }
}
