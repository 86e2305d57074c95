//! Memory registration: a page-aligned [`Region`] made known to the HCA,
//! and the [`RemoteBuf`] descriptor a peer uses to read or write one range
//! of it.

use super::{Hca, O2ibError};
use crate::memory::{Access, Region};
use serde::{Deserialize, Serialize};
use sideway::ibverbs::AccessFlags;
use sideway::ibverbs::memory_region::MemoryRegion;
use std::ops::Range;
use std::sync::Arc;

/// What a peer needs to move bytes to or from one registered range: the
/// address, the length and the remote key. The HCA checks all three on
/// every access; a wrong key or a byte outside the range completes the
/// peer's request with a remote access error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteBuf {
    pub addr: u64,
    pub len: u32,
    pub rkey: u32,
}

/// A region registered with one HCA for local access and remote read and
/// write.
pub struct Registration {
    // Deregistered before the memory goes away: fields drop in order.
    mr: Arc<MemoryRegion>,
    memory: Memory,
    hca: Arc<Hca>,
}

/// What keeps a registration's memory mapped.
enum Memory {
    Region(Arc<Region>),
    /// A range of memory someone else owns, held mapped by `_keep`.
    Kept {
        base: *mut u8,
        len: usize,
        _keep: Box<dyn std::any::Any + Send + Sync>,
    },
}

impl Memory {
    fn base(&self) -> *mut u8 {
        match self {
            Memory::Region(r) => r.base(),
            Memory::Kept { base, .. } => *base,
        }
    }

    fn len(&self) -> usize {
        match self {
            Memory::Region(r) => r.len(),
            Memory::Kept { len, .. } => *len,
        }
    }
}

// SAFETY: the region's bytes are touched only through bounds-checked copies
// here and by the HCA; the MR handle is Send + Sync in sideway.
unsafe impl Send for Registration {}
unsafe impl Sync for Registration {}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("len", &self.len())
            .field("rkey", &format_args!("{:#x}", self.rkey()))
            .finish()
    }
}

/// `off..off+len` if it lies within `region_len` bytes.
pub fn checked_range(off: usize, len: usize, region_len: usize) -> Result<Range<usize>, O2ibError> {
    match off.checked_add(len) {
        Some(end) if end <= region_len => Ok(off..end),
        _ => Err(O2ibError::OutOfRange { off, len, region_len }),
    }
}

impl Registration {
    /// A fresh zeroed region of `len` bytes (rounded up to pages), on
    /// `numa_node` if given, registered with `hca`.
    pub fn alloc(
        hca: &Arc<Hca>,
        len: usize,
        numa_node: Option<usize>,
    ) -> Result<Arc<Registration>, O2ibError> {
        let region = Region::new(len, numa_node).map_err(|e| O2ibError::call("region allocation", e))?;
        Registration::register(hca, region)
    }

    /// Register an existing region.
    pub fn register(hca: &Arc<Hca>, region: Arc<Region>) -> Result<Arc<Registration>, O2ibError> {
        let access = AccessFlags::LocalWrite | AccessFlags::RemoteWrite | AccessFlags::RemoteRead;
        // SAFETY: the region stays mapped for as long as this registration,
        // which holds it and deregisters first.
        let mr = unsafe { hca.pd().reg_mr(region.base() as usize, region.len(), access) }
            .map_err(|e| O2ibError::call("ibv_reg_mr", e))?;
        Ok(Arc::new(Registration { mr, memory: Memory::Region(region), hca: Arc::clone(hca) }))
    }

    /// Register `len` bytes at `base`, memory this node owns elsewhere
    /// (e.g. a range a peer may touch through an exposure); `keep` holds it
    /// mapped and is dropped after the registration is gone.
    ///
    /// # Safety
    /// `base..base+len` must be mapped, and stay mapped while `keep` lives.
    pub unsafe fn register_kept(
        hca: &Arc<Hca>,
        base: *mut u8,
        len: usize,
        keep: Box<dyn std::any::Any + Send + Sync>,
    ) -> Result<Arc<Registration>, O2ibError> {
        let access = AccessFlags::LocalWrite | AccessFlags::RemoteWrite | AccessFlags::RemoteRead;
        // SAFETY: the caller keeps the range mapped while `keep` lives, and
        // the registration drops the MR before `keep`.
        let mr = unsafe { hca.pd().reg_mr(base as usize, len, access) }
            .map_err(|e| O2ibError::call("ibv_reg_mr", e))?;
        Ok(Arc::new(Registration {
            mr,
            memory: Memory::Kept { base, len, _keep: keep },
            hca: Arc::clone(hca),
        }))
    }

    /// Register `len` bytes at `addr` inside `region` for exactly what a
    /// peer may do with them (`access`), and nothing else: a range a node
    /// exposes.
    pub fn register_range(
        hca: &Arc<Hca>,
        region: Arc<Region>,
        addr: u64,
        len: usize,
        access: Access,
    ) -> Result<Registration, O2ibError> {
        let start = addr.checked_sub(region.base() as u64).map(|o| o as usize);
        let Some(off) = start.filter(|o| o.checked_add(len).is_some_and(|e| e <= region.len())) else {
            return Err(O2ibError::OutOfRange {
                off: start.unwrap_or(usize::MAX),
                len,
                region_len: region.len(),
            });
        };
        let flags = match access {
            Access::Read => AccessFlags::RemoteRead,
            // Remote write needs local write (IB spec 10.6.3.1).
            Access::Write => AccessFlags::LocalWrite | AccessFlags::RemoteWrite,
        };
        // SAFETY: `off..off+len` lies inside the region (checked above).
        let base = unsafe { region.base().add(off) };
        // SAFETY: the registration holds the region mapped and drops the MR
        // first (fields drop in order).
        let mr = unsafe { hca.pd().reg_mr(base as usize, len, flags) }
            .map_err(|e| O2ibError::call("ibv_reg_mr", e))?;
        Ok(Registration {
            mr,
            memory: Memory::Kept { base, len, _keep: Box::new(region) },
            hca: Arc::clone(hca),
        })
    }

    pub fn len(&self) -> usize {
        self.memory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn addr(&self) -> u64 {
        self.memory.base() as u64
    }

    /// The region this registration covers, when it covers a whole one.
    pub fn region(&self) -> Option<&Arc<Region>> {
        match &self.memory {
            Memory::Region(r) => Some(r),
            Memory::Kept { .. } => None,
        }
    }

    pub fn lkey(&self) -> u32 {
        self.mr.lkey()
    }

    pub fn rkey(&self) -> u32 {
        self.mr.rkey()
    }

    pub fn hca(&self) -> &Arc<Hca> {
        &self.hca
    }

    /// The descriptor of `len` bytes at `off`, to hand to a peer.
    pub fn remote(&self, off: usize, len: usize) -> Result<RemoteBuf, O2ibError> {
        let range = checked_range(off, len, self.len())?;
        let len32 =
            u32::try_from(len).map_err(|_| O2ibError::OutOfRange { off, len, region_len: self.len() })?;
        Ok(RemoteBuf { addr: self.addr() + range.start as u64, len: len32, rkey: self.rkey() })
    }

    /// Copy `data` into the region at `off`. Bytes that a transfer in
    /// flight also targets end up unspecified.
    pub fn write_at(&self, off: usize, data: &[u8]) -> Result<(), O2ibError> {
        let range = checked_range(off, data.len(), self.len())?;
        // SAFETY: the range lies within the mapping (checked above) and
        // `data` cannot alias it: it is a shared borrow of other memory or
        // of nothing the region hands out as a slice.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.memory.base().add(range.start), data.len())
        };
        Ok(())
    }

    /// Copy bytes at `off` out of the region into `out`.
    pub fn read_at(&self, off: usize, out: &mut [u8]) -> Result<(), O2ibError> {
        let range = checked_range(off, out.len(), self.len())?;
        // SAFETY: as in write_at; `out` is an exclusive borrow elsewhere.
        unsafe {
            std::ptr::copy_nonoverlapping(self.memory.base().add(range.start), out.as_mut_ptr(), out.len())
        };
        Ok(())
    }

    /// The bytes at `off`, borrowed.
    ///
    /// # Safety
    /// Nothing may write the range (no transfer in flight into it, no
    /// `write_at`) while the slice lives.
    pub(crate) unsafe fn slice(&self, off: usize, len: usize) -> Result<&[u8], O2ibError> {
        let range = checked_range(off, len, self.len())?;
        // SAFETY: in bounds (checked); the caller rules out writers.
        Ok(unsafe { std::slice::from_raw_parts(self.memory.base().add(range.start), len) })
    }

    /// The local scatter entry for `len` bytes at `off`: (address, length).
    pub(crate) fn local(&self, off: usize, len: usize) -> Result<(u64, u32), O2ibError> {
        let range = checked_range(off, len, self.len())?;
        let len32 =
            u32::try_from(len).map_err(|_| O2ibError::OutOfRange { off, len, region_len: self.len() })?;
        Ok((self.addr() + range.start as u64, len32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_at_the_edge() {
        assert_eq!(checked_range(0, 4096, 4096).unwrap(), 0..4096);
        assert_eq!(checked_range(4096, 0, 4096).unwrap(), 4096..4096);
        assert!(checked_range(1, 4096, 4096).is_err());
        assert!(checked_range(usize::MAX, 2, 4096).is_err());
    }

    proptest! {
        #[test]
        fn a_checked_range_lies_inside_the_region(
            off in 0usize..1 << 24,
            len in 0usize..1 << 24,
            region in 0usize..1 << 24,
        ) {
            match checked_range(off, len, region) {
                Ok(r) => {
                    prop_assert_eq!(r.start, off);
                    prop_assert_eq!(r.len(), len);
                    prop_assert!(r.end <= region);
                }
                Err(O2ibError::OutOfRange { .. }) => prop_assert!(off + len > region),
                Err(e) => prop_assert!(false, "unexpected {}", e),
            }
        }
    }
}
