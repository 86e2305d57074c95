//! The library's open files against real servers: open(2) flags, the
//! position, gathering of small writes into whole RPCs, appends, truncate,
//! fsync, close and a file dropped without close.

mod support;

use client::{Client, File, process_cred};
use fabric::Errno;
use proto::{Cred, StripeSpec};
use std::io::SeekFrom;
use std::sync::Arc;
use support::TestFs;

const RW_NEW: i32 = libc::O_RDWR | libc::O_CREAT;

fn one_stripe() -> StripeSpec {
    StripeSpec { stripe_count: Some(1), stripe_size: Some(1 << 20), stripe_offset: None }
}

/// Write RPCs this client has sent to `ost`.
fn writes_to(c: &Client, ost: u32) -> u64 {
    c.rpc_stats(ost).map(|s| s.write.iter().sum()).unwrap_or(0)
}

async fn read_all(f: &File) -> Vec<u8> {
    f.seek(SeekFrom::Start(0)).await.unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 100_000];
    loop {
        let n = f.read(&mut buf).await.unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

async fn errno_of(r: client::Result<File>) -> Errno {
    r.err().expect("the open should fail").errno()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_sequential_writes_go_out_as_whole_rpcs() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let f = c.open_striped(&cred, "/gathered", RW_NEW, 0o644, one_stripe()).await.unwrap();
    let ost = f.layout().unwrap().raid0().unwrap().objects[0].ost_idx;
    let before = writes_to(&c, ost);
    let data: Vec<u8> = (0..(2 << 20) + 4096).map(|i| (i % 253) as u8).collect();
    for chunk in data.chunks(4096) {
        assert_eq!(f.write(chunk).await.unwrap(), chunk.len());
    }
    f.fsync().await.unwrap();
    // 513 writes of 4 KiB: two whole 1 MiB RPCs and the 4 KiB tail.
    assert_eq!(writes_to(&c, ost) - before, 3);
    assert_eq!(f.stat().await.unwrap().size, data.len() as u64);
    assert_eq!(read_all(&f).await, data);
    f.close().await.unwrap();

    let again = c.open(&cred, "/gathered", libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(read_all(&again).await, data);
    again.close().await.unwrap();
}

/// Full buffers go out in the background; one that rewrites bytes still in
/// flight waits for them, so the last write wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_of_bytes_in_flight_land_after_them() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let f = c.open_striped(&process_cred(), "/again", RW_NEW, 0o644, one_stripe()).await.unwrap();
    for round in 0..64u8 {
        for half in 0..2u64 {
            f.pwrite(half << 19, &[round; 1 << 19]).await.unwrap();
        }
    }
    f.fsync().await.unwrap();
    let all = read_all(&f).await;
    assert_eq!(all.len(), 1 << 20);
    assert!(all.iter().all(|b| *b == 63), "an older round's bytes landed last");
    f.close().await.unwrap();
}

/// Two opens of one file on one client: each gathers its own small
/// writes, and a write or read through one that starts after a write
/// through the other returned comes after it, whichever is closed last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_opens_of_one_file_keep_the_order_of_their_writes() {
    let fs = TestFs::start(2).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let a = c.open(&cred, "/two", RW_NEW, 0o644).await.unwrap();
    let b = c.open(&cred, "/two", libc::O_RDWR, 0).await.unwrap();
    a.pwrite(0, &[b'x'; 100]).await.unwrap();
    b.pwrite(0, &[b'y'; 100]).await.unwrap();
    // Through a: it must see b's later bytes, not its own gathered ones.
    let mut got = [0u8; 100];
    assert_eq!(a.pread(0, &mut got).await.unwrap(), 100);
    assert_eq!(got, [b'y'; 100], "a read through one open after a write through the other");
    a.pwrite(50, &[b'z'; 10]).await.unwrap();
    b.pwrite(55, &[b'w'; 2]).await.unwrap();
    b.close().await.unwrap();
    a.close().await.unwrap();
    let f = c.open(&cred, "/two", libc::O_RDONLY, 0).await.unwrap();
    let mut want = vec![b'y'; 100];
    want[50..60].fill(b'z');
    want[55..57].fill(b'w');
    assert_eq!(read_all(&f).await, want, "the last write of each byte wins, closed in either order");
    f.close().await.unwrap();
    // An O_SYNC write through one open lands after what another gathered.
    let a = c.open(&cred, "/two", libc::O_RDWR, 0).await.unwrap();
    let s = c.open(&cred, "/two", libc::O_RDWR | libc::O_SYNC, 0).await.unwrap();
    a.pwrite(0, &[b'1'; 10]).await.unwrap();
    s.pwrite(0, &[b'2'; 10]).await.unwrap();
    a.close().await.unwrap();
    let mut got = [0u8; 10];
    s.pread(0, &mut got).await.unwrap();
    assert_eq!(got, [b'2'; 10], "the O_SYNC write came later");
    s.close().await.unwrap();
    // A stat or a truncate through one open comes after the other's writes.
    let a = c.open(&cred, "/two", libc::O_RDWR, 0).await.unwrap();
    let b = c.open(&cred, "/two", libc::O_RDWR, 0).await.unwrap();
    a.pwrite(200, &[b'e'; 50]).await.unwrap();
    assert_eq!(b.stat().await.unwrap().size, 250, "a stat through the other open");
    a.pwrite(300, &[b'f'; 10]).await.unwrap();
    b.set_len(100).await.unwrap();
    a.close().await.unwrap();
    assert_eq!(b.stat().await.unwrap().size, 100, "bytes written before the truncate do not come back");
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_flags_behave_as_open_2() {
    let fs = TestFs::start(2).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    assert_eq!(errno_of(c.open(&cred, "/missing", libc::O_RDONLY, 0).await).await, Errno::ENOENT);
    assert_eq!(errno_of(c.open(&cred, "/no/dir", RW_NEW, 0o644).await).await, Errno::ENOENT);

    let f = c.open(&cred, "/f", RW_NEW | libc::O_EXCL, 0o640).await.unwrap();
    f.write(b"hello world").await.unwrap();
    f.close().await.unwrap();
    assert_eq!(errno_of(c.open(&cred, "/f", RW_NEW | libc::O_EXCL, 0o644).await).await, Errno::EEXIST);
    // O_CREAT without O_EXCL opens what is there.
    let f = c.open(&cred, "/f", RW_NEW, 0o644).await.unwrap();
    assert_eq!(read_all(&f).await, b"hello world");
    assert_eq!(f.stat().await.unwrap().mode & 0o7777, 0o640);
    f.close().await.unwrap();

    let r = c.open(&cred, "/f", libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(r.write(b"x").await.unwrap_err().errno(), Errno::EBADF);
    assert_eq!(r.set_len(0).await.unwrap_err().errno(), Errno::EBADF);
    r.close().await.unwrap();
    let w = c.open(&cred, "/f", libc::O_WRONLY, 0).await.unwrap();
    assert_eq!(w.read(&mut [0u8; 4]).await.unwrap_err().errno(), Errno::EBADF);
    w.close().await.unwrap();

    let t = c.open(&cred, "/f", libc::O_WRONLY | libc::O_TRUNC, 0).await.unwrap();
    assert_eq!(t.stat().await.unwrap().size, 0);
    t.close().await.unwrap();

    c.mkdir(&cred, c.root(), "d", 0o755).await.unwrap();
    assert_eq!(errno_of(c.open(&cred, "/d", libc::O_RDONLY, 0).await).await, Errno::EISDIR);

    // The MDS checks the mode against the caller.
    let other = Cred { uid: 4242, gid: 4242, groups: Vec::new() };
    let p = c.open(&cred, "/private", RW_NEW, 0o600).await.unwrap();
    p.close().await.unwrap();
    if cred.uid != other.uid {
        assert_eq!(errno_of(c.open(&other, "/private", libc::O_RDONLY, 0).await).await, Errno::EACCES);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_opens_in_the_same_call_and_says_whether_it_made_the_file() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let root = Cred::root();
    let user = Cred { uid: 4242, gid: 4242, groups: Vec::new() };
    let mode = libc::S_IFREG | 0o444;
    let wronly = libc::O_WRONLY as u32;
    c.setattr(&root, c.root(), proto::SetAttr { mode: Some(0o777), ..Default::default() }).await.unwrap();
    // The creator may write what it made read-only, as open(O_CREAT) allows.
    let made = c.create_open(&user, c.root(), "ro", mode, one_stripe(), false, wronly).await.unwrap();
    assert!(made.new);
    assert_eq!(made.attr.uid, 4242);
    let layout = made.layout.clone().unwrap();
    c.pwrite(&layout, 0, b"data", false).await.unwrap();
    // Found, not made: the open is checked like any other, and O_EXCL refuses.
    let found = c.create_open(&user, c.root(), "ro", mode, one_stripe(), false, libc::O_RDONLY as u32);
    let found = found.await.unwrap();
    assert!(!found.new);
    assert_eq!(found.attr.fid, made.attr.fid);
    let again = c.create_open(&user, c.root(), "ro", mode, one_stripe(), false, wronly).await;
    assert_eq!(again.unwrap_err().errno(), Errno::EACCES);
    let excl = c.create_open(&user, c.root(), "ro", mode, one_stripe(), true, libc::O_RDONLY as u32).await;
    assert_eq!(excl.unwrap_err().errno(), Errno::EEXIST);
    c.mkdir(&root, c.root(), "d", 0o755).await.unwrap();
    let dir = c.create_open(&root, c.root(), "d", mode, one_stripe(), false, libc::O_RDONLY as u32).await;
    assert_eq!(dir.unwrap_err().errno(), Errno::EISDIR);
    // The library's open(O_CREAT) of an existing name truncates on O_TRUNC
    // and leaves it alone otherwise.
    let f = c.open(&root, "/ro", libc::O_RDWR | libc::O_CREAT, 0o644).await.unwrap();
    assert_eq!(f.stat().await.unwrap().size, 4);
    f.close().await.unwrap();
    let f = c.open(&root, "/ro", libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, 0o644).await.unwrap();
    assert_eq!(f.stat().await.unwrap().size, 0);
    f.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_seek_and_holes() {
    let fs = TestFs::start(2).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let f = c.open(&cred, "/pos", RW_NEW, 0o644).await.unwrap();
    f.write(b"abc").await.unwrap();
    f.write(b"def").await.unwrap();
    assert_eq!(f.seek(SeekFrom::Current(0)).await.unwrap(), 6);
    assert_eq!(f.seek(SeekFrom::End(4)).await.unwrap(), 10);
    f.write(b"xyz").await.unwrap();
    assert_eq!(f.stat().await.unwrap().size, 13);
    assert_eq!(read_all(&f).await, b"abcdef\0\0\0\0xyz");
    // pread/pwrite leave the position alone; reads past the end give 0.
    assert_eq!(f.seek(SeekFrom::Start(2)).await.unwrap(), 2);
    f.pwrite(0, b"A").await.unwrap();
    let mut b = [0u8; 3];
    assert_eq!(f.pread(100, &mut b).await.unwrap(), 0);
    assert_eq!(f.read(&mut b).await.unwrap(), 3);
    assert_eq!(&b, b"cde");
    assert_eq!(f.seek(SeekFrom::Current(-100)).await.unwrap_err().errno(), Errno::EINVAL);
    f.set_len(4).await.unwrap();
    assert_eq!(read_all(&f).await, b"Abcd");
    f.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_of_two_open_files_never_overlap() {
    let fs = TestFs::start(2).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(2), stripe_size: Some(64 << 10), stripe_offset: None };
    c.open_striped(&cred, "/log", RW_NEW, 0o644, spec).await.unwrap().close().await.unwrap();
    let flags = libc::O_WRONLY | libc::O_APPEND;
    let (a, b) = (
        Arc::new(c.open(&cred, "/log", flags, 0).await.unwrap()),
        Arc::new(c.open(&cred, "/log", flags, 0).await.unwrap()),
    );
    const RECORD: usize = 5000;
    let mut tasks = tokio::task::JoinSet::new();
    for (f, byte) in [(a.clone(), b'a'), (b.clone(), b'b')] {
        tasks.spawn(async move {
            for _ in 0..20 {
                f.write(&[byte; RECORD]).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let r = c.open(&cred, "/log", libc::O_RDONLY, 0).await.unwrap();
    let all = read_all(&r).await;
    assert_eq!(all.len(), 40 * RECORD);
    for rec in all.chunks(RECORD) {
        assert!(rec.iter().all(|&x| x == rec[0]), "a record was torn by another append");
    }
    assert_eq!(all.iter().filter(|&&x| x == b'a').count(), 20 * RECORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_file_still_sends_its_gathered_bytes() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();
    let f = c.open(&cred, "/dropped", RW_NEW, 0o644).await.unwrap();
    f.write(&[7u8; 10_000]).await.unwrap();
    drop(f);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (attr, _) = c.getattr(&cred, c.resolve(&cred, "/dropped").await.unwrap().0.fid).await.unwrap();
        if attr.size == 10_000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dropped file's bytes never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = c.open(&cred, "/dropped", libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(read_all(&r).await, vec![7u8; 10_000]);
}
