//! File identifiers: `[seq:oid:ver]`, never reused.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A file or object identifier. Sequences are handed out in ranges, so a
/// server can allocate oids in its sequence without asking anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Fid {
    pub seq: u64,
    pub oid: u32,
    pub ver: u32,
}

impl Fid {
    /// The sequence of the MDT's own files; the root is its first oid.
    pub const MDT_SEQ: u64 = 0x2_0000_0400;
    /// OST `i` allocates objects in sequence `OST_SEQ_BASE + i`.
    pub const OST_SEQ_BASE: u64 = 0x1_0000_0000;
    pub const ROOT: Fid = Fid { seq: Fid::MDT_SEQ, oid: 1, ver: 0 };

    pub const fn new(seq: u64, oid: u32) -> Fid {
        Fid { seq, oid, ver: 0 }
    }

    /// The object sequence of OST `index`.
    pub const fn ost_seq(index: u32) -> u64 {
        Fid::OST_SEQ_BASE + index as u64
    }

    /// Lustre's 64-bit inode number folding of a FID, used as `st_ino`.
    pub fn ino(&self) -> u64 {
        if *self == Fid::ROOT {
            return 1;
        }
        let ino = (self.seq << 24).wrapping_add((self.seq >> 24) & 0xff_ffff).wrapping_add(self.oid as u64);
        if ino == 0 { 1 } else { ino }
    }
}

impl fmt::Display for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}:{:#x}:{:#x}]", self.seq, self.oid, self.ver)
    }
}

/// A FID that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad FID `{0}`: expected [0xSEQ:0xOID:0xVER]")]
pub struct FidParseError(pub String);

impl FromStr for Fid {
    type Err = FidParseError;

    fn from_str(s: &str) -> Result<Fid, FidParseError> {
        let bad = || FidParseError(s.to_string());
        let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
        let mut parts = inner.split(':');
        let mut num = |max: u64| -> Result<u64, FidParseError> {
            let p = parts.next().ok_or_else(bad)?;
            let p = p.trim();
            let v = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => p.parse::<u64>(),
            }
            .map_err(|_| bad())?;
            if v > max { Err(bad()) } else { Ok(v) }
        };
        let seq = num(u64::MAX)?;
        let oid = num(u32::MAX as u64)? as u32;
        let ver = num(u32::MAX as u64)? as u32;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Fid { seq, oid, ver })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prints_like_lfs_path2fid() {
        assert_eq!(Fid::new(0x200000401, 0x1).to_string(), "[0x200000401:0x1:0x0]");
        assert_eq!("[0x200000401:0x1:0x0]".parse::<Fid>().unwrap(), Fid::new(0x200000401, 1));
        assert!("[0x1:0x2]".parse::<Fid>().is_err());
        assert!("[0x1:0x100000000:0]".parse::<Fid>().is_err());
    }

    proptest! {
        #[test]
        fn round_trips(seq in any::<u64>(), oid in any::<u32>(), ver in any::<u32>()) {
            let f = Fid { seq, oid, ver };
            prop_assert_eq!(f.to_string().parse::<Fid>().unwrap(), f);
        }
    }
}
