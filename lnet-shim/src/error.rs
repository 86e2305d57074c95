//! Why a configuration could not be read or applied. Every message names
//! the text, rule, interface or YAML field at fault, so an admin can fix
//! the file without reading our source.

use fabric::{Errno, Net, NidError};

/// A configuration that did not parse, or that does not fit this host.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Module-style `networks=` text that does not parse.
    #[error("networks `{input}`: {reason}")]
    Networks { input: String, reason: String },

    /// An `ip2nets=` rule that does not parse (rules count from 1).
    #[error("ip2nets rule {rule} `{text}`: {reason}")]
    Ip2nets { rule: usize, text: String, reason: String },

    /// No `ip2nets=` rule matches an address of this host.
    #[error("ip2nets matches none of this host's addresses ({addresses})")]
    Ip2netsNoMatch { addresses: String },

    /// A module-style `routes=` entry that does not parse (entries count from 1).
    #[error("routes entry {entry} `{text}`: {reason}")]
    Routes { entry: usize, text: String, reason: String },

    /// An address pattern (`10.0.[0-3].*`) that does not parse.
    #[error("address pattern `{pattern}`: {reason}")]
    Pattern { pattern: String, reason: String },

    /// lnet.conf YAML that is malformed or has a bad value; the message
    /// carries the field path and the line and column.
    #[error("lnet.conf: {0}")]
    Yaml(String),

    /// lnet.conf YAML that parses but says something inconsistent.
    #[error("lnet.conf: {field}: {reason}")]
    Field { field: String, reason: String },

    /// A NI names an interface this host does not have.
    #[error("{net}: interface `{name}` does not exist on this host")]
    NoSuchInterface { net: Net, name: String },

    /// A NI names an interface without an IPv4 address.
    #[error("{net}: interface `{name}` has no IPv4 address")]
    NoAddress { net: Net, name: String },

    /// A NI names an interface that is administratively down.
    #[error("{net}: interface `{name}` is down")]
    InterfaceDown { net: Net, name: String },

    /// A NI gives an address that its interface does not carry.
    #[error("{net}: address {address} is not on interface `{name}` (it has {has})")]
    AddressNotOnInterface { net: Net, name: String, address: String, has: String },

    /// A NI names no interface and the host has no usable one to default to.
    #[error("{net}: no interface given and no up, non-loopback interface with an IPv4 address exists")]
    NoUsableInterface { net: Net },

    /// Two NIs of the configuration resolve to the same NID.
    #[error("two local NIs resolve to {nid}")]
    DuplicateNid { nid: String },

    /// Listing the host's interfaces failed.
    #[error("getifaddrs: {0}")]
    Getifaddrs(#[source] std::io::Error),

    /// A NID or network that did not parse.
    #[error(transparent)]
    Nid(#[from] NidError),
}

impl ConfigError {
    /// The errno an LNet configuration call would return for this failure.
    pub fn errno(&self) -> Errno {
        match self {
            ConfigError::NoSuchInterface { .. } | ConfigError::NoUsableInterface { .. } => Errno::ENODEV,
            ConfigError::NoAddress { .. } | ConfigError::AddressNotOnInterface { .. } => {
                Errno(libc::EADDRNOTAVAIL)
            }
            ConfigError::InterfaceDown { .. } => Errno(libc::ENETDOWN),
            ConfigError::Ip2netsNoMatch { .. } => Errno::ENOENT,
            ConfigError::DuplicateNid { .. } => Errno::EEXIST,
            ConfigError::Getifaddrs(e) => Errno::from_io(e),
            _ => Errno::EINVAL,
        }
    }
}

impl From<ConfigError> for Errno {
    fn from(e: ConfigError) -> Errno {
        e.errno()
    }
}
