//! One open object: its descriptors, its range lock and what is known of
//! its allocated blocks. A handle lives in the descriptor cache and is
//! shared by every request on the object, so they all see the same range
//! lock and the same record.

use crate::allocated::Allocated;
use crate::range_lock::RangeLock;
use proto::Fid;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

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
    /// Ranges reserved through this handle and not freed since. Changed
    /// only by a request holding the range exclusively.
    allocated: Mutex<Allocated>,
}

impl ObjectHandle {
    /// Opens an existing object for reading and writing.
    pub(crate) fn open(fid: Fid, path: PathBuf) -> std::io::Result<ObjectHandle> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(ObjectHandle {
            fid,
            path,
            file,
            direct: OnceLock::new(),
            ranges: RangeLock::new(),
            allocated: Mutex::new(Allocated::default()),
        })
    }

    pub(crate) fn allocated(&self) -> MutexGuard<'_, Allocated> {
        // A set of ranges; a panic elsewhere cannot leave it half-changed.
        self.allocated.lock().unwrap_or_else(|p| p.into_inner())
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
