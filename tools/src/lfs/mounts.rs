//! Which glint mount holds a path: the `fuse.glint` entries of
//! /proc/self/mountinfo, whose source field is the mount spec
//! (`127.0.0.1@tcp:/glint`), and the path's place inside the mount.
//! Paths are made absolute lexically, without touching the file system,
//! so that a file `lfs setstripe` is about to create can be located too.

use super::error::LfsError;
use client::MountSpec;
use std::path::{Component, Path, PathBuf};

/// The file system type the FUSE mount reports.
pub const FSTYPE: &str = "fuse.glint";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlintMount {
    pub dir: PathBuf,
    /// The mountinfo source field, normally `MGSNID:/FSNAME`.
    pub source: String,
}

impl GlintMount {
    /// The spec to mount the file system through the client library.
    pub fn spec(&self) -> Result<MountSpec, LfsError> {
        self.source.parse().map_err(|_| LfsError::BadMountSource {
            dir: self.dir.display().to_string(),
            source_field: self.source.clone(),
        })
    }
}

/// A path resolved to its mount and its path inside the file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub mount: GlintMount,
    /// `/` for the mount's root, `/a/b` below it.
    pub rel: String,
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The glint mounts listed in a mountinfo text, in mount order.
pub fn parse_mountinfo(text: &str) -> Vec<GlintMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((head, tail)) = line.split_once(" - ") else { continue };
        let Some(dir) = head.split(' ').nth(4) else { continue };
        let mut tail = tail.split(' ');
        let (Some(fstype), Some(source)) = (tail.next(), tail.next()) else { continue };
        if fstype == FSTYPE {
            out.push(GlintMount { dir: PathBuf::from(unescape(dir)), source: unescape(source) });
        }
    }
    out
}

/// This process's glint mounts.
pub fn glint_mounts() -> Result<Vec<GlintMount>, LfsError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|source| LfsError::Io { what: "/proc/self/mountinfo".into(), source })?;
    Ok(parse_mountinfo(&text))
}

/// `path` made absolute against `cwd`, with `.` and `..` folded.
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let joined = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The innermost glint mount holding the absolute path `abs`.
pub fn locate_in(abs: &Path, mounts: &[GlintMount]) -> Option<Located> {
    let m = mounts.iter().filter(|m| abs.starts_with(&m.dir)).max_by_key(|m| m.dir.components().count())?;
    let below = abs.strip_prefix(&m.dir).ok()?;
    let rel = format!("/{}", below.to_string_lossy());
    Some(Located { mount: m.clone(), rel: if rel == "/" { rel } else { rel.trim_end_matches('/').into() } })
}

/// Locates a path given on the command line.
pub fn locate(path: &str, mounts: &[GlintMount]) -> Result<Located, LfsError> {
    let cwd = std::env::current_dir()
        .map_err(|source| LfsError::Io { what: "the current directory".into(), source })?;
    locate_in(&absolute(Path::new(path), &cwd), mounts).ok_or_else(|| LfsError::NotGlint(path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
97 22 0:52 / /mnt/glint rw,nosuid,nodev,relatime shared:60 - fuse.glint 127.0.0.1@tcp:/glint rw,user_id=0,group_id=0
98 22 0:53 / /mnt/with\\040space rw shared:61 - fuse.glint 10.0.0.1@o2ib:10.0.0.2@tcp:/scratch rw
99 97 0:54 / /mnt/glint/inner rw shared:62 - fuse.glint 127.0.0.2@tcp:/other rw
100 22 0:55 / /mnt/sshfs rw shared:63 - fuse.sshfs host:/x rw
";

    #[test]
    fn finds_glint_mounts_only() {
        let m = parse_mountinfo(INFO);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], GlintMount { dir: "/mnt/glint".into(), source: "127.0.0.1@tcp:/glint".into() });
        assert_eq!(m[1].dir, PathBuf::from("/mnt/with space"));
        assert_eq!(m[1].spec().unwrap().fsname, "scratch");
    }

    #[test]
    fn locates_innermost_mount() {
        let m = parse_mountinfo(INFO);
        let l = locate_in(Path::new("/mnt/glint/a/b"), &m).unwrap();
        assert_eq!((l.mount.dir.to_str().unwrap(), l.rel.as_str()), ("/mnt/glint", "/a/b"));
        let l = locate_in(Path::new("/mnt/glint"), &m).unwrap();
        assert_eq!(l.rel, "/");
        let l = locate_in(Path::new("/mnt/glint/inner/x"), &m).unwrap();
        assert_eq!((l.mount.source.as_str(), l.rel.as_str()), ("127.0.0.2@tcp:/other", "/x"));
        assert!(locate_in(Path::new("/mnt/glintx/a"), &m).is_none(), "prefix is by component");
        assert!(locate_in(Path::new("/mnt/sshfs/a"), &m).is_none());
    }

    #[test]
    fn absolute_folds_dots() {
        let cwd = Path::new("/mnt/glint/d");
        assert_eq!(absolute(Path::new("../e/./f"), cwd), PathBuf::from("/mnt/glint/e/f"));
        assert_eq!(absolute(Path::new("/x/../../y"), cwd), PathBuf::from("/y"));
        assert_eq!(absolute(Path::new("."), cwd), PathBuf::from("/mnt/glint/d"));
    }

    #[test]
    fn a_bad_source_is_reported() {
        let m = GlintMount { dir: "/m".into(), source: "glint".into() };
        assert!(matches!(m.spec(), Err(LfsError::BadMountSource { .. })));
    }
}
