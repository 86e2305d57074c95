//! A directory's attributes as the MDS answered a change this mount made
//! in it (a create, an unlink), kept for the getattr the kernel sends next.
//!
//! The mount has default_permissions, so the kernel checks each access to
//! a directory against its mode; every change in the directory drops the
//! kernel's copy of its attributes, so each create or unlink in a row was
//! followed by a getattr RPC before the next. The MDS's reply to the change
//! carries the directory's attributes after it: the next getattr takes
//! them instead, once, while they are younger than the attribute TTL (as
//! old as the kernel itself would keep them). Any other change this mount
//! makes in the directory forgets them first.

use proto::Attr;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct DirAttrs {
    fresh: Mutex<HashMap<u64, (Attr, Instant)>>,
}

impl DirAttrs {
    /// What the MDS said of directory `ino` right after a change in it.
    pub fn note(&self, ino: u64, attr: Attr) {
        self.lock().insert(ino, (attr, Instant::now()));
    }

    /// A change in `ino` whose reply did not say its attributes.
    pub fn forget(&self, ino: u64) {
        self.lock().remove(&ino);
    }

    /// The attributes noted for `ino`, if not older than `ttl`; taken.
    pub fn take(&self, ino: u64, ttl: Duration) -> Option<Attr> {
        let (attr, at) = self.lock().remove(&ino)?;
        (at.elapsed() < ttl).then_some(attr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Attr, Instant)>> {
        self.fresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noted_attributes_serve_once_and_only_while_young() {
        let d = DirAttrs::default();
        let a = Attr { size: 7, ..Attr::default() };
        d.note(5, a);
        assert_eq!(d.take(5, Duration::from_secs(1)), Some(a));
        assert_eq!(d.take(5, Duration::from_secs(1)), None);
        d.note(5, a);
        d.forget(5);
        assert_eq!(d.take(5, Duration::from_secs(1)), None);
        d.note(6, a);
        assert_eq!(d.take(6, Duration::ZERO), None);
    }
}
