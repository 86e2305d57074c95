//! The wire types every glint service shares: FIDs, layouts, attributes,
//! the MGS/MDS/OST operations, and the versioned codec they travel in.
//! Bulk data never passes through here: it moves by the fabric's bulk
//! handles.

pub mod attr;
pub mod fid;
pub mod layout;

pub use attr::{Attr, Cred, SetAttr, StatFs, Timestamp};
pub use fabric::Errno;
pub use fid::Fid;
pub use layout::{Component, Extent, Layout, Pattern, Raid0, StripeObject, StripeSpec};
