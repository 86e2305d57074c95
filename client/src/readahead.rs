//! Readahead, as Lustre's llite does it: reads of a file are matched to
//! the sequential streams they continue; from a stream's second read on,
//! the client reads ahead of it into its cache, under a PR lock on every
//! object it reads, with a window that starts at a few MiB and doubles up
//! to `max_read_ahead_per_file_mb`. The next window is fetched while the
//! reader is still in the current one. Random reads start no readahead.
//! Reads are served from the cache whenever it holds every byte they
//! want; a callback or this client's own write drops what they cover.

use crate::client::Client;
use crate::data_buf::DataBuf;
use crate::io::Chunk;
use crate::tunables::TunableError;
use proto::{Fid, Layout, LockExtent, LockMode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The first window of a stream (Lustre starts small and doubles).
pub const RA_INITIAL_WINDOW: u64 = 4 << 20;
/// Lustre's defaults for `max_read_ahead_mb` and `max_read_ahead_per_file_mb`.
pub const DEFAULT_MAX_READ_AHEAD_MB: usize = 64;
pub const DEFAULT_MAX_READ_AHEAD_PER_FILE_MB: usize = 64;
/// The most `max_read_ahead_mb` accepts.
pub const MAX_READ_AHEAD_MB: usize = 64 << 10;
/// Streams followed per file, and files followed per client.
const STREAMS: usize = 8;
/// What a window's progress reads once it is fetched.
const FETCHED: u64 = u64::MAX;
const FILES: usize = 1024;

/// `llite.*.read_ahead_stats`, counted in 4 KiB pages as Lustre counts.
#[derive(Default, Debug)]
pub struct ReadAheadStats {
    /// Pages of reads served from the cache.
    pub hits: AtomicU64,
    /// Pages of reads that went to the OSTs.
    pub misses: AtomicU64,
    /// Reads that continued no stream.
    pub not_consecutive: AtomicU64,
    /// Windows read ahead, and their bytes.
    pub windows: AtomicU64,
    pub bytes: AtomicU64,
}

struct Stream {
    /// Where the stream's reads have reached.
    next: u64,
    reads: u32,
    window: u64,
    /// Where readahead has been started up to.
    ra_end: u64,
    used: u64,
}

struct Fetching {
    start: u64,
    end: u64,
    /// Blocks landed so far, [`FETCHED`] once the window is done.
    done: watch::Receiver<u64>,
}

#[derive(Default)]
struct FileRa {
    streams: Vec<Stream>,
    fetching: Vec<Fetching>,
    used: u64,
}

/// What one read should do about readahead.
#[derive(Default)]
struct Plan {
    fetch: Option<(u64, u64, watch::Sender<u64>)>,
    wait: Vec<watch::Receiver<u64>>,
}

pub(crate) struct ReadAhead {
    files: Mutex<HashMap<Fid, FileRa>>,
    per_file: AtomicU64,
    clock: AtomicU64,
    pub(crate) stats: ReadAheadStats,
}

impl ReadAhead {
    pub fn new(per_file_bytes: u64) -> ReadAhead {
        ReadAhead {
            files: Mutex::default(),
            per_file: AtomicU64::new(per_file_bytes),
            clock: AtomicU64::new(0),
            stats: ReadAheadStats::default(),
        }
    }

    /// Notes a read of `[off, off + len)` of file `key` and decides what
    /// to read ahead, given the window limit `max` (bytes).
    fn plan(&self, key: Fid, off: u64, len: u64, max: u64) -> Plan {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut files = self.files.lock().expect("readahead lock");
        if files.len() >= FILES && !files.contains_key(&key) {
            let oldest = files.iter().min_by_key(|(_, f)| f.used).map(|(k, _)| *k);
            if let Some(k) = oldest {
                files.remove(&k);
            }
        }
        let file = files.entry(key).or_default();
        file.used = now;
        file.fetching.retain(|f| *f.done.borrow() != FETCHED && f.done.has_changed().is_ok());
        let mut plan = Plan::default();
        // Reads of one stream arrive out of order when several are in
        // flight at once (the FUSE mount's async reads): once a stream has
        // shown itself sequential, near is enough.
        let slack = 4 * len;
        let continues = |s: &Stream| off == s.next || (s.reads >= 2 && off.abs_diff(s.next) <= slack);
        match file.streams.iter_mut().find(|s| continues(s)) {
            Some(s) => {
                s.reads += 1;
                s.used = now;
                s.next = s.next.max(off + len);
                if s.reads >= 2 && max > 0 {
                    if s.window == 0 {
                        s.window = RA_INITIAL_WINDOW.min(max);
                    }
                    if s.ra_end < off {
                        s.ra_end = off;
                    }
                    if s.ra_end.saturating_sub(s.next) < s.window / 2 {
                        let (start, end) = (s.ra_end, s.next + s.window);
                        s.ra_end = end;
                        s.window = (s.window * 2).min(max);
                        let (tx, rx) = watch::channel(0);
                        file.fetching.push(Fetching { start, end, done: rx });
                        plan.fetch = Some((start, end, tx));
                    }
                }
            }
            None => {
                self.stats.not_consecutive.fetch_add(1, Ordering::Relaxed);
                if file.streams.len() >= STREAMS
                    && let Some(i) =
                        file.streams.iter().enumerate().min_by_key(|(_, s)| s.used).map(|(i, _)| i)
                {
                    file.streams.swap_remove(i);
                }
                file.streams.push(Stream {
                    next: off + len,
                    reads: 1,
                    window: 0,
                    ra_end: off + len,
                    used: now,
                });
            }
        }
        plan.wait = file
            .fetching
            .iter()
            .filter(|f| f.start < off + len && off < f.end)
            .map(|f| f.done.clone())
            .collect();
        plan
    }

    /// A read of a stream found the cache without its bytes (a callback
    /// or this client's write took them): read ahead again from there.
    fn missed(&self, key: Fid, off: u64, len: u64) {
        let mut files = self.files.lock().expect("readahead lock");
        if let Some(s) = files.get_mut(&key).and_then(|f| f.streams.iter_mut().find(|s| s.next == off + len))
        {
            s.ra_end = s.ra_end.min(off + len);
        }
    }
}

fn pages(len: u64) -> u64 {
    len.div_ceil(crate::tunables::PAGE_SIZE as u64)
}

/// Why the cache could not answer a read at once.
pub(crate) enum NotCached {
    /// Some byte is not cached, and no readahead is bringing it.
    Miss,
    /// Readahead windows on their way may bring them.
    Coming(Vec<watch::Receiver<u64>>),
}

/// Bytes of one cached block that a read returns, `at` bytes into it.
pub(crate) struct CachedPiece {
    pub at: usize,
    block: Arc<DataBuf>,
    from: usize,
    pub len: usize,
}

impl CachedPiece {
    pub fn bytes(&self) -> &[u8] {
        &self.block[self.from..self.from + self.len]
    }

    pub fn into_shared(self) -> (Arc<DataBuf>, std::ops::Range<usize>) {
        (self.block, self.from..self.from + self.len)
    }

    /// Copies each piece to its place in `out`, the read's buffer.
    pub fn copy_all(pieces: &[CachedPiece], out: &mut [u8]) {
        for p in pieces {
            out[p.at..p.at + p.len].copy_from_slice(p.bytes());
        }
    }
}

impl Client {
    /// Serves `[off, off + out.len())` from the cache when it holds every
    /// byte (see [`Client::cached`]). None: read from the OSTs.
    pub(crate) async fn read_cached(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        CachedPiece::copy_all(&self.cached(layout, off, out.len() as u64).await?, out);
        Some(out.len())
    }

    /// The cached pieces that make up `[off, off + len)` when the cache
    /// holds every byte, after starting the readahead the read calls for
    /// and waiting for a window already on its way that covers it. None:
    /// read from the OSTs.
    pub(crate) async fn cached(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        len: u64,
    ) -> Option<Vec<CachedPiece>> {
        match self.cached_now(layout, off, len) {
            Ok(pieces) => Some(pieces),
            Err(not) => self.cached_after(layout, off, len, not).await,
        }
    }

    /// [`Client::cached`] without waiting: the pieces if the cache holds
    /// them now, else whether a window on its way may still bring them.
    /// Starts readahead, so it runs inside the client's runtime.
    pub(crate) fn cached_now(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        len: u64,
    ) -> Result<Vec<CachedPiece>, NotCached> {
        if self.locks.max_bytes.load(Ordering::Relaxed) == 0 || len == 0 {
            return Err(NotCached::Miss);
        }
        let r0 = layout.raid0().filter(|r| !r.objects.is_empty()).ok_or(NotCached::Miss)?;
        let plan = self.ra.plan(r0.objects[0].fid, off, len, self.ra.per_file.load(Ordering::Relaxed));
        if let Some((start, end, done)) = plan.fetch {
            // A task of its own: a reader that gives up does not stop it.
            tokio::spawn(self.clone().read_ahead(layout.clone(), start, end, done));
        }
        if plan.wait.iter().any(|w| *w.borrow() != FETCHED) && !self.all_cached(r0, off, len) {
            return Err(NotCached::Coming(plan.wait));
        }
        self.cached_pieces(r0, off, len).ok_or(NotCached::Miss)
    }

    /// Finishes what [`Client::cached_now`] could not: waits until the
    /// blocks this read wants have landed (not the whole window).
    pub(crate) async fn cached_after(
        &self,
        layout: &Layout,
        off: u64,
        len: u64,
        not: NotCached,
    ) -> Option<Vec<CachedPiece>> {
        let NotCached::Coming(waits) = not else { return None };
        let r0 = layout.raid0().filter(|r| !r.objects.is_empty())?;
        for mut w in waits {
            let _ = w.wait_for(|n| *n == FETCHED || self.all_cached(r0, off, len)).await;
        }
        self.cached_pieces(r0, off, len)
    }

    /// The cached pieces of `[off, off + len)` under intact locks, or None
    /// (counted as a miss) when any byte is missing.
    fn cached_pieces(&self, r0: &proto::Raid0, off: u64, len: u64) -> Option<Vec<CachedPiece>> {
        let mut found = Vec::new();
        let mut checked: Vec<u32> = Vec::new();
        for e in r0.extents(off, len) {
            let obj = r0.objects[e.stripe];
            if !checked.contains(&obj.ost_idx) {
                checked.push(obj.ost_idx);
                if !self.locks_intact(obj.ost_idx) {
                    self.ra.stats.misses.fetch_add(pages(len), Ordering::Relaxed);
                    return None;
                }
            }
            match self.locks.lookup(obj.fid, e.obj_off, e.len) {
                Some(blocks) => found.push((e, blocks)),
                None => {
                    self.ra.stats.misses.fetch_add(pages(len), Ordering::Relaxed);
                    self.ra.missed(r0.objects[0].fid, off, len);
                    return None;
                }
            }
        }
        let mut pieces = Vec::new();
        for (e, blocks) in found {
            let mut at = e.obj_off;
            let mut dst = (e.file_off - off) as usize;
            let end = e.obj_off + e.len;
            let mut done = Vec::new();
            for (boff, data) in blocks {
                let from = (at - boff) as usize;
                let n = ((end - at) as usize).min(data.len() - from);
                if from + n == data.len() {
                    done.push(boff);
                }
                pieces.push(CachedPiece { at: dst, block: data, from, len: n });
                at += n as u64;
                dst += n;
            }
            self.locks.consumed(r0.objects[e.stripe].fid, &done);
        }
        self.ra.stats.hits.fetch_add(pages(len), Ordering::Relaxed);
        Some(pieces)
    }

    /// Whether the cache holds every byte of `[off, off + len)`.
    fn all_cached(&self, r0: &proto::Raid0, off: u64, len: u64) -> bool {
        r0.extents(off, len).all(|e| self.locks.lookup(r0.objects[e.stripe].fid, e.obj_off, e.len).is_some())
    }

    /// Reads `[start, end)` of the file into the cache: a PR lock on each
    /// object's part, then every block not cached yet, all in parallel.
    async fn read_ahead(self: Arc<Self>, layout: Layout, start: u64, end: u64, done: watch::Sender<u64>) {
        let done = Arc::new(done);
        let Some(r0) = layout.raid0() else { return };
        let mut spans: HashMap<usize, (u64, u64)> = HashMap::new();
        for e in r0.extents(start, end - start) {
            let s = spans.entry(e.stripe).or_insert((e.obj_off, e.obj_off + e.len));
            s.0 = s.0.min(e.obj_off);
            s.1 = s.1.max(e.obj_off + e.len);
        }
        let block = self.ra_block;
        let mut reads = tokio::task::JoinSet::new();
        self.ra.stats.windows.fetch_add(1, Ordering::Relaxed);
        for (stripe, (lo, hi)) in spans {
            let obj = r0.objects[stripe];
            let (lo, hi) = (lo / block * block, hi.div_ceil(block) * block);
            // Taken before the lock: a callback from here on makes what
            // is read below too old to cache.
            let epoch = self.locks.epoch(obj.fid);
            let Some(extent) = LockExtent::new(lo, hi - 1) else { continue };
            if let Err(e) = self.hold(obj.ost_idx, obj.fid, LockMode::PR, extent).await {
                tracing::debug!(fid = %obj.fid, error = %e, "no lock for readahead; reading on demand");
                continue;
            }
            // No block past the object's end: under the lock nobody else
            // can have grown it beyond the size the grant carried.
            let hi = match self.locks.known_size(obj.fid) {
                Some(size) => hi.min(size.div_ceil(block) * block),
                None => hi,
            };
            for b in (lo..hi).step_by(block as usize) {
                if self.locks.lookup(obj.fid, b, block).is_some() {
                    continue;
                }
                let (me, progress) = (self.clone(), done.clone());
                reads.spawn(async move {
                    me.read_block(obj.ost_idx, obj.fid, epoch, b, block).await;
                    progress.send_modify(|n| *n += 1);
                });
            }
        }
        while reads.join_next().await.is_some() {}
        done.send_replace(FETCHED);
    }

    async fn read_block(&self, ost: u32, fid: Fid, epoch: u64, off: u64, len: u64) {
        let mut buf = match self.ra_bufs.get(self.ra_block as usize) {
            Ok(b) => b,
            Err(e) => {
                return tracing::debug!(%fid, off, error = %e, "no buffer for readahead; reading on demand");
            }
        };
        let chunk = Chunk { stripe: 0, obj_off: off, len, pieces: vec![(off, len)] };
        match self.read_into(buf.io(), off, &chunk, ost, fid).await {
            Ok(got) if got > 0 => {
                self.ra.stats.bytes.fetch_add(got, Ordering::Relaxed);
                buf.set_len(got as usize);
                self.locks.insert(fid, epoch, off, buf);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%fid, off, error = %e, "readahead read failed; reading on demand"),
        }
    }

    /// This client changes `[off, off + len)` of the file: its cache of
    /// that range goes now, and again when the guard drops (after the
    /// change), so nothing read in between stays.
    pub(crate) fn changing(&self, layout: &Layout, off: u64, len: u64) -> Changing<'_> {
        let mut spans: Vec<(Fid, LockExtent)> = Vec::new();
        if let Some(r0) = layout.raid0() {
            let mut per: HashMap<usize, (u64, u64)> = HashMap::new();
            for e in r0.extents(off, len) {
                let s = per.entry(e.stripe).or_insert((e.obj_off, e.obj_off + e.len));
                s.0 = s.0.min(e.obj_off);
                s.1 = s.1.max(e.obj_off + e.len);
            }
            spans = per
                .into_iter()
                .filter_map(|(s, (lo, hi))| Some((r0.objects.get(s)?.fid, LockExtent::new(lo, hi - 1)?)))
                .collect();
        }
        Changing::new(self, spans)
    }

    /// Every object of the file changes from the object offsets `size`
    /// implies on (a truncate to `size`).
    pub(crate) fn truncating(&self, layout: &Layout, size: u64) -> Changing<'_> {
        let spans = layout
            .raid0()
            .map(|r0| {
                r0.objects
                    .iter()
                    .enumerate()
                    .map(|(s, o)| (o.fid, LockExtent::from(r0.object_size_for(s, size))))
                    .collect()
            })
            .unwrap_or_default();
        Changing::new(self, spans)
    }

    /// `llite.*.max_read_ahead_mb`: the cache this client keeps of read-ahead data.
    pub fn max_read_ahead_mb(&self) -> usize {
        self.locks.max_bytes.load(Ordering::Relaxed) >> 20
    }

    pub fn set_max_read_ahead_mb(&self, mb: usize) -> Result<(), TunableError> {
        if mb > MAX_READ_AHEAD_MB {
            return Err(TunableError::ReadAhead(mb));
        }
        self.locks.max_bytes.store(mb << 20, Ordering::Relaxed);
        // Lustre keeps the per-file window within the whole.
        self.ra.per_file.fetch_min((mb as u64) << 20, Ordering::Relaxed);
        Ok(())
    }

    /// `llite.*.max_read_ahead_per_file_mb`: the widest window of one file.
    pub fn max_read_ahead_per_file_mb(&self) -> usize {
        (self.ra.per_file.load(Ordering::Relaxed) >> 20) as usize
    }

    pub fn set_max_read_ahead_per_file_mb(&self, mb: usize) -> Result<(), TunableError> {
        let max = self.max_read_ahead_mb();
        if mb > max {
            return Err(TunableError::ReadAheadPerFile { mb, max });
        }
        self.ra.per_file.store((mb as u64) << 20, Ordering::Relaxed);
        Ok(())
    }

    /// `llite.*.read_ahead_stats`.
    pub fn read_ahead_stats(&self) -> &ReadAheadStats {
        &self.ra.stats
    }

    /// Bytes of file data this client caches now.
    pub fn cached_bytes(&self) -> usize {
        self.locks.cached_bytes()
    }
}

/// Drops a range's cache again when this client's change of it is over.
pub(crate) struct Changing<'a> {
    client: &'a Client,
    spans: Vec<(Fid, LockExtent)>,
}

impl<'a> Changing<'a> {
    fn new(client: &'a Client, spans: Vec<(Fid, LockExtent)>) -> Changing<'a> {
        for (fid, e) in &spans {
            client.locks.invalidate(*fid, e);
        }
        Changing { client, spans }
    }
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        for (fid, e) in &self.spans {
            self.client.locks.invalidate(*fid, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Fid {
        Fid::new(Fid::ost_seq(0), 1)
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_second_sequential_read_starts_a_window_that_doubles() {
        let ra = ReadAhead::new(64 * MIB);
        assert!(ra.plan(key(), 0, MIB, 64 * MIB).fetch.is_none());
        let (s, e, _tx) = ra.plan(key(), MIB, MIB, 64 * MIB).fetch.expect("a window");
        assert_eq!((s, e), (MIB, 2 * MIB + RA_INITIAL_WINDOW));
        // Inside the window, past its middle: the next, twice as wide.
        let mut widths = vec![e - s];
        let mut off = 2 * MIB;
        while widths.len() < 6 {
            if let Some((s, e, _)) = ra.plan(key(), off, MIB, 64 * MIB).fetch {
                widths.push(e - s);
            }
            off += MIB;
        }
        assert!(widths.windows(2).all(|w| w[1] >= w[0]), "{widths:?}");
        assert!(widths.iter().all(|w| *w <= 64 * MIB + MIB), "{widths:?}");
    }

    #[test]
    fn random_reads_start_no_readahead() {
        let ra = ReadAhead::new(64 * MIB);
        let mut x = 12345u64;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = (x % (1 << 20)) * (1 << 20);
            assert!(ra.plan(key(), off, 4096, 64 * MIB).fetch.is_none());
        }
        assert!(ra.stats.not_consecutive.load(Ordering::Relaxed) > 150);
    }

    #[test]
    fn no_window_when_readahead_is_off() {
        let ra = ReadAhead::new(0);
        for i in 0..10 {
            assert!(ra.plan(key(), i * MIB, MIB, 0).fetch.is_none());
        }
    }

    #[test]
    fn interleaved_streams_are_followed_apart() {
        let ra = ReadAhead::new(64 * MIB);
        let far = 1 << 40;
        ra.plan(key(), 0, MIB, 64 * MIB);
        ra.plan(key(), far, MIB, 64 * MIB);
        assert!(ra.plan(key(), MIB, MIB, 64 * MIB).fetch.is_some());
        assert!(ra.plan(key(), far + MIB, MIB, 64 * MIB).fetch.is_some());
    }
}
