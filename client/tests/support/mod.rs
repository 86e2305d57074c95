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
    /// What each OSS was started with, to start it again.
    pub oss_configs: Vec<OssConfig>,
}

/// Waits until the MDS has precreated objects on OSTs `0..osts`. It
/// learns of each OST from the MGS and precreates in the background: until
/// then a new file gets fewer stripes than a test asks for.
pub async fn objects_on_every_ost(mds: &MdsHandle, osts: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while (0..osts).any(|i| mds.mds.mdt().pools().available(i) == 0) {
        assert!(std::time::Instant::now() < deadline, "the MDS has no objects on some OST after 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
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
        TestFs::start_with(osts, parent, |_| {}).await
    }

    /// As `start_in`, with `tweak` applied to every OSS's configuration.
    pub async fn start_with(osts: u32, parent: &std::path::Path, tweak: impl Fn(&mut OssConfig)) -> TestFs {
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
        let mut fs = TestFs { dir, mgs, mds, osses: Vec::new(), oss_configs: Vec::new() };
        for _ in 0..osts {
            fs.add_oss(&tweak).await;
        }
        objects_on_every_ost(&fs.mds, osts).await;
        fs
    }

    /// Formats the next OST and starts an OSS for it, which registers with
    /// the MGS; the MDS has precreated nothing there yet when this returns.
    pub async fn add_oss(&mut self, tweak: impl Fn(&mut OssConfig)) -> u32 {
        let index = self.osses.len() as u32;
        let odir = self.ost_dir(index);
        std::fs::create_dir_all(&odir).unwrap();
        ObjectStore::format(&odir, FSNAME, index).unwrap();
        let mut cfg = OssConfig::new(FSNAME, unique_nid(), self.mgs, vec![TargetConfig { dir: odir, index }]);
        cfg.buffers = 8;
        cfg.io_threads = 2;
        tweak(&mut cfg);
        self.osses.push(Oss::start(cfg.clone()).await.unwrap());
        self.oss_configs.push(cfg);
        index
    }

    /// `MGSNID:/FSNAME`, for `Client::mount`.
    pub fn spec(&self) -> String {
        format!("{}:/{}", self.mgs, FSNAME)
    }

    /// Where OST `index` keeps its objects.
    pub fn ost_dir(&self, index: u32) -> PathBuf {
        self.dir.path().join(format!("ost{index}"))
    }

    /// Stops OSS `i` and starts it again on the same address and targets,
    /// as after a crash: it knows no lock it granted before.
    pub async fn restart_oss(&mut self, i: usize) {
        self.osses[i].endpoint.shutdown();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        self.osses[i] = loop {
            match Oss::start(self.oss_configs[i].clone()).await {
                Ok(h) => break h,
                // The old listener may take a moment to let the port go.
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("restarting OSS {i}: {e}; again");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot restart OSS {i}: {e}"),
            }
        };
    }

    pub fn shutdown(&self) {
        for o in &self.osses {
            o.endpoint.shutdown();
        }
        self.mds.endpoint.shutdown();
    }
}
