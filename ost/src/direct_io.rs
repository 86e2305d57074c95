//! When to bypass the page cache. `O_DIRECT` saves a copy and keeps a
//! streaming OST from filling memory with pages nobody reads again, but it
//! needs the buffer, offset and length aligned, and some file systems
//! (tmpfs on older kernels, some FUSE ones) refuse it, either at open or at
//! the first I/O. So a target probes once at open, and each request uses
//! it only when it is aligned.

use crate::aligned_buf::{AlignedBuf, DIRECT_IO_ALIGN};
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

const PROBE_FILE: &str = ".direct-io-probe";

/// Whether one request may go through the `O_DIRECT` descriptor.
pub(crate) fn eligible(addr: *const u8, off: u64, len: usize) -> bool {
    let a = DIRECT_IO_ALIGN;
    len > 0 && (addr as usize).is_multiple_of(a) && off.is_multiple_of(a as u64) && len.is_multiple_of(a)
}

/// Whether the file system under `dir` accepts aligned `O_DIRECT` writes
/// and reads. Leaves nothing behind.
pub(crate) fn probe(dir: &Path) -> bool {
    let path = dir.join(PROBE_FILE);
    let ok = (|| -> std::io::Result<()> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)?;
        let mut buf = AlignedBuf::zeroed(DIRECT_IO_ALIGN);
        buf[0] = 0x5a;
        f.write_all_at(&buf, 0)?;
        buf[0] = 0;
        f.read_exact_at(&mut buf, 0)?;
        if buf[0] == 0x5a { Ok(()) } else { Err(std::io::Error::other("O_DIRECT read back wrong data")) }
    })();
    let _ = std::fs::remove_file(&path);
    match ok {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(dir = %dir.display(), error = %e, "O_DIRECT unavailable, using buffered I/O");
            false
        }
    }
}

/// Whether `dir` is on a file system whose page cache is its storage
/// (tmpfs, ramfs): there `O_DIRECT` saves nothing, and a read is best sent
/// from the cached pages themselves.
pub(crate) fn memory_backed(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: zeroed is a valid statfs; the call fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a valid out pointer.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as i64, TMPFS_MAGIC | RAMFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_needs_everything_aligned() {
        let b = AlignedBuf::zeroed(8192);
        assert!(eligible(b.as_ptr(), 4096, 8192));
        assert!(!eligible(b.as_ptr(), 4096, 0));
        assert!(!eligible(b.as_ptr(), 4095, 8192));
        assert!(!eligible(b.as_ptr(), 4096, 4000));
        assert!(!eligible(b[1..].as_ptr(), 4096, 4096));
    }

    #[test]
    fn memory_backing_is_told_apart() {
        assert!(memory_backed(Path::new("/dev/shm")) || !Path::new("/dev/shm").exists());
        assert!(!memory_backed(Path::new("/proc")));
    }

    #[test]
    fn probe_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path());
        assert!(!dir.path().join(PROBE_FILE).exists());
    }
}
