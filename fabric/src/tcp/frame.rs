//! The tcp LND's frame header: every byte on a glint socket starts with one.
//!
//! ```text
//!  0 magic u32 | 4 version u8 | 5 type u8 | 6 credits u16 | 8 len u32 | 12 crc u32
//! 16 cookie u64 | 24 key u64 | 32 addr u64 | 40 blen u32 | 44 errno i32
//! ```
//! `len` bytes of payload follow. The crc (crc32c) covers the header with
//! the crc field zeroed and, for immediate messages, the payload; bulk
//! payloads carry their own end-to-end checksum one layer up.

use crate::lnd::{MAX_BULK, MAX_IMMEDIATE};

pub const MAGIC: u32 = 0x474c_4e54; // "GLNT"
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Connection setup: who I am, which connection this is.
    Hello = 1,
    /// An immediate message.
    Msg = 2,
    /// Nothing but returned credits.
    Noop = 3,
    /// "Send me `blen` bytes at `addr` under `key`", answered by GetData.
    GetReq = 4,
    /// The bytes a GetReq asked for.
    GetData = 5,
    /// Bytes for the receiver's exposed range at `addr` under `key`.
    PutData = 6,
    /// A PutData landed.
    PutDone = 7,
    /// A GetReq or PutData was refused; `errno` says why.
    BulkErr = 8,
}

impl FrameType {
    fn from_u8(v: u8) -> Option<FrameType> {
        Some(match v {
            1 => FrameType::Hello,
            2 => FrameType::Msg,
            3 => FrameType::Noop,
            4 => FrameType::GetReq,
            5 => FrameType::GetData,
            6 => FrameType::PutData,
            7 => FrameType::PutDone,
            8 => FrameType::BulkErr,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ftype: FrameType,
    pub credits: u16,
    pub len: u32,
    pub crc: u32,
    pub cookie: u64,
    pub key: u64,
    pub addr: u64,
    pub blen: u32,
    pub errno: i32,
}

/// Why a frame was refused. Any of these closes the connection: a peer
/// that sends one is confused or hostile, and the stream cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    #[error("protocol version {0}, this node speaks {VERSION}")]
    BadVersion(u8),
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("{ftype:?} frame of {len} bytes is larger than {max}")]
    TooLong { ftype: FrameType, len: u32, max: usize },
    #[error("checksum mismatch: header says {want:#010x}, computed {got:#010x}")]
    Checksum { want: u32, got: u32 },
}

impl Header {
    pub fn new(ftype: FrameType) -> Header {
        Header { ftype, credits: 0, len: 0, crc: 0, cookie: 0, key: 0, addr: 0, blen: 0, errno: 0 }
    }

    /// Serializes with the crc field as given.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4] = VERSION;
        b[5] = self.ftype as u8;
        b[6..8].copy_from_slice(&self.credits.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..16].copy_from_slice(&self.crc.to_le_bytes());
        b[16..24].copy_from_slice(&self.cookie.to_le_bytes());
        b[24..32].copy_from_slice(&self.key.to_le_bytes());
        b[32..40].copy_from_slice(&self.addr.to_le_bytes());
        b[40..44].copy_from_slice(&self.blen.to_le_bytes());
        b[44..48].copy_from_slice(&self.errno.to_le_bytes());
        b
    }

    /// Serializes and seals with a crc over the header and `payload`
    /// (pass an empty payload for bulk frames).
    pub fn seal(&mut self, payload: &[&[u8]]) -> [u8; HEADER_LEN] {
        self.crc = 0;
        let mut crc = crc32c::crc32c(&self.encode());
        for p in payload {
            crc = crc32c::crc32c_append(crc, p);
        }
        self.crc = crc;
        self.encode()
    }

    /// Parses and checks everything that can be checked before the payload
    /// is read: magic, version, type, and a length within the type's limit.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        if b[4] != VERSION {
            return Err(FrameError::BadVersion(b[4]));
        }
        let ftype = FrameType::from_u8(b[5]).ok_or(FrameError::UnknownType(b[5]))?;
        let h = Header {
            ftype,
            credits: u16::from_le_bytes([b[6], b[7]]),
            len: u32_at(8),
            crc: u32_at(12),
            cookie: u64_at(16),
            key: u64_at(24),
            addr: u64_at(32),
            blen: u32_at(40),
            errno: u32_at(44) as i32,
        };
        let max = match ftype {
            FrameType::Hello => 1024,
            FrameType::Msg => MAX_IMMEDIATE,
            FrameType::GetData | FrameType::PutData => MAX_BULK,
            FrameType::Noop | FrameType::GetReq | FrameType::PutDone | FrameType::BulkErr => 0,
        };
        if h.len as usize > max {
            return Err(FrameError::TooLong { ftype, len: h.len, max });
        }
        if ftype == FrameType::GetReq && h.blen as usize > MAX_BULK {
            return Err(FrameError::TooLong { ftype, len: h.blen, max: MAX_BULK });
        }
        Ok(h)
    }

    /// Checks the crc against the header and the payload that was read.
    pub fn verify(&self, raw: &[u8; HEADER_LEN], payload: &[u8]) -> Result<(), FrameError> {
        let mut zeroed = *raw;
        zeroed[12..16].fill(0);
        let got = crc32c::crc32c_append(crc32c::crc32c(&zeroed), payload);
        if got != self.crc { Err(FrameError::Checksum { want: self.crc, got }) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seals_and_verifies() {
        let mut h = Header::new(FrameType::Msg);
        h.len = 5;
        h.credits = 3;
        let raw = h.seal(&[b"hel", b"lo"]);
        let back = Header::decode(&raw).unwrap();
        assert_eq!(back, h);
        back.verify(&raw, b"hello").unwrap();
        assert!(matches!(back.verify(&raw, b"hellO"), Err(FrameError::Checksum { .. })));
    }

    #[test]
    fn refuses_bad_frames() {
        let mut h = Header::new(FrameType::Msg);
        let good = h.seal(&[]);
        let mut b = good;
        b[0] ^= 1;
        assert!(matches!(Header::decode(&b), Err(FrameError::BadMagic(_))));
        let mut b = good;
        b[4] = 9;
        assert_eq!(Header::decode(&b), Err(FrameError::BadVersion(9)));
        let mut b = good;
        b[5] = 77;
        assert_eq!(Header::decode(&b), Err(FrameError::UnknownType(77)));
        let mut b = good;
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Header::decode(&b), Err(FrameError::TooLong { .. })));
        let mut n = Header::new(FrameType::Noop);
        n.len = 1;
        assert!(matches!(Header::decode(&n.encode()), Err(FrameError::TooLong { .. })));
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::array::uniform32(any::<u8>()), c in proptest::array::uniform16(any::<u8>())) {
            let mut raw = [0u8; HEADER_LEN];
            raw[..32].copy_from_slice(&b);
            raw[32..].copy_from_slice(&c);
            if let Ok(h) = Header::decode(&raw) {
                prop_assert_eq!(h.encode(), raw);
            }
        }

        #[test]
        fn round_trips(t in 1u8..=8, credits in any::<u16>(), len in 0u32..64, cookie in any::<u64>(),
                       key in any::<u64>(), addr in any::<u64>(), blen in 0u32..(1 << 20), errno in any::<i32>()) {
            let ftype = FrameType::from_u8(t).unwrap();
            let len = if matches!(ftype, FrameType::Noop | FrameType::GetReq | FrameType::PutDone | FrameType::BulkErr) { 0 } else { len };
            let mut h = Header { ftype, credits, len, crc: 0, cookie, key, addr, blen, errno };
            let raw = h.seal(&[]);
            prop_assert_eq!(Header::decode(&raw).unwrap(), h);
        }
    }
}
