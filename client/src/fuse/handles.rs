//! Open files and directories of the mount: what each FUSE file handle
//! holds, and the state the handles of one inode share.

use crate::client::Stat;
use crate::write_back::WriteBack;
use fabric::Errno;
use proto::{DirEntry, Fid, Layout};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// What every open of one inode on this mount shares.
#[derive(Debug, Default)]
pub(crate) struct OpenInode {
    /// Held across "find the end, write there" so that appends from this
    /// client never interleave.
    pub append: tokio::sync::Mutex<()>,
}

/// One open regular file.
#[derive(Debug)]
pub(crate) struct FileHandle {
    pub ino: u64,
    pub fid: Fid,
    /// The flags of open(2): access mode, `O_APPEND`, `O_SYNC`...
    pub flags: i32,
    /// The layout at open; `None` for a file without objects.
    pub layout: Option<Layout>,
    /// Whether the MDS counted this open (and must hear the close).
    pub mds_open: bool,
    pub shared: Arc<OpenInode>,
    /// Written bytes not yet sent to the OSTs (a file with objects).
    pub dirty: Option<Arc<WriteBack>>,
}

impl FileHandle {
    pub fn appends(&self) -> bool {
        self.flags & libc::O_APPEND != 0
    }

    /// Whether each write must be durable before it is acknowledged.
    pub fn sync_writes(&self) -> bool {
        self.flags & (libc::O_SYNC | libc::O_DSYNC) != 0
    }
}

/// One open directory: the listing taken when it was (re)read from the
/// start, so offsets stay stable while entries come and go.
#[derive(Debug)]
pub(crate) struct DirHandle {
    pub ino: u64,
    pub fid: Fid,
    pub listing: tokio::sync::Mutex<Listing>,
}

/// A directory's entries as read at the start of a listing.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub entries: Vec<DirEntry>,
    /// Attributes read ahead for `readdirplus`, by index into `entries`
    /// (`None`: the file was gone by then).
    pub ahead: HashMap<usize, Option<Stat>>,
}

/// The open regular files, by handle and by inode: a read or write asks
/// for every open of its inode, which must not cost a walk over all the
/// mount's open files.
#[derive(Debug, Default)]
struct Files {
    by_fh: HashMap<u64, Arc<FileHandle>>,
    by_ino: HashMap<u64, Vec<u64>>,
}

#[derive(Debug, Default)]
pub(crate) struct Handles {
    next: AtomicU64,
    files: Mutex<Files>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    inodes: Mutex<HashMap<u64, Weak<OpenInode>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handles {
    fn next_fh(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The state shared by the opens of `ino`, made on its first open.
    pub fn shared(&self, ino: u64) -> Arc<OpenInode> {
        let mut inodes = lock(&self.inodes);
        if let Some(s) = inodes.get(&ino).and_then(Weak::upgrade) {
            return s;
        }
        let s = Arc::new(OpenInode::default());
        inodes.insert(ino, Arc::downgrade(&s));
        s
    }

    pub fn add_file(&self, make: impl FnOnce() -> FileHandle) -> u64 {
        let fh = self.next_fh();
        let h = Arc::new(make());
        let mut files = lock(&self.files);
        files.by_ino.entry(h.ino).or_default().push(fh);
        files.by_fh.insert(fh, h);
        fh
    }

    pub fn file(&self, fh: u64) -> Result<Arc<FileHandle>, Errno> {
        lock(&self.files).by_fh.get(&fh).cloned().ok_or(Errno::EBADF)
    }

    /// Every open of `ino` on this mount.
    pub fn files_of(&self, ino: u64) -> Vec<Arc<FileHandle>> {
        let files = lock(&self.files);
        let fhs = files.by_ino.get(&ino).map(Vec::as_slice).unwrap_or_default();
        fhs.iter().filter_map(|fh| files.by_fh.get(fh).cloned()).collect()
    }

    pub fn remove_file(&self, fh: u64) -> Option<Arc<FileHandle>> {
        let h = {
            let mut files = lock(&self.files);
            let h = files.by_fh.remove(&fh)?;
            if let Some(fhs) = files.by_ino.get_mut(&h.ino) {
                fhs.retain(|f| *f != fh);
                if fhs.is_empty() {
                    files.by_ino.remove(&h.ino);
                }
            }
            h
        };
        let ino = h.ino;
        let mut inodes = lock(&self.inodes);
        if inodes.get(&ino).is_some_and(|w| w.strong_count() <= 1) {
            inodes.remove(&ino);
        }
        Some(h)
    }

    pub fn add_dir(&self, h: DirHandle) -> u64 {
        let fh = self.next_fh();
        lock(&self.dirs).insert(fh, Arc::new(h));
        fh
    }

    pub fn dir(&self, fh: u64) -> Result<Arc<DirHandle>, Errno> {
        lock(&self.dirs).get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn remove_dir(&self, fh: u64) -> Option<Arc<DirHandle>> {
        lock(&self.dirs).remove(&fh)
    }

    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        lock(&self.files).by_fh.len() + lock(&self.dirs).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(h: &Handles, ino: u64, flags: i32) -> u64 {
        let shared = h.shared(ino);
        h.add_file(|| FileHandle {
            ino,
            fid: Fid::new(Fid::MDT_SEQ, ino as u32),
            flags,
            layout: None,
            mds_open: true,
            shared,
            dirty: None,
        })
    }

    #[test]
    fn opens_of_one_inode_share_state_until_the_last_close() {
        let h = Handles::default();
        let a = handle(&h, 5, libc::O_WRONLY | libc::O_APPEND);
        let b = handle(&h, 5, libc::O_RDONLY);
        let c = handle(&h, 6, libc::O_RDWR | libc::O_SYNC);
        assert!(a != b && b != c);
        let (fa, fb) = (h.file(a).unwrap(), h.file(b).unwrap());
        assert!(Arc::ptr_eq(&fa.shared, &fb.shared));
        assert!(fa.appends() && !fb.appends());
        assert!(h.file(c).unwrap().sync_writes());
        assert_eq!(h.files_of(5).len(), 2);
        assert_eq!(h.files_of(6).len(), 1);
        assert!(h.files_of(7).is_empty());
        drop((fa, fb));
        h.remove_file(a).unwrap();
        h.remove_file(b).unwrap();
        assert!(h.remove_file(b).is_none());
        assert_eq!(h.file(b).unwrap_err(), Errno::EBADF);
        assert!(h.files_of(5).is_empty());
        assert!(!lock(&h.files).by_ino.contains_key(&5), "no empty list left behind");
        assert!(!lock(&h.inodes).contains_key(&5));
        assert_eq!(h.open_count(), 1);
    }
}
