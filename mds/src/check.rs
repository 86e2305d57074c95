//! A full consistency check of an MDT (what lfsck checks for the
//! namespace): entries, link counts, `..`, readdir indices, layouts and
//! the destroy log.

use crate::error::MdsError;
use crate::mdt::Mdt;
use crate::records::{self, Inode, key_fid};
use crate::tables::{self, View};
use proto::{Fid, Layout, StripeObject};
use redb::ReadableTable;
use std::collections::{HashMap, HashSet};

impl Mdt {
    /// Scans the whole MDT and returns every inconsistency found (none on a
    /// healthy one). Reads one snapshot; costs a pass over every record.
    pub fn verify(&self) -> Result<Vec<String>, MdsError> {
        let t = self.read()?;
        let mut bad = Vec::new();
        let mut inodes: HashMap<Fid, Inode> = HashMap::new();
        for item in t.inodes.iter()? {
            let (k, v) = item?;
            inodes.insert(key_fid(k.value()), records::decode_inode(v.value())?);
        }
        let mut links: HashMap<Fid, u32> = HashMap::new();
        let mut subdirs: HashMap<Fid, u32> = HashMap::new();
        let mut entries = 0u64;
        for item in t.dirents.iter()? {
            let (k, v) = item?;
            let (pk, name) = k.value();
            let parent = key_fid(pk);
            let d = records::decode_dirent(v.value())?;
            entries += 1;
            let shown = String::from_utf8_lossy(name);
            match inodes.get(&parent) {
                Some(p) if p.is_dir() => {
                    if d.index == 0 || d.index >= p.next_index {
                        bad.push(format!("{parent}/{shown}: index {} outside 1..{}", d.index, p.next_index));
                    }
                }
                _ => bad.push(format!("{parent}/{shown}: parent is not a directory")),
            }
            match inodes.get(&d.fid) {
                None => bad.push(format!("{parent}/{shown}: names missing inode {}", d.fid)),
                Some(c) => {
                    if c.kind() != d.kind {
                        bad.push(format!("{parent}/{shown}: type {:o} but inode is {:o}", d.kind, c.kind()));
                    }
                    if c.is_dir() {
                        *subdirs.entry(parent).or_default() += 1;
                        if c.parent != parent {
                            bad.push(format!("{parent}/{shown}: directory's `..` is {}", c.parent));
                        }
                    }
                }
            }
            *links.entry(d.fid).or_default() += 1;
            if t.links.get((records::fid_key(d.fid), pk, name))?.is_none() {
                bad.push(format!("{parent}/{shown}: {} does not record this name", d.fid));
            }
            match t.dir_index.get((pk, d.index))? {
                Some(g) => {
                    let e = records::decode_index(g.value())?;
                    if e.name != name || e.fid != d.fid || e.kind != d.kind {
                        bad.push(format!("{parent}/{shown}: readdir index {} disagrees", d.index));
                    }
                }
                None => bad.push(format!("{parent}/{shown}: no readdir index {}", d.index)),
            }
        }
        let named = t.links.iter()?.count() as u64;
        if named != entries {
            bad.push(format!("{named} name records for {entries} entries"));
        }
        let indexed = t.dir_index.iter()?.count() as u64;
        if indexed != entries {
            bad.push(format!("{indexed} readdir index records for {entries} entries"));
        }
        let orphans: HashSet<Fid> =
            t.orphans.iter()?.map(|r| r.map(|(k, _)| key_fid(k.value()))).collect::<Result<_, _>>()?;
        for (fid, i) in &inodes {
            let n = links.get(fid).copied().unwrap_or(0);
            if i.is_dir() {
                let want = 2 + subdirs.get(fid).copied().unwrap_or(0);
                if i.nlink != want {
                    bad.push(format!("directory {fid}: nlink {} but {want} expected", i.nlink));
                }
                if *fid != Fid::ROOT && n != 1 {
                    bad.push(format!("directory {fid}: {n} entries name it"));
                }
            } else {
                if i.nlink != n {
                    bad.push(format!("{fid}: nlink {} but {n} entries", i.nlink));
                }
                if n == 0 && !orphans.contains(fid) {
                    bad.push(format!("{fid}: no entry names it and it is no orphan"));
                }
            }
        }
        for fid in &orphans {
            if inodes.get(fid).is_none_or(|i| i.nlink != 0) {
                bad.push(format!("orphan {fid} is missing or still linked"));
            }
        }
        let mut in_layouts: HashSet<(u32, Fid)> = HashSet::new();
        let mut layouts = 0u64;
        for item in t.layouts.iter()? {
            let (k, v) = item?;
            let fid = key_fid(k.value());
            let l: Layout = records::decode_plain("layout", v.value())?;
            layouts += 1;
            if inodes.get(&fid).is_none_or(|i| !i.is_reg()) {
                bad.push(format!("layout of {fid}, which is no regular file"));
            }
            for o in l.objects() {
                if !in_layouts.insert((o.ost_idx, o.fid)) {
                    bad.push(format!("object {} on OST {} is in two layouts", o.fid, o.ost_idx));
                }
            }
        }
        let regular = inodes.values().filter(|i| i.is_reg()).count() as u64;
        if layouts != regular {
            bad.push(format!("{layouts} layouts for {regular} regular files"));
        }
        for item in t.destroy_log.iter()? {
            let (_, v) = item?;
            let o: StripeObject = records::decode_plain("destroy log", v.value())?;
            if in_layouts.contains(&(o.ost_idx, o.fid)) {
                bad.push(format!("object {} on OST {} is both in a layout and to destroy", o.fid, o.ost_idx));
            }
        }
        let counted = t.meta_u64(tables::META_INODES)?;
        if counted != inodes.len() as u64 {
            bad.push(format!("inode counter {counted} but {} inodes", inodes.len()));
        }
        Ok(bad)
    }
}
