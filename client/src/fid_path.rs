//! fid2path: the paths of a FID, which the MDS answers from the names each
//! inode keeps (Lustre's linkEA), without walking the namespace.

use crate::client::Client;
use crate::error::{ClientError, Result};
use fabric::Errno;
use proto::{Cred, Fid, MdsReply, MdsRequest};

impl Client {
    /// The path of `fid` relative to the file system's root (`a/b`; empty
    /// for the root) through its name number `link` (from 0), and how many
    /// names it has. ENOENT when it has no such name; EACCES when `cred`
    /// may not search a directory along the path.
    pub async fn fid2path(&self, cred: &Cred, fid: Fid, link: u32) -> Result<(String, u32)> {
        match self.md_as(cred.clone(), MdsRequest::Fid2Path { fid, link }).await? {
            MdsReply::Path { path, links, .. } => Ok((path, links)),
            _ => Err(ClientError::UnexpectedReply { service: "MDS" }),
        }
    }

    /// Every path of `fid`, one per hard link, in link order. A name
    /// removed while they are read is left out.
    pub async fn fid2paths(&self, cred: &Cred, fid: Fid) -> Result<Vec<String>> {
        let (first, links) = self.fid2path(cred, fid, 0).await?;
        let mut out = vec![first];
        for link in 1..links {
            match self.fid2path(cred, fid, link).await {
                Ok((p, _)) => out.push(p),
                Err(e) if e.errno() == Errno::ENOENT => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
