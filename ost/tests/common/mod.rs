//! Shared by the integration tests: a fresh formatted target in a temp dir.

#![allow(dead_code)]

use ost::{ObjectStore, StoreOptions};
use proto::Fid;

pub const FS: &str = "testfs";
pub const INDEX: u32 = 3;

pub struct Target {
    pub dir: tempfile::TempDir,
    pub store: ObjectStore,
}

pub fn target() -> Target {
    target_with(StoreOptions::default())
}

pub fn target_with(opts: StoreOptions) -> Target {
    let dir = tempfile::tempdir().unwrap();
    ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    let store = ObjectStore::open_with(dir.path(), FS, INDEX, opts).unwrap();
    Target { dir, store }
}

pub fn fid(oid: u32) -> Fid {
    Fid::new(Fid::ost_seq(INDEX), oid)
}

/// Bytes that differ at every offset, so a misplaced copy shows.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}
