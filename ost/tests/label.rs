//! A target serves only the file system and index it was formatted for.

mod common;

use common::{FS, INDEX};
use fabric::Errno;
use ost::{ObjectStore, OstError};

#[test]
fn format_then_open() {
    let dir = tempfile::tempdir().unwrap();
    let label = ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    assert_eq!((label.fsname.as_str(), label.index), (FS, INDEX));
    assert_eq!(label.target_name(), "testfs-OST0003");
    assert!(dir.path().join("O").is_dir());
    let store = ObjectStore::open(dir.path(), FS, INDEX).unwrap();
    assert_eq!(store.label(), &label);
}

#[test]
fn uuid_differs_between_formats() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let la = ObjectStore::format(a.path(), FS, INDEX).unwrap();
    let lb = ObjectStore::format(b.path(), FS, INDEX).unwrap();
    assert_ne!(la.uuid, lb.uuid);
}

#[test]
fn wrong_fsname_or_index_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    ObjectStore::format(dir.path(), FS, INDEX).unwrap();

    let e = ObjectStore::open(dir.path(), "otherfs", INDEX).unwrap_err();
    assert!(matches!(e, OstError::LabelMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("otherfs") && msg.contains(FS), "{msg}");

    let e = ObjectStore::open(dir.path(), FS, 7).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("index 7") && msg.contains("index 3"), "{msg}");
    assert_eq!(e.errno(), Errno::ENODEV);
}

#[test]
fn unformatted_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = ObjectStore::open(dir.path(), FS, INDEX).unwrap_err();
    assert!(matches!(e, OstError::NotFormatted { .. }), "{e}");
    let e = ObjectStore::open(&dir.path().join("missing"), FS, INDEX).unwrap_err();
    assert!(matches!(e, OstError::NotFormatted { .. }), "{e}");
}

#[test]
fn formatting_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    let e = ObjectStore::format(dir.path(), FS, 9).unwrap_err();
    assert!(matches!(e, OstError::AlreadyFormatted { .. }), "{e}");
    assert_eq!(e.errno(), Errno::EEXIST);
    assert_eq!(ObjectStore::open(dir.path(), FS, INDEX).unwrap().label(), &first);
}

#[test]
fn bad_fsname_and_damaged_label() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(ObjectStore::format(dir.path(), "much-too-long", 0), Err(OstError::BadFsname(_))));
    std::fs::write(dir.path().join(ost::label::LABEL_FILE), "fsname = 3\n").unwrap();
    let e = ObjectStore::open(dir.path(), FS, INDEX).unwrap_err();
    assert!(matches!(e, OstError::Damaged { .. }), "{e}");
}

#[test]
fn missing_object_tree_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    std::fs::remove_dir(dir.path().join("O")).unwrap();
    let e = ObjectStore::open(dir.path(), FS, INDEX).unwrap_err();
    assert!(matches!(e, OstError::Damaged { .. }), "{e}");
}
