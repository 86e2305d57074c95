//! The target label: which file system and which OST index a directory
//! belongs to. A server reads it before it serves, so a target mounted on
//! the wrong path or for the wrong file system is refused rather than
//! written into.

use crate::error::{OstError, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The label file's name inside the target directory.
pub const LABEL_FILE: &str = "glint-label";

/// Lustre caps a file system name at 8 characters; glint follows, so the
/// target names (`FSNAME-OST0001`) stay the same shape.
const FSNAME_MAX: usize = 8;

/// Identity of one object storage target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub fsname: String,
    pub index: u32,
    /// RFC 4122 version-4 uuid, made at format time; tells apart two
    /// targets formatted with the same name and index.
    pub uuid: String,
}

impl Label {
    /// A fresh label with a new random uuid.
    pub fn new(fsname: &str, index: u32) -> Result<Label> {
        check_fsname(fsname)?;
        Ok(Label { fsname: fsname.to_string(), index, uuid: random_uuid()? })
    }

    /// Lustre's name for the target: `FSNAME-OST000a` (index in hex).
    pub fn target_name(&self) -> String {
        format!("{}-OST{:04x}", self.fsname, self.index)
    }

    /// Reads the label of `dir`; `Ok(None)` when there is none.
    pub(crate) fn read(dir: &Path) -> Result<Option<Label>> {
        let path = dir.join(LABEL_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OstError::io(format!("read {}", path.display()), e)),
        };
        let label: Label = toml::from_str(&text)
            .map_err(|e| OstError::Damaged { path: path.clone(), reason: e.to_string() })?;
        check_fsname(&label.fsname)
            .map_err(|e| OstError::Damaged { path: path.clone(), reason: e.to_string() })?;
        Ok(Some(label))
    }

    /// Writes the label durably: a temporary file, fsynced, renamed into
    /// place, then the directory fsynced, so a crash leaves either no label
    /// or a whole one.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let text = toml::to_string(self)
            .map_err(|e| OstError::InvalidArgument(format!("label does not serialize: {e}")))?;
        let tmp = dir.join(format!("{LABEL_FILE}.tmp"));
        let path = dir.join(LABEL_FILE);
        let io = |what: &str, e| OstError::io(format!("{what} {}", tmp.display()), e);
        let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("fsync", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
        crate::durable::sync_dir(dir)
    }
}

/// Checks a file system name the way Lustre's mkfs does.
pub fn check_fsname(fsname: &str) -> Result<()> {
    let ok = !fsname.is_empty()
        && fsname.len() <= FSNAME_MAX
        && fsname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(OstError::BadFsname(fsname.to_string())) }
}

fn random_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `b`.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(OstError::io("getrandom", e));
        }
        filled += n as usize;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsname_rules() {
        assert!(check_fsname("testfs").is_ok());
        assert!(check_fsname("a_b-9").is_ok());
        assert!(check_fsname("").is_err());
        assert!(check_fsname("toolongname").is_err());
        assert!(check_fsname("a/b").is_err());
    }

    #[test]
    fn uuids_are_v4_and_differ() {
        let a = random_uuid().unwrap();
        let b = random_uuid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn target_name_is_lustre_style() {
        let l = Label { fsname: "glint".into(), index: 10, uuid: String::new() };
        assert_eq!(l.target_name(), "glint-OST000a");
    }

    #[test]
    fn round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let l = Label::new("fs1", 3).unwrap();
        l.write(dir.path()).unwrap();
        assert_eq!(Label::read(dir.path()).unwrap(), Some(l));
    }
}
