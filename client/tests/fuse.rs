//! The FUSE mount against real servers: ordinary tools (cp, tar, dd,
//! find, git, df...) run on one or two mounts of one file system, and what
//! they see is checked against the same work done on a local directory.
//! Every mount is a guard that unmounts when dropped, also when a test
//! fails.

mod support;

use client::fuse::spawn_mount_async;
use client::{MountGuard, MountOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::TestFs;

/// A scratch directory for local files and mount points. Others may
/// traverse it, so tests can act as an unprivileged user.
fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d
}

async fn mount(fs: &TestFs, at: &Path, opts: MountOptions) -> MountGuard {
    std::fs::create_dir_all(at).unwrap();
    spawn_mount_async(&fs.spec(), at, opts).await.unwrap()
}

/// Whether `dir` is a mount point now.
fn is_mounted(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table.lines().any(|l| l.split(' ').nth(4) == dir.to_str())
}

/// A mount served by another process (this test binary, running
/// `serve_mount_for_other_tests`): a second client as another node would
/// be, mounted in the foreground by `client::fuse::mount`. Dropping it
/// sends SIGTERM, which unmounts.
struct ChildMount {
    child: std::process::Child,
    dir: PathBuf,
}

const SPEC_VAR: &str = "GLINT_FUSE_TEST_SPEC";
const DIR_VAR: &str = "GLINT_FUSE_TEST_DIR";

impl ChildMount {
    async fn start(fs: &TestFs, dir: &Path) -> ChildMount {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "serve_mount_for_other_tests", "--ignored", "--nocapture"])
            .env(SPEC_VAR, fs.spec())
            .env(DIR_VAR, dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut m = ChildMount { child, dir: dir.to_path_buf() };
        // Either the mount appears or the child dies trying.
        while !is_mounted(dir) {
            if let Some(status) = m.child.try_wait().unwrap() {
                panic!("the mounting process exited first: {status}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        m
    }
}

impl Drop for ChildMount {
    fn drop(&mut self) {
        // SAFETY: signals our own child, by its id.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait();
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if !std::thread::panicking() {
            assert!(status.unwrap().success(), "the mounting process failed");
        }
    }
}

/// A file system with two mounts of it: `a` served in this process, `b` by
/// a child process (another client). Fields drop in order: the mounts go
/// before their directory and the servers.
struct TwoMounts {
    _ma: MountGuard,
    _mb: ChildMount,
    a: PathBuf,
    b: PathBuf,
    dir: tempfile::TempDir,
    _fs: TestFs,
}

/// A file system with one mount at `dir`, inside `scratch`.
struct OneMount {
    _g: MountGuard,
    dir: PathBuf,
    scratch: tempfile::TempDir,
    _fs: TestFs,
}

async fn one_mount(osts: u32) -> OneMount {
    let fs = TestFs::start(osts).await;
    let scratch = scratch();
    let dir = scratch.path().join("m");
    let _g = mount(&fs, &dir, MountOptions::default()).await;
    OneMount { _g, dir, scratch, _fs: fs }
}

async fn two_mounts(osts: u32) -> TwoMounts {
    let fs = TestFs::start(osts).await;
    let dir = scratch();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let _ma = mount(&fs, &a, MountOptions::default()).await;
    let _mb = ChildMount::start(&fs, &b).await;
    TwoMounts { _ma, _mb, a, b, dir, _fs: fs }
}

#[test]
#[ignore = "the second client of the two-mount tests, started by them in a process of its own"]
fn serve_mount_for_other_tests() {
    let (Ok(spec), Ok(dir)) = (std::env::var(SPEC_VAR), std::env::var(DIR_VAR)) else { return };
    client::fuse::mount(&spec, Path::new(&dir), MountOptions::default()).unwrap();
}

/// Runs `script` under `sh -e` with the given variables; panics with its
/// output if it fails. Runs off the runtime: the servers need it.
async fn sh(vars: &[(&str, &Path)], script: &str) -> String {
    let vars: Vec<(String, PathBuf)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_path_buf())).collect();
    let owned = script.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh").arg("-exc").arg(&owned).envs(vars).output().expect("running sh")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "script failed ({}):\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mounts_see_each_others_writes_at_once() {
    let m = two_mounts(2).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    let out = sh(
        &[("A", &a), ("B", &b)],
        r#"
        echo hello > $A/f
        cat $B/f
        echo "a longer second version" > $A/f
        cat $B/f
        mkdir $B/d
        echo inside > $B/d/g
        cat $A/d/g
        printf 'x%.0s' $(seq 1 5000) >> $B/d/g
        cat $A/d/g | wc -c
        rm $A/d/g
        rmdir $A/d
        ls -A $B
        "#,
    )
    .await;
    assert_eq!(out, "hello\na longer second version\ninside\n5007\nf\n");
}

/// A stat on one mount shows a change made on another at once, although
/// the kernel caches attributes: they were read under locks, and the
/// change calls those back, which drops the kernel's copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stat_on_one_mount_shows_a_change_on_the_other_at_once() {
    let m = two_mounts(2).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    let out = sh(
        &[("A", &a), ("B", &b)],
        r#"
        printf 0123456789 > $B/f
        stat -c %s $A/f
        printf abc >> $B/f
        stat -c %s $A/f
        truncate -s 5 $B/f
        stat -c %s $A/f
        touch -d @1000000000 $B/f
        stat -c %Y $A/f
        "#,
    )
    .await;
    assert_eq!(out, "10\n13\n5\n1000000000\n");
}

/// A log kept open on one mount, as a training job keeps its own, is read
/// on another as each line is written (`tail -f` from a login node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_kept_open_shows_each_write_on_the_other_mount() {
    let m = two_mounts(2).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut log = std::fs::File::create(a.join("train.log")).unwrap();
        let mut want = String::new();
        for step in 0..40 {
            let line = format!("step {step} loss 0.{step}\n");
            log.write_all(line.as_bytes()).unwrap();
            want.push_str(&line);
            if step % 9 == 0 {
                let seen = std::fs::metadata(b.join("train.log")).unwrap().len();
                assert_eq!(seen, want.len() as u64, "size on the other mount after step {step}");
                let got = std::fs::read_to_string(b.join("train.log")).unwrap();
                assert_eq!(got, want, "bytes on the other mount after step {step}");
            }
        }
    })
    .await
    .unwrap();
}

/// The lock counters of every OST, summed.
fn ost_ldlm(fs: &TestFs, f: impl Fn(&ost::ldlm::LdlmStats) -> &std::sync::atomic::AtomicU64) -> u64 {
    let each = fs.osses.iter().flat_map(|o| o.oss.targets().map(|(_, t)| t.ldlm.stats()).collect::<Vec<_>>());
    each.map(|s| f(s).load(std::sync::atomic::Ordering::Relaxed)).sum()
}

/// `watch ls -l` on a login node while a job writes its checkpoint: each
/// stat on the other mount shows the bytes written so far, those the
/// writer still gathers included, and calls none of the writer's locks
/// back (a glimpse asks it the size), so the writer never flushes early.
/// The kernel keeps no such size: the next stat after a write is right too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stat_on_another_mount_does_not_make_the_writer_flush() {
    let m = two_mounts(2).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut out = std::fs::File::create(a.join("ckpt")).unwrap();
        let chunk = vec![7u8; 64 << 10];
        for i in 1..=20u64 {
            out.write_all(&chunk).unwrap();
            for _ in 0..2 {
                let seen = std::fs::metadata(b.join("ckpt")).unwrap().len();
                assert_eq!(seen, i * chunk.len() as u64, "size on the other mount after write {i}");
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ost_ldlm(&m._fs, |s| &s.callbacks), 0, "a stat called a lock back");
    assert!(ost_ldlm(&m._fs, |s| &s.glimpses) >= 40);
}

/// Small reads and writes of files open on both mounts, which the mount
/// answers from its cache and gathers without waking its runtime: each
/// read returns what the last completed write put there, on either mount,
/// and a mount's own gathered bytes are read back through another open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_io_on_files_open_on_both_mounts_sees_every_write() {
    use std::os::unix::fs::FileExt;
    let m = two_mounts(2).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    tokio::task::spawn_blocking(move || {
        const PAGE: usize = 4096;
        const SIZE: usize = 8 << 20;
        let page =
            |tag: u8, at: usize| -> Vec<u8> { (0..PAGE).map(|i| tag ^ ((at + i) % 251) as u8).collect() };
        let open = |p: &Path, write: bool| {
            std::fs::OpenOptions::new().read(true).write(write).create(write).truncate(false).open(p).unwrap()
        };
        let wa = open(&a.join("f"), true);
        for at in (0..SIZE).step_by(PAGE) {
            wa.write_all_at(&page(1, at), at as u64).unwrap();
        }
        // Read on the other mount in small sequential reads (readahead fills
        // its cache, and most reads are answered from it).
        let rb = open(&b.join("f"), false);
        let mut got = vec![0u8; PAGE];
        for at in (0..SIZE).step_by(PAGE) {
            rb.read_exact_at(&mut got, at as u64).unwrap();
            assert_eq!(got, page(1, at), "B reads A's first version at {at}");
        }
        // A rewrites pages while both keep the file open: B's cached copy
        // of them must go, and A's gathered pages reach the OSTs first.
        let changed = [PAGE, (1 << 20) + 3 * PAGE, 5 << 20, SIZE - PAGE];
        for at in changed {
            wa.write_all_at(&page(2, at), at as u64).unwrap();
        }
        for at in changed {
            rb.read_exact_at(&mut got, at as u64).unwrap();
            assert_eq!(got, page(2, at), "B reads A's rewrite at {at}");
            rb.read_exact_at(&mut got, (at + PAGE) as u64 % SIZE as u64).unwrap();
            let next = (at + PAGE) % SIZE;
            let tag = if changed.contains(&next) { 2 } else { 1 };
            assert_eq!(got, page(tag, next), "B reads the page after {at}");
        }
        // A's own small writes, still gathered, through another open on A.
        wa.write_all_at(&page(3, 2 * PAGE), 2 * PAGE as u64).unwrap();
        let ra = open(&a.join("f"), false);
        ra.read_exact_at(&mut got, 2 * PAGE as u64).unwrap();
        assert_eq!(got, page(3, 2 * PAGE), "A reads its own gathered write");
        // And B's write, read on A where A's cache held the old page.
        ra.read_exact_at(&mut got, 7 * PAGE as u64).unwrap();
        assert_eq!(got, page(1, 7 * PAGE));
        let wb = open(&b.join("f"), true);
        wb.write_all_at(&page(4, 7 * PAGE), 7 * PAGE as u64).unwrap();
        ra.read_exact_at(&mut got, 7 * PAGE as u64).unwrap();
        assert_eq!(got, page(4, 7 * PAGE), "A reads B's write");
        drop((wa, wb));
        let whole = std::fs::read(b.join("f")).unwrap();
        assert_eq!(whole.len(), SIZE);
        assert_eq!(&whole[2 * PAGE..3 * PAGE], &page(3, 2 * PAGE)[..]);
    })
    .await
    .unwrap();
}

/// Two processes' opens of one file on one mount: the later write wins,
/// whichever descriptor is closed last, and a read after both sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_opens_on_one_mount_keep_the_order_of_their_writes() {
    use std::os::unix::fs::FileExt;
    let one = one_mount(2).await;
    let path = one.dir.join("two");
    tokio::task::spawn_blocking(move || {
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let (a, b) = (open(), open());
        a.write_all_at(&[b'x'; 100], 0).unwrap();
        b.write_all_at(&[b'y'; 100], 0).unwrap();
        let mut got = [0u8; 100];
        a.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, [b'y'; 100], "a read through one open after a write through the other");
        a.write_all_at(&[b'z'; 10], 50).unwrap();
        b.write_all_at(&[b'w'; 2], 55).unwrap();
        drop(b);
        drop(a);
        let mut want = vec![b'y'; 100];
        want[50..60].fill(b'z');
        want[55..57].fill(b'w');
        assert_eq!(std::fs::read(&path).unwrap(), want, "the last write of each byte wins");
    })
    .await
    .unwrap();
}

/// A write the mount gathered and could not send is reported by fsync
/// and close of the descriptor that wrote it, even when an `ls -l` (a
/// stat, which sends gathered bytes first) came in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_back_is_reported_to_its_writer_not_to_ls() {
    use std::io::Write;
    let one = one_mount(1).await;
    let client = one._g.client().clone();
    let path = one.dir.join("lost");
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&[7u8; 100]).unwrap();
        // Every attempt of the gathered bytes' transfer is damaged: EIO.
        client.integrity().damage_writes(4);
        let size = std::fs::metadata(&path).expect("a stat does not report another's write-back").len();
        assert_eq!(size, 0, "the damaged bytes were never written");
        let e = f.sync_all().expect_err("fsync reports the lost write");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_tar_find_diff_over_a_tree() {
    let one = one_mount(3).await;
    let (s, m) = (&one.scratch, one.dir.clone());
    let src = s.path().join("src");
    let work = s.path().join("work");
    sh(
        &[("M", &m), ("S", &src), ("W", &work)],
        r#"
        mkdir -p $S/a/b/c $S/empty $W
        : > $S/zero
        printf 1 > $S/one
        head -c 4097 /dev/urandom > $S/a/page
        head -c 3145739 /dev/urandom > $S/a/b/big
        for i in $(seq 1 40); do echo "file $i" > $S/a/b/c/f$i; done
        ln -s ../one $S/a/link
        ln -s does-not-exist $S/dangling
        chmod 0751 $S/a/b
        chmod 0600 $S/a/page
        touch -d '2001-02-03 04:05:06' $S/a/b/c/f7
        cp -a $S $M/copy
        diff -r --no-dereference $S $M/copy
        test "$(cd $S && find . | sort)" = "$(cd $M/copy && find . | sort)"
        test "$(stat -c '%a %s %Y' $S/a/b $S/a/page $S/a/b/c/f7)" = "$(stat -c '%a %s %Y' $M/copy/a/b $M/copy/a/page $M/copy/a/b/c/f7)"
        test "$(readlink $M/copy/a/link)" = "../one"
        tar -C $S -cf $W/in.tar .
        mkdir $M/untar
        tar -C $M/untar -xf $W/in.tar
        diff -r --no-dereference $S $M/untar
        tar -C $M/untar -cf $W/out.tar .
        mkdir $W/back
        tar -C $W/back -xf $W/out.tar
        diff -r --no-dereference $S $W/back
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dd_64_mib_in_big_and_small_blocks() {
    let one = one_mount(2).await;
    let (s, m) = (&one.scratch, one.dir.clone());
    let w = s.path().join("w");
    let out = sh(
        &[("M", &m), ("W", &w)],
        r#"
        mkdir $W
        head -c 67108864 /dev/urandom > $W/src
        dd if=$W/src of=$M/big bs=1M status=none
        dd if=$W/src of=$M/small bs=4k status=none
        dd if=$W/src of=$M/odd bs=12345 status=none
        want=$(sha256sum < $W/src)
        test "$(dd if=$M/big bs=1M status=none | sha256sum)" = "$want"
        test "$(dd if=$M/small bs=4k status=none | sha256sum)" = "$want"
        test "$(sha256sum < $M/odd)" = "$want"
        stat -c %s $M/big $M/small $M/odd
        "#,
    )
    .await;
    assert_eq!(out, "67108864\n67108864\n67108864\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posix_tools_work() {
    let m = two_mounts(2).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    let out = sh(
        &[("A", &a), ("B", &b)],
        r#"
        mkdir -p $A/d1 $A/d2
        echo data > $A/d1/f
        chmod 0640 $A/d1/f
        stat -c %a $A/d1/f
        chown 12:34 $A/d1/f
        stat -c %u:%g $A/d1/f
        ls -ln $A/d1 | grep -q '^-rw-r----- 1 12 34 5 '
        ln -s d1/f $A/sym
        cat $A/sym
        ln $A/d1/f $A/d2/hard
        stat -c %h $A/d1/f
        mv $A/d1/f $A/d2/moved
        test ! -e $A/d1/f
        cat $B/d2/moved
        mv $A/d2 $A/d1/
        test -d $A/d1/d2
        cat $B/d1/d2/hard
        mv -n $A/d1/d2/moved $A/d1/d2/hard 2>/dev/null || true
        cat $A/d1/d2/moved
        truncate -s 3 $A/d1/d2/moved
        cat $A/d1/d2/moved; echo
        truncate -s 100000 $A/d1/d2/moved
        stat -c %s $A/d1/d2/moved
        touch -m -d '2010-01-01 00:00:00' $A/d1/d2/moved
        stat -c %y $A/d1/d2/moved | cut -c1-19
        find $A -name moved | sed "s|$A||"
        echo kept > $A/open-me
        exec 3< $A/open-me
        rm $A/open-me
        cat <&3
        exec 3<&-
        python3 -c "import os,sys; os.setxattr(sys.argv[1], 'user.color', b'blue'); print(os.getxattr(sys.argv[1], 'user.color').decode(), os.listxattr(sys.argv[1]))" $A/d1/d2/moved
        python3 -c "import os,sys; os.removexattr(sys.argv[1], 'user.color'); print(os.listxattr(sys.argv[1]))" $B/d1/d2/moved
        mknod $A/fifo p
        stat -c %F $B/fifo
        rm -r $A/d1 $A/sym $A/fifo
        ls -A $B | wc -l
        "#,
    )
    .await;
    assert_eq!(
        out,
        "640\n12:34\ndata\n2\ndata\ndata\ndata\ndat\n100000\n2010-01-01 00:00:00\n/d1/d2/moved\nkept\n\
         blue ['user.color']\n[]\nfifo\n0\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_use_the_callers_groups() {
    let one = one_mount(1).await;
    let m = one.dir.clone();
    let out = sh(
        &[("M", &m)],
        r#"
        U="setpriv --reuid=1000 --regid=1000 --groups=2000"
        V="setpriv --reuid=1000 --regid=1000 --clear-groups"
        chmod 0755 $M
        mkdir $M/pub && chmod 0777 $M/pub
        echo secret > $M/pub/root-only && chmod 0600 $M/pub/root-only
        echo group > $M/pub/grp && chown 0:2000 $M/pub/grp && chmod 0640 $M/pub/grp
        if $U cat $M/pub/root-only 2>/dev/null; then echo "read a 0600 root file"; exit 1; fi
        $U cat $M/pub/grp
        if $V cat $M/pub/grp 2>/dev/null; then echo "read without the group"; exit 1; fi
        $U sh -c "echo mine > $M/pub/user-file"
        stat -c %u:%g $M/pub/user-file
        $U sh -c "test -r $M/pub/grp && test ! -w $M/pub/grp && test ! -r $M/pub/root-only"
        "#,
    )
    .await;
    assert_eq!(out, "group\n1000:1000\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_l_on_another_mount_shows_every_file_as_written() {
    let m = two_mounts(3).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    let w = m.dir.path().join("w");
    // More entries than one statahead batch and one kernel buffer; sizes
    // that differ per file, so each line checks its own objects.
    let out = sh(
        &[("A", &a), ("B", &b), ("W", &w)],
        r#"
        mkdir $W
        for i in $(seq 1 600); do head -c $((i * 37)) /dev/zero > $W/f$i; done
        ln -s f1 $W/link
        chmod 0600 $W/f7
        python3 -c "import os; os.setxattr('$W/f3', 'user.tag', b'v')"
        cp -a $W $A/d
        (cd $W && ls -ln --time-style=+%s) | tail -n +2 > $W.want
        (cd $B/d && ls -ln --time-style=+%s) | tail -n +2 > $W.got
        diff $W.want $W.got
        wc -l < $W.got
        # The listing knows which files have extended attributes, and a
        # change here is seen here at once.
        python3 - $B/d <<'PY'
import errno, os, sys
d = sys.argv[1]
assert os.getxattr(f"{d}/f3", "user.tag") == b"v"
try:
    os.getxattr(f"{d}/f4", "user.tag")
    sys.exit("f4 has user.tag")
except OSError as e:
    assert e.errno == errno.ENODATA, e
assert os.listxattr(f"{d}/f4") == []
os.setxattr(f"{d}/f4", "user.tag", b"w")
assert os.getxattr(f"{d}/f4", "user.tag") == b"w"
assert os.listxattr(f"{d}/f4") == ["user.tag"]
PY
        chmod 0744 $B/d
        # Names without search permission: listed, not stat-able, even
        # right after root looked one up on the same mount.
        U="setpriv --reuid=1000 --regid=1000 --clear-groups"
        stat $B/d/f1 > /dev/null
        if $U stat $B/d/f1 > /dev/null 2>&1; then echo "stat without search permission"; exit 1; fi
        $U ls $B/d | wc -l
        if $U ls -l $B/d > /dev/null 2>&1; then echo "ls -l without search permission"; exit 1; fi
        "#,
    )
    .await;
    assert_eq!(out, "601\n601\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_stat_follows_each_change_made_in_it() {
    let one = one_mount(1).await;
    let m = one.dir.clone();
    // nlink counts subdirectories and the mtime moves with every change:
    // neither may lag behind a change this mount made a moment before.
    let out = sh(
        &[("M", &m)],
        r#"
        mkdir $M/d
        check() { test "$(stat -c %h $M/d)" = "$1" || { echo "nlink $(stat -c %h $M/d), want $1 after $2"; exit 1; }; }
        touch $M/d/f; check 2 create
        mkdir $M/d/x; check 3 mkdir
        echo a > $M/d/g; mkdir $M/d/y; check 4 "create then mkdir"
        rm $M/d/g; rmdir $M/d/y; check 3 "unlink then rmdir"
        mv $M/d/x $M/x; check 2 rename
        ln $M/d/f $M/d/h; ln -s f $M/d/s; rm $M/d/h; check 2 link
        mkdir $M/d/z; rm $M/d/s; check 3 "mkdir then unlink"
        before=$(stat -c %Y $M/d); sleep 1.1; touch $M/d/new
        test "$(stat -c %Y $M/d)" -gt "$before"
        ls $M/d
        "#,
    )
    .await;
    assert_eq!(out, "f\nnew\nz\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disjoint_writers_and_appenders_share_one_file() {
    let m = two_mounts(3).await;
    let (a, b) = (m.a.clone(), m.b.clone());
    let w = m.dir.path().join("w");
    let out = sh(
        &[("A", &a), ("B", &b), ("W", &w)],
        r#"
        mkdir $W
        part=3145745
        for i in 0 1 2 3 4 5; do head -c $part /dev/urandom > $W/p$i; done
        cat $W/p0 $W/p1 $W/p2 $W/p3 $W/p4 $W/p5 > $W/whole
        for i in 0 1 2 3 4 5; do
            if [ $((i % 2)) = 0 ]; then M=$A; else M=$B; fi
            dd if=$W/p$i of=$M/shared bs=65536 oflag=seek_bytes seek=$((i * part)) conv=notrunc status=none &
        done
        wait
        cmp $W/whole $A/shared
        cmp $W/whole $B/shared
        for p in 1 2 3 4; do
            if [ $((p % 2)) = 0 ]; then M=$A; else M=$B; fi
            ( for i in $(seq 1 50); do echo "writer $p line $i" >> $M/log; done ) &
        done
        wait
        wc -l < $B/log
        grep -c '^writer [1-4] line [0-9]*$' $B/log
        "#,
    )
    .await;
    assert_eq!(out, "200\n200\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_and_df_work_in_the_mount() {
    let one = one_mount(2).await;
    let m = one.dir.clone();
    let out = sh(
        &[("M", &m)],
        r#"
        grep " $M fuse.glint " /proc/mounts | cut -d' ' -f1 | sed 's/^127\.[0-9]*\.[0-9]*\.[0-9]*@tcp:/NID:/'
        df -P $M | tail -1 | awk '{ if ($2 > 0) print "has space" }'
        test "$(stat -f -c %l $M)" = 255
        if command -v git >/dev/null; then
            mkdir $M/repo && cd $M/repo
            git init -q
            echo one > a && mkdir sub && echo two > sub/b
            git add .
            git -c user.email=t@example.com -c user.name=t commit -qm first
            echo three >> a
            git -c user.email=t@example.com -c user.name=t commit -qam second
            git log --oneline | wc -l
            git fsck --strict 2>&1 | grep -v '^Checking' || true
            git status --porcelain | wc -l
        else
            echo 2; echo 0
        fi
        "#,
    )
    .await;
    assert_eq!(out, "NID:/testfs\nhas space\n2\n0\n");
}
