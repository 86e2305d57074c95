//! glint across several hosts, with Linux network namespaces as the hosts.
//!
//! Each test builds a small lab of its own: one namespace per host and a
//! switch namespace holding a bridge, each host joined to the bridge by a
//! veth pair, with addresses in a random `10.254.X.0/24` that exists only
//! inside the lab. Nothing is created in the test's own network namespace
//! and no address outside the lab is ever contacted. Processes enter a
//! host with `setns(CLONE_NEWNET)` alone, so they keep the test's mount
//! namespace: a FUSE mount made "on the client host" is visible to the
//! test too. The lab is torn down by `Drop` (processes killed, mounts
//! lazily unmounted, namespaces deleted), also when a test fails.
//!
//! These tests need root and iproute2 (`scripts/deps.sh` installs it); they
//! fail, loudly, without them.

use fabric::memory::{Access, BulkHandle};
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Errno, IoBuf, Nid, Pid, ProcessId};
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const GLINT: &str = env!("CARGO_BIN_EXE_glint");

/// A bound on every wait, so that a hang fails the test with the logs
/// instead of stalling CI. Generous: it only has to be finite, and covers
/// the client's 120 s resend limit.
const PATIENCE: Duration = Duration::from_secs(300);

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom fills the 8-byte array it is given.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
    assert_eq!(n, 8, "getrandom: {}", std::io::Error::last_os_error());
    u64::from_le_bytes(b)
}

/// Deterministic bytes from `seed` (xorshift64), so that a failure can be
/// replayed and a mismatch located.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs `ip ARGS`, panicking with what it said when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `ip` ({e}): these tests need iproute2 and root; run scripts/deps.sh")
    });
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `sig` to a child that may already have exited.
fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child not yet reaped by us.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// Waits for `child` to exit, killing it when PATIENCE runs out.
fn wait_bounded(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > PATIENCE {
            signal(child, libc::SIGKILL);
            let _ = child.wait();
            panic!("{what} did not finish in {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How to start a process on a host, again after a crash.
struct ProcSpec {
    name: String,
    host: String,
    program: String,
    args: Vec<String>,
    log: PathBuf,
}

/// A process the lab started.
struct Proc {
    spec: ProcSpec,
    child: Child,
}

/// Namespaces, processes and mounts of one test; `Drop` removes them all.
struct Lab {
    tag: String,
    subnet: u8,
    hosts: Vec<String>,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
    mounts: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl Lab {
    /// Hosts `names[i]` gets address `10.254.X.(i+1)` on a bridge in a
    /// switch namespace of its own.
    fn new(names: &[&str]) -> Lab {
        let r = random_u64();
        let mut lab = Lab {
            tag: format!("glint-t-{:06x}", r & 0xff_ffff),
            subnet: (r >> 24) as u8,
            hosts: names.iter().map(|s| s.to_string()).collect(),
            namespaces: Vec::new(),
            procs: Vec::new(),
            mounts: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        let switch = format!("{}-sw", lab.tag);
        lab.add_namespace(&switch);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (i, host) in names.iter().enumerate() {
            let ns = lab.ns(host);
            lab.add_namespace(&ns);
            let port = format!("v{i}");
            // Both ends are made inside the lab: the host's end is created
            // straight in its namespace, never in the test's.
            ip(&["-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &switch, "link", "set", &port, "up"]);
            let cidr = format!("{}/24", lab.addr(host));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    fn add_namespace(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    fn index(&self, host: &str) -> usize {
        self.hosts.iter().position(|h| h == host).unwrap_or_else(|| panic!("no host {host} in the lab"))
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    fn addr(&self, host: &str) -> String {
        format!("10.254.{}.{}", self.subnet, self.index(host) + 1)
    }

    fn nid(&self, host: &str) -> Nid {
        format!("{}@tcp", self.addr(host)).parse().unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The network namespace file of `host`, for setns(2).
    fn ns_file(&self, host: &str) -> File {
        let path = format!("/run/netns/{}", self.ns(host));
        File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// `program` to be run on `host`: in its network namespace only.
    fn command(&self, host: &str, program: &str) -> Command {
        let ns = self.ns_file(host);
        let mut cmd = Command::new(program);
        // SAFETY: the closure only makes the setns system call, which is
        // safe between fork and exec; the namespace fd is close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        cmd
    }

    /// Runs `program ARGS` on `host` to completion and returns its stdout;
    /// a failure panics with everything it printed.
    fn run(&self, host: &str, program: &str, args: &[&str]) -> String {
        let mut child = self
            .command(host, program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut err, &mut s).map(|_| s).unwrap_or_default()
        });
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        let st = wait_bounded(&mut child, program);
        let stderr = err_reader.join().unwrap();
        assert!(st.success(), "`{program} {}` on {host} failed ({st}):\n{stdout}\n{stderr}", args.join(" "));
        stdout
    }

    fn glint(&self, host: &str, args: &[&str]) -> String {
        self.run(host, GLINT, args)
    }

    /// Starts a long-running process on `host`, its output in a log of its
    /// own; returns its index for the other methods.
    fn spawn(&mut self, name: &str, host: &str, program: &str, args: &[&str]) -> usize {
        self.spawn_with(name, host, program, args, Stdio::null())
    }

    /// Like `spawn`, with a pipe to the process's stdin.
    fn spawn_fed(&mut self, name: &str, host: &str, program: &str, args: &[&str]) -> (usize, ChildStdin) {
        let id = self.spawn_with(name, host, program, args, Stdio::piped());
        let stdin = self.procs[id].child.stdin.take().unwrap();
        (id, stdin)
    }

    fn spawn_with(&mut self, name: &str, host: &str, program: &str, args: &[&str], stdin: Stdio) -> usize {
        let spec = ProcSpec {
            name: name.to_string(),
            host: host.to_string(),
            program: program.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log: self.path(&format!("{name}.log")),
        };
        let child = self.start(&spec, stdin);
        self.procs.push(Proc { spec, child });
        self.procs.len() - 1
    }

    fn start(&self, p: &ProcSpec, stdin: Stdio) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&p.log).unwrap();
        writeln!(&log, "=== {} {} (on {})", p.program, p.args.join(" "), p.host).unwrap();
        self.command(&p.host, &p.program)
            .args(&p.args)
            .stdin(stdin)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", p.name))
    }

    fn log(&self, id: usize) -> String {
        std::fs::read_to_string(&self.procs[id].spec.log).unwrap_or_default()
    }

    /// Waits until `cond` holds, failing with the process's log when it
    /// exits first or PATIENCE runs out.
    fn wait_for(&mut self, id: usize, what: &str, mut cond: impl FnMut(&Lab) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            if let Some(st) = self.procs[id].child.try_wait().unwrap() {
                panic!("{} exited ({st}) before {what}:\n{}", self.procs[id].spec.name, self.log(id));
            }
            if start.elapsed() > PATIENCE {
                panic!("{} not {what} after {PATIENCE:?}:\n{}", self.procs[id].spec.name, self.log(id));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the `n`th line containing `needle` in a process's log
    /// (restarts append to the same log).
    fn wait_log(&mut self, id: usize, needle: &str, n: usize) {
        self.wait_for(id, &format!("saying `{needle}`"), |lab| lab.log(id).matches(needle).count() >= n);
    }

    fn wait_mounted(&mut self, id: usize, dir: &Path) {
        let dir = dir.canonicalize().unwrap();
        self.mounts.push(dir.clone());
        self.wait_for(id, "mounted", |_| glint_mount_source(&dir).is_some());
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self, id: usize) {
        let p = &mut self.procs[id];
        signal(&p.child, libc::SIGKILL);
        p.child.wait().unwrap();
    }

    fn restart(&mut self, id: usize) {
        assert!(
            self.procs[id].child.try_wait().unwrap().is_some(),
            "{} is still running",
            self.procs[id].spec.name
        );
        let child = self.start(&self.procs[id].spec, Stdio::null());
        self.procs[id].child = child;
    }

    /// Waits for a process to exit by itself, and for it to succeed.
    fn wait_success(&mut self, id: usize) {
        let p = &mut self.procs[id];
        let st = wait_bounded(&mut p.child, &p.spec.name);
        assert!(st.success(), "{} failed ({st}):\n{}", self.procs[id].spec.name, self.log(id));
    }

    /// SIGTERM, and a clean exit.
    fn stop(&mut self, id: usize) {
        signal(&self.procs[id].child, libc::SIGTERM);
        self.wait_success(id);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A mount whose daemon is alive unmounts cleanly; lazily, so a busy
        // one goes too. Then every process, client side first, and the
        // mounts again in case a daemon died with its mount in place.
        let unmount = |m: &PathBuf| {
            let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(m).stderr(Stdio::null()).status();
        };
        self.mounts.iter().for_each(unmount);
        for p in self.procs.iter_mut().rev() {
            if p.child.try_wait().ok().flatten().is_none() {
                signal(&p.child, libc::SIGKILL);
                let _ = p.child.wait();
            }
        }
        self.mounts.iter().for_each(unmount);
        for ns in self.namespaces.iter().rev() {
            match Command::new("ip").args(["netns", "del", ns]).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!("ip netns del {ns}: {}", String::from_utf8_lossy(&o.stderr)),
                Err(e) => eprintln!("ip netns del {ns}: {e}"),
            }
        }
    }
}

/// The source of the `fuse.glint` mount on `dir` in this process's mount
/// table, if there is one.
fn glint_mount_source(dir: &Path) -> Option<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table.lines().find_map(|l| {
        let (head, tail) = l.split_once(" - ")?;
        let mut tail = tail.split(' ');
        (head.split(' ').nth(4) == dir.to_str() && tail.next() == Some("fuse.glint"))
            .then(|| tail.next().unwrap_or("").to_string())
    })
}

/// The system call `pid` is in, if it is in one (`/proc/PID/syscall`).
fn syscall_of(pid: u32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// An MGS/MDS on one host, an OSS with two OSTs on another, and a FUSE
/// client on a third: a striped file written with dd and compared with
/// cmp; then the OSS is killed in the middle of a large write, restarted,
/// and the write must complete with every byte in place.
#[test]
fn three_hosts_striped_io_survives_an_oss_crash() {
    let mut lab = Lab::new(&["mds", "oss", "client"]);
    let mdt = lab.path("mdt");
    let (ost0, ost1) = (lab.path("ost0"), lab.path("ost1"));
    let (mgs, oss_nid) = (lab.nid("mds").to_string(), lab.nid("oss").to_string());
    lab.glint("mds", &["mkfs", "--mdt", "--fsname", "glint", mdt.to_str().unwrap()]);
    for (i, d) in [&ost0, &ost1].iter().enumerate() {
        let i = i.to_string();
        lab.glint("oss", &["mkfs", "--ost", "--fsname", "glint", "--index", &i, d.to_str().unwrap()]);
    }

    let mds = lab.spawn("mds", "mds", GLINT, &["mds", "--dir", mdt.to_str().unwrap(), "--nid", &mgs]);
    lab.wait_log(mds, "serving on", 1);
    let ost_args = [format!("0:{}", ost0.display()), format!("1:{}", ost1.display())];
    let oss_args = [
        "oss",
        "--fsname",
        "glint",
        "--nid",
        &oss_nid,
        "--mgs",
        &mgs,
        "--ost",
        &ost_args[0],
        "--ost",
        &ost_args[1],
    ];
    let oss = lab.spawn("oss", "oss", GLINT, &oss_args);
    lab.wait_log(oss, "serving 2 target(s)", 1);

    let mnt = lab.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let spec = format!("{mgs}:/glint");
    let mount = lab.spawn("mount", "client", GLINT, &["mount", &spec, mnt.to_str().unwrap()]);
    lab.wait_mounted(mount, &mnt);
    // Only the network was the client host's: the mount is in this
    // process's mount table, with the MGS NID as its source.
    assert_eq!(glint_mount_source(&mnt.canonicalize().unwrap()).as_deref(), Some(spec.as_str()));

    // A file striped over both OSTs, written and read back by dd and cmp
    // on the client host.
    let m = |name: &str| mnt.join(name).to_str().unwrap().to_string();
    let seed = random_u64();
    let small = pattern(seed, (8 << 20) + 4099);
    std::fs::write(lab.path("small.src"), &small).unwrap();
    lab.glint("client", &["lfs", "setstripe", "-c", "2", "-S", "1M", &m("small")]);
    let src = lab.path("small.src").to_str().unwrap().to_string();
    lab.run(
        "client",
        "dd",
        &[&format!("if={src}"), &format!("of={}", m("small")), "bs=1M", "conv=notrunc,fsync"],
    );
    lab.run("client", "cmp", &[&src, &m("small")]);
    let stripe = lab.glint("client", &["lfs", "getstripe", &m("small")]);
    assert!(stripe.contains("lmm_stripe_count:  2"), "{stripe}");
    // The targets as an admin first asks after them, and find(1)'s way of
    // writing lfs find.
    let osts = lab.glint("client", &["lfs", "osts", &m("small")]);
    assert_eq!(osts, "OBDS:\n0: glint-OST0000_UUID ACTIVE\n1: glint-OST0001_UUID ACTIVE\n");
    let mdts = lab.glint("client", &["lfs", "mdts", &m("small")]);
    assert_eq!(mdts, "MDTS:\n0: glint-MDT0000_UUID ACTIVE\n");
    let found = lab.glint("client", &["lfs", "find", mnt.to_str().unwrap(), "-type", "f", "-size", "+8M"]);
    assert_eq!(found.trim_end(), m("small"));
    // The test reads through the mount too, from its own network namespace.
    assert_eq!(std::fs::read(mnt.join("small")).unwrap(), small);

    // A large striped write, fed through a pipe so that the crash falls
    // inside it whatever the speed: when the OSS dies, dd has been handed
    // the first 40 MiB and none of the rest. The OSS comes back only once
    // dd is seen writing to the mount with data the dead OSS cannot have
    // taken; the client must reconnect and resend for dd to finish.
    let big = pattern(seed.rotate_left(17), (64 << 20) + 12345);
    let half = 40 << 20;
    std::fs::write(lab.path("big.src"), &big).unwrap();
    lab.glint("client", &["lfs", "setstripe", "-c", "2", "-S", "1M", &m("big")]);
    let dd_args =
        [format!("of={}", m("big")), "bs=1M".into(), "iflag=fullblock".into(), "conv=notrunc,fsync".into()];
    let dd_args: Vec<&str> = dd_args.iter().map(String::as_str).collect();
    let (dd, mut feed) = lab.spawn_fed("dd", "client", "dd", &dd_args);
    feed.write_all(&big[..half]).unwrap();
    // dd holds at most one block and the pipe one more: the rest of the
    // first half has been written to the file.
    lab.kill(oss);

    let fed = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let (fed, rest) = (fed.clone(), big[half..].to_vec());
        std::thread::spawn(move || {
            for chunk in rest.chunks(64 << 10) {
                if feed.write_all(chunk).is_err() {
                    return; // dd died; the test says why.
                }
                fed.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        })
    };
    // dd is in write(), fsync() or close() on the mount (with the last
    // block of the first half, or the first of the second), which the dead
    // OSS cannot answer; it is never in a system call on its output but
    // for one of those.
    let dd_pid = lab.procs[dd].child.id();
    lab.wait_for(dd, "writing to the mount", |_| {
        syscall_of(dd_pid).is_some_and(|s| [libc::SYS_write, libc::SYS_fsync, libc::SYS_close].contains(&s))
    });
    eprintln!(
        "dd in system call {:?} with {} bytes of the second half fed; restarting the OSS",
        syscall_of(dd_pid),
        fed.load(Ordering::Relaxed)
    );
    lab.restart(oss);
    lab.wait_log(oss, "serving 2 target(s)", 2);
    lab.wait_success(dd);
    feeder.join().unwrap();
    assert_eq!(fed.load(Ordering::Relaxed), big.len() - half);

    let big_src = lab.path("big.src").to_str().unwrap().to_string();
    lab.run("client", "cmp", &[&big_src, &m("big")]);
    assert_eq!(std::fs::metadata(mnt.join("big")).unwrap().len(), big.len() as u64);
    lab.run("client", "cmp", &[&src, &m("small")]);

    lab.glint("client", &["umount", mnt.to_str().unwrap()]);
    lab.wait_success(mount);
    assert_eq!(glint_mount_source(&mnt.canonicalize().unwrap()), None);
    lab.stop(oss);
    lab.stop(mds);
}

const PORTAL: u16 = 7;
const ECHO: u16 = 1;
/// The server pulls the client's bytes and checks them against `pattern`.
const PULL: u16 = 2;
/// The server pushes `pattern` bytes into the client's range.
const PUSH: u16 = 3;

fn handle_of(body: &[u8]) -> Result<(BulkHandle, u64), Errno> {
    let word = |i: usize| body.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    match (word(0), word(1), word(2), word(3)) {
        (Some(addr), Some(len), Some(key), Some(seed)) => {
            Ok((BulkHandle { addr, len, key, rkey: None }, seed))
        }
        _ => Err(Errno::EINVAL),
    }
}

fn handle_body(h: BulkHandle, seed: u64) -> Vec<u8> {
    [h.addr, h.len, h.key, seed].iter().flat_map(|w| w.to_le_bytes()).collect()
}

struct PatternService;

impl Service for PatternService {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            match req.opcode {
                ECHO => Ok(req.body().to_vec()),
                PULL => {
                    let (h, seed) = handle_of(req.body())?;
                    let buf = IoBuf::alloc(h.len as usize, None).map_err(Errno::from)?;
                    let (buf, r) = req.bulk.get(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    if buf[..] != pattern(seed, h.len as usize)[..] {
                        return Err(Errno::EIO);
                    }
                    Ok(Vec::new())
                }
                PUSH => {
                    let (h, seed) = handle_of(req.body())?;
                    let mut buf = IoBuf::alloc(h.len as usize, None).map_err(Errno::from)?;
                    buf.copy_from_slice(&pattern(seed, h.len as usize));
                    let (_, r) = req.bulk.put(h, buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(Vec::new())
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        })
    }
}

/// Runs `f` on a thread of its own inside `host`'s network namespace, on
/// a current-thread runtime (so every socket it makes is made there).
fn on_host<T: Send + 'static>(
    lab: &Lab,
    host: &str,
    f: impl FnOnce() -> Pin<Box<dyn Future<Output = T>>> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = lab.ns_file(host);
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a namespace fd we own.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        drop(ns);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(f())
    })
}

/// The fabric alone across two hosts: RPC and bulk both ways between a
/// server in one network namespace and a client in another.
#[test]
fn rpc_and_bulk_between_two_hosts() {
    let lab = Lab::new(&["server", "client"]);
    let server_nid = lab.nid("server");
    let client_nid = lab.nid("client");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = on_host(&lab, "server", move || {
        Box::pin(async move {
            let ep = Endpoint::start(EndpointConfig::server(server_nid)).await.expect("server endpoint");
            ep.register(PORTAL, Arc::new(PatternService));
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            ep.shutdown();
        })
    });
    ready_rx.recv().expect("the server thread failed to start; see its panic above");

    let seed = random_u64();
    let client = on_host(&lab, "client", move || {
        Box::pin(async move {
            let ep = Endpoint::start(EndpointConfig::client(client_nid)).await.expect("client endpoint");
            let srv = ProcessId { nid: server_nid, pid: Pid::SERVER };

            let r = ep.call(srv, PORTAL, ECHO, b"across namespaces").await.unwrap();
            assert_eq!(r.body(), b"across namespaces");

            // The server pulls 5 MiB the client exposed for reading.
            let len = (5 << 20) + 123;
            let mut data = IoBuf::alloc(len, None).unwrap();
            data.copy_from_slice(&pattern(seed, len));
            let ex = ep.registry().expose(&data, Access::Read);
            ep.call(srv, PORTAL, PULL, &handle_body(ex.handle(), seed)).await.unwrap();
            drop(ex);

            // The server pushes 3 MiB into a range exposed for writing.
            let len = 3 << 20;
            let sink = IoBuf::alloc(len, None).unwrap();
            let ex = ep.registry().expose(&sink, Access::Write);
            ep.call(srv, PORTAL, PUSH, &handle_body(ex.handle(), !seed)).await.unwrap();
            drop(ex);
            assert!(sink[..] == pattern(!seed, len)[..], "pushed bytes differ");

            // A handle for bytes the client never exposed is refused.
            let ex = ep.registry().expose(&data, Access::Read);
            let forged = BulkHandle { key: ex.handle().key ^ 0x5a5a, ..ex.handle() };
            let err = ep.call(srv, PORTAL, PULL, &handle_body(forged, seed)).await.err().expect("refused");
            assert!(matches!(err.errno(), Errno::EACCES | Errno::EFAULT), "{err}");
            assert_eq!(ep.call(srv, PORTAL, ECHO, b"still up").await.unwrap().body(), b"still up");

            ep.shutdown();
        })
    });
    let result = client.join();
    let _ = stop_tx.send(());
    server.join().expect("server thread");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
