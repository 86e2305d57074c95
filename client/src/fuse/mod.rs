//! The FUSE mount: glint as a POSIX file system for every program that
//! does not link the library, as `mount -t lustre` gives Lustre.
//!
//! Every request runs as a task on the mount's own tokio runtime, with the
//! calling process's uid, gid and supplementary groups. File data is not
//! cached across opens (direct I/O), so a read sees every write that
//! completed before it on any client once the writer has closed or synced;
//! attributes and names are cached for a second.

mod convert;
mod cred;
mod data;
mod dispatch;
mod fresh;
mod handles;
mod inodes;
mod mount;
mod mounted;
mod namespace;
mod object_inodes;

pub use mount::{MountError, MountGuard, mount, mount_then, spawn_mount, spawn_mount_async};

use crate::ClientTunables;
use proto::StripeSpec;
use std::time::Duration;

/// How a mount behaves.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Let users other than the mounter in (`allow_other`); the MDS checks
    /// each caller's permissions.
    pub allow_other: bool,
    pub read_only: bool,
    /// How long the kernel may trust a name it looked up.
    pub entry_ttl: Duration,
    /// How long the kernel may trust attributes (size, mode, times).
    pub attr_ttl: Duration,
    /// The largest read or write the kernel sends in one request.
    pub max_io: u32,
    /// Bytes one open file gathers from small sequential writes before
    /// sending them (rounded to whole RPCs, at least one per stripe); 0
    /// sends every write as it comes.
    pub write_gather: usize,
    /// Worker threads of the runtime that serves requests.
    pub threads: usize,
    /// Threads reading requests from the kernel.
    pub fuse_threads: usize,
    /// The striping new files ask for; unset fields inherit the
    /// directory's default.
    pub stripe: StripeSpec,
    pub tunables: ClientTunables,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            allow_other: true,
            read_only: false,
            entry_ttl: Duration::from_secs(1),
            attr_ttl: Duration::from_secs(1),
            max_io: 1 << 20,
            write_gather: 4 << 20,
            threads: 4,
            fuse_threads: 2,
            stripe: StripeSpec::default(),
            tunables: ClientTunables::default(),
        }
    }
}
