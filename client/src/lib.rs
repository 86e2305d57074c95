//! The glint client: a library an application links to do striped,
//! parallel I/O without the kernel (bulk straight from its registered
//! buffers), and the FUSE mount on top of it for every other program.

mod client;
mod error;
mod io;
mod mount_spec;

pub use client::{Client, ClientTunables, process_cred};
pub use error::{ClientError, Result};
pub use mount_spec::MountSpec;
