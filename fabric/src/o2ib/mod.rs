//! The verbs side of the fabric (o2ib, after Lustre's o2iblnd): RDMA
//! devices, one protection domain per HCA, registered memory, and RC queue
//! pairs set up with rdma_cm that carry immediate messages (SEND/RECV into
//! pre-posted buffers) and bulk (RDMA WRITE and READ against a peer's
//! [`RemoteBuf`]).
//!
//! rdma-core is loaded at run time (through `sideway` and
//! `rdma-mummy-sys`), so a binary starts on a host without it; every entry
//! point then answers [`O2ibError::NoRdmaDevice`].
//!
//! rdma_cm cannot connect over a loopback address on RoCE: it binds
//! 127.0.0.0/8 like the wildcard, and route resolution then fails with
//! ENODEV. Peers on one host use a real interface address.
//!
//! [`O2ibLnd`] is the LND on top: connections made on first send, credits,
//! zero-copy immediate messages, one-sided bulk with a registration cache,
//! and a poller thread.
//!
//! The `verbs_selftest` and `o2ib_selftest` examples drive all of it over
//! Soft-RoCE in the `soft-roce-tests` VM.

mod cm;
mod completion;
mod connection;
mod credits;
mod device;
mod error;
mod exposed;
mod hca;
mod lnd;
mod peer;
mod poller;
mod reg_cache;
mod registration;
mod stats;
pub mod wire;

pub use cm::{Listener, connect};
pub use completion::{Completion, Op};
pub use connection::{ConnConfig, Connection, Repost};
pub use credits::{Credits, Kind as CreditKind, Pools, Taken};
pub use device::{RdmaDevice, RdmaPort, list_devices, mtu_bytes};
pub use error::{O2ibError, completion_errno};
pub use hca::Hca;
pub use lnd::{DEFAULT_PORT, O2ibConfig, O2ibLnd, cluster_port};
pub use reg_cache::{RegCache, RegCacheStats};
pub use registration::{Registration, RemoteBuf, checked_range};
pub use sideway::ibverbs::completion::WorkCompletionStatus;
pub use stats::{O2ibStats, PeerStats};
