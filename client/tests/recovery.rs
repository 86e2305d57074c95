//! An OSS restart with locks held: the clients that held them replay them
//! in the OST's recovery window, before anyone is granted a new one, so
//! writes gathered before the restart land before writes made after it,
//! and are not refused. A client that does not come back loses its locks
//! when the window's time is up.

mod support;

use client::{Client, process_cred};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::TestFs;

fn fill(len: usize, byte: u8) -> Vec<u8> {
    (0..len).map(|i| byte ^ (i % 251) as u8).collect()
}

fn ost_stat(fs: &TestFs, f: impl Fn(&ost::ldlm::LdlmStats) -> u64) -> u64 {
    fs.osses.iter().flat_map(|o| o.oss.targets().map(|(_, t)| f(t.ldlm.stats())).collect::<Vec<_>>()).sum()
}

fn recovering(fs: &TestFs) -> bool {
    fs.osses.iter().any(|o| o.oss.targets().any(|(_, t)| t.ldlm.recovering()))
}

/// `lctl get_param obdfilter.*.recovery_status` of the one OST.
fn recovery_status(fs: &TestFs) -> String {
    fs.osses[0].oss.targets().map(|(_, t)| t.ldlm.recovery_status()).collect()
}

async fn start_with_window(window: Duration) -> TestFs {
    TestFs::start_with(1, &std::env::temp_dir(), |c| c.ldlm.recovery_window = window).await
}

/// A gathers a write, the OSS restarts, B writes the same range: A's bytes
/// (the older) must reach the object first, so the file ends with B's.
/// Without replay the restarted OST knew no lock of A's, granted B at once,
/// and A's close then wrote its older bytes over B's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_gathered_before_a_restart_land_before_writes_made_after() {
    let mut fs = start_with_window(Duration::from_secs(60)).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let w = a.open(&cred, "/replayed", new, 0o644).await.unwrap();
    w.pwrite(0, &fill(4096, 1)).await.unwrap();

    fs.restart_oss(0).await;
    let v = b.open(&cred, "/replayed", libc::O_WRONLY, 0).await.unwrap();
    v.pwrite(0, &fill(4096, 2)).await.unwrap();
    v.close().await.unwrap();
    // Refused (EIO) if A's lock was not replayed before the window closed.
    w.close().await.unwrap();

    let mut back = vec![0u8; 4096];
    let layout = b.resolve(&cred, "/replayed").await.unwrap().1.unwrap();
    assert_eq!(b.pread(&layout, 0, &mut back).await.unwrap(), 4096);
    assert!(back == fill(4096, 2), "the file holds A's older bytes, written after B's");
    assert!(ost_stat(&fs, |s| s.replayed.load(Ordering::Relaxed)) >= 1);
    assert_eq!(ost_stat(&fs, |s| s.stale_writes.load(Ordering::Relaxed)), 0);
    assert!(!recovering(&fs));
    let status = recovery_status(&fs);
    assert!(status.contains("status: COMPLETE") && status.contains("completed_clients: 1/1"), "{status}");
    fs.shutdown();
}

/// The restarted OST waits for the lock holders of its last run; one that
/// is gone is waited for until the window's time is up, then its locks are
/// gone and the others go on. A client that unmounted is not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_that_does_not_come_back_is_waited_for_until_the_window_ends() {
    let window = Duration::from_secs(3);
    let mut fs = start_with_window(window).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let gone = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let w = a.open(&cred, "/waited", new, 0o644).await.unwrap();
    w.pwrite(0, &fill(4096, 1)).await.unwrap();
    w.close().await.unwrap();
    // `gone` takes a lock, then unmounts: it is struck from the list.
    let r = gone.open(&cred, "/waited", libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(r.stat().await.unwrap().size, 4096);
    r.close().await.unwrap();
    gone.unmount().await.unwrap();
    // `a` holds a lock and dies.
    let r = a.open(&cred, "/waited", libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(r.stat().await.unwrap().size, 4096);
    a.endpoint().shutdown();

    fs.restart_oss(0).await;
    assert!(recovering(&fs), "the OST waits for the lock holders of its last run");
    let status = recovery_status(&fs);
    assert!(status.contains("status: RECOVERING") && status.contains("completed_clients: 0/1"), "{status}");
    let v = b.open(&cred, "/waited", libc::O_WRONLY, 0).await.unwrap();
    let write = tokio::spawn(async move {
        v.pwrite(0, &fill(4096, 2)).await.unwrap();
        v.close().await.unwrap();
    });
    // Finished first, recovering after: a write done while the window was
    // still open would show as both.
    loop {
        let finished = write.is_finished();
        let open = recovering(&fs);
        assert!(!(finished && open), "B's write ran inside the recovery window");
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    write.await.unwrap();
    assert!(!recovering(&fs));
    let status = recovery_status(&fs);
    assert!(status.contains("status: COMPLETE") && status.contains("completed_clients: 0/1"), "{status}");
    let layout = b.resolve(&cred, "/waited").await.unwrap().1.unwrap();
    let mut back = vec![0u8; 4096];
    assert_eq!(b.pread(&layout, 0, &mut back).await.unwrap(), 4096);
    assert!(back == fill(4096, 2));
    drop(r);
    fs.shutdown();
}

/// A lock on an object destroyed before the restart cannot be replayed
/// (the OST answers ENOENT); the client replays the rest and is done, so the
/// window closes then, not when its time is up (which would refuse the
/// writes gathered under the other locks).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_on_a_destroyed_object_does_not_hold_up_the_replay() {
    let mut fs = start_with_window(Duration::from_secs(120)).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let gone = a.open(&cred, "/gone", new, 0o644).await.unwrap();
    gone.pwrite(0, &fill(4096, 3)).await.unwrap();
    gone.close().await.unwrap();
    let layout = a.resolve(&cred, "/gone").await.unwrap().1.unwrap();
    let fid = layout.objects().next().unwrap().fid;
    a.ost(0, &proto::OstRequest::Destroy { fid }).await.unwrap();
    let w = a.open(&cred, "/kept", new, 0o644).await.unwrap();
    w.pwrite(0, &fill(4096, 1)).await.unwrap();

    fs.restart_oss(0).await;
    // Refused (EIO) had the window closed on its time.
    w.close().await.unwrap();
    let status = recovery_status(&fs);
    assert!(status.contains("status: COMPLETE") && status.contains("completed_clients: 1/1"), "{status}");
    fs.shutdown();
}
