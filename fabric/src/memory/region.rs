use crate::numa::{NumaMem, alloc_region};
use std::sync::Arc;

/// One registered memory region: page aligned, locked, on one NUMA node.
/// It is only ever accessed through [`IoBuf`]s and exposures, which keep
/// it alive.
pub struct Region {
    mem: NumaMem,
    numa_node: Option<usize>,
}

impl Region {
    pub fn new(len: usize, numa_node: Option<usize>) -> std::io::Result<Arc<Region>> {
        let mem = alloc_region(len, numa_node).map_err(std::io::Error::other)?;
        Ok(Arc::new(Region { mem, numa_node }))
    }

    pub fn base(&self) -> *mut u8 {
        self.mem.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.mem.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn numa_node(&self) -> Option<usize> {
        self.numa_node
    }
}

/// A buffer in registered memory that the caller owns: a range of a region.
/// Bulk moves straight between it and the wire.
pub struct IoBuf {
    region: Arc<Region>,
    off: usize,
    len: usize,
}

// SAFETY: an IoBuf is the only handle to its range (constructors hand out
// disjoint ranges), so moving it between threads is like moving a Vec.
unsafe impl Send for IoBuf {}
unsafe impl Sync for IoBuf {}

impl IoBuf {
    /// A whole new region of `len` bytes.
    pub fn alloc(len: usize, numa_node: Option<usize>) -> std::io::Result<IoBuf> {
        let region = Region::new(len.max(1), numa_node)?;
        Ok(IoBuf { region, off: 0, len })
    }

    /// # Safety
    /// The range must lie in the region and not overlap any other live
    /// IoBuf of the same region.
    pub(crate) unsafe fn from_parts(region: Arc<Region>, off: usize, len: usize) -> IoBuf {
        debug_assert!(off + len <= region.len());
        IoBuf { region, off, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// The virtual address of the first byte, as a bulk handle names it.
    pub fn addr(&self) -> u64 {
        self.region.base() as u64 + self.off as u64
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the range is inside the live region and owned by self.
        unsafe { std::slice::from_raw_parts(self.region.base().add(self.off), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.region.base().add(self.off), self.len) }
    }

    /// Shortens the buffer's visible length (capacity stays with the region).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl std::ops::Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}
