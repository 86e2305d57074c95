//! The RPC header at the front of every request and reply message.
//!
//! ```text
//!  0 magic u32 | 4 version u16 | 6 kind u8 | 7 flags u8 | 8 portal u16 | 10 opcode u16
//! 12 status i32 | 16 xid u64 | 24 aux u64 | 32 last_committed u64
//! 40 service_us u32 | 44 body_len u32 | 48 body...
//! ```
//! `aux` is the client's lowest unreplied xid on a request (so the server
//! may forget older replies) and the transaction number on a reply.

pub const RPC_MAGIC: u32 = 0x4752_5043; // "GRPC"
/// Bumped when the meaning of any message changes; a peer with another
/// version is refused with EPROTO and a log line saying both versions.
pub const RPC_VERSION: u16 = 8;
pub const RPC_HEADER_LEN: usize = 48;

pub const FLAG_RESEND: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request = 1,
    Reply = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcHeader {
    pub version: u16,
    pub kind: Kind,
    pub flags: u8,
    pub portal: u16,
    pub opcode: u16,
    pub status: i32,
    pub xid: u64,
    pub aux: u64,
    pub last_committed: u64,
    pub service_us: u32,
    pub body_len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("message of {0} bytes is shorter than an RPC header")]
    Short(usize),
    #[error("bad RPC magic {0:#010x}")]
    BadMagic(u32),
    #[error("unknown RPC kind {0}")]
    BadKind(u8),
    #[error("body length {claimed} does not match the {actual} bytes received")]
    BodyLength { claimed: u32, actual: usize },
}

impl RpcHeader {
    pub fn request(portal: u16, opcode: u16, xid: u64) -> RpcHeader {
        RpcHeader {
            version: RPC_VERSION,
            kind: Kind::Request,
            flags: 0,
            portal,
            opcode,
            status: 0,
            xid,
            aux: 0,
            last_committed: 0,
            service_us: 0,
            body_len: 0,
        }
    }

    pub fn encode(&self) -> [u8; RPC_HEADER_LEN] {
        let mut b = [0u8; RPC_HEADER_LEN];
        b[0..4].copy_from_slice(&RPC_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6] = self.kind as u8;
        b[7] = self.flags;
        b[8..10].copy_from_slice(&self.portal.to_le_bytes());
        b[10..12].copy_from_slice(&self.opcode.to_le_bytes());
        b[12..16].copy_from_slice(&self.status.to_le_bytes());
        b[16..24].copy_from_slice(&self.xid.to_le_bytes());
        b[24..32].copy_from_slice(&self.aux.to_le_bytes());
        b[32..40].copy_from_slice(&self.last_committed.to_le_bytes());
        b[40..44].copy_from_slice(&self.service_us.to_le_bytes());
        b[44..48].copy_from_slice(&self.body_len.to_le_bytes());
        b
    }

    /// Parses a whole message's header and checks the body length. The
    /// version is returned, not checked: the receiver answers a mismatch.
    pub fn decode(msg: &[u8]) -> Result<RpcHeader, HeaderError> {
        if msg.len() < RPC_HEADER_LEN {
            return Err(HeaderError::Short(msg.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([msg[i], msg[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(msg[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().expect("8 bytes"));
        let magic = u32_at(0);
        if magic != RPC_MAGIC {
            return Err(HeaderError::BadMagic(magic));
        }
        let kind = match msg[6] {
            1 => Kind::Request,
            2 => Kind::Reply,
            k => return Err(HeaderError::BadKind(k)),
        };
        let h = RpcHeader {
            version: u16_at(4),
            kind,
            flags: msg[7],
            portal: u16_at(8),
            opcode: u16_at(10),
            status: u32_at(12) as i32,
            xid: u64_at(16),
            aux: u64_at(24),
            last_committed: u64_at(32),
            service_us: u32_at(40),
            body_len: u32_at(44),
        };
        if h.body_len as usize != msg.len() - RPC_HEADER_LEN {
            return Err(HeaderError::BodyLength { claimed: h.body_len, actual: msg.len() - RPC_HEADER_LEN });
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(portal in any::<u16>(), opcode in any::<u16>(), xid in any::<u64>(), aux in any::<u64>(),
                       status in any::<i32>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut h = RpcHeader::request(portal, opcode, xid);
            h.aux = aux;
            h.status = status;
            h.body_len = body.len() as u32;
            let mut msg = h.encode().to_vec();
            msg.extend_from_slice(&body);
            prop_assert_eq!(RpcHeader::decode(&msg).unwrap(), h);
        }

        #[test]
        fn decode_never_panics(msg in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = RpcHeader::decode(&msg);
        }
    }

    #[test]
    fn refuses_lies_about_length() {
        let mut h = RpcHeader::request(1, 2, 3);
        h.body_len = 10;
        let msg = h.encode();
        assert_eq!(RpcHeader::decode(&msg), Err(HeaderError::BodyLength { claimed: 10, actual: 0 }));
        assert_eq!(RpcHeader::decode(&msg[..10]), Err(HeaderError::Short(10)));
    }
}
