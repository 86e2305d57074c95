//! The records the MDT stores, and how they are encoded.
//!
//! Every record is a versioned enum encoded with postcard: a new field means
//! a new variant (the old one frozen under its own struct name) and a
//! conversion on read, so an MDT formatted today opens after fields are
//! added.

use crate::error::MdsError;
use proto::{Attr, Fid, Timestamp};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Where a file's data lives with respect to an archive (HSM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HsmState {
    /// Only on the OSTs; never archived.
    #[default]
    Resident,
    /// On the OSTs and a current copy in the archive.
    Archived,
    /// Only in the archive: the layout has no objects until a restore.
    Released,
    /// Archived once, changed since.
    Dirty,
}

/// An inode as the MDT keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    /// The size the MDS was told (setattr); the OSTs hold the truth for
    /// regular files.
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub rdev: u64,
    pub projid: u32,
    pub hsm_state: HsmState,
    pub archive_id: u32,
    /// A directory's `..`; the zero FID for other files.
    pub parent: Fid,
    /// A directory's next readdir index: entries get increasing indices,
    /// which is what makes readdir cookies stable.
    pub next_index: u64,
    /// A symlink's target.
    pub symlink: Vec<u8>,
}

impl Inode {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    pub fn is_reg(&self) -> bool {
        self.kind() == libc::S_IFREG
    }

    pub fn attr(&self, fid: Fid) -> Attr {
        let size = match self.kind() {
            libc::S_IFDIR => DIR_SIZE,
            libc::S_IFLNK => self.symlink.len() as u64,
            _ => self.size,
        };
        Attr {
            fid,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            nlink: self.nlink,
            size,
            blocks: 0,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            rdev: self.rdev,
            projid: self.projid,
        }
    }
}

/// The size a directory reports, as a small ext4 directory does.
pub const DIR_SIZE: u64 = 4096;

#[derive(Serialize, Deserialize)]
enum InodeRecord {
    V1(Inode),
}

/// A directory entry, keyed by (parent, name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dirent {
    pub fid: Fid,
    /// The child's `S_IFMT` bits, so readdir needs no inode read.
    pub kind: u32,
    /// The entry's readdir index in its directory.
    pub index: u64,
}

#[derive(Serialize, Deserialize)]
enum DirentRecord {
    V1(Dirent),
}

/// A directory entry as readdir walks it, keyed by (parent, index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub name: Vec<u8>,
    pub fid: Fid,
    pub kind: u32,
}

#[derive(Serialize, Deserialize)]
enum IndexRecord {
    V1(IndexEntry),
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // postcard only fails on a full fixed buffer or an unserializable type;
    // neither applies to a Vec and these derive-only records.
    postcard::to_allocvec(v).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, MdsError> {
    postcard::from_bytes(bytes).map_err(|e| MdsError::Corrupt(format!("{what} record: {e}")))
}

pub fn encode_inode(i: &Inode) -> Vec<u8> {
    encode(&InodeRecord::V1(i.clone()))
}

pub fn decode_inode(bytes: &[u8]) -> Result<Inode, MdsError> {
    match decode("inode", bytes)? {
        InodeRecord::V1(i) => Ok(i),
    }
}

pub fn encode_dirent(d: &Dirent) -> Vec<u8> {
    encode(&DirentRecord::V1(*d))
}

pub fn decode_dirent(bytes: &[u8]) -> Result<Dirent, MdsError> {
    match decode("dirent", bytes)? {
        DirentRecord::V1(d) => Ok(d),
    }
}

pub fn encode_index(e: &IndexEntry) -> Vec<u8> {
    encode(&IndexRecord::V1(e.clone()))
}

pub fn decode_index(bytes: &[u8]) -> Result<IndexEntry, MdsError> {
    match decode("readdir index", bytes)? {
        IndexRecord::V1(e) => Ok(e),
    }
}

/// Layouts, stripe specs and destroy-log objects are proto types that carry
/// their own evolution (layout components); they are stored as they are.
pub fn encode_plain<T: Serialize>(v: &T) -> Vec<u8> {
    encode(v)
}

pub fn decode_plain<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, MdsError> {
    decode(what, bytes)
}

/// A FID as a table key: ordered by (seq, oid, ver).
pub fn fid_key(f: Fid) -> u128 {
    ((f.seq as u128) << 64) | ((f.oid as u128) << 32) | f.ver as u128
}

pub fn key_fid(k: u128) -> Fid {
    Fid { seq: (k >> 64) as u64, oid: (k >> 32) as u32, ver: k as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fid_keys_round_trip_and_keep_order(a in any::<(u64, u32, u32)>(), b in any::<(u64, u32, u32)>()) {
            let fa = Fid { seq: a.0, oid: a.1, ver: a.2 };
            let fb = Fid { seq: b.0, oid: b.1, ver: b.2 };
            prop_assert_eq!(key_fid(fid_key(fa)), fa);
            prop_assert_eq!(fa.cmp(&fb), fid_key(fa).cmp(&fid_key(fb)));
        }
    }

    #[test]
    fn inode_records_round_trip_and_reject_garbage() {
        let i = Inode {
            mode: libc::S_IFREG | 0o644,
            uid: 1,
            gid: 2,
            nlink: 1,
            size: 7,
            atime: Timestamp { sec: 1, nsec: 2 },
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            rdev: 0,
            projid: 9,
            hsm_state: HsmState::Dirty,
            archive_id: 3,
            parent: Fid::default(),
            next_index: 0,
            symlink: Vec::new(),
        };
        assert_eq!(decode_inode(&encode_inode(&i)).unwrap(), i);
        // An unknown record version is an error, not a panic.
        assert!(matches!(decode_inode(&[0x7f, 1, 2]), Err(MdsError::Corrupt(_))));
        assert!(decode_dirent(&[]).is_err());
    }
}
