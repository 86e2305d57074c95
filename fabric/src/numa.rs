//! NUMA-local memory for registered buffers: anonymous, page-aligned
//! mappings whose pages are placed on a chosen NUMA node before anything
//! touches them, then faulted in and locked, so that the first RDMA or
//! socket transfer into a buffer neither page-faults nor crosses the
//! machine's interconnect.

use crate::Errno;
use crate::cpt::system_hwloc;
use hwlocality::memory::binding::{MemoryBindingFlags, MemoryBindingPolicy};
use hwlocality::memory::nodeset::NodeSet;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a region could not be allocated.
#[derive(Debug, thiserror::Error)]
pub enum NumaError {
    #[error("cannot allocate an empty region")]
    ZeroLength,
    #[error("region of {0} bytes is too large")]
    TooLarge(usize),
    #[error("NUMA node {node} does not exist (this machine has {available:?})")]
    NoSuchNode { node: usize, available: Vec<usize> },
    #[error("mmap of {len} bytes failed: {source}")]
    Map { len: usize, source: io::Error },
    #[error("cannot bind thread memory to NUMA node {node}: {reason}")]
    ThreadBind { node: usize, reason: String },
}

impl NumaError {
    pub fn errno(&self) -> Errno {
        match self {
            NumaError::ZeroLength | NumaError::NoSuchNode { .. } => Errno::EINVAL,
            NumaError::TooLarge(_) => Errno::ENOMEM,
            NumaError::Map { source, .. } => Errno::from_io(source),
            NumaError::ThreadBind { .. } => Errno::EOPNOTSUPP,
        }
    }
}

impl From<NumaError> for Errno {
    fn from(e: NumaError) -> Errno {
        e.errno()
    }
}

/// An anonymous mapping of whole pages, zero-filled, resident, locked when
/// the process may lock it, and unmapped on drop.
pub struct NumaMem {
    ptr: NonNull<u8>,
    len: usize,
    node: Option<usize>,
    locked: bool,
}

// SAFETY: NumaMem owns its mapping exclusively, like a Box<[u8]>: moving
// it to another thread moves that ownership, and sharing it shares only
// the address and length (writers through `as_ptr` take on the aliasing
// rules themselves).
unsafe impl Send for NumaMem {}
unsafe impl Sync for NumaMem {}

impl NumaMem {
    /// The first byte; page aligned.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes: the requested length rounded up to whole pages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty regions are refused.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The node the pages were bound to, or `None` when no node was asked
    /// for or the system refused the binding.
    pub fn numa_node(&self) -> Option<usize> {
        self.node
    }

    /// Whether the pages are locked in memory (see [`alloc_region`]).
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable, initialised (zero-filled)
        // bytes alive as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for NumaMem {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping made in alloc_region, and
        // nothing borrows it past self. munmap also drops the lock.
        if unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) } != 0 {
            tracing::error!(len = self.len, error = %io::Error::last_os_error(), "munmap failed");
        }
    }
}

impl std::fmt::Debug for NumaMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumaMem")
            .field("addr", &self.ptr)
            .field("len", &self.len)
            .field("node", &self.node)
            .field("locked", &self.locked)
            .finish()
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// Allocates `len` bytes (rounded up to whole pages) of zeroed memory,
/// bound to `numa_node` when given.
///
/// The binding is made before the first touch, because Linux places an
/// anonymous page where it is first faulted; the pages are then faulted in
/// here, so the binding takes effect and later transfers do not fault. The
/// binding prefers the node rather than demanding it: if the node is out
/// of memory the pages come from another node instead of the process being
/// killed while faulting them in. A binding the system refuses (no NUMA
/// support, a seccomp filter) is logged and the region is returned unbound.
///
/// The pages are then locked with `mlock`. A failure there is a warning,
/// not an error: the usual cause is RLIMIT_MEMLOCK (often 64 KiB or 8 MiB
/// for unprivileged users and containers), the pages are resident anyway
/// after the prefault, the verbs stack pins what it registers itself (with
/// its own limit check), and the tcp LND only loses protection against the
/// region being swapped out.
pub fn alloc_region(len: usize, numa_node: Option<usize>) -> Result<NumaMem, NumaError> {
    if len == 0 {
        return Err(NumaError::ZeroLength);
    }
    let page = page_size();
    let len = len
        .checked_next_multiple_of(page)
        .filter(|&l| l <= isize::MAX as usize)
        .ok_or(NumaError::TooLarge(len))?;
    let nodeset = match numa_node {
        Some(node) => Some(node_set(node)?),
        None => None,
    };
    // SAFETY: a fresh private anonymous mapping; no existing memory is
    // affected.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(NumaError::Map { len, source: io::Error::last_os_error() });
    }
    let ptr = NonNull::new(addr.cast::<u8>())
        .ok_or_else(|| NumaError::Map { len, source: io::Error::other("mmap returned address 0") })?;
    let mut mem = NumaMem { ptr, len, node: None, locked: false };

    if let (Some(node), Some((topology, set))) = (numa_node, nodeset) {
        // SAFETY: the mapping is `len` zero-filled bytes that nothing else
        // references yet.
        let area = unsafe { std::slice::from_raw_parts(mem.ptr.as_ptr(), len) };
        match topology.bind_memory_area(area, &set, MemoryBindingPolicy::Bind, MemoryBindingFlags::empty()) {
            Ok(()) => mem.node = Some(node),
            Err(e) => {
                tracing::warn!(node, len, error = %e, "cannot bind region to its NUMA node; left unbound")
            }
        }
    }

    // Fault every page in now, on the bound node. Writing zero keeps the
    // zero-filled content.
    for off in (0..len).step_by(page) {
        // SAFETY: `off < len`, inside the writable mapping we own.
        unsafe { mem.ptr.as_ptr().add(off).write_volatile(0) };
    }

    // SAFETY: locking pages of our own mapping.
    if unsafe { libc::mlock(mem.ptr.as_ptr().cast(), len) } == 0 {
        mem.locked = true;
    } else {
        warn_mlock_once(len, io::Error::last_os_error());
    }
    Ok(mem)
}

/// Makes the calling thread's own allocations prefer `node` (used by
/// service threads for their stacks and heaps).
pub fn prefer_node_for_current_thread(node: usize) -> Result<(), NumaError> {
    let (topology, set) = node_set(node)?;
    topology
        .bind_memory(&set, MemoryBindingPolicy::Bind, MemoryBindingFlags::THREAD)
        .map_err(|e| NumaError::ThreadBind { node, reason: e.to_string() })
}

/// The hwloc node set holding just `node`, checked against this machine.
fn node_set(node: usize) -> Result<(&'static hwlocality::Topology, NodeSet), NumaError> {
    let topology = system_hwloc();
    let available: Vec<usize> =
        topology.map(|t| t.nodeset().iter_set().map(usize::from).collect()).unwrap_or_default();
    match topology {
        Some(t) if available.contains(&node) => {
            let mut set = NodeSet::new();
            set.set(node);
            Ok((t, set))
        }
        _ => Err(NumaError::NoSuchNode { node, available }),
    }
}

fn warn_mlock_once(len: usize, error: io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(len, %error, "cannot lock registered memory (raise RLIMIT_MEMLOCK); using it unlocked");
    } else {
        tracing::debug!(len, %error, "mlock failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hwlocality::memory::binding::MemoryBindingFlags;

    #[test]
    fn regions_are_page_aligned_whole_pages_and_zeroed() {
        let page = page_size();
        for (asked, expect) in [(1, page), (page, page), (page + 1, 2 * page), (10 * page - 7, 10 * page)] {
            let mut mem = alloc_region(asked, None).unwrap();
            assert_eq!(mem.len(), expect);
            assert!(!mem.is_empty());
            assert_eq!(mem.as_ptr() as usize % page, 0);
            assert!(mem.as_slice().iter().all(|&b| b == 0));
            assert_eq!(mem.numa_node(), None);
            mem.as_mut_slice().fill(0xa5);
            assert!(mem.as_slice().iter().all(|&b| b == 0xa5));
        }
    }

    #[test]
    fn binds_to_node_zero_on_this_machine() {
        let len = 4 << 20;
        let mem = alloc_region(len, Some(0)).unwrap();
        assert_eq!(mem.numa_node(), Some(0));
        assert!(mem.as_slice().iter().all(|&b| b == 0));
        // Ask the kernel where the pages are and how the area is bound.
        let topo = system_hwloc().unwrap();
        let binding = |m: &NumaMem| {
            let (set, policy) =
                topo.area_memory_binding::<[u8], NodeSet>(m.as_slice(), MemoryBindingFlags::empty()).unwrap();
            (set.iter_set().map(usize::from).collect::<Vec<_>>(), policy)
        };
        assert_eq!(binding(&mem), (vec![0], Some(MemoryBindingPolicy::Bind)));
        // An unbound region keeps the default policy, so the check above
        // tells bound from unbound even on a one-node machine.
        let unbound = alloc_region(len, None).unwrap();
        assert_ne!(binding(&unbound).1, Some(MemoryBindingPolicy::Bind));
        let resident =
            topo.area_memory_location::<[u8], NodeSet>(mem.as_slice(), MemoryBindingFlags::empty()).unwrap();
        assert_eq!(resident.iter_set().map(usize::from).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn refuses_bad_requests() {
        assert!(matches!(alloc_region(0, None), Err(NumaError::ZeroLength)));
        assert!(matches!(alloc_region(usize::MAX - 1, None), Err(NumaError::TooLarge(_))));
        let err = alloc_region(4096, Some(4095)).unwrap_err();
        assert!(matches!(&err, NumaError::NoSuchNode { node: 4095, available } if available.contains(&0)));
        assert_eq!(err.errno(), Errno::EINVAL);
        let huge = alloc_region(1 << 46, None).unwrap_err();
        assert!(matches!(huge, NumaError::Map { .. }), "{huge}");
        assert_eq!(huge.errno(), Errno::ENOMEM);
    }

    /// Drops CAP_IPC_LOCK from the calling thread's effective set (Linux
    /// keeps capabilities per thread), so RLIMIT_MEMLOCK applies to it.
    fn drop_ipc_lock_capability() {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        const CAP_IPC_LOCK: u32 = 14;
        let mut header = Header { version: VERSION_3, pid: 0 };
        let mut data = [Data::default(); 2];
        // SAFETY: capget/capset read and write the structs we pass, laid
        // out as <linux/capability.h> declares them.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()), 0);
            data[0].effective &= !(1 << CAP_IPC_LOCK);
            assert_eq!(libc::syscall(libc::SYS_capset, &header, data.as_ptr()), 0);
        }
    }

    #[test]
    fn locks_within_the_limit_and_warns_beyond_it() {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes the struct we pass.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) }, 0);
        // Other tests lock memory at the same time, so only a region far
        // below the limit is sure to lock.
        if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= 1 << 20 {
            assert!(alloc_region(4096, None).unwrap().is_locked());
        }
        if limit.rlim_cur != libc::RLIM_INFINITY {
            let past_limit = usize::try_from(limit.rlim_cur).unwrap() + (1 << 20);
            std::thread::spawn(move || {
                drop_ipc_lock_capability();
                let mem = alloc_region(past_limit, Some(0)).unwrap();
                assert!(!mem.is_locked(), "locked {past_limit} bytes past RLIMIT_MEMLOCK");
                assert!(mem.as_slice().iter().all(|&b| b == 0), "an unlocked region is still usable");
            })
            .join()
            .unwrap();
        }
    }

    #[test]
    fn moves_between_threads() {
        let mut mem = alloc_region(8192, Some(0)).unwrap();
        mem.as_mut_slice()[8000] = 7;
        let shared = std::sync::Arc::new(mem);
        let other = std::sync::Arc::clone(&shared);
        let seen = std::thread::spawn(move || other.as_slice()[8000]).join().unwrap();
        assert_eq!(seen, 7);
    }
}
