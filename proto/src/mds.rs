//! Requests the MDS serves, and its replies.

use crate::attr::{Attr, Cred, SetAttr, StatFs};
use crate::fid::Fid;
use crate::layout::{Layout, StripeSpec};
use serde::{Deserialize, Serialize};

/// The longest name in a directory.
pub const NAME_MAX: usize = 255;

/// A request with the caller's credentials, checked on every operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdsCall {
    pub cred: Cred,
    pub op: MdsRequest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MdsRequest {
    /// The root FID and the file system's name.
    Connect {
        fsname: String,
    },
    Lookup {
        parent: Fid,
        name: String,
    },
    Getattr {
        fid: Fid,
    },
    Setattr {
        fid: Fid,
        attr: SetAttr,
    },
    /// A regular file with a layout. `exclusive` fails with EEXIST when the
    /// name exists; otherwise the existing file is returned. With `open`
    /// (open(2)'s flags) the file is also opened for the caller, as
    /// Lustre's open intent does, saving the `Open` that would follow.
    /// Answered by `Created`.
    Create {
        parent: Fid,
        name: String,
        mode: u32,
        stripe: StripeSpec,
        exclusive: bool,
        open: Option<u32>,
    },
    Mkdir {
        parent: Fid,
        name: String,
        mode: u32,
    },
    Mknod {
        parent: Fid,
        name: String,
        mode: u32,
        rdev: u64,
    },
    Symlink {
        parent: Fid,
        name: String,
        target: String,
    },
    Readlink {
        fid: Fid,
    },
    Link {
        fid: Fid,
        parent: Fid,
        name: String,
    },
    Unlink {
        parent: Fid,
        name: String,
    },
    Rmdir {
        parent: Fid,
        name: String,
    },
    Rename {
        parent: Fid,
        name: String,
        new_parent: Fid,
        new_name: String,
    },
    /// Entries after `cookie`, at most `max`.
    Readdir {
        fid: Fid,
        cookie: u64,
        max: u32,
    },
    Getxattr {
        fid: Fid,
        name: String,
    },
    /// `flags` as setxattr(2): XATTR_CREATE, XATTR_REPLACE.
    Setxattr {
        fid: Fid,
        name: String,
        value: Vec<u8>,
        flags: u32,
    },
    Listxattr {
        fid: Fid,
    },
    Removexattr {
        fid: Fid,
        name: String,
    },
    Open {
        fid: Fid,
        flags: u32,
    },
    Close {
        fid: Fid,
    },
    Statfs,
    /// The default striping of a directory (`lfs setstripe DIR`).
    SetDirStripe {
        fid: Fid,
        stripe: StripeSpec,
    },
    GetDirStripe {
        fid: Fid,
    },
    /// The path of a FID from the root (`lfs fid2path`): the name number
    /// `link` (from 0) of a file with several hard links.
    Fid2Path {
        fid: Fid,
        link: u32,
    },
    /// The inodes of many FIDs at once, as `Getattr` gives each (statahead:
    /// `ls -l` of a directory). Answered by `Attrs`, which may stop short
    /// of the last FIDs to stay inside one message: ask again for the rest.
    GetattrMany {
        fids: Vec<Fid>,
    },
}

impl MdsRequest {
    pub fn name(&self) -> &'static str {
        match self {
            MdsRequest::Connect { .. } => "connect",
            MdsRequest::Lookup { .. } => "lookup",
            MdsRequest::Getattr { .. } => "getattr",
            MdsRequest::Setattr { .. } => "setattr",
            MdsRequest::Create { .. } => "create",
            MdsRequest::Mkdir { .. } => "mkdir",
            MdsRequest::Mknod { .. } => "mknod",
            MdsRequest::Symlink { .. } => "symlink",
            MdsRequest::Readlink { .. } => "readlink",
            MdsRequest::Link { .. } => "link",
            MdsRequest::Unlink { .. } => "unlink",
            MdsRequest::Rmdir { .. } => "rmdir",
            MdsRequest::Rename { .. } => "rename",
            MdsRequest::Readdir { .. } => "readdir",
            MdsRequest::Getxattr { .. } => "getxattr",
            MdsRequest::Setxattr { .. } => "setxattr",
            MdsRequest::Listxattr { .. } => "listxattr",
            MdsRequest::Removexattr { .. } => "removexattr",
            MdsRequest::Open { .. } => "open",
            MdsRequest::Close { .. } => "close",
            MdsRequest::Statfs => "statfs",
            MdsRequest::SetDirStripe { .. } => "setdirstripe",
            MdsRequest::GetDirStripe { .. } => "getdirstripe",
            MdsRequest::Fid2Path { .. } => "fid2path",
            MdsRequest::GetattrMany { .. } => "getattr_many",
        }
    }

    /// A small stable number per operation for the RPC header and stats.
    pub fn opcode(&self) -> u16 {
        const ORDER: [&str; 25] = [
            "connect",
            "lookup",
            "getattr",
            "setattr",
            "create",
            "mkdir",
            "mknod",
            "symlink",
            "readlink",
            "link",
            "unlink",
            "rmdir",
            "rename",
            "readdir",
            "getxattr",
            "setxattr",
            "listxattr",
            "removexattr",
            "open",
            "close",
            "statfs",
            "setdirstripe",
            "getdirstripe",
            "fid2path",
            "getattr_many",
        ];
        ORDER.iter().position(|n| *n == self.name()).map(|i| i as u16 + 1).unwrap_or(0)
    }
}

/// An inode as `GetattrMany` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeAttrs {
    pub attr: Attr,
    /// A regular file's layout.
    pub layout: Option<Layout>,
    /// Whether it has any extended attribute.
    pub xattrs: bool,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub fid: Fid,
    /// `S_IFDIR`, `S_IFREG`, ... (the type bits of the mode).
    pub kind: u32,
    /// Pass back to continue after this entry.
    pub cookie: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MdsReply {
    Connected {
        root: Fid,
    },
    /// An inode, with its layout for regular files.
    Attr {
        attr: Attr,
        layout: Option<Layout>,
    },
    /// What `Create` made or found: `new` when this call created it (its
    /// objects are empty, so its size is 0 without asking the OSTs), and
    /// the directory's attributes after it.
    Created {
        attr: Attr,
        layout: Option<Layout>,
        new: bool,
        parent: Attr,
    },
    /// `Unlink` and `Rmdir` done: the directory's attributes after.
    Unlinked {
        parent: Attr,
    },
    /// `GetattrMany`: each FID's inode and layout in the order asked, `None`
    /// for a FID that no longer exists.
    Attrs {
        attrs: Vec<Option<InodeAttrs>>,
    },
    Link {
        target: String,
    },
    Entries {
        entries: Vec<DirEntry>,
        eof: bool,
    },
    Xattr {
        value: Vec<u8>,
    },
    XattrNames {
        names: Vec<String>,
    },
    Statfs(StatFs),
    DirStripe {
        stripe: crate::layout::StripeSpec,
    },
    /// A path relative to the file system's root (`a/b`; empty for the
    /// root itself), and how many names the FID has.
    Path {
        path: String,
        link: u32,
        links: u32,
    },
    Done,
}
