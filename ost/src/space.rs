//! Disk space: reserving a write's blocks before any byte is written (so a
//! full target fails a write whole, with ENOSPC, instead of half-writing
//! it), freeing blocks on punch, and reporting what the backing file
//! system has.

use proto::StatFs;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `fallocate(fd, mode, off, len)`.
pub(crate) fn fallocate(file: &File, mode: i32, off: u64, len: u64) -> io::Result<()> {
    let off = i64::try_from(off).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let len = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: plain syscall on a descriptor we own.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Allocates `[off, off+len)` without changing the file size. KEEP_SIZE
/// rather than mode 0 because a mode-0 fallocate that fails part way may
/// already have grown the file, which a failed write must not do.
pub(crate) fn reserve(file: &File, off: u64, len: u64) -> io::Result<()> {
    fallocate(file, libc::FALLOC_FL_KEEP_SIZE, off, len)
}

/// Frees `[off, off+len)`; it reads as zeros afterwards and the size stays.
pub(crate) fn punch_hole(file: &File, off: u64, len: u64) -> io::Result<()> {
    fallocate(file, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, len)
}

/// Whether an fallocate error means "this file system cannot", as opposed
/// to a real failure.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS))
}

/// Bytes an unprivileged writer may still allocate under `path`.
pub(crate) fn available_bytes(path: &Path) -> io::Result<u64> {
    let st = StatFs::of_path(path)?;
    Ok(st.bavail.saturating_mul(st.bsize as u64))
}

/// The backing file system's space and inodes.
pub(crate) fn statfs(path: &Path) -> io::Result<StatFs> {
    StatFs::of_path(path)
}

/// `syncfs`: flush everything of the file system holding `dir`.
pub(crate) fn syncfs(dir: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
