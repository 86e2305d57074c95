//! The client's side of the lock manager: the extent locks it holds on
//! each object, the file data it caches under them, and the callback
//! service the OSTs call when another client needs a range.
//!
//! Locks and cached blocks of an object live under one mutex with a
//! epoch number, so dropping a lock and its data is one step: data
//! read while a lock was being called back, or while this client itself
//! wrote the range, is never put in the cache (its epoch moved on).

use crate::client::Client;
use crate::data_buf::DataBuf;
use crate::error::{ClientError, Result};
use crate::write_back::WriteBack;
use fabric::Errno;
use fabric::rpc::{Request, Response, Service};
use proto::ldlm::{LdlmCallback, LdlmCallbackReply};
use proto::{Fid, LockExtent, LockHandle, LockMode, ObjAttr, OstReply, OstRequest, decode, encode};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Handles called back before their grant arrived, remembered per object
/// so such a grant is not used (the OST already counts it cancelled).
const EARLY_REVOKES: usize = 16;

/// Locks a client keeps before it gives back those of objects it caches
/// nothing of, least recently used first (Lustre's lock LRU).
pub(crate) const LOCK_LRU: usize = 4096;

/// What was known when a lock was asked for.
struct Asking {
    /// The OSS's connection then, if connected.
    conn: Option<OstConn>,
    /// The object's epoch then.
    epoch: u64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Held {
    pub(crate) handle: LockHandle,
    mode: LockMode,
    extent: LockExtent,
    /// The object's size at the grant, grown by this client's own writes.
    size: u64,
    /// Called back: what it covered is on its way out, and it covers
    /// nothing new.
    cancelling: bool,
}

/// One cached block of an object, `[off, off + data.len())`.
struct Block {
    data: Arc<DataBuf>,
    /// Its place in the eviction order.
    id: u64,
}

#[derive(Default)]
struct Object {
    ost: u32,
    locks: Vec<Held>,
    epoch: u64,
    early: VecDeque<LockHandle>,
    blocks: BTreeMap<u64, Block>,
    /// When a lock of it was last granted or its cache last read.
    used: u64,
    /// Open files that gathered writes to it under a PW lock: a callback
    /// of that lock sends them first.
    writers: Vec<Weak<WriteBack>>,
    /// Its attributes as a grant or a getattr under a lock over all of it
    /// gave them, with the epoch they were read at: they hold only while
    /// the epoch has not moved (no lock went, this client changed nothing).
    attr: Option<(u64, ObjAttr)>,
}

impl Held {
    pub(crate) fn granted(handle: LockHandle, mode: LockMode, extent: LockExtent, size: u64) -> Held {
        Held { handle, mode, extent, size, cancelling: false }
    }
}

impl Object {
    /// Whether a held lock lets this client cache `e`.
    fn covered(&self, e: &LockExtent) -> bool {
        self.covered_for(e, LockMode::PR)
    }

    /// A held lock that covers `e` in `mode` (a PW lock serves for PR).
    fn covering(&self, e: &LockExtent, mode: LockMode) -> Option<&Held> {
        self.locks.iter().find(|l| {
            !l.cancelling && l.extent.contains(e) && (l.mode == LockMode::PW || mode == LockMode::PR)
        })
    }

    fn covered_for(&self, e: &LockExtent, mode: LockMode) -> bool {
        self.covering(e, mode).is_some()
    }

    /// Whether a lock over the whole object is held: no other client can
    /// change it meanwhile.
    fn whole(&self) -> bool {
        self.locks.iter().any(|l| !l.cancelling && l.extent.contains(&LockExtent::WHOLE))
    }

    /// Notes a lock called back before its grant arrived, so it is never
    /// installed.
    fn revoke_early(&mut self, handle: LockHandle) {
        if self.early.contains(&handle) {
            return;
        }
        if self.early.len() == EARLY_REVOKES {
            self.early.pop_front();
        }
        self.early.push_back(handle);
    }

    fn has_writers(&self) -> bool {
        self.writers.iter().any(|w| w.strong_count() > 0)
    }

    /// Drops the blocks overlapping `e`; the bytes freed.
    fn drop_blocks(&mut self, e: &LockExtent) -> usize {
        let doomed: Vec<u64> = self
            .blocks
            .range(..=e.end)
            .filter(|(off, b)| {
                LockExtent::of_range(**off, b.data.len() as u64).is_some_and(|x| x.overlaps(e))
            })
            .map(|(off, _)| *off)
            .collect();
        doomed.iter().filter_map(|o| self.blocks.remove(o)).map(|b| b.data.len()).sum()
    }
}

/// Lock counters of one client, as `ldlm.namespaces.*` and metrics show them.
#[derive(Default, Debug)]
pub struct LockStats {
    pub granted: AtomicU64,
    /// Locks this client gave back, on its own or when called back.
    pub cancelled: AtomicU64,
    /// Blocking callbacks the OSTs sent this client.
    pub callbacks: AtomicU64,
    /// Glimpse callbacks answered: another client's stat asked the size
    /// this client knows, and the lock stayed.
    pub glimpses: AtomicU64,
    /// Bytes of gathered writes a callback sent before its lock went:
    /// what another client's access made this one write early.
    pub callback_flushed_bytes: AtomicU64,
}

/// The connections to an OST's OSS as they were when this client was
/// first granted a lock there: an OST that restarts forgets its locks, and
/// one that evicts this client drops its connection; either shows as a
/// lost connection.
struct OstConn {
    peer: fabric::ProcessId,
    /// The endpoint's count of connections to the OSS lost, when noted.
    losses: u64,
}

/// Everything this client holds of the objects: locks and cached blocks.
pub(crate) struct LockCache {
    objects: Mutex<Objects>,
    conns: Mutex<HashMap<u32, OstConn>>,
    /// Per OST, PW locks dropped after a lost connection while writes were
    /// gathered under them: if the OST restarted, they are replayed, so
    /// the writes it checks against them are not refused.
    replayable: Mutex<HashMap<u32, Vec<(Fid, Held)>>>,
    /// The most bytes of cached blocks (`max_read_ahead_mb`).
    pub(crate) max_bytes: AtomicUsize,
    pub(crate) stats: LockStats,
    /// Blocking callbacks still to be lost (fault injection).
    lose_callbacks: AtomicU32,
    /// Woken when a callback has given its lock up.
    callback_done: tokio::sync::Notify,
    /// Told of every object whose locks go (the mount drops the kernel's
    /// attributes of its file).
    lost_hook: std::sync::OnceLock<LostHook>,
}

/// See [`Client::on_lock_lost`].
pub type LostHook = Arc<dyn Fn(Fid) + Send + Sync>;

#[derive(Default)]
struct Objects {
    map: HashMap<Fid, Object>,
    /// Blocks in the order they were cached: the oldest go first...
    order: VecDeque<(Fid, u64, u64)>,
    /// ...after the blocks a reader has already read to their end, which
    /// a streaming reader will not want again (and the window ahead of it
    /// must not be pushed out for them).
    used: VecDeque<(Fid, u64, u64)>,
    bytes: usize,
    next_id: u64,
    /// Epochs come from one counter, so an object forgotten and seen again
    /// never repeats an epoch a read may have noted.
    next_epoch: u64,
    /// Locks held, over every object.
    held: usize,
    /// OSTs that granted this client a lock: they keep it on their list
    /// of holders, to wait for after a restart, until it disconnects.
    granted_by: std::collections::HashSet<u32>,
    clock: u64,
}

impl Objects {
    fn bump(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// The object's record, made with a fresh epoch if there is none.
    fn object(&mut self, fid: Fid) -> &mut Object {
        if !self.map.contains_key(&fid) {
            let epoch = self.bump();
            self.map.insert(fid, Object { epoch, ..Default::default() });
        }
        self.map.get_mut(&fid).expect("just made")
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
    /// Drops the oldest blocks until the cache fits in `max`.
    fn shrink(&mut self, max: usize) {
        while self.bytes > max {
            let Some((fid, off, id)) = self.used.pop_front().or_else(|| self.order.pop_front()) else {
                break;
            };
            if let Some(o) = self.map.get_mut(&fid)
                && o.blocks.get(&off).is_some_and(|b| b.id == id)
            {
                let b = o.blocks.remove(&off).expect("just seen");
                self.bytes -= b.data.len();
            }
        }
        // Entries of blocks already dropped otherwise pile up.
        let blocks = self.map.values().map(|o| o.blocks.len()).sum::<usize>();
        let map = &self.map;
        let live = |(fid, off, id): &(Fid, u64, u64)| {
            map.get(fid).and_then(|o| o.blocks.get(off)).is_some_and(|b| b.id == *id)
        };
        if self.order.len() > 64 && self.order.len() > 4 * blocks {
            self.order.retain(live);
        }
        if self.used.len() > 64 && self.used.len() > 4 * blocks {
            self.used.retain(live);
        }
    }
}

impl LockCache {
    pub fn new(max_bytes: usize) -> LockCache {
        LockCache {
            objects: Mutex::default(),
            conns: Mutex::default(),
            replayable: Mutex::default(),
            max_bytes: AtomicUsize::new(max_bytes),
            stats: LockStats::default(),
            lose_callbacks: AtomicU32::new(0),
            callback_done: tokio::sync::Notify::new(),
            lost_hook: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().expect("lock cache")
    }

    /// The object's epoch: it moves whenever a lock of it goes or
    /// this client changes its data.
    pub fn epoch(&self, fid: Fid) -> u64 {
        self.lock().object(fid).epoch
    }

    /// Locks this client holds.
    pub fn lock_count(&self) -> usize {
        self.lock().map.values().map(|o| o.locks.len()).sum()
    }

    /// Locks held on the objects of OST `ost`.
    pub fn lock_count_on(&self, ost: u32) -> usize {
        self.lock().map.values().filter(|o| o.ost == ost).map(|o| o.locks.len()).sum()
    }

    /// Bytes of file data cached now.
    pub fn cached_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Whether a held lock covers `e` of `fid` in `mode`.
    pub fn covered(&self, fid: Fid, e: &LockExtent, mode: LockMode) -> bool {
        self.lock().map.get(&fid).is_some_and(|o| o.covered_for(e, mode))
    }

    /// Whether `handle` is one of the locks this client holds on `fid`
    /// (being called back or not).
    pub fn holds(&self, fid: Fid, handle: LockHandle) -> bool {
        self.lock().map.get(&fid).is_some_and(|o| o.locks.iter().any(|l| l.handle == handle))
    }

    /// The handle of a lock of at least `mode` covering `e` of `fid`.
    pub fn handle_covering(&self, fid: Fid, e: &LockExtent, mode: LockMode) -> Option<LockHandle> {
        self.lock().map.get(&fid)?.covering(e, mode).map(|l| l.handle)
    }

    /// How far the object can reach while this client holds a lock on it:
    /// the largest size its locks were granted with (None without one).
    pub fn known_size(&self, fid: Fid) -> Option<u64> {
        self.lock().map.get(&fid).and_then(|o| o.locks.iter().map(|l| l.size).max())
    }

    /// This client wrote or gathered bytes of the object up to `end`: what
    /// its locks know of its size grows to it.
    pub fn grew(&self, fid: Fid, end: u64) {
        if let Some(o) = self.lock().map.get_mut(&fid) {
            o.locks.iter_mut().for_each(|l| l.size = l.size.max(end));
        }
    }

    /// This client truncated the object to `size`: what its locks know of
    /// its size follows (a glimpse is answered with it).
    pub fn truncated(&self, fid: Fid, size: u64) {
        if let Some(o) = self.lock().map.get_mut(&fid) {
            o.locks.iter_mut().for_each(|l| l.size = size);
        }
    }

    fn install(&self, ost: u32, fid: Fid, held: Held) -> bool {
        let mut objs = self.lock();
        objs.granted_by.insert(ost);
        let now = objs.tick();
        let o = objs.object(fid);
        o.ost = ost;
        o.used = now;
        if let Some(i) = o.early.iter().position(|h| *h == held.handle) {
            o.early.remove(i);
            return false;
        }
        o.locks.push(held);
        objs.held += 1;
        true
    }

    /// The object's attributes, if known under a lock over all of it.
    pub fn attr_under_lock(&self, fid: Fid) -> Option<ObjAttr> {
        let objs = self.lock();
        let o = objs.map.get(&fid).filter(|o| o.whole())?;
        o.attr.filter(|(epoch, _)| *epoch == o.epoch).map(|(_, a)| a)
    }

    /// Keeps `attr`, read at `epoch`, if nothing moved since and a lock
    /// over the whole object is held.
    pub fn store_attr(&self, fid: Fid, epoch: u64, attr: ObjAttr) {
        if let Some(o) = self.lock().map.get_mut(&fid)
            && o.epoch == epoch
            && o.whole()
        {
            o.attr = Some((epoch, attr));
        }
    }

    /// This client changed what the OST keeps of `fid` besides its data
    /// (its times): the epoch moves, so what it knew goes, and a getattr
    /// under way keeps none.
    pub fn forget_attr(&self, fid: Fid) {
        let mut objs = self.lock();
        let epoch = objs.bump();
        if let Some(o) = objs.map.get_mut(&fid) {
            o.epoch = epoch;
        }
    }

    /// Tells the hook, if any, that the locks of `fids` went.
    fn lost(&self, fids: impl IntoIterator<Item = Fid>) {
        if let Some(hook) = self.lost_hook.get() {
            fids.into_iter().for_each(|f| hook(f));
        }
    }

    /// Past `max` locks, takes the locks of the objects least recently
    /// used that have nothing cached, down to three quarters of `max`, and
    /// forgets objects with nothing left; the locks taken, to cancel.
    fn lru_victims(&self, max: usize) -> Vec<(u32, Fid, LockHandle)> {
        let mut objs = self.lock();
        let mut out = Vec::new();
        if objs.held > max {
            let mut idle: Vec<(u64, Fid)> = objs
                .map
                .iter()
                .filter(|(_, o)| !o.locks.is_empty() && o.blocks.is_empty() && !o.has_writers())
                .map(|(fid, o)| (o.used, *fid))
                .collect();
            idle.sort_unstable();
            for (_, fid) in idle {
                if objs.held <= max * 3 / 4 {
                    break;
                }
                let epoch = objs.bump();
                let o = objs.map.get_mut(&fid).expect("listed");
                o.epoch = epoch;
                let taken: Vec<_> = o.locks.drain(..).map(|l| (o.ost, fid, l.handle)).collect();
                objs.held -= taken.len();
                out.extend(taken);
            }
        }
        if objs.map.len() > 2 * max {
            objs.map.retain(|_, o| {
                !o.locks.is_empty() || !o.blocks.is_empty() || !o.early.is_empty() || o.has_writers()
            });
        }
        out
    }

    /// Caches `data` as the block at `off` of `fid`, if the object's
    /// epoch is still `epoch` and a lock covers the block.
    pub fn insert(&self, fid: Fid, epoch: u64, off: u64, data: impl Into<DataBuf>) -> bool {
        let data = data.into();
        let Some(e) = LockExtent::of_range(off, data.len() as u64) else { return false };
        let max = self.max_bytes.load(Ordering::Relaxed);
        let mut objs = self.lock();
        let objs = &mut *objs;
        let id = objs.next_id;
        let Some(o) = objs.map.get_mut(&fid) else { return false };
        if o.epoch != epoch || !o.covered(&e) || data.len() > max {
            return false;
        }
        let len = data.len();
        let freed = o.drop_blocks(&e);
        o.blocks.insert(off, Block { data: Arc::new(data), id });
        objs.next_id += 1;
        objs.bytes = objs.bytes - freed + len;
        objs.order.push_back((fid, off, id));
        objs.shrink(max);
        true
    }

    /// The cached blocks that hold all of `[off, off + len)` of `fid` (each
    /// with its object offset), or None when any byte is missing.
    pub fn lookup(&self, fid: Fid, off: u64, len: u64) -> Option<Vec<(u64, Arc<DataBuf>)>> {
        let objs = self.lock();
        let o = objs.map.get(&fid)?;
        let mut out = Vec::new();
        let mut at = off;
        let end = off + len;
        while at < end {
            let (boff, b) = o.blocks.range(..=at).next_back()?;
            let bend = boff + b.data.len() as u64;
            if bend <= at {
                return None;
            }
            out.push((*boff, b.data.clone()));
            at = bend;
        }
        Some(out)
    }

    /// Forgets every lock and cached block on the objects of OST `ost`,
    /// keeping aside the PW locks writes are gathered under, to replay.
    fn drop_ost(&self, ost: u32) {
        let mut objs = self.lock();
        let fids: Vec<Fid> = objs.map.iter().filter(|(_, o)| o.ost == ost).map(|(f, _)| *f).collect();
        let mut replayable = self.replayable.lock().expect("replayable lock");
        for fid in &fids {
            let epoch = objs.bump();
            let o = objs.map.get_mut(fid).expect("listed");
            o.epoch = epoch;
            // Those being called back too: the writes they are flushing may
            // have died with the OSS, and are sent again under them.
            if o.has_writers() {
                let keep = o.locks.iter().filter(|l| l.mode == LockMode::PW);
                replayable.entry(ost).or_default().extend(keep.map(|l| (*fid, *l)));
            }
            let released = o.locks.len();
            o.locks.clear();
            let freed: usize = std::mem::take(&mut o.blocks).values().map(|b| b.data.len()).sum();
            objs.held -= released;
            objs.bytes -= freed;
        }
        drop(replayable);
        drop(objs);
        self.lost(fids);
    }

    /// The OSTs that ever granted this client a lock.
    pub(crate) fn granted_by(&self) -> Vec<u32> {
        self.lock().granted_by.iter().copied().collect()
    }

    /// The locks to ask OST `ost` for again after it restarted: those held
    /// on its objects and those dropped with writes gathered under them.
    pub(crate) fn to_replay(&self, ost: u32) -> Vec<(Fid, LockMode, LockExtent, LockHandle)> {
        let objs = self.lock();
        let held = objs
            .map
            .iter()
            .filter(|(_, o)| o.ost == ost)
            .flat_map(|(fid, o)| o.locks.iter().map(move |l| (*fid, l.mode, l.extent, l.handle)));
        let mut all: Vec<_> = held.collect();
        if let Some(dropped) = self.replayable.lock().expect("replayable lock").get(&ost) {
            for (fid, l) in dropped {
                if !all.iter().any(|(_, _, _, h)| *h == l.handle) {
                    all.push((*fid, l.mode, l.extent, l.handle));
                }
            }
        }
        all
    }

    /// The OST gave lock `old` of `fid` back as `new`: it is held under its
    /// new handle (again, if it had been dropped), and writes gathered
    /// under it now name `new`.
    pub(crate) fn replayed(&self, ost: u32, fid: Fid, old: LockHandle, new: Held) {
        if let Some(v) = self.replayable.lock().expect("replayable lock").get_mut(&ost) {
            v.retain(|(_, l)| l.handle != old);
        }
        let found = {
            let mut objs = self.lock();
            match objs.map.get_mut(&fid).and_then(|o| o.locks.iter_mut().find(|l| l.handle == old)) {
                // Being called back: its callback ends it under the old
                // handle; the OST calls the new one back when it is wanted
                // (an unknown handle's callback still sends the writes).
                Some(l) if l.cancelling => true,
                Some(l) => {
                    l.handle = new.handle;
                    true
                }
                None => false,
            }
        };
        if !found {
            self.install(ost, fid, new);
        }
        for w in self.writers_of(fid) {
            w.renote(fid, old, new.handle);
        }
    }

    /// The dropped locks of `ost` are not coming back (it did not restart,
    /// or its recovery is over).
    pub(crate) fn forget_replayable(&self, ost: u32) {
        self.replayable.lock().expect("replayable lock").remove(&ost);
    }

    /// From now on, locks held on `ost` are measured against `losses`
    /// connection losses (its locks were replayed after the last).
    pub(crate) fn note_conn(&self, ost: u32, peer: fabric::ProcessId, losses: u64) {
        self.conns.lock().expect("conns lock").insert(ost, OstConn { peer, losses });
    }

    /// A reader read the blocks at `offs` of `fid` to their end: they are
    /// the first to go when room is needed.
    pub fn consumed(&self, fid: Fid, offs: &[u64]) {
        let mut objs = self.lock();
        let objs = &mut *objs;
        let now = objs.tick();
        let Some(o) = objs.map.get_mut(&fid) else { return };
        o.used = now;
        for off in offs {
            if let Some(b) = o.blocks.get(off) {
                objs.used.push_back((fid, *off, b.id));
            }
        }
    }

    /// This client is about to change (or has changed) `e` of `fid`: what
    /// it cached there goes, and reads of it already on their way are not
    /// cached.
    pub fn invalidate(&self, fid: Fid, e: &LockExtent) {
        let mut objs = self.lock();
        if let Some(o) = objs.map.get_mut(&fid) {
            // A write may grow the object; its own locks stay.
            if e.end < u64::MAX {
                o.locks.iter_mut().for_each(|l| l.size = l.size.max(e.end + 1));
            }
            let freed = o.drop_blocks(e);
            objs.bytes -= freed;
            let epoch = objs.bump();
            objs.map.get_mut(&fid).expect("present").epoch = epoch;
        }
    }

    /// Notes that `w` gathers writes to `fid` (once).
    pub fn add_writer(&self, fid: Fid, w: &Arc<WriteBack>) {
        let mut objs = self.lock();
        let o = objs.object(fid);
        if o.writers.iter().any(|x| std::ptr::eq(x.as_ptr(), Arc::as_ptr(w))) {
            return;
        }
        o.writers.retain(|x| x.strong_count() > 0);
        o.writers.push(Arc::downgrade(w));
    }

    /// The objects some open file of this client writes to.
    fn fids_with_writers(&self) -> Vec<Fid> {
        self.lock().map.iter().filter(|(_, o)| o.has_writers()).map(|(fid, _)| *fid).collect()
    }

    pub(crate) fn writers_of(&self, fid: Fid) -> Vec<Arc<WriteBack>> {
        let objs = self.lock();
        objs.map.get(&fid).map(|o| o.writers.iter().filter_map(Weak::upgrade).collect()).unwrap_or_default()
    }

    /// A callback arrived: the lock stops covering anything (reads under
    /// way are not cached, writes take a new lock). Its mode, if held.
    fn begin_callback(&self, fid: Fid, handle: LockHandle) -> Option<LockMode> {
        let mut objs = self.lock();
        let epoch = objs.bump();
        let o = objs.object(fid);
        o.epoch = epoch;
        match o.locks.iter_mut().find(|l| l.handle == handle) {
            Some(l) => {
                l.cancelling = true;
                Some(l.mode)
            }
            None => {
                // The grant is still on its way: from now on it must not be
                // installed, or a write could gather under it between here
                // and the answer, which gives the lock up unflushed.
                o.revoke_early(handle);
                None
            }
        }
    }

    /// Whether a lock of `fid` is being called back.
    fn cancelling(&self, fid: Fid) -> bool {
        self.lock().map.get(&fid).is_some_and(|o| o.locks.iter().any(|l| l.cancelling))
    }

    /// A blocking callback: the lock and what it covered go.
    fn called_back(&self, fid: Fid, handle: LockHandle, extent: LockExtent) {
        self.stats.callbacks.fetch_add(1, Ordering::Relaxed);
        let mut objs = self.lock();
        let epoch = objs.bump();
        let o = objs.object(fid);
        o.epoch = epoch;
        let (freed, released) = match o.locks.iter().position(|l| l.handle == handle) {
            Some(i) => {
                let l = o.locks.swap_remove(i);
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                (o.drop_blocks(&l.extent), 1)
            }
            None => {
                o.revoke_early(handle);
                (o.drop_blocks(&extent), 0)
            }
        };
        objs.bytes -= freed;
        objs.held -= released;
        drop(objs);
        self.callback_done.notify_waiters();
    }

    /// Forgets every lock and cached block; the locks held, to cancel.
    fn take_all(&self) -> Vec<(u32, Fid, LockHandle)> {
        let mut objs = self.lock();
        let mut out = Vec::new();
        let fids: Vec<Fid> = objs.map.keys().copied().collect();
        for fid in fids {
            let epoch = objs.bump();
            let o = objs.map.get_mut(&fid).expect("listed");
            o.epoch = epoch;
            out.extend(o.locks.drain(..).map(|l| (o.ost, fid, l.handle)));
            o.blocks.clear();
        }
        objs.held = 0;
        objs.bytes = 0;
        objs.order.clear();
        objs.used.clear();
        out
    }
}

/// Serves the OSTs' blocking callbacks on this client's endpoint.
pub(crate) struct CallbackService {
    pub cache: Arc<LockCache>,
}

impl Service for CallbackService {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            let lose = &self.cache.lose_callbacks;
            if lose.load(Ordering::Relaxed) > 0
                && lose.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
            {
                tracing::warn!(peer = %req.from, "losing a lock callback (fault injection)");
                return std::future::pending().await;
            }
            let cb: LdlmCallback = decode("lock callback", req.body()).map_err(|e| {
                tracing::warn!(peer = %req.from, error = %e, "bad lock callback");
                Errno::EPROTO
            })?;
            match cb {
                LdlmCallback::Blocking { handle, fid, extent, .. } => {
                    if !extent.is_valid() {
                        return Err(Errno::EINVAL);
                    }
                    // Gathered writes under a PW lock reach the OST before
                    // the lock goes, so the one who needs it sees them. A
                    // lock this client no longer knows (dropped when its
                    // connection went, though the OST kept it) may still
                    // have bytes gathered under it: those go too.
                    if self.cache.begin_callback(fid, handle) != Some(LockMode::PR) {
                        for w in self.cache.writers_of(fid) {
                            w.flush_for_callback().await;
                        }
                    }
                    self.cache.lost([fid]);
                    self.cache.called_back(fid, handle, extent);
                    tracing::debug!(peer = %req.from, %fid, %extent, "lock called back; its cache dropped");
                    Ok(encode(&LdlmCallbackReply::Cancelled))
                }
                LdlmCallback::Glimpse { fid, .. } => {
                    self.cache.stats.glimpses.fetch_add(1, Ordering::Relaxed);
                    Ok(encode(&LdlmCallbackReply::Glimpsed { size: self.cache.known_size(fid).unwrap_or(0) }))
                }
            }
        })
    }
}

impl Client {
    /// Makes sure this client holds a lock of at least `mode` covering
    /// `extent` of `fid` on OST `ost`, enqueuing one if it does not.
    pub(crate) async fn hold(&self, ost: u32, fid: Fid, mode: LockMode, extent: LockExtent) -> Result<()> {
        // A lock from before a restart of the OSS or an eviction covers
        // nothing: the OSS no longer knows it.
        if self.locks_intact(ost) && self.locks.covered(fid, &extent, mode) {
            return Ok(());
        }
        let asking = self.before_enqueue(ost, fid).await;
        let reply = self.ost(ost, &OstRequest::Enqueue { fid, mode, extent }).await?;
        self.take_grant(ost, fid, mode, extent, asking, reply)
    }

    /// A regular file's object attributes for a stat: from the lock over
    /// the whole object if one is held; otherwise a glimpse, which is
    /// granted such a lock if no other client writes the object, and is
    /// told the size the writers know (leaving them their locks) if some do.
    pub(crate) async fn glimpse(&self, ost: u32, fid: Fid) -> Result<ObjAttr> {
        if !(self.locks_intact(ost) && self.locks.covered(fid, &LockExtent::WHOLE, LockMode::PR)) {
            let asking = self.before_enqueue(ost, fid).await;
            match self.ost(ost, &OstRequest::Glimpse { fid }).await? {
                OstReply::Attr(a) => return Ok(a),
                reply => self.take_grant(ost, fid, LockMode::PR, LockExtent::WHOLE, asking, reply)?,
            }
        }
        if let Some(a) = self.locks.attr_under_lock(fid) {
            return Ok(a);
        }
        // Held, but this client changed the object since the grant.
        let epoch = self.locks.epoch(fid);
        match self.ost(ost, &OstRequest::Getattr { fid }).await? {
            OstReply::Attr(a) => {
                self.locks.store_attr(fid, epoch, a);
                Ok(a)
            }
            _ => Err(ClientError::UnexpectedReply { service: "OST" }),
        }
    }

    /// Waits out a callback of a lock of `fid` under way, then notes what
    /// a grant about to be asked for must be checked against.
    async fn before_enqueue(&self, ost: u32, fid: Fid) -> Asking {
        // A lock of the object is being given up: asking again before it
        // is gone would be granted at once (a client's own locks never
        // conflict) and starve whoever called it back.
        // (Polled too: a callback cut short by a lost connection never
        // says it is done.)
        loop {
            let done = self.locks.callback_done.notified();
            if !self.locks.cancelling(fid) {
                break;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), done).await;
        }
        // Counted before the enqueue is sent, so a loss while it is under
        // way counts against the lock.
        let peer = self.osts.read().expect("osts lock").get(&ost).map(|l| l.peer);
        let conn = peer.map(|peer| OstConn { peer, losses: self.ep.connection_losses(peer) });
        // The grant's attributes count only if nothing moved meanwhile (a
        // write of this client's own landing after the OST read them).
        Asking { conn, epoch: self.locks.epoch(fid) }
    }

    /// Keeps the lock an OST granted for `extent` of `fid` in `mode`.
    fn take_grant(
        &self,
        ost: u32,
        fid: Fid,
        mode: LockMode,
        extent: LockExtent,
        asking: Asking,
        reply: OstReply,
    ) -> Result<()> {
        let Asking { conn: noted, epoch } = asking;
        match reply {
            OstReply::Granted { handle, extent: granted, attr } if granted.contains(&extent) => {
                self.locks.stats.granted.fetch_add(1, Ordering::Relaxed);
                let held = Held::granted(handle, mode, granted, attr.size);
                if self.locks.install(ost, fid, held) {
                    self.locks.store_attr(fid, epoch, attr);
                }
                if let Some(c) = noted {
                    self.locks.conns.lock().expect("conns lock").entry(ost).or_insert(c);
                }
                let idle = self.locks.lru_victims(LOCK_LRU);
                if !idle.is_empty() {
                    self.locks.lost(idle.iter().map(|(_, fid, _)| *fid));
                    let osts = self.clone_handle();
                    let stats = self.locks.clone();
                    tokio::spawn(async move {
                        for (ost, fid, handle) in idle {
                            stats.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                            if let Err(e) = osts.ost(ost, &OstRequest::Cancel { fid, handle }).await {
                                tracing::debug!(%fid, error = %e, "cancelling an idle lock failed");
                            }
                        }
                    });
                }
                Ok(())
            }
            _ => Err(ClientError::UnexpectedReply { service: "OST" }),
        }
    }

    /// Whether this client holds locks over the whole of each of `objects`,
    /// so what it knows of their attributes holds until a callback says
    /// otherwise. A stat answered by a glimpse (another client writes the
    /// file) holds no lock: its attributes are good for that answer only.
    pub fn attrs_held(&self, objects: impl IntoIterator<Item = Fid>) -> bool {
        objects.into_iter().all(|fid| self.locks.covered(fid, &LockExtent::WHOLE, LockMode::PR))
    }

    /// Whether the locks held on `ost` can still be trusted: no connection
    /// to its OSS was lost since they were granted, over tcp or o2ib. After
    /// a loss the OSS may have restarted and forgotten them, or evicted
    /// this client (it drops the connection when it does), so they and
    /// their cache are dropped here.
    pub(crate) fn locks_intact(&self, ost: u32) -> bool {
        let mut conns = self.locks.conns.lock().expect("conns lock");
        let Some(c) = conns.get(&ost) else { return true };
        if self.ep.connection_losses(c.peer) == c.losses {
            return true;
        }
        conns.remove(&ost);
        drop(conns);
        tracing::info!(ost, "the connection to the OST was lost since its locks were granted: dropping them");
        self.locks.drop_ost(ost);
        false
    }

    /// Whether no connection to `ost`'s OSS was lost since its locks were
    /// granted; unlike `locks_intact`, a loss is only reported.
    pub(crate) fn connection_unchanged(&self, ost: u32) -> bool {
        let conns = self.locks.conns.lock().expect("conns lock");
        conns.get(&ost).is_none_or(|c| self.ep.connection_losses(c.peer) == c.losses)
    }

    /// Gives back every lock this client holds and drops its cache (before
    /// an unmount, or to start cold).
    pub async fn cancel_locks(&self) -> Result<()> {
        // Bytes gathered under the locks go first: given up, the locks
        // could not vouch for them.
        for fid in self.locks.fids_with_writers() {
            for w in self.locks.writers_of(fid) {
                w.send().await;
            }
        }
        let mut first_err = None;
        let taken = self.locks.take_all();
        self.locks.lost(taken.iter().map(|(_, fid, _)| *fid));
        for (ost, fid, handle) in taken {
            self.locks.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.ost(ost, &OstRequest::Cancel { fid, handle }).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Loses the next `n` blocking callbacks: they reach this client and are
    /// neither acted on nor answered, as when the network drops them
    /// (Lustre's `OBD_FAIL_LDLM_BL_CALLBACK_NET`), so the OST evicts this
    /// client while it runs on. For tests.
    pub fn lose_lock_callbacks(&self, n: u32) {
        self.locks.lose_callbacks.store(n, Ordering::Release);
    }

    /// Extent locks this client holds (`ldlm.namespaces.*.lock_count`).
    pub fn lock_count(&self) -> usize {
        self.locks.lock_count()
    }

    /// Extent locks held on the objects of OST `ost`.
    pub fn lock_count_on(&self, ost: u32) -> usize {
        self.locks.lock_count_on(ost)
    }

    /// The lock counters of this client.
    pub fn lock_stats(&self) -> &LockStats {
        &self.locks.stats
    }

    /// Calls `hook` with each object whose locks this client loses (called
    /// back, given up, or gone with a connection), before a callback is
    /// answered: what was known of the object under them may be stale from
    /// then on. One hook per client; a second is ignored.
    pub fn on_lock_lost(&self, hook: LostHook) {
        let _ = self.locks.lost_hook.set(hook);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fid() -> Fid {
        Fid::new(Fid::ost_seq(0), 7)
    }

    fn cache_with_lock(extent: LockExtent) -> LockCache {
        let c = LockCache::new(1 << 20);
        assert!(c.install(
            0,
            fid(),
            Held { handle: LockHandle(9), mode: LockMode::PR, extent, size: 0, cancelling: false }
        ));
        c
    }

    #[test]
    fn blocks_are_cached_only_under_a_lock_and_an_unchanged_epoch() {
        let c = cache_with_lock(LockExtent::new(0, 4095).unwrap());
        let g = c.epoch(fid());
        assert!(!c.insert(fid(), g, 4096, vec![1; 10]), "outside the lock");
        assert!(!c.insert(fid(), g + 1, 0, vec![1; 10]), "stale epoch");
        assert!(c.insert(fid(), g, 0, vec![1; 100]));
        assert!(c.lookup(fid(), 10, 90).is_some());
        assert!(c.lookup(fid(), 10, 91).is_none());
        c.invalidate(fid(), &LockExtent::new(50, 50).unwrap());
        assert!(c.lookup(fid(), 0, 10).is_none());
        assert!(!c.insert(fid(), g, 0, vec![1; 100]), "a read from before the change");
    }

    #[test]
    fn a_callback_drops_the_lock_and_its_blocks() {
        let c = cache_with_lock(LockExtent::WHOLE);
        let g = c.epoch(fid());
        assert!(c.insert(fid(), g, 0, vec![3; 64]));
        c.called_back(fid(), LockHandle(9), LockExtent::WHOLE);
        assert_eq!(c.lock_count(), 0);
        assert_eq!(c.cached_bytes(), 0);
        assert!(c.lookup(fid(), 0, 1).is_none());
    }

    #[test]
    fn past_the_lru_the_idle_locks_go_and_the_busy_stay() {
        let c = LockCache::new(1 << 20);
        let f = |oid| Fid::new(Fid::ost_seq(0), oid);
        for oid in 1..=8u32 {
            let held = Held {
                handle: LockHandle(oid as u64),
                mode: LockMode::PR,
                extent: LockExtent::WHOLE,
                size: 0,
                cancelling: false,
            };
            assert!(c.install(0, f(oid), held));
        }
        // Object 1 was granted first but has data cached: it stays.
        let e = c.epoch(f(1));
        assert!(c.insert(f(1), e, 0, vec![1; 10]));
        let before = c.epoch(f(2));
        assert!(c.lru_victims(8).is_empty());
        let gone: Vec<u64> = c.lru_victims(4).iter().map(|(_, _, h)| h.0).collect();
        assert_eq!(gone, vec![2, 3, 4, 5, 6]);
        assert_eq!(c.lock_count(), 3);
        assert!(c.lookup(f(1), 0, 10).is_some());
        // A read that noted an object's epoch before its lock went caches
        // nothing, even under a lock granted since.
        let again = Held {
            handle: LockHandle(20),
            mode: LockMode::PR,
            extent: LockExtent::WHOLE,
            size: 0,
            cancelling: false,
        };
        assert!(c.install(0, f(2), again));
        assert!(!c.insert(f(2), before, 0, vec![1; 10]));
        assert!(c.insert(f(2), c.epoch(f(2)), 0, vec![1; 10]));
    }

    #[test]
    fn attributes_are_known_only_under_a_lock_over_the_whole_object() {
        let c = LockCache::new(1 << 20);
        let attr = ObjAttr { size: 4096, blocks: 8, ..Default::default() };
        let part = Held {
            handle: LockHandle(1),
            mode: LockMode::PR,
            extent: LockExtent::new(0, 99).unwrap(),
            size: 4096,
            cancelling: false,
        };
        assert!(c.install(0, fid(), part));
        c.store_attr(fid(), c.epoch(fid()), attr);
        assert_eq!(c.attr_under_lock(fid()), None, "others may grow it past the lock");
        let whole = Held { handle: LockHandle(2), extent: LockExtent::WHOLE, ..part };
        assert!(c.install(0, fid(), whole));
        c.store_attr(fid(), c.epoch(fid()), attr);
        assert_eq!(c.attr_under_lock(fid()), Some(attr));
        // This client's own write: asked again, and kept if nothing moved.
        c.invalidate(fid(), &LockExtent::new(0, 8191).unwrap());
        assert_eq!(c.attr_under_lock(fid()), None);
        let e = c.epoch(fid());
        let grown = ObjAttr { size: 8192, ..attr };
        c.store_attr(fid(), e - 1, grown);
        assert_eq!(c.attr_under_lock(fid()), None, "read before the write");
        c.store_attr(fid(), e, grown);
        assert_eq!(c.attr_under_lock(fid()), Some(grown));
        // A callback: the lock covers nothing from its start.
        assert_eq!(c.begin_callback(fid(), LockHandle(2)), Some(LockMode::PR));
        assert_eq!(c.attr_under_lock(fid()), None);
        c.store_attr(fid(), c.epoch(fid()), grown);
        assert_eq!(c.attr_under_lock(fid()), None);
    }

    #[test]
    fn a_grant_called_back_before_it_arrived_is_not_used() {
        let c = LockCache::new(1 << 20);
        c.called_back(fid(), LockHandle(5), LockExtent::WHOLE);
        let held = Held {
            handle: LockHandle(5),
            mode: LockMode::PR,
            extent: LockExtent::WHOLE,
            size: 0,
            cancelling: false,
        };
        assert!(!c.install(0, fid(), held));
        assert!(!c.covered(fid(), &LockExtent::WHOLE, LockMode::PR));
    }

    /// A grant that arrives while its callback is being served (after the
    /// callback looked for it, before it is answered) is refused too: a
    /// write gathered under it would not be flushed before the answer.
    #[test]
    fn a_grant_arriving_during_its_callback_is_not_used() {
        let c = LockCache::new(1 << 20);
        assert_eq!(c.begin_callback(fid(), LockHandle(7)), None, "not installed yet");
        let held = Held {
            handle: LockHandle(7),
            mode: LockMode::PW,
            extent: LockExtent::WHOLE,
            size: 0,
            cancelling: false,
        };
        assert!(!c.install(0, fid(), held));
        assert_eq!(c.handle_covering(fid(), &LockExtent::WHOLE, LockMode::PW), None);
        c.called_back(fid(), LockHandle(7), LockExtent::WHOLE);
        assert_eq!(c.lock_count(), 0);
    }

    #[test]
    fn the_oldest_blocks_go_when_the_cache_is_full() {
        let c = cache_with_lock(LockExtent::WHOLE);
        c.max_bytes.store(300, Ordering::Relaxed);
        let g = c.epoch(fid());
        for i in 0..5u64 {
            assert!(c.insert(fid(), g, i * 100, vec![i as u8; 100]));
        }
        assert_eq!(c.cached_bytes(), 300);
        assert!(c.lookup(fid(), 0, 100).is_none());
        assert!(c.lookup(fid(), 200, 300).is_some());
        // What a reader is done with goes before what it has yet to read.
        c.consumed(fid(), &[300]);
        assert!(c.insert(fid(), g, 500, vec![5; 100]));
        assert!(c.lookup(fid(), 300, 100).is_none());
        assert!(c.lookup(fid(), 200, 100).is_some() && c.lookup(fid(), 400, 200).is_some());
    }
}
