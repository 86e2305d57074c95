//! The redb tables of an MDT and typed access to them, shared by read
//! transactions and the committer's write transaction.

use crate::error::MdsError;
use crate::records::{self, Dirent, IndexEntry, Inode, fid_key};
use proto::{Fid, Layout, StripeSpec};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

pub const INODES: TableDefinition<u128, &[u8]> = TableDefinition::new("inodes");
/// (parent, name) -> Dirent.
pub const DIRENTS: TableDefinition<(u128, &[u8]), &[u8]> = TableDefinition::new("dirents");
/// (parent, readdir index) -> IndexEntry.
pub const DIR_INDEX: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("dir_index");
pub const LAYOUTS: TableDefinition<u128, &[u8]> = TableDefinition::new("layouts");
pub const XATTRS: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("xattrs");
/// A directory's default striping for new files.
pub const DIR_STRIPES: TableDefinition<u128, &[u8]> = TableDefinition::new("dir_stripes");
/// Unlinked inodes still open somewhere.
pub const ORPHANS: TableDefinition<u128, ()> = TableDefinition::new("orphans");
/// id -> StripeObject still to destroy on its OST.
pub const DESTROY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("destroy_log");
/// (OST index, seq) -> the highest object id a layout ever took.
pub const OST_USED: TableDefinition<(u32, u64), u32> = TableDefinition::new("ost_used");
/// (child, parent, name) for every directory entry: the names of an inode,
/// as Lustre's linkEA, so a FID finds its paths without a namespace walk.
pub const LINKS: TableDefinition<(u128, u128, &[u8]), ()> = TableDefinition::new("links");
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub const META_FORMAT: &str = "format";
pub const META_FSNAME: &str = "fsname";
pub const META_NEXT_OID: &str = "next_oid";
pub const META_NEXT_DESTROY: &str = "next_destroy_id";
pub const META_INODES: &str = "inodes";
pub const META_FS_STRIPE: &str = "fs_stripe";

/// The on-disk format this code writes and reads. Version 1 had no
/// `links` table; it is built when such an MDT is opened (`migrate`).
pub const FORMAT_VERSION: u64 = 2;

pub fn u64_bytes(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

pub fn bytes_u64(b: &[u8]) -> Result<u64, MdsError> {
    let a: [u8; 8] = b.try_into().map_err(|_| MdsError::Corrupt("counter is not 8 bytes".into()))?;
    Ok(u64::from_le_bytes(a))
}

/// Range bounds covering every key of one FID in an (fid, x) table.
pub fn fid_span(f: Fid) -> (u128, u128) {
    let k = fid_key(f);
    (k, k.wrapping_add(1))
}

/// One name of an inode: the directory holding it, and the name.
pub type Link = (Fid, Vec<u8>);

/// Reads shared by both kinds of transaction.
pub trait View {
    fn inode(&self, fid: Fid) -> Result<Option<Inode>, MdsError>;
    fn dirent(&self, parent: Fid, name: &[u8]) -> Result<Option<Dirent>, MdsError>;
    fn dir_is_empty(&self, dir: Fid) -> Result<bool, MdsError>;
    fn layout(&self, fid: Fid) -> Result<Option<Layout>, MdsError>;
    fn xattr(&self, fid: Fid, name: &str) -> Result<Option<Vec<u8>>, MdsError>;
    fn dir_stripe(&self, dir: Fid) -> Result<Option<StripeSpec>, MdsError>;
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, MdsError>;

    fn meta_u64(&self, key: &str) -> Result<u64, MdsError> {
        match self.meta(key)? {
            Some(b) => bytes_u64(&b),
            None => Err(MdsError::Corrupt(format!("meta `{key}` is missing"))),
        }
    }

    fn fs_stripe(&self) -> Result<StripeSpec, MdsError> {
        match self.meta(META_FS_STRIPE)? {
            Some(b) => records::decode_plain("fs stripe", &b),
            None => Ok(StripeSpec::fs_default()),
        }
    }

    /// The inode, or ENOENT.
    fn existing(&self, fid: Fid) -> Result<Inode, MdsError> {
        self.inode(fid)?.ok_or(MdsError::Posix(fabric::Errno::ENOENT))
    }

    /// An inode a directory entry names: missing is corruption, not ENOENT.
    fn target_of(&self, d: &Dirent) -> Result<Inode, MdsError> {
        self.inode(d.fid)?.ok_or_else(|| MdsError::Corrupt(format!("entry names missing inode {}", d.fid)))
    }
}

fn get_inode(t: &impl ReadableTable<u128, &'static [u8]>, fid: Fid) -> Result<Option<Inode>, MdsError> {
    t.get(fid_key(fid))?.map(|g| records::decode_inode(g.value())).transpose()
}

fn get_dirent(
    t: &impl ReadableTable<(u128, &'static [u8]), &'static [u8]>,
    parent: Fid,
    name: &[u8],
) -> Result<Option<Dirent>, MdsError> {
    t.get((fid_key(parent), name))?.map(|g| records::decode_dirent(g.value())).transpose()
}

fn dir_empty(t: &impl ReadableTable<(u128, u64), &'static [u8]>, dir: Fid) -> Result<bool, MdsError> {
    let k = fid_key(dir);
    Ok(t.range((k, 0)..=(k, u64::MAX))?.next().is_none())
}

fn get_layout(t: &impl ReadableTable<u128, &'static [u8]>, fid: Fid) -> Result<Option<Layout>, MdsError> {
    t.get(fid_key(fid))?.map(|g| records::decode_plain("layout", g.value())).transpose()
}

fn get_xattr(
    t: &impl ReadableTable<(u128, &'static str), &'static [u8]>,
    fid: Fid,
    name: &str,
) -> Result<Option<Vec<u8>>, MdsError> {
    Ok(t.get((fid_key(fid), name))?.map(|g| g.value().to_vec()))
}

fn get_dir_stripe(
    t: &impl ReadableTable<u128, &'static [u8]>,
    dir: Fid,
) -> Result<Option<StripeSpec>, MdsError> {
    t.get(fid_key(dir))?.map(|g| records::decode_plain("dir stripe", g.value())).transpose()
}

fn get_meta(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, MdsError> {
    Ok(t.get(key)?.map(|g| g.value().to_vec()))
}

/// The tables of a read transaction.
pub struct ReadTables {
    pub inodes: redb::ReadOnlyTable<u128, &'static [u8]>,
    pub dirents: redb::ReadOnlyTable<(u128, &'static [u8]), &'static [u8]>,
    pub dir_index: redb::ReadOnlyTable<(u128, u64), &'static [u8]>,
    pub layouts: redb::ReadOnlyTable<u128, &'static [u8]>,
    pub xattrs: redb::ReadOnlyTable<(u128, &'static str), &'static [u8]>,
    pub dir_stripes: redb::ReadOnlyTable<u128, &'static [u8]>,
    pub orphans: redb::ReadOnlyTable<u128, ()>,
    pub destroy_log: redb::ReadOnlyTable<u64, &'static [u8]>,
    pub ost_used: redb::ReadOnlyTable<(u32, u64), u32>,
    pub links: redb::ReadOnlyTable<(u128, u128, &'static [u8]), ()>,
    pub meta: redb::ReadOnlyTable<&'static str, &'static [u8]>,
}

impl ReadTables {
    pub fn open(txn: &ReadTransaction) -> Result<ReadTables, MdsError> {
        Ok(ReadTables {
            inodes: txn.open_table(INODES)?,
            dirents: txn.open_table(DIRENTS)?,
            dir_index: txn.open_table(DIR_INDEX)?,
            layouts: txn.open_table(LAYOUTS)?,
            xattrs: txn.open_table(XATTRS)?,
            dir_stripes: txn.open_table(DIR_STRIPES)?,
            orphans: txn.open_table(ORPHANS)?,
            destroy_log: txn.open_table(DESTROY_LOG)?,
            ost_used: txn.open_table(OST_USED)?,
            links: txn.open_table(LINKS)?,
            meta: txn.open_table(META)?,
        })
    }

    /// The names of `fid` as (parent, name), in key order, at most `limit`
    /// after skipping `skip`; and how many there are in all.
    pub fn links_of(&self, fid: Fid, skip: usize, limit: usize) -> Result<(Vec<Link>, usize), MdsError> {
        let (lo, hi) = fid_span(fid);
        let mut out = Vec::new();
        let mut total = 0;
        for item in self.links.range((lo, 0, &[][..])..(hi, 0, &[][..]))? {
            let (k, _) = item?;
            if total >= skip && out.len() < limit {
                let (_, parent, name) = k.value();
                out.push((records::key_fid(parent), name.to_vec()));
            }
            total += 1;
        }
        Ok((out, total))
    }

    /// Entries of `dir` with readdir index above `after`, in index order.
    pub fn entries_after(
        &self,
        dir: Fid,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, IndexEntry)>, MdsError> {
        let k = fid_key(dir);
        let mut out = Vec::new();
        if after == u64::MAX {
            return Ok(out);
        }
        for item in self.dir_index.range((k, after + 1)..=(k, u64::MAX))?.take(limit) {
            let (key, val) = item?;
            out.push((key.value().1, records::decode_index(val.value())?));
        }
        Ok(out)
    }

    /// Whether `fid` has any extended attribute.
    pub fn has_xattrs(&self, fid: Fid) -> Result<bool, MdsError> {
        let (lo, hi) = fid_span(fid);
        Ok(self.xattrs.range((lo, "")..(hi, ""))?.next().transpose()?.is_some())
    }

    /// Names of `fid`'s extended attributes.
    pub fn xattr_names(&self, fid: Fid) -> Result<Vec<String>, MdsError> {
        let (lo, hi) = fid_span(fid);
        let mut out = Vec::new();
        for item in self.xattrs.range((lo, "")..(hi, ""))? {
            let (key, _) = item?;
            out.push(key.value().1.to_string());
        }
        Ok(out)
    }
}

impl View for ReadTables {
    fn inode(&self, fid: Fid) -> Result<Option<Inode>, MdsError> {
        get_inode(&self.inodes, fid)
    }
    fn dirent(&self, parent: Fid, name: &[u8]) -> Result<Option<Dirent>, MdsError> {
        get_dirent(&self.dirents, parent, name)
    }
    fn dir_is_empty(&self, dir: Fid) -> Result<bool, MdsError> {
        dir_empty(&self.dir_index, dir)
    }
    fn layout(&self, fid: Fid) -> Result<Option<Layout>, MdsError> {
        get_layout(&self.layouts, fid)
    }
    fn xattr(&self, fid: Fid, name: &str) -> Result<Option<Vec<u8>>, MdsError> {
        get_xattr(&self.xattrs, fid, name)
    }
    fn dir_stripe(&self, dir: Fid) -> Result<Option<StripeSpec>, MdsError> {
        get_dir_stripe(&self.dir_stripes, dir)
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, MdsError> {
        get_meta(&self.meta, key)
    }
}

/// The tables of a write transaction.
pub struct WriteTables<'t> {
    pub inodes: redb::Table<'t, u128, &'static [u8]>,
    pub dirents: redb::Table<'t, (u128, &'static [u8]), &'static [u8]>,
    pub dir_index: redb::Table<'t, (u128, u64), &'static [u8]>,
    pub layouts: redb::Table<'t, u128, &'static [u8]>,
    pub xattrs: redb::Table<'t, (u128, &'static str), &'static [u8]>,
    pub dir_stripes: redb::Table<'t, u128, &'static [u8]>,
    pub orphans: redb::Table<'t, u128, ()>,
    pub destroy_log: redb::Table<'t, u64, &'static [u8]>,
    pub ost_used: redb::Table<'t, (u32, u64), u32>,
    pub links: redb::Table<'t, (u128, u128, &'static [u8]), ()>,
    pub meta: redb::Table<'t, &'static str, &'static [u8]>,
}

impl<'t> WriteTables<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<WriteTables<'t>, MdsError> {
        Ok(WriteTables {
            inodes: txn.open_table(INODES)?,
            dirents: txn.open_table(DIRENTS)?,
            dir_index: txn.open_table(DIR_INDEX)?,
            layouts: txn.open_table(LAYOUTS)?,
            xattrs: txn.open_table(XATTRS)?,
            dir_stripes: txn.open_table(DIR_STRIPES)?,
            orphans: txn.open_table(ORPHANS)?,
            destroy_log: txn.open_table(DESTROY_LOG)?,
            ost_used: txn.open_table(OST_USED)?,
            links: txn.open_table(LINKS)?,
            meta: txn.open_table(META)?,
        })
    }
}

impl View for WriteTables<'_> {
    fn inode(&self, fid: Fid) -> Result<Option<Inode>, MdsError> {
        get_inode(&self.inodes, fid)
    }
    fn dirent(&self, parent: Fid, name: &[u8]) -> Result<Option<Dirent>, MdsError> {
        get_dirent(&self.dirents, parent, name)
    }
    fn dir_is_empty(&self, dir: Fid) -> Result<bool, MdsError> {
        dir_empty(&self.dir_index, dir)
    }
    fn layout(&self, fid: Fid) -> Result<Option<Layout>, MdsError> {
        get_layout(&self.layouts, fid)
    }
    fn xattr(&self, fid: Fid, name: &str) -> Result<Option<Vec<u8>>, MdsError> {
        get_xattr(&self.xattrs, fid, name)
    }
    fn dir_stripe(&self, dir: Fid) -> Result<Option<StripeSpec>, MdsError> {
        get_dir_stripe(&self.dir_stripes, dir)
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, MdsError> {
        get_meta(&self.meta, key)
    }
}
