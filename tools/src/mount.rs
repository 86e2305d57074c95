//! `glint mount SPEC DIR`, `glint umount DIR`, and the same as
//! `mount.fuse.glint` so `mount -t fuse.glint` and /etc/fstab work.

use anyhow::{Context, Result, bail};
use client::fuse::MountOptions;
use std::path::PathBuf;
use std::process::Command;

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// MGSNID:/FSNAME, as `mount -t lustre` takes it.
    pub spec: String,
    pub dir: PathBuf,
    /// Comma-separated options: ro, rw, allow_other, max_pages_per_rpc=N,
    /// max_rpcs_in_flight=N, short_io_bytes=N, noatime, ... (the ones glint has no use for
    /// are accepted and ignored, as mount does).
    #[arg(short = 'o')]
    pub options: Option<String>,
    /// Go to the background once mounted (default: serve in the foreground).
    #[arg(short = 'd', long)]
    pub daemon: bool,
    /// The port the servers listen on.
    #[arg(long, default_value_t = fabric::tcp::DEFAULT_PORT)]
    pub port: u16,
    /// Serve Prometheus metrics of this mount on this address, e.g. 127.0.0.1:9705.
    #[arg(long)]
    pub metrics: Option<String>,
}

pub fn mount(a: MountArgs) -> Result<()> {
    let mut opts = MountOptions::default();
    for o in a.options.as_deref().unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        if let Some((key, value)) = o.split_once('=')
            && let Some(apply) = tunable_option(key)
        {
            apply(&mut opts.tunables, value).with_context(|| format!("mount option `{o}`"))?;
            continue;
        }
        match o {
            "ro" => opts.read_only = true,
            "rw" => opts.read_only = false,
            "allow_other" => opts.allow_other = true,
            // mount(8) passes these; they mean nothing to a FUSE daemon.
            "defaults" | "noatime" | "relatime" | "nodev" | "nosuid" | "dev" | "suid" | "_netdev"
            | "auto" | "noauto" | "user" | "nouser" | "exec" | "noexec" => {}
            other => eprintln!("glint mount: ignoring option `{other}`"),
        }
    }
    if a.daemon {
        // Re-run ourselves in the foreground, detached, and wait until the
        // mount shows up.
        let exe = std::env::current_exe()?;
        // The daemon runs from `/`, so it never holds the directory it was
        // started in busy (another mount, say) while it serves or while it
        // gives its locks back after an unmount; hence the absolute path.
        let want = std::fs::canonicalize(&a.dir).unwrap_or(a.dir.clone());
        let mut args = vec!["mount".to_string(), a.spec.clone(), want.display().to_string()];
        if let Some(o) = &a.options {
            args.push("-o".into());
            args.push(o.clone());
        }
        args.push("--port".into());
        args.push(a.port.to_string());
        if let Some(m) = &a.metrics {
            args.push("--metrics".into());
            args.push(m.clone());
        }
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new().create(true).append(true).open("/tmp/glint-mount.log")?;
        Command::new(exe)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .current_dir("/")
            .spawn()?;
        for _ in 0..200 {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            if mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&*want.to_string_lossy())) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        bail!("{} did not appear in /proc/mounts; see /tmp/glint-mount.log", a.dir.display());
    }
    opts.tunables.port = a.port;
    let metrics = a.metrics.clone();
    // Held until the file system is unmounted and this function returns.
    let mut lctl = None;
    // As /proc/self/mountinfo will show the mount (the spec's own form, as
    // the FUSE mount gives it), where lfs finds it.
    let instance = crate::lfs::fids::instance_id(
        &a.spec.parse::<client::MountSpec>().map(|s| s.to_string()).unwrap_or(a.spec.clone()),
        &std::fs::canonicalize(&a.dir).unwrap_or(a.dir.clone()).to_string_lossy(),
    );
    client::fuse::mount_then(&a.spec, &a.dir, opts, |client, rt| {
        let registry = crate::metrics::client_registry(client).map_err(std::io::Error::other)?;
        let _in = rt.enter();
        // The mount serves the file system without lctl; only warn.
        match crate::lctl::control::serve(crate::lctl::mount::MountNode::new(
            client,
            registry.clone(),
            instance.clone(),
        )) {
            Ok(registered) => lctl = Some(registered),
            Err(e) => {
                tracing::warn!(error = %e, "lctl will not see this mount");
                eprintln!("glint mount: lctl will not see this mount: {e}");
            }
        }
        let Some(addr) = metrics else { return Ok(()) };
        // Bound here, before serving, so a taken address fails the mount.
        let listener = std::net::TcpListener::bind(&addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot serve metrics on {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        rt.spawn(crate::metrics::http::serve(listener, registry));
        Ok(())
    })
    .with_context(|| format!("mounting {} on {}", a.spec, a.dir.display()))
}

/// The most `-o max_pages_per_rpc` may ask for: 4 MiB, the largest bulk
/// RPC an OSS takes by default (and Lustre's usual ceiling).
const MOUNT_MAX_PAGES_PER_RPC: usize = 1024;

type TunableSetter = fn(&mut client::ClientTunables, &str) -> Result<()>;

/// The client tunables a mount takes as `-o NAME=VALUE`, as their starting
/// values; `lctl set_param` changes them later. `max_pages_per_rpc` also
/// sizes the mount's I/O buffers, so it is the ceiling set_param can raise
/// it to.
fn tunable_option(key: &str) -> Option<TunableSetter> {
    fn number(v: &str) -> Result<usize> {
        v.parse().with_context(|| format!("`{v}` is not a whole number"))
    }
    match key {
        "max_pages_per_rpc" => Some(|t, v| {
            let pages = number(v)?;
            client::check_pages_per_rpc(pages, MOUNT_MAX_PAGES_PER_RPC)?;
            t.rpc_size = pages * client::PAGE_SIZE;
            Ok(())
        }),
        "max_rpcs_in_flight" => Some(|t, v| {
            let n = number(v)?;
            client::check_rpcs_in_flight(n)?;
            t.max_rpcs_in_flight = n;
            Ok(())
        }),
        "short_io_bytes" => Some(|t, v| {
            let n = number(v)?;
            client::check_short_io_bytes(n)?;
            t.short_io_bytes = n;
            Ok(())
        }),
        _ => None,
    }
}

#[derive(clap::Args, Debug)]
pub struct UmountArgs {
    pub dir: PathBuf,
}

pub fn umount(a: UmountArgs) -> Result<()> {
    let st = Command::new("fusermount3").arg("-u").arg(&a.dir).status().context("running fusermount3")?;
    if !st.success() {
        bail!("cannot unmount {} (busy, or not a glint mount)", a.dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunables_as_mount_options() {
        let mut t = client::ClientTunables::default();
        tunable_option("max_pages_per_rpc").unwrap()(&mut t, "1024").unwrap();
        tunable_option("max_rpcs_in_flight").unwrap()(&mut t, "32").unwrap();
        assert_eq!((t.rpc_size, t.max_rpcs_in_flight), (4 << 20, 32));
        let set = tunable_option("max_pages_per_rpc").unwrap();
        assert!(set(&mut t, "2048").unwrap_err().to_string().contains("1024 pages"));
        assert!(set(&mut t, "100").unwrap_err().to_string().contains("power of two"));
        assert!(tunable_option("max_rpcs_in_flight").unwrap()(&mut t, "0").is_err());
        assert_eq!(t.rpc_size, 4 << 20, "a refused value changes nothing");
        tunable_option("short_io_bytes").unwrap()(&mut t, "0").unwrap();
        assert_eq!(t.short_io_bytes, 0);
        assert!(tunable_option("short_io_bytes").unwrap()(&mut t, "40000").is_err());
        assert!(tunable_option("noatime").is_none());
    }
}
