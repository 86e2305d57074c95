//! Pinned service threads per CPU partition, fed through one bounded queue
//! per partition, as Lustre's ptlrpc services run a set of threads per
//! CPT. Network-side code pushes work into the queue of the partition
//! nearest the data ([`CptPool::submit`]); a full queue is refused at once
//! so the caller applies back-pressure (stops reading the socket, returns
//! no credit) instead of growing memory.
//!
//! Idle threads sleep on a condition variable and are woken by the push
//! that finds them asleep, so an idle service costs nothing and a push to
//! a busy service costs no lock. Handlers may be plain functions
//! ([`CptPool::spawn`]) or async fns run to completion on a current-thread
//! tokio runtime owned by each service thread ([`CptPool::spawn_runtimes`]).

use super::{Cpt, CptError, CptTable, pin_current_thread};
use crate::Errno;
use crossbeam_queue::ArrayQueue;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst, fence};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// How many service threads each partition runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ThreadsPerCpt {
    /// One per physical core of the partition, at least one. Services whose
    /// handlers block on disks should ask for more.
    #[default]
    Auto,
    /// The same number in every partition.
    Fixed(usize),
    /// A number per partition, in partition order.
    PerCpt(Vec<usize>),
}

/// A service pool's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CptPoolConfig {
    /// Prefix of the thread names (`ost_io` gives `ost_io00_001`, as ps
    /// shows Lustre's `ll_ost_io00_001`).
    pub name: String,
    pub threads: ThreadsPerCpt,
    /// Work items each partition's queue holds before `submit` says Full.
    pub queue_depth: usize,
}

impl CptPoolConfig {
    pub fn new(name: impl Into<String>) -> CptPoolConfig {
        CptPoolConfig { name: name.into(), threads: ThreadsPerCpt::Auto, queue_depth: 1024 }
    }
}

/// Who is running a handler: passed to every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceThread {
    /// The partition whose queue the item came from.
    pub cpt: usize,
    /// The thread's number within its partition.
    pub index: usize,
    /// Whether the thread is pinned to its partition's cpus (false where
    /// the container forbids pinning, or the cpus do not exist).
    pub pinned: bool,
}

/// A work item that was not queued, handed back to the caller.
pub enum SubmitError<T> {
    /// The partition's queue is full: back off.
    Full(T),
    /// The pool is shutting down.
    Closed(T),
    /// There is no such partition.
    NoSuchCpt(T),
}

impl<T> SubmitError<T> {
    pub fn into_inner(self) -> T {
        match self {
            SubmitError::Full(t) | SubmitError::Closed(t) | SubmitError::NoSuchCpt(t) => t,
        }
    }

    pub fn errno(&self) -> Errno {
        match self {
            SubmitError::Full(_) => Errno::EAGAIN,
            SubmitError::Closed(_) => Errno::ESHUTDOWN,
            SubmitError::NoSuchCpt(_) => Errno::EINVAL,
        }
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "Full(..)",
            SubmitError::Closed(_) => "Closed(..)",
            SubmitError::NoSuchCpt(_) => "NoSuchCpt(..)",
        })
    }
}

impl<T> fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "service queue full",
            SubmitError::Closed(_) => "service is shutting down",
            SubmitError::NoSuchCpt(_) => "no such CPU partition",
        })
    }
}

impl<T> std::error::Error for SubmitError<T> {}

/// What [`CptPool::shutdown`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Threads that exited and were joined by this call.
    pub threads_joined: usize,
    /// Handler calls that panicked over the pool's life (each was logged
    /// and its thread went on serving).
    pub handler_panics: u64,
}

/// One partition's queue and the sleep/wake state of its threads.
struct Partition<T> {
    queue: ArrayQueue<T>,
    /// Threads asleep or about to sleep; a push wakes one only when this
    /// is non-zero, so a busy service takes no lock on push.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

struct Shared<T> {
    parts: Vec<Partition<T>>,
    /// Set first at shutdown: `submit` refuses from then on.
    closing: AtomicBool,
    /// Submits between their `closing` check and their push.
    submitting: AtomicUsize,
    /// Set once no submit is in flight: threads drain their queue and exit.
    stop: AtomicBool,
    handler_panics: AtomicU64,
}

impl<T> Partition<T> {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a poisoned one is as good as new.
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Service threads for every CPU partition, each partition with its own
/// bounded queue of `T`.
pub struct CptPool<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    per_cpt: Vec<usize>,
}

impl<T: Send + 'static> CptPool<T> {
    /// Starts the threads; each pops items of its partition and calls
    /// `handler`. Returns when every thread is pinned and serving.
    pub fn spawn<H>(table: &CptTable, config: &CptPoolConfig, handler: H) -> Result<CptPool<T>, CptError>
    where
        H: Fn(ServiceThread, T) + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        CptPool::start(table, config, move |me| {
            let handler = Arc::clone(&handler);
            Ok(move |item| handler(me, item))
        })
    }

    /// As [`CptPool::spawn`], for async handlers: every service thread owns
    /// a current-thread tokio runtime (I/O and timers enabled) and runs
    /// each item's future to completion on it (inside a `LocalSet`, so
    /// `spawn_local` works) before taking the next: a partition serves as
    /// many items at once as it has threads. Tasks a handler spawns there
    /// and does not await only progress while a later item is handled; run
    /// background work on another runtime.
    pub fn spawn_runtimes<H, F>(
        table: &CptTable,
        config: &CptPoolConfig,
        handler: H,
    ) -> Result<CptPool<T>, CptError>
    where
        H: Fn(ServiceThread, T) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + 'static,
    {
        let handler = Arc::new(handler);
        CptPool::start(table, config, move |me| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
            // A LocalSet, so handlers may `spawn_local` work that is not Send.
            let local = tokio::task::LocalSet::new();
            let handler = Arc::clone(&handler);
            Ok(move |item| local.block_on(&runtime, handler(me, item)))
        })
    }

    /// Starts `threads` per partition; `make_runner` runs on each new
    /// thread after pinning and returns what handles one item there.
    fn start<M, R>(table: &CptTable, config: &CptPoolConfig, make_runner: M) -> Result<CptPool<T>, CptError>
    where
        M: Fn(ServiceThread) -> Result<R, String> + Send + Sync + 'static,
        R: FnMut(T),
    {
        let per_cpt = thread_counts(table, config)?;
        let shared = Arc::new(Shared {
            parts: table
                .cpts()
                .iter()
                .map(|_| Partition {
                    queue: ArrayQueue::new(config.queue_depth),
                    sleepers: AtomicUsize::new(0),
                    lock: Mutex::new(()),
                    wake: Condvar::new(),
                })
                .collect(),
            closing: AtomicBool::new(false),
            submitting: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            handler_panics: AtomicU64::new(0),
        });
        let pool = CptPool { shared, threads: Mutex::new(Vec::new()), per_cpt };
        let make_runner = Arc::new(make_runner);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), CptError>>();
        let mut started = 0;
        for (cpt, &count) in table.cpts().iter().zip(&pool.per_cpt) {
            for index in 0..count {
                let name = format!("{}{:02}_{:03}", config.name, cpt.id(), index + 1);
                let (shared, make_runner, ready) =
                    (Arc::clone(&pool.shared), Arc::clone(&make_runner), ready_tx.clone());
                let cpt = cpt.clone();
                let thread_name = name.clone();
                let spawned = std::thread::Builder::new().name(name.clone()).spawn(move || {
                    let me = ServiceThread { cpt: cpt.id(), index, pinned: pin(&thread_name, &cpt) };
                    match make_runner(me) {
                        Ok(runner) => {
                            let _ = ready.send(Ok(()));
                            drop((ready, make_runner));
                            serve(&shared, me.cpt, runner);
                        }
                        Err(reason) => {
                            let _ = ready.send(Err(CptError::ThreadStart { name: thread_name, reason }));
                        }
                    }
                });
                match spawned {
                    Ok(handle) => {
                        pool.threads.lock().unwrap_or_else(PoisonError::into_inner).push(handle);
                        started += 1;
                    }
                    Err(e) => {
                        pool.shutdown();
                        return Err(CptError::ThreadStart { name, reason: e.to_string() });
                    }
                }
            }
        }
        drop(ready_tx);
        for _ in 0..started {
            // A thread that dies before reporting drops its sender; the
            // channel then ends early and we report that.
            let outcome = ready_rx.recv().unwrap_or_else(|_| {
                Err(CptError::ThreadStart {
                    name: config.name.clone(),
                    reason: "thread died starting".into(),
                })
            });
            if let Err(e) = outcome {
                pool.shutdown();
                return Err(e);
            }
        }
        tracing::debug!(service = %config.name, threads = ?pool.per_cpt, depth = config.queue_depth, "service started");
        Ok(pool)
    }

    /// Queues `item` for a thread of partition `cpt`, waking one if all
    /// are asleep. Never blocks.
    pub fn submit(&self, cpt: usize, item: T) -> Result<(), SubmitError<T>> {
        let Some(part) = self.shared.parts.get(cpt) else {
            return Err(SubmitError::NoSuchCpt(item));
        };
        // Announce the push before checking `closing`, so shutdown either
        // sees it in flight or this call sees shutdown (both SeqCst).
        self.shared.submitting.fetch_add(1, SeqCst);
        if self.shared.closing.load(SeqCst) {
            self.shared.submitting.fetch_sub(1, SeqCst);
            return Err(SubmitError::Closed(item));
        }
        let pushed = part.queue.push(item);
        self.shared.submitting.fetch_sub(1, SeqCst);
        if let Err(item) = pushed {
            return Err(SubmitError::Full(item));
        }
        // Pairs with the fence in `serve`: either a sleeper sees our item on
        // its re-check, or we see it counted and wake it.
        fence(SeqCst);
        if part.sleepers.load(SeqCst) > 0 {
            let _guard = part.lock();
            part.wake.notify_one();
        }
        Ok(())
    }

    /// Number of partitions.
    pub fn len(&self) -> usize {
        self.shared.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.parts.is_empty()
    }

    /// Service threads of partition `cpt`.
    pub fn threads_in(&self, cpt: usize) -> usize {
        self.per_cpt.get(cpt).copied().unwrap_or(0)
    }

    /// Items waiting in partition `cpt`'s queue.
    pub fn queued(&self, cpt: usize) -> usize {
        self.shared.parts.get(cpt).map_or(0, |p| p.queue.len())
    }

    /// Stops taking work, lets the threads finish everything already
    /// queued, and joins them. Later calls (and drop) find nothing to do.
    /// A handler may call this; its own thread is then left to exit by
    /// itself rather than joined.
    pub fn shutdown(&self) -> ShutdownReport {
        let shared = &self.shared;
        shared.closing.store(true, SeqCst);
        // A submit in flight is between two atomic operations: a short wait.
        while shared.submitting.load(SeqCst) != 0 {
            std::thread::yield_now();
        }
        shared.stop.store(true, SeqCst);
        for part in &shared.parts {
            let _guard = part.lock();
            part.wake.notify_all();
        }
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let me = std::thread::current().id();
        let mut threads_joined = 0;
        for handle in handles {
            if handle.thread().id() == me {
                continue;
            }
            let name = handle.thread().name().unwrap_or("?").to_string();
            match handle.join() {
                Ok(()) => threads_joined += 1,
                Err(_) => tracing::error!(thread = %name, "service thread panicked outside a handler"),
            }
        }
        ShutdownReport { threads_joined, handler_panics: shared.handler_panics.load(SeqCst) }
    }
}

impl<T: Send + 'static> Drop for CptPool<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn thread_counts(table: &CptTable, config: &CptPoolConfig) -> Result<Vec<usize>, CptError> {
    let bad = |reason: String| Err(CptError::PoolConfig(format!("{}: {reason}", config.name)));
    if table.is_empty() {
        return bad("no CPU partitions".into());
    }
    if config.queue_depth == 0 {
        return bad("queue depth must be at least 1".into());
    }
    let counts = match &config.threads {
        ThreadsPerCpt::Auto => table.cpts().iter().map(|c| c.core_count().max(1)).collect(),
        ThreadsPerCpt::Fixed(n) => vec![*n; table.len()],
        ThreadsPerCpt::PerCpt(v) if v.len() != table.len() => {
            return bad(format!("{} thread counts for {} partitions", v.len(), table.len()));
        }
        ThreadsPerCpt::PerCpt(v) => v.clone(),
    };
    if let Some(cpt) = counts.iter().position(|&n| n == 0) {
        return bad(format!("partition {cpt} would have no threads"));
    }
    Ok(counts)
}

/// Pins the calling thread to its partition and prefers the partition's
/// memory; either failing costs locality, not correctness, so it is a
/// warning.
pub(crate) fn pin(name: &str, cpt: &Cpt) -> bool {
    if let Err(e) = crate::numa::prefer_node_for_current_thread(cpt.home_node()) {
        tracing::debug!(thread = %name, node = cpt.home_node(), error = %e, "thread memory stays unbound");
    }
    match pin_current_thread(cpt.cpus()) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(thread = %name, cpt = cpt.id(), cpus = ?cpt.cpus(), error = %e,
                "cannot pin service thread; it runs unpinned");
            false
        }
    }
}

/// A service thread's life: take items until shutdown has drained the
/// queue, sleeping whenever the queue is empty.
fn serve<T>(shared: &Shared<T>, cpt: usize, mut run: impl FnMut(T)) {
    let part = &shared.parts[cpt];
    loop {
        while let Some(item) = part.queue.pop() {
            if catch_unwind(AssertUnwindSafe(|| run(item))).is_err() {
                shared.handler_panics.fetch_add(1, SeqCst);
                tracing::error!(cpt, "service handler panicked; item dropped");
            }
        }
        if shared.stop.load(SeqCst) {
            // No submit can run any more: the queue only shrinks now.
            if part.queue.is_empty() {
                return;
            }
            continue;
        }
        let guard = part.lock();
        part.sleepers.fetch_add(1, SeqCst);
        fence(SeqCst);
        // Re-check after announcing ourselves: a push that missed the count
        // is visible here, and one that saw it must take the lock we hold
        // until `wait` releases it, so its notify cannot be lost.
        let guard = if part.queue.is_empty() && !shared.stop.load(SeqCst) {
            part.wake.wait(guard).unwrap_or_else(PoisonError::into_inner)
        } else {
            guard
        };
        part.sleepers.fetch_sub(1, SeqCst);
        drop(guard);
    }
}

#[cfg(test)]
mod tests;
