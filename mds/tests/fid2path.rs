//! fid2path from the names each inode keeps: nested paths, hard links,
//! renames and unlinks keeping them right, permissions, and an MDT made
//! before names were kept (format 1) upgraded when it is opened.

mod common;

use common::*;
use mds::Mdt;
use proto::{Errno, Fid};
use redb::{ReadableDatabase, TableDefinition};
use std::collections::BTreeSet;

fn paths(mdt: &Mdt, fid: Fid) -> BTreeSet<String> {
    let (first, links) = mdt.fid2path(&root(), fid, 0).unwrap();
    let mut all = BTreeSet::from([first]);
    for link in 1..links {
        all.insert(mdt.fid2path(&root(), fid, link).unwrap().0);
    }
    assert_eq!(all.len(), links as usize, "{fid} has {links} names but fewer distinct paths");
    all
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn nested_files_and_directories_and_the_root() {
    let (_d, mdt) = mdt();
    let a = dir(&mdt, &root(), Fid::ROOT, "a");
    let b = dir(&mdt, &root(), a, "b");
    let f = file(&mdt, &root(), b, "f");
    assert_eq!(mdt.fid2path(&root(), f, 0).unwrap(), ("a/b/f".to_string(), 1));
    assert_eq!(mdt.fid2path(&root(), b, 0).unwrap(), ("a/b".to_string(), 1));
    assert_eq!(mdt.fid2path(&root(), Fid::ROOT, 0).unwrap(), (String::new(), 1));
    assert_eq!(errno(mdt.fid2path(&root(), f, 1)), Errno::ENOENT);
    assert_eq!(errno(mdt.fid2path(&root(), Fid::new(Fid::MDT_SEQ, 999_999), 0)), Errno::ENOENT);
}

#[test]
fn every_hard_link_has_its_number() {
    let (_d, mdt) = mdt();
    let a = dir(&mdt, &root(), Fid::ROOT, "a");
    let c = dir(&mdt, &root(), Fid::ROOT, "c");
    let f = file(&mdt, &root(), a, "f");
    mdt.link(&root(), f, a, "g").unwrap();
    mdt.link(&root(), f, c, "h").unwrap();
    assert_eq!(paths(&mdt, f), set(&["a/f", "a/g", "c/h"]));
    mdt.unlink(&root(), a, "f").unwrap();
    assert_eq!(paths(&mdt, f), set(&["a/g", "c/h"]));
    assert_eq!(errno(mdt.fid2path(&root(), f, 2)), Errno::ENOENT);
    assert_consistent(&mdt);
}

#[test]
fn renames_move_the_paths_of_everything_below() {
    let (_d, mdt) = mdt();
    let a = dir(&mdt, &root(), Fid::ROOT, "a");
    let b = dir(&mdt, &root(), a, "b");
    let x = dir(&mdt, &root(), Fid::ROOT, "x");
    let f = file(&mdt, &root(), b, "f");
    mdt.rename(&root(), Fid::ROOT, "a", x, "y").unwrap();
    assert_eq!(paths(&mdt, f), set(&["x/y/b/f"]));
    assert_eq!(paths(&mdt, b), set(&["x/y/b"]));
    // A rename over an existing name: the replaced file keeps only its
    // other names, the moved one takes the name.
    let victim = file(&mdt, &root(), x, "v");
    mdt.link(&root(), victim, Fid::ROOT, "v2").unwrap();
    mdt.rename(&root(), b, "f", x, "v").unwrap();
    assert_eq!(paths(&mdt, f), set(&["x/v"]));
    assert_eq!(paths(&mdt, victim), set(&["v2"]));
    // Renaming a directory over an empty one.
    let e = dir(&mdt, &root(), Fid::ROOT, "empty");
    mdt.rename(&root(), x, "y", Fid::ROOT, "empty").unwrap();
    assert_eq!(paths(&mdt, b), set(&["empty/b"]));
    assert_eq!(errno(mdt.fid2path(&root(), e, 0)), Errno::ENOENT);
    assert_consistent(&mdt);
}

#[test]
fn an_unlinked_open_file_has_no_path() {
    let (_d, mdt) = mdt();
    let f = file(&mdt, &root(), Fid::ROOT, "f");
    mdt.open_file(&root(), f, libc::O_RDONLY).unwrap();
    mdt.unlink(&root(), Fid::ROOT, "f").unwrap();
    assert_eq!(errno(mdt.fid2path(&root(), f, 0)), Errno::ENOENT);
    mdt.close_file(f).unwrap();
    assert_eq!(errno(mdt.fid2path(&root(), f, 0)), Errno::ENOENT);
    assert_consistent(&mdt);
}

#[test]
fn a_path_needs_search_permission_along_it() {
    let (_d, mdt) = mdt();
    let u = user(100, 100);
    let open = mdt.mkdir(&root(), Fid::ROOT, "open", 0o755).unwrap().fid;
    let closed = mdt.mkdir(&root(), open, "closed", 0o700).unwrap().fid;
    let f = file(&mdt, &root(), closed, "f");
    let g = file(&mdt, &root(), open, "g");
    assert_eq!(mdt.fid2path(&u, g, 0).unwrap().0, "open/g");
    assert_eq!(errno(mdt.fid2path(&u, f, 0)), Errno::EACCES);
    assert_eq!(mdt.fid2path(&root(), f, 0).unwrap().0, "open/closed/f");
}

const LINKS: TableDefinition<(u128, u128, &[u8]), ()> = TableDefinition::new("links");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Turns an MDT into what format 1 wrote: no names kept per inode.
fn make_format_1(path: &std::path::Path) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    assert!(txn.delete_table(LINKS).unwrap());
    txn.open_table(META).unwrap().insert("format", 1u64.to_le_bytes().as_slice()).unwrap();
    txn.commit().unwrap();
}

fn format_of(path: &std::path::Path) -> u64 {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let v = txn.open_table(META).unwrap().get("format").unwrap().unwrap().value().to_vec();
    u64::from_le_bytes(v.try_into().unwrap())
}

#[test]
fn an_mdt_from_before_names_were_kept_is_upgraded_on_open() {
    let (d, mdt) = mdt();
    let a = dir(&mdt, &root(), Fid::ROOT, "a");
    let f = file(&mdt, &root(), a, "f");
    mdt.link(&root(), f, Fid::ROOT, "g").unwrap();
    let s = mdt.mkdir(&root(), a, "s", 0o755).unwrap().fid;
    let path = mdt.path().to_path_buf();
    drop(mdt);
    make_format_1(&path);
    assert_eq!(format_of(&path), 1);

    let mdt = Mdt::open(&path).unwrap();
    assert_consistent(&mdt);
    assert_eq!(paths(&mdt, f), set(&["a/f", "g"]));
    assert_eq!(paths(&mdt, s), set(&["a/s"]));
    // And the names stay right from then on.
    mdt.rename(&root(), Fid::ROOT, "a", s, "moved").unwrap_err();
    mdt.rename(&root(), Fid::ROOT, "a", Fid::ROOT, "b").unwrap();
    assert_eq!(paths(&mdt, f), set(&["b/f", "g"]));
    drop(mdt);
    assert_eq!(format_of(&path), 2);
    let mdt = Mdt::open(&path).unwrap();
    assert_eq!(paths(&mdt, f), set(&["b/f", "g"]));
    assert_consistent(&mdt);
    drop(d);
}

#[test]
fn an_unknown_format_is_refused() {
    let (_d, mdt) = mdt();
    let path = mdt.path().to_path_buf();
    drop(mdt);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("format", 99u64.to_le_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let e = Mdt::open(&path).unwrap_err();
    assert!(matches!(e, mds::MdsError::NotFormatted(_)), "{e:?}");
}
