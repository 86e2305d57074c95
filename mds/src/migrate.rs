//! Bringing an MDT written by an older format up to this one when it is
//! opened. Format 1 kept no names per inode (the `links` table that
//! fid2path reads): they are built from the directory entries, in one
//! transaction with the format bump, so a crash part way leaves a format 1
//! MDT that is upgraded again at the next open.

use crate::error::MdsError;
use crate::records::{self, fid_key};
use crate::tables::{self, bytes_u64, u64_bytes};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::Path;

/// Checks the format of the MDT in `db` and upgrades an older one.
pub(crate) fn upgrade(db: &Database, path: &Path) -> Result<(), MdsError> {
    let unformatted = |why: String| MdsError::NotFormatted(format!("{}: {why}", path.display()));
    let version = {
        let txn = db.begin_read()?;
        let meta = txn.open_table(tables::META).map_err(|e| unformatted(e.to_string()))?;
        match meta.get(tables::META_FORMAT)? {
            Some(v) => bytes_u64(v.value())?,
            None => return Err(unformatted("no format record".into())),
        }
    };
    match version {
        tables::FORMAT_VERSION => Ok(()),
        1 => build_links(db, path),
        v => Err(unformatted(format!("format version {v} is unknown"))),
    }
}

fn build_links(db: &Database, path: &Path) -> Result<(), MdsError> {
    let txn = db.begin_write()?;
    let count = {
        let dirents = txn.open_table(tables::DIRENTS)?;
        let mut links = txn.open_table(tables::LINKS)?;
        let mut meta = txn.open_table(tables::META)?;
        let mut count = 0u64;
        for item in dirents.iter()? {
            let (k, v) = item?;
            let (parent, name) = k.value();
            let d = records::decode_dirent(v.value())?;
            links.insert((fid_key(d.fid), parent, name), ())?;
            count += 1;
        }
        meta.insert(tables::META_FORMAT, u64_bytes(tables::FORMAT_VERSION).as_slice())?;
        count
    };
    txn.commit()?;
    tracing::info!(path = %path.display(), names = count, "upgraded the MDT from format 1: names kept per inode");
    Ok(())
}
