//! One open object: its descriptors and its range lock. A handle lives in
//! the descriptor cache and is shared by every request on the object, so
//! they all see the same range lock.

use crate::range_lock::RangeLock;
use proto::Fid;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug)]
pub(crate) struct ObjectHandle {
    pub(crate) fid: Fid,
    path: PathBuf,
    /// Buffered descriptor: every unaligned request, fsync, fstat, truncate.
    pub(crate) file: File,
    /// `O_DIRECT` descriptor, opened on the first aligned request; `None`
    /// when that open failed (the buffered one serves instead).
    direct: OnceLock<Option<File>>,
    pub(crate) ranges: RangeLock,
}

impl ObjectHandle {
    /// Opens an existing object for reading and writing.
    pub(crate) fn open(fid: Fid, path: PathBuf) -> std::io::Result<ObjectHandle> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(ObjectHandle { fid, path, file, direct: OnceLock::new(), ranges: RangeLock::new() })
    }

    /// The descriptor for an aligned request when direct I/O is on.
    pub(crate) fn direct_file(&self) -> Option<&File> {
        self.direct
            .get_or_init(|| {
                match OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(&self.path) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        tracing::debug!(fid = %self.fid, error = %e, "no O_DIRECT descriptor, staying buffered");
                        None
                    }
                }
            })
            .as_ref()
    }
}
