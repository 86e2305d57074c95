//! An open file's small sequential writes, gathered in the client under PW
//! extent locks, as Lustre keeps dirty pages: once write(2) returned, any
//! other client's read, stat, write or truncate of the range calls the lock
//! back, and the callback sends the gathered bytes before the lock goes.
//! So a write is seen everywhere as soon as it returned, although it
//! leaves the client only as a whole RPC (or at fsync, close, or a read of
//! the file here).
//!
//! No lock is ever awaited while the buffer's mutex is held: the locks are
//! taken first, and what goes out under the mutex goes under this client's
//! own PW locks, which the OST never makes wait. That is what lets a
//! callback take the mutex without waiting on another client's callback in
//! turn.

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::gather::Gather;
use fabric::Errno;
use proto::{Fid, Layout, LockExtent, LockMode};
use std::sync::{Arc, Mutex};

/// The write-back buffer of one open file.
pub(crate) struct WriteBack {
    client: Arc<Client>,
    layout: Option<Layout>,
    cap: u64,
    gather: tokio::sync::Mutex<Gather>,
    /// What a flush no caller waited for (a callback's) failed with,
    /// reported by the next flush, as the kernel reports a failed
    /// write-back at fsync or close.
    lost: Mutex<Option<Errno>>,
}

impl std::fmt::Debug for WriteBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBack").field("cap", &self.cap).finish_non_exhaustive()
    }
}

impl WriteBack {
    /// A buffer of `cap` bytes (0: every write goes straight out).
    pub fn new(client: Arc<Client>, layout: Option<Layout>, cap: u64) -> Arc<WriteBack> {
        Arc::new(WriteBack {
            client,
            layout,
            cap,
            gather: tokio::sync::Mutex::new(Gather::new(cap)),
            lost: Mutex::new(None),
        })
    }

    /// Writes `data` at `off`: gathered when it is smaller than the buffer,
    /// else sent at once after what was gathered.
    pub async fn write(self: &Arc<Self>, off: u64, data: &[u8]) -> Result<()> {
        let layout = self.layout.as_ref().ok_or(ClientError::Errno(Errno::EIO))?;
        if data.is_empty() {
            return Ok(());
        }
        if (data.len() as u64) >= self.cap {
            self.send_gathered().await?;
            self.client.pwrite(layout, off, data, false).await?;
            return Ok(());
        }
        let objects = self.objects(layout, off, data.len() as u64)?;
        loop {
            for (ost, fid, e) in &objects {
                self.client.hold(*ost, *fid, LockMode::PW, *e).await?;
                self.client.locks.add_writer(*fid, self);
            }
            let mut gather = self.gather.lock().await;
            // A callback between the grant and here took the lock away.
            if !objects.iter().all(|(_, fid, e)| self.client.locks.covered(*fid, e, LockMode::PW)) {
                continue;
            }
            // Gathered bytes all lie under this client's PW locks: they go
            // out without waiting on anyone.
            for e in gather.add(off, data) {
                self.client.pwrite(layout, e.off, &e.data, false).await?;
            }
            return Ok(());
        }
    }

    /// The objects `[off, off + len)` of the file lies in, and the range of
    /// each it covers.
    fn objects(&self, layout: &Layout, off: u64, len: u64) -> Result<Vec<(u32, Fid, LockExtent)>> {
        let r0 = layout.raid0().filter(|r| !r.objects.is_empty()).ok_or(ClientError::Errno(Errno::EIO))?;
        let mut out: Vec<(u32, Fid, LockExtent)> = Vec::new();
        for e in r0.extents(off, len) {
            let obj = r0.objects[e.stripe];
            let Some(ext) = LockExtent::of_range(e.obj_off, e.len) else { continue };
            match out.iter_mut().find(|(_, fid, _)| *fid == obj.fid) {
                Some((_, _, have)) => {
                    *have = LockExtent { start: have.start.min(ext.start), end: have.end.max(ext.end) }
                }
                None => out.push((obj.ost_idx, obj.fid, ext)),
            }
        }
        Ok(out)
    }

    /// Sends what is gathered.
    async fn send_gathered(&self) -> Result<()> {
        let mut gather = self.gather.lock().await;
        if let (Some(e), Some(layout)) = (gather.take(), &self.layout) {
            self.client.pwrite(layout, e.off, &e.data, false).await?;
        }
        Ok(())
    }

    /// Sends what is gathered; also reports a failure of a flush made for
    /// a callback since the last call.
    pub async fn flush(&self) -> Result<()> {
        self.send_gathered().await?;
        match self.lost.lock().expect("lost lock").take() {
            Some(e) => Err(ClientError::Errno(e)),
            None => Ok(()),
        }
    }

    /// A lock covering gathered bytes is being called back: they go out
    /// first. A failure is kept for the next `flush`.
    pub async fn flush_for_callback(&self) {
        if let Err(e) = self.send_gathered().await {
            tracing::warn!(error = %e, "gathered writes could not be sent for a lock callback");
            self.lost.lock().expect("lost lock").get_or_insert(e.errno());
        }
    }
}
