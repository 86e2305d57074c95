//! The wire types every glint service shares: FIDs, layouts, attributes,
//! the MGS/MDS/OST operations, and the versioned codec they travel in.
//! Bulk data never passes through here: it moves by the fabric's bulk
//! handles.

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
pub use ost::{ObjAttr, OstCall, OstReply, OstRequest};
