//! Destroying the objects the MDS precreated and never used (its pool when
//! it stopped): everything above the MDS's last used id goes, LAST_ID
//! stays so ids are not reused, and a run cut short finishes when repeated.

mod common;

use common::{FS, INDEX};
use ost::ObjectStore;
use ost::paths::object_path;
use proto::Fid;

fn exists(dir: &std::path::Path, oid: u32) -> bool {
    object_path(dir, Fid::new(Fid::ost_seq(INDEX), oid)).exists()
}

#[test]
fn objects_above_the_last_used_go_and_last_id_stays() {
    let dir = tempfile::tempdir().unwrap();
    ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    let store = ObjectStore::open(dir.path(), FS, INDEX).unwrap();
    let seq = Fid::ost_seq(INDEX);
    store.precreate(seq, 1, 100).unwrap();
    assert_eq!(store.destroy_orphans(seq, 40).unwrap(), (100, 60));
    assert!((1..=40).all(|o| exists(dir.path(), o)));
    assert!((41..=100).all(|o| !exists(dir.path(), o)));
    assert_eq!(store.last_id(seq).unwrap(), 100);
    // Again: nothing left to do.
    assert_eq!(store.destroy_orphans(seq, 40).unwrap(), (100, 0));
    // Precreation goes on above LAST_ID.
    assert_eq!(store.precreate(seq, 101, 5).unwrap(), 105);
    drop(store);
    let store = ObjectStore::open(dir.path(), FS, INDEX).unwrap();
    assert_eq!(store.last_id(seq).unwrap(), 105);
    assert!(!exists(dir.path(), 41));
}

#[test]
fn a_cleanup_cut_short_finishes_when_repeated() {
    let dir = tempfile::tempdir().unwrap();
    ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    let store = ObjectStore::open(dir.path(), FS, INDEX).unwrap();
    let seq = Fid::ost_seq(INDEX);
    store.precreate(seq, 1, 50).unwrap();
    // What a crash part way leaves: the highest orphans already gone.
    for oid in 45..=50 {
        std::fs::remove_file(object_path(dir.path(), Fid::new(seq, oid))).unwrap();
    }
    assert_eq!(store.destroy_orphans(seq, 30).unwrap(), (50, 14));
    assert!((1..=30).all(|o| exists(dir.path(), o)));
    assert!((31..=50).all(|o| !exists(dir.path(), o)));
}

#[test]
fn nothing_goes_when_everything_was_used() {
    let dir = tempfile::tempdir().unwrap();
    ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    let store = ObjectStore::open(dir.path(), FS, INDEX).unwrap();
    let seq = Fid::ost_seq(INDEX);
    // A sequence never precreated on: no LAST_ID, nothing to destroy.
    assert_eq!(store.destroy_orphans(seq, 0).unwrap(), (0, 0));
    store.precreate(seq, 1, 10).unwrap();
    assert_eq!(store.destroy_orphans(seq, 10).unwrap(), (10, 0));
    // An MDS that used more than the OST has (an OST restored from an
    // older copy) destroys nothing either.
    assert_eq!(store.destroy_orphans(seq, 1000).unwrap(), (10, 0));
    assert!((1..=10).all(|o| exists(dir.path(), o)));
}
