use super::BulkError;
use super::region::{IoBuf, Region};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What a peer may do with an exposed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// The peer may read it (the client's data for a write RPC).
    Read,
    /// The peer may write it (the client's buffer for a read RPC).
    Write,
}

/// What a node hands a peer so the peer may read or write one range of its
/// registered memory: address, length and key, as an RDMA rkey. When the
/// node has an o2ib NI the range is also registered with its HCA for
/// exactly that access, and `rkey` names the registration, so the peer
/// RDMAs at once (as o2iblnd's `kib_rdma_desc` carries it) and the HCA
/// refuses any byte outside it; the tcp LND checks `key` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkHandle {
    pub addr: u64,
    pub len: u64,
    pub key: u64,
    pub rkey: Option<u32>,
}

/// Bytes of a handle in its fixed encoding ([`BulkHandle::to_bytes`]).
pub const HANDLE_LEN: usize = 29;

/// Why bytes are not a bulk handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    #[error("a bulk handle is {HANDLE_LEN} bytes, got {0} (24 is the older form without an rkey)")]
    Length(usize),
    #[error("unknown bulk handle flags {0:#x}")]
    Flags(u8),
    #[error("bulk handle without an rkey flag carries rkey {0:#x}")]
    StrayRkey(u32),
}

const HAS_RKEY: u8 = 1;

impl BulkHandle {
    /// The sub-range `[off, off+len)` of this handle, or `None` if it
    /// reaches outside.
    pub fn slice(&self, off: u64, len: u64) -> Option<BulkHandle> {
        let end = off.checked_add(len)?;
        (end <= self.len).then(|| BulkHandle { addr: self.addr + off, len, ..*self })
    }

    /// The fixed encoding, for messages that carry a handle without the
    /// codec: `addr u64 | len u64 | key u64 | flags u8 | rkey u32`, little
    /// endian, flags bit 0 saying whether `rkey` is there.
    pub fn to_bytes(&self) -> [u8; HANDLE_LEN] {
        let mut b = [0u8; HANDLE_LEN];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.key.to_le_bytes());
        if let Some(rkey) = self.rkey {
            b[24] = HAS_RKEY;
            b[25..29].copy_from_slice(&rkey.to_le_bytes());
        }
        b
    }

    /// Decodes exactly [`HANDLE_LEN`] bytes of [`BulkHandle::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<BulkHandle, HandleError> {
        let b: &[u8; HANDLE_LEN] = b.try_into().map_err(|_| HandleError::Length(b.len()))?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let rkey = u32::from_le_bytes(b[25..29].try_into().expect("4 bytes"));
        let rkey = match b[24] {
            0 if rkey == 0 => None,
            0 => return Err(HandleError::StrayRkey(rkey)),
            HAS_RKEY => Some(rkey),
            f => return Err(HandleError::Flags(f)),
        };
        Ok(BulkHandle { addr: u64_at(0), len: u64_at(8), key: u64_at(16), rkey })
    }
}

/// Registers exposed ranges with an RDMA device, so their handles carry an
/// rkey. The o2ib NI of a node installs one in its registry.
pub trait RemoteKeys: Send + Sync + 'static {
    /// Registers `[addr, addr+len)` of `region` for exactly `access` by
    /// peers; returns the rkey and what deregisters it when dropped.
    fn register(
        &self,
        region: &Arc<Region>,
        addr: u64,
        len: u64,
        access: Access,
    ) -> std::io::Result<(u32, Box<dyn std::any::Any + Send + Sync>)>;
}

struct Entry {
    region: Arc<Region>,
    addr: u64,
    len: u64,
    access: Access,
    /// The HCA registration behind the handle's rkey: dropped with the
    /// entry, so the rkey dies when the exposure does.
    _rdma: Option<Box<dyn std::any::Any + Send + Sync>>,
}

const SHARDS: usize = 16;

/// The table of exposed ranges of one node, consulted by the LNDs for every
/// bulk access a peer asks for.
pub struct MemoryRegistry {
    shards: [Mutex<HashMap<u64, Entry>>; SHARDS],
    counter: AtomicU64,
    secret: u64,
    rdma: OnceLock<Arc<dyn RemoteKeys>>,
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
            rdma: OnceLock::new(),
        })
    }

    /// Makes every later exposure register its range with `keys` too. The
    /// first caller wins (one o2ib NI per registry); `false` for the rest.
    pub fn set_remote_keys(&self, keys: Arc<dyn RemoteKeys>) -> bool {
        self.rdma.set(keys).is_ok()
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
        let mut handle = BulkHandle { addr: buf.addr() + off as u64, len: len as u64, key, rkey: None };
        // A range the HCA cannot register still goes by the owner's check
        // (the o2ib LND asks for a grant), so this is not an error.
        let rdma = match self.rdma.get() {
            Some(keys) if len > 0 => match keys.register(buf.region(), handle.addr, handle.len, access) {
                Ok((rkey, reg)) => {
                    handle.rkey = Some(rkey);
                    Some(reg)
                }
                Err(e) => {
                    tracing::warn!(error = %e, addr = handle.addr, len, "cannot register an exposed range for RDMA");
                    None
                }
            },
            _ => None,
        };
        let entry =
            Entry { region: buf.region().clone(), addr: handle.addr, len: handle.len, access, _rdma: rdma };
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
        // Deregistration happens after the lock is released: it is a
        // system call that waits for the HCA.
        let gone =
            self.registry.shard(self.handle.key).lock().expect("registry lock").remove(&self.handle.key);
        drop(gone);
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

    #[test]
    fn the_older_handle_form_and_bad_flags_are_refused() {
        let h = BulkHandle { addr: 1, len: 2, key: 3, rkey: None };
        assert_eq!(BulkHandle::from_bytes(&h.to_bytes()[..24]), Err(HandleError::Length(24)));
        let mut b = h.to_bytes();
        b[24] = 2;
        assert_eq!(BulkHandle::from_bytes(&b), Err(HandleError::Flags(2)));
        let mut b = h.to_bytes();
        b[25] = 7;
        assert_eq!(BulkHandle::from_bytes(&b), Err(HandleError::StrayRkey(7)));
    }

    struct Keys(std::sync::atomic::AtomicUsize, Arc<AtomicU64>);

    struct Reg(Arc<AtomicU64>);

    impl Drop for Reg {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl RemoteKeys for Keys {
        fn register(
            &self,
            _: &Arc<Region>,
            _: u64,
            len: u64,
            access: Access,
        ) -> std::io::Result<(u32, Box<dyn std::any::Any + Send + Sync>)> {
            if access == Access::Write && len > 4096 {
                return Err(std::io::Error::other("too big"));
            }
            let n = self.0.fetch_add(1, Ordering::Relaxed) as u32;
            Ok((0x100 + n, Box::new(Reg(self.1.clone()))))
        }
    }

    #[test]
    fn an_exposure_carries_its_rkey_and_deregisters_when_withdrawn() {
        let reg = MemoryRegistry::new();
        let dropped = Arc::new(AtomicU64::new(0));
        assert!(reg.set_remote_keys(Arc::new(Keys(Default::default(), dropped.clone()))));
        assert!(
            !reg.set_remote_keys(Arc::new(Keys(Default::default(), dropped.clone()))),
            "one per registry"
        );
        let buf = IoBuf::alloc(8192, None).unwrap();
        let ex = reg.expose_range(&buf, 0, 4096, Access::Read).unwrap();
        assert_eq!(ex.handle().rkey, Some(0x100));
        assert_eq!(ex.handle().slice(8, 8).unwrap().rkey, Some(0x100));
        // A range the device refuses still gets a handle, without an rkey.
        let big = reg.expose(&buf, Access::Write);
        assert_eq!(big.handle().rkey, None);
        let empty = reg.expose_range(&buf, 0, 0, Access::Read).unwrap();
        assert_eq!(empty.handle().rkey, None, "nothing to register");
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
        drop(ex);
        assert_eq!(dropped.load(Ordering::Relaxed), 1, "withdrawing the exposure deregisters");
        drop((big, empty));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
    }

    proptest! {
        #[test]
        fn handles_round_trip_their_fixed_encoding(addr: u64, len: u64, key: u64, rkey: Option<u32>) {
            let h = BulkHandle { addr, len, key, rkey };
            prop_assert_eq!(BulkHandle::from_bytes(&h.to_bytes()), Ok(h));
        }

        #[test]
        fn decoding_any_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(h) = BulkHandle::from_bytes(&b) {
                prop_assert_eq!(&h.to_bytes()[..], &b[..]);
            }
        }

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
