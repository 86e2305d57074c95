//! `lfs path2fid`, `lfs fid2path` and `lfs getname`.
//!
//! The MDS does not answer `Fid2Path` yet (no parent pointers are kept),
//! so `fid2path` asks it first and, when it answers EOPNOTSUPP, searches
//! the namespace from the root by readdir: O(namespace), fine for a test
//! file system, slow on a large one.

use super::error::LfsError;
use client::Client;
use fabric::Errno;
use proto::{Cred, Fid, MdsReply, MdsRequest};
use std::collections::VecDeque;

/// The FID of a path inside the file system.
pub async fn path2fid(c: &Client, cred: &Cred, path: &str) -> Result<Fid, LfsError> {
    Ok(c.resolve(cred, path).await?.0.fid)
}

/// A path of `fid` inside the file system (`/` for the root, `/a/b`
/// below it); one of them for a file with several links.
pub async fn fid2path(c: &Client, cred: &Cred, fid: Fid) -> Result<String, LfsError> {
    if fid == c.root() {
        return Ok("/".into());
    }
    match c.md_as(cred.clone(), MdsRequest::Fid2Path { fid }).await {
        Ok(MdsReply::Path { path }) => return Ok(path),
        Ok(_) => return Err(client::ClientError::UnexpectedReply { service: "MDS" }.into()),
        Err(e) if e.errno() == Errno::EOPNOTSUPP => {}
        Err(e) => return Err(e.into()),
    }
    // Breadth first, so the shortest path is found first.
    let mut dirs = VecDeque::from([(c.root(), String::new())]);
    while let Some((dir, path)) = dirs.pop_front() {
        let entries = match c.readdir_all(cred, dir).await {
            Ok(e) => e,
            // A directory we may not read cannot hide the answer from a
            // user who may not see it anyway.
            Err(e) if e.errno() == Errno::EACCES => continue,
            Err(e) => return Err(e.into()),
        };
        for e in entries.into_iter().filter(|e| e.name != "." && e.name != "..") {
            let child = format!("{path}/{}", e.name);
            if e.fid == fid {
                return Ok(child);
            }
            if e.kind == libc::S_IFDIR {
                dirs.push_back((e.fid, child));
            }
        }
    }
    Err(LfsError::Errno(Errno::ENOENT))
}

/// A stable instance name for a mount: Lustre prints the client's
/// superblock address (`lustre-ffff8800...`); glint has no such thing in
/// a fresh process, so it hashes what identifies the mount (FNV-1a of
/// the source and the mount point), which stays the same across calls.
pub fn instance_name(fsname: &str, source: &str, mount_dir: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes().chain([0]).chain(mount_dir.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{fsname}-{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_stable_and_distinct() {
        let a = instance_name("glint", "127.0.0.1@tcp:/glint", "/mnt/a");
        assert_eq!(a, instance_name("glint", "127.0.0.1@tcp:/glint", "/mnt/a"));
        assert_ne!(a, instance_name("glint", "127.0.0.1@tcp:/glint", "/mnt/b"));
        assert!(a.starts_with("glint-") && a.len() == "glint-".len() + 16, "{a}");
    }
}
