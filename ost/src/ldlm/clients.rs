//! The clients that held locks on a target, kept on disk (Lustre keeps
//! them in `last_rcvd`), so that after a restart the target knows whom to
//! wait for before it grants new locks: until they have replayed theirs,
//! a new lock could be granted over a range one of them still has
//! gathered writes under.
//!
//! One line per client, `ADDR PID`, rewritten whole (a temporary file,
//! fsynced, renamed over the old one) whenever the set changes: once per
//! client per run, and when one leaves.

use fabric::ProcessId;
use std::collections::HashSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A client as it is known across its reconnections, over tcp or o2ib.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub addr: IpAddr,
    pub pid: u32,
}

impl From<ProcessId> for ClientKey {
    fn from(p: ProcessId) -> ClientKey {
        ClientKey { addr: p.nid.addr, pid: p.pid }
    }
}

/// The file of a target's lock holders.
pub struct ClientFile {
    path: PathBuf,
}

impl ClientFile {
    pub fn new(path: PathBuf) -> ClientFile {
        ClientFile { path }
    }

    /// The clients the file names; none if it does not exist. A line that
    /// does not parse is skipped with a warning: losing one client's
    /// replay is better than a target that will not start.
    pub fn load(&self) -> std::io::Result<HashSet<ClientKey>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|line| match parse(line) {
                Some(k) => Some(k),
                None => {
                    tracing::warn!(file = %self.path.display(), line, "skipping a malformed lock holder");
                    None
                }
            })
            .collect())
    }

    /// Replaces the file's contents with `clients`, durably.
    pub fn save(&self, clients: &HashSet<ClientKey>) -> std::io::Result<()> {
        let mut text = String::new();
        for c in clients {
            text.push_str(&format!("{} {}\n", c.addr, c.pid));
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        sync_parent(&self.path)
    }
}

fn parse(line: &str) -> Option<ClientKey> {
    let (addr, pid) = line.trim().split_once(' ')?;
    Some(ClientKey { addr: addr.parse().ok()?, pid: pid.parse().ok()? })
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_survives_a_save_and_bad_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let f = ClientFile::new(dir.path().join("CLIENTS"));
        assert!(f.load().unwrap().is_empty(), "no file: nobody");
        let set: HashSet<ClientKey> = [
            ClientKey { addr: "10.1.0.5".parse().unwrap(), pid: 0x8000_1234 },
            ClientKey { addr: "::1".parse().unwrap(), pid: 7 },
        ]
        .into();
        f.save(&set).unwrap();
        assert_eq!(f.load().unwrap(), set);
        let mut text = std::fs::read_to_string(dir.path().join("CLIENTS")).unwrap();
        text.push_str("garbage\n10.0.0.1 notapid\n\n");
        std::fs::write(dir.path().join("CLIENTS"), text).unwrap();
        assert_eq!(f.load().unwrap(), set);
        f.save(&HashSet::new()).unwrap();
        assert!(f.load().unwrap().is_empty());
    }
}
