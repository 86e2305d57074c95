//! When to bypass the page cache. `O_DIRECT` saves a copy and keeps a
//! streaming OST from filling memory with pages nobody reads again, but it
//! needs the buffer, offset and length aligned, and some file systems
//! (tmpfs on older kernels, some FUSE ones) refuse it, either at open or at
//! the first I/O. So a target probes once at open, and each request uses
//! it only when it is aligned.

use crate::aligned_buf::{AlignedBuf, DIRECT_IO_ALIGN};
use std::fs::OpenOptions;
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
    fn probe_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path());
        assert!(!dir.path().join(PROBE_FILE).exists());
    }
}
