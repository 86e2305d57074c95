//! Permission checks through the operations: owner/group/other classes,
//! supplementary groups, root, sticky and setgid directories.

mod common;

use common::*;
use mds::Mdt;
use proto::{Cred, Errno, Fid, SetAttr, StripeSpec};

/// A directory `d` owned by 100:200 with `mode`, in a world-writable root.
fn dir_with(mdt: &Mdt, mode: u32) -> Fid {
    let d = dir(mdt, &root(), Fid::ROOT, "d");
    mdt.setattr(
        &root(),
        d,
        &SetAttr { mode: Some(mode), uid: Some(100), gid: Some(200), ..Default::default() },
    )
    .unwrap();
    d
}

fn cred(uid: u32, gid: u32, groups: &[u32]) -> Cred {
    Cred { uid, gid, groups: groups.to_vec() }
}

#[test]
fn create_needs_write_and_search_on_the_parent() {
    // (directory mode, caller, expected)
    let owner = cred(100, 1, &[]);
    let group = cred(101, 200, &[]);
    let supp = cred(102, 1, &[7, 200]);
    let other = cred(103, 1, &[]);
    let root = root();
    let cases: Vec<(u32, &Cred, Option<Errno>)> = vec![
        (0o700, &owner, None),
        (0o500, &owner, Some(Errno::EACCES)),
        (0o600, &owner, Some(Errno::EACCES)), // no search
        (0o070, &owner, Some(Errno::EACCES)), // owner class has no bits
        (0o070, &group, None),
        (0o070, &supp, None),
        (0o050, &group, Some(Errno::EACCES)),
        (0o007, &group, Some(Errno::EACCES)), // group class chosen, no bits
        (0o007, &other, None),
        (0o005, &other, Some(Errno::EACCES)),
        (0o000, &root, None),
    ];
    for (mode, who, want) in cases {
        let (_d, mdt) = mdt();
        let d = dir_with(&mdt, mode);
        let r = mdt.create(who, d, "f", 0o644, &StripeSpec::default());
        assert_eq!(r.as_ref().err().map(|e| e.errno()), want, "mode {mode:o} caller {who:?}");
        let r = mdt.mkdir(who, d, "sub", 0o755);
        assert_eq!(r.as_ref().err().map(|e| e.errno()), want, "mkdir: mode {mode:o} caller {who:?}");
    }
}

#[test]
fn lookup_needs_search() {
    let (_d, mdt) = mdt();
    let d = dir_with(&mdt, 0o750);
    file(&mdt, &root(), d, "f");
    assert!(mdt.lookup(&cred(100, 1, &[]), d, "f").is_ok());
    assert!(mdt.lookup(&cred(5, 200, &[]), d, "f").is_ok());
    assert_eq!(errno(mdt.lookup(&cred(5, 1, &[]), d, "f")), Errno::EACCES);
    assert_eq!(errno(mdt.lookup(&cred(5, 1, &[]), d, "missing")), Errno::EACCES);
    // Readdir needs read.
    mdt.setattr(&root(), d, &SetAttr { mode: Some(0o711), ..Default::default() }).unwrap();
    assert!(mdt.lookup(&cred(5, 1, &[]), d, "f").is_ok());
    assert_eq!(errno(mdt.readdir(&cred(5, 1, &[]), d, 0, 10)), Errno::EACCES);
    assert!(mdt.readdir(&cred(100, 1, &[]), d, 0, 10).is_ok());
}

#[test]
fn unlink_and_rename_need_write_on_the_parent() {
    let (_d, mdt) = mdt();
    let d = dir_with(&mdt, 0o755);
    file(&mdt, &root(), d, "f");
    let other = cred(5, 5, &[]);
    assert_eq!(errno(mdt.unlink(&other, d, "f")), Errno::EACCES);
    assert_eq!(errno(mdt.unlink(&other, d, "missing")), Errno::ENOENT);
    assert_eq!(errno(mdt.rename(&other, d, "f", d, "g")), Errno::EACCES);
    assert_eq!(errno(mdt.link(&other, mdt.lookup(&other, d, "f").unwrap().fid, d, "h")), Errno::EACCES);
    let owner = cred(100, 1, &[]);
    mdt.rename(&owner, d, "f", d, "g").unwrap();
    mdt.unlink(&owner, d, "g").unwrap();
}

#[test]
fn sticky_directories_protect_other_users_entries() {
    let (_d, mdt) = mdt();
    let tmp = dir_with(&mdt, 0o1777);
    let alice = cred(1, 1, &[]);
    let bob = cred(2, 2, &[]);
    let dir_owner = cred(100, 1, &[]);
    file(&mdt, &alice, tmp, "a1");
    file(&mdt, &alice, tmp, "a2");
    file(&mdt, &alice, tmp, "a3");
    file(&mdt, &bob, tmp, "b");
    assert_eq!(errno(mdt.unlink(&bob, tmp, "a1")), Errno::EPERM);
    assert_eq!(errno(mdt.rename(&bob, tmp, "a1", tmp, "mine")), Errno::EPERM);
    // Replacing someone else's entry by rename is refused too.
    assert_eq!(errno(mdt.rename(&bob, tmp, "b", tmp, "a1")), Errno::EPERM);
    mdt.unlink(&alice, tmp, "a1").unwrap();
    mdt.unlink(&dir_owner, tmp, "a2").unwrap();
    mdt.unlink(&root(), tmp, "a3").unwrap();
    mdt.rename(&bob, tmp, "b", tmp, "b2").unwrap();
    // Without the sticky bit anyone with write access may.
    let open = dir(&mdt, &root(), Fid::ROOT, "open");
    mdt.setattr(&root(), open, &SetAttr { mode: Some(0o777), ..Default::default() }).unwrap();
    file(&mdt, &alice, open, "a");
    mdt.unlink(&bob, open, "a").unwrap();
    assert_consistent(&mdt);
}

#[test]
fn setgid_directories_pass_on_group_and_bit() {
    let (_d, mdt) = mdt();
    let shared = dir_with(&mdt, 0o2777);
    let u = cred(5, 5, &[]);
    let f = mdt.create(&u, shared, "f", 0o644, &StripeSpec::default()).unwrap().0;
    assert_eq!((f.uid, f.gid), (5, 200));
    let sub = mdt.mkdir(&u, shared, "sub", 0o755).unwrap();
    assert_eq!(sub.gid, 200);
    assert_eq!(sub.mode, libc::S_IFDIR | libc::S_ISGID | 0o755);
    // ... and the subdirectory passes it on again.
    let g = mdt.create(&u, sub.fid, "g", 0o644, &StripeSpec::default()).unwrap().0;
    assert_eq!(g.gid, 200);
    // A caller outside the group cannot make a setgid file there.
    let h = mdt.create(&u, shared, "h", 0o2755, &StripeSpec::default()).unwrap().0;
    assert_eq!(h.mode, libc::S_IFREG | 0o755);
    let member = cred(6, 6, &[200]);
    let k = mdt.create(&member, shared, "k", 0o2755, &StripeSpec::default()).unwrap().0;
    assert_eq!(k.mode, libc::S_IFREG | 0o2755);
    // Elsewhere the creator's primary group is used.
    let plain = dir(&mdt, &root(), Fid::ROOT, "plain");
    mdt.setattr(&root(), plain, &SetAttr { mode: Some(0o777), ..Default::default() }).unwrap();
    let p = mdt.mkdir(&u, plain, "x", 0o755).unwrap();
    assert_eq!((p.gid, p.mode & libc::S_ISGID), (5, 0));
    // chmod by a non-member drops setgid.
    let a = mdt.setattr(&u, f.fid, &SetAttr { mode: Some(0o2644), ..Default::default() }).unwrap();
    assert_eq!(a.mode, libc::S_IFREG | 0o644);
}

#[test]
fn xattr_permissions_follow_the_file() {
    let (_d, mdt) = mdt();
    let d = dir_with(&mdt, 0o777);
    let f = mdt.create(&cred(5, 5, &[]), d, "f", 0o640, &StripeSpec::default()).unwrap().0.fid;
    mdt.setxattr(&cred(5, 5, &[]), f, "user.k", b"v", mds::XattrMode::Any).unwrap();
    assert_eq!(mdt.getxattr(&cred(6, 5, &[]), f, "user.k").unwrap(), b"v");
    assert_eq!(errno(mdt.getxattr(&cred(6, 6, &[]), f, "user.k")), Errno::EACCES);
    assert_eq!(errno(mdt.setxattr(&cred(6, 5, &[]), f, "user.k", b"w", mds::XattrMode::Any)), Errno::EACCES);
    assert_eq!(
        errno(mdt.setxattr(&cred(5, 5, &[]), f, "trusted.k", b"w", mds::XattrMode::Any)),
        Errno::EPERM
    );
}

#[test]
fn moving_a_directory_needs_write_on_it() {
    let (_d, mdt) = mdt();
    let d = dir_with(&mdt, 0o777);
    let a = dir(&mdt, &root(), d, "a");
    let b = dir(&mdt, &root(), d, "b");
    mdt.setattr(&root(), a, &SetAttr { mode: Some(0o777), ..Default::default() }).unwrap();
    mdt.setattr(&root(), b, &SetAttr { mode: Some(0o777), ..Default::default() }).unwrap();
    dir(&mdt, &root(), a, "sub"); // 0755 root: others may not rewrite its `..`
    let u = cred(5, 5, &[]);
    assert_eq!(errno(mdt.rename(&u, a, "sub", b, "sub")), Errno::EACCES);
    // Renaming within the same directory leaves `..` alone.
    mdt.rename(&u, a, "sub", a, "sub2").unwrap();
}
