//! Where an object lives inside a target directory, as Lustre lays it out:
//! `O/<seq>/d<oid % 32>/<oid>`, the sequence in hex without `0x` (as
//! Lustre's osd names FID sequences), the oid in decimal. Spreading a
//! sequence over 32 directories keeps each directory small enough for fast
//! lookups. `Fid::ver` does not name an object and is ignored.

use proto::Fid;
use std::path::{Path, PathBuf};

/// The object tree under the target directory.
pub const OBJECTS_DIR: &str = "O";
/// The record of the highest oid created in a sequence, in the sequence's directory.
pub const LAST_ID_FILE: &str = "LAST_ID";
/// Subdirectories per sequence.
pub const SUBDIRS: u32 = 32;

pub(crate) fn objects_dir(root: &Path) -> PathBuf {
    root.join(OBJECTS_DIR)
}

pub(crate) fn seq_dir(root: &Path, seq: u64) -> PathBuf {
    objects_dir(root).join(format!("{seq:x}"))
}

pub(crate) fn sub_dir(root: &Path, seq: u64, oid: u32) -> PathBuf {
    seq_dir(root, seq).join(format!("d{}", oid % SUBDIRS))
}

/// Where an object lives under a target directory (also what tests and tools inspect).
pub fn object_path(root: &Path, fid: Fid) -> PathBuf {
    sub_dir(root, fid.seq, fid.oid).join(fid.oid.to_string())
}

pub(crate) fn last_id_path(root: &Path, seq: u64) -> PathBuf {
    seq_dir(root, seq).join(LAST_ID_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lustre_layout() {
        let root = Path::new("/t");
        let fid = Fid::new(Fid::ost_seq(2), 70);
        assert_eq!(object_path(root, fid), Path::new("/t/O/100000002/d6/70"));
        assert_eq!(last_id_path(root, 0x1_0000_0002), Path::new("/t/O/100000002/LAST_ID"));
        let versioned = Fid { ver: 5, ..fid };
        assert_eq!(object_path(root, versioned), object_path(root, fid));
    }
}
