//! `lfs fid2path`: the paths of FIDs, which the MDS answers from the names
//! it keeps for every inode (Lustre's linkEA): one request per name, no
//! namespace walk. A file with several hard links has a path per link;
//! all are printed unless `--link` picks one.

use super::error::LfsError;
use client::Client;
use proto::{Cred, Fid};

#[derive(clap::Args, Debug)]
pub struct Fid2pathArgs {
    /// Print the FID before each path.
    #[arg(short = 'f', long = "print-fid")]
    pub print_fid: bool,
    /// Print the link number before each path.
    #[arg(short = 'c', long = "print-link")]
    pub print_link: bool,
    /// Only the path of this link number (from 0), not every link's.
    #[arg(short = 'l', long = "link")]
    pub link: Option<u32>,
    /// The file system name or its mount point.
    pub fs: String,
    #[arg(required = true)]
    pub fids: Vec<String>,
}

/// The path of `fid` inside the file system (`/` for the root, `/a/b`
/// below it) through its name number `link`, and how many names it has.
pub async fn fid2path(c: &Client, cred: &Cred, fid: Fid, link: u32) -> Result<(String, u32), LfsError> {
    let (path, links) = c.fid2path(cred, fid, link).await?;
    Ok((format!("/{path}"), links))
}

/// The (link number, path) pairs `lfs fid2path` prints for `fid`: every
/// link's, or only `only`'s.
pub async fn paths(
    c: &Client,
    cred: &Cred,
    fid: Fid,
    only: Option<u32>,
) -> Result<Vec<(u32, String)>, LfsError> {
    let (first, links) = fid2path(c, cred, fid, only.unwrap_or(0)).await?;
    let mut out = vec![(only.unwrap_or(0), first)];
    if only.is_none() {
        for link in 1..links {
            match fid2path(c, cred, fid, link).await {
                Ok((p, _)) => out.push((link, p)),
                // A name removed since the first answer.
                Err(e) if e.errno() == fabric::Errno::ENOENT => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// One printed line: `[FID ][LINK ]MOUNT/PATH`.
pub fn line(a: &Fid2pathArgs, fid: Fid, link: u32, mount: &str, path: &str) -> String {
    let mut s = String::new();
    if a.print_fid {
        s.push_str(&format!("{fid} "));
    }
    if a.print_link {
        s.push_str(&format!("{link} "));
    }
    if path == "/" {
        s.push_str(mount);
    } else {
        s.push_str(mount.trim_end_matches('/'));
        s.push_str(path);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(print_fid: bool, print_link: bool) -> Fid2pathArgs {
        Fid2pathArgs { print_fid, print_link, link: None, fs: "glint".into(), fids: Vec::new() }
    }

    #[test]
    fn lines_as_lfs_prints_them() {
        let fid = Fid::new(Fid::MDT_SEQ, 7);
        assert_eq!(line(&args(false, false), fid, 0, "/mnt/g", "/a/b"), "/mnt/g/a/b");
        assert_eq!(line(&args(false, false), fid, 0, "/mnt/g/", "/a"), "/mnt/g/a");
        assert_eq!(line(&args(false, false), fid, 0, "/mnt/g", "/"), "/mnt/g");
        assert_eq!(line(&args(true, true), fid, 2, "/mnt/g", "/x"), "[0x200000400:0x7:0x0] 2 /mnt/g/x");
    }
}
