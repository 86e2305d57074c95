//! glint's object storage target: the objects of striped files, kept on a
//! local directory in Lustre's layout (`O/<seq>/d<oid % 32>/<oid>`), with
//! everything an OST does to its disk — create, precreate and LAST_ID,
//! destroy, positional read and write (direct I/O when aligned), punch,
//! truncate, attributes, sync and statfs. The network service on top calls
//! [`ObjectStore`] from many threads at once.

pub mod aligned_buf;
mod allocated;
pub mod attr;
mod direct_io;
mod durable;
pub mod error;
mod fd_cache;
mod io_threads;
pub mod label;
mod last_id;
pub mod ldlm;
pub mod metrics;
mod object;
pub mod paths;
pub mod range_lock;
pub mod service;
mod space;
pub mod store;

pub use aligned_buf::{AlignedBuf, DIRECT_IO_ALIGN};
pub use attr::{ObjAttr, ObjTimes};
pub use error::{OstError, Result};
pub use label::Label;
pub use service::{Oss, OssConfig, OssError, OssHandle, TargetConfig};
pub use store::{MAX_PRECREATE, ObjectStore, StoreOptions};
