//! Reads from OSTs on a tmpfs (where the store reads through O_DIRECT on
//! the page cache): sparse, unaligned, past-the-end and striped reads
//! return exactly what was written, and reads racing overlapping writes
//! never see a torn RPC nor a checksum mismatch.

mod support;

use client::{Client, process_cred};
use proto::StripeSpec;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::TestFs;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 10) as u8).collect()
}

fn is_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: zeroed is a valid statfs; the call fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a valid out pointer.
    unsafe { libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type as i64 == TMPFS_MAGIC }
}

/// A file system whose OSTs are on /dev/shm, or None (said on stderr)
/// where that is not a tmpfs.
async fn on_tmpfs(osts: u32) -> Option<TestFs> {
    let shm = Path::new("/dev/shm");
    if !is_tmpfs(shm) {
        eprintln!("SKIPPED: /dev/shm is missing or not a tmpfs here");
        return None;
    }
    Some(TestFs::start_in(osts, shm).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sparse_unaligned_and_striped_reads_are_exact() {
    let Some(fs) = on_tmpfs(2).await else { return };
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(2), stripe_size: Some(1 << 20), stripe_offset: None };
    let (_, layout) = c.create(&cred, c.root(), "sparse", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();

    // Data, then a hole of several MiB, then data ending off a page boundary.
    let mut model = vec![0u8; 9 * (1 << 20) + 777];
    let a = pattern(1_500_000, 1);
    let b = pattern(1_300_777, 2);
    c.pwrite(&layout, 4321, &a, false).await.unwrap();
    let b_at = model.len() - b.len();
    c.pwrite(&layout, b_at as u64, &b, false).await.unwrap();
    model[4321..4321 + a.len()].copy_from_slice(&a);
    model[b_at..].copy_from_slice(&b);

    for (off, len) in [(0usize, model.len() + 5000), (4000, 70_000), (1 << 20, 3 << 20), (b_at - 10, 4096)] {
        let mut back = vec![0xeeu8; len];
        let n = c.pread(&layout, off as u64, &mut back).await.unwrap();
        let want = len.min(model.len() - off);
        assert_eq!(n, want, "read of {len} at {off}");
        assert!(back[..n] == model[off..off + n], "read of {len} at {off} differs");
    }
    fs.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_racing_overlapping_writes_see_whole_writes() {
    let Some(fs) = on_tmpfs(1).await else { return };
    let c = Arc::new(Client::mount(&fs.spec()).await.unwrap());
    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(1), stripe_size: Some(1 << 20), stripe_offset: None };
    let (_, layout) = c.create(&cred, c.root(), "race", 0o644, spec, true).await.unwrap();
    let layout = Arc::new(layout.unwrap());
    let len = 1 << 20;
    c.pwrite(&layout, 0, &vec![0u8; len], false).await.unwrap();

    // One writer fills the whole MiB with one byte value after another;
    // each read (one RPC) must see a single value throughout.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, layout, done) = (c.clone(), layout.clone(), done.clone());
        tokio::spawn(async move {
            for v in 1..=60u8 {
                c.pwrite(&layout, 0, &vec![v; len], false).await.unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (c, layout, done) = (c.clone(), layout.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut back = vec![0u8; len];
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) || reads == 0 {
                assert_eq!(c.pread(&layout, 0, &mut back).await.unwrap(), len);
                let first = back[0];
                if let Some(i) = back.iter().position(|&x| x != first) {
                    panic!("torn read: byte 0 is {first}, byte {i} is {}", back[i]);
                }
                reads += 1;
            }
            reads
        }));
    }
    writer.await.unwrap();
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    let mut back = vec![0u8; len];
    c.pread(&layout, 0, &mut back).await.unwrap();
    assert!(back.iter().all(|&x| x == 60), "the last write is what stays");
    // A write landing in pages while they were on their way would show as
    // a checksum mismatch (and a read again), even where the retry hid it.
    assert_eq!(c.integrity().read_mismatches(), 0, "a read was sent from pages a write was changing");
    fs.shutdown();
}
