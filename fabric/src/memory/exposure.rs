use super::BulkError;
use super::region::{IoBuf, Region};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a peer may do with an exposed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// The peer may read it (the client's data for a write RPC).
    Read,
    /// The peer may write it (the client's buffer for a read RPC).
    Write,
}

/// What a node hands a peer so the peer may read or write one range of its
/// registered memory: address, length and key, as an RDMA rkey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkHandle {
    pub addr: u64,
    pub len: u64,
    pub key: u64,
}

impl BulkHandle {
    /// The sub-range `[off, off+len)` of this handle, or `None` if it
    /// reaches outside.
    pub fn slice(&self, off: u64, len: u64) -> Option<BulkHandle> {
        let end = off.checked_add(len)?;
        (end <= self.len).then(|| BulkHandle { addr: self.addr + off, len, key: self.key })
    }
}

struct Entry {
    region: Arc<Region>,
    addr: u64,
    len: u64,
    access: Access,
}

const SHARDS: usize = 16;

/// The table of exposed ranges of one node, consulted by the LNDs for every
/// bulk access a peer asks for.
pub struct MemoryRegistry {
    shards: [Mutex<HashMap<u64, Entry>>; SHARDS],
    counter: AtomicU64,
    secret: u64,
}

/// A range exposed to peers; dropping it withdraws the key.
pub struct Exposure {
    registry: Arc<MemoryRegistry>,
    handle: BulkHandle,
}

/// A range a peer may touch now. It holds the region alive while the LND
/// moves bytes in or out.
pub struct Resolved {
    _region: Arc<Region>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the pointer stays valid while `_region` is held.
unsafe impl Send for Resolved {}

impl Resolved {
    /// The bytes to send to the peer.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: validated range of a live region.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Where the peer's bytes go.
    ///
    /// # Safety
    /// Only for ranges exposed with [`Access::Write`]: the owner of that
    /// buffer does not touch it while the exposure is live.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn mix(mut z: u64) -> u64 {
    // splitmix64: keys are unpredictable to a peer that has seen others.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random_u64() -> u64 {
    let mut v = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into v.
    let n = unsafe { libc::getrandom(&mut v as *mut u64 as *mut libc::c_void, 8, 0) };
    if n != 8 {
        v = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
            ^ std::process::id() as u64;
    }
    v
}

impl MemoryRegistry {
    pub fn new() -> Arc<MemoryRegistry> {
        Arc::new(MemoryRegistry {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            counter: AtomicU64::new(1),
            secret: random_u64(),
        })
    }

    fn shard(&self, key: u64) -> &Mutex<HashMap<u64, Entry>> {
        &self.shards[(key as usize) % SHARDS]
    }

    /// Exposes `buf[off..off+len]` to peers for `access`.
    pub fn expose_range(
        self: &Arc<Self>,
        buf: &IoBuf,
        off: usize,
        len: usize,
        access: Access,
    ) -> Result<Exposure, BulkError> {
        if off.checked_add(len).is_none_or(|e| e > buf.len()) {
            return Err(BulkError::OutOfRange {
                addr: buf.addr() + off as u64,
                len: len as u64,
                h_addr: buf.addr(),
                h_len: buf.len() as u64,
            });
        }
        let mut key = mix(self.counter.fetch_add(1, Ordering::Relaxed) ^ self.secret);
        if key == 0 {
            key = 1;
        }
        let handle = BulkHandle { addr: buf.addr() + off as u64, len: len as u64, key };
        let entry = Entry { region: buf.region().clone(), addr: handle.addr, len: handle.len, access };
        self.shard(key).lock().expect("registry lock").insert(key, entry);
        Ok(Exposure { registry: self.clone(), handle })
    }

    /// Exposes the whole buffer.
    pub fn expose(self: &Arc<Self>, buf: &IoBuf, access: Access) -> Exposure {
        self.expose_range(buf, 0, buf.len(), access).expect("whole buffer is in range")
    }

    /// Checks a peer's request to touch `[addr, addr+len)` under `key`.
    pub fn resolve(&self, key: u64, addr: u64, len: u64, wanted: Access) -> Result<Resolved, BulkError> {
        let shard = self.shard(key).lock().expect("registry lock");
        let e = shard.get(&key).ok_or(BulkError::UnknownKey { key })?;
        if e.access != wanted {
            return Err(BulkError::WrongAccess { key, wanted });
        }
        let inside = addr >= e.addr && addr.checked_add(len).is_some_and(|end| end <= e.addr + e.len);
        if !inside {
            return Err(BulkError::OutOfRange { addr, len, h_addr: e.addr, h_len: e.len });
        }
        Ok(Resolved { _region: e.region.clone(), ptr: addr as *mut u8, len: len as usize })
    }

    pub fn exposed_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("registry lock").len()).sum()
    }
}

impl Exposure {
    pub fn handle(&self) -> BulkHandle {
        self.handle
    }
}

impl Drop for Exposure {
    fn drop(&mut self) {
        self.registry.shard(self.handle.key).lock().expect("registry lock").remove(&self.handle.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_every_byte_outside_and_wrong_keys() {
        let reg = MemoryRegistry::new();
        let buf = IoBuf::alloc(8192, None).unwrap();
        let ex = reg.expose_range(&buf, 4096, 1024, Access::Read).unwrap();
        let h = ex.handle();
        assert!(reg.resolve(h.key, h.addr, h.len, Access::Read).is_ok());
        assert!(matches!(reg.resolve(h.key, h.addr - 1, 1, Access::Read), Err(BulkError::OutOfRange { .. })));
        assert!(matches!(
            reg.resolve(h.key, h.addr, h.len + 1, Access::Read),
            Err(BulkError::OutOfRange { .. })
        ));
        assert!(matches!(reg.resolve(h.key, u64::MAX, 2, Access::Read), Err(BulkError::OutOfRange { .. })));
        assert!(matches!(reg.resolve(h.key ^ 1, h.addr, 1, Access::Read), Err(BulkError::UnknownKey { .. })));
        assert!(matches!(reg.resolve(h.key, h.addr, 1, Access::Write), Err(BulkError::WrongAccess { .. })));
        drop(ex);
        assert!(matches!(reg.resolve(h.key, h.addr, 1, Access::Read), Err(BulkError::UnknownKey { .. })));
        assert_eq!(reg.exposed_count(), 0);
    }

    proptest! {
        #[test]
        fn resolve_accepts_exactly_the_exposed_range(off in 0u64..3000, len in 0u64..3000,
                                                      qoff in 0u64..6000, qlen in 0u64..6000) {
            let reg = MemoryRegistry::new();
            let buf = IoBuf::alloc(6000, None).unwrap();
            let ex = reg.expose_range(&buf, off as usize, len as usize, Access::Write).unwrap();
            let h = ex.handle();
            let ok = reg.resolve(h.key, buf.addr() + qoff, qlen, Access::Write).is_ok();
            prop_assert_eq!(ok, qoff >= off && qoff + qlen <= off + len);
        }
    }
}
