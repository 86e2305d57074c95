//! Request dispatch onto service threads, as ptlrpc hands requests from
//! LNet to a service's threads on the request's CPT.
//!
//! The network side (an LND's reader task) never runs a handler itself: it
//! pushes the request into the bounded crossbeam queue of the peer's
//! partition and wakes a thread there. Each service thread is pinned to its
//! partition and owns a current-thread tokio runtime that stays up for the
//! service's life, so a handler may await bulk, disks or other servers, and
//! one thread serves many requests at once without blocking the network.
//! The queue is bounded by what the peers' credits let them send; a full
//! queue is counted and the request served on the network runtime rather
//! than refused, since the client would only resend it.
//!
//! A server's threads can also run the network side of the peers of their
//! partition (`network`: the tcp LND reads those peers' sockets there, as
//! socklnd runs a scheduler per CPT). A request then goes through the queue
//! without waking another thread, which on a VM costs more than the rest
//! of a small request (loopback round trip p50 22.3 -> 20.8 us; with no
//! hand-off at all it is 16 us).

use crate::ProcessId;
use crate::cpt::{CptError, CptPoolConfig, CptTable, pool::pin, pool::thread_counts};
use crossbeam_queue::ArrayQueue;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

/// A request's whole service: run the handler, send the reply.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Partition {
    queue: ArrayQueue<Job>,
    /// Wakes whichever thread of the partition sleeps.
    ready: Notify,
    /// Wakes one given thread: the one that queued the job itself, from a
    /// network task it runs.
    own: Vec<Notify>,
}

struct Shared {
    parts: Vec<Partition>,
    closing: AtomicBool,
    /// Jobs queued by a thread of their own partition, which needed no
    /// wake-up.
    in_place: AtomicU64,
}

/// The service threads of one endpoint, per CPT.
pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    threads: Vec<usize>,
    /// Each thread's runtime, per partition.
    runtimes: Vec<Vec<tokio::runtime::Handle>>,
}

thread_local! {
    /// The dispatcher, partition and index of the service thread running
    /// here, if this is one.
    static SERVING: std::cell::Cell<Option<(usize, usize, usize)>> = const { std::cell::Cell::new(None) };
}

/// Peers spread over partitions and threads by a hash that stays the same
/// for the life of the process.
fn peer_hash(peer: ProcessId) -> u64 {
    use std::hash::{Hash, Hasher};
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    peer.hash(&mut h);
    // splitmix64's finish, so that every bit depends on every input byte.
    let mut z = h.finish();
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Dispatcher {
    /// Starts `config.threads` pinned threads per partition of `table`.
    /// With `network`, their runtimes can also drive sockets (see
    /// `runtime_for`); without it they keep timers only, since a thread
    /// without an I/O driver parks on a futex, which another thread wakes
    /// faster and steadier than an epoll (small-RPC p50 22 us every run,
    /// against 22-80 us).
    pub(crate) fn start(
        table: &CptTable,
        config: &CptPoolConfig,
        network: bool,
    ) -> Result<Dispatcher, CptError> {
        let threads = thread_counts(table, config)?;
        let shared = Arc::new(Shared {
            parts: threads
                .iter()
                .map(|&n| Partition {
                    queue: ArrayQueue::new(config.queue_depth),
                    ready: Notify::new(),
                    own: (0..n).map(|_| Notify::new()).collect(),
                })
                .collect(),
            closing: AtomicBool::new(false),
            in_place: AtomicU64::new(0),
        });
        let id = Arc::as_ptr(&shared) as usize;
        // Made first, so that a thread failing to start stops the others.
        let mut dispatcher = Dispatcher { shared, threads: threads.clone(), runtimes: Vec::new() };
        for (part, (cpt, &count)) in table.cpts().iter().zip(&threads).enumerate() {
            let mut handles = Vec::with_capacity(count);
            for index in 0..count {
                let name = format!("{}{:02}_{:03}", config.name, cpt.id(), index + 1);
                let mut builder = tokio::runtime::Builder::new_current_thread();
                builder.enable_time();
                if network {
                    builder.enable_io();
                }
                let runtime = builder
                    .build()
                    .map_err(|e| CptError::ThreadStart { name: name.clone(), reason: e.to_string() })?;
                handles.push(runtime.handle().clone());
                let (shared, cpt, thread_name) = (dispatcher.shared.clone(), cpt.clone(), name.clone());
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || {
                        pin(&thread_name, &cpt);
                        SERVING.set(Some((id, part, index)));
                        runtime.block_on(serve(&shared, part, index));
                    })
                    .map_err(|e| CptError::ThreadStart { name, reason: e.to_string() })?;
            }
            dispatcher.runtimes.push(handles);
        }
        tracing::debug!(service = %config.name, threads = ?threads, depth = config.queue_depth, network, "rpc service threads started");
        Ok(dispatcher)
    }

    /// The partition that serves `peer`: a hash of its id, so one peer's
    /// requests stay on one partition and peers spread over all of them.
    pub(crate) fn cpt_of(&self, peer: ProcessId) -> usize {
        (peer_hash(peer) % self.shared.parts.len() as u64) as usize
    }

    /// The runtime of the service thread that runs `peer`'s network side:
    /// one thread of `peer`'s partition, the same one every time.
    pub(crate) fn runtime_for(&self, peer: ProcessId) -> tokio::runtime::Handle {
        let handles = &self.runtimes[self.cpt_of(peer)];
        handles[((peer_hash(peer) >> 32) % handles.len() as u64) as usize].clone()
    }

    /// Queues `job` on partition `cpt` and wakes one of its threads. A full
    /// queue, or a dispatcher shutting down, hands the job back.
    pub(crate) fn submit(&self, cpt: usize, job: Job) -> Result<(), Job> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(job);
        }
        let cpt = cpt % self.shared.parts.len();
        let part = &self.shared.parts[cpt];
        part.queue.push(job)?;
        match SERVING.get() {
            // Queued by one of this partition's own threads: that thread
            // serves it as soon as the network task that queued it yields.
            Some((id, p, index)) if id == Arc::as_ptr(&self.shared) as usize && p == cpt => {
                self.shared.in_place.fetch_add(1, Ordering::Relaxed);
                part.own[index].notify_one()
            }
            _ => part.ready.notify_one(),
        }
        Ok(())
    }

    /// Jobs queued by a thread of their own partition (see the module).
    pub(crate) fn queued_in_place(&self) -> u64 {
        self.shared.in_place.load(Ordering::Relaxed)
    }

    /// Service threads per partition.
    pub(crate) fn threads(&self) -> &[usize] {
        &self.threads
    }
}

impl Drop for Dispatcher {
    /// Stops the threads; requests they were serving are dropped with their
    /// runtime, as the endpoint that owned them is gone.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        for (part, &count) in self.shared.parts.iter().zip(&self.threads) {
            part.ready.notify_waiters();
            for _ in 0..count {
                part.ready.notify_one();
            }
        }
    }
}

/// A service thread's life: spawn every queued request as a task of this
/// thread's runtime, then sleep until the next push.
async fn serve(shared: &Shared, part: usize, index: usize) {
    let part = &shared.parts[part];
    loop {
        while let Some(job) = part.queue.pop() {
            tokio::spawn(job);
        }
        if shared.closing.load(Ordering::Acquire) {
            return;
        }
        let (woken, mine) = (part.ready.notified(), part.own[index].notified());
        tokio::pin!(woken, mine);
        // Registered before the re-check, so a push between the check and
        // the await still wakes this thread.
        woken.as_mut().enable();
        mine.as_mut().enable();
        if part.queue.is_empty() && !shared.closing.load(Ordering::Acquire) {
            tokio::select! {
                _ = woken => {}
                _ = mine => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Nid;
    use crate::cpt::{CptConfig, ThreadsPerCpt, TopologyDesc};
    use std::sync::Mutex;
    use std::sync::mpsc;

    fn two_cpts() -> CptTable {
        // Two NUMA nodes of one core each: cpus 0 and 1, as this machine has.
        let topo = TopologyDesc::uniform(1, 2, 1, 1, 1 << 30).unwrap();
        CptTable::new(&topo, &CptConfig::PerNumaNode).unwrap()
    }

    fn config(threads: usize, depth: usize) -> CptPoolConfig {
        let mut c = CptPoolConfig::new("test_rpc");
        c.threads = ThreadsPerCpt::Fixed(threads);
        c.queue_depth = depth;
        c
    }

    #[test]
    fn runs_jobs_on_named_service_threads_of_the_partition() {
        let d = Dispatcher::start(&two_cpts(), &config(2, 64), false).unwrap();
        assert_eq!(d.threads(), &[2, 2]);
        let (tx, rx) = mpsc::channel();
        for cpt in 0..2 {
            for _ in 0..10 {
                let tx = tx.clone();
                let job: Job = Box::pin(async move {
                    tx.send((cpt, std::thread::current().name().unwrap_or("").to_string())).unwrap();
                });
                d.submit(cpt, job).map_err(|_| "refused").unwrap();
            }
        }
        for _ in 0..20 {
            let (cpt, name) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
            assert!(name.starts_with(&format!("test_rpc{cpt:02}_")), "{name} served cpt {cpt}");
        }
    }

    #[test]
    fn one_thread_serves_many_requests_that_wait() {
        // Twenty jobs each wait for a gate that opens only once all have
        // started: one thread must hold them all at once.
        let d = Dispatcher::start(&two_cpts(), &config(1, 64), false).unwrap();
        let started = Arc::new(Mutex::new(0usize));
        let gate = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel();
        for _ in 0..20 {
            let (started, gate, tx) = (started.clone(), gate.clone(), tx.clone());
            let job: Job = Box::pin(async move {
                let open = gate.notified();
                tokio::pin!(open);
                open.as_mut().enable();
                let all = {
                    let mut n = started.lock().unwrap();
                    *n += 1;
                    *n == 20
                };
                if all {
                    gate.notify_waiters();
                } else {
                    open.await;
                }
                tx.send(()).unwrap();
            });
            d.submit(0, job).map_err(|_| "refused").unwrap();
        }
        for _ in 0..20 {
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        }
    }

    #[test]
    fn a_full_queue_hands_the_job_back() {
        let d = Dispatcher::start(&two_cpts(), &config(1, 1), false).unwrap();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let (running, is_running) = mpsc::channel();
        // Block the only thread of partition 0, then fill its queue of one.
        let g = gate.clone();
        let blocker: Job = Box::pin(async move {
            running.send(()).unwrap();
            g.wait();
        });
        d.submit(0, blocker).map_err(|_| "refused").unwrap();
        is_running.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        let refused = (0..3).filter(|_| d.submit(0, Box::pin(async {})).is_err()).count();
        gate.wait();
        assert_eq!(refused, 2);
        // Partition 1 was never blocked.
        assert!(d.submit(1, Box::pin(async {})).is_ok());
    }

    #[test]
    fn peers_spread_over_partitions_and_stay_put() {
        let d = Dispatcher::start(&two_cpts(), &config(1, 4), false).unwrap();
        let mut seen = [0usize; 2];
        for i in 0..64u32 {
            let peer = ProcessId { nid: format!("10.0.0.{i}@tcp").parse::<Nid>().unwrap(), pid: i };
            let cpt = d.cpt_of(peer);
            assert_eq!(cpt, d.cpt_of(peer));
            seen[cpt] += 1;
        }
        assert!(seen[0] > 8 && seen[1] > 8, "{seen:?}");
    }

    #[test]
    fn dropping_stops_the_threads() {
        let d = Dispatcher::start(&two_cpts(), &config(2, 4), false).unwrap();
        let shared = Arc::downgrade(&d.shared);
        drop(d);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while shared.strong_count() > 0 {
            assert!(std::time::Instant::now() < deadline, "service threads still running");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
