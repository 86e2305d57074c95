//! A file striped over four OSTs, written and read back through the client
//! library against real servers, with each object holding exactly the
//! bytes the striping math says.

mod support;

use client::{Client, process_cred};
use proto::{Fid, StripeSpec};
use support::TestFs;

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn object_path(fs: &TestFs, ost: u32, fid: Fid) -> std::path::PathBuf {
    ost::paths::object_path(&fs.ost_dir(ost), fid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn striped_write_lands_on_every_ost_and_reads_back() {
    let fs = TestFs::start(4).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(4), stripe_size: Some(64 << 10), stripe_offset: None };
    let (attr, layout) = c.create(&cred, c.root(), "striped", 0o644, spec, true).await.unwrap();
    let layout = layout.expect("a regular file has a layout");
    let r0 = layout.raid0().unwrap().clone();
    assert_eq!(r0.objects.len(), 4);
    let mut osts: Vec<u32> = r0.objects.iter().map(|o| o.ost_idx).collect();
    osts.sort();
    assert_eq!(osts, vec![0, 1, 2, 3]);

    let data = pattern(3 * 1024 * 1024 + 12345, 42);
    c.pwrite(&layout, 0, &data, false).await.unwrap();

    let mut back = vec![0u8; data.len() + 100];
    let n = c.pread(&layout, 0, &mut back).await.unwrap();
    assert_eq!(n, data.len(), "short read at EOF only");
    assert!(back[..n] == data[..], "read back what was written");

    // Each object holds exactly its stripes' bytes.
    for (stripe, obj) in r0.objects.iter().enumerate() {
        let on_disk = std::fs::read(object_path(&fs, obj.ost_idx, obj.fid)).unwrap();
        let want_len = r0.object_size_for(stripe, data.len() as u64) as usize;
        assert_eq!(on_disk.len(), want_len, "object {stripe} size");
        for (i, b) in on_disk.iter().enumerate().step_by(4093) {
            let (s, o) = (stripe, i as u64);
            let width = r0.stripe_size * 4;
            let file_off = (o / r0.stripe_size) * width + s as u64 * r0.stripe_size + o % r0.stripe_size;
            assert_eq!(*b, data[file_off as usize], "object {stripe} byte {i}");
        }
    }

    let (full, _) = c.getattr(&cred, attr.fid).await.unwrap();
    assert_eq!(full.size, data.len() as u64);
    fs.shutdown();
}

/// `lfs setstripe -i N` on an OST that has just joined: the MDS has no
/// object there yet, and the file must wait for its precreate rather than
/// land on another OST (or be refused as naming no OST).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_ost_asked_for_is_waited_for_when_it_has_just_joined() {
    let mut fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let new = fs.add_oss(|_| {}).await;
    let spec = StripeSpec { stripe_count: Some(1), stripe_size: None, stripe_offset: Some(new) };
    let (_, layout) = c.create(&cred, c.root(), "on-the-new-ost", 0o644, spec, true).await.unwrap();
    let r0 = layout.unwrap().raid0().unwrap().clone();
    assert_eq!(r0.objects.iter().map(|o| o.ost_idx).collect::<Vec<_>>(), vec![new]);
    fs.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holes_read_as_zeros_and_truncate_frees() {
    let fs = TestFs::start(2).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(-1), stripe_size: Some(1 << 20), stripe_offset: None };
    let (attr, layout) = c.create(&cred, c.root(), "sparse", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    // Only stripe 0's object gets data, far into the file: stripe 1's
    // object stays empty, and reading it must give zeros, not EOF.
    c.pwrite(&layout, 4 << 20, b"tail", false).await.unwrap();
    let mut buf = vec![1u8; (4 << 20) + 4];
    let n = c.pread(&layout, 0, &mut buf).await.unwrap();
    assert_eq!(n, (4 << 20) + 4);
    assert!(buf[..4 << 20].iter().all(|b| *b == 0));
    assert_eq!(&buf[4 << 20..], b"tail");

    let set = proto::SetAttr { size: Some(10), ..Default::default() };
    let (after, _) = c.setattr(&cred, attr.fid, set).await.unwrap();
    assert_eq!(after.size, 10);
    let mut buf = vec![9u8; 100];
    assert_eq!(c.pread(&layout, 0, &mut buf).await.unwrap(), 10);
    fs.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespace_through_the_mds() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let d = c.mkdir(&cred, c.root(), "dir", 0o755).await.unwrap();
    for i in 0..50 {
        c.create(&cred, d.fid, &format!("f{i}"), 0o644, StripeSpec::default(), true).await.unwrap();
    }
    let entries = c.readdir_all(&cred, d.fid).await.unwrap();
    assert_eq!(entries.len(), 50);
    c.rename(&cred, d.fid, "f0", c.root(), "moved").await.unwrap();
    let (a, _) = c.resolve(&cred, "/moved").await.unwrap();
    assert!(a.is_reg());
    let err = c.create(&cred, c.root(), "moved", 0o644, StripeSpec::default(), true).await.err().unwrap();
    assert_eq!(err.errno(), fabric::Errno::EEXIST);
    let long = "x".repeat(256);
    let err = c.mkdir(&cred, c.root(), &long, 0o755).await.err().unwrap();
    assert_eq!(err.errno(), fabric::Errno::ENAMETOOLONG);
    c.unlink(&cred, c.root(), "moved").await.unwrap();
    let (mdt, osts) = c.statfs_targets().await.unwrap();
    assert!(mdt.files > 0 && osts.len() == 1 && osts[0].1.blocks > 0);
    fs.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_larger_than_the_buffer_pool_completes() {
    let fs = TestFs::start(2).await;
    let tunables = client::ClientTunables { io_buffers: 3, ..Default::default() };
    let c = Client::mount_with(&fs.spec(), tunables).await.unwrap();
    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(2), stripe_size: Some(1 << 20), stripe_offset: None };
    let (_, layout) = c.create(&cred, c.root(), "big", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    let data = pattern(10 << 20, 7);
    c.pwrite(&layout, 0, &data, false).await.unwrap();
    let mut back = vec![0u8; data.len()];
    assert_eq!(c.pread(&layout, 0, &mut back).await.unwrap(), data.len());
    assert!(back == data);
    fs.shutdown();
}
