//! Which inode of the mount each OST object belongs to, so that a lock the
//! client loses on an object can drop what the kernel caches of its file.

use proto::{Fid, Layout};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default, Debug)]
pub(crate) struct ObjectInodes {
    inner: Mutex<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    by_object: HashMap<Fid, u64>,
    by_ino: HashMap<u64, Vec<Fid>>,
}

impl ObjectInodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the objects of `ino`'s layout (replacing what was noted).
    pub fn note(&self, ino: u64, layout: &Layout) {
        let objects: Vec<Fid> = layout.objects().map(|o| o.fid).collect();
        let mut m = self.lock();
        if m.by_ino.get(&ino) == Some(&objects) {
            return;
        }
        for old in m.by_ino.remove(&ino).unwrap_or_default() {
            m.by_object.remove(&old);
        }
        for o in &objects {
            m.by_object.insert(*o, ino);
        }
        m.by_ino.insert(ino, objects);
    }

    pub fn ino_of(&self, object: Fid) -> Option<u64> {
        self.lock().by_object.get(&object).copied()
    }

    /// The objects noted of `ino`.
    pub fn objects_of(&self, ino: u64) -> Vec<Fid> {
        self.lock().by_ino.get(&ino).cloned().unwrap_or_default()
    }

    /// The kernel forgot `ino`.
    pub fn forget(&self, ino: u64) {
        let mut m = self.lock();
        for old in m.by_ino.remove(&ino).unwrap_or_default() {
            m.by_object.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::layout::StripeObject;

    fn layout(oids: &[u32]) -> Layout {
        let objects = oids
            .iter()
            .map(|&oid| StripeObject { ost_idx: 0, fid: Fid::new(Fid::ost_seq(0), oid) })
            .collect();
        Layout::new_raid0(1 << 20, None, objects)
    }

    #[test]
    fn objects_lead_to_their_inode_until_it_is_forgotten() {
        let m = ObjectInodes::default();
        m.note(5, &layout(&[1, 2]));
        m.note(6, &layout(&[3]));
        assert_eq!(m.ino_of(Fid::new(Fid::ost_seq(0), 2)), Some(5));
        // A new layout replaces the old one's objects.
        m.note(5, &layout(&[4]));
        assert_eq!(m.ino_of(Fid::new(Fid::ost_seq(0), 1)), None);
        assert_eq!(m.ino_of(Fid::new(Fid::ost_seq(0), 4)), Some(5));
        m.forget(5);
        assert_eq!(m.ino_of(Fid::new(Fid::ost_seq(0), 4)), None);
        assert_eq!(m.ino_of(Fid::new(Fid::ost_seq(0), 3)), Some(6));
    }
}
