//! The glint client: a library an application links to do striped,
//! parallel I/O without the kernel (bulk straight from its registered
//! buffers), and the FUSE mount on top of it for every other program.

mod client;
mod error;
mod extra;
pub mod fuse;
mod io;
pub mod metrics;
mod mount_spec;

pub use client::{Client, ClientTunables, process_cred};
pub use error::{ClientError, Result};
pub use fuse::{MountError, MountGuard, MountOptions};
pub use mount_spec::MountSpec;
