//! What the MDS said of an inode a moment ago, kept so that the kernel's
//! next question about it is answered without a round trip, while the
//! answer is younger than the attribute TTL: as old as the kernel itself
//! keeps what the MDS says of an inode.
//!
//! Two uses. A directory's attributes as the MDS answered a create or
//! unlink this mount made in it: with default_permissions the kernel
//! checks each access to a directory against its mode, and every change
//! in the directory drops the kernel's copy of its attributes, so each
//! create or unlink in a row was followed by a getattr RPC; the next
//! getattr takes them instead, once. And the inodes a `readdirplus` found
//! without extended attributes: `ls -l` asks each file for its
//! `security.selinux`, which is answered ENODATA here. A change this mount
//! makes to the inode forgets what was noted first.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Fresh<T> {
    noted: Mutex<HashMap<u64, (T, Instant)>>,
}

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Fresh { noted: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> Fresh<T> {
    /// What the MDS said of `ino` just now.
    pub fn note(&self, ino: u64, what: T) {
        self.lock().insert(ino, (what, Instant::now()));
    }

    /// `ino` changed, or is gone.
    pub fn forget(&self, ino: u64) {
        self.lock().remove(&ino);
    }

    /// What was noted of `ino`, if younger than `ttl`; taken.
    pub fn take(&self, ino: u64, ttl: Duration) -> Option<T> {
        let (what, at) = self.lock().remove(&ino)?;
        (at.elapsed() < ttl).then_some(what)
    }

    /// What was noted of `ino`, if younger than `ttl`; kept.
    pub fn get(&self, ino: u64, ttl: Duration) -> Option<T> {
        self.lock().get(&ino).filter(|(_, at)| at.elapsed() < ttl).map(|(what, _)| what.clone())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (T, Instant)>> {
        self.noted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::Attr;

    #[test]
    fn notes_serve_only_while_young_and_take_serves_once() {
        let d: Fresh<Attr> = Fresh::default();
        let a = Attr { size: 7, ..Attr::default() };
        let ttl = Duration::from_secs(1);
        d.note(5, a);
        assert_eq!(d.get(5, ttl), Some(a));
        assert_eq!(d.take(5, ttl), Some(a));
        assert_eq!(d.take(5, ttl), None);
        d.note(5, a);
        d.forget(5);
        assert_eq!(d.get(5, ttl), None);
        d.note(6, a);
        assert_eq!(d.get(6, Duration::ZERO), None);
        assert_eq!(d.take(6, Duration::ZERO), None);
    }
}
