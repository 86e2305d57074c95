//! A whole file system in this process for tests: an MGS/MDS and OSSs,
//! each on a loopback address of its own (so tests run in parallel), over
//! temporary directories.

#![allow(dead_code)]

use fabric::Nid;
use mds::{Mds, MdsConfig, MdsHandle};
use ost::{ObjectStore, Oss, OssConfig, OssHandle, TargetConfig};
use std::path::PathBuf;

pub const FSNAME: &str = "testfs";

pub struct TestFs {
    pub dir: tempfile::TempDir,
    pub mgs: Nid,
    pub mds: MdsHandle,
    pub osses: Vec<OssHandle>,
}

/// A loopback address no other test uses.
pub fn unique_nid() -> Nid {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte array.
    unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 3, 0) };
    format!("127.{}.{}.{}@tcp", b[0], b[1], b[2].max(2)).parse().unwrap()
}

impl TestFs {
    /// Formats and starts a file system with `osts` OSTs, one OSS each.
    pub async fn start(osts: u32) -> TestFs {
        TestFs::start_in(osts, &std::env::temp_dir()).await
    }

    /// As `start`, with every target in a new directory under `parent`
    /// (e.g. a tmpfs).
    pub async fn start_in(osts: u32, parent: &std::path::Path) -> TestFs {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let mdt_dir = dir.path().join("mdt");
        mds::format(&mdt_dir, FSNAME).unwrap();
        let mgs = unique_nid();
        let mds = Mds::start(MdsConfig {
            dir: mdt_dir,
            nid: mgs,
            port: fabric::tcp::DEFAULT_PORT,
            metrics: None,
            root_squash: None,
        })
        .await
        .unwrap();
        let mut osses = Vec::new();
        for index in 0..osts {
            let odir = dir.path().join(format!("ost{index}"));
            std::fs::create_dir_all(&odir).unwrap();
            ObjectStore::format(&odir, FSNAME, index).unwrap();
            let mut cfg = OssConfig::new(FSNAME, unique_nid(), mgs, vec![TargetConfig { dir: odir, index }]);
            cfg.buffers = 8;
            cfg.io_threads = 2;
            osses.push(Oss::start(cfg).await.unwrap());
        }
        TestFs { dir, mgs, mds, osses }
    }

    /// `MGSNID:/FSNAME`, for `Client::mount`.
    pub fn spec(&self) -> String {
        format!("{}:/{}", self.mgs, FSNAME)
    }

    /// Where OST `index` keeps its objects.
    pub fn ost_dir(&self, index: u32) -> PathBuf {
        self.dir.path().join(format!("ost{index}"))
    }

    pub fn shutdown(&self) {
        for o in &self.osses {
            o.endpoint.shutdown();
        }
        self.mds.endpoint.shutdown();
    }
}
