//! Helpers shared by the MDT integration tests.
#![allow(dead_code)]

use mds::{MdsError, Mdt};
use proto::{Cred, Errno, Fid, StripeSpec};

pub const OSTS: u32 = 4;

/// A fresh MDT in a temporary directory, with objects precreated on four OSTs.
pub fn mdt() -> (tempfile::TempDir, Mdt) {
    let dir = tempfile::tempdir().unwrap();
    let mdt = Mdt::format(dir.path().join("mdt.db"), "testfs").unwrap();
    fill(&mdt, 10_000);
    (dir, mdt)
}

pub fn fill(mdt: &Mdt, each: u32) {
    for i in 0..OSTS {
        mdt.pools().add_precreated(i, Fid::ost_seq(i), 1, each).unwrap();
    }
}

pub fn root() -> Cred {
    Cred::root()
}

pub fn user(uid: u32, gid: u32) -> Cred {
    Cred { uid, gid, groups: Vec::new() }
}

pub fn errno<T: std::fmt::Debug>(r: Result<T, MdsError>) -> Errno {
    r.expect_err("expected an error").errno()
}

pub fn file(mdt: &Mdt, cred: &Cred, dir: Fid, name: &str) -> Fid {
    mdt.create(cred, dir, name, 0o644, &StripeSpec::default()).unwrap().0.fid
}

pub fn dir(mdt: &Mdt, cred: &Cred, parent: Fid, name: &str) -> Fid {
    mdt.mkdir(cred, parent, name, 0o755).unwrap().fid
}

/// Every name in a directory, via readdir pages of `page`.
pub fn names(mdt: &Mdt, dir: Fid, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cookie = 0;
    loop {
        let p = mdt.readdir(&Cred::root(), dir, cookie, page).unwrap();
        for e in &p.entries {
            out.push(String::from_utf8(e.name.clone()).unwrap());
            cookie = e.cookie;
        }
        if p.eof {
            return out;
        }
    }
}

pub fn assert_consistent(mdt: &Mdt) {
    let problems = mdt.verify().unwrap();
    assert!(problems.is_empty(), "MDT inconsistent: {problems:#?}");
}
