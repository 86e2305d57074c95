//! Every namespace operation's success and error paths, with the errno.

mod common;

use common::*;
use mds::{Mdt, XattrMode};
use proto::{Errno, Fid, InodeAttrs, SetAttr, StripeSpec, Timestamp};

#[test]
fn format_makes_a_root_and_reopens() {
    let (dir, mdt) = mdt();
    let r = mdt.getattr(Fid::ROOT).unwrap();
    assert_eq!(r.mode, libc::S_IFDIR | 0o755);
    assert_eq!((r.uid, r.gid, r.nlink), (0, 0, 2));
    assert_eq!(mdt.fsname(), "testfs");
    let f = file(&mdt, &root(), Fid::ROOT, "a");
    assert_eq!(f.seq, Fid::MDT_SEQ);
    drop(mdt);
    let mdt = Mdt::open(dir.path().join("mdt.db")).unwrap();
    assert_eq!(mdt.lookup(&root(), Fid::ROOT, "a").unwrap().fid, f);
    assert_eq!(mdt.fsname(), "testfs");
    // A second format over it is refused; so is opening nothing.
    assert_eq!(errno(Mdt::format(dir.path().join("mdt.db"), "testfs")), Errno::EEXIST);
    assert!(matches!(Mdt::open(dir.path().join("none")), Err(mds::MdsError::NotFormatted(_))));
    assert_eq!(errno(Mdt::format(dir.path().join("x.db"), "bad/name")), Errno::EINVAL);
    std::fs::write(dir.path().join("junk"), b"not a database at all").unwrap();
    assert!(Mdt::open(dir.path().join("junk")).is_err());
}

#[test]
fn create_lookup_getattr() {
    let (_d, mdt) = mdt();
    let (attr, layout) = mdt.create(&root(), Fid::ROOT, "f", 0o640, &StripeSpec::default()).unwrap();
    assert_eq!(attr.mode, libc::S_IFREG | 0o640);
    assert_eq!(attr.nlink, 1);
    let r0 = layout.raid0().unwrap();
    assert_eq!(r0.stripe_count(), 1);
    assert_eq!(r0.stripe_size, 1 << 20);
    assert_eq!(mdt.layout(attr.fid).unwrap(), layout);
    assert_eq!(mdt.lookup(&root(), Fid::ROOT, "f").unwrap(), attr);
    assert_eq!(mdt.getattr(attr.fid).unwrap(), attr);
    assert_eq!(mdt.lookup(&root(), Fid::ROOT, ".").unwrap().fid, Fid::ROOT);
    assert_eq!(mdt.lookup(&root(), Fid::ROOT, "..").unwrap().fid, Fid::ROOT);

    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, "f", 0o644, &StripeSpec::default())), Errno::EEXIST);
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, ".", 0o644, &StripeSpec::default())), Errno::EEXIST);
    assert_eq!(errno(mdt.create(&root(), attr.fid, "g", 0o644, &StripeSpec::default())), Errno::ENOTDIR);
    assert_eq!(
        errno(mdt.create(&root(), Fid::new(Fid::MDT_SEQ, 999), "g", 0o644, &StripeSpec::default())),
        Errno::ENOENT
    );
    assert_eq!(
        errno(mdt.create(&root(), Fid::ROOT, "a".repeat(256), 0o644, &StripeSpec::default())),
        Errno::ENAMETOOLONG
    );
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, "a/b", 0o644, &StripeSpec::default())), Errno::EINVAL);
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, b"a\0b", 0o644, &StripeSpec::default())), Errno::EINVAL);
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, "", 0o644, &StripeSpec::default())), Errno::ENOENT);
    assert_eq!(
        errno(mdt.create(&root(), Fid::ROOT, "d", libc::S_IFDIR | 0o644, &StripeSpec::default())),
        Errno::EINVAL
    );
    let bad = StripeSpec { stripe_size: Some(1000), ..Default::default() };
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, "g", 0o644, &bad)), Errno::EINVAL);
    let off = StripeSpec { stripe_offset: Some(77), ..Default::default() };
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, "g", 0o644, &off)), Errno::EINVAL);
    assert!(mdt.create(&root(), Fid::ROOT, "a".repeat(255), 0o644, &StripeSpec::default()).is_ok());

    assert_eq!(errno(mdt.lookup(&root(), Fid::ROOT, "nope")), Errno::ENOENT);
    assert_eq!(errno(mdt.lookup(&root(), attr.fid, "x")), Errno::ENOTDIR);
    assert_eq!(errno(mdt.lookup(&root(), Fid::ROOT, "a".repeat(256))), Errno::ENAMETOOLONG);
    assert_eq!(errno(mdt.getattr(Fid::new(Fid::MDT_SEQ, 999))), Errno::ENOENT);
    assert_eq!(errno(mdt.layout(Fid::ROOT)), Errno::ENODATA);
    assert_consistent(&mdt);
}

#[test]
fn getattr_many_answers_in_order_and_names_the_gone() {
    let (_d, mdt) = mdt();
    let (f, layout) = mdt.create(&root(), Fid::ROOT, "f", 0o640, &StripeSpec::default()).unwrap();
    let d = dir(&mdt, &root(), Fid::ROOT, "d");
    let gone = file(&mdt, &root(), Fid::ROOT, "gone");
    mdt.unlink(&root(), Fid::ROOT, "gone").unwrap();
    mdt.setxattr(&root(), d, "user.a", b"1", XattrMode::Any).unwrap();
    let got = mdt.getattr_many(&[d, gone, f.fid, Fid::new(Fid::MDT_SEQ, 999), d]).unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], Some(InodeAttrs { attr: mdt.getattr(d).unwrap(), layout: None, xattrs: true }));
    assert_eq!(got[1], None);
    assert_eq!(got[2], Some(InodeAttrs { attr: f, layout: Some(layout), xattrs: false }));
    assert_eq!(got[3], None);
    assert_eq!(got[4], got[0]);
    assert!(mdt.getattr_many(&[]).unwrap().is_empty());
}

#[test]
fn striping_is_inherited() {
    let (_d, mdt) = mdt();
    let d = dir(&mdt, &root(), Fid::ROOT, "d");
    assert_eq!(mdt.dir_stripe(d).unwrap(), None);
    let spec = StripeSpec { stripe_count: Some(2), stripe_size: Some(4 << 20), stripe_offset: None };
    mdt.set_dir_stripe(&root(), d, Some(spec)).unwrap();
    assert_eq!(mdt.dir_stripe(d).unwrap(), Some(spec));
    let (_, l) = mdt.create(&root(), d, "f", 0o644, &StripeSpec::default()).unwrap();
    let r = l.raid0().unwrap();
    assert_eq!((r.stripe_count(), r.stripe_size), (2, 4 << 20));
    // A request overrides field by field.
    let (_, l) = mdt
        .create(&root(), d, "g", 0o644, &StripeSpec { stripe_count: Some(-1), ..Default::default() })
        .unwrap();
    let r = l.raid0().unwrap();
    assert_eq!((r.stripe_count(), r.stripe_size), (4, 4 << 20));
    // Subdirectories inherit the default.
    let sub = dir(&mdt, &root(), d, "sub");
    assert_eq!(mdt.dir_stripe(sub).unwrap(), Some(spec));
    // An explicit offset is recorded and honoured.
    let (_, l) = mdt
        .create(&root(), d, "h", 0o644, &StripeSpec { stripe_offset: Some(3), ..Default::default() })
        .unwrap();
    let r = l.raid0().unwrap();
    assert_eq!(r.stripe_offset, Some(3));
    assert_eq!(r.objects.iter().map(|o| o.ost_idx).collect::<Vec<_>>(), vec![3, 0]);
    // The file system default.
    let fs = StripeSpec { stripe_count: Some(3), stripe_size: Some(65536), stripe_offset: None };
    assert_eq!(errno(mdt.set_fs_stripe(&user(1, 1), fs)), Errno::EPERM);
    mdt.set_fs_stripe(&root(), fs).unwrap();
    assert_eq!(mdt.fs_stripe().unwrap(), fs);
    let (_, l) = mdt.create(&root(), Fid::ROOT, "top", 0o644, &StripeSpec::default()).unwrap();
    assert_eq!(l.raid0().unwrap().stripe_count(), 3);
    mdt.set_dir_stripe(&root(), d, None).unwrap();
    assert_eq!(mdt.effective_stripe(d, &StripeSpec::default()).unwrap(), fs);
    assert_eq!(
        errno(mdt.set_dir_stripe(
            &root(),
            d,
            Some(StripeSpec { stripe_count: Some(0), ..Default::default() })
        )),
        Errno::EINVAL
    );
    let f = mdt.lookup(&root(), d, "f").unwrap().fid;
    assert_eq!(errno(mdt.set_dir_stripe(&root(), f, None)), Errno::ENOTDIR);
    assert_eq!(errno(mdt.set_dir_stripe(&user(5, 5), d, None)), Errno::EPERM);
    assert_eq!(errno(mdt.set_fs_stripe(&root(), StripeSpec::default())), Errno::EINVAL);
}

#[test]
fn create_without_objects_is_enospc_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mdt = Mdt::format(dir.path().join("mdt.db"), "fs").unwrap();
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, "f", 0o644, &StripeSpec::default())), Errno::ENOSPC);
    assert_eq!(errno(mdt.lookup(&root(), Fid::ROOT, "f")), Errno::ENOENT);
    mdt.pools().add_precreated(0, Fid::ost_seq(0), 1, 1).unwrap();
    file(&mdt, &root(), Fid::ROOT, "f");
    assert!(mdt.pools().low_water(0));
    assert_eq!(mdt.pools().refill_wanted(), vec![(0, 4096)]);
    assert_eq!(errno(mdt.create(&root(), Fid::ROOT, "g", 0o644, &StripeSpec::default())), Errno::ENOSPC);
    assert_consistent(&mdt);
}

#[test]
fn object_ids_are_not_reused_after_reopen() {
    let (d, mdt) = mdt();
    let (_, l) = mdt
        .create(&root(), Fid::ROOT, "f", 0o644, &StripeSpec { stripe_offset: Some(0), ..Default::default() })
        .unwrap();
    let used = l.raid0().unwrap().objects[0];
    drop(mdt);
    let mdt = Mdt::open(d.path().join("mdt.db")).unwrap();
    // The OST reports the same precreated range again: the used id is skipped.
    assert_eq!(mdt.pools().add_precreated(0, Fid::ost_seq(0), 1, 10).unwrap(), 9);
    let (_, l) = mdt
        .create(&root(), Fid::ROOT, "g", 0o644, &StripeSpec { stripe_offset: Some(0), ..Default::default() })
        .unwrap();
    assert_ne!(l.raid0().unwrap().objects[0], used);
    assert_consistent(&mdt);
}

#[test]
fn mkdir_and_rmdir() {
    let (_d, mdt) = mdt();
    let a = mdt.mkdir(&root(), Fid::ROOT, "a", 0o750).unwrap();
    assert_eq!(a.mode, libc::S_IFDIR | 0o750);
    assert_eq!(a.nlink, 2);
    assert_eq!(mdt.getattr(Fid::ROOT).unwrap().nlink, 3);
    assert_eq!(mdt.lookup(&root(), a.fid, "..").unwrap().fid, Fid::ROOT);
    assert_eq!(errno(mdt.mkdir(&root(), Fid::ROOT, "a", 0o755)), Errno::EEXIST);
    assert_eq!(errno(mdt.mkdir(&root(), Fid::ROOT, "..", 0o755)), Errno::EEXIST);
    let b = dir(&mdt, &root(), a.fid, "b");
    file(&mdt, &root(), b, "f");
    assert_eq!(mdt.getattr(a.fid).unwrap().nlink, 3);
    assert_eq!(errno(mdt.rmdir(&root(), Fid::ROOT, "a")), Errno::ENOTEMPTY);
    assert_eq!(errno(mdt.rmdir(&root(), b, "f")), Errno::ENOTDIR);
    assert_eq!(errno(mdt.rmdir(&root(), b, "zz")), Errno::ENOENT);
    assert_eq!(errno(mdt.rmdir(&root(), b, ".")), Errno::EINVAL);
    assert_eq!(errno(mdt.rmdir(&root(), b, "..")), Errno::ENOTEMPTY);
    mdt.unlink(&root(), b, "f").unwrap();
    mdt.rmdir(&root(), a.fid, "b").unwrap();
    assert_eq!(errno(mdt.getattr(b)), Errno::ENOENT);
    assert_eq!(mdt.getattr(a.fid).unwrap().nlink, 2);
    mdt.rmdir(&root(), Fid::ROOT, "a").unwrap();
    assert_eq!(mdt.getattr(Fid::ROOT).unwrap().nlink, 2);
    assert_consistent(&mdt);
}

#[test]
fn mknod_symlink_readlink() {
    let (_d, mdt) = mdt();
    let fifo = mdt.mknod(&user(5, 5), Fid::ROOT, "p", libc::S_IFIFO | 0o600, 0);
    // Root's directory is 0755: user 5 may not write in it.
    assert_eq!(errno(fifo), Errno::EACCES);
    let p = mdt.mknod(&root(), Fid::ROOT, "p", libc::S_IFIFO | 0o600, 0).unwrap();
    assert_eq!(p.mode, libc::S_IFIFO | 0o600);
    let s = mdt.mknod(&root(), Fid::ROOT, "s", libc::S_IFSOCK | 0o600, 0).unwrap();
    assert_eq!(s.kind(), libc::S_IFSOCK);
    let c = mdt.mknod(&root(), Fid::ROOT, "c", libc::S_IFCHR | 0o600, 0x0501).unwrap();
    assert_eq!((c.kind(), c.rdev), (libc::S_IFCHR, 0x0501));
    let blk = mdt.mknod(&root(), Fid::ROOT, "b", libc::S_IFBLK | 0o600, 7).unwrap();
    assert_eq!(blk.kind(), libc::S_IFBLK);
    let r = mdt.mknod(&root(), Fid::ROOT, "r", libc::S_IFREG | 0o600, 0).unwrap();
    assert!(r.is_reg());
    assert!(mdt.layout(r.fid).is_ok());
    assert_eq!(errno(mdt.mknod(&root(), Fid::ROOT, "d", libc::S_IFDIR | 0o600, 0)), Errno::EINVAL);
    assert_eq!(errno(mdt.mknod(&root(), Fid::ROOT, "l", libc::S_IFLNK | 0o600, 0)), Errno::EINVAL);
    let open = dir(&mdt, &root(), Fid::ROOT, "open");
    mdt.setattr(&root(), open, &SetAttr { mode: Some(0o777), ..Default::default() }).unwrap();
    assert_eq!(errno(mdt.mknod(&user(5, 5), open, "c", libc::S_IFCHR | 0o600, 1)), Errno::EPERM);

    let l = mdt.symlink(&root(), Fid::ROOT, "l", "some/where").unwrap();
    assert_eq!(l.mode, libc::S_IFLNK | 0o777);
    assert_eq!(l.size, 10);
    assert_eq!(mdt.readlink(l.fid).unwrap(), b"some/where");
    assert_eq!(errno(mdt.readlink(p.fid)), Errno::EINVAL);
    assert_eq!(errno(mdt.symlink(&root(), Fid::ROOT, "l2", "")), Errno::ENOENT);
    assert_eq!(errno(mdt.symlink(&root(), Fid::ROOT, "l2", "x".repeat(4096))), Errno::ENAMETOOLONG);
    assert_eq!(errno(mdt.symlink(&root(), Fid::ROOT, "l", "x")), Errno::EEXIST);
    assert_consistent(&mdt);
}

#[test]
fn link_and_unlink() {
    let (_d, mdt) = mdt();
    let d = dir(&mdt, &root(), Fid::ROOT, "d");
    let f = file(&mdt, &root(), Fid::ROOT, "f");
    let a = mdt.link(&root(), f, d, "f2").unwrap();
    assert_eq!(a.nlink, 2);
    assert_eq!(mdt.lookup(&root(), d, "f2").unwrap().fid, f);
    assert_eq!(errno(mdt.link(&root(), f, d, "f2")), Errno::EEXIST);
    assert_eq!(errno(mdt.link(&root(), d, Fid::ROOT, "dl")), Errno::EPERM);
    assert_eq!(errno(mdt.link(&root(), Fid::new(Fid::MDT_SEQ, 999), d, "x")), Errno::ENOENT);
    assert_eq!(errno(mdt.link(&root(), f, f, "x")), Errno::ENOTDIR);

    mdt.unlink(&root(), Fid::ROOT, "f").unwrap();
    assert_eq!(mdt.getattr(f).unwrap().nlink, 1);
    assert!(mdt.destroy_log_pending(10).unwrap().is_empty());
    assert_eq!(errno(mdt.unlink(&root(), Fid::ROOT, "f")), Errno::ENOENT);
    assert_eq!(errno(mdt.unlink(&root(), Fid::ROOT, "d")), Errno::EISDIR);
    assert_eq!(errno(mdt.unlink(&root(), Fid::ROOT, ".")), Errno::EISDIR);
    assert_eq!(errno(mdt.unlink(&root(), f, "x")), Errno::ENOTDIR);
    let layout = mdt.layout(f).unwrap();
    mdt.unlink(&root(), d, "f2").unwrap();
    assert_eq!(errno(mdt.getattr(f)), Errno::ENOENT);
    let pending: Vec<_> = mdt.destroy_log_pending(10).unwrap().into_iter().map(|(_, o)| o).collect();
    assert_eq!(pending, layout.objects().copied().collect::<Vec<_>>());
    assert_consistent(&mdt);
}

#[test]
fn destroy_log_drains() {
    let (_d, mdt) = mdt();
    let wide = StripeSpec { stripe_count: Some(-1), ..Default::default() };
    let mut all = Vec::new();
    for i in 0..3 {
        let (_, l) = mdt.create(&root(), Fid::ROOT, format!("f{i}"), 0o644, &wide).unwrap();
        all.extend(l.objects().copied());
        mdt.unlink(&root(), Fid::ROOT, format!("f{i}")).unwrap();
    }
    let first = mdt.destroy_log_pending(5).unwrap();
    assert_eq!(first.len(), 5);
    assert_eq!(first.iter().map(|(_, o)| *o).collect::<Vec<_>>(), all[..5]);
    mdt.destroy_log_done(&first.iter().map(|(id, _)| *id).collect::<Vec<_>>()).unwrap();
    let rest = mdt.destroy_log_pending(100).unwrap();
    assert_eq!(rest.iter().map(|(_, o)| *o).collect::<Vec<_>>(), all[5..]);
    mdt.destroy_log_done(&rest.iter().map(|(id, _)| *id).collect::<Vec<_>>()).unwrap();
    assert!(mdt.destroy_log_pending(100).unwrap().is_empty());
    // Ids are never reused: a late duplicate "done" removes nothing new.
    file(&mdt, &root(), Fid::ROOT, "g");
    mdt.unlink(&root(), Fid::ROOT, "g").unwrap();
    mdt.destroy_log_done(&[first[0].0]).unwrap();
    assert_eq!(mdt.destroy_log_pending(100).unwrap().len(), 1);
}

#[test]
fn rename_within_and_across_directories() {
    let (_d, mdt) = mdt();
    let a = dir(&mdt, &root(), Fid::ROOT, "a");
    let b = dir(&mdt, &root(), Fid::ROOT, "b");
    let f = file(&mdt, &root(), a, "f");
    mdt.rename(&root(), a, "f", a, "g").unwrap();
    assert_eq!(errno(mdt.lookup(&root(), a, "f")), Errno::ENOENT);
    assert_eq!(mdt.lookup(&root(), a, "g").unwrap().fid, f);
    mdt.rename(&root(), a, "g", b, "h").unwrap();
    assert_eq!(mdt.lookup(&root(), b, "h").unwrap().fid, f);
    assert!(names(&mdt, a, 10).is_empty());

    // A directory moving updates `..` and both parents' link counts.
    let sub = dir(&mdt, &root(), a, "sub");
    assert_eq!(mdt.getattr(a).unwrap().nlink, 3);
    mdt.rename(&root(), a, "sub", b, "sub").unwrap();
    assert_eq!(mdt.getattr(a).unwrap().nlink, 2);
    assert_eq!(mdt.getattr(b).unwrap().nlink, 3);
    assert_eq!(mdt.lookup(&root(), sub, "..").unwrap().fid, b);

    // Errors.
    assert_eq!(errno(mdt.rename(&root(), a, "nope", b, "x")), Errno::ENOENT);
    assert_eq!(errno(mdt.rename(&root(), a, ".", b, "x")), Errno::EBUSY);
    assert_eq!(errno(mdt.rename(&root(), b, "h", b, "..")), Errno::EBUSY);
    assert_eq!(errno(mdt.rename(&root(), b, "h", b, "x/y")), Errno::EINVAL);
    assert_eq!(errno(mdt.rename(&root(), b, "h", f, "x")), Errno::ENOTDIR);
    assert_eq!(errno(mdt.rename(&root(), b, "h", b, "a".repeat(256))), Errno::ENAMETOOLONG);
    assert_consistent(&mdt);
}

#[test]
fn rename_replacing_targets() {
    let (_d, mdt) = mdt();
    let d = dir(&mdt, &root(), Fid::ROOT, "d");
    let f1 = file(&mdt, &root(), d, "f1");
    let f2 = file(&mdt, &root(), d, "f2");
    let e1 = dir(&mdt, &root(), d, "e1");
    let e2 = dir(&mdt, &root(), d, "e2");
    file(&mdt, &root(), e2, "inside");
    let e3 = dir(&mdt, &root(), d, "e3");

    // File over file: the old target's objects go to the destroy log.
    let l2 = mdt.layout(f2).unwrap();
    mdt.rename(&root(), d, "f1", d, "f2").unwrap();
    assert_eq!(mdt.lookup(&root(), d, "f2").unwrap().fid, f1);
    assert_eq!(errno(mdt.getattr(f2)), Errno::ENOENT);
    let gone: Vec<_> = mdt.destroy_log_pending(10).unwrap().into_iter().map(|(_, o)| o).collect();
    assert_eq!(gone, l2.objects().copied().collect::<Vec<_>>());

    // Type mismatches and non-empty targets.
    assert_eq!(errno(mdt.rename(&root(), d, "f2", d, "e1")), Errno::EISDIR);
    assert_eq!(errno(mdt.rename(&root(), d, "e1", d, "f2")), Errno::ENOTDIR);
    assert_eq!(errno(mdt.rename(&root(), d, "e1", d, "e2")), Errno::ENOTEMPTY);
    // Dir over empty dir.
    let nlink = mdt.getattr(d).unwrap().nlink;
    mdt.rename(&root(), d, "e1", d, "e3").unwrap();
    assert_eq!(mdt.lookup(&root(), d, "e3").unwrap().fid, e1);
    assert_eq!(errno(mdt.getattr(e3)), Errno::ENOENT);
    assert_eq!(mdt.getattr(d).unwrap().nlink, nlink - 1);
    // Dir over empty dir in another directory.
    let other = dir(&mdt, &root(), Fid::ROOT, "other");
    dir(&mdt, &root(), other, "t");
    mdt.rename(&root(), d, "e3", other, "t").unwrap();
    assert_eq!(mdt.getattr(other).unwrap().nlink, 3);
    assert_eq!(mdt.getattr(d).unwrap().nlink, nlink - 2);
    assert_eq!(mdt.lookup(&root(), e1, "..").unwrap().fid, other);

    // Two names of one file: nothing happens.
    mdt.link(&root(), f1, d, "alias").unwrap();
    mdt.rename(&root(), d, "alias", d, "f2").unwrap();
    assert_eq!(mdt.lookup(&root(), d, "alias").unwrap().fid, f1);
    assert_eq!(mdt.getattr(f1).unwrap().nlink, 2);
    // Onto itself.
    mdt.rename(&root(), d, "f2", d, "f2").unwrap();
    // A hard-linked target loses one link, its objects stay.
    let g = file(&mdt, &root(), d, "g");
    mdt.rename(&root(), d, "g", d, "alias").unwrap();
    assert_eq!(mdt.getattr(f1).unwrap().nlink, 1);
    assert_eq!(mdt.lookup(&root(), d, "alias").unwrap().fid, g);
    assert!(mdt.layout(f1).is_ok());
    assert_consistent(&mdt);
}

#[test]
fn rename_into_own_subtree_is_einval() {
    let (_d, mdt) = mdt();
    let a = dir(&mdt, &root(), Fid::ROOT, "a");
    let b = dir(&mdt, &root(), a, "b");
    let c = dir(&mdt, &root(), b, "c");
    assert_eq!(errno(mdt.rename(&root(), Fid::ROOT, "a", c, "a")), Errno::EINVAL);
    assert_eq!(errno(mdt.rename(&root(), Fid::ROOT, "a", a, "x")), Errno::EINVAL);
    assert_eq!(errno(mdt.rename(&root(), a, "b", b, "x")), Errno::EINVAL);
    // Over an ancestor: that ancestor is not empty.
    assert_eq!(errno(mdt.rename(&root(), b, "c", Fid::ROOT, "a")), Errno::ENOTEMPTY);
    // Moving up is fine.
    mdt.rename(&root(), b, "c", Fid::ROOT, "c").unwrap();
    assert_eq!(mdt.lookup(&root(), c, "..").unwrap().fid, Fid::ROOT);
    assert_consistent(&mdt);
}

#[test]
fn readdir_pages_and_cookies() {
    let (_d, mdt) = mdt();
    let d = dir(&mdt, &root(), Fid::ROOT, "d");
    for i in 0..10 {
        file(&mdt, &root(), d, &format!("f{i}"));
    }
    let all = names(&mdt, d, 3);
    assert_eq!(all, (0..10).map(|i| format!("f{i}")).collect::<Vec<_>>());
    let page = mdt.readdir(&root(), d, 0, 100).unwrap();
    assert!(page.eof);
    assert!(page.entries.iter().all(|e| e.kind == libc::S_IFREG));
    let f = page.entries[0].fid;
    assert_eq!(errno(mdt.readdir(&root(), f, 0, 10)), Errno::ENOTDIR);
    let empty = mdt.readdir(&root(), d, u64::MAX, 10).unwrap();
    assert!(empty.entries.is_empty() && empty.eof);
}

#[test]
fn readdir_cookies_survive_concurrent_changes() {
    let (_d, mdt) = mdt();
    let d = dir(&mdt, &root(), Fid::ROOT, "d");
    for i in 0..20 {
        file(&mdt, &root(), d, &format!("keep{i}"));
        file(&mdt, &root(), d, &format!("drop{i}"));
    }
    let mut seen = Vec::new();
    let mut cookie = 0;
    let mut round = 0;
    loop {
        let page = mdt.readdir(&root(), d, cookie, 4).unwrap();
        for e in &page.entries {
            seen.push(String::from_utf8(e.name.clone()).unwrap());
            cookie = e.cookie;
        }
        if page.eof {
            break;
        }
        // Between pages: remove some entries (before and after the cookie),
        // add new ones, and rename one.
        mdt.unlink(&root(), d, format!("drop{round}")).unwrap();
        mdt.unlink(&root(), d, format!("drop{}", 19 - round)).unwrap();
        file(&mdt, &root(), d, &format!("new{round}"));
        round += 1;
    }
    for i in 0..20 {
        let name = format!("keep{i}");
        assert_eq!(seen.iter().filter(|n| **n == name).count(), 1, "{name} in {seen:?}");
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "an entry came twice: {seen:?}");
}

#[test]
fn setattr_rules() {
    let (_d, mdt) = mdt();
    let u = user(100, 100);
    let pub_dir = dir(&mdt, &root(), Fid::ROOT, "pub");
    mdt.setattr(&root(), pub_dir, &SetAttr { mode: Some(0o777), ..Default::default() }).unwrap();
    let f = mdt.create(&u, pub_dir, "f", 0o6755, &StripeSpec::default()).unwrap().0;
    assert_eq!(f.mode, libc::S_IFREG | 0o6755);
    assert_eq!((f.uid, f.gid), (100, 100));

    // chmod: owner yes, other no; the type is kept.
    let a = mdt.setattr(&u, f.fid, &SetAttr { mode: Some(0o4700), ..Default::default() }).unwrap();
    assert_eq!(a.mode, libc::S_IFREG | 0o4700);
    assert_eq!(
        errno(mdt.setattr(&user(101, 100), f.fid, &SetAttr { mode: Some(0o777), ..Default::default() })),
        Errno::EPERM
    );
    // chown: only root; clears setuid.
    assert_eq!(errno(mdt.setattr(&u, f.fid, &SetAttr { uid: Some(5), ..Default::default() })), Errno::EPERM);
    let a = mdt.setattr(&root(), f.fid, &SetAttr { uid: Some(5), ..Default::default() }).unwrap();
    assert_eq!((a.uid, a.mode), (5, libc::S_IFREG | 0o700));
    // chgrp by the owner to a group it is in.
    let g = mdt.create(&u, pub_dir, "g", 0o2775, &StripeSpec::default()).unwrap().0;
    let member = proto::Cred { uid: 100, gid: 100, groups: vec![300] };
    let a = mdt.setattr(&member, g.fid, &SetAttr { gid: Some(300), ..Default::default() }).unwrap();
    assert_eq!(a.gid, 300);
    assert_eq!(a.mode & libc::S_ISGID, 0, "chgrp clears setgid on an executable");
    assert_eq!(
        errno(mdt.setattr(&u, g.fid, &SetAttr { gid: Some(400), ..Default::default() })),
        Errno::EPERM
    );
    // Times: owner or root.
    let t = Timestamp { sec: 1000, nsec: 5 };
    let a =
        mdt.setattr(&u, g.fid, &SetAttr { mtime: Some(t), atime: Some(t), ..Default::default() }).unwrap();
    assert_eq!((a.mtime, a.atime), (t, t));
    assert_eq!(
        errno(mdt.setattr(&user(7, 7), g.fid, &SetAttr { mtime: Some(t), ..Default::default() })),
        Errno::EPERM
    );
    // Size: needs write permission, regular files only.
    let a = mdt.setattr(&u, g.fid, &SetAttr { size: Some(12345), ..Default::default() }).unwrap();
    assert_eq!(a.size, 12345);
    assert_eq!(mdt.getattr(g.fid).unwrap().size, 12345);
    assert_eq!(
        errno(mdt.setattr(&user(7, 7), g.fid, &SetAttr { size: Some(0), ..Default::default() })),
        Errno::EACCES
    );
    assert_eq!(
        errno(mdt.setattr(&root(), pub_dir, &SetAttr { size: Some(0), ..Default::default() })),
        Errno::EISDIR
    );
    assert_eq!(
        errno(mdt.setattr(&root(), g.fid, &SetAttr { size: Some(1 << 51), ..Default::default() })),
        Errno::EFBIG
    );
    let p = mdt.mknod(&root(), pub_dir, "p", libc::S_IFIFO | 0o666, 0).unwrap();
    assert_eq!(
        errno(mdt.setattr(&root(), p.fid, &SetAttr { size: Some(0), ..Default::default() })),
        Errno::EINVAL
    );
    assert_eq!(errno(mdt.setattr(&root(), Fid::new(Fid::MDT_SEQ, 999), &SetAttr::default())), Errno::ENOENT);
    // A refused setattr changed nothing.
    assert_eq!(mdt.getattr(g.fid).unwrap().gid, 300);
}

#[test]
fn xattrs() {
    let (_d, mdt) = mdt();
    let f = file(&mdt, &root(), Fid::ROOT, "f");
    assert_eq!(errno(mdt.getxattr(&root(), f, "user.a")), Errno::ENODATA);
    mdt.setxattr(&root(), f, "user.a", b"1", XattrMode::Any).unwrap();
    assert_eq!(mdt.getxattr(&root(), f, "user.a").unwrap(), b"1");
    assert_eq!(errno(mdt.setxattr(&root(), f, "user.a", b"2", XattrMode::Create)), Errno::EEXIST);
    assert_eq!(errno(mdt.setxattr(&root(), f, "user.b", b"2", XattrMode::Replace)), Errno::ENODATA);
    mdt.setxattr(&root(), f, "user.a", b"3", XattrMode::Replace).unwrap();
    assert_eq!(mdt.getxattr(&root(), f, "user.a").unwrap(), b"3");
    mdt.setxattr(&root(), f, "trusted.t", b"", XattrMode::Create).unwrap();
    mdt.setxattr(&root(), f, "user.big", &vec![7u8; 65536], XattrMode::Any).unwrap();
    assert_eq!(mdt.getxattr(&root(), f, "user.big").unwrap().len(), 65536);
    assert_eq!(errno(mdt.setxattr(&root(), f, "user.big", &vec![7u8; 65537], XattrMode::Any)), Errno::E2BIG);
    assert_eq!(mdt.listxattr(&root(), f).unwrap(), vec!["trusted.t", "user.a", "user.big"]);
    // Unprivileged callers: no trusted.*, and user.* needs the permission bits.
    let u = user(9, 9);
    assert_eq!(mdt.listxattr(&u, f).unwrap(), vec!["user.a", "user.big"]);
    assert_eq!(errno(mdt.getxattr(&u, f, "trusted.t")), Errno::EPERM);
    assert_eq!(mdt.getxattr(&u, f, "user.a").unwrap(), b"3"); // 0644: other may read
    assert_eq!(errno(mdt.setxattr(&u, f, "user.a", b"x", XattrMode::Any)), Errno::EACCES);
    assert_eq!(errno(mdt.removexattr(&u, f, "user.a")), Errno::EACCES);
    assert_eq!(
        errno(mdt.setxattr(&root(), f, "system.posix_acl_access", b"x", XattrMode::Any)),
        Errno::EOPNOTSUPP
    );
    assert_eq!(errno(mdt.setxattr(&root(), f, "", b"x", XattrMode::Any)), Errno::ERANGE);
    // user.* lives only on files and directories.
    let l = mdt.symlink(&root(), Fid::ROOT, "l", "f").unwrap().fid;
    assert_eq!(errno(mdt.setxattr(&root(), l, "user.a", b"x", XattrMode::Any)), Errno::EPERM);
    assert_eq!(errno(mdt.getxattr(&root(), l, "user.a")), Errno::ENODATA);

    mdt.removexattr(&root(), f, "user.a").unwrap();
    assert_eq!(errno(mdt.removexattr(&root(), f, "user.a")), Errno::ENODATA);
    assert_eq!(errno(mdt.getxattr(&root(), Fid::new(Fid::MDT_SEQ, 999), "user.a")), Errno::ENOENT);
    // Destroying the file drops its xattrs.
    mdt.unlink(&root(), Fid::ROOT, "f").unwrap();
    assert_eq!(errno(mdt.listxattr(&root(), f)), Errno::ENOENT);
    assert_consistent(&mdt);
}

#[test]
fn statfs_counts_inodes() {
    let (_d, mdt) = mdt();
    let s0 = mdt.statfs().unwrap();
    assert_eq!(s0.files - s0.ffree, 1);
    assert_eq!(s0.namelen, 255);
    file(&mdt, &root(), Fid::ROOT, "a");
    dir(&mdt, &root(), Fid::ROOT, "b");
    let s = mdt.statfs().unwrap();
    assert_eq!(s.files - s.ffree, 3);
    mdt.unlink(&root(), Fid::ROOT, "a").unwrap();
    mdt.rmdir(&root(), Fid::ROOT, "b").unwrap();
    let s = mdt.statfs().unwrap();
    assert_eq!(s.files - s.ffree, 1);
}

#[test]
fn open_checks_mode_and_type() {
    let (_d, mdt) = mdt();
    let f = file(&mdt, &root(), Fid::ROOT, "f");
    let o = mdt.open_file(&user(3, 3), f, libc::O_RDONLY).unwrap();
    assert_eq!(o.layout, Some(mdt.layout(f).unwrap()));
    mdt.close_file(f).unwrap();
    assert_eq!(errno(mdt.open_file(&user(3, 3), f, libc::O_WRONLY)), Errno::EACCES);
    assert_eq!(errno(mdt.open_file(&user(3, 3), f, libc::O_RDONLY | libc::O_TRUNC)), Errno::EACCES);
    assert_eq!(errno(mdt.open_file(&root(), Fid::ROOT, libc::O_RDWR)), Errno::EISDIR);
    let d = mdt.open_file(&root(), Fid::ROOT, libc::O_RDONLY).unwrap();
    assert_eq!(d.layout, None);
    mdt.close_file(Fid::ROOT).unwrap();
    let l = mdt.symlink(&root(), Fid::ROOT, "l", "f").unwrap().fid;
    assert_eq!(errno(mdt.open_file(&root(), l, libc::O_RDONLY)), Errno::ELOOP);
    assert_eq!(errno(mdt.open_file(&root(), Fid::new(Fid::MDT_SEQ, 999), libc::O_RDONLY)), Errno::ENOENT);
    assert_eq!(errno(mdt.close_file(f)), Errno::EBADF);
    assert_eq!(mdt.open_count(f), 0);
}
