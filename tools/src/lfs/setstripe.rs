//! `lfs setstripe` and `lfs mkdir`: a directory's default striping, or a
//! new file created with the striping asked for. glint gives every file
//! its layout when it is created, so an existing file cannot be
//! restriped: that is EEXIST, as Lustre answers for a file whose layout
//! is already set.

use super::error::LfsError;
use client::Client;
use fabric::Errno;
use proto::{Attr, Cred, Fid, Layout, MdsRequest, StripeSpec};

/// What `setstripe` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The directory's default striping was set.
    DirDefault,
    /// A new file was created with this layout.
    Created { attr: Attr, layout: Option<Layout> },
}

/// Parent directory and last name of a path inside the file system.
pub fn split_parent(path: &str) -> Result<(&str, &str), LfsError> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, name)) if !name.is_empty() && name != "." && name != ".." => {
            Ok((if parent.is_empty() { "/" } else { parent }, name))
        }
        _ => Err(LfsError::Errno(Errno::EINVAL)),
    }
}

/// The process's umask, which a kernel applies to `open(O_CREAT)` and
/// `mkdir` and the MDS cannot know. Read by setting it and putting it
/// back at once (this command creates nothing in between).
pub fn process_umask() -> u32 {
    // SAFETY: umask only swaps a process-wide integer.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

fn check(spec: &StripeSpec) -> Result<(), LfsError> {
    use proto::layout::LayoutError;
    spec.validate().map_err(|e| {
        let (what, value) = match &e {
            LayoutError::StripeSize(s) => ("stripe size", s.to_string()),
            LayoutError::StripeCount(c) => ("stripe count", c.to_string()),
            LayoutError::StripeOffset { offset, .. } => ("stripe index", offset.to_string()),
        };
        LfsError::BadArg { what, value, reason: e.to_string() }
    })
}

async fn set_dir_default(c: &Client, cred: &Cred, dir: Fid, spec: StripeSpec) -> Result<(), LfsError> {
    c.md_as(cred.clone(), MdsRequest::SetDirStripe { fid: dir, stripe: spec }).await?;
    Ok(())
}

/// `lfs setstripe [-c] [-S] [-i] PATH` for a path inside the file system.
pub async fn setstripe(c: &Client, cred: &Cred, path: &str, spec: StripeSpec) -> Result<Outcome, LfsError> {
    check(&spec)?;
    match c.resolve(cred, path).await {
        Ok((attr, _)) if attr.is_dir() => {
            set_dir_default(c, cred, attr.fid, spec).await?;
            Ok(Outcome::DirDefault)
        }
        Ok(_) => Err(LfsError::Errno(Errno::EEXIST)),
        Err(e) if e.errno() == Errno::ENOENT => {
            let (parent, name) = split_parent(path)?;
            let (dir, _) = c.resolve(cred, parent).await?;
            if !dir.is_dir() {
                return Err(LfsError::Errno(Errno::ENOTDIR));
            }
            let mode = 0o644 & !process_umask();
            let (attr, layout) = c.create(cred, dir.fid, name, mode, spec, true).await?;
            Ok(Outcome::Created { attr, layout })
        }
        Err(e) => Err(e.into()),
    }
}

/// `lfs mkdir [-c] [-S] [-i] DIR`: a new directory whose files get that striping.
pub async fn mkdir(c: &Client, cred: &Cred, path: &str, spec: StripeSpec) -> Result<Attr, LfsError> {
    check(&spec)?;
    let (parent, name) = split_parent(path)?;
    let (dir, _) = c.resolve(cred, parent).await?;
    let attr = c.mkdir(cred, dir.fid, name, 0o777 & !process_umask()).await?;
    if spec != StripeSpec::default() {
        set_dir_default(c, cred, attr.fid, spec).await?;
    }
    Ok(attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        assert_eq!(split_parent("/a/b").unwrap(), ("/a", "b"));
        assert_eq!(split_parent("/b/").unwrap(), ("/", "b"));
        assert!(split_parent("/").is_err());
        assert!(split_parent("/a/..").is_err());
    }

    #[test]
    fn bad_specs_are_refused_before_any_rpc() {
        let e = check(&StripeSpec { stripe_size: Some(4096), ..Default::default() }).unwrap_err();
        assert_eq!(e.errno(), Errno::EINVAL);
        assert!(e.to_string().contains("not a positive multiple of 64 KiB"), "{e}");
        assert!(check(&StripeSpec { stripe_count: Some(-1), ..Default::default() }).is_ok());
    }
}
