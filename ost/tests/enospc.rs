//! A full target fails a write whole, with ENOSPC, and never harms the
//! objects already on it. Runs on a 4 MiB tmpfs, so it needs root (to
//! mount); without root it says so and checks nothing.

mod common;

use common::{FS, INDEX, fid, pattern};
use fabric::Errno;
use ost::{ObjectStore, OstError};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// A small tmpfs on a temp dir, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!("size={size}")).unwrap();
        // SAFETY: NUL-terminated strings for every pointer argument.
        let r = unsafe {
            libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, opts.as_ptr().cast())
        };
        assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        SmallFs { dir }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path. Detach, so a straggling descriptor cannot block it.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_write_that_does_not_fit_fails_whole_and_harms_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let fs = SmallFs::mount("4m");
    ObjectStore::format(fs.dir.path(), FS, INDEX).unwrap();
    let store = ObjectStore::open(fs.dir.path(), FS, INDEX).unwrap();

    let (a, b, c) = (fid(1), fid(2), fid(3));
    for f in [a, b, c] {
        store.create(f).unwrap();
    }
    let da = pattern(1 << 20, 1);
    let db = pattern(1 << 20, 2);
    store.write(a, 0, &da, true).unwrap();
    store.write(b, 4096, &db, true).unwrap();

    let e = store.write(c, 0, &pattern(4 << 20, 3), true).unwrap_err();
    assert!(matches!(e, OstError::NoSpace { .. }), "{e}");
    assert_eq!(e.errno(), Errno::ENOSPC);
    let ac = store.getattr(c).unwrap();
    assert_eq!((ac.size, ac.blocks), (0, 0), "a failed write left bytes or blocks behind");

    // Fill the rest in small pieces until it is full.
    let piece = pattern(64 << 10, 4);
    let mut off = 0u64;
    let last = loop {
        match store.write(c, off, &piece, false) {
            Ok(()) => off += piece.len() as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(last.errno(), Errno::ENOSPC, "{last}");
    assert_eq!(store.getattr(c).unwrap().size, off, "the refused piece changed the size");

    // Full, yet overwriting data already stored needs no space and works.
    let da2 = pattern(1 << 20, 5);
    store.write(a, 0, &da2, true).unwrap();

    let mut back = vec![0u8; 1 << 20];
    assert_eq!(store.read(a, 0, &mut back).unwrap(), 1 << 20);
    assert_eq!(back, da2);
    assert_eq!(store.read(b, 4096, &mut back).unwrap(), 1 << 20);
    assert_eq!(back, db);
    let mut piece_back = vec![0u8; piece.len()];
    for at in (0..off).step_by(piece.len()) {
        assert_eq!(store.read(c, at, &mut piece_back).unwrap(), piece.len());
        assert_eq!(piece_back, piece, "at {at}");
    }
    drop(store);
}

/// Blocks freed by punch or truncate are reserved again before the next
/// write into them (the store skips the reservation only for blocks it
/// knows are still allocated): once the target is full again, such a
/// write fails whole with ENOSPC.
#[test]
fn space_freed_by_punch_or_truncate_is_reserved_again() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let fs = SmallFs::mount("4m");
    ObjectStore::format(fs.dir.path(), FS, INDEX).unwrap();
    let store = ObjectStore::open(fs.dir.path(), FS, INDEX).unwrap();
    let (a, b, c) = (fid(1), fid(2), fid(3));
    for f in [a, b, c] {
        store.create(f).unwrap();
    }
    let mib = 1usize << 20;
    // Written twice, so the second write is one the store knows needs no space.
    for seed in [1, 2] {
        store.write(a, 0, &pattern(mib, seed), false).unwrap();
        store.write(b, 0, &pattern(mib, seed), false).unwrap();
    }
    store.punch(a, 0, mib as u64).unwrap();
    store.truncate(b, 0).unwrap();

    let piece = pattern(64 << 10, 4);
    let mut off = 0u64;
    let full = loop {
        match store.write(c, off, &piece, false) {
            Ok(()) => off += piece.len() as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(full.errno(), Errno::ENOSPC, "{full}");

    let e = store.write(a, 0, &pattern(mib, 5), false).unwrap_err();
    assert!(matches!(e, OstError::NoSpace { .. }), "write into a punched range: {e}");
    let mut back = vec![1u8; mib];
    assert_eq!(store.read(a, 0, &mut back).unwrap(), mib);
    assert!(back.iter().all(|&x| x == 0), "a refused write left bytes in the punched range");

    let e = store.write(b, 0, &pattern(mib, 6), false).unwrap_err();
    assert!(matches!(e, OstError::NoSpace { .. }), "write into a truncated range: {e}");
    assert_eq!(store.getattr(b).unwrap().size, 0, "a refused write changed the size");
}
