//! The management service: which targets a file system has and the NIDs
//! they answer on. Servers register when they start; clients read it at
//! mount. The table lives in one file on the MGT, replaced atomically.

use fabric::Errno;
use fabric::rpc::{Request, Response, Service};
use proto::{FsConfig, MgsReply, MgsRequest, StripeSpec, TargetInfo, TargetKind, decode, encode};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

const FILE: &str = "mgs.conf";

pub struct Mgs {
    path: PathBuf,
    filesystems: Mutex<BTreeMap<String, FsConfig>>,
    /// Woken whenever a target is added or changes, so the MDS can start
    /// using a new OST at once.
    pub changed: tokio::sync::Notify,
}

#[derive(Debug, thiserror::Error)]
pub enum MgsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl MgsError {
    pub fn errno(&self) -> Errno {
        match self {
            MgsError::Read { source, .. } | MgsError::Write { source, .. } => Errno::from_io(source),
            MgsError::Damaged { .. } => Errno::EIO,
        }
    }
}

impl Mgs {
    /// Opens (or starts) the configuration stored under `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Mgs>, MgsError> {
        let path = dir.join(FILE);
        let filesystems = match std::fs::read(&path) {
            Ok(bytes) => decode::<BTreeMap<String, FsConfig>>("MGS configuration", &bytes)
                .map_err(|e| MgsError::Damaged { path: path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(MgsError::Read { path, source }),
        };
        Ok(Arc::new(Mgs { path, filesystems: Mutex::new(filesystems), changed: tokio::sync::Notify::new() }))
    }

    fn save(&self, all: &BTreeMap<String, FsConfig>) -> Result<(), MgsError> {
        let tmp = self.path.with_extension("tmp");
        let werr = |source| MgsError::Write { path: self.path.clone(), source };
        let mut f = std::fs::File::create(&tmp).map_err(werr)?;
        f.write_all(&encode(all)).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        std::fs::rename(&tmp, &self.path).map_err(werr)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(werr)?;
        }
        Ok(())
    }

    /// Adds or updates a target; the configuration version goes up when
    /// anything changed, so clients notice new OSTs.
    pub fn register(&self, fsname: &str, target: TargetInfo) -> Result<u64, MgsError> {
        let mut all = self.filesystems.lock().expect("mgs lock");
        let fs = all.entry(fsname.to_string()).or_insert_with(|| FsConfig {
            fsname: fsname.to_string(),
            mdt: None,
            osts: Vec::new(),
            default_stripe: StripeSpec::fs_default(),
            version: 0,
        });
        let changed = match target.kind {
            TargetKind::Mdt => {
                let changed = fs.mdt.as_ref() != Some(&target);
                fs.mdt = Some(target.clone());
                changed
            }
            TargetKind::Ost => match fs.osts.iter_mut().find(|t| t.index == target.index) {
                Some(t) if *t == target => false,
                Some(t) => {
                    *t = target.clone();
                    true
                }
                None => {
                    fs.osts.push(target.clone());
                    fs.osts.sort_by_key(|t| t.index);
                    true
                }
            },
        };
        if changed {
            fs.version += 1;
            let version = fs.version;
            self.save(&all)?;
            self.changed.notify_waiters();
            tracing::info!(fsname, target = %target.name(fsname), nids = ?target.nids, "target registered");
            return Ok(version);
        }
        Ok(fs.version)
    }

    pub fn config(&self, fsname: &str) -> Option<FsConfig> {
        self.filesystems.lock().expect("mgs lock").get(fsname).cloned()
    }
}

impl Service for Mgs {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            let r: MgsRequest = decode("MGS request", req.body()).map_err(|e| {
                tracing::warn!(peer = %req.from, error = %e, "bad MGS request");
                Errno::EPROTO
            })?;
            match r {
                MgsRequest::Register { fsname, target } => {
                    let version = self.register(&fsname, target).map_err(|e| e.errno())?;
                    Ok(encode(&MgsReply::Registered { version }))
                }
                MgsRequest::GetConfig { fsname } => match self.config(&fsname) {
                    Some(c) => Ok(encode(&MgsReply::Config(c))),
                    None => Err(Errno::ENOENT),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ost(index: u32, nid: &str) -> TargetInfo {
        TargetInfo { kind: TargetKind::Ost, index, nids: vec![nid.parse().unwrap()], metrics: None }
    }

    #[test]
    fn registers_persists_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mgs = Mgs::open(dir.path()).unwrap();
        assert_eq!(mgs.register("fs", ost(1, "127.0.0.2@tcp")).unwrap(), 1);
        assert_eq!(mgs.register("fs", ost(0, "127.0.0.3@tcp")).unwrap(), 2);
        assert_eq!(mgs.register("fs", ost(0, "127.0.0.3@tcp")).unwrap(), 2, "same target: no change");
        drop(mgs);
        let mgs = Mgs::open(dir.path()).unwrap();
        let c = mgs.config("fs").unwrap();
        assert_eq!(c.osts.iter().map(|t| t.index).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(c.version, 2);
        assert!(mgs.config("other").is_none());
        std::fs::write(dir.path().join(FILE), b"\xff\xff\xff").unwrap();
        assert!(matches!(Mgs::open(dir.path()), Err(MgsError::Damaged { .. })));
    }
}
