//! An open file's small sequential writes, gathered in the client under PW
//! extent locks, as Lustre keeps dirty pages: once write(2) returned, any
//! other client's read, stat, write or truncate of the range calls the lock
//! back, and the callback sends the gathered bytes before the lock goes.
//! So a write is seen everywhere as soon as it returned, although it
//! leaves the client only as a whole RPC (or at fsync, close, or a read of
//! the file here).
//!
//! A full buffer goes out in the background while the writer fills the
//! next one (at most `IN_FLIGHT` buffers per file), as Lustre's write-back
//! sends dirty pages while the application writes on; a failure is
//! reported by the next flush, fsync or close, as the kernel reports a
//! failed write-back.
//!
//! No lock is ever awaited while the buffer's mutex is held: the locks are
//! taken first, and what goes out under the mutex goes under this client's
//! own PW locks, which the OST never makes wait. That is what lets a
//! callback take the mutex, and wait for the buffers in flight, without
//! waiting on another client's callback in turn.

use crate::client::Client;
use crate::data_buf::DataBuf;
use crate::error::{ClientError, Result};
use crate::gather::{Extent, Gather};
use fabric::Errno;
use proto::{Fid, Layout, LockExtent, LockHandle, LockMode};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Full buffers of one file on their way to the OSTs at once.
const IN_FLIGHT: u32 = 2;

/// The write-back buffer of one open file.
pub(crate) struct WriteBack {
    client: Arc<Client>,
    layout: Option<Layout>,
    cap: u64,
    gather: Arc<tokio::sync::Mutex<Gather>>,
    /// A permit per buffer in flight.
    slots: Arc<Semaphore>,
    /// The file ranges in flight, so an overlapping one waits for them.
    sending: Mutex<Vec<(u64, u64)>>,
    /// What a send no caller waited for failed with (the first), reported
    /// by the next flush.
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
        let bufs = client.dirty_bufs.clone();
        Arc::new(WriteBack {
            client,
            layout,
            cap,
            gather: Arc::new(tokio::sync::Mutex::new(Gather::new(cap, Some(bufs)))),
            slots: Arc::new(Semaphore::new(IN_FLIGHT as usize)),
            sending: Mutex::new(Vec::new()),
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
        self.send_others().await;
        if (data.len() as u64) >= self.cap {
            self.send_all().await;
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
            // Bytes gathered under a lock this client has since dropped (its
            // connection went) go out first, under the lock they name: the
            // new bytes will name the new one.
            if self.names_a_dropped_lock(&gather)
                && let Some(e) = gather.take()
            {
                let under = gather.locks_taken();
                self.dispatch(e, under).await;
            }
            // A callback between the grant and here took the lock away.
            if !self.note_locks(&mut gather, &objects) {
                continue;
            }
            // Gathered bytes all lie under this client's PW locks: they go
            // out without waiting on anyone.
            let ready = gather.add(off, data);
            let under = gather.locks_taken();
            for e in ready {
                self.dispatch(e, under.clone()).await;
            }
            return Ok(());
        }
    }

    /// Writes `data` at the end of the file (`O_APPEND`), where it ends
    /// under PW locks over the whole of every object, as Lustre's appends
    /// lock `[0, EOF]`: no other client can grow the file meanwhile, and
    /// the size is what the locks know, with no RPC. The buffer's mutex is
    /// kept from reading the size until the bytes are on the OSTs, and a
    /// callback of those locks waits for it (this buffer is one of their
    /// writers), so another client's append cannot land in between. The
    /// offset written at.
    pub async fn append(self: &Arc<Self>, data: &[u8], sync: bool) -> Result<u64> {
        let layout = self.layout.as_ref().ok_or(ClientError::Errno(Errno::EIO))?;
        let r0 = layout.raid0().filter(|r| !r.objects.is_empty()).ok_or(ClientError::Errno(Errno::EIO))?;
        loop {
            for o in &r0.objects {
                self.client.hold(o.ost_idx, o.fid, LockMode::PW, LockExtent::WHOLE).await?;
                self.client.locks.add_writer(o.fid, self);
            }
            let mut gather = self.gather.lock().await;
            // A callback between the grant and here took a lock away (and
            // one from now on waits for this mutex).
            let held = r0.objects.iter().all(|o| {
                self.client.connection_unchanged(o.ost_idx)
                    && self.client.locks.handle_covering(o.fid, &LockExtent::WHOLE, LockMode::PW).is_some()
            });
            if !held {
                continue;
            }
            if let Some(e) = gather.take() {
                let under = gather.locks_taken();
                self.dispatch(e, under).await;
            }
            self.drain().await;
            let end = r0.objects.iter().enumerate().fold(0, |end, (stripe, o)| {
                end.max(r0.file_size_from_object(stripe, self.client.locks.known_size(o.fid).unwrap_or(0)))
            });
            let end_after = end.checked_add(data.len() as u64).filter(|&e| e <= proto::layout::MAX_FILE_SIZE);
            if end_after.is_none() {
                return Err(ClientError::Errno(Errno::EFBIG));
            }
            self.client.pwrite(layout, end, data, sync).await?;
            return Ok(end);
        }
    }

    /// [`WriteBack::write`] when it needs no waiting: the buffer is free
    /// and this client holds PW locks over the range. What the write makes
    /// ready to send (a full buffer, or one the write does not continue)
    /// is dispatched by a task that keeps the buffer's mutex until then,
    /// so a flush, a callback or the next write waits for it as it would
    /// for `write`. False: nothing was done, use `write`. A FUSE thread
    /// takes writes this way without waking the runtime; it must be
    /// inside the client's runtime (`Handle::enter`).
    pub fn try_gather(self: &Arc<Self>, off: u64, data: &[u8]) -> bool {
        let Some(layout) = &self.layout else { return false };
        if data.is_empty() || data.len() as u64 >= self.cap {
            return false;
        }
        if !self.others().iter().all(|w| w.is_clean()) {
            return false;
        }
        let Ok(objects) = self.objects(layout, off, data.len() as u64) else { return false };
        // A lock from before a lost connection (an OSS restart or an
        // eviction) may be gone on the OST: `write` finds out through
        // `hold`.
        if !objects.iter().all(|(ost, _, _)| self.client.connection_unchanged(*ost)) {
            return false;
        }
        // Registered before the check, as `write` does: a callback that
        // begins after the check finds this buffer among the writers and
        // takes its mutex before the lock goes; one that began before it
        // fails the check.
        for (_, fid, _) in &objects {
            self.client.locks.add_writer(*fid, self);
        }
        let Ok(mut gather) = self.gather.clone().try_lock_owned() else { return false };
        if self.names_a_dropped_lock(&gather) || !self.note_locks(&mut gather, &objects) {
            return false;
        }
        let ready = gather.add(off, data);
        let under = gather.locks_taken();
        if !ready.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                for e in ready {
                    me.dispatch(e, under.clone()).await;
                }
                drop(gather);
            });
        }
        true
    }

    /// The failure of a send that a `flush` would report, left in place
    /// for it: fsync through another open of the file reports it too.
    pub fn failed(&self) -> Option<Errno> {
        *self.lost.lock().expect("lost lock")
    }

    /// Sends what the other opens gathered (see `send_others`) and gives
    /// the first failure any of them has to report, leaving it theirs too:
    /// fsync(2) covers every write to the file, through any descriptor.
    pub async fn sync_others(self: &Arc<Self>) -> Result<()> {
        self.send_others().await;
        match self.others().iter().find_map(|w| w.failed()) {
            Some(e) => Err(ClientError::Errno(e)),
            None => Ok(()),
        }
    }

    /// Whether a flush would have nothing to do: nothing gathered, nothing
    /// in flight, no failure to report. False when it cannot tell now.
    pub fn is_clean(&self) -> bool {
        let Ok(gather) = self.gather.try_lock() else { return false };
        gather.is_empty()
            && self.slots.available_permits() == IN_FLIGHT as usize
            && self.lost.lock().expect("lost lock").is_none()
    }

    /// The other open files of this client gathering into this file's
    /// objects (the mount's other opens of it, or other `File`s).
    fn others(self: &Arc<Self>) -> Vec<Arc<WriteBack>> {
        let Some(r0) = self.layout.as_ref().and_then(Layout::raid0) else { return Vec::new() };
        let mut out: Vec<Arc<WriteBack>> = Vec::new();
        for obj in &r0.objects {
            for w in self.client.locks.writers_of(obj.fid) {
                if !Arc::ptr_eq(&w, self) && !out.iter().any(|o| Arc::ptr_eq(o, &w)) {
                    out.push(w);
                }
            }
        }
        out
    }

    /// Sends what this client's other open files of the file gathered, and
    /// waits for it: a write or read through this one that starts after
    /// theirs returned must come after their bytes, which otherwise leave
    /// only at their own flush (two opens of one file on one node, as
    /// POSIX orders them). Their failures stay theirs to report.
    pub async fn send_others(self: &Arc<Self>) {
        for w in self.others() {
            if !w.is_clean() {
                w.send_all().await;
            }
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

    /// Bytes gathered under `old` of `fid` are under `new` now (a replay).
    /// Skipped while a write holds the buffer (it may be waiting for the
    /// OST's recovery, which waits for this replay): the OST still knows
    /// `old` as `new` for the rest of its run.
    pub(crate) fn renote(&self, fid: Fid, old: LockHandle, new: LockHandle) {
        if let Ok(mut gather) = self.gather.try_lock() {
            gather.renote(fid, old, new);
        }
    }

    /// Whether what is gathered names a lock this client no longer holds.
    fn names_a_dropped_lock(&self, gather: &Gather) -> bool {
        gather.noted_locks().iter().any(|(fid, h)| !self.client.locks.holds(*fid, *h))
    }

    /// Whether this client holds PW locks over every object extent of a
    /// write; if so they are noted as what its bytes are gathered under.
    fn note_locks(&self, gather: &mut Gather, objects: &[(u32, Fid, LockExtent)]) -> bool {
        let mut handles = Vec::with_capacity(objects.len());
        for (_, fid, e) in objects {
            match self.client.locks.handle_covering(*fid, e, LockMode::PW) {
                Some(h) => handles.push((*fid, h)),
                None => return false,
            }
        }
        for (fid, h) in handles {
            gather.note_lock(fid, h);
        }
        // The bytes count towards the size another client's stat is told
        // (a glimpse) from now on, though they are not sent yet.
        for (_, fid, e) in objects {
            self.client.locks.grew(*fid, e.end.saturating_add(1));
        }
        true
    }

    /// Sends `e` in the background once a slot is free, after the extents
    /// in flight that overlap it (so a rewrite never lands before the
    /// bytes it replaces). `under`: the locks its bytes were gathered under.
    async fn dispatch(self: &Arc<Self>, e: Extent, under: Arc<[(Fid, LockHandle)]>) {
        let Some(layout) = self.layout.clone() else { return };
        let range = (e.off, e.off + e.data.len() as u64);
        let overlaps = self.sending.lock().expect("sending").iter().any(|r| r.0 < range.1 && range.0 < r.1);
        if overlaps {
            self.drain().await;
        }
        let slot = self.slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        self.sending.lock().expect("sending").push(range);
        let me = self.clone();
        tokio::spawn(async move {
            let sent = match &e.data {
                DataBuf::Registered(b) => {
                    me.client.pwrite_from(&layout, e.off, b.io(), e.data.len(), false, &under).await
                }
                DataBuf::Heap(v) => me.client.pwrite_under(&layout, e.off, v, false, &under).await,
            };
            let mut sending = me.sending.lock().expect("sending");
            if let Some(i) = sending.iter().position(|r| *r == range) {
                sending.swap_remove(i);
            }
            drop(sending);
            if let Err(err) = sent {
                let errno = if err.errno() == Errno::ENOLCK {
                    // As a Lustre client evicted with dirty pages: they are
                    // dropped, and whoever wrote them hears EIO.
                    tracing::error!(
                        off = e.off,
                        len = e.data.len(),
                        "gathered writes dropped: this client was evicted and lost the locks they were made under"
                    );
                    Errno::EIO
                } else {
                    tracing::warn!(off = e.off, len = e.data.len(), error = %err, "gathered writes could not be sent");
                    err.errno()
                };
                me.lost.lock().expect("lost lock").get_or_insert(errno);
            }
            drop(slot);
        });
    }

    /// Waits until nothing is in flight.
    async fn drain(&self) {
        let _all = self.slots.acquire_many(IN_FLIGHT).await.expect("the semaphore is never closed");
    }

    /// Sends what is gathered and waits for everything in flight; the
    /// bytes it sent.
    async fn send_all(self: &Arc<Self>) -> u64 {
        let mut sent = 0;
        {
            let mut gather = self.gather.lock().await;
            if let Some(e) = gather.take() {
                sent = e.data.len() as u64;
                let under = gather.locks_taken();
                self.dispatch(e, under).await;
            }
        }
        self.drain().await;
        sent
    }

    /// Sends what is gathered and waits for it; a failure stays to be
    /// reported by the next `flush` (close or fsync), not to whoever
    /// needed the bytes out (a read, a stat, another open's write).
    pub async fn send(self: &Arc<Self>) {
        self.send_all().await;
    }

    /// Sends what is gathered, waits for it, and reports the first send
    /// that failed since the last flush.
    pub async fn flush(self: &Arc<Self>) -> Result<()> {
        self.send_all().await;
        match self.lost.lock().expect("lost lock").take() {
            Some(e) => Err(ClientError::Errno(e)),
            None => Ok(()),
        }
    }

    /// A lock covering gathered bytes is being called back: they reach the
    /// OSTs first. A failure waits for the next `flush`.
    pub async fn flush_for_callback(self: &Arc<Self>) {
        let sent = self.send_all().await;
        self.client.locks.stats.callback_flushed_bytes.fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    }
}
