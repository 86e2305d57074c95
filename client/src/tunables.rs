//! The client's tunables, named as Lustre's `lctl get_param osc.*.*` names
//! them, and how the ones `lctl set_param` changes on a live mount take
//! effect: the RPC size is an atomic read at the start of each transfer,
//! and each OST's in-flight bound is a semaphore whose size is changed in
//! place (grown by adding permits, shrunk by retiring permits as they come
//! back), so RPCs already in flight finish and the next ones see the new
//! bound.

use crate::client::Client;
use fabric::Errno;
use proto::OstRequest;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The page size `max_pages_per_rpc` counts in, as on Lustre clients.
pub const PAGE_SIZE: usize = 4096;
/// The largest `max_rpcs_in_flight` Lustre accepts (`OSC_MAX_RIF_MAX`).
pub const MAX_RPCS_IN_FLIGHT: usize = 256;

/// Short I/O up to four pages by default, as Lustre clients.
pub const DEFAULT_SHORT_IO_BYTES: usize = 4 * PAGE_SIZE;

/// What a mount starts with; see [`Client::set_max_rpcs_in_flight`] and
/// [`Client::set_max_pages_per_rpc`] for the ones that change while it runs.
#[derive(Clone, Debug)]
pub struct ClientTunables {
    /// Bytes per bulk RPC (`max_pages_per_rpc` × 4 KiB). It is also the
    /// size of each I/O buffer, so it bounds what `max_pages_per_rpc` may
    /// later be raised to.
    pub rpc_size: usize,
    /// RPCs in flight per OST (`max_rpcs_in_flight`).
    pub max_rpcs_in_flight: usize,
    /// Buffers for I/O from memory that was not registered.
    pub io_buffers: usize,
    /// How long a request to a server that does not answer is resent
    /// before the caller gets ETIMEDOUT.
    pub retry_limit: std::time::Duration,
    /// The port the file system's servers listen on.
    pub port: u16,
    /// Read-ahead data the client caches, in MiB (llite's
    /// `max_read_ahead_mb`; 0 turns readahead off).
    pub max_read_ahead_mb: usize,
    /// The widest readahead window of one file, in MiB.
    pub max_read_ahead_per_file_mb: usize,
    /// Reads and writes of up to this many bytes to one object carry their
    /// data inside the RPC instead of a bulk transfer (`short_io_bytes`).
    pub short_io_bytes: usize,
}

impl Default for ClientTunables {
    fn default() -> Self {
        ClientTunables {
            rpc_size: 1 << 20,
            max_rpcs_in_flight: 8,
            io_buffers: 32,
            retry_limit: std::time::Duration::from_secs(120),
            port: fabric::tcp::cluster_port(),
            max_read_ahead_mb: crate::readahead::DEFAULT_MAX_READ_AHEAD_MB,
            max_read_ahead_per_file_mb: crate::readahead::DEFAULT_MAX_READ_AHEAD_PER_FILE_MB,
            short_io_bytes: DEFAULT_SHORT_IO_BYTES,
        }
    }
}

/// A value `set_param` refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunableError {
    #[error("max_rpcs_in_flight: {0} is out of range (1 to {MAX_RPCS_IN_FLIGHT})")]
    RpcsInFlight(usize),
    #[error("max_pages_per_rpc: {0} is not a power of two (pages of 4 KiB)")]
    PagesNotPowerOfTwo(usize),
    #[error(
        "max_pages_per_rpc: {pages} pages ({} KiB) is more than this mount's I/O buffers hold \
         ({max} pages, {} KiB); mount with `-o max_pages_per_rpc=N` to go higher",
        pages * PAGE_SIZE / 1024,
        max * PAGE_SIZE / 1024
    )]
    PagesAbovePool { pages: usize, max: usize },
    #[error("short_io_bytes: {0} is more than {max}", max = proto::MAX_SHORT_IO_BYTES)]
    ShortIo(usize),
    #[error("OST index {0} is not connected to this mount")]
    UnknownOst(u32),
    #[error("max_read_ahead_mb: {0} is more than {max} MiB", max = crate::readahead::MAX_READ_AHEAD_MB)]
    ReadAhead(usize),
    #[error("max_read_ahead_per_file_mb: {mb} is more than max_read_ahead_mb ({max})")]
    ReadAheadPerFile { mb: usize, max: usize },
}

impl TunableError {
    pub fn errno(&self) -> Errno {
        match self {
            TunableError::UnknownOst(_) => Errno::ENODEV,
            _ => Errno::EINVAL,
        }
    }
}

/// Checks a `max_rpcs_in_flight` value.
pub fn check_rpcs_in_flight(n: usize) -> Result<(), TunableError> {
    if (1..=MAX_RPCS_IN_FLIGHT).contains(&n) { Ok(()) } else { Err(TunableError::RpcsInFlight(n)) }
}

/// Checks a `short_io_bytes` value.
pub fn check_short_io_bytes(n: usize) -> Result<(), TunableError> {
    if n <= proto::MAX_SHORT_IO_BYTES { Ok(()) } else { Err(TunableError::ShortIo(n)) }
}

/// Checks a `max_pages_per_rpc` value against the largest the mount's
/// buffers allow (`max` pages).
pub fn check_pages_per_rpc(pages: usize, max: usize) -> Result<(), TunableError> {
    if pages == 0 || !pages.is_power_of_two() {
        return Err(TunableError::PagesNotPowerOfTwo(pages));
    }
    if pages > max {
        return Err(TunableError::PagesAbovePool { pages, max });
    }
    Ok(())
}

/// Which histogram of `rpc_stats` an OST RPC is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Brw {
    Read,
    Write,
    Other,
}

impl Brw {
    pub fn of(req: &OstRequest) -> Brw {
        match req {
            OstRequest::Read { .. } | OstRequest::ReadShort { .. } => Brw::Read,
            OstRequest::Write { .. } | OstRequest::WriteShort { .. } => Brw::Write,
            _ => Brw::Other,
        }
    }
}

/// Lustre's `osc.*.rpc_stats` "rpcs in flight" part: how many bulk RPCs
/// of the same direction were already in flight when each was sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcStats {
    pub read_in_flight: usize,
    pub write_in_flight: usize,
    /// `read[n]`: reads sent while `n` others were in flight.
    pub read: Vec<u64>,
    pub write: Vec<u64>,
}

/// The bound on RPCs in flight to one OST, resizable while RPCs wait on it.
pub(crate) struct InFlight {
    sem: Semaphore,
    limit: AtomicUsize,
    /// Permits to retire as they come back, after a shrink found them in use.
    debt: AtomicUsize,
    resize: Mutex<()>,
    reads: AtomicUsize,
    writes: AtomicUsize,
    read_hist: Box<[AtomicU64]>,
    write_hist: Box<[AtomicU64]>,
}

/// One RPC's place within the bound; dropping it gives the place back.
pub(crate) struct Slot<'a> {
    owner: &'a InFlight,
    permit: Option<SemaphorePermit<'a>>,
    kind: Brw,
}

impl InFlight {
    pub fn new(limit: usize) -> InFlight {
        let limit = limit.clamp(1, MAX_RPCS_IN_FLIGHT);
        let hist = || (0..MAX_RPCS_IN_FLIGHT).map(|_| AtomicU64::new(0)).collect();
        InFlight {
            sem: Semaphore::new(limit),
            limit: AtomicUsize::new(limit),
            debt: AtomicUsize::new(0),
            resize: Mutex::new(()),
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            read_hist: hist(),
            write_hist: hist(),
        }
    }

    pub async fn acquire(&self, kind: Brw) -> Slot<'_> {
        let permit = self.sem.acquire().await.expect("the in-flight semaphore is never closed");
        let (count, hist) = match kind {
            Brw::Read => (&self.reads, &self.read_hist),
            Brw::Write => (&self.writes, &self.write_hist),
            Brw::Other => return Slot { owner: self, permit: Some(permit), kind },
        };
        let others = count.fetch_add(1, Ordering::Relaxed);
        hist[others.min(hist.len() - 1)].fetch_add(1, Ordering::Relaxed);
        Slot { owner: self, permit: Some(permit), kind }
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// RPCs holding a place now.
    pub fn in_flight(&self) -> usize {
        let _g = self.resize.lock().expect("resize lock");
        // Places handed out are the permits that exist (limit plus those
        // still to retire) less the ones free.
        (self.limit() + self.debt.load(Ordering::Relaxed)).saturating_sub(self.sem.available_permits())
    }

    /// Takes one unit of debt if there is any.
    fn take_debt(&self) -> bool {
        self.debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1)).is_ok()
    }

    pub fn set_limit(&self, new: usize) -> Result<(), TunableError> {
        check_rpcs_in_flight(new)?;
        let _g = self.resize.lock().expect("resize lock");
        let old = self.limit.swap(new, Ordering::Relaxed);
        if new > old {
            // Permits still owed from an earlier shrink are forgiven first.
            let grow = new - old;
            let forgiven = match self
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| Some(d - d.min(grow)))
            {
                Ok(d) | Err(d) => d.min(grow),
            };
            self.sem.add_permits(grow - forgiven);
        } else if new < old {
            self.debt.fetch_add(old - new, Ordering::AcqRel);
            // Free permits are retired now, the rest as their RPCs finish.
            while let Ok(p) = self.sem.try_acquire() {
                if self.take_debt() {
                    p.forget();
                } else {
                    break;
                }
            }
        }
        tracing::info!(old, new, "max_rpcs_in_flight changed");
        Ok(())
    }

    pub fn rpc_stats(&self) -> RpcStats {
        let load = |h: &[AtomicU64]| {
            let mut v: Vec<u64> = h.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            while v.last() == Some(&0) {
                v.pop();
            }
            v
        };
        RpcStats {
            read_in_flight: self.reads.load(Ordering::Relaxed),
            write_in_flight: self.writes.load(Ordering::Relaxed),
            read: load(&self.read_hist),
            write: load(&self.write_hist),
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        match self.kind {
            Brw::Read => self.owner.reads.fetch_sub(1, Ordering::Relaxed),
            Brw::Write => self.owner.writes.fetch_sub(1, Ordering::Relaxed),
            Brw::Other => 0,
        };
        if let Some(p) = self.permit.take()
            && self.owner.take_debt()
        {
            p.forget();
        }
    }
}

/// The tunables of a mount that change while it runs.
pub(crate) struct Live {
    rpc_size: AtomicUsize,
    /// The size of each I/O buffer: the most one RPC can carry.
    buffer_size: usize,
}

impl Live {
    pub fn new(t: &ClientTunables) -> Live {
        Live { rpc_size: AtomicUsize::new(t.rpc_size), buffer_size: t.rpc_size }
    }
}

impl Client {
    /// Bytes per bulk RPC now.
    pub fn rpc_size(&self) -> usize {
        self.live.rpc_size.load(Ordering::Relaxed)
    }

    /// `max_pages_per_rpc`: the RPC size in 4 KiB pages.
    pub fn max_pages_per_rpc(&self) -> usize {
        self.rpc_size() / PAGE_SIZE
    }

    /// The largest `max_pages_per_rpc` this mount's I/O buffers allow.
    pub fn max_pages_per_rpc_limit(&self) -> usize {
        self.live.buffer_size / PAGE_SIZE
    }

    /// Checks a `max_pages_per_rpc` value without applying it.
    pub fn check_max_pages_per_rpc(&self, pages: usize) -> Result<(), TunableError> {
        check_pages_per_rpc(pages, self.max_pages_per_rpc_limit())
    }

    /// Sets `max_pages_per_rpc`; transfers that start afterwards use it.
    pub fn set_max_pages_per_rpc(&self, pages: usize) -> Result<(), TunableError> {
        self.check_max_pages_per_rpc(pages)?;
        let old = self.live.rpc_size.swap(pages * PAGE_SIZE, Ordering::Relaxed) / PAGE_SIZE;
        tracing::info!(old, new = pages, "max_pages_per_rpc changed");
        Ok(())
    }

    /// The OSTs this mount has a connection to, in index order.
    pub fn ost_indices(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.osts.read().expect("osts lock").keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// `max_rpcs_in_flight` towards OST `ost`.
    pub fn max_rpcs_in_flight(&self, ost: u32) -> Option<usize> {
        self.osts.read().expect("osts lock").get(&ost).map(|l| l.in_flight.limit())
    }

    /// Sets `max_rpcs_in_flight` towards OST `ost`. RPCs already in flight
    /// finish; no new one starts until fewer than `n` are in flight.
    pub fn set_max_rpcs_in_flight(&self, ost: u32, n: usize) -> Result<(), TunableError> {
        check_rpcs_in_flight(n)?;
        let link = self.osts.read().expect("osts lock").get(&ost).cloned();
        link.ok_or(TunableError::UnknownOst(ost))?.in_flight.set_limit(n)
    }

    /// `short_io_bytes` towards OST `ost`.
    pub fn short_io_bytes(&self, ost: u32) -> Option<usize> {
        self.osts.read().expect("osts lock").get(&ost).map(|l| l.short_io.load(Ordering::Relaxed))
    }

    /// Sets `short_io_bytes` towards OST `ost` (0 sends every transfer by bulk).
    pub fn set_short_io_bytes(&self, ost: u32, n: usize) -> Result<(), TunableError> {
        check_short_io_bytes(n)?;
        let link = self.osts.read().expect("osts lock").get(&ost).cloned();
        link.ok_or(TunableError::UnknownOst(ost))?.short_io.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// RPCs in flight to OST `ost` now.
    pub fn rpcs_in_flight(&self, ost: u32) -> Option<usize> {
        self.osts.read().expect("osts lock").get(&ost).map(|l| l.in_flight.in_flight())
    }

    /// The "rpcs in flight" histograms of OST `ost` (Lustre's `rpc_stats`).
    pub fn rpc_stats(&self, ost: u32) -> Option<RpcStats> {
        self.osts.read().expect("osts lock").get(&ost).map(|l| l.in_flight.rpc_stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(check_rpcs_in_flight(0), Err(TunableError::RpcsInFlight(0)));
        assert_eq!(check_rpcs_in_flight(257), Err(TunableError::RpcsInFlight(257)));
        assert!(check_rpcs_in_flight(256).is_ok());
        assert_eq!(check_pages_per_rpc(3, 256), Err(TunableError::PagesNotPowerOfTwo(3)));
        assert_eq!(check_pages_per_rpc(0, 256), Err(TunableError::PagesNotPowerOfTwo(0)));
        let e = check_pages_per_rpc(512, 256).unwrap_err();
        assert_eq!(e, TunableError::PagesAbovePool { pages: 512, max: 256 });
        assert!(e.to_string().contains("256 pages, 1024 KiB"), "{e}");
        assert_eq!(e.errno(), Errno::EINVAL);
        assert!(check_pages_per_rpc(64, 256).is_ok());
    }

    #[tokio::test]
    async fn a_shrink_waits_for_rpcs_in_flight() {
        let f = InFlight::new(4);
        let held: Vec<_> = futures_lite_all(&f, 4).await;
        assert_eq!(f.in_flight(), 4);
        f.set_limit(2).unwrap();
        assert_eq!(f.limit(), 2);
        // All four are still in flight; none may start until two finished
        // and one more came back.
        assert!(f.sem.try_acquire().is_err());
        let mut held = held.into_iter();
        drop(held.next());
        drop(held.next());
        assert!(f.sem.try_acquire().is_err(), "two retired, two in flight: the bound is met");
        drop(held.next());
        assert_eq!(f.in_flight(), 1);
        let p = f.sem.try_acquire().expect("one place free under the bound of 2");
        drop(p);
        drop(held);
        assert_eq!(f.in_flight(), 0);
        assert_eq!(f.sem.available_permits(), 2);
    }

    async fn futures_lite_all(f: &InFlight, n: usize) -> Vec<Slot<'_>> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(f.acquire(Brw::Write).await);
        }
        v
    }

    #[tokio::test]
    async fn the_histogram_counts_others_in_flight() {
        let f = InFlight::new(3);
        let a = f.acquire(Brw::Write).await;
        let b = f.acquire(Brw::Write).await;
        let r = f.acquire(Brw::Read).await;
        let s = f.rpc_stats();
        assert_eq!(s.write, vec![1, 1]);
        assert_eq!(s.read, vec![1]);
        assert_eq!((s.read_in_flight, s.write_in_flight), (1, 2));
        drop((a, b, r));
        assert_eq!(f.rpc_stats().write_in_flight, 0);
    }

    proptest! {
        /// Any sequence of resizes, acquires and releases keeps the places
        /// handed out plus the free ones equal to the bound once every
        /// place is back.
        #[test]
        fn resizes_settle_on_the_bound(ops in proptest::collection::vec((0u8..3, 1usize..20), 1..60)) {
            let f = InFlight::new(8);
            let mut held = Vec::new();
            for (op, n) in ops {
                match op {
                    0 => f.set_limit(n).unwrap(),
                    1 => if let Ok(p) = f.sem.try_acquire() {
                        held.push(Slot { owner: &f, permit: Some(p), kind: Brw::Other });
                    },
                    _ => { held.pop(); }
                }
                prop_assert!(f.in_flight() == held.len());
            }
            drop(held);
            prop_assert_eq!(f.sem.available_permits(), f.limit());
        }
    }
}
