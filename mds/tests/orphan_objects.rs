//! Objects the MDS precreated on an OST and never put in a layout do not
//! outlive it: an MDS killed with SIGKILL loses its pools, and when it
//! comes back it has the OST destroy every object above the highest one a
//! committed layout took, before it precreates anything there. The MDS
//! runs in a child process (this test binary again) so it can be killed
//! for real; the OST runs here, so its disk can be read.

use fabric::rpc::{Endpoint, EndpointConfig};
use fabric::{Nid, Pid, ProcessId};
use mds::{Mds, MdsConfig};
use ost::{ObjectStore, Oss, OssConfig, TargetConfig};
use proto::{
    Cred, Errno, Fid, MdsCall, MdsReply, MdsRequest, StripeObject, StripeSpec, decode, encode, portal,
};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FS: &str = "orphfs";
const CHILD_ENV: &str = "GLINT_MDS_ORPHAN_CHILD";

fn unique_nid() -> Nid {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte array.
    unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 3, 0) };
    format!("127.{}.{}.{}@tcp", b[0], b[1], b[2].max(2)).parse().unwrap()
}

/// The child: an MDS on the directory and NID it is given, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by orphan_objects_are_destroyed_after_the_mds_is_killed in a child process"]
async fn mds_child() {
    let arg = std::env::var(CHILD_ENV).expect("mds_child runs under the orphan test");
    let (dir, nid) = arg.split_once('|').unwrap();
    let cfg = MdsConfig {
        dir: PathBuf::from(dir),
        nid: nid.parse().unwrap(),
        port: fabric::tcp::DEFAULT_PORT,
        metrics: None,
        root_squash: None,
    };
    let _mds = Mds::start(cfg).await.unwrap();
    println!("serving");
    std::future::pending::<()>().await;
}

/// The MDS child process, killed (SIGKILL) when dropped, so a failing
/// test leaves none behind.
struct MdsProcess(Child);

impl MdsProcess {
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for MdsProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the MDS in a child process and waits until it serves.
fn start_mds(dir: &Path, nid: Nid) -> MdsProcess {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["mds_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{nid}", dir.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match out.next() {
            // The harness has printed `test mds_child ... ` on this line.
            Some(Ok(l)) if l.ends_with("serving") => break,
            Some(Ok(_)) => {}
            other => panic!("the MDS child stopped before serving: {other:?}"),
        }
    }
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in out {});
    MdsProcess(child)
}

struct Md {
    ep: Endpoint,
    mds: ProcessId,
}

impl Md {
    async fn call(&self, op: MdsRequest) -> Result<MdsReply, Errno> {
        let body = encode(&MdsCall { cred: Cred::root(), op: op.clone() });
        let r = self.ep.call(self.mds, portal::MDS, op.opcode(), &body).await.map_err(|e| e.errno())?;
        Ok(decode("MDS reply", r.body()).unwrap())
    }

    async fn create(&self, name: &str) -> Vec<StripeObject> {
        let op = MdsRequest::Create {
            parent: Fid::ROOT,
            name: name.into(),
            mode: libc::S_IFREG | 0o644,
            stripe: StripeSpec::default(),
            exclusive: true,
            open: None,
        };
        match self.call(op).await.unwrap() {
            MdsReply::Created { layout: Some(l), .. } => l.objects().copied().collect(),
            other => panic!("create {name}: {other:?}"),
        }
    }

    async fn unlink(&self, name: &str) {
        self.call(MdsRequest::Unlink { parent: Fid::ROOT, name: name.into() }).await.unwrap();
    }
}

/// The object ids of `seq` on the OST in `dir`, from its disk.
fn objects_on_disk(dir: &Path, seq: u64) -> BTreeSet<u32> {
    let seq_dir = dir.join(ost::paths::OBJECTS_DIR).join(format!("{seq:x}"));
    let mut out = BTreeSet::new();
    for sub in std::fs::read_dir(&seq_dir).unwrap() {
        let sub = sub.unwrap();
        if !sub.file_type().unwrap().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path()).unwrap() {
            out.insert(f.unwrap().file_name().to_str().unwrap().parse().unwrap());
        }
    }
    out
}

fn oids(objs: &[StripeObject]) -> BTreeSet<u32> {
    objs.iter().map(|o| o.fid.oid).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_objects_are_destroyed_after_the_mds_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mdt_dir, ost_dir) = (tmp.path().join("mdt"), tmp.path().join("ost0"));
    mds::format(&mdt_dir, FS).unwrap();
    ObjectStore::format(&ost_dir, FS, 0).unwrap();
    let seq = Fid::ost_seq(0);
    let nid = unique_nid();

    let child = start_mds(&mdt_dir, nid);
    let oss = Oss::start(OssConfig::new(
        FS,
        unique_nid(),
        nid,
        vec![TargetConfig { dir: ost_dir.clone(), index: 0 }],
    ))
    .await
    .unwrap();
    let store = oss.oss.targets().next().map(|(_, t)| t.store.clone()).unwrap();
    let md = Md {
        ep: Endpoint::start(EndpointConfig::client(unique_nid())).await.unwrap(),
        mds: ProcessId { nid, pid: Pid::SERVER },
    };
    md.call(MdsRequest::Connect { fsname: FS.into() }).await.unwrap();

    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for i in 0..20 {
        let objs = md.create(&format!("f{i}")).await;
        if i % 4 == 0 { gone.push((i, objs)) } else { kept.extend(objs) }
    }
    for (i, _) in &gone {
        md.unlink(&format!("f{i}")).await;
    }
    let gone: Vec<StripeObject> = gone.into_iter().flat_map(|(_, o)| o).collect();
    let used = oids(&kept).union(&oids(&gone)).copied().max().unwrap();
    assert!(store.last_id(seq).unwrap() > used, "the MDS had no precreated objects in its pool");

    child.kill(); // SIGKILL: the pool of precreated objects is lost
    let last_id = store.last_id(seq).unwrap();
    let child = start_mds(&mdt_dir, nid);

    // A create after the restart takes the first object precreated after
    // the cleanup; everything below it must be an object of a live file.
    let after = md.create("after").await;
    let first_new = after[0].fid.oid;
    // The old pool was destroyed, not taken up again: ids are not reused.
    assert!(first_new > last_id, "object {first_new} reused an id at or below LAST_ID {last_id}");
    let want = oids(&kept);
    let deadline = Instant::now() + Duration::from_secs(60);
    let below = loop {
        let below: BTreeSet<u32> =
            objects_on_disk(&ost_dir, seq).into_iter().filter(|o| *o < first_new).collect();
        // The destroy log is drained in the background.
        if below == want || Instant::now() > deadline {
            break below;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        below,
        want,
        "objects below {first_new}: leaked {:?}, missing {:?}",
        below.difference(&want).collect::<Vec<_>>(),
        want.difference(&below).collect::<Vec<_>>()
    );
    assert!(objects_on_disk(&ost_dir, seq).contains(&first_new));

    child.kill();
    md.ep.shutdown();
    oss.endpoint.shutdown();
}
