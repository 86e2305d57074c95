//! The registration cache: memory is registered with the HCA once and the
//! registration reused for every later transfer through it, because
//! registering pins and maps pages, which costs far more than a transfer
//! of a few pages.
//!
//! Two kinds of entries share one table, keyed by address range:
//! - a server's own buffers (a pool's region, registered whole), which the
//!   entry keeps alive; it is dropped once nobody else holds the region;
//! - ranges this node exposed to peers, registered exactly (so the rkey a
//!   peer gets covers those bytes and nothing else), kept mapped by the
//!   resolved exposure the entry holds.
//!
//! Entries beyond the byte budget are evicted least recently used first,
//! never while a transfer holds them, and never within a grace period of
//! their last use: a peer given an rkey a moment ago has not posted its
//! RDMA yet, and the owner holds nothing to show it.

use super::{Hca, O2ibError, Registration};
use crate::memory::Region;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after its last use an entry may not be evicted.
const GRACE: Duration = Duration::from_secs(30);

/// Registrations of one HCA.
pub struct RegCache {
    hca: Arc<Hca>,
    budget: usize,
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// By (first byte, end).
    entries: BTreeMap<(u64, u64), Entry>,
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

struct Entry {
    reg: Arc<Registration>,
    used: u64,
    used_at: Instant,
}

/// Counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegCacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

/// How far back from a range's start a lookup walks for an entry that
/// contains it; ranges of one node rarely nest deeper.
const LOOKBACK: usize = 64;

impl Table {
    fn find(&mut self, start: u64, end: u64) -> Option<Arc<Registration>> {
        self.tick += 1;
        let tick = self.tick;
        let found = self
            .entries
            .range_mut(..=(start, u64::MAX))
            .rev()
            .take(LOOKBACK)
            .find(|((s, e), _)| *s <= start && *e >= end)
            .map(|(_, entry)| {
                entry.used = tick;
                entry.used_at = Instant::now();
                entry.reg.clone()
            });
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found
    }

    fn insert(&mut self, reg: Arc<Registration>, budget: usize) {
        self.tick += 1;
        let key = (reg.addr(), reg.addr() + reg.len() as u64);
        self.bytes += reg.len();
        if let Some(old) = self.entries.insert(key, Entry { reg, used: self.tick, used_at: Instant::now() }) {
            self.bytes -= old.reg.len();
        }
        self.evict(budget);
    }

    /// Drops registrations of regions nobody else holds, then the least
    /// recently used idle ones until the table fits its budget.
    fn evict(&mut self, budget: usize) {
        let now = Instant::now();
        let idle = |e: &Entry| Arc::strong_count(&e.reg) == 1 && now.duration_since(e.used_at) >= GRACE;
        let freed: Vec<(u64, u64)> = self
            .entries
            .iter()
            .filter(|(_, e)| idle(e) && e.reg.region().is_some_and(|r| Arc::strong_count(r) == 1))
            .map(|(k, _)| *k)
            .collect();
        for k in freed {
            self.remove(k);
        }
        while self.bytes > budget {
            let victim =
                self.entries.iter().filter(|(_, e)| idle(e)).min_by_key(|(_, e)| e.used).map(|(k, _)| *k);
            match victim {
                Some(k) => self.remove(k),
                None => break,
            }
        }
    }

    fn remove(&mut self, key: (u64, u64)) {
        if let Some(e) = self.entries.remove(&key) {
            self.bytes -= e.reg.len();
        }
    }
}

impl RegCache {
    /// A cache for `hca` that keeps at most `budget` bytes registered
    /// beyond what transfers in flight hold.
    pub fn new(hca: Arc<Hca>, budget: usize) -> RegCache {
        RegCache { hca, budget, inner: Mutex::new(Table::default()) }
    }

    pub fn hca(&self) -> &Arc<Hca> {
        &self.hca
    }

    /// The registration of this node's own `region` (a server's buffer
    /// pool, a client's I/O buffer), registering it on first use.
    pub fn for_region(&self, region: &Arc<Region>) -> Result<Arc<Registration>, O2ibError> {
        let start = region.base() as u64;
        let end = start + region.len() as u64;
        if let Some(reg) = self.inner.lock().expect("reg cache lock").find(start, end) {
            return Ok(reg);
        }
        let reg = Registration::register(&self.hca, region.clone())?;
        tracing::debug!(addr = start, len = region.len(), "o2ib registered a local region");
        self.inner.lock().expect("reg cache lock").insert(reg.clone(), self.budget);
        Ok(reg)
    }

    /// The registration covering `base..base+len`, a range this node
    /// exposed and `keep` holds mapped, registering exactly that range on
    /// first use.
    ///
    /// # Safety
    /// `base..base+len` must be mapped while `keep` lives, and not be
    /// unmapped and mapped again (a different buffer at the same address)
    /// while a registration of it is cached: `keep` must hold the memory.
    pub unsafe fn for_exposed(
        &self,
        base: *mut u8,
        len: usize,
        keep: Box<dyn std::any::Any + Send + Sync>,
    ) -> Result<Arc<Registration>, O2ibError> {
        let start = base as u64;
        let end = start + len as u64;
        if let Some(reg) = self.inner.lock().expect("reg cache lock").find(start, end) {
            return Ok(reg);
        }
        // SAFETY: the caller's contract.
        let reg = unsafe { Registration::register_kept(&self.hca, base, len, keep)? };
        tracing::debug!(addr = start, len, "o2ib registered an exposed range");
        self.inner.lock().expect("reg cache lock").insert(reg.clone(), self.budget);
        Ok(reg)
    }

    pub fn stats(&self) -> RegCacheStats {
        let t = self.inner.lock().expect("reg cache lock");
        RegCacheStats { entries: t.entries.len(), bytes: t.bytes, hits: t.hits, misses: t.misses }
    }
}
