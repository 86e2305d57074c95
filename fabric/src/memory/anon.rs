//! Page-aligned locked anonymous memory, until the NUMA-bound allocator
//! (`crate::numa`) takes over.

pub struct NumaMem {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value and freed once, on drop.
unsafe impl Send for NumaMem {}
unsafe impl Sync for NumaMem {}

impl NumaMem {
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for NumaMem {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

pub fn alloc_region(len: usize, _numa_node: Option<usize>) -> std::io::Result<NumaMem> {
    let len = len.max(1).div_ceil(4096) * 4096;
    // SAFETY: anonymous private mapping; checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the mapping just made.
    unsafe { libc::mlock(p, len) };
    Ok(NumaMem { ptr: p as *mut u8, len })
}
