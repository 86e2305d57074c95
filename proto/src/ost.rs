//! Requests an OST serves, and its replies.

use crate::attr::{StatFs, Timestamp};
use crate::codec::{CodecError, decode_head, encode};
use crate::fid::Fid;
use crate::ldlm::{LockExtent, LockHandle, LockMode};
use fabric::BulkHandle;
use serde::{Deserialize, Serialize};

/// The largest bulk one OST RPC carries: 16 MiB, as Lustre's largest
/// `max_pages_per_rpc`.
pub const MAX_RPC_BYTES: u64 = 16 * 1024 * 1024;

/// The most bytes a short write or read carries inside its request or
/// reply (Lustre's short I/O): well inside the fabric's 64 KiB immediate
/// message, so a short RPC never needs a bulk transfer.
pub const MAX_SHORT_IO_BYTES: usize = 32 * 1024;

/// The most objects one precreate request makes (Lustre's OST_MAX_PRECREATE).
pub const MAX_PRECREATE: u32 = 20_000;

/// A request for one of the OSTs an OSS serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OstCall {
    pub target: u32,
    pub op: OstRequest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OstRequest {
    /// Checks that this OST serves `fsname` as target `index`.
    Connect {
        fsname: String,
        index: u32,
    },
    /// Creates `count` objects from `first_oid` on (the MDS's precreate).
    Precreate {
        seq: u64,
        first_oid: u32,
        count: u32,
    },
    /// The highest oid created in `seq`.
    LastId {
        seq: u64,
    },
    Destroy {
        fid: Fid,
    },
    /// The OST pulls `len` bytes from `segs` (in order) and writes them at
    /// `offset`; `crc` is the crc32c of those bytes. `lock`: the PW lock
    /// the client gathered them under, if it did. If the OST granted that
    /// lock and the client no longer holds it, an eviction took it and the
    /// bytes are stale: the write is refused with ENOLCK.
    Write {
        fid: Fid,
        offset: u64,
        len: u64,
        segs: Vec<BulkHandle>,
        crc: u32,
        sync: bool,
        lock: Option<LockHandle>,
    },
    /// The OST reads up to `len` bytes at `offset` and pushes them into
    /// `segs`; bytes past the object's end are not sent.
    Read {
        fid: Fid,
        offset: u64,
        len: u64,
        segs: Vec<BulkHandle>,
    },
    Punch {
        fid: Fid,
        offset: u64,
        len: u64,
    },
    Truncate {
        fid: Fid,
        size: u64,
    },
    Getattr {
        fid: Fid,
    },
    Setattr {
        fid: Fid,
        atime: Option<Timestamp>,
        mtime: Option<Timestamp>,
    },
    Sync {
        fid: Option<Fid>,
    },
    Statfs,
    /// Destroys the objects of `seq` above `last_used`, which the MDS
    /// precreated but never put in a layout (Lustre's OST_CREATE with
    /// OBD_FL_DELORPHAN, sent when the MDS connects after a restart).
    /// Answered with `LastId`: precreation goes on above it, so an object
    /// id is never used twice.
    DestroyOrphans {
        seq: u64,
        last_used: u32,
    },
    /// Asks for a lock on `extent` of `fid` (see [`crate::ldlm`]);
    /// answered `Granted` once no other client holds a conflicting one.
    Enqueue {
        fid: Fid,
        mode: LockMode,
        extent: LockExtent,
    },
    /// Gives a lock back.
    Cancel {
        fid: Fid,
        handle: LockHandle,
    },
    // New variants go last: a variant's place is its number on the wire.
    /// A short write: the bytes follow the call in the request (see
    /// [`encode_ost_call`]), so the OST has them without a bulk round
    /// trip; `crc` is their crc32c; `lock` as for `Write`.
    WriteShort {
        fid: Fid,
        offset: u64,
        crc: u32,
        sync: bool,
        lock: Option<LockHandle>,
    },
    /// A short read: up to `len` bytes (at most [`MAX_SHORT_IO_BYTES`])
    /// come back inside the reply, `ReadShort`.
    ReadShort {
        fid: Fid,
        offset: u64,
        len: u64,
    },
    /// After a restart of the OST, while it is recovering: a lock this
    /// client held from the OST's previous run (`handle`), asked back as it
    /// was. Granted with a new handle (`Granted`), without waiting for
    /// anyone; writes naming the old handle are checked against the new.
    /// Refused with ENOLCK once the recovery window has closed.
    Replay {
        fid: Fid,
        mode: LockMode,
        extent: LockExtent,
        handle: LockHandle,
    },
    /// This client has replayed every lock it held on the OST: the OST
    /// waits for no more from it before granting new locks.
    ReplayDone,
    /// This client is leaving (an unmount): the OST drops its locks and
    /// will not wait for it after a restart.
    Disconnect,
    /// The object's attributes for a stat (Lustre's glimpse enqueue): a
    /// PR lock over the whole object (`Granted`) when no other client
    /// holds a conflicting one; otherwise the holders of PW locks are
    /// asked how large they know the object to be (their cached writes
    /// count) and keep their locks, and the answer is `Attr`, with no lock.
    Glimpse {
        fid: Fid,
    },
}

impl OstRequest {
    pub fn opcode(&self) -> u16 {
        match self {
            OstRequest::Connect { .. } => 8,
            OstRequest::Precreate { .. } => 5,
            OstRequest::LastId { .. } => 20,
            OstRequest::Destroy { .. } => 6,
            OstRequest::Write { .. } | OstRequest::WriteShort { .. } => 4,
            OstRequest::Read { .. } | OstRequest::ReadShort { .. } => 3,
            OstRequest::Punch { .. } => 10,
            OstRequest::Truncate { .. } => 21,
            OstRequest::Getattr { .. } => 1,
            OstRequest::Setattr { .. } => 2,
            OstRequest::Sync { .. } => 16,
            OstRequest::Statfs => 13,
            // Lustre sends it as an OST_CREATE with a flag.
            OstRequest::DestroyOrphans { .. } => 5,
            OstRequest::Enqueue { .. } => crate::ldlm::opcode::ENQUEUE,
            OstRequest::Cancel { .. } => crate::ldlm::opcode::CANCEL,
            OstRequest::Replay { .. } => crate::ldlm::opcode::ENQUEUE,
            // Lustre's OBD_PING carries the end of a client's replay.
            OstRequest::ReplayDone => 400,
            OstRequest::Disconnect => 9,
            OstRequest::Glimpse { .. } => crate::ldlm::opcode::ENQUEUE,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OstRequest::Connect { .. } => "connect",
            OstRequest::Precreate { .. } => "create",
            OstRequest::LastId { .. } => "last_id",
            OstRequest::Destroy { .. } => "destroy",
            OstRequest::Write { .. } => "write",
            // Counted as the bulk reads and writes they stand for, as
            // Lustre's short I/O travels as OST_READ and OST_WRITE.
            OstRequest::Read { .. } | OstRequest::ReadShort { .. } => "read",
            OstRequest::WriteShort { .. } => "write",
            OstRequest::Punch { .. } => "punch",
            OstRequest::Truncate { .. } => "truncate",
            OstRequest::Getattr { .. } => "getattr",
            OstRequest::Setattr { .. } => "setattr",
            OstRequest::Sync { .. } => "sync",
            OstRequest::Statfs => "statfs",
            OstRequest::DestroyOrphans { .. } => "destroy_orphans",
            OstRequest::Enqueue { .. } => "ldlm_enqueue",
            OstRequest::Cancel { .. } => "ldlm_cancel",
            OstRequest::Replay { .. } => "ldlm_replay",
            OstRequest::ReplayDone => "replay_done",
            OstRequest::Disconnect => "disconnect",
            OstRequest::Glimpse { .. } => "ldlm_glimpse",
        }
    }
}

/// An object's attributes as the OST knows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjAttr {
    pub size: u64,
    /// 512-byte blocks allocated (as `st_blocks`): what is really on disk.
    pub blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OstReply {
    Connected {
        uuid: String,
        /// How many times the target has started; lock handles carry the
        /// run that granted them ([`LockHandle::run`]).
        run: u32,
        /// The target restarted and waits for the clients that held locks
        /// to replay them (`Replay`, then `ReplayDone`).
        recovering: bool,
    },
    Precreated {
        seq: u64,
        first_oid: u32,
        count: u32,
    },
    LastId {
        seq: u64,
        oid: u32,
    },
    Done,
    Written {
        len: u64,
    },
    /// `len` bytes were pushed; `crc` covers them.
    ReadDone {
        len: u64,
        crc: u32,
    },
    Attr(ObjAttr),
    Statfs(StatFs),
    /// The lock `handle` covers `extent`, which contains the one asked for.
    /// `attr` is the object's as of the grant (Lustre's lock value block):
    /// no other client can change the object while a lock over all of it
    /// is held, so the holder knows its size and times without asking, and
    /// reads ahead no further than its end.
    Granted {
        handle: LockHandle,
        extent: LockExtent,
        attr: ObjAttr,
    },
    /// A short read's bytes follow in the reply (as many as the object
    /// held, up to the length asked); `crc` covers them.
    ReadShort {
        crc: u32,
    },
}

/// An OST request as it goes on the wire: the call, then the bytes of a
/// `WriteShort` (none for any other request).
pub fn encode_ost_call(call: &OstCall, data: &[u8]) -> Vec<u8> {
    with_tail(encode(call), data)
}

/// Splits a request into its call and a `WriteShort`'s bytes. Bytes after
/// any other request, or more than [`MAX_SHORT_IO_BYTES`], are refused.
pub fn decode_ost_call(bytes: &[u8]) -> Result<(OstCall, &[u8]), CodecError> {
    const WHAT: &str = "OST request";
    let (call, tail) = decode_head::<OstCall>(WHAT, bytes)?;
    let carries = matches!(call.op, OstRequest::WriteShort { .. });
    check_tail(WHAT, carries, tail)?;
    Ok((call, tail))
}

/// An OST reply as it goes on the wire: the reply, then a `ReadShort`'s bytes.
pub fn encode_ost_reply(reply: &OstReply, data: &[u8]) -> Vec<u8> {
    with_tail(encode(reply), data)
}

/// Splits a reply into its value and a `ReadShort`'s bytes.
pub fn decode_ost_reply(bytes: &[u8]) -> Result<(OstReply, &[u8]), CodecError> {
    const WHAT: &str = "OST reply";
    let (reply, tail) = decode_head::<OstReply>(WHAT, bytes)?;
    let carries = matches!(reply, OstReply::ReadShort { .. });
    check_tail(WHAT, carries, tail)?;
    Ok((reply, tail))
}

fn with_tail(mut head: Vec<u8>, data: &[u8]) -> Vec<u8> {
    head.extend_from_slice(data);
    head
}

fn check_tail(what: &'static str, carries: bool, tail: &[u8]) -> Result<(), CodecError> {
    if !carries && !tail.is_empty() {
        return Err(CodecError { what, reason: format!("{} trailing bytes", tail.len()) });
    }
    if tail.len() > MAX_SHORT_IO_BYTES {
        let reason = format!("{} bytes of short I/O data, more than {MAX_SHORT_IO_BYTES}", tail.len());
        return Err(CodecError { what, reason });
    }
    Ok(())
}
