//! Extent locks and readahead against real servers: a client that reads
//! sequentially caches ahead under PR locks, and another client's write
//! or truncate calls its locks back before it lands, so the reader never
//! returns the old bytes; a client that cannot answer a callback is
//! evicted and the writer goes on.

mod support;

use client::{Client, process_cred};
use proto::{Layout, SetAttr, StripeSpec};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::TestFs;

const MIB: u64 = 1 << 20;
/// Readahead statistics count 4 KiB pages.
const PAGES_PER_MIB: u64 = 256;

fn fill(len: u64, byte: u8) -> Vec<u8> {
    (0..len).map(|i| byte ^ (i % 251) as u8).collect()
}

/// The objects of a file: two, or one when the file system was so new
/// that the MDS knew only one OST yet.
fn objects(layout: &Layout) -> usize {
    layout.raid0().unwrap().objects.len()
}

/// Two 1 MiB stripes.
fn two_stripes() -> StripeSpec {
    StripeSpec { stripe_count: Some(2), stripe_size: Some(MIB), stripe_offset: None }
}

/// A file of `len` bytes of `fill(len, 1)`, striped over two OSTs.
async fn file(c: &Arc<Client>, name: &str, len: u64) -> Layout {
    let spec = two_stripes();
    let (_, layout) = c.create(&process_cred(), c.root(), name, 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    c.pwrite(&layout, 0, &fill(len, 1), false).await.unwrap();
    layout
}

/// Reads `[from, to)` in 1 MiB calls, checking each against `fill(_, 1)`.
async fn read_along(c: &Arc<Client>, layout: &Layout, from: u64, to: u64, whole: &[u8]) {
    let mut buf = vec![0u8; MIB as usize];
    let mut off = from;
    while off < to {
        let n = c.pread(layout, off, &mut buf).await.unwrap();
        assert_eq!(n, MIB as usize);
        assert!(buf[..] == whole[off as usize..(off + MIB) as usize], "bytes at {off}");
        off += MIB;
    }
}

/// Waits (10 s at most) until `c` caches more than `bytes`: the window
/// after the one being read lands while the reader goes on.
async fn cached_beyond(c: &Arc<Client>, bytes: u64) -> bool {
    let start = std::time::Instant::now();
    while c.cached_bytes() as u64 <= bytes {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn ost_locks(fs: &TestFs) -> usize {
    fs.osses.iter().flat_map(|o| o.oss.targets().map(|(_, t)| t.ldlm.lock_count()).collect::<Vec<_>>()).sum()
}

fn ost_stat(fs: &TestFs, f: impl Fn(&ost::ldlm::LdlmStats) -> u64) -> u64 {
    fs.osses.iter().flat_map(|o| o.oss.targets().map(|(_, t)| f(t.ldlm.stats())).collect::<Vec<_>>()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_from_another_client_reaches_a_reader_with_a_cache() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let len = 32 * MIB;
    let layout = file(&a, "shared", len).await;
    let whole = fill(len, 1);

    // A reads the first 8 MiB sequentially: readahead caches past it.
    read_along(&a, &layout, 0, 8 * MIB, &whole).await;
    let ra = a.read_ahead_stats();
    assert!(ra.windows.load(Ordering::Relaxed) >= 2, "{ra:?}");
    assert!(ra.hits.load(Ordering::Relaxed) >= 4 * PAGES_PER_MIB, "{ra:?}");
    assert!(cached_beyond(&a, 8 * MIB).await, "cached ahead: {}", a.cached_bytes());
    assert!(a.lock_count() >= objects(&layout) && ost_locks(&fs) >= objects(&layout));

    // B overwrites a range A cached (A's next window) and a range beyond.
    let new = fill(2 * MIB, 9);
    b.pwrite(&layout, 9 * MIB, &new, false).await.unwrap();
    assert!(a.lock_stats().callbacks.load(Ordering::Relaxed) >= 1, "A's lock was called back");
    assert!(ost_stat(&fs, |s| s.callbacks.load(Ordering::Relaxed)) >= 1);

    let mut buf = vec![0u8; 2 * MIB as usize];
    assert_eq!(a.pread(&layout, 9 * MIB, &mut buf).await.unwrap(), buf.len());
    assert!(buf == new, "A reads B's bytes, not its cache");
    // And its untouched bytes are still right.
    read_along(&a, &layout, 11 * MIB, 16 * MIB, &whole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncate_from_another_client_reaches_a_reader_with_a_cache() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let len = 24 * MIB;
    let layout = file(&a, "cut", len).await;
    let whole = fill(len, 1);
    read_along(&a, &layout, 0, 6 * MIB, &whole).await;
    // Reads 2 to 6 waited for the first window and were served from it.
    assert!(a.read_ahead_stats().hits.load(Ordering::Relaxed) >= 4 * PAGES_PER_MIB);
    assert!(cached_beyond(&a, 0).await);

    let fid = b.resolve(&process_cred(), "/cut").await.unwrap().0.fid;
    let size = 7 * MIB + 4096;
    b.setattr(&process_cred(), fid, SetAttr { size: Some(size), ..Default::default() }).await.unwrap();
    assert!(a.lock_stats().callbacks.load(Ordering::Relaxed) >= 1);

    let mut buf = vec![0u8; MIB as usize];
    assert_eq!(a.pread(&layout, 6 * MIB, &mut buf).await.unwrap(), MIB as usize);
    assert!(buf[..] == whole[6 * MIB as usize..7 * MIB as usize]);
    assert_eq!(a.pread(&layout, 7 * MIB, &mut buf).await.unwrap(), 4096, "A sees the new end of file");
    assert_eq!(a.pread(&layout, 9 * MIB, &mut buf).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_share_their_locks_and_a_writers_own_cache_follows_its_writes() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let len = 16 * MIB;
    let layout = file(&a, "both", len).await;
    let whole = fill(len, 1);
    read_along(&a, &layout, 0, 6 * MIB, &whole).await;
    read_along(&b, &layout, 0, 6 * MIB, &whole).await;
    // PR locks of two clients share the objects: nobody was called back.
    assert_eq!(a.lock_stats().callbacks.load(Ordering::Relaxed), 0);
    assert_eq!(b.lock_stats().callbacks.load(Ordering::Relaxed), 0);
    assert!(ost_locks(&fs) >= 2 * objects(&layout));

    // A writes into what it cached itself: its own lock stays, its cache follows.
    let new = fill(MIB, 5);
    a.pwrite(&layout, 7 * MIB, &new, false).await.unwrap();
    let mut buf = vec![0u8; MIB as usize];
    a.pread(&layout, 7 * MIB, &mut buf).await.unwrap();
    assert!(buf == new);
    // B's locks went for A's write; B reads A's bytes.
    assert!(b.lock_stats().callbacks.load(Ordering::Relaxed) >= 1);
    b.pread(&layout, 7 * MIB, &mut buf).await.unwrap();
    assert!(buf == new);

    a.cancel_locks().await.unwrap();
    assert_eq!(a.lock_count(), 0);
    assert_eq!(a.cached_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readahead_stops_at_the_end_of_each_object() {
    let fs = TestFs::start(2).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    // 1.5 stripes: object 0 holds 1 MiB, object 1 half of one.
    let len = MIB + MIB / 2;
    let layout = file(&c, "short", len).await;
    let whole = fill(len, 1);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    // Up to the end, not past it: a read at the end asks the OSTs, rightly.
    while (got.len() as u64) < len {
        let n = c.pread(&layout, got.len() as u64, &mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == whole);
    assert!(c.read_ahead_stats().windows.load(Ordering::Relaxed) > 0, "the 4 KiB reads were read ahead");
    // Every read an OST served brought bytes: none was for a block past
    // the end of its object, which the grant's size rules out.
    for o in &fs.osses {
        for (_, t) in o.oss.targets() {
            let r = t.stats.read.summary();
            assert!(r.count == 0 || r.min > 0, "{} reads, the smallest {} bytes", r.count, r.min);
        }
    }
}

/// Read RPCs `c` has sent to `ost`.
fn reads_from(c: &Client, ost: u32) -> u64 {
    c.rpc_stats(ost).map(|s| s.read.iter().sum()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_past_the_size_a_lock_holds_ask_nothing_and_growth_is_seen() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let layout = file(&a, "small", 5000).await;
    // b's stat takes PR locks over both objects; their grants say the size.
    let (fid, osts) = (layout.raid0().unwrap().objects[0].fid, [0, 1]);
    assert_eq!(b.getattr(&cred, fid_of(&b, "small").await).await.unwrap().0.size, 5000);
    let before: u64 = osts.iter().map(|o| reads_from(&b, *o)).sum();
    let mut buf = vec![0u8; 128 << 10];
    assert_eq!(b.pread(&layout, 0, &mut buf).await.unwrap(), 5000);
    assert!(buf[..5000] == fill(5000, 1)[..]);
    assert_eq!(b.pread(&layout, 5000, &mut buf).await.unwrap(), 0);
    assert_eq!(b.pread(&layout, 1 << 30, &mut buf).await.unwrap(), 0);
    let after: u64 = osts.iter().map(|o| reads_from(&b, *o)).sum();
    assert_eq!(after - before, 1, "one read RPC for the bytes, none past the end ({fid})");
    // a grows the file: b's locks are called back first, so b reads on.
    a.pwrite(&layout, 5000, b"more", false).await.unwrap();
    assert_eq!(b.pread(&layout, 5000, &mut buf).await.unwrap(), 4);
    assert_eq!(&buf[..4], b"more");
    fs.shutdown();
}

async fn fid_of(c: &Client, name: &str) -> proto::Fid {
    c.resolve(&process_cred(), &format!("/{name}")).await.unwrap().0.fid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_reads_are_not_read_ahead() {
    let fs = TestFs::start(2).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let len = 64 * MIB;
    let layout = file(&c, "random", len).await;
    let mut buf = vec![0u8; 4096];
    let mut x = 0x9e37_79b9u64;
    for _ in 0..100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = (x % (len / 4096)) * 4096;
        c.pread(&layout, off, &mut buf).await.unwrap();
    }
    let ra = c.read_ahead_stats();
    assert_eq!(ra.windows.load(Ordering::Relaxed), 0, "{ra:?}");
    assert_eq!(ra.hits.load(Ordering::Relaxed), 0, "{ra:?}");
    assert_eq!(c.cached_bytes(), 0);
    assert_eq!(c.lock_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readahead_off_caches_nothing() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    c.set_max_read_ahead_mb(0).unwrap();
    let spec = StripeSpec { stripe_count: Some(1), stripe_size: Some(MIB), stripe_offset: None };
    let (_, layout) = c.create(&process_cred(), c.root(), "plain", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    let whole = fill(8 * MIB, 1);
    c.pwrite(&layout, 0, &whole, false).await.unwrap();
    read_along(&c, &layout, 0, 8 * MIB, &whole).await;
    assert_eq!(c.cached_bytes(), 0);
    assert_eq!(c.lock_count(), 0);
    assert!(c.set_max_read_ahead_per_file_mb(1).is_err(), "the per-file window fits in the whole");
}

/// A file system whose OSTs give lock holders `timeout` to answer.
async fn start_with_callback_timeout(osts: u32, timeout: Duration) -> TestFs {
    TestFs::start_with(osts, &std::env::temp_dir(), |c| c.ldlm.callback_timeout = timeout).await
}

/// Two clients of a file system whose OSTs evict after 2 s, and a 16 MiB
/// file `name` whose first 4 MiB client A has read (so holds locks on).
async fn a_reader_with_locks_and_a_writer(name: &str) -> (TestFs, Arc<Client>, Arc<Client>, Layout) {
    let fs = start_with_callback_timeout(2, Duration::from_secs(2)).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let len = 16 * MIB;
    let layout = file(&a, name, len).await;
    read_along(&a, &layout, 0, 4 * MIB, &fill(len, 1)).await;
    (fs, a, b, layout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_that_cannot_answer_is_evicted_and_the_writer_goes_on() {
    let (fs, a, b, layout) = a_reader_with_locks_and_a_writer("gone").await;
    assert!(ost_locks(&fs) >= objects(&layout));

    // A's process is gone as far as the OSTs can tell: nothing answers.
    a.endpoint().shutdown();
    let new = fill(4 * MIB, 7);
    b.pwrite(&layout, 2 * MIB, &new, false).await.unwrap();
    assert!(ost_stat(&fs, |s| s.evictions.load(Ordering::Relaxed)) >= 1);
    assert_eq!(ost_locks(&fs), 0, "the evicted client's locks are gone");
    let mut buf = vec![0u8; 4 * MIB as usize];
    b.pread(&layout, 2 * MIB, &mut buf).await.unwrap();
    assert!(buf == new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_evicted_while_alive_reads_what_was_written_after() {
    let (fs, a, b, layout) = a_reader_with_locks_and_a_writer("cutoff").await;
    assert!(cached_beyond(&a, 2 * MIB - 1).await, "A caches what it read ahead");

    // A runs on, but the callbacks for its locks never reach it: the OST
    // evicts it, and A must not serve the bytes B then writes from its
    // cache.
    a.lose_lock_callbacks(u32::MAX);
    let new = fill(2 * MIB, 9);
    b.pwrite(&layout, 2 * MIB, &new, false).await.unwrap();
    assert!(ost_stat(&fs, |s| s.evictions.load(Ordering::Relaxed)) >= 1);
    // A learns of it when it sees the OSS drop the connection (its reader
    // may not have run yet on a busy machine).
    let seen = std::time::Instant::now();
    while a.endpoint().tcp().stats().disconnects.load(Ordering::Relaxed) == 0 {
        assert!(seen.elapsed() < Duration::from_secs(30), "A never saw the evicting OSS drop its connection");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hits = a.read_ahead_stats().hits.load(Ordering::Relaxed);
    let mut buf = vec![0u8; 2 * MIB as usize];
    assert_eq!(a.pread(&layout, 2 * MIB, &mut buf).await.unwrap(), 2 * MIB as usize);
    assert!(buf == new, "A read what B wrote after A was evicted");
    assert_eq!(a.read_ahead_stats().hits.load(Ordering::Relaxed), hits, "not from A's cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_connection_to_an_ost_drops_the_locks_and_cache_of_its_objects() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let len = 16 * MIB;
    let layout = file(&a, "flap", len).await;
    let whole = fill(len, 1);
    read_along(&a, &layout, 0, 6 * MIB, &whole).await;
    assert!(cached_beyond(&a, 0).await && a.lock_count() >= objects(&layout));

    // As when an OST restarts: the connection goes, and with it what the
    // OST may have forgotten.
    for o in &fs.osses {
        a.endpoint().tcp().disconnect(o.endpoint.id());
    }
    let hits = a.read_ahead_stats().hits.load(Ordering::Relaxed);
    let mut buf = vec![0u8; MIB as usize];
    assert_eq!(a.pread(&layout, 6 * MIB, &mut buf).await.unwrap(), MIB as usize);
    assert!(buf[..] == whole[6 * MIB as usize..7 * MIB as usize]);
    assert_eq!(
        a.read_ahead_stats().hits.load(Ordering::Relaxed),
        hits,
        "served from the OSTs, not the cache"
    );
    // The reconnected stream reads ahead again under new locks.
    read_along(&a, &layout, 7 * MIB, 12 * MIB, &whole).await;
    assert!(a.read_ahead_stats().hits.load(Ordering::Relaxed) > hits);
}

/// A client that gathers small writes holds PW locks; the other client's
/// stat, read and write call them back, and the gathered bytes land first,
/// so nobody sees a file older than a write that returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gathered_writes_are_seen_by_another_client_at_once() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let spec = two_stripes();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let w = a.open_striped(&cred, "/log", new, 0o644, spec).await.unwrap();
    let r = b.open(&cred, "/log", libc::O_RDONLY, 0).await.unwrap();
    let mut want = Vec::new();
    // Past the first stripe, so both objects hold gathered bytes.
    let line = fill(4000, 3);
    while want.len() < (MIB + MIB / 2) as usize {
        w.write(&line).await.unwrap();
        want.extend_from_slice(&line);
        if want.len() % (100 * line.len()) == 0 {
            assert_eq!(r.stat().await.unwrap().size, want.len() as u64);
            let mut buf = vec![0u8; want.len() + 4096];
            let n = r.pread(0, &mut buf).await.unwrap();
            assert!(n == want.len() && buf[..n] == want[..], "B read {n} of {} bytes", want.len());
        }
    }
    assert!(a.lock_stats().callbacks.load(Ordering::Relaxed) >= 1);
    assert!(a.lock_stats().callback_flushed_bytes.load(Ordering::Relaxed) >= line.len() as u64);

    // B overwrites the start while A still gathers bytes there: A's bytes
    // land before B's, not after.
    let tail = want.len() as u64;
    w.write(&fill(100, 7)).await.unwrap();
    w.pwrite(0, &fill(3000, 5)).await.unwrap();
    b.pwrite(r.layout().unwrap(), 0, &fill(1000, 8), false).await.unwrap();
    w.close().await.unwrap();
    want[..3000].copy_from_slice(&fill(3000, 5));
    want[..1000].copy_from_slice(&fill(1000, 8));
    want.extend_from_slice(&fill(100, 7));
    let mut buf = vec![0u8; want.len() + 10];
    let n = r.pread(0, &mut buf).await.unwrap();
    assert_eq!(n as u64, tail + 100);
    assert!(buf[..n] == want[..], "B's write is the last at the start of the file");
    r.close().await.unwrap();
}

/// Two clients gather small writes into one file's objects and send large
/// writes into the ranges the other gathers in: each callback's flush goes
/// out under its own lock without waiting on the other's, so neither is
/// evicted and every byte lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_crossing_each_others_gathered_ranges_are_not_evicted() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let spec = two_stripes();
    a.open_striped(&cred, "/ior", libc::O_WRONLY | libc::O_CREAT, 0o644, spec)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    // Client `me` writes 4 KiB pieces in [small, small + 256 KiB) and 2 MiB
    // (a whole gather buffer) at `big`, `big` + 2 MiB...
    async fn writer(c: Arc<Client>, small: u64, big: u64, byte: u8) {
        let f = c.open(&process_cred(), "/ior", libc::O_WRONLY, 0).await.unwrap();
        for i in 0..64u64 {
            f.pwrite(small + i * 4096, &fill(4096, byte)).await.unwrap();
            if i % 16 == 15 {
                f.pwrite(big + (i / 16) * 2 * MIB, &fill(2 * MIB, byte)).await.unwrap();
            }
        }
        f.close().await.unwrap();
    }
    tokio::join!(writer(a.clone(), 0, 8 * MIB, 1), writer(b.clone(), 4 * MIB, 16 * MIB, 2));
    assert_eq!(ost_stat(&fs, |s| s.evictions.load(Ordering::Relaxed)), 0);
    let layout = b.resolve(&cred, "/ior").await.unwrap().1.unwrap();
    for (off, len, byte) in
        [(0, 256 << 10, 1), (4 * MIB, 256 << 10, 2), (8 * MIB, 8 * MIB, 1), (16 * MIB, 8 * MIB, 2)]
    {
        let mut buf = vec![0u8; len as usize];
        assert_eq!(b.pread(&layout, off, &mut buf).await.unwrap(), buf.len());
        let want: Vec<u8> = (0..len / 4096).flat_map(|_| fill(4096, byte)).collect();
        let want = if len == 8 * MIB { (0..4).flat_map(|_| fill(2 * MIB, byte)).collect() } else { want };
        assert!(buf == want, "bytes at {off}");
    }
}

/// After an OSS restart forgot a client's PW locks, the client's next
/// small write takes a new lock before it gathers, so another client still
/// sees it at once; what it had gathered under the old lock still lands
/// (locks are not replayed, so the OSS cannot check it, and lets it go on).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_after_an_oss_restart_takes_a_new_lock() {
    let mut fs = TestFs::start(1).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let w = a.open(&cred, "/forgot", new, 0o644).await.unwrap();
    let r = b.open(&cred, "/forgot", libc::O_RDONLY, 0).await.unwrap();
    w.write(&fill(100, 1)).await.unwrap();
    assert_eq!(r.stat().await.unwrap().size, 100);
    w.write(&fill(100, 2)).await.unwrap();
    fs.restart_oss(0).await;
    w.write(&fill(100, 3)).await.unwrap();
    assert_eq!(r.stat().await.unwrap().size, 300, "B sees A's write after the OSS forgot A's lock");
    w.close().await.unwrap();
    let mut back = vec![0u8; 300];
    assert_eq!(r.pread(0, &mut back).await.unwrap(), 300);
    assert!(back[..100] == fill(100, 1) && back[100..200] == fill(100, 2) && back[200..] == fill(100, 3));
    r.close().await.unwrap();
    assert_eq!(ost_stat(&fs, |s| s.stale_writes.load(Ordering::Relaxed)), 0);
    fs.shutdown();
}

/// A client evicted while it holds gathered writes loses them: they were
/// made under a lock the OST then gave to another client, whose write
/// came after, so landing them would bring back older data. The evicted
/// client's close reports EIO (as a Lustre client evicted with dirty pages
/// does) and the object keeps the other client's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gathered_writes_of_an_evicted_client_are_refused_and_reported() {
    let fs = start_with_callback_timeout(1, Duration::from_secs(2)).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let w = a.open(&cred, "/stale", new, 0o644).await.unwrap();
    w.pwrite(0, &fill(4096, 1)).await.unwrap();

    // A stalls as far as the OST can tell: B's write evicts it.
    a.lose_lock_callbacks(u32::MAX);
    let v = b.open(&cred, "/stale", libc::O_WRONLY, 0).await.unwrap();
    v.pwrite(0, &fill(4096, 2)).await.unwrap();
    v.close().await.unwrap();
    assert!(ost_stat(&fs, |s| s.evictions.load(Ordering::Relaxed)) >= 1);

    let e = w.close().await.unwrap_err();
    assert_eq!(e.errno(), fabric::Errno::EIO, "{e}");
    assert_eq!(ost_stat(&fs, |s| s.stale_writes.load(Ordering::Relaxed)), 1);
    let layout = b.resolve(&cred, "/stale").await.unwrap().1.unwrap();
    let mut back = vec![0u8; 4096];
    assert_eq!(b.pread(&layout, 0, &mut back).await.unwrap(), 4096);
    assert!(back == fill(4096, 2), "the evicted client's older bytes overwrote the newer ones");
    fs.shutdown();
}

/// A dropped connection that was no eviction (the OST kept the client's
/// locks) costs no gathered write. The client forgets its locks when it
/// sees the loss, but the bytes it gathered under them still go out under
/// the lock they name: when another client's access calls that lock back
/// (the client no longer knows it, and flushes anyway), or before the
/// writer's next write, which takes a new lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gathered_writes_survive_a_dropped_connection() {
    let fs = TestFs::start(1).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let other = file(&a, "other", MIB).await;
    let w = a.open(&cred, "/blip", new, 0o644).await.unwrap();
    let oss = fs.osses[0].endpoint.id();

    // A gathers, loses its connection, and learns of it (reading another
    // file of the OST, which reconnects): it forgets its locks.
    w.pwrite(0, &fill(4096, 1)).await.unwrap();
    a.endpoint().tcp().disconnect(oss);
    read_along(&a, &other, 0, MIB, &fill(MIB, 1)).await;
    // B's read calls back the lock A forgot.
    let flushed = || a.lock_stats().callback_flushed_bytes.load(Ordering::Relaxed);
    let before = flushed();
    let r = b.open(&cred, "/blip", libc::O_RDONLY, 0).await.unwrap();
    let mut back = vec![0u8; 4096];
    assert_eq!(r.pread(0, &mut back).await.unwrap(), 4096);
    assert!(back == fill(4096, 1), "B misses what A gathered before its connection dropped");
    assert_eq!(flushed() - before, 4096, "the callback did not send A's gathered bytes");

    // Dropped again with bytes gathered: A's next write sends them first.
    w.pwrite(4096, &fill(4096, 2)).await.unwrap();
    a.endpoint().tcp().disconnect(oss);
    w.pwrite(8192, &fill(4096, 3)).await.unwrap();
    w.close().await.unwrap();
    let mut back = vec![0u8; 3 * 4096];
    assert_eq!(r.pread(0, &mut back).await.unwrap(), 3 * 4096);
    assert!(back[4096..8192] == fill(4096, 2) && back[8192..] == fill(4096, 3));
    r.close().await.unwrap();
    assert_eq!(ost_stat(&fs, |s| s.stale_writes.load(Ordering::Relaxed)), 0);
    assert_eq!(ost_stat(&fs, |s| s.evictions.load(Ordering::Relaxed)), 0);
    fs.shutdown();
}

/// A client whose connection to an OSS drops while it holds locks there
/// connects again by itself (its pinger), so the OSS's callbacks reach it
/// and it is not evicted: another client's read gets the bytes it gathered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_lost_its_connection_is_called_back_not_evicted() {
    let fs = TestFs::start(1).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let w = a.open(&cred, "/idle", new, 0o644).await.unwrap();
    w.pwrite(0, &fill(4096, 1)).await.unwrap();
    // A loses its connection and does nothing more.
    a.endpoint().tcp().disconnect(fs.osses[0].endpoint.id());
    let r = b.open(&cred, "/idle", libc::O_RDONLY, 0).await.unwrap();
    let mut back = vec![0u8; 4096];
    assert_eq!(r.pread(0, &mut back).await.unwrap(), 4096);
    assert!(back == fill(4096, 1), "B misses what A gathered");
    assert_eq!(ost_stat(&fs, |s| s.evictions.load(Ordering::Relaxed)), 0, "A was evicted");
    w.close().await.unwrap();
    r.close().await.unwrap();
    fs.shutdown();
}

/// A stat from another client while a writer gathers (Lustre's glimpse):
/// the size counts the bytes the writer has not sent yet, and the writer
/// keeps its locks, so it goes on gathering without a flush. A read still
/// calls the locks back and sees every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stat_sees_gathered_writes_and_leaves_the_writer_its_locks() {
    let fs = TestFs::start(2).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let w = a.open_striped(&cred, "/out", new, 0o644, two_stripes()).await.unwrap();
    let r = b.open(&cred, "/out", libc::O_RDONLY, 0).await.unwrap();
    let line = fill(4000, 3);
    let mut want = Vec::new();
    // Past the first stripe, so both objects hold gathered bytes.
    while want.len() < (MIB + MIB / 2) as usize {
        w.write(&line).await.unwrap();
        want.extend_from_slice(&line);
        if want.len() % (40 * line.len()) == 0 {
            assert_eq!(r.stat().await.unwrap().size, want.len() as u64);
        }
    }
    let stats = a.lock_stats();
    assert_eq!(stats.callbacks.load(Ordering::Relaxed), 0, "a stat called the writer's locks back");
    assert_eq!(stats.callback_flushed_bytes.load(Ordering::Relaxed), 0);
    assert!(stats.glimpses.load(Ordering::Relaxed) >= 9, "{}", stats.glimpses.load(Ordering::Relaxed));
    assert!(ost_stat(&fs, |s| s.glimpses.load(Ordering::Relaxed)) >= 9);

    let mut buf = vec![0u8; want.len() + 4096];
    let n = r.pread(0, &mut buf).await.unwrap();
    assert!(n == want.len() && buf[..n] == want[..], "B read {n} of {} bytes", want.len());
    assert!(stats.callbacks.load(Ordering::Relaxed) >= 1);

    // The writer's own truncate is what it answers the next stat with.
    w.write(&line).await.unwrap();
    assert_eq!(r.stat().await.unwrap().size, want.len() as u64 + line.len() as u64);
    w.set_len(5000).await.unwrap();
    assert_eq!(r.stat().await.unwrap().size, 5000);
    w.close().await.unwrap();
}

/// A write of the writer's in flight (the OST holds its range while the
/// bytes go to the disk) does not turn another client's stat into a
/// callback of the writer's locks: the writer's answer counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stat_during_a_write_in_flight_still_leaves_the_writer_its_locks() {
    let fs = TestFs::start(1).await;
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let spec = StripeSpec { stripe_count: Some(1), ..two_stripes() };
    let w = a.open_striped(&cred, "/out", new, 0o644, spec).await.unwrap();
    w.write(&fill(5000, 1)).await.unwrap();
    let object = w.layout().unwrap().raid0().unwrap().objects[0].fid;
    let (_, target) = fs.osses[0].oss.targets().next().unwrap();
    let in_flight = target.ldlm.lock_io(a.endpoint().id(), object, proto::LockExtent::WHOLE).await.unwrap();
    let r = b.open(&cred, "/out", libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(r.stat().await.unwrap().size, 5000);
    drop(in_flight);
    assert_eq!(a.lock_stats().callbacks.load(Ordering::Relaxed), 0);
    assert_eq!(ost_stat(&fs, |s| s.glimpses.load(Ordering::Relaxed)), 1);
    w.close().await.unwrap();
}

/// Appends from two clients at once, as two nodes' jobs logging to one
/// file: every record lands whole, none over another (O_APPEND takes a PW
/// lock over every object before it reads the size, as Lustre's does).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_from_two_clients_never_overwrite_each_other() {
    let fs = TestFs::start(2).await;
    let cred = process_cred();
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let new = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND;
    a.open_striped(&cred, "/log", new, 0o644, two_stripes()).await.unwrap().close().await.unwrap();
    const RECORDS: usize = 60;
    let mut writers = Vec::new();
    for (who, c) in [(b'a', a.clone()), (b'b', b.clone())] {
        let cred = cred.clone();
        writers.push(tokio::spawn(async move {
            let f = c.open(&cred, "/log", libc::O_WRONLY | libc::O_APPEND, 0).await.unwrap();
            for i in 0..RECORDS {
                let mut rec = format!("{} {i:04} ", who as char).into_bytes();
                rec.resize(99, who);
                rec.push(b'\n');
                f.write(&rec).await.unwrap();
            }
            f.close().await.unwrap();
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let r = b.open(&cred, "/log", libc::O_RDONLY, 0).await.unwrap();
    let mut buf = vec![0u8; 2 * RECORDS * 100 + 100];
    let n = r.pread(0, &mut buf).await.unwrap();
    assert_eq!(n, 2 * RECORDS * 100, "records lost");
    let mut seen = std::collections::HashSet::new();
    for rec in buf[..n].chunks(100) {
        let who = rec[0];
        assert!(
            rec[99] == b'\n' && rec[7..99].iter().all(|&c| c == who),
            "a torn record: {:?}",
            String::from_utf8_lossy(rec)
        );
        assert!(seen.insert(rec[..7].to_vec()), "a record twice");
    }
}

/// Two clients writing their own halves of one object (IOR's shared
/// file): after the first conflicts each holds a lock over its own part,
/// so their writes stop calling each other's locks back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_of_disjoint_parts_of_one_object_stop_calling_each_other_back() {
    let fs = TestFs::start(1).await;
    let cred = process_cred();
    let a = Client::mount(&fs.spec()).await.unwrap();
    let b = Client::mount(&fs.spec()).await.unwrap();
    let spec = StripeSpec { stripe_count: Some(1), ..two_stripes() };
    let new = libc::O_WRONLY | libc::O_CREAT;
    let wa = a.open_striped(&cred, "/shared", new, 0o644, spec).await.unwrap();
    let wb = b.open(&cred, "/shared", libc::O_WRONLY, 0).await.unwrap();
    let chunk = fill(64 << 10, 9);
    let half = 64 * MIB;
    for i in 0..200u64 {
        wa.pwrite(i * chunk.len() as u64, &chunk).await.unwrap();
        wb.pwrite(half + i * chunk.len() as u64, &chunk).await.unwrap();
    }
    wa.close().await.unwrap();
    wb.close().await.unwrap();
    let callbacks = ost_stat(&fs, |s| s.callbacks.load(Ordering::Relaxed));
    assert!(callbacks <= 6, "{callbacks} callbacks for 400 writes to two disjoint parts");
}
