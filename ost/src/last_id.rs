//! LAST_ID: the highest oid created in one sequence, kept durably so that a
//! restarted OST can tell the MDS where its precreated objects end (as
//! Lustre's `O/<seq>/LAST_ID`).
//!
//! The file holds two checksummed slots, written alternately with a rising
//! generation: an update overwrites only the older slot, so a write torn by
//! a crash leaves the newer one intact, and one fdatasync makes an update
//! durable.

use crate::error::{OstError, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: u32 = u32::from_le_bytes(*b"GLID");
const RECORD_LEN: usize = 24;
/// Slots sit in different disk sectors, so a torn sector spoils at most one.
const SLOT_OFFSETS: [u64; 2] = [0, 512];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    generation: u64,
    last_id: u64,
}

impl Record {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.last_id.to_le_bytes());
        let crc = crc32c::crc32c(&b[8..24]);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Record> {
        let b: &[u8; RECORD_LEN] = b.get(..RECORD_LEN)?.try_into().ok()?;
        let word = |r: std::ops::Range<usize>| u32::from_le_bytes(b[r].try_into().unwrap_or_default());
        let long = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().unwrap_or_default());
        if word(0..4) != MAGIC || word(4..8) != crc32c::crc32c(&b[8..24]) {
            return None;
        }
        Some(Record { generation: long(8..16), last_id: long(16..24) })
    }
}

/// The open LAST_ID file of one sequence.
#[derive(Debug)]
pub(crate) struct LastId {
    path: PathBuf,
    file: File,
    current: Record,
}

impl LastId {
    /// Reads the recorded value without creating anything: 0 when the
    /// sequence has no LAST_ID yet.
    pub(crate) fn peek(path: &Path) -> Result<u32> {
        match File::open(path) {
            Ok(f) => Ok(narrow(path, Self::load(path, &f)?.last_id)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(OstError::io(format!("open {}", path.display()), e)),
        }
    }

    /// Opens (creating if missing) the LAST_ID file at `path`. A new file
    /// is made durable before this returns.
    pub(crate) fn open(path: &Path) -> Result<LastId> {
        let io = |what: &str, e| OstError::io(format!("{what} {}", path.display()), e);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("open", e))?;
        let current = Self::load(path, &file)?;
        narrow(path, current.last_id)?;
        let mut me = LastId { path: path.to_path_buf(), file, current };
        if !existed {
            me.store(Record { generation: 1, last_id: 0 })?;
            if let Some(dir) = path.parent() {
                crate::durable::sync_dir(dir)?;
            }
        }
        Ok(me)
    }

    pub(crate) fn get(&self) -> u32 {
        // `open` and `advance` only ever hold values that fit an oid.
        self.current.last_id as u32
    }

    /// Raises the record to `oid` (never lowers it) and makes it durable.
    pub(crate) fn advance(&mut self, oid: u32) -> Result<()> {
        if u64::from(oid) <= self.current.last_id {
            return Ok(());
        }
        self.store(Record { generation: self.current.generation + 1, last_id: u64::from(oid) })
    }

    fn store(&mut self, rec: Record) -> Result<()> {
        let slot = SLOT_OFFSETS[(rec.generation % 2) as usize];
        let io = |what: &str, e| OstError::io(format!("{what} {}", self.path.display()), e);
        self.file.write_all_at(&rec.encode(), slot).map_err(|e| io("write", e))?;
        self.file.sync_data().map_err(|e| io("fdatasync", e))?;
        self.current = rec;
        Ok(())
    }

    /// The newest valid slot. A file with no valid slot that is empty or
    /// all zeros was created but never written (a crash between create and
    /// first write): that is "nothing recorded", not damage.
    fn load(path: &Path, file: &File) -> Result<Record> {
        let mut buf = vec![0u8; SLOT_OFFSETS[1] as usize + RECORD_LEN];
        let mut len = 0;
        while len < buf.len() {
            match file.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(OstError::io(format!("read {}", path.display()), e)),
            }
        }
        let buf = &buf[..len];
        let newest = SLOT_OFFSETS
            .iter()
            .filter_map(|&off| buf.get(off as usize..).and_then(Record::decode))
            .max_by_key(|r| r.generation);
        match newest {
            Some(r) => Ok(r),
            None if buf.iter().all(|&b| b == 0) => Ok(Record { generation: 0, last_id: 0 }),
            None => Err(OstError::Damaged {
                path: path.to_path_buf(),
                reason: "no valid LAST_ID record in either slot".into(),
            }),
        }
    }
}

fn narrow(path: &Path, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| OstError::Damaged {
        path: path.to_path_buf(),
        reason: format!("LAST_ID {v} is larger than any object id"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LAST_ID");
        assert_eq!(LastId::peek(&path).unwrap(), 0);
        let mut l = LastId::open(&path).unwrap();
        l.advance(10).unwrap();
        l.advance(7).unwrap();
        l.advance(42).unwrap();
        drop(l);
        assert_eq!(LastId::peek(&path).unwrap(), 42);
        assert_eq!(LastId::open(&path).unwrap().get(), 42);
    }

    #[test]
    fn a_torn_newer_slot_falls_back_to_the_older() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LAST_ID");
        let mut l = LastId::open(&path).unwrap();
        l.advance(5).unwrap(); // generation 2, slot 0
        l.advance(9).unwrap(); // generation 3, slot 1
        drop(l);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff; 4], SLOT_OFFSETS[1] + 12).unwrap();
        assert_eq!(LastId::peek(&path).unwrap(), 5);
    }

    #[test]
    fn garbage_is_reported_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LAST_ID");
        std::fs::write(&path, b"not a last id record at all").unwrap();
        assert!(matches!(LastId::peek(&path), Err(OstError::Damaged { .. })));
        std::fs::write(&path, b"").unwrap();
        assert_eq!(LastId::peek(&path).unwrap(), 0);
    }
}
