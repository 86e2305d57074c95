//! The cache of open objects, so an I/O does not pay for `open()` and path
//! lookup every time. It is split into shards, each under its own mutex,
//! so requests for different objects rarely meet on a lock; each shard
//! keeps at most its share of the capacity, evicting the least recently
//! used *idle* handle. A handle some request still holds is never evicted:
//! a second handle for the same object would carry a second range lock and
//! lose the ordering between requests.

use crate::object::ObjectHandle;
use proto::Fid;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

const SHARDS: usize = 64;

#[derive(Debug)]
struct Slot {
    handle: Arc<ObjectHandle>,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Shard {
    clock: u64,
    slots: HashMap<(u64, u32), Slot>,
}

#[derive(Debug)]
pub(crate) struct FdCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl FdCache {
    /// A cache holding about `capacity` idle objects open.
    pub(crate) fn new(capacity: usize) -> FdCache {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        FdCache { shards, per_shard: capacity.div_ceil(SHARDS).max(1) }
    }

    fn shard(&self, fid: Fid) -> MutexGuard<'_, Shard> {
        let h = (fid.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(fid.oid))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let i = (h >> 32) as usize % SHARDS;
        // A shard is a map of handles; a panic elsewhere cannot leave it half-changed.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached handle of `fid`, or a new one from `open`. The open runs
    /// under the shard lock so it cannot race a `remove` of the same object
    /// and cache a descriptor of a destroyed file.
    pub(crate) fn get_or_open<E>(
        &self,
        fid: Fid,
        open: impl FnOnce() -> Result<ObjectHandle, E>,
    ) -> Result<Arc<ObjectHandle>, E> {
        let mut shard = self.shard(fid);
        shard.clock += 1;
        let now = shard.clock;
        let key = (fid.seq, fid.oid);
        if let Some(slot) = shard.slots.get_mut(&key) {
            slot.last_used = now;
            return Ok(slot.handle.clone());
        }
        let handle = Arc::new(open()?);
        if shard.slots.len() >= self.per_shard {
            // Handles are only cloned under this lock, so a count of one
            // means no request is using it and none can start to.
            let victim = shard
                .slots
                .iter()
                .filter(|(_, s)| Arc::strong_count(&s.handle) == 1)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k);
            if let Some(k) = victim {
                shard.slots.remove(&k);
            }
        }
        shard.slots.insert(key, Slot { handle: handle.clone(), last_used: now });
        Ok(handle)
    }

    /// Forgets `fid` and runs `then` (the unlink) before any other request
    /// can open it again.
    pub(crate) fn remove_then<T>(&self, fid: Fid, then: impl FnOnce() -> T) -> T {
        let mut shard = self.shard(fid);
        shard.slots.remove(&(fid.seq, fid.oid));
        then()
    }

    /// Handles held open right now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).slots.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(dir: &std::path::Path, oid: u32) -> std::io::Result<ObjectHandle> {
        let path = dir.join(oid.to_string());
        std::fs::write(&path, b"")?;
        ObjectHandle::open(Fid::new(1, oid), path)
    }

    #[test]
    fn bounded_and_keeps_busy_handles() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FdCache::new(SHARDS);
        let busy = cache.get_or_open(Fid::new(1, 0), || handle(dir.path(), 0)).unwrap();
        for oid in 1..2000 {
            cache.get_or_open(Fid::new(1, oid), || handle(dir.path(), oid)).unwrap();
        }
        assert!(cache.len() <= SHARDS + 1, "cache grew to {}", cache.len());
        let again = cache.get_or_open(Fid::new(1, 0), || handle(dir.path(), 0)).unwrap();
        assert!(Arc::ptr_eq(&busy, &again), "a handle in use was evicted and reopened");
    }

    #[test]
    fn a_hit_does_not_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FdCache::new(16);
        let a = cache.get_or_open(Fid::new(1, 5), || handle(dir.path(), 5)).unwrap();
        let b = cache
            .get_or_open(Fid::new(1, 5), || Err::<ObjectHandle, _>(std::io::Error::other("reopened")))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        cache.remove_then(Fid::new(1, 5), || ());
        assert!(cache.get_or_open(Fid::new(1, 5), || Err::<ObjectHandle, _>("gone")).is_err());
    }
}
