//! A tmpfs mounted for the length of a benchmark: memory as the fastest
//! "disk" there is, so what remains is glint's own cost.

use anyhow::{Result, bail};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A tmpfs on a fresh temporary directory, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of at most `size` bytes (needs root, or
    /// CAP_SYS_ADMIN).
    pub fn mount(size: u64) -> Result<Tmpfs> {
        let dir = tempfile::Builder::new().prefix("glint-bench-tmpfs").tempdir()?;
        let target = CString::new(dir.path().as_os_str().as_bytes())?;
        let opts = CString::new(format!("size={size},mode=0755"))?;
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr() as *const libc::c_void,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            bail!(
                "cannot mount a tmpfs on {}: {e} (the tmpfs runs need root; \
                 run as root or skip them with --no-tmpfs)",
                dir.path().display()
            );
        }
        Ok(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let Ok(target) = CString::new(self.dir.path().as_os_str().as_bytes()) else { return };
        // SAFETY: `target` is a NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
            // A server thread may still hold an object open; detach, and the
            // memory goes when the last descriptor closes.
            // SAFETY: as above.
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                tracing::warn!(dir = %self.dir.path().display(), error = %std::io::Error::last_os_error(),
                    "cannot unmount the benchmark tmpfs");
            }
        }
    }
}
