//! Bulk data damaged in flight, by the client's fault injection: the OST
//! refuses a damaged write and the client sends it again; a damaged read is
//! read again; damage on every attempt reaches the caller as EIO, and a
//! refused write leaves the object as it was.

mod support;

use client::{Client, process_cred};
use fabric::{Errno, IoBuf};
use proto::{Layout, StripeSpec};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use support::TestFs;

/// Attempts a transfer gets: the first and its resends.
const ATTEMPTS: u32 = 4;
const LEN: usize = 256 << 10;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn registered(data: &[u8]) -> IoBuf {
    let mut b = IoBuf::alloc(data.len(), None).unwrap();
    b.as_mut_slice().copy_from_slice(data);
    b
}

/// Write transfers OST `ost` refused for a checksum mismatch.
fn ost_mismatches(fs: &TestFs, ost: u32) -> u64 {
    let (_, t) = fs.osses[ost as usize].oss.targets().next().unwrap();
    t.stats.checksum_errors.load(Ordering::Relaxed)
}

/// A file of one object, and the bytes of that object on the OST's disk.
async fn one_object_file(fs: &TestFs, c: &Arc<Client>, name: &str) -> (Layout, u32, std::path::PathBuf) {
    let spec = StripeSpec { stripe_count: Some(1), stripe_size: Some(1 << 20), stripe_offset: None };
    let (_, layout) = c.create(&process_cred(), c.root(), name, 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    let obj = layout.raid0().unwrap().objects[0];
    let path = ost::paths::object_path(&fs.ost_dir(obj.ost_idx), obj.fid);
    (layout, obj.ost_idx, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_write_is_refused_sent_again_and_counted() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let (layout, ost, path) = one_object_file(&fs, &c, "copied").await;

    // Through the client's own buffers.
    let data = pattern(LEN, 1);
    c.integrity().damage_writes(1);
    assert_eq!(c.pwrite(&layout, 0, &data, false).await.unwrap(), LEN);
    assert_eq!(ost_mismatches(&fs, ost), 1, "the OST did not see the damage");
    assert_eq!(c.integrity().write_mismatches(), 1);
    assert!(std::fs::read(&path).unwrap() == data, "the object does not hold what was written");

    // Straight from the caller's registered buffer, two attempts damaged.
    let data = pattern(LEN, 2);
    c.integrity().damage_writes(2);
    assert_eq!(c.pwrite_registered(&layout, 0, &registered(&data), false).await.unwrap(), LEN);
    assert_eq!(ost_mismatches(&fs, ost), 3);
    assert_eq!(c.integrity().write_mismatches(), 3);
    assert!(std::fs::read(&path).unwrap() == data, "the object does not hold what was written");
    fs.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_damaged_on_every_attempt_is_eio_and_writes_nothing() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let (layout, ost, path) = one_object_file(&fs, &c, "refused").await;
    let old = pattern(LEN, 3);
    c.pwrite(&layout, 0, &old, false).await.unwrap();

    c.integrity().damage_writes(ATTEMPTS);
    let e = c.pwrite(&layout, 0, &pattern(LEN, 4), false).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EIO, "{e}");
    assert_eq!(ost_mismatches(&fs, ost), u64::from(ATTEMPTS));
    assert!(std::fs::read(&path).unwrap() == old, "a refused write changed the object");

    c.integrity().damage_writes(ATTEMPTS);
    let e = c.pwrite_registered(&layout, 0, &registered(&pattern(LEN, 5)), false).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EIO, "{e}");
    assert_eq!(ost_mismatches(&fs, ost), 2 * u64::from(ATTEMPTS));
    assert!(std::fs::read(&path).unwrap() == old, "a refused write changed the object");

    // The damage is spent: the next write goes through.
    let new = pattern(LEN, 6);
    c.pwrite(&layout, 0, &new, false).await.unwrap();
    assert!(std::fs::read(&path).unwrap() == new);
    fs.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_read_is_read_again_and_every_time_is_eio() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let (layout, _, _) = one_object_file(&fs, &c, "read").await;
    let data = pattern(LEN, 7);
    c.pwrite(&layout, 0, &data, false).await.unwrap();

    let mut back = vec![0u8; LEN];
    c.integrity().damage_reads(1);
    assert_eq!(c.pread(&layout, 0, &mut back).await.unwrap(), LEN);
    assert!(back == data, "a damaged read reached the caller");
    assert_eq!(c.integrity().read_mismatches(), 1);

    let mut reg = IoBuf::alloc(LEN, None).unwrap();
    c.integrity().damage_reads(2);
    assert_eq!(c.pread_registered(&layout, 0, &mut reg).await.unwrap(), LEN);
    assert!(reg.as_slice() == data, "a damaged read reached the caller");
    assert_eq!(c.integrity().read_mismatches(), 3);

    c.integrity().damage_reads(ATTEMPTS);
    let e = c.pread(&layout, 0, &mut back).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EIO, "{e}");
    c.integrity().damage_reads(ATTEMPTS);
    let e = c.pread_registered(&layout, 0, &mut reg).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EIO, "{e}");
    assert_eq!(c.integrity().read_mismatches(), 3 + 2 * u64::from(ATTEMPTS));
    fs.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registered_read_matches_a_copied_read_across_stripes_holes_and_eof() {
    let fs = TestFs::start(3).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let spec = StripeSpec { stripe_count: Some(3), stripe_size: Some(64 << 10), stripe_offset: None };
    let (_, layout) = c.create(&process_cred(), c.root(), "sparse", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    // Data, a hole of more than a stripe width, then data ending mid-stripe.
    let a = pattern(300 << 10, 8);
    let b = pattern(100 << 10, 9);
    let b_off = 1 << 20;
    c.pwrite(&layout, 0, &a, false).await.unwrap();
    c.pwrite(&layout, b_off, &b, false).await.unwrap();
    let size = b_off as usize + b.len();
    let mut want = vec![0u8; size];
    want[..a.len()].copy_from_slice(&a);
    want[b_off as usize..].copy_from_slice(&b);

    // Small reads go inside their RPCs (short I/O) unless that is off:
    // the same bytes either way, holes and the end of file included.
    let small =
        [(a.len() as u64 - 100, 8192), (600 << 10, 4096), ((1 << 20) - 5, 20), (size as u64 - 10, 64)];
    let large = [(0, size + 4096), (4096, 200 << 10), (250 << 10, 900 << 10)];
    for (short, (off, len)) in
        [0, 32 << 10].into_iter().flat_map(|s| large.into_iter().chain(small).map(move |r| (s, r)))
    {
        for ost in c.ost_indices() {
            c.set_short_io_bytes(ost, short).unwrap();
        }
        let mut copied = vec![0xaau8; len];
        let n = c.pread(&layout, off, &mut copied).await.unwrap();
        let mut reg = IoBuf::alloc(len, None).unwrap();
        reg.as_mut_slice().fill(0x55);
        let m = c.pread_registered(&layout, off, &mut reg).await.unwrap();
        let end = size.min(off as usize + len);
        assert_eq!(n, end - off as usize, "copied read at {off} for {len}, short_io_bytes {short}");
        assert_eq!(m, n, "registered read at {off} for {len}");
        assert!(copied[..n] == want[off as usize..end], "copied read at {off}");
        assert!(reg.as_slice()[..m] == want[off as usize..end], "registered read at {off}");
    }
    fs.shutdown();
}

/// Short I/O (data inside the RPC) is checked as bulk is: a damaged short
/// write is refused and sent again, a damaged short read is read again,
/// damage on every attempt is EIO and leaves the object as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_io_is_checked_like_bulk() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let (layout, ost, path) = one_object_file(&fs, &c, "short").await;
    assert_eq!(c.short_io_bytes(ost), Some(client::DEFAULT_SHORT_IO_BYTES));
    let old = pattern(4096, 10);
    c.integrity().damage_writes(1);
    assert_eq!(c.pwrite(&layout, 8192, &old, false).await.unwrap(), 4096);
    assert_eq!(ost_mismatches(&fs, ost), 1, "the OST did not see the damage");
    let stored = std::fs::read(&path).unwrap();
    assert!(stored[8192..] == old && stored[..8192].iter().all(|&b| b == 0));

    c.integrity().damage_writes(ATTEMPTS);
    let e = c.pwrite_registered(&layout, 8192, &registered(&pattern(4096, 11)), false).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EIO, "{e}");
    assert_eq!(ost_mismatches(&fs, ost), 1 + u64::from(ATTEMPTS));
    assert!(std::fs::read(&path).unwrap()[8192..] == old, "a refused write changed the object");

    let mut back = vec![0u8; 4096];
    c.integrity().damage_reads(1);
    assert_eq!(c.pread(&layout, 8192, &mut back).await.unwrap(), 4096);
    assert!(back == old, "a damaged read reached the caller");
    assert_eq!(c.integrity().read_mismatches(), 1);
    c.integrity().damage_reads(ATTEMPTS);
    let e = c.pread(&layout, 8192, &mut back).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EIO, "{e}");

    // Every transfer above went inside its RPC: the client's LND moved no bulk.
    let bulk = || {
        let st = c.endpoint().tcp().stats();
        st.bulk_tx_bytes.load(Ordering::Relaxed) + st.bulk_rx_bytes.load(Ordering::Relaxed)
    };
    assert_eq!(bulk(), 0, "a short transfer went by bulk");

    // With short I/O off, or over the limit, the same write goes by bulk.
    c.set_short_io_bytes(ost, 0).unwrap();
    c.pwrite(&layout, 0, &pattern(4096, 12), false).await.unwrap();
    assert_eq!(bulk(), 4096);
    let e = c.set_short_io_bytes(ost, proto::MAX_SHORT_IO_BYTES + 1).unwrap_err();
    assert_eq!(e.errno(), Errno::EINVAL);
    fs.shutdown();
}

/// Gathered bytes whose sending fails (a transfer damaged on every
/// attempt) are reported by the file's close, as the kernel reports a
/// failed write-back: not consumed by a stat or a read that made them go
/// out first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_back_is_reported_at_close_not_to_a_stat() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let f = c.open(&cred, "/lost", libc::O_RDWR | libc::O_CREAT, 0o644).await.unwrap();
    f.pwrite(0, &[7u8; 100]).await.unwrap();
    c.integrity().damage_writes(ATTEMPTS);
    let size = f.stat().await.expect("a stat does not report another write's failure").size;
    assert_eq!(size, 0, "the damaged bytes were never written");
    let mut buf = [0u8; 100];
    assert_eq!(f.pread(0, &mut buf).await.unwrap(), 0);
    assert_eq!(f.close().await.unwrap_err().errno(), Errno::EIO, "close reports the lost write");

    // fsync through another open covers the write too, and leaves the
    // failure for the writer's own close as well.
    let a = c.open(&cred, "/lost", libc::O_RDWR, 0).await.unwrap();
    let b = c.open(&cred, "/lost", libc::O_RDWR, 0).await.unwrap();
    a.pwrite(0, &[8u8; 100]).await.unwrap();
    c.integrity().damage_writes(ATTEMPTS);
    assert_eq!(b.fsync().await.unwrap_err().errno(), Errno::EIO, "fsync of another open");
    b.close().await.unwrap();
    assert_eq!(a.close().await.unwrap_err().errno(), Errno::EIO, "the writer's close");
    fs.shutdown();
}
