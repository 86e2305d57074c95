//! The o2ib LND's message header: what every SEND carries in front of its
//! payload. It names the message type, returns credits to the peer, and
//! for bulk it names the exposed range (request) or the rkey that covers
//! it (grant), as o2iblnd's `kib_msg` does. Handles that carry their rkey
//! (every exposure of a node with an o2ib NI) need neither: the grant is
//! for handles without one.

use crate::{Nid, ProcessId};
use serde::{Deserialize, Serialize};

/// "GO2I": a SEND that does not start with this is not ours.
pub const MAGIC: u32 = 0x474f_3249;
pub const VERSION: u8 = 2;
/// Bytes of the header in front of every message.
pub const HEADER_LEN: usize = 56;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    /// Who the sender is; the first message each way on a connection.
    Hello,
    /// An immediate message for the layer above.
    Msg,
    /// Nothing but credits.
    Noop,
    /// "Let me touch this range of yours": the initiator of a bulk
    /// transfer asks the owner of the memory.
    BulkReq,
    /// The owner's answer: the rkey covering the range, or an errno.
    BulkGrant,
}

impl MsgType {
    fn code(self) -> u8 {
        match self {
            MsgType::Hello => 1,
            MsgType::Msg => 2,
            MsgType::Noop => 3,
            MsgType::BulkReq => 4,
            MsgType::BulkGrant => 5,
        }
    }

    fn from_code(c: u8) -> Option<MsgType> {
        Some(match c {
            1 => MsgType::Hello,
            2 => MsgType::Msg,
            3 => MsgType::Noop,
            4 => MsgType::BulkReq,
            5 => MsgType::BulkGrant,
            _ => return None,
        })
    }
}

/// The fixed header. Fields a type does not use are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub mtype: MsgType,
    /// Message receive buffers the sender has reposted since its last
    /// message (see `credits`).
    pub credits: u16,
    /// Control receive buffers the sender has reposted since its last
    /// message.
    pub ctrl_credits: u16,
    /// Payload bytes after the header.
    pub len: u32,
    /// BulkGrant: 0, or the errno the owner refused with. BulkReq: 1 when
    /// the initiator wants to write the range, 0 to read it.
    pub status: i32,
    /// Matches a BulkGrant to its BulkReq.
    pub cookie: u64,
    /// BulkReq: the exposure key of the handle.
    pub key: u64,
    /// BulkReq: the first byte wanted.
    pub addr: u64,
    /// BulkReq: how many bytes.
    pub blen: u64,
    /// BulkGrant: the rkey covering `addr..addr+blen`.
    pub rkey: u32,
}

/// Why a received message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("bad magic {0:#x}")]
    Magic(u32),
    #[error("protocol version {0}, this node speaks {VERSION}")]
    Version(u8),
    #[error("unknown message type {0}")]
    Type(u8),
    #[error("header says {said} payload bytes, {got} arrived")]
    Length { said: u32, got: usize },
    #[error("bad hello: {0}")]
    Hello(String),
}

impl Header {
    pub fn new(mtype: MsgType) -> Header {
        Header {
            mtype,
            credits: 0,
            ctrl_credits: 0,
            len: 0,
            status: 0,
            cookie: 0,
            key: 0,
            addr: 0,
            blen: 0,
            rkey: 0,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4] = VERSION;
        b[5] = self.mtype.code();
        b[6..8].copy_from_slice(&self.credits.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..16].copy_from_slice(&self.status.to_le_bytes());
        b[16..24].copy_from_slice(&self.cookie.to_le_bytes());
        b[24..32].copy_from_slice(&self.key.to_le_bytes());
        b[32..40].copy_from_slice(&self.addr.to_le_bytes());
        b[40..48].copy_from_slice(&self.blen.to_le_bytes());
        b[48..52].copy_from_slice(&self.rkey.to_le_bytes());
        b[52..54].copy_from_slice(&self.ctrl_credits.to_le_bytes());
        b
    }

    /// The header of a whole received message, checked against its length.
    pub fn decode(msg: &[u8]) -> Result<Header, WireError> {
        if msg.len() < HEADER_LEN {
            return Err(WireError::Short(msg.len()));
        }
        let u32_at = |i: usize| u32::from_le_bytes(msg[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().expect("8 bytes"));
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(WireError::Magic(magic));
        }
        if msg[4] != VERSION {
            return Err(WireError::Version(msg[4]));
        }
        let mtype = MsgType::from_code(msg[5]).ok_or(WireError::Type(msg[5]))?;
        let h = Header {
            mtype,
            credits: u16::from_le_bytes([msg[6], msg[7]]),
            len: u32_at(8),
            status: u32_at(12) as i32,
            cookie: u64_at(16),
            key: u64_at(24),
            addr: u64_at(32),
            blen: u64_at(40),
            rkey: u32_at(48),
            ctrl_credits: u16::from_le_bytes([msg[52], msg[53]]),
        };
        if h.len as usize != msg.len() - HEADER_LEN {
            return Err(WireError::Length { said: h.len, got: msg.len() - HEADER_LEN });
        }
        Ok(h)
    }
}

/// The payload of a Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub nid: Nid,
    pub pid: u32,
    /// Changes every time the process starts, so a peer can tell a restart
    /// from a dropped connection.
    pub incarnation: u64,
    /// Message receive buffers each side keeps posted: the message credits
    /// each side starts with. Both sides must agree.
    pub queue_depth: u16,
    /// Control receive buffers each side keeps posted.
    pub ctrl_depth: u16,
    /// Bytes in one receive buffer, header included.
    pub msg_size: u32,
}

impl Hello {
    pub fn id(&self) -> ProcessId {
        ProcessId { nid: self.nid, pid: self.pid }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a hello always encodes")
    }

    pub fn decode(body: &[u8]) -> Result<Hello, WireError> {
        postcard::from_bytes(body).map_err(|e| WireError::Hello(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_type() -> impl Strategy<Value = MsgType> {
        prop_oneof![
            Just(MsgType::Hello),
            Just(MsgType::Msg),
            Just(MsgType::Noop),
            Just(MsgType::BulkReq),
            Just(MsgType::BulkGrant),
        ]
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        assert_eq!(Header::decode(&[0; 10]), Err(WireError::Short(10)));
        let mut raw = Header::new(MsgType::Noop).encode();
        raw[0] ^= 1;
        assert!(matches!(Header::decode(&raw), Err(WireError::Magic(_))));
        let mut raw = Header::new(MsgType::Noop).encode();
        raw[4] = 9;
        assert_eq!(Header::decode(&raw), Err(WireError::Version(9)));
        let mut raw = Header::new(MsgType::Noop).encode();
        raw[5] = 77;
        assert_eq!(Header::decode(&raw), Err(WireError::Type(77)));
        let mut h = Header::new(MsgType::Msg);
        h.len = 5;
        assert_eq!(Header::decode(&h.encode()), Err(WireError::Length { said: 5, got: 0 }));
    }

    #[test]
    fn hello_round_trips_and_garbage_is_refused() {
        let hello = Hello {
            nid: "169.254.77.1@o2ib".parse().unwrap(),
            pid: 12345,
            incarnation: 99,
            queue_depth: 16,
            ctrl_depth: 16,
            msg_size: 69632,
        };
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        assert!(matches!(Hello::decode(&[0xff; 3]), Err(WireError::Hello(_))));
    }

    proptest! {
        #[test]
        fn headers_round_trip(mtype in any_type(), credits: u16, ctrl_credits: u16, status: i32, cookie: u64,
                              key: u64, addr: u64, blen: u64, rkey: u32,
                              payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let len = payload.len() as u32;
            let h = Header { mtype, credits, ctrl_credits, len, status, cookie, key, addr, blen, rkey };
            let mut msg = h.encode().to_vec();
            msg.extend_from_slice(&payload);
            prop_assert_eq!(Header::decode(&msg), Ok(h));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Header::decode(&bytes);
            let _ = Hello::decode(&bytes);
        }
    }
}
