//! The glint client: a library an application links to do striped,
//! parallel I/O without the kernel (bulk straight from its registered
//! buffers), and the FUSE mount on top of it for every other program.

mod client;
mod error;
mod extra;
mod fid_path;
mod file;
pub mod fuse;
mod gather;
mod integrity;
mod io;
mod join;
pub mod metrics;
mod mount_spec;
mod tunables;

pub use client::{Client, process_cred};
pub use error::{ClientError, Result};
pub use file::File;
pub use fuse::{MountError, MountGuard, MountOptions};
pub use integrity::Integrity;
pub use mount_spec::MountSpec;
pub use tunables::{
    ClientTunables, MAX_RPCS_IN_FLIGHT, PAGE_SIZE, RpcStats, TunableError, check_pages_per_rpc,
    check_rpcs_in_flight,
};
