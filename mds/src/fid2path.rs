//! fid2path: the path of an inode from the file system's root, read from
//! the names each inode keeps (the `links` table, Lustre's linkEA) and its
//! ancestors' names, without walking the namespace.

use crate::error::{MdsError, refuse};
use crate::mdt::Mdt;
use crate::namespace::search_dir;
use crate::tables::View;
use fabric::Errno;
use proto::{Cred, Fid};

/// The longest path returned, as Linux's PATH_MAX.
pub const PATH_MAX: usize = 4096;
/// More ancestors than a path of PATH_MAX bytes can have means a loop.
const MAX_DEPTH: usize = PATH_MAX / 2 + 1;

impl Mdt {
    /// The path of `fid` relative to the root (`a/b`; empty for the root)
    /// through its name number `link` (from 0; a hard-linked file has
    /// several, ordered by parent FID then name), and how many names it
    /// has. Root sees any path; anyone else needs search permission on
    /// every directory along it, as resolving the path would. ENOENT for
    /// an unlinked inode or a link number past the last.
    pub fn fid2path(&self, cred: &Cred, fid: Fid, link: u32) -> Result<(String, u32), MdsError> {
        let t = self.read()?;
        t.existing(fid)?;
        if fid == Fid::ROOT {
            search_dir(&t, cred, Fid::ROOT)?;
            return Ok((String::new(), 1));
        }
        let (first, links) = t.links_of(fid, link as usize, 1)?;
        let Some((mut dir, name)) = first.into_iter().next() else { return refuse(Errno::ENOENT) };
        let mut names = vec![name];
        let mut dirs = vec![dir];
        while dir != Fid::ROOT {
            if dirs.len() > MAX_DEPTH {
                return Err(MdsError::Corrupt(format!("the ancestors of {fid} loop")));
            }
            let (up, _) = t.links_of(dir, 0, 1)?;
            let Some((parent, dir_name)) = up.into_iter().next() else {
                return Err(MdsError::Corrupt(format!("directory {dir} has no name")));
            };
            names.push(dir_name);
            dir = parent;
            dirs.push(dir);
        }
        for d in dirs.iter().rev() {
            search_dir(&t, cred, *d)?;
        }
        let mut path = Vec::with_capacity(names.iter().map(|n| n.len() + 1).sum());
        for n in names.iter().rev() {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(n);
        }
        if path.len() >= PATH_MAX {
            return refuse(Errno::ENAMETOOLONG);
        }
        let path = String::from_utf8(path).map_err(|_| MdsError::Posix(Errno::EINVAL))?;
        Ok((path, links.try_into().unwrap_or(u32::MAX)))
    }
}
