//! One target's lock namespace (Lustre's `ldlm.namespaces.filter-*`):
//! the resources of its objects, granting, blocking callbacks to holders,
//! and eviction of holders that do not answer.
//!
//! Each object's locks sit behind a mutex of their own, found through a
//! sharded table, so enqueues on different objects never wait on each
//! other. Nothing is awaited while a mutex is held: a request that must
//! wait marks what it waits for, lets go, and is woken when a lock goes.

use super::clients::{ClientFile, ClientKey};
use super::recovery::Recovery;
use super::resource::{Lock, Owner, Resource};
use fabric::rpc::{Endpoint, RpcError};
use fabric::{Errno, ProcessId};
use proto::ldlm::{LDLM_CB_PORTAL, LdlmCallback, LdlmCallbackReply, opcode};
use proto::{Fid, LockExtent, LockHandle, LockMode, decode, encode};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

const SHARDS: usize = 32;

/// How a namespace treats lock holders.
#[derive(Clone, Debug)]
pub struct LdlmConfig {
    /// How long a holder has to answer a blocking callback before it loses
    /// every lock it holds here (Lustre's `ldlm_timeout` family).
    pub callback_timeout: Duration,
    /// How often holders' connections are checked; a holder found without
    /// a connection twice in a row loses its locks.
    pub sweep_interval: Duration,
    /// After a restart, how long the lock holders of the previous run have
    /// to replay their locks before new ones are granted without them
    /// (Lustre's recovery window; it closes early once all have).
    pub recovery_window: Duration,
}

impl Default for LdlmConfig {
    fn default() -> Self {
        LdlmConfig {
            callback_timeout: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(30),
            recovery_window: Duration::from_secs(30),
        }
    }
}

/// Counters of one namespace, read by metrics and `lctl get_param`.
#[derive(Default, Debug)]
pub struct LdlmStats {
    pub granted: AtomicU64,
    /// Locks given back: cancelled by their holder or answered callbacks.
    pub cancelled: AtomicU64,
    /// Blocking callbacks sent.
    pub callbacks: AtomicU64,
    /// Stats answered from the sizes that PW lock holders knew, their
    /// locks left in place (glimpse callbacks).
    pub glimpses: AtomicU64,
    /// Holders that lost their locks for not answering (or being gone).
    pub evictions: AtomicU64,
    /// Writes refused because the lock their bytes were gathered under
    /// was taken from the client by an eviction.
    pub stale_writes: AtomicU64,
    /// Locks of an earlier run given back to their holders after a restart.
    pub replayed: AtomicU64,
}

struct Res {
    state: Mutex<ResState>,
    changed: Notify,
}

#[derive(Default)]
struct ResState {
    res: Resource,
    /// Taken out of the table; whoever holds this Arc looks again.
    dead: bool,
}

/// The locks of one target's objects.
pub struct Namespace {
    name: String,
    target: u32,
    cfg: LdlmConfig,
    shards: Vec<Mutex<HashMap<Fid, Arc<Res>>>>,
    next_cookie: AtomicU64,
    /// The first cookie of this run: handles below it are from before.
    first_cookie: u64,
    ep: OnceLock<Endpoint>,
    stats: LdlmStats,
    /// Holders seen without a connection at the last sweep.
    unreachable: Mutex<HashSet<ProcessId>>,
    recovery: Arc<Recovery>,
}

/// A server-side lock for one I/O without a client lock; dropping it
/// ends the I/O's hold on the range.
pub struct IoGuard {
    ns: Arc<Namespace>,
    fid: Fid,
    res: Arc<Res>,
    handle: LockHandle,
}

impl Drop for IoGuard {
    fn drop(&mut self) {
        self.res.state.lock().expect("resource lock").res.remove(self.handle);
        self.res.changed.notify_waiters();
        self.ns.tidy(self.fid);
    }
}

/// What a glimpse found.
#[derive(Debug, PartialEq, Eq)]
pub enum Glimpsed {
    /// Nothing stood in the way: a PR lock over the whole object.
    Granted(LockHandle, LockExtent),
    /// Other clients hold PW locks on it: the sizes they know the object
    /// to be, their cached writes counted. No lock was granted.
    Sizes(Vec<u64>),
}

/// What stood in a request's way this time round.
enum Blocked {
    /// Holders to call back (marked cancelling by this request).
    Call(Vec<Lock>),
    /// Others are already dealing with the conflict: wait.
    Wait,
}

impl Namespace {
    /// `name` is Lustre's, e.g. `filter-testfs-OST0000_UUID`.
    /// `run`: the target's run ([`crate::ObjectStore::run`]); handles of
    /// each run lie above every earlier run's. `clients`: where the lock
    /// holders are kept for the recovery after a restart (none: no
    /// recovery).
    pub fn new(
        name: String,
        target: u32,
        cfg: LdlmConfig,
        run: u32,
        clients: Option<ClientFile>,
    ) -> Arc<Namespace> {
        let first_cookie = (u64::from(run) << LockHandle::RUN_SHIFT) | 1;
        let recovery = Recovery::start(&name, clients);
        Arc::new(Namespace {
            name,
            target,
            cfg,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_cookie: AtomicU64::new(first_cookie),
            first_cookie,
            ep: OnceLock::new(),
            stats: LdlmStats::default(),
            unreachable: Mutex::new(HashSet::new()),
            recovery,
        })
    }

    /// The endpoint callbacks go out on (the one clients connected to, so
    /// they travel over the connections the clients opened), and the
    /// sweep of holders whose connection is gone.
    pub fn start(self: &Arc<Self>, ep: Endpoint) {
        if self.ep.set(ep).is_err() {
            return;
        }
        if self.recovery.is_open() {
            let (weak, window) = (Arc::downgrade(self), self.cfg.recovery_window);
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                if let Some(ns) = Weak::upgrade(&weak) {
                    ns.recovery.close(&ns.name, "the recovery window's time is up");
                }
            });
        }
        let weak = Arc::downgrade(self);
        let every = self.cfg.sweep_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(ns) = Weak::upgrade(&weak) else { return };
                ns.sweep();
            }
        });
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> &LdlmStats {
        &self.stats
    }

    pub fn config(&self) -> &LdlmConfig {
        &self.cfg
    }

    /// Locks clients hold now (Lustre's `lock_count`).
    pub fn lock_count(&self) -> usize {
        self.resources().iter().map(|r| r.state.lock().expect("resource lock").res.client_locks()).sum()
    }

    fn shard(&self, fid: &Fid) -> &Mutex<HashMap<Fid, Arc<Res>>> {
        let h = fid.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ fid.oid as u64;
        &self.shards[(h as usize) % SHARDS]
    }

    fn resource(&self, fid: Fid) -> Arc<Res> {
        self.shard(&fid)
            .lock()
            .expect("shard lock")
            .entry(fid)
            .or_insert_with(|| Arc::new(Res { state: Mutex::default(), changed: Notify::new() }))
            .clone()
    }

    fn existing(&self, fid: &Fid) -> Option<Arc<Res>> {
        self.shard(fid).lock().expect("shard lock").get(fid).cloned()
    }

    fn resources(&self) -> Vec<Arc<Res>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().expect("shard lock").values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Takes `fid`'s resource out of the table when nothing is on it.
    fn tidy(&self, fid: Fid) {
        let mut shard = self.shard(&fid).lock().expect("shard lock");
        if let Some(res) = shard.get(&fid) {
            let mut st = res.state.lock().expect("resource lock");
            if st.res.locks.is_empty() {
                st.dead = true;
                drop(st);
                shard.remove(&fid);
            }
        }
    }

    fn cookie(&self) -> LockHandle {
        LockHandle(self.next_cookie.fetch_add(2, Ordering::Relaxed))
    }

    /// Grants `client` a lock of `mode` covering `want` once no other
    /// client holds a conflicting one, calling those back first. The
    /// granted extent is the widest that conflicts with nobody.
    pub async fn enqueue(
        self: &Arc<Self>,
        client: ProcessId,
        fid: Fid,
        mode: LockMode,
        want: LockExtent,
    ) -> Result<(LockHandle, LockExtent), Errno> {
        if !want.is_valid() {
            return Err(Errno::EINVAL);
        }
        self.recovery.check()?;
        self.recovery.note_holder(&self.name, ClientKey::from(client)).await;
        let owner = Owner::Client(client);
        let handle = self.cookie();
        let extent = self
            .acquire(fid, owner, mode, want, |res, avoid| {
                let extent = res.grow(&owner, mode, want, avoid);
                res.locks.push(Lock { handle, owner, mode, extent, want, cancelling: false });
                extent
            })
            .await?
            .1;
        self.stats.granted.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(ns = %self.name, %client, %fid, mode = mode.name(), %extent, "lock granted");
        Ok((handle, extent))
    }

    /// The holder gives a lock back.
    pub fn cancel(&self, client: ProcessId, fid: Fid, handle: LockHandle) -> Result<(), Errno> {
        let res = self.existing(&fid).ok_or(Errno::ENOENT)?;
        let removed = {
            let mut st = res.state.lock().expect("resource lock");
            match st.res.locks.iter().find(|l| l.handle == handle) {
                Some(l) if l.owner == Owner::Client(client) => st.res.remove(handle),
                Some(_) => return Err(Errno::EPERM),
                None => None,
            }
        };
        res.changed.notify_waiters();
        self.tidy(fid);
        match removed {
            Some(_) => {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            // Already gone (called back meanwhile): the holder's wish is met.
            None => Ok(()),
        }
    }

    /// Whether bytes `client` gathered under its lock `handle` on `fid`
    /// may still be written. A lock this run granted that the client no
    /// longer holds was taken from it, by an eviction or the sweep of
    /// holders without a connection (a lock called back is flushed before
    /// it is answered, and the client sends its gathered bytes before it
    /// gives a lock up itself): the bytes may be older than what another
    /// client wrote since, and are refused with ENOLCK. A handle from an
    /// earlier run of the target (before a restart) stands for the lock it
    /// was replayed as; one that was not replayed in the recovery window
    /// is refused the same way.
    pub fn check_gathered(&self, client: ProcessId, fid: Fid, handle: LockHandle) -> Result<(), Errno> {
        let handle = if handle.0 < self.first_cookie {
            self.recovery.check()?;
            match self.recovery.replayed_as(ClientKey::from(client), handle) {
                Some(h) => h,
                None => {
                    return Err(self.stale(client, fid, handle, "a lock of the last run it did not replay"));
                }
            }
        } else {
            handle
        };
        if handle.0 >= self.next_cookie.load(Ordering::Relaxed) {
            return Ok(());
        }
        let held = self.existing(&fid).is_some_and(|res| {
            let st = res.state.lock().expect("resource lock");
            st.res
                .locks
                .iter()
                .any(|l| l.handle == handle && matches!(l.owner, Owner::Client(c) if c.same_process(&client)))
        });
        if held {
            return Ok(());
        }
        Err(self.stale(client, fid, handle, "a lock it no longer holds (evicted)"))
    }

    fn stale(&self, client: ProcessId, fid: Fid, handle: LockHandle, under: &str) -> Errno {
        self.stats.stale_writes.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(ns = %self.name, %client, %fid, ?handle, "refusing bytes gathered under {under}");
        Errno::ENOLCK
    }

    /// Whether the target is in its recovery window.
    pub fn recovering(&self) -> bool {
        self.recovery.is_open()
    }

    /// Lustre's `recovery_status`: whether the target recovers, since when,
    /// and how many of the last run's lock holders are done.
    pub fn recovery_status(&self) -> String {
        self.recovery.status(self.cfg.recovery_window)
    }

    /// How long a recovery window after a restart lasts at most.
    pub fn recovery_window(&self) -> Duration {
        self.cfg.recovery_window
    }

    /// A lock `client` held before the restart, given back as it was under
    /// a new handle, without waiting: the locks of the last run did not
    /// conflict then, and no new one is granted until the window closes.
    pub async fn replay(
        &self,
        client: ProcessId,
        fid: Fid,
        mode: LockMode,
        extent: LockExtent,
        old: LockHandle,
    ) -> Result<LockHandle, Errno> {
        if !extent.is_valid() || old.0 >= self.first_cookie {
            return Err(Errno::EINVAL);
        }
        let key = ClientKey::from(client);
        // Too late, or not a holder of the last run: the lock is gone, as
        // an evicted client's is.
        if !self.recovery.awaits(key) {
            return Err(Errno::ENOLCK);
        }
        let handle = self.cookie();
        let owner = Owner::Client(client);
        loop {
            let res = self.resource(fid);
            let mut st = res.state.lock().expect("resource lock");
            if st.dead {
                continue;
            }
            // The last run's locks did not conflict; one that does now was
            // not held when it ended.
            if st.res.conflicting(&owner, mode, &extent).next().is_some() {
                return Err(Errno::ENOLCK);
            }
            st.res.locks.push(Lock { handle, owner, mode, extent, want: extent, cancelling: false });
            break;
        }
        self.recovery.note_holder(&self.name, key).await;
        self.recovery.note_replayed(key, old, handle);
        self.stats.replayed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(ns = %self.name, %client, %fid, mode = mode.name(), %extent, ?old, ?handle, "lock replayed");
        Ok(handle)
    }

    /// `client` replayed every lock it held here.
    pub fn replay_done(&self, client: ProcessId) {
        self.recovery.done(&self.name, ClientKey::from(client));
    }

    /// `client` is leaving: its locks go, and it is not waited for after a
    /// restart.
    pub async fn disconnect(&self, client: ProcessId) {
        let n = self.drop_client(client);
        tracing::debug!(ns = %self.name, %client, locks = n, "client disconnected");
        self.recovery.forget_holder(&self.name, ClientKey::from(client)).await;
    }

    /// Before a write, punch or truncate of `extent` that came from
    /// `client` without a lock: other clients' overlapping locks are
    /// called back, and the range is held until the guard is dropped so
    /// no lock is granted over it while the I/O runs.
    pub async fn lock_io(
        self: &Arc<Self>,
        client: ProcessId,
        fid: Fid,
        extent: LockExtent,
    ) -> Result<IoGuard, Errno> {
        self.recovery.check()?;
        let owner = Owner::Io { for_client: client };
        let handle = self.cookie();
        let (res, ()) = self
            .acquire(fid, owner, LockMode::PW, extent, |r, _| {
                r.locks.push(Lock {
                    handle,
                    owner,
                    mode: LockMode::PW,
                    extent,
                    want: extent,
                    cancelling: false,
                })
            })
            .await?;
        Ok(IoGuard { ns: self.clone(), fid, res, handle })
    }

    /// Before a read of `extent` from `client` without a lock: other
    /// clients' overlapping write locks are called back (their cached
    /// writes reach the disk first). Nothing is held.
    pub async fn lock_read(
        self: &Arc<Self>,
        client: ProcessId,
        fid: Fid,
        extent: LockExtent,
    ) -> Result<(), Errno> {
        self.recovery.check()?;
        // The common case, no lock on the object at all, costs a lookup.
        let Some(res) = self.existing(&fid) else { return Ok(()) };
        let owner = Owner::Client(client);
        if res
            .state
            .lock()
            .expect("resource lock")
            .res
            .conflicting(&owner, LockMode::PR, &extent)
            .next()
            .is_none()
        {
            return Ok(());
        }
        self.acquire(fid, owner, LockMode::PR, extent, |_, _| ()).await.map(|_| ())
    }

    /// A stat of `fid` by `client` (Lustre's glimpse enqueue): a PR lock
    /// over the whole object when no other client holds a PW lock on it,
    /// as `enqueue` grants. When some do (a writer at work), they are asked
    /// the size they know instead, and keep their locks and their cached
    /// writes: a stat does not make a writer flush and ask again. Writes
    /// in flight (server-side I/O holds) are not waited for: they have not
    /// returned, so a stat need not see them, and those sent under a PW
    /// lock count in its holder's answer. A holder that does not answer is
    /// called back, as an enqueue would.
    pub async fn glimpse(self: &Arc<Self>, client: ProcessId, fid: Fid) -> Result<Glimpsed, Errno> {
        self.recovery.check()?;
        let owner = Owner::Client(client);
        let writers = self.existing(&fid).map_or_else(Vec::new, |res| {
            let st = res.state.lock().expect("resource lock");
            let conflicts = st.res.conflicting(&owner, LockMode::PR, &LockExtent::WHOLE);
            conflicts.filter(|l| matches!(l.owner, Owner::Client(_))).cloned().collect::<Vec<Lock>>()
        });
        if !writers.is_empty()
            && let Some(sizes) = self.ask_sizes(fid, writers).await
        {
            self.stats.glimpses.fetch_add(1, Ordering::Relaxed);
            return Ok(Glimpsed::Sizes(sizes));
        }
        let (handle, extent) = self.enqueue(client, fid, LockMode::PR, LockExtent::WHOLE).await?;
        Ok(Glimpsed::Granted(handle, extent))
    }

    /// Sends a glimpse callback for each lock, in parallel: the sizes the
    /// holders answered, or None if any did not.
    async fn ask_sizes(self: &Arc<Self>, fid: Fid, locks: Vec<Lock>) -> Option<Vec<u64>> {
        let ep = self.ep.get()?.clone();
        let mut calls = tokio::task::JoinSet::new();
        for l in locks {
            let Owner::Client(holder) = l.owner else { continue };
            let (ep, ns) = (ep.clone(), self.clone());
            calls.spawn(async move {
                let body = encode(&LdlmCallback::Glimpse { target: ns.target, handle: l.handle, fid });
                let call = ep.call(holder, LDLM_CB_PORTAL, opcode::GL_CALLBACK, &body);
                let answer = tokio::time::timeout(ns.cfg.callback_timeout, call).await;
                match answer.map(|r| r.map(|r| decode::<LdlmCallbackReply>("glimpse reply", r.body()))) {
                    Ok(Ok(Ok(LdlmCallbackReply::Glimpsed { size }))) => Some(size),
                    other => {
                        tracing::debug!(ns = %ns.name, client = %holder, %fid, answer = ?other, "glimpse unanswered");
                        None
                    }
                }
            });
        }
        let mut sizes = Vec::new();
        while let Some(r) = calls.join_next().await {
            sizes.push(r.ok().flatten()?);
        }
        Some(sizes)
    }

    /// Waits until nothing conflicts with `mode` on `want` for `owner`,
    /// calling holders back, then runs `grant` under the resource's mutex
    /// with the ranges the holders called back had asked for.
    async fn acquire<T>(
        self: &Arc<Self>,
        fid: Fid,
        owner: Owner,
        mode: LockMode,
        want: LockExtent,
        grant: impl FnOnce(&mut Resource, &[LockExtent]) -> T,
    ) -> Result<(Arc<Res>, T), Errno> {
        let mut grant = Some(grant);
        let mut avoid = Vec::new();
        loop {
            let res = self.resource(fid);
            let blocked = {
                let notified = res.changed.notified();
                tokio::pin!(notified);
                let blocked = {
                    let mut st = res.state.lock().expect("resource lock");
                    if st.dead {
                        continue;
                    }
                    let mut call = Vec::new();
                    let mut wait = false;
                    for l in st.res.locks.iter_mut().filter(|l| l.conflicts(&owner, mode, &want)) {
                        match l.owner {
                            Owner::Client(_) if !l.cancelling => {
                                l.cancelling = true;
                                call.push(l.clone());
                            }
                            _ => wait = true,
                        }
                    }
                    if call.is_empty() && !wait {
                        let t = (grant.take().expect("granted once"))(&mut st.res, &avoid);
                        drop(st);
                        return Ok((res.clone(), t));
                    }
                    // Registered before the mutex goes, so a wake-up that
                    // comes between is not missed.
                    notified.as_mut().enable();
                    if call.is_empty() { Blocked::Wait } else { Blocked::Call(call) }
                };
                match blocked {
                    Blocked::Wait => {
                        notified.await;
                        continue;
                    }
                    Blocked::Call(call) => call,
                }
            };
            avoid.extend(blocked.iter().map(|l| l.want));
            self.call_back(fid, blocked).await?;
        }
    }

    /// Sends a blocking callback for each lock, in parallel, and removes
    /// each once answered; a holder that does not answer in time, or
    /// cannot be reached, is evicted.
    async fn call_back(self: &Arc<Self>, fid: Fid, locks: Vec<Lock>) -> Result<(), Errno> {
        let Some(ep) = self.ep.get().cloned() else {
            // Not serving yet, so no client can have been granted anything.
            return Err(Errno::EAGAIN);
        };
        let mut calls = tokio::task::JoinSet::new();
        for l in locks {
            let Owner::Client(holder) = l.owner else { continue };
            let (ep, ns) = (ep.clone(), self.clone());
            calls.spawn(async move {
                ns.stats.callbacks.fetch_add(1, Ordering::Relaxed);
                let cb =
                    LdlmCallback::Blocking { target: ns.target, handle: l.handle, fid, extent: l.extent };
                let body = encode(&cb);
                let call = ep.call(holder, LDLM_CB_PORTAL, opcode::BL_CALLBACK, &body);
                let answered = match tokio::time::timeout(ns.cfg.callback_timeout, call).await {
                    Ok(Ok(r)) => decode::<LdlmCallbackReply>("callback reply", r.body())
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    // The holder answered, with an error: it does not hold
                    // the lock (any more), so it caches nothing under it.
                    Ok(Err(RpcError::Remote(_))) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer in {:?}", ns.cfg.callback_timeout)),
                };
                match answered {
                    Ok(()) => ns.drop_lock(fid, l.handle),
                    Err(why) => ns.evict(holder, &why),
                }
            });
        }
        while let Some(r) = calls.join_next().await {
            r.map_err(|_| Errno::EIO)?;
        }
        Ok(())
    }

    fn drop_lock(&self, fid: Fid, handle: LockHandle) {
        if let Some(res) = self.existing(&fid) {
            let removed = res.state.lock().expect("resource lock").res.remove(handle);
            res.changed.notify_waiters();
            if removed.is_some() {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Takes every lock `holder` has in this namespace, as Lustre evicts a
    /// client that does not answer a callback, and drops the connection to
    /// it: a holder that is alive but was cut off (a stalled process, a
    /// lost callback) learns it was evicted when it sees the connection
    /// go, and drops the cache its locks covered before serving from it
    /// again, as a Lustre client invalidates an evicted import.
    pub fn evict(self: &Arc<Self>, holder: ProcessId, why: &str) {
        let dropped = self.drop_client(holder);
        // Nothing of it to wait for after a restart.
        let ns = self.clone();
        tokio::spawn(async move { ns.recovery.forget_holder(&ns.name, ClientKey::from(holder)).await });
        self.stats.evictions.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(ns = %self.name, client = %holder, locks = dropped, reason = why, "evicting a client from the lock namespace");
        if let Some(ep) = self.ep.get() {
            ep.tcp().disconnect(holder);
            if let Some(o2ib) = ep.o2ib() {
                o2ib.disconnect(holder);
            }
        }
    }

    /// Drops every lock of `holder`; how many there were.
    pub fn drop_client(&self, holder: ProcessId) -> usize {
        let mut n = 0;
        for res in self.resources() {
            let mut st = res.state.lock().expect("resource lock");
            let before = st.res.locks.len();
            st.res.locks.retain(|l| l.owner != Owner::Client(holder));
            n += before - st.res.locks.len();
            drop(st);
            res.changed.notify_waiters();
        }
        n
    }

    /// The object is gone: so are its locks (its FID is never reused).
    pub fn forget(&self, fid: Fid) {
        if let Some(res) = self.existing(&fid) {
            res.state
                .lock()
                .expect("resource lock")
                .res
                .locks
                .retain(|l| matches!(l.owner, Owner::Io { .. }));
            res.changed.notify_waiters();
        }
        self.tidy(fid);
    }

    /// Drops the locks of holders without a connection at this sweep and
    /// the one before (a reconnect in between keeps them).
    fn sweep(&self) {
        let Some(ep) = self.ep.get() else { return };
        let mut connected: HashSet<ProcessId> = ep.tcp().connected_peers().into_iter().collect();
        if let Some(o2ib) = ep.o2ib() {
            connected.extend(o2ib.connected_peers());
        }
        let holders: HashSet<ProcessId> = self
            .resources()
            .iter()
            .flat_map(|r| {
                let st = r.state.lock().expect("resource lock");
                st.res
                    .locks
                    .iter()
                    .filter_map(|l| match l.owner {
                        Owner::Client(c) => Some(c),
                        Owner::Io { .. } => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let gone: HashSet<ProcessId> = holders.into_iter().filter(|h| !connected.contains(h)).collect();
        let before = std::mem::replace(&mut *self.unreachable.lock().expect("sweep lock"), gone.clone());
        for holder in gone.intersection(&before) {
            let n = self.drop_client(*holder);
            tracing::info!(ns = %self.name, client = %holder, locks = n, "dropped the locks of a client whose connection is gone");
        }
        let fids: Vec<Fid> = self
            .shards
            .iter()
            .flat_map(|s| s.lock().expect("shard lock").keys().copied().collect::<Vec<_>>())
            .collect();
        for fid in fids {
            self.tidy(fid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(pid: u32) -> ProcessId {
        ProcessId { nid: "10.0.0.1@tcp".parse().unwrap(), pid }
    }

    fn ns() -> Arc<Namespace> {
        Namespace::new("filter-t-OST0000_UUID".into(), 0, LdlmConfig::default(), 1, None)
    }

    fn fid() -> Fid {
        Fid::new(Fid::ost_seq(0), 9)
    }

    /// The namespace of a target's second run, whose first run granted
    /// `old` to `holders` (as the file of lock holders says).
    fn restarted(dir: &std::path::Path, holders: &[ProcessId]) -> Arc<Namespace> {
        let file = || ClientFile::new(dir.join("CLIENTS"));
        file().save(&holders.iter().map(|h| ClientKey::from(*h)).collect()).unwrap();
        Namespace::new("filter-t-OST0000_UUID".into(), 0, LdlmConfig::default(), 2, Some(file()))
    }

    #[tokio::test]
    async fn after_a_restart_nothing_is_granted_until_the_holders_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let ns = restarted(dir.path(), &[client(1), client(2)]);
        assert!(ns.recovering());
        let run1 = |n: u64| LockHandle((1 << LockHandle::RUN_SHIFT) | n);
        let (old, forgotten) = (run1(7), run1(9));

        let other = Fid::new(Fid::ost_seq(0), 10);
        let whole = LockExtent::WHOLE;
        // What must wait for the window is refused for now: asked again.
        let in_window = Err(Errno::EINPROGRESS);
        assert_eq!(ns.enqueue(client(3), fid(), LockMode::PW, whole).await.map(|_| ()), in_window);
        assert_eq!(ns.lock_read(client(3), other, whole).await, in_window);
        assert_eq!(ns.lock_io(client(3), other, whole).await.map(|_| ()), in_window);
        assert_eq!(ns.check_gathered(client(1), fid(), old), in_window);

        // Replays are granted at once; a handle of this run is no replay;
        // only a holder of the last run replays, and nothing that conflicts.
        let new = ns.replay(client(1), fid(), LockMode::PW, whole, old).await.unwrap();
        assert_eq!(new.run(), 2);
        assert_eq!(ns.replay(client(1), fid(), LockMode::PW, whole, new).await, Err(Errno::EINVAL));
        assert_eq!(ns.replay(client(3), other, LockMode::PW, whole, run1(8)).await, Err(Errno::ENOLCK));
        assert_eq!(ns.replay(client(2), fid(), LockMode::PW, whole, run1(8)).await, Err(Errno::ENOLCK));
        ns.replay_done(client(1));
        assert!(ns.recovering(), "client 2 has not replayed");
        ns.replay_done(client(2));
        assert!(!ns.recovering());
        assert!(ns.recovery_status().contains("completed_clients: 2/2"));

        // The writes of the replayed lock pass, under its holder only; a
        // newcomer now calls that lock back (no endpoint here: EAGAIN).
        assert_eq!(ns.check_gathered(client(1), fid(), old), Ok(()));
        assert_eq!(ns.check_gathered(client(2), fid(), old), Err(Errno::ENOLCK));
        let newcomer = ns.enqueue(client(3), fid(), LockMode::PW, whole).await;
        assert_eq!(newcomer.map(|_| ()), Err(Errno::EAGAIN));
        assert_eq!(ns.lock_read(client(3), other, whole).await, Ok(()));
        // A lock of the last run that was not replayed is gone for good.
        assert_eq!(ns.check_gathered(client(1), fid(), forgotten), Err(Errno::ENOLCK));
        assert_eq!(ns.replay(client(1), fid(), LockMode::PW, whole, forgotten).await, Err(Errno::ENOLCK));
        assert_eq!(ns.stats().stale_writes.load(Ordering::Relaxed), 2);
        // The file now names this run's holders: the one that replayed and
        // the newcomer (noted before its grant); not client 2, which held
        // nothing to replay.
        let saved = ClientFile::new(dir.path().join("CLIENTS")).load().unwrap();
        assert_eq!(saved, [ClientKey::from(client(1)), ClientKey::from(client(3))].into());
    }

    #[tokio::test]
    async fn a_holder_that_leaves_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let ns = restarted(dir.path(), &[client(1)]);
        assert!(ns.recovering());
        ns.disconnect(client(1)).await;
        assert!(!ns.recovering());
        assert!(ClientFile::new(dir.path().join("CLIENTS")).load().unwrap().is_empty());
        let fresh = restarted(dir.path(), &[]);
        assert!(!fresh.recovering(), "nobody to wait for");
        assert!(fresh.recovery_status().starts_with("status: COMPLETE"));
    }

    #[tokio::test]
    async fn readers_of_one_object_are_all_granted_the_whole_object() {
        let ns = ns();
        for pid in 1..=3 {
            let (_, e) = ns
                .enqueue(client(pid), fid(), LockMode::PR, LockExtent::of_range(0, 4096).unwrap())
                .await
                .unwrap();
            assert_eq!(e, LockExtent::WHOLE);
        }
        assert_eq!(ns.lock_count(), 3);
        assert_eq!(ns.stats().callbacks.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_grant_waits_for_io_over_its_range_and_grows_around_other_io() {
        let ns = ns();
        let io = ns.lock_io(client(1), fid(), LockExtent::new(100, 199).unwrap()).await.unwrap();
        // Clear of the I/O: granted at once, grown up to it.
        let (_, e) =
            ns.enqueue(client(2), fid(), LockMode::PR, LockExtent::new(0, 9).unwrap()).await.unwrap();
        assert_eq!(e, LockExtent::new(0, 99).unwrap());
        // Over it: waits until the I/O is done.
        let ns2 = ns.clone();
        let over = tokio::spawn(async move {
            ns2.enqueue(client(3), fid(), LockMode::PR, LockExtent::new(150, 150).unwrap()).await
        });
        tokio::task::yield_now().await;
        assert!(!over.is_finished());
        drop(io);
        let (_, e) = over.await.unwrap().unwrap();
        assert_eq!(e, LockExtent::WHOLE);
        assert_eq!(ns.lock_count(), 2);
    }

    #[tokio::test]
    async fn cancels_and_evictions_take_locks_and_empty_objects_leave_the_table() {
        let ns = ns();
        let (h, _) = ns.enqueue(client(1), fid(), LockMode::PR, LockExtent::WHOLE).await.unwrap();
        assert_eq!(ns.cancel(client(2), fid(), h), Err(Errno::EPERM), "only the holder cancels");
        ns.cancel(client(1), fid(), h).unwrap();
        assert_eq!(ns.lock_count(), 0);
        assert!(ns.existing(&fid()).is_none());
        ns.enqueue(client(1), fid(), LockMode::PW, LockExtent::WHOLE).await.unwrap();
        ns.evict(client(1), "test");
        assert_eq!(ns.lock_count(), 0);
        assert_eq!(ns.stats().evictions.load(Ordering::Relaxed), 1);
        assert_eq!(
            ns.enqueue(client(1), fid(), LockMode::PR, LockExtent { start: 5, end: 4 }).await,
            Err(Errno::EINVAL)
        );
    }
}
