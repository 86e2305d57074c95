//! What the store acknowledged survives kill -9 of the process. The test
//! re-runs its own binary as the child: with `GLINT_OST_CRASH_DIR` set, the
//! child writes, prints "acked", and waits to be killed.

mod common;

use common::{FS, INDEX, fid, pattern};
use ost::{AlignedBuf, ObjectStore};
use proto::Fid;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "GLINT_OST_CRASH_DIR";
const TEST_NAME: &str = "acknowledged_writes_survive_kill_9";

fn child(dir: &str) -> ! {
    let store = ObjectStore::open(dir.as_ref(), FS, INDEX).unwrap();
    let seq = Fid::ost_seq(INDEX);
    store.precreate(seq, 1, 64).unwrap();
    store.write(fid(1), 0, &pattern(300_000, 1), true).unwrap();
    store.write(fid(2), 8192, &AlignedBuf::from_slice(&pattern(1 << 20, 2)), true).unwrap();
    store.write(fid(3), 5, b"then synced", false).unwrap();
    store.sync(fid(3)).unwrap();
    store.create(fid(100)).unwrap();
    store.destroy(fid(64)).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "acked").unwrap();
    out.flush().unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    ObjectStore::format(dir.path(), FS, INDEX).unwrap();
    let mut kid = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(kid.stdout.take().unwrap()).lines();
    // libtest may print "test NAME ... " without a newline before the child's line.
    let acked = lines.any(|l| l.map(|l| l.trim_end().ends_with("acked")).unwrap_or(false));
    kid.kill().unwrap(); // SIGKILL
    let status = kid.wait().unwrap();
    assert!(acked, "the child never acknowledged (exit {status})");

    let store = ObjectStore::open(dir.path(), FS, INDEX).unwrap();
    let read = |oid, off, len| {
        let mut b = vec![0u8; len];
        let n = store.read(fid(oid), off, &mut b).unwrap();
        b.truncate(n);
        b
    };
    assert_eq!(read(1, 0, 400_000), pattern(300_000, 1));
    assert_eq!(read(2, 8192, 2 << 20), pattern(1 << 20, 2));
    assert_eq!(&read(3, 0, 100)[5..], b"then synced");
    assert_eq!(store.last_id(Fid::ost_seq(INDEX)).unwrap(), 100);
    assert_eq!(store.getattr(fid(100)).unwrap().size, 0);
    assert_eq!(store.getattr(fid(64)).unwrap_err().errno(), fabric::Errno::ENOENT);
}
