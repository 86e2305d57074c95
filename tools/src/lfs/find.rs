//! `lfs find`: walks a tree by readdir on the MDS and prints the paths
//! that match every test given. Tests that need more than the directory
//! entry (layout, size, mtime) fetch it only for entries that passed the
//! cheap ones; size and mtime of files come from their objects, as stat
//! would report them.

use super::error::LfsError;
use super::sizes::Bound;
use client::Client;
use proto::{Attr, Cred, Fid, Layout, Timestamp};
use std::ffi::CString;

/// `--type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

impl Kind {
    pub fn parse(s: &str) -> Result<Kind, LfsError> {
        match s {
            "f" => Ok(Kind::File),
            "d" => Ok(Kind::Dir),
            "l" => Ok(Kind::Symlink),
            _ => Err(LfsError::BadArg { what: "type", value: s.into(), reason: "expected f, d or l".into() }),
        }
    }

    fn mode_bits(self) -> u32 {
        match self {
            Kind::File => libc::S_IFREG,
            Kind::Dir => libc::S_IFDIR,
            Kind::Symlink => libc::S_IFLNK,
        }
    }
}

/// Every test of one `lfs find`; unset tests pass.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub kind: Option<Kind>,
    /// A shell glob on the last name (`--name`).
    pub name: Option<String>,
    pub stripe_count: Option<Bound>,
    /// Bytes.
    pub size: Option<Bound>,
    /// Whole days since the last modification, as find(1) counts them.
    pub mtime_days: Option<Bound>,
    /// Files with an object on this OST (`--ost`).
    pub ost: Option<u32>,
}

impl Query {
    fn needs_layout(&self) -> bool {
        self.stripe_count.is_some() || self.ost.is_some()
    }

    fn needs_full_attr(&self) -> bool {
        self.size.is_some() || self.mtime_days.is_some()
    }
}

/// fnmatch(3), so globs mean what they mean to find(1).
fn glob_matches(pattern: &str, name: &str) -> bool {
    match (CString::new(pattern), CString::new(name)) {
        // SAFETY: both are NUL-terminated strings that outlive the call.
        (Ok(p), Ok(n)) => unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), 0) == 0 },
        _ => false,
    }
}

fn days_since(now: Timestamp, then: Timestamp) -> u64 {
    (now.sec.saturating_sub(then.sec)).max(0) as u64 / 86_400
}

struct Entry {
    /// Below the start, `""` for the start itself.
    suffix: String,
    name: String,
    fid: Fid,
    kind: u32,
}

/// Whether the entry passes every test; fetches what the tests need.
async fn passes(c: &Client, cred: &Cred, e: &Entry, q: &Query, now: Timestamp) -> Result<bool, LfsError> {
    if q.kind.is_some_and(|k| k.mode_bits() != e.kind) {
        return Ok(false);
    }
    if q.name.as_ref().is_some_and(|p| !glob_matches(p, &e.name)) {
        return Ok(false);
    }
    if !q.needs_layout() && !q.needs_full_attr() {
        return Ok(true);
    }
    let (attr, layout): (Attr, Option<Layout>) =
        if q.needs_full_attr() { c.getattr(cred, e.fid).await? } else { c.getattr_md(cred, e.fid).await? };
    if q.needs_layout() {
        let Some(layout) = layout.as_ref().filter(|_| attr.is_reg()) else { return Ok(false) };
        if let Some(b) = q.stripe_count {
            let count = layout.raid0().map(|r| r.objects.len()).unwrap_or(0) as u64;
            if !b.matches(count) {
                return Ok(false);
            }
        }
        if q.ost.is_some_and(|idx| !layout.objects().any(|o| o.ost_idx == idx)) {
            return Ok(false);
        }
    }
    if q.size.is_some_and(|b| !b.matches(attr.size)) {
        return Ok(false);
    }
    if q.mtime_days.is_some_and(|b| !b.matches(days_since(now, attr.mtime))) {
        return Ok(false);
    }
    Ok(true)
}

/// The paths below (and including) `start` that match, each as the part
/// after `start` (`""` for the start itself, `/a/b` below it), in
/// directory order, parents before their entries.
pub async fn find(
    c: &Client,
    cred: &Cred,
    start: &str,
    q: &Query,
    now: Timestamp,
) -> Result<Vec<String>, LfsError> {
    let (attr, _) = c.resolve(cred, start).await?;
    let name = start.trim_end_matches('/').rsplit('/').next().unwrap_or("").to_string();
    let mut stack = vec![Entry { suffix: String::new(), name, fid: attr.fid, kind: attr.kind() }];
    let mut out = Vec::new();
    while let Some(e) = stack.pop() {
        if passes(c, cred, &e, q, now).await? {
            out.push(e.suffix.clone());
        }
        if e.kind == libc::S_IFDIR {
            let entries = c.readdir_all(cred, e.fid).await?;
            for d in entries.into_iter().rev().filter(|d| d.name != "." && d.name != "..") {
                stack.push(Entry {
                    suffix: format!("{}/{}", e.suffix, d.name),
                    name: d.name,
                    fid: d.fid,
                    kind: d.kind,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_fnmatch() {
        assert!(glob_matches("*.dat", "a.dat"));
        assert!(!glob_matches("*.dat", "a.dat.bak"));
        assert!(glob_matches("f[0-9]", "f7"));
        assert!(!glob_matches("a\0", "a"));
    }

    #[test]
    fn whole_days() {
        let now = Timestamp { sec: 10 * 86_400 + 5, nsec: 0 };
        assert_eq!(days_since(now, Timestamp { sec: 86_400 * 3, nsec: 0 }), 7);
        assert_eq!(
            days_since(now, Timestamp { sec: now.sec + 100, nsec: 0 }),
            0,
            "future mtimes are 0 days old"
        );
        assert!(Kind::parse("x").is_err());
    }
}
