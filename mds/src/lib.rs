//! The glint metadata service: the MDT's namespace store (inodes,
//! directories, layouts, xattrs, the destroy log) on redb, with POSIX
//! permission rules, group commit, and the allocator that picks OST objects
//! for new files. The store has no networking: the MDS service calls into
//! [`Mdt`]. The MGS (`mgs`) lives here too, beside the MDS.

mod alloc;
mod attrs;
mod batch;
mod check;
mod commit;
mod error;
mod fid2path;
mod mdt;
pub mod metrics;
pub mod mgs;
mod migrate;
pub mod names;
mod namespace;
mod opens;
mod perm;
mod reads;
mod records;
mod service;
mod tables;
mod xattr;

pub use alloc::{ObjectPools, PoolTunables};
pub use commit::{CommitStats, MAX_BATCH, Op, Reply, Ticket};
pub use error::MdsError;
pub use mdt::{Freeze, Mdt};
pub use mgs::Mgs;
pub use namespace::LINK_MAX;
pub use reads::{DirEntry, DirPage, Opened};
pub use records::HsmState;
pub use service::{MDT_DB, Mds, MdsConfig, MdsHandle, MdsStats, format};
pub use xattr::{XATTR_NAME_MAX, XATTR_VALUE_MAX, XattrMode};
