//! The OST's lock manager, after Lustre's LDLM: extent locks on objects
//! that let clients cache what they read. PR locks share a range, a PW
//! lock excludes other clients; a grant grows as wide as nobody else's
//! locks allow (usually the whole object). A conflicting request calls
//! the holders back over the connections they opened and waits for their
//! answer; a holder that does not answer in time is evicted. I/O that
//! comes without a lock takes one on the server's side for its length,
//! so other clients' caches never outlive a write. After a restart the
//! clients that held locks replay them before new ones are granted.

pub mod clients;
mod namespace;
mod recovery;
pub mod resource;

pub use clients::{ClientFile, ClientKey};
pub use namespace::{Glimpsed, IoGuard, LdlmConfig, LdlmStats, Namespace};
pub use resource::{Lock, Owner, Resource};
