//! The glint client: a library an application links to do striped,
//! parallel I/O without the kernel (bulk straight from its registered
//! buffers), and the FUSE mount on top of it for every other program.

mod client;
mod data_buf;
mod error;
mod extra;
mod fid_path;
mod file;
pub mod fuse;
mod gather;
mod integrity;
mod io;
mod join;
mod locks;
pub mod metrics;
mod mount_spec;
mod pinger;
mod readahead;
mod recovery;
mod tunables;
mod write_back;

pub use client::{Client, Created, Stat, process_cred};
pub use error::{ClientError, Result};
pub use file::File;
pub use fuse::{MountError, MountGuard, MountOptions};
pub use integrity::Integrity;
pub use io::{PendingRead, ReadBytes, ReadStart};
pub use locks::{LockStats, LostHook};
pub use mount_spec::MountSpec;
pub use readahead::{DEFAULT_MAX_READ_AHEAD_MB, MAX_READ_AHEAD_MB, ReadAheadStats};
pub use tunables::{
    ClientTunables, DEFAULT_SHORT_IO_BYTES, MAX_RPCS_IN_FLIGHT, PAGE_SIZE, RpcStats, TunableError,
    check_pages_per_rpc, check_rpcs_in_flight, check_short_io_bytes,
};
