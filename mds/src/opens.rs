//! Which files are open, so an unlinked file lives until its last close.
//!
//! Open counts are memory only: after a restart nothing is open, and the
//! orphans left behind are destroyed when the MDT opens.

use fabric::Errno;
use proto::Fid;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct State {
    counts: HashMap<Fid, u32>,
    /// Inodes the committer is destroying in the batch it has not committed
    /// yet: a concurrent open must not resurrect them.
    dying: HashSet<Fid>,
    /// Open inodes the committer made orphans: their last close destroys
    /// them. Tracked here rather than read back from the store, because
    /// the unlink may not have committed yet when the last close comes.
    orphaned: HashSet<Fid>,
}

#[derive(Default)]
pub struct OpenFiles {
    inner: Mutex<State>,
}

impl OpenFiles {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens `fid` if `check` (which reads the committed inode) agrees.
    /// The lock is held across the check, so an unlink the committer is
    /// applying either sees this open or this open sees it dying.
    pub fn open_with<T, E: From<Errno>>(
        &self,
        fid: Fid,
        check: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut s = self.lock();
        if s.dying.contains(&fid) {
            return Err(Errno::ENOENT.into());
        }
        let v = check()?;
        *s.counts.entry(fid).or_insert(0) += 1;
        Ok(v)
    }

    /// Drops one open; true when it was the last open of an orphan, which
    /// must now be destroyed.
    pub fn close(&self, fid: Fid) -> Result<bool, Errno> {
        let mut s = self.lock();
        let Some(n) = s.counts.get_mut(&fid) else { return Err(Errno::EBADF) };
        *n -= 1;
        if *n == 0 {
            s.counts.remove(&fid);
            return Ok(s.orphaned.remove(&fid));
        }
        Ok(false)
    }

    pub fn count(&self, fid: Fid) -> u32 {
        self.lock().counts.get(&fid).copied().unwrap_or(0)
    }

    /// For an inode losing its last link: true if nobody has it open, and
    /// then it is marked dying so no open can start until the batch ends;
    /// false if it is open, and then its last close will report it.
    pub fn claim_for_destroy(&self, fid: Fid) -> bool {
        let mut s = self.lock();
        if s.counts.contains_key(&fid) {
            s.orphaned.insert(fid);
            return false;
        }
        s.dying.insert(fid);
        true
    }

    /// After the batch committed (the inodes are gone) or aborted (they are
    /// back): opens may look again.
    pub fn clear_dying(&self, fids: &[Fid]) {
        let mut s = self.lock();
        for f in fids {
            s.dying.remove(f);
        }
    }
}
