//! The local run directory: every glint process (MDS, OSS, mount) writes
//! `<pid>.<n>.toml` there naming its kind, file system and control socket
//! `<pid>.<n>.sock` (`n` counts the registrations of one process: a
//! program linking the client library may mount twice), so `lctl` on the same node finds them all, as Lustre's
//! lctl finds the node's devices under /sys/fs/lustre. The files go at a
//! clean exit; a process killed outright leaves them, and they are
//! ignored and removed once its pid is gone.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The run directory: `$GLINT_RUN_DIR`, else `/run/glint` for root, else
/// `$XDG_RUNTIME_DIR/glint`, else `/tmp/glint-UID`.
pub fn run_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GLINT_RUN_DIR") {
        return PathBuf::from(d);
    }
    // SAFETY: a plain getter.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/glint");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("glint"),
        None => PathBuf::from(format!("/tmp/glint-{uid}")),
    }
}

/// What a process says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub pid: u32,
    /// `mds`, `oss` or `client`.
    pub kind: String,
    pub fsname: String,
    pub socket: PathBuf,
}

/// This process's entry; dropping it removes the files.
pub struct Registered {
    record: PathBuf,
    socket: PathBuf,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.record);
        let _ = fs::remove_file(&self.socket);
    }
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Registers this process in `dir` and binds its control socket there.
pub fn register(
    dir: &Path,
    kind: &str,
    fsname: &str,
) -> io::Result<(Registered, std::os::unix::net::UnixListener)> {
    fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("creating run directory {}: {e}", dir.display())))?;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let pid = std::process::id();
    let stem = format!("{pid}.{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let socket = dir.join(format!("{stem}.sock"));
    // A file left by an earlier process that had our pid.
    let _ = fs::remove_file(&socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket)
        .map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", socket.display())))?;
    // Only this process's user may read or change its parameters.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))?;
    let record = dir.join(format!("{stem}.toml"));
    let reg =
        Registration { pid, kind: kind.to_string(), fsname: fsname.to_string(), socket: socket.clone() };
    let text = toml::to_string(&reg).map_err(io::Error::other)?;
    // Written whole under a temporary name, so a reader never sees half.
    let tmp = dir.join(format!(".{stem}.toml.tmp"));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &record)?;
    tracing::debug!(record = %record.display(), "registered for lctl");
    Ok((Registered { record, socket }, listener))
}

/// The live registrations in `dir`, by pid; entries of processes
/// that are gone are removed.
pub fn live(dir: &Path) -> Vec<Registration> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else { continue };
        let reg: Registration = match toml::from_str(&text) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "ignoring a damaged run file");
                continue;
            }
        };
        if alive(reg.pid) {
            out.push(reg);
        } else {
            tracing::debug!(pid = reg.pid, "removing the run files of a process that is gone");
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(&reg.socket);
        }
    }
    out.sort_by(|a, b| (a.pid, &a.socket).cmp(&(b.pid, &b.socket)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_lists_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, _listener) = register(dir.path(), "oss", "fs1").unwrap();
        let (second, _l2) = register(dir.path(), "client", "fs1").unwrap();
        assert_eq!(live(dir.path()).len(), 2, "two registrations of one process");
        drop(second);
        let found = live(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind.as_str(), found[0].pid), ("oss", std::process::id()));
        assert!(found[0].socket.exists());
        drop(reg);
        assert!(live(dir.path()).is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn entries_of_dead_processes_go() {
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum is never alive.
        let dead = Registration {
            pid: 1 << 30,
            kind: "client".into(),
            fsname: "x".into(),
            socket: dir.path().join("1.sock"),
        };
        fs::write(dir.path().join("1073741824.0.toml"), toml::to_string(&dead).unwrap()).unwrap();
        fs::write(&dead.socket, "").unwrap();
        fs::write(dir.path().join("junk.toml"), "not = [toml").unwrap();
        assert!(live(dir.path()).is_empty());
        assert!(!dir.path().join("1073741824.0.toml").exists());
        assert!(!dead.socket.exists());
    }
}
