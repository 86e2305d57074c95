//! The wire types every glint service shares: FIDs, layouts, attributes,
//! the MGS/MDS/OST operations, and the versioned codec they travel in.
//! Bulk data never passes through serde: it moves by the fabric's bulk
//! handles, or, for short I/O, as raw bytes after an OST message.

pub mod attr;
pub mod codec;
pub mod fid;
pub mod layout;
pub mod ldlm;
pub mod mds;
pub mod mgs;
pub mod ost;
mod statvfs;

pub use attr::{Attr, Cred, SetAttr, StatFs, Timestamp};
pub use codec::{CodecError, decode, encode, portal};
pub use fabric::Errno;
pub use fid::Fid;
pub use layout::{Component, Extent, Layout, Pattern, Raid0, StripeObject, StripeSpec};
pub use ldlm::{LockExtent, LockHandle, LockMode};
pub use mds::{DirEntry, InodeAttrs, MdsCall, MdsReply, MdsRequest};
pub use mgs::{FsConfig, MgsReply, MgsRequest, TargetInfo, TargetKind};
pub use ost::{
    MAX_SHORT_IO_BYTES, ObjAttr, OstCall, OstReply, OstRequest, decode_ost_call, decode_ost_reply,
    encode_ost_call, encode_ost_reply,
};
