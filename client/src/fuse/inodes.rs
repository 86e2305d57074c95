//! Inode numbers the kernel knows, and the FIDs behind them.
//!
//! An inode number is the FID's folding (`Fid::ino`, as Lustre's `st_ino`),
//! except that the root is always `FUSE_ROOT_ID`. The kernel counts its
//! lookups of each inode and gives them back with `forget`; an inode is
//! remembered until its count drops to zero.

use fabric::Errno;
use proto::Fid;
use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) const ROOT_INO: u64 = 1;

#[derive(Debug)]
struct Known {
    fid: Fid,
    lookups: u64,
    /// A directory's parent, for `..` in its listing.
    parent: u64,
}

#[derive(Debug)]
pub(crate) struct Inodes {
    root: Fid,
    map: Mutex<HashMap<u64, Known>>,
}

impl Inodes {
    pub fn new(root: Fid) -> Inodes {
        let mut map = HashMap::new();
        map.insert(ROOT_INO, Known { fid: root, lookups: 1, parent: ROOT_INO });
        Inodes { root, map: Mutex::new(map) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Known>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The inode number `fid` has on this mount.
    pub fn ino_of(&self, fid: Fid) -> u64 {
        if fid == self.root { ROOT_INO } else { fid.ino() }
    }

    /// The FID of an inode the kernel holds.
    pub fn fid(&self, ino: u64) -> Result<Fid, Errno> {
        self.lock().get(&ino).map(|k| k.fid).ok_or(Errno::ESTALE)
    }

    pub fn parent(&self, ino: u64) -> u64 {
        self.lock().get(&ino).map(|k| k.parent).unwrap_or(ROOT_INO)
    }

    /// Counts one more kernel reference to `fid`, found under `parent`, and
    /// returns its inode number. Two FIDs that fold to one number cannot
    /// both be known: the second gets EIO rather than the first's data.
    pub fn remember(&self, fid: Fid, parent: u64) -> Result<u64, Errno> {
        let ino = self.ino_of(fid);
        let mut map = self.lock();
        let k = map.entry(ino).or_insert(Known { fid, lookups: 0, parent });
        if k.fid != fid {
            tracing::error!(ino, known = %k.fid, new = %fid, "two FIDs fold to one inode number");
            return Err(Errno::EIO);
        }
        k.lookups += 1;
        if ino != ROOT_INO {
            k.parent = parent;
        }
        Ok(ino)
    }

    /// The kernel dropped `n` references; true when it holds `ino` no more.
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        if ino == ROOT_INO {
            return false;
        }
        let mut map = self.lock();
        if let Some(k) = map.get_mut(&ino) {
            k.lookups = k.lookups.saturating_sub(n);
            if k.lookups == 0 {
                map.remove(&ino);
                return true;
            }
        }
        false
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_forgets_balance() {
        let root = Fid::new(Fid::MDT_SEQ, 1);
        let t = Inodes::new(root);
        assert_eq!(t.fid(ROOT_INO), Ok(root));
        let f = Fid::new(Fid::MDT_SEQ, 77);
        let ino = t.remember(f, ROOT_INO).unwrap();
        assert_eq!(ino, f.ino());
        assert_eq!(t.remember(f, ROOT_INO), Ok(ino));
        assert_eq!(t.fid(ino), Ok(f));
        t.forget(ino, 1);
        assert_eq!(t.fid(ino), Ok(f));
        t.forget(ino, 1);
        assert_eq!(t.fid(ino), Err(Errno::ESTALE));
        t.forget(ROOT_INO, 100);
        assert_eq!(t.fid(ROOT_INO), Ok(root));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_root_fid_other_than_the_default_is_still_ino_1() {
        let root = Fid::new(Fid::MDT_SEQ, 9);
        let t = Inodes::new(root);
        assert_eq!(t.ino_of(root), ROOT_INO);
        assert_eq!(t.remember(root, ROOT_INO), Ok(ROOT_INO));
        let d = Fid::new(Fid::MDT_SEQ, 10);
        let dino = t.remember(d, ROOT_INO).unwrap();
        let e = Fid::new(Fid::MDT_SEQ, 11);
        t.remember(e, dino).unwrap();
        assert_eq!(t.parent(e.ino()), dino);
        assert_eq!(t.parent(dino), ROOT_INO);
    }

    #[test]
    fn colliding_fids_are_refused() {
        let t = Inodes::new(Fid::ROOT);
        // seq << 24 + oid folds these two onto one number.
        let a = Fid::new(Fid::MDT_SEQ + 1, 0);
        let b = Fid::new(Fid::MDT_SEQ, 1 << 24);
        assert_eq!(a.ino(), b.ino(), "the test needs a real collision");
        t.remember(a, ROOT_INO).unwrap();
        assert_eq!(t.remember(b, ROOT_INO), Err(Errno::EIO));
    }
}
