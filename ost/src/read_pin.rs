//! A range of an object held for reading after the store call returns, so
//! its bytes can be sent from the file itself (`sendfile`): while the pin
//! lives, no write, punch or truncate of those bytes runs, and what the
//! peer receives is what the checksum was computed over.

use crate::object::ObjectHandle;
use crate::range_lock::{Mode, RangeGuard};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// `[offset, offset + len)` of one object, held shared until dropped.
pub struct ReadPin {
    // Declared first so it drops first: it borrows the range lock inside `handle`.
    _guard: RangeGuard<'static>,
    handle: Arc<ObjectHandle>,
    offset: u64,
    len: usize,
}

impl ReadPin {
    /// Waits for `[offset, offset + want)` of `handle` (blocking, as any
    /// store call), then holds it; `len` is what the object holds of it.
    pub(crate) fn new(handle: Arc<ObjectHandle>, offset: u64, want: u64) -> io::Result<ReadPin> {
        let guard = handle.ranges.lock(offset, offset + want, Mode::Shared);
        // SAFETY: the guard borrows the range lock inside the heap object
        // `handle` points to; the pin holds that Arc, so the lock neither
        // moves nor goes away before the guard, which drops first.
        let guard: RangeGuard<'static> = unsafe { std::mem::transmute::<RangeGuard<'_>, _>(guard) };
        // The size cannot shrink into the range while it is held.
        let size = handle.file.metadata()?.len();
        let len = size.saturating_sub(offset).min(want) as usize;
        Ok(ReadPin { _guard: guard, handle, offset, len })
    }

    pub fn file(&self) -> &File {
        &self.handle.file
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes the object holds in the range (fewer than asked at its end).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// crc32c of the pinned bytes: over the file's own pages, mapped,
    /// when every one of them is in memory; else read through `scratch` a
    /// piece at a time (a small buffer stays in the cache, where the
    /// checksum reads it back at once).
    pub fn crc32c(&self, scratch: &mut [u8]) -> io::Result<u32> {
        if let Some(crc) = self.crc32c_mapped() {
            return Ok(crc);
        }
        if scratch.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no scratch space for the checksum"));
        }
        let mut crc = 0;
        let mut at = 0;
        while at < self.len {
            let n = scratch.len().min(self.len - at);
            self.file().read_exact_at(&mut scratch[..n], self.offset + at as u64)?;
            crc = crc32c::crc32c_append(crc, &scratch[..n]);
            at += n;
        }
        Ok(crc)
    }
}

impl ReadPin {
    /// The checksum over a read-only shared mapping of the range, or None
    /// when it cannot be had safely. Only pages already in memory are
    /// touched: faulting in a hole of a tmpfs allocates a page, and on a
    /// full one that is SIGBUS, so `mincore` is asked first. The pin keeps
    /// the pages from being punched or truncated away meanwhile.
    fn crc32c_mapped(&self) -> Option<u32> {
        if self.len == 0 {
            return Some(0);
        }
        // SAFETY: no arguments beyond the name.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?.max(MIN_PAGE);
        let start = self.offset - self.offset % page as u64;
        let skew = (self.offset - start) as usize;
        let map_len = skew + self.len;
        let pages = map_len.div_ceil(page);
        let mut resident = [0u8; MAX_PAGES];
        if pages > MAX_PAGES {
            return None;
        }
        let map = Mapping::new(self.file(), start, map_len)?;
        // SAFETY: `map` is a live mapping of `map_len` bytes; `resident`
        // holds one byte per page of it.
        if unsafe { libc::mincore(map.addr, map_len, resident.as_mut_ptr()) } != 0
            || resident[..pages].iter().any(|r| r & 1 == 0)
        {
            return None;
        }
        // One call maps every page table entry instead of a fault per few
        // pages; if the kernel is too old for it, faults do the same.
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(map.addr, map_len, libc::MADV_POPULATE_READ) };
        // SAFETY: the mapping covers `skew + len` bytes that exist in the
        // file (the pin holds its size) and are read only.
        let bytes = unsafe { std::slice::from_raw_parts((map.addr as *const u8).add(skew), self.len) };
        Some(crc32c::crc32c(bytes))
    }
}

const MIN_PAGE: usize = 4096;
/// The pages of the largest bulk RPC, plus one for an unaligned start.
const MAX_PAGES: usize = (16 << 20) / MIN_PAGE + 1;

/// A read-only shared mapping, unmapped when dropped.
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(file: &File, offset: u64, len: usize) -> Option<Mapping> {
        let off = libc::off_t::try_from(offset).ok()?;
        // SAFETY: a fresh mapping of a descriptor we hold; the kernel picks the address.
        let addr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), off)
        };
        (addr != libc::MAP_FAILED).then_some(Mapping { addr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; no slice of it outlives this.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

impl std::fmt::Debug for ReadPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPin")
            .field("fid", &self.handle.fid)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}
