//! A whole file system inside the benchmark process: the MGS/MDS and one
//! OSS per OST, each on a loopback address of its own, over directories
//! the benchmark chose (a disk, a tmpfs).

use anyhow::{Context, Result};
use fabric::Nid;
use mds::{Mds, MdsConfig, MdsHandle};
use ost::{ObjectStore, Oss, OssConfig, OssHandle, TargetConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const FSNAME: &str = "bench";

pub struct BenchFs {
    pub mgs: Nid,
    pub mds: MdsHandle,
    pub osses: Vec<OssHandle>,
}

/// A loopback address of its own (the whole of 127/8 is loopback), so the
/// servers of a benchmark never meet those of a test running beside it.
pub fn loopback_nid() -> Result<Nid> {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte array it is given.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
    if n != b.len() as isize {
        return Err(std::io::Error::last_os_error()).context("getrandom");
    }
    Ok(format!("127.{}.{}.{}@tcp", b[0], b[1], b[2].max(2)).parse()?)
}

impl BenchFs {
    /// Formats an MDT in `mdt_dir` and one OST in each of `ost_dirs` (all
    /// created if missing), and starts their servers.
    pub async fn start(mdt_dir: &Path, ost_dirs: &[PathBuf]) -> Result<BenchFs> {
        mds::format(mdt_dir, FSNAME)
            .with_context(|| format!("formatting an MDT in {}", mdt_dir.display()))?;
        let mgs = loopback_nid()?;
        let cfg = MdsConfig {
            dir: mdt_dir.to_path_buf(),
            nid: mgs,
            port: fabric::tcp::DEFAULT_PORT,
            metrics: None,
            root_squash: None,
        };
        let mds = Mds::start(cfg).await.context("starting the MDS")?;
        let mut osses = Vec::new();
        for (index, dir) in ost_dirs.iter().enumerate() {
            let index = index as u32;
            ObjectStore::format(dir, FSNAME, index)
                .with_context(|| format!("formatting OST {index} in {}", dir.display()))?;
            let cfg =
                OssConfig::new(FSNAME, loopback_nid()?, mgs, vec![TargetConfig { dir: dir.clone(), index }]);
            osses.push(Oss::start(cfg).await.with_context(|| format!("starting the OSS of OST {index}"))?);
        }
        Ok(BenchFs { mgs, mds, osses })
    }

    /// `MGSNID:/FSNAME`, for `Client::mount`.
    pub fn spec(&self) -> String {
        format!("{}:/{}", self.mgs, FSNAME)
    }

    /// Operations the OSTs have served so far, of every kind.
    fn ost_ops(&self) -> u64 {
        self.osses
            .iter()
            .flat_map(|o| {
                o.oss
                    .targets()
                    .map(|(_, t)| t.stats.ops.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Waits until the servers' background work (the MDS refilling its
    /// pools of precreated objects, draining the destroy log) has stopped,
    /// at most `limit`: it syncs the disk, and a local yardstick run
    /// beside it would be measured against that.
    pub async fn settle(&self, limit: Duration) {
        let end = Instant::now() + limit;
        let mut last = self.ost_ops();
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.ost_ops();
            if now == last {
                return;
            }
            last = now;
        }
    }

    pub fn shutdown(&self) {
        for o in &self.osses {
            o.endpoint.shutdown();
        }
        self.mds.endpoint.shutdown();
    }
}

/// What kind of file system holds `dir` (`ext4`, `tmpfs`, ...), for the
/// report.
pub fn fs_type(dir: &Path) -> String {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in table.lines() {
        let mut f = l.split(' ');
        let (Some(_src), Some(at), Some(kind)) = (f.next(), f.next(), f.next()) else { continue };
        if canon.starts_with(at) && best.as_ref().is_none_or(|(n, _)| at.len() >= *n) {
            best = Some((at.len(), kind.to_string()));
        }
    }
    best.map(|(_, k)| k).unwrap_or_else(|| "unknown".to_string())
}
