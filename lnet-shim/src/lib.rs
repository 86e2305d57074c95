//! The LNet face of the glint fabric, as pure logic: reading what Lustre
//! admins write (`networks=`, `ip2nets=`, `routes=`, lnet.conf YAML) into
//! an [`LnetConfig`] and resolving it to NIDs on this host; choosing the
//! (local NI, peer NID) pair for a peer with o2ib preferred and tcp as the
//! reported fallback; LNet's health arithmetic; and lnetctl-style YAML
//! output (`net show`, `peer show`, `stats show`, `ping`).

pub mod config;
pub mod error;
pub mod health;
pub mod interfaces;
pub mod ip2nets;
pub mod ip_pattern;
pub mod lnet_conf;
pub mod networks;
pub mod routes;
pub mod selection;
pub mod show;
mod yaml_out;

pub use config::{GlobalSettings, LnetConfig, NetSpec, NiSpec, NiTunables, PeerSpec, ResolvedNi, RouteSpec};
pub use error::ConfigError;
pub use health::{Health, recovery_ping_delay};
pub use interfaces::{HostInterfaces, Interface};
pub use ip_pattern::IpPattern;
pub use ip2nets::{Ip2Nets, Ip2NetsRule};
pub use networks::parse_networks;
pub use routes::parse_routes;
pub use selection::{
    FallbackReason, LocalNi, NiStatus, PeerNiState, PeerState, SelectError, Selection, select,
};
pub use show::{
    MsgCounts, MsgTypeCounts, NetShow, NetShowNet, NetShowNi, NetShowNiDetail, NiHealthStats,
    PeerNiHealthStats, PeerNiLiveness, PeerShow, PeerShowNi, PeerShowNiDetail, PeerShowPeer, PingFailure,
    PingReply, StatsShow, ping_yaml,
};
