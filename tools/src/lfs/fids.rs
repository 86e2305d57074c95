//! `lfs path2fid` and `lfs getname` (`lfs fid2path` is in `fid2path`).

use super::error::LfsError;
use client::Client;
use proto::{Cred, Fid};

/// The FID of a path inside the file system.
pub async fn path2fid(c: &Client, cred: &Cred, path: &str) -> Result<Fid, LfsError> {
    Ok(c.resolve(cred, path).await?.0.fid)
}

/// A stable instance name for a mount: Lustre prints the client's
/// superblock address (`lustre-ffff8800...`); glint has no such thing in
/// a fresh process, so it hashes what identifies the mount (FNV-1a of
/// the source and the mount point, as /proc/self/mountinfo shows them),
/// which stays the same across calls. The mount's lctl devices carry the
/// same instance (`glint-OST0000-osc-INSTANCE`, `llite.glint-INSTANCE`).
pub fn instance_name(fsname: &str, source: &str, mount_dir: &str) -> String {
    format!("{fsname}-{}", instance_id(source, mount_dir))
}

/// The instance part alone: 16 hex digits.
pub fn instance_id(source: &str, mount_dir: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes().chain([0]).chain(mount_dir.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
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
