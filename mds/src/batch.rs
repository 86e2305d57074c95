//! The state of one committer batch: the write transaction's tables, and
//! the writes every operation makes through them.
//!
//! An operation reads and checks everything first and writes last. Every
//! write goes through this type and marks the operation as having changed
//! the transaction, so a failure after the first write is known to have
//! left the batch half-changed (it is then aborted and retried without
//! that operation) while a failure before it changed nothing.

use crate::alloc::ObjectPools;
use crate::error::{MdsError, refuse};
use crate::opens::OpenFiles;
use crate::records::{self, Dirent, IndexEntry, Inode, fid_key};
use crate::tables::{self, View, WriteTables};
use fabric::Errno;
use proto::{Fid, Layout, StripeObject, StripeSpec};
use redb::{ReadableTable, WriteTransaction};

pub struct Batch<'a, 't> {
    pub t: WriteTables<'t>,
    pub pools: &'a ObjectPools,
    pub opens: &'a OpenFiles,
    mutated: bool,
    /// Objects taken from the pools in this batch, returned if it aborts.
    pub allocated: Vec<StripeObject>,
    /// Inodes destroyed in this batch (see `OpenFiles::claim_for_destroy`).
    pub dying: Vec<Fid>,
}

impl<'a, 't> Batch<'a, 't> {
    pub fn new(
        txn: &'t WriteTransaction,
        pools: &'a ObjectPools,
        opens: &'a OpenFiles,
    ) -> Result<Self, MdsError> {
        Ok(Batch {
            t: WriteTables::open(txn)?,
            pools,
            opens,
            mutated: false,
            allocated: Vec::new(),
            dying: Vec::new(),
        })
    }

    /// Closes the tables (so the transaction can commit) and hands back
    /// what the batch took from memory state.
    pub fn finish(self) -> (Vec<StripeObject>, Vec<Fid>) {
        (self.allocated, self.dying)
    }

    /// Starts an operation: nothing written yet.
    pub fn begin_op(&mut self) {
        self.mutated = false;
    }

    /// Whether the current operation has written anything.
    pub fn mutated(&self) -> bool {
        self.mutated
    }

    fn write(&mut self) -> &mut WriteTables<'t> {
        self.mutated = true;
        &mut self.t
    }

    /// The FID the next new inode gets (checked, not yet taken).
    pub fn peek_fid(&self) -> Result<Fid, MdsError> {
        let next = self.t.meta_u64(tables::META_NEXT_OID)?;
        if next > u32::MAX as u64 {
            return refuse(Errno::ENOSPC);
        }
        Ok(Fid::new(Fid::MDT_SEQ, next as u32))
    }

    pub fn take_fid(&mut self, fid: Fid) -> Result<(), MdsError> {
        self.put_meta_u64(tables::META_NEXT_OID, fid.oid as u64 + 1)?;
        self.add_inode_count(1)
    }

    pub fn put_meta_u64(&mut self, key: &str, v: u64) -> Result<(), MdsError> {
        self.write().meta.insert(key, tables::u64_bytes(v).as_slice())?;
        Ok(())
    }

    pub fn put_meta(&mut self, key: &str, v: &[u8]) -> Result<(), MdsError> {
        self.write().meta.insert(key, v)?;
        Ok(())
    }

    fn add_inode_count(&mut self, delta: i64) -> Result<(), MdsError> {
        let n = self.t.meta_u64(tables::META_INODES)?;
        self.put_meta_u64(tables::META_INODES, n.saturating_add_signed(delta))
    }

    pub fn put_inode(&mut self, fid: Fid, inode: &Inode) -> Result<(), MdsError> {
        self.write().inodes.insert(fid_key(fid), records::encode_inode(inode).as_slice())?;
        Ok(())
    }

    pub fn put_layout(&mut self, fid: Fid, layout: &Layout) -> Result<(), MdsError> {
        for o in layout.objects() {
            let key = (o.ost_idx, o.fid.seq);
            let prev = self.t.ost_used.get(key)?.map(|g| g.value());
            if prev.is_none_or(|p| p < o.fid.oid) {
                self.write().ost_used.insert(key, o.fid.oid)?;
            }
        }
        self.write().layouts.insert(fid_key(fid), records::encode_plain(layout).as_slice())?;
        Ok(())
    }

    pub fn put_dir_stripe(&mut self, dir: Fid, spec: Option<&StripeSpec>) -> Result<(), MdsError> {
        match spec {
            Some(s) => self.write().dir_stripes.insert(fid_key(dir), records::encode_plain(s).as_slice())?,
            None => self.write().dir_stripes.remove(fid_key(dir))?,
        };
        Ok(())
    }

    pub fn put_xattr(&mut self, fid: Fid, name: &str, value: &[u8]) -> Result<(), MdsError> {
        self.write().xattrs.insert((fid_key(fid), name), value)?;
        Ok(())
    }

    pub fn remove_xattr(&mut self, fid: Fid, name: &str) -> Result<(), MdsError> {
        self.write().xattrs.remove((fid_key(fid), name))?;
        Ok(())
    }

    /// Takes objects for a new file from the pools (a refusal if there are
    /// none: call before the first write).
    pub fn allocate(&mut self, count: i32, offset: Option<u32>) -> Result<Vec<StripeObject>, MdsError> {
        let objs = self.pools.allocate(count, offset)?;
        self.allocated.extend_from_slice(&objs);
        Ok(objs)
    }

    /// Adds entry `name` -> `child` to `dir`, giving it the directory's next
    /// readdir index. The caller stores `dir_inode` afterwards.
    pub fn add_entry(
        &mut self,
        dir: Fid,
        dir_inode: &mut Inode,
        name: &[u8],
        child: Fid,
        kind: u32,
    ) -> Result<(), MdsError> {
        let index = dir_inode.next_index.max(1);
        dir_inode.next_index = index + 1;
        self.put_entry(dir, name, Dirent { fid: child, kind, index })
    }

    /// Writes an entry under a known index (a new one, or the one a
    /// replaced entry had, so readers mid-scan see the name once).
    pub fn put_entry(&mut self, dir: Fid, name: &[u8], d: Dirent) -> Result<(), MdsError> {
        let k = fid_key(dir);
        let idx = IndexEntry { name: name.to_vec(), fid: d.fid, kind: d.kind };
        let w = self.write();
        w.dirents.insert((k, name), records::encode_dirent(&d).as_slice())?;
        w.dir_index.insert((k, d.index), records::encode_index(&idx).as_slice())?;
        w.links.insert((fid_key(d.fid), k, name), ())?;
        Ok(())
    }

    /// Points existing entry `name` (now naming `old`) at `new` instead, in
    /// place: the rename over an existing name.
    pub fn replace_entry(
        &mut self,
        dir: Fid,
        name: &[u8],
        old: &Dirent,
        new: Dirent,
    ) -> Result<(), MdsError> {
        self.write().links.remove((fid_key(old.fid), fid_key(dir), name))?;
        self.put_entry(dir, name, new)
    }

    pub fn remove_entry(&mut self, dir: Fid, name: &[u8], d: &Dirent) -> Result<(), MdsError> {
        let k = fid_key(dir);
        let w = self.write();
        w.dirents.remove((k, name))?;
        w.dir_index.remove((k, d.index))?;
        w.links.remove((fid_key(d.fid), k, name))?;
        Ok(())
    }

    /// Drops one link of non-directory `fid`: at zero links it is destroyed,
    /// or kept as an orphan while it is open.
    pub fn drop_link(&mut self, fid: Fid, mut inode: Inode, now: proto::Timestamp) -> Result<(), MdsError> {
        inode.nlink = inode.nlink.saturating_sub(1);
        inode.ctime = now;
        if inode.nlink > 0 {
            return self.put_inode(fid, &inode);
        }
        if self.opens.claim_for_destroy(fid) {
            self.dying.push(fid);
            self.destroy(fid)
        } else {
            self.put_inode(fid, &inode)?;
            self.write().orphans.insert(fid_key(fid), ())?;
            Ok(())
        }
    }

    /// Removes an inode and everything hanging off it; its objects go to
    /// the destroy log.
    pub fn destroy(&mut self, fid: Fid) -> Result<(), MdsError> {
        let k = fid_key(fid);
        if let Some(layout) = self.t.layout(fid)? {
            let mut id = self.t.meta_u64(tables::META_NEXT_DESTROY)?;
            for o in layout.objects() {
                self.write().destroy_log.insert(id, records::encode_plain(o).as_slice())?;
                id += 1;
            }
            self.put_meta_u64(tables::META_NEXT_DESTROY, id)?;
        }
        let (lo, hi) = tables::fid_span(fid);
        let mut names = Vec::new();
        for item in self.t.xattrs.range((lo, "")..(hi, ""))? {
            names.push(item?.0.value().1.to_string());
        }
        // Its entries are gone already; a name left here would be a lie.
        let mut links = Vec::new();
        for item in self.t.links.range((lo, 0, &[][..])..(hi, 0, &[][..]))? {
            let (key, _) = item?;
            let (_, parent, name) = key.value();
            links.push((parent, name.to_vec()));
        }
        let w = self.write();
        for (parent, name) in &links {
            w.links.remove((k, *parent, name.as_slice()))?;
        }
        w.inodes.remove(k)?;
        w.layouts.remove(k)?;
        w.dir_stripes.remove(k)?;
        w.orphans.remove(k)?;
        for n in &names {
            w.xattrs.remove((k, n.as_str()))?;
        }
        self.add_inode_count(-1)
    }

    pub fn destroy_log_done(&mut self, id: u64) -> Result<(), MdsError> {
        self.write().destroy_log.remove(id)?;
        Ok(())
    }
}
