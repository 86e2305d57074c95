//! Times set to "now" (utimensat's UTIME_NOW, `touch`) come from the MDS's
//! clock, and need write permission rather than ownership, as POSIX says.

mod common;

use common::*;
use proto::{Errno, Fid, SetAttr, Timestamp};

#[test]
fn now_is_the_servers_clock_and_explicit_times_are_kept() {
    let (_d, mdt) = mdt();
    let f = file(&mdt, &root(), Fid::ROOT, "f");
    let old = Timestamp { sec: 1_000_000, nsec: 7 };
    let a = mdt
        .setattr(&root(), f, &SetAttr { atime: Some(old), mtime: Some(old), ..Default::default() })
        .unwrap();
    assert_eq!((a.atime, a.mtime), (old, old));

    let before = Timestamp::now();
    let now_m = SetAttr { mtime_now: true, mtime: Some(Timestamp { sec: 5, nsec: 0 }), ..Default::default() };
    let a = mdt.setattr(&root(), f, &now_m).unwrap();
    let after = Timestamp::now();
    assert!(before <= a.mtime && a.mtime <= after, "{:?} not within [{before:?}, {after:?}]", a.mtime);
    assert_eq!(a.atime, old, "atime was not asked for");
    assert!(a.ctime >= a.mtime);

    let a = mdt.setattr(&root(), f, &SetAttr { atime_now: true, ..Default::default() }).unwrap();
    assert!(a.atime >= before);
    assert_eq!(mdt.getattr(f).unwrap(), a);
}

#[test]
fn now_needs_write_permission_explicit_times_need_the_owner() {
    let (_d, mdt) = mdt();
    let owner = user(100, 100);
    let writer = user(200, 200);
    let reader = user(300, 300);
    let f = file(&mdt, &root(), Fid::ROOT, "f");
    mdt.setattr(
        &root(),
        f,
        &SetAttr { uid: Some(100), gid: Some(100), mode: Some(0o646), ..Default::default() },
    )
    .unwrap();
    let explicit = SetAttr { mtime: Some(Timestamp { sec: 9, nsec: 0 }), ..Default::default() };
    let touch = SetAttr { atime_now: true, mtime_now: true, ..Default::default() };
    assert_eq!(errno(mdt.setattr(&writer, f, &explicit)), Errno::EPERM);
    mdt.setattr(&writer, f, &touch).unwrap();
    mdt.setattr(&owner, f, &explicit).unwrap();
    mdt.setattr(&owner, f, &touch).unwrap();
    mdt.setattr(&root(), f, &SetAttr { mode: Some(0o644), ..Default::default() }).unwrap();
    assert_eq!(errno(mdt.setattr(&reader, f, &touch)), Errno::EACCES);
    assert_eq!(errno(mdt.setattr(&writer, f, &touch)), Errno::EACCES);
    mdt.setattr(&owner, f, &touch).unwrap();
}
