//! The space and inodes of the local file system that holds a target, in
//! the `StatFs` form targets report on the wire.

use crate::StatFs;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

impl StatFs {
    /// `statvfs(path)`. Block counts are in units of `bsize`, the fragment
    /// size (`f_frsize`) statvfs counts in.
    pub fn of_path(path: &Path) -> io::Result<StatFs> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: zeroed is a valid statvfs; the call fills it.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path, `st` a valid out pointer.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StatFs {
            bsize: st.f_frsize as u32,
            blocks: st.f_blocks as u64,
            bfree: st.f_bfree as u64,
            bavail: st.f_bavail as u64,
            files: st.f_files as u64,
            ffree: st.f_ffree as u64,
            namelen: st.f_namemax as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_file_system_and_refuses_a_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = StatFs::of_path(dir.path()).unwrap();
        assert!(s.bsize > 0 && s.blocks > 0 && s.bavail <= s.bfree && s.bfree <= s.blocks, "{s:?}");
        let err = StatFs::of_path(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
