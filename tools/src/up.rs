//! `glint up`, `glint down` and `glint status`: a whole file system on
//! one machine — an MGS/MDS and OSSs on loopback, each a process of its
//! own with a NID of its own, and a FUSE mount — kept under one state
//! directory that the other two commands act on.

use anyhow::{Context, Result, bail};
use fabric::rpc::{Endpoint, EndpointConfig};
use fabric::{Net, NetType, Nid, Pid, ProcessId};
use proto::{FsConfig, MgsReply, MgsRequest, decode, encode, portal};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STATE_FILE: &str = "glint.toml";

fn default_state() -> PathBuf {
    if unsafe { libc::geteuid() } == 0 { PathBuf::from("/var/lib/glint") } else { dirs_home().join(".glint") }
}

fn default_mount() -> PathBuf {
    if unsafe { libc::geteuid() } == 0 { PathBuf::from("/mnt/glint") } else { dirs_home().join("glint") }
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// How many OSTs (one OSS process each).
    #[arg(long, default_value_t = 4)]
    pub osts: u32,
    /// Where targets, logs and process ids live [default: /var/lib/glint as root, ~/.glint otherwise].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Where to mount the file system [default: /mnt/glint as root, ~/glint otherwise].
    #[arg(long)]
    pub mount: Option<PathBuf>,
    #[arg(long, default_value = "glint")]
    pub fsname: String,
    /// The network: tcp (servers on loopback), or o2ib on a host with an
    /// RDMA device (servers on addresses of its interface, see --addr).
    #[arg(long, default_value = "tcp")]
    pub net: String,
    /// With --net o2ib: the servers' addresses on the RDMA interface, the
    /// MDS's first, then one per OSS (rdma_cm listens on one port per
    /// address) [default: the addresses of the RDMA device's netdev].
    #[arg(long, value_delimiter = ',')]
    pub addr: Vec<std::net::IpAddr>,
    /// The port every server listens on.
    #[arg(long, default_value_t = fabric::tcp::DEFAULT_PORT)]
    pub port: u16,
    /// Start the servers but do not mount.
    #[arg(long)]
    pub no_mount: bool,
    /// A cluster spec (TOML): start the part of that file system this host runs.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// This host's name in the spec [default: the system's host name].
    #[arg(long, requires = "spec")]
    pub host: Option<String>,
    /// Prometheus metrics on 127.0.0.1 from this port on: the MDS, each OSS, then the mount.
    #[arg(long, default_value_t = 9700)]
    pub metrics_port: u16,
    /// Size of each OST (e.g. 10G): a loop-mounted ext4 image of that size
    /// per OST, which `lfs df` shows and writes cannot exceed (needs root).
    #[arg(long, value_parser = crate::sized::parse)]
    pub ost_size: Option<u64>,
    /// Size of the MDT, the same way.
    #[arg(long, value_parser = crate::sized::parse)]
    pub mdt_size: Option<u64>,
    /// Seconds that clients which held locks before an OSS restart have to
    /// replay them, while new I/O to its OSTs waits [default: 30]; kept for
    /// later `glint up`s.
    #[arg(long)]
    pub recovery_window: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct StateArgs {
    #[arg(long)]
    pub state: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct ServerState {
    name: String,
    nid: String,
    args: Vec<String>,
}

/// What `glint up` started, so `down` and `status` can find it.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct State {
    fsname: String,
    port: u16,
    mgs: String,
    mount: Option<PathBuf>,
    servers: Vec<ServerState>,
    /// The OSTs this host serves: `up` waits until each has registered.
    #[serde(default)]
    local_osts: Vec<u32>,
    /// The file system's default striping from a cluster spec, set on the
    /// root directory once the MDS runs here.
    #[serde(default)]
    default_stripe: Option<proto::StripeSpec>,
    /// Bytes of each OST's image when the OSTs were made with a size.
    #[serde(default)]
    ost_size: Option<u64>,
    #[serde(default)]
    mdt_size: Option<u64>,
}

impl State {
    fn spec(&self) -> String {
        format!("{}:/{}", self.mgs, self.fsname)
    }

    fn load(dir: &Path) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("no file system under {} (run `glint up` first)", dir.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// The target directories that are loop-mounted images.
    fn sized_dirs(&self, dir: &Path) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if self.mdt_size.is_some() {
            v.push(dir.join("mdt"));
        }
        if self.ost_size.is_some() {
            v.extend(self.local_osts.iter().map(|i| dir.join(format!("ost{i}"))));
        }
        v
    }

    fn save(&self, dir: &Path) -> Result<()> {
        fs::write(dir.join(STATE_FILE), toml::to_string_pretty(self)?)?;
        Ok(())
    }
}

fn pid_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("run").join(format!("{name}.pid"))
}

fn log_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("log").join(format!("{name}.log"))
}

/// The pid in `name`'s pid file if that process is alive and is glint.
fn running(dir: &Path, name: &str) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file(dir, name)).ok()?.trim().parse().ok()?;
    let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let alive = String::from_utf8_lossy(&cmd).contains("glint");
    alive.then_some(pid)
}

fn spawn_daemon(dir: &Path, name: &str, args: &[String], port: u16) -> Result<std::process::Child> {
    let log = fs::OpenOptions::new().create(true).append(true).open(log_file(dir, name))?;
    let exe = std::env::current_exe().context("finding the glint binary")?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env("GLINT_LOG", std::env::var("GLINT_LOG").unwrap_or_else(|_| "info".into()))
        .env("GLINT_PORT", port.to_string())
        // Its own process group: a ^C in the terminal that ran `up` must
        // not stop the file system.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    fs::write(pid_file(dir, name), child.id().to_string())?;
    Ok(child)
}

/// Whether a daemon this command started has exited (and how).
fn exited(child: &mut std::process::Child) -> Option<String> {
    match child.try_wait() {
        Ok(Some(status)) => Some(status.to_string()),
        Ok(None) => None,
        Err(e) => Some(e.to_string()),
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn is_mounted(dir: &Path) -> bool {
    let Ok(m) = fs::read_to_string("/proc/mounts") else { return false };
    let want = dir.to_string_lossy();
    m.lines().any(|l| l.split_whitespace().nth(1) == Some(&want))
}

/// Asks the MGS for the configuration over tcp: an MGS on o2ib answers on
/// tcp at the same address too, so these management probes need no RDMA.
async fn fetch_config(ep: &Endpoint, mgs: Nid, fsname: &str) -> Result<FsConfig> {
    let mgs = Nid::new(mgs.addr, Net::tcp(0));
    let req = MgsRequest::GetConfig { fsname: fsname.to_string() };
    let r = ep.call(ProcessId { nid: mgs, pid: Pid::SERVER }, portal::MGS, 1, &encode(&req)).await?;
    match decode::<MgsReply>("MGS reply", r.body())? {
        MgsReply::Config(c) => Ok(c),
        _ => bail!("unexpected MGS reply"),
    }
}

/// Sets `flag` to `value` in a server's arguments, replacing an earlier
/// value.
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(i) if i + 1 < args.len() => args[i + 1] = value.to_string(),
        _ => args.extend([flag.to_string(), value.to_string()]),
    }
}

async fn probe_endpoint(port: u16) -> Result<Endpoint> {
    let mut cfg = EndpointConfig::client("127.0.0.1@tcp".parse()?);
    cfg.tcp.port = port;
    cfg.retry_limit = Duration::from_secs(2);
    Ok(Endpoint::start(cfg).await?)
}

pub async fn up(a: UpArgs) -> Result<()> {
    let o2ib = match a.net.as_str() {
        "tcp" => false,
        "o2ib" => true,
        other => bail!("--net {other}: the networks are tcp and o2ib"),
    };
    if !o2ib && !a.addr.is_empty() {
        bail!("--addr is for --net o2ib (with tcp every server has a loopback address of its own)");
    }
    if a.osts == 0 || a.osts > 250 {
        bail!("--osts must be 1 to 250");
    }
    let dir = a.state.clone().unwrap_or_else(default_state);
    let mount = if a.no_mount { None } else { Some(a.mount.clone().unwrap_or_else(default_mount)) };
    for sub in ["run", "log"] {
        fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let mut state = if let Some(spec) = &a.spec {
        if a.ost_size.is_some() || a.mdt_size.is_some() {
            bail!(
                "--ost-size and --mdt-size are for `glint up` without a spec: a spec names target directories"
            );
        }
        state_from_spec(spec, a.host.clone(), mount.clone(), a.no_mount)?
    } else {
        match State::load(&dir) {
            Ok(s) => {
                if s.fsname != a.fsname {
                    bail!("{} holds file system `{}`, not `{}`", dir.display(), s.fsname, a.fsname);
                }
                let made_o2ib = s.mgs.parse::<Nid>().is_ok_and(|n| n.net.kind == NetType::O2ib);
                if made_o2ib != o2ib {
                    bail!(
                        "{} holds a file system on {}, not {}; its NIDs cannot change",
                        dir.display(),
                        if made_o2ib { "o2ib" } else { "tcp" },
                        a.net
                    );
                }
                for (what, asked, made) in
                    [("--ost-size", a.ost_size, s.ost_size), ("--mdt-size", a.mdt_size, s.mdt_size)]
                {
                    if asked.is_some() && asked != made {
                        bail!(
                            "{what}: the targets under {} were made {}; a size cannot change after formatting",
                            dir.display(),
                            made.map(|b| format!("with {}", human(b)))
                                .unwrap_or_else(|| "without a size".into())
                        );
                    }
                }
                State { mount: mount.clone().or(s.mount.clone()), ..s }
            }
            Err(_) => {
                let nids = if o2ib { o2ib_nids(&a)? } else { loopback_nids(a.osts) };
                format_new(&dir, &a, mount.clone(), &nids)?
            }
        }
    };
    if let Some(w) = a.recovery_window {
        for s in state.servers.iter_mut().filter(|s| s.args.first().is_some_and(|c| c == "oss")) {
            set_flag(&mut s.args, "--recovery-window", &w.to_string());
        }
    }
    state.save(&dir)?;
    for d in state.sized_dirs(&dir) {
        crate::sized::attach(&d)?;
    }

    let mut started = Vec::new();
    for s in &state.servers {
        match running(&dir, &s.name) {
            Some(pid) if a.recovery_window.is_some() && s.name.starts_with("oss") => println!(
                "{:<6} already running (pid {pid}); its new recovery window applies from its next start",
                s.name
            ),
            Some(pid) => println!("{:<6} already running (pid {pid})", s.name),
            None => {
                let mut child = spawn_daemon(&dir, &s.name, &s.args, state.port)?;
                println!("{:<6} started (pid {})", s.name, child.id());
                if s.name == "mds" {
                    // OSSs register with the MGS as they start: it must be listening.
                    wait_mgs(&dir, &state, &mut child).await?;
                }
                started.push((s.name.clone(), child));
            }
        }
    }
    let ep = probe_endpoint(state.port).await?;
    let mgs: Nid = state.mgs.parse()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let config = loop {
        for (name, child) in started.iter_mut() {
            if let Some(how) = exited(child) {
                let log = log_file(&dir, name);
                bail!("{name} exited while starting ({how}); the end of {}:\n{}", log.display(), tail(&log));
            }
        }
        if let Ok(c) = fetch_config(&ep, mgs, &state.fsname).await
            && state.local_osts.iter().all(|i| c.osts.iter().any(|t| t.index == *i))
        {
            break c;
        }
        if Instant::now() > deadline {
            bail!("the OSTs did not register with the MGS within 30 s; see {}", dir.join("log").display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    if let Some(stripe) = state.default_stripe {
        stripe.validate().map_err(|e| anyhow::anyhow!("default_stripe: {e}"))?;
        let tunables = client::ClientTunables { port: state.port, ..Default::default() };
        let c = client::Client::mount_with(&state.spec(), tunables)
            .await
            .context("connecting to set the default striping")?;
        let op = proto::MdsRequest::SetDirStripe { fid: c.root(), stripe };
        c.md_as(proto::Cred::root(), op).await.context("setting the default striping")?;
    }
    if let Some(m) = &state.mount {
        mount_daemon(&dir, &state, m, &mount_metrics(&a, &state)).await?;
    }
    print_summary(&dir, &state, &config, &mount_metrics(&a, &state));
    Ok(())
}

async fn wait_mgs(dir: &Path, state: &State, mds: &mut std::process::Child) -> Result<()> {
    let ep = probe_endpoint(state.port).await?;
    let mgs: Nid = state.mgs.parse()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if fetch_config(&ep, mgs, &state.fsname).await.is_ok() {
            return Ok(());
        }
        if let Some(how) = exited(mds) {
            bail!(
                "the MDS exited while starting ({how}); the end of its log:\n{}",
                tail(&log_file(dir, "mds"))
            );
        }
        if Instant::now() > deadline {
            bail!("the MGS did not answer within 20 s; see {}", log_file(dir, "mds").display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every server a loopback address of its own, so each is a distinct node
/// with a distinct NID, as on a cluster: the MDS first, then the OSSs.
fn loopback_nids(osts: u32) -> Vec<Nid> {
    let mds = std::iter::once(Nid::new([127, 0, 0, 1].into(), Net::tcp(0)));
    mds.chain(
        (0..osts)
            .map(|i| Nid::new([127, 0, ((i + 2) / 256) as u8, ((i + 2) % 256) as u8].into(), Net::tcp(0))),
    )
    .collect()
}

/// o2ib NIDs for the MDS and each OSS, on this host's RDMA interface.
fn o2ib_nids(a: &UpArgs) -> Result<Vec<Nid>> {
    let devices = fabric::o2ib::list_devices().map_err(|e| {
        anyhow::anyhow!(
            "--net o2ib: {e} on this host (nothing under /sys/class/infiniband, or rdma-core's \
             libibverbs/librdmacm are not installed); use --net tcp"
        )
    })?;
    let wanted = 1 + a.osts as usize;
    let (addrs, from) = if a.addr.is_empty() {
        let names: Vec<String> = devices.iter().map(|d| d.name.clone()).collect();
        let netdevs = rdma_netdevs(&names);
        let host = lnet_shim::interfaces::HostInterfaces::system()?;
        let addrs: Vec<std::net::IpAddr> = netdevs
            .iter()
            .filter_map(|n| host.get(n))
            .filter(|i| !i.loopback)
            .flat_map(|i| i.ipv4.iter().map(|a| std::net::IpAddr::V4(*a)))
            .collect();
        let from = format!("the addresses of {} (the netdevs of {})", netdevs.join(", "), names.join(", "));
        (addrs, from)
    } else {
        (a.addr.clone(), "--addr".to_string())
    };
    if addrs.len() < wanted {
        bail!(
            "--net o2ib: the MDS and {} OSS(s) need {wanted} addresses on the RDMA interface (rdma_cm listens on \
             one port per address), and {from} give {}: {:?}; add addresses (ip addr add ADDR dev NETDEV) and \
             name them with --addr, or use fewer --osts",
            a.osts,
            addrs.len(),
            addrs
        );
    }
    Ok(addrs[..wanted].iter().map(|ip| Nid::new(*ip, Net::o2ib(0))).collect())
}

/// The network interfaces under the RDMA devices' ports (IPoIB, or the
/// Ethernet device of RoCE), as sysfs lists them.
fn rdma_netdevs(devices: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for dev in devices {
        let ports = Path::new("/sys/class/infiniband").join(dev).join("ports");
        let Ok(ports) = fs::read_dir(&ports) else { continue };
        for port in ports.flatten() {
            let Ok(ndevs) = fs::read_dir(port.path().join("gid_attrs/ndevs")) else { continue };
            for nd in ndevs.flatten() {
                if let Ok(name) = fs::read_to_string(nd.path()) {
                    let name = name.trim().to_string();
                    if !name.is_empty() && !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
    }
    out
}

fn format_new(dir: &Path, a: &UpArgs, mount: Option<PathBuf>, nids: &[Nid]) -> Result<State> {
    let mdt = dir.join("mdt");
    if let Some(size) = a.mdt_size {
        crate::sized::create(&mdt, size).context("making the MDT's image")?;
    }
    mds::format(&mdt, &a.fsname).with_context(|| format!("formatting the MDT in {}", mdt.display()))?;
    let mgs = nids[0].to_string();
    let port = a.port.to_string();
    let mut servers = vec![ServerState {
        name: "mds".into(),
        nid: mgs.clone(),
        args: vec![
            "mds".into(),
            "--dir".into(),
            mdt.display().to_string(),
            "--nid".into(),
            mgs.clone(),
            "--port".into(),
            port.clone(),
            "--metrics".into(),
            format!("127.0.0.1:{}", a.metrics_port),
        ],
    }];
    for i in 0..a.osts {
        let odir = dir.join(format!("ost{i}"));
        if let Some(size) = a.ost_size {
            crate::sized::create(&odir, size).with_context(|| format!("making OST {i}'s image"))?;
        }
        fs::create_dir_all(&odir)?;
        ost::ObjectStore::format(&odir, &a.fsname, i).with_context(|| format!("formatting OST {i}"))?;
        let nid = nids[1 + i as usize].to_string();
        servers.push(ServerState {
            name: format!("oss{i}"),
            nid: nid.clone(),
            args: vec![
                "oss".into(),
                "--fsname".into(),
                a.fsname.clone(),
                "--nid".into(),
                nid,
                "--mgs".into(),
                mgs.clone(),
                "--port".into(),
                port.clone(),
                "--ost".into(),
                format!("{i}:{}", odir.display()),
                "--metrics".into(),
                format!("127.0.0.1:{}", a.metrics_port as u32 + 1 + i),
            ],
        });
    }
    println!(
        "formatted {} with 1 MDT and {} OSTs under {}, servers on {}",
        a.fsname,
        a.osts,
        dir.display(),
        nids[0].net
    );
    Ok(State {
        fsname: a.fsname.clone(),
        port: a.port,
        mgs,
        mount,
        servers,
        local_osts: (0..a.osts).collect(),
        default_stripe: None,
        ost_size: a.ost_size,
        mdt_size: a.mdt_size,
    })
}

/// The part of a cluster spec this host runs; its targets are formatted
/// the first time.
fn state_from_spec(
    path: &Path,
    host: Option<String>,
    mount: Option<PathBuf>,
    no_mount: bool,
) -> Result<State> {
    let spec = crate::spec::ClusterSpec::load(path)?;
    let host = host.unwrap_or_else(crate::spec::hostname);
    let servers = spec.local_servers(&host);
    let mount = if no_mount { None } else { mount.filter(|_| false).or_else(|| spec.local_mount(&host)) };
    if servers.is_empty() && mount.is_none() {
        bail!(
            "host `{host}` has no role in {} (use --host to name this host as the spec does)",
            path.display()
        );
    }
    let mut local_osts = Vec::new();
    for s in &servers {
        for (is_mdt, index, dir) in &s.targets {
            if *is_mdt {
                if !dir.join(mds::MDT_DB).exists() {
                    mds::format(dir, &spec.fsname)
                        .with_context(|| format!("formatting the MDT in {}", dir.display()))?;
                    println!("formatted {}-MDT0000 in {}", spec.fsname, dir.display());
                }
            } else {
                local_osts.push(*index);
                if ost::ObjectStore::open(dir, &spec.fsname, *index).is_err() {
                    ost::ObjectStore::format(dir, &spec.fsname, *index)
                        .with_context(|| format!("formatting OST {index} in {}", dir.display()))?;
                    println!("formatted {}-OST{index:04x} in {}", spec.fsname, dir.display());
                }
            }
        }
    }
    Ok(State {
        fsname: spec.fsname.clone(),
        port: spec.port,
        mgs: spec.mds.nid.clone(),
        mount,
        default_stripe: match (&spec.default_stripe, servers.iter().any(|s| s.name == "mds")) {
            (Some(d), true) => Some(proto::StripeSpec {
                stripe_count: d.count,
                stripe_size: d.size.as_deref().map(crate::spec::parse_size).transpose()?,
                stripe_offset: None,
            }),
            _ => None,
        },
        ost_size: None,
        mdt_size: None,
        servers: servers
            .into_iter()
            .map(|s| ServerState { name: s.name, nid: s.nid, args: s.args })
            .collect(),
        local_osts,
    })
}

#[derive(clap::Args, Debug)]
pub struct SystemdArgs {
    /// The cluster spec (TOML).
    #[arg(long)]
    pub spec: PathBuf,
    /// The host to print units for [default: this host].
    #[arg(long)]
    pub host: Option<String>,
    /// Write the units into this directory instead of printing them.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `glint systemd`: the unit files of one host of a cluster spec.
pub fn systemd(a: SystemdArgs) -> Result<()> {
    let spec = crate::spec::ClusterSpec::load(&a.spec)?;
    let host = a.host.unwrap_or_else(crate::spec::hostname);
    let exe = std::env::current_exe()?.display().to_string();
    let units = spec.systemd_units(&host, &exe);
    if units.is_empty() {
        bail!("host `{host}` has no role in {}", a.spec.display());
    }
    for (name, body) in units {
        match &a.out {
            Some(dir) => {
                fs::create_dir_all(dir)?;
                fs::write(dir.join(&name), body)?;
                println!("wrote {}", dir.join(&name).display());
            }
            None => println!("# {name}\n{body}"),
        }
    }
    Ok(())
}

/// The mount's metrics address: the port after the servers'.
fn mount_metrics(a: &UpArgs, state: &State) -> String {
    format!("127.0.0.1:{}", a.metrics_port as usize + state.servers.len())
}

/// Where a server serves its metrics, from its command line.
fn metrics_of(s: &ServerState) -> Option<&str> {
    s.args.iter().position(|x| x == "--metrics").and_then(|i| s.args.get(i + 1)).map(|x| x.as_str())
}

async fn mount_daemon(dir: &Path, state: &State, m: &Path, metrics: &str) -> Result<()> {
    if is_mounted(m) {
        if running(dir, "mount").is_some() {
            println!("mount  already mounted on {}", m.display());
            return Ok(());
        }
        // A mount whose daemon died: its directory only says "Transport
        // endpoint is not connected". Clear it before mounting again.
        let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(m).status();
    }
    fs::create_dir_all(m).with_context(|| format!("creating mount point {}", m.display()))?;
    let args = vec![
        "mount".to_string(),
        state.spec(),
        m.display().to_string(),
        "--port".into(),
        state.port.to_string(),
        "--metrics".into(),
        metrics.to_string(),
    ];
    let mut child = spawn_daemon(dir, "mount", &args, state.port)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(m) {
        if let Some(how) = exited(&mut child) {
            bail!("the mount exited ({how}); the end of its log:\n{}", tail(&log_file(dir, "mount")));
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not appear in /proc/mounts within 20 s; see {}",
                m.display(),
                log_file(dir, "mount").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn print_summary(dir: &Path, state: &State, config: &FsConfig, mount_metrics: &str) {
    println!();
    println!("glint file system `{}` is up", state.fsname);
    for s in &state.servers {
        let pid = running(dir, &s.name).map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let targets = if s.name == "mds" {
            format!("{}-MDT0000 + MGS", state.fsname)
        } else {
            let idx: u32 = s.name.trim_start_matches("oss").parse().unwrap_or(0);
            format!("{}-OST{idx:04x}", state.fsname)
        };
        println!("  {:<6} {:<22} {:<16} pid {pid}", s.name, targets, s.nid);
    }
    for (what, size) in [("OST", state.ost_size), ("MDT", state.mdt_size)] {
        if let Some(b) = size {
            println!("  each {what} is a {} ext4 image, loop-mounted on its directory", human(b));
        }
    }
    let mut metrics: Vec<String> = state.servers.iter().filter_map(metrics_of).map(String::from).collect();
    if state.mount.is_some() {
        metrics.push(mount_metrics.to_string());
    }
    if !metrics.is_empty() {
        println!(
            "  metrics: {}",
            metrics.iter().map(|m| format!("http://{m}/metrics")).collect::<Vec<_>>().join(" ")
        );
    }
    println!("  {} OSTs registered with the MGS at {} (port {})", config.osts.len(), state.mgs, state.port);
    match &state.mount {
        Some(m) => {
            println!("  mounted {} on {}", state.spec(), m.display());
            println!();
            println!("Use it:   cd {} && dd if=/dev/zero of=file bs=1M count=100", m.display());
            println!(
                "          glint lfs setstripe -c -1 {}/wide && glint lfs getstripe {}/wide",
                m.display(),
                m.display()
            );
            println!("          glint lfs df -h {}", m.display());
        }
        None => println!("  not mounted: glint mount {} DIR", state.spec()),
    }
    if state.port != fabric::tcp::DEFAULT_PORT {
        println!(
            "Port:     {} (not 988): export GLINT_PORT={} for glint lfs and other clients",
            state.port, state.port
        );
    }
    println!("Status:   glint status --state {}", dir.display());
    println!("Stop:     glint down --state {}", dir.display());
}

fn stop(dir: &Path, name: &str) -> bool {
    let Some(pid) = running(dir, name) else {
        let _ = fs::remove_file(pid_file(dir, name));
        return false;
    };
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while running(dir, name).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if running(dir, name).is_some() {
        eprintln!("{name} did not stop on SIGTERM within 15 s; killing it");
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = fs::remove_file(pid_file(dir, name));
    true
}

pub fn down(a: StateArgs) -> Result<()> {
    let dir = a.state.unwrap_or_else(default_state);
    let state = State::load(&dir)?;
    let mut stopped = 0;
    if let Some(m) = &state.mount
        && is_mounted(m)
    {
        let ok = Command::new("fusermount3").arg("-u").arg(m).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            bail!(
                "{} is busy (a shell or program has it open); leave it and run `glint down` again",
                m.display()
            );
        }
        println!("unmounted {}", m.display());
    }
    if stop(&dir, "mount") {
        stopped += 1;
    }
    // OSSs first, then the MDS: the MDS may still be destroying objects.
    for s in state.servers.iter().rev() {
        if stop(&dir, &s.name) {
            println!("stopped {}", s.name);
            stopped += 1;
        }
    }
    for d in state.sized_dirs(&dir) {
        crate::sized::detach(&d)?;
    }
    if stopped == 0 {
        println!("nothing was running for {}", dir.display());
    } else {
        println!(
            "glint file system `{}` is down; its data stays in {} (`glint up --state {}` brings it back)",
            state.fsname,
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

pub async fn status(a: StateArgs) -> Result<i32> {
    let dir = a.state.unwrap_or_else(default_state);
    let state = State::load(&dir)?;
    let mut healthy = true;
    println!("file system `{}` ({}) under {}", state.fsname, state.spec(), dir.display());
    let ep = probe_endpoint(state.port).await?;
    let config = fetch_config(&ep, state.mgs.parse()?, &state.fsname).await.ok();
    // Each target is asked on its own, briefly, so one dead server shows
    // as DOWN without hiding the others.
    let tunables = client::ClientTunables {
        retry_limit: Duration::from_secs(2),
        port: state.port,
        ..Default::default()
    };
    let client = client::Client::mount_with(&state.spec(), tunables).await.ok();
    let mut space: Option<(proto::StatFs, Vec<(u32, proto::StatFs)>)> = None;
    // OSTs in their recovery window after a restart: I/O waits there.
    let mut recovering = Vec::new();
    if let Some(c) = &client
        && let Ok(proto::MdsReply::Statfs(m)) = c.md(proto::MdsRequest::Statfs).await
    {
        let mut osts = Vec::new();
        for t in config.iter().flat_map(|c| c.osts.iter()) {
            if let Ok(proto::OstReply::Statfs(s)) = c.ost(t.index, &proto::OstRequest::Statfs).await {
                osts.push((t.index, s));
            }
            let connect = proto::OstRequest::Connect { fsname: state.fsname.clone(), index: t.index };
            if let Ok(proto::OstReply::Connected { recovering: true, .. }) = c.ost(t.index, &connect).await {
                recovering.push(t.index);
            }
        }
        space = Some((m, osts));
    }
    println!(
        "{:<6} {:<16} {:<10} {:<10} {:>18} {:>18}",
        "SERVER", "NID", "PROCESS", "HEALTH", "SIZE", "AVAIL"
    );
    for s in &state.servers {
        let pid = running(&dir, &s.name);
        let (health, size, avail) = if s.name == "mds" {
            let up = config.is_some();
            let (size, avail) = match &space {
                Some((m, _)) => (format!("{} inodes", m.files - m.ffree), format!("{} free", m.ffree)),
                None => ("-".into(), "-".into()),
            };
            (if up { "healthy" } else { "DOWN" }, size, avail)
        } else {
            let idx: u32 = s.name.trim_start_matches("oss").parse().unwrap_or(0);
            match space.as_ref().and_then(|(_, o)| o.iter().find(|(i, _)| *i == idx)) {
                Some((_, st)) => (
                    if recovering.contains(&idx) { "recovering" } else { "healthy" },
                    human(st.blocks * st.bsize as u64),
                    human(st.bavail * st.bsize as u64),
                ),
                None => ("DOWN", "-".into(), "-".into()),
            }
        };
        if health == "DOWN" || pid.is_none() {
            healthy = false;
        }
        let p = pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "stopped".into());
        println!("{:<6} {:<16} {:<10} {:<10} {:>18} {:>18}", s.name, s.nid, p, health, size, avail);
    }
    if !recovering.is_empty() {
        println!(
            "recovering: OSTs {recovering:?} wait up to their recovery window for clients that held locks before \
             a restart (`glint lctl get_param obdfilter.*.recovery_status`); I/O to them waits until then"
        );
    }
    match &state.mount {
        Some(m) if is_mounted(m) => println!("mount  {} on {}", state.spec(), m.display()),
        Some(m) => {
            healthy = false;
            println!(
                "mount  NOT mounted on {} (`glint up --state {}` mounts it again)",
                m.display(),
                dir.display()
            );
        }
        None => {}
    }
    Ok(if healthy { 0 } else { 1 })
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}
