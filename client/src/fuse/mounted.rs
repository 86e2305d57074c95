//! The state of one FUSE mount: the client, the inodes the kernel holds,
//! the open handles, and the options it was mounted with.

use super::MountOptions;
use super::convert::file_attr;
use super::fresh::Fresh;
use super::handles::Handles;
use super::inodes::Inodes;
use super::object_inodes::ObjectInodes;
use crate::{Client, ClientError};
use fabric::Errno;
use fuser::FileAttr;
use proto::{Attr, Layout};
use std::sync::Arc;
use std::time::Duration;

pub(crate) type R<T> = std::result::Result<T, Errno>;

/// Client errors as the errno the kernel hands the application.
pub(crate) trait OrErrno<T> {
    fn or_errno(self) -> R<T>;
}

impl<T> OrErrno<T> for std::result::Result<T, ClientError> {
    fn or_errno(self) -> R<T> {
        self.map_err(|e| {
            let errno = e.errno();
            if errno == Errno::EIO || errno == Errno::EPROTO {
                tracing::warn!(error = %e, "glint operation failed");
            } else {
                tracing::debug!(error = %e, "glint operation refused");
            }
            errno
        })
    }
}

pub(crate) struct Mounted {
    pub client: Arc<Client>,
    pub inodes: Inodes,
    pub handles: Handles,
    /// The inode each object seen belongs to.
    pub objects: ObjectInodes,
    /// Directories' attributes from the MDS's answers to this mount's changes.
    pub dirs: Fresh<Attr>,
    /// Inodes a `readdirplus` found without extended attributes.
    pub no_xattrs: Fresh<()>,
    pub opts: MountOptions,
}

impl Mounted {
    pub fn new(client: Arc<Client>, opts: MountOptions) -> Mounted {
        Mounted {
            inodes: Inodes::new(client.root()),
            handles: Handles::default(),
            objects: ObjectInodes::default(),
            dirs: Fresh::default(),
            no_xattrs: Fresh::default(),
            client,
            opts,
        }
    }

    pub fn blksize(&self) -> u32 {
        self.client.tunables().rpc_size.min(u32::MAX as usize) as u32
    }

    pub fn fattr(&self, ino: u64, a: &Attr) -> R<FileAttr> {
        file_attr(ino, a, self.blksize())
    }

    /// Sends what every open of `ino` on this mount gathered and waits for
    /// it, before a read, stat, truncate or append of the file here. A
    /// failed send is reported by that open's own fsync or close (as the
    /// kernel reports a failed write-back), not to this caller.
    pub async fn send_inode(&self, ino: u64) {
        for h in self.handles.files_of(ino) {
            if let Some(w) = &h.dirty {
                w.send().await;
            }
        }
    }

    /// A regular file's size, blocks and times come from its objects, read
    /// under locks whose loss drops the kernel's copy (see `mount.rs`).
    pub async fn with_object_attrs(&self, ino: u64, mut attr: Attr, layout: Option<&Layout>) -> R<Attr> {
        if let Some(l) = layout {
            self.objects.note(ino, l);
            self.send_inode(ino).await;
            self.client.merge_object_attrs(&mut attr, l).await.or_errno()?;
        }
        Ok(attr)
    }

    /// How long the kernel may keep `ino`'s attributes: `attr_ttl` while
    /// they are held under locks (a callback drops them), not at all when a
    /// glimpse answered them because another client writes the file.
    pub fn attr_ttl_of(&self, ino: u64) -> Duration {
        if self.client.attrs_held(self.objects.objects_of(ino)) { self.opts.attr_ttl } else { Duration::ZERO }
    }

    /// Remembers an inode the kernel is being told about and gives its
    /// attributes in the kernel's terms.
    pub async fn entry(&self, parent: u64, attr: Attr, layout: Option<&Layout>) -> R<FileAttr> {
        let ino = self.inodes.ino_of(attr.fid);
        let attr = self.with_object_attrs(ino, attr, layout).await?;
        let fa = self.fattr(ino, &attr)?;
        self.inodes.remember(attr.fid, parent)?;
        Ok(fa)
    }
}
