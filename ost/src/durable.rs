//! Making namespace changes survive a crash: a new or removed name is only
//! durable once its directory has been fsynced.

use crate::error::{OstError, Result};
use std::fs::File;
use std::path::Path;

/// fsyncs a directory so the names created or removed in it are on disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| OstError::io(format!("open {}", dir.display()), e))?;
    f.sync_all().map_err(|e| OstError::io(format!("fsync {}", dir.display()), e))
}

/// Creates `dir` if it is missing, durably (its parent is fsynced after).
/// Returns whether it was created.
pub(crate) fn make_dir(dir: &Path) -> Result<bool> {
    match std::fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(OstError::io(format!("mkdir {}", dir.display()), e)),
    }
}
