//! RPC over the fabric, in the manner of ptlrpc: requests and replies
//! matched by xid, one service per portal, server-driven bulk, adaptive
//! timeouts, resend with the same xid after a lost connection, and a reply
//! cache so a resent request runs once.

mod dispatch;
mod endpoint;
mod header;
mod reply_cache;
mod route;
mod timeout;

pub use endpoint::{
    BulkCtx, Endpoint, EndpointConfig, Reply, Request, Response, RpcError, RpcStats, Service,
};
pub use header::{FLAG_RESEND, HeaderError, Kind, RPC_HEADER_LEN, RPC_VERSION, RpcHeader};
pub use reply_cache::{Begin, ReplyCache};
pub use route::{FallbackCause, O2IB_RETRY, PeerRoute, pick_nid};
pub use timeout::{AdaptiveTimeouts, TimeoutBounds};
