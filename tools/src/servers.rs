//! `glint mkfs`, `glint mds` and `glint oss`: format targets and run the
//! servers in the foreground until SIGINT or SIGTERM.

use anyhow::{Context, Result, bail};
use fabric::Nid;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct MkfsArgs {
    /// Format a metadata target (with the MGS beside it).
    #[arg(long, conflicts_with = "ost")]
    pub mdt: bool,
    /// Format an object storage target.
    #[arg(long)]
    pub ost: bool,
    #[arg(long, default_value = "glint")]
    pub fsname: String,
    /// The OST's index.
    #[arg(long, required_if_eq("ost", "true"))]
    pub index: Option<u32>,
    /// The directory that will hold the target.
    pub dir: PathBuf,
}

pub fn mkfs(a: MkfsArgs) -> Result<()> {
    if a.mdt {
        mds::format(&a.dir, &a.fsname).with_context(|| format!("formatting MDT in {}", a.dir.display()))?;
        println!("formatted {}-MDT0000 (with the MGS) in {}", a.fsname, a.dir.display());
    } else if a.ost {
        let index = a.index.context("--ost needs --index")?;
        std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
        ost::ObjectStore::format(&a.dir, &a.fsname, index)
            .with_context(|| format!("formatting OST {index} in {}", a.dir.display()))?;
        println!("formatted {}-OST{index:04x} in {}", a.fsname, a.dir.display());
    } else {
        bail!("say which target to format: --mdt or --ost");
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct MdsArgs {
    /// The formatted MDT directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// The NID to serve on, e.g. 127.0.0.1@tcp, or 10.0.0.1@o2ib (served
    /// over tcp on the same address too, and only so without RDMA).
    #[arg(long)]
    pub nid: Nid,
    #[arg(long, default_value_t = fabric::tcp::DEFAULT_PORT)]
    pub port: u16,
    /// Address for Prometheus metrics, e.g. 127.0.0.1:9700.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Run requests from root on clients as UID:GID (Lustre's root_squash).
    #[arg(long, value_parser = parse_squash)]
    pub root_squash: Option<(u32, u32)>,
}

fn parse_squash(s: &str) -> std::result::Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("expected UID:GID")?;
    Ok((u.parse().map_err(|_| format!("bad uid `{u}`"))?, g.parse().map_err(|_| format!("bad gid `{g}`"))?))
}

pub async fn mds(a: MdsArgs) -> Result<()> {
    let cfg = mds::MdsConfig {
        dir: a.dir.clone(),
        nid: a.nid,
        port: a.port,
        metrics: a.metrics.clone(),
        root_squash: a.root_squash,
    };
    let h = mds::Mds::start(cfg).await.with_context(|| format!("starting the MDS on {}", a.dir.display()))?;
    let registry = crate::metrics::mds_registry(&h)?;
    if let Some(addr) = &a.metrics {
        crate::metrics::serve(addr, registry.clone()).await?;
    }
    let _lctl = lctl_serve(crate::lctl::servers::MdsNode::new(&h, registry));
    eprintln!("glint mds: {} serving on {} port {}", h.mds.mdt().fsname(), served(&h.endpoint), a.port);
    wait_for_stop().await;
    h.endpoint.shutdown();
    eprintln!("glint mds: stopped");
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct OssArgs {
    #[arg(long, default_value = "glint")]
    pub fsname: String,
    #[arg(long)]
    pub nid: Nid,
    /// The MGS's NID.
    #[arg(long)]
    pub mgs: Nid,
    #[arg(long, default_value_t = fabric::tcp::DEFAULT_PORT)]
    pub port: u16,
    /// A target to serve, as INDEX:DIR; repeat for several.
    #[arg(long = "ost", required = true, value_parser = parse_target)]
    pub osts: Vec<ost::TargetConfig>,
    /// Address for Prometheus metrics, e.g. 127.0.0.1:9701.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Seconds that the clients which held locks before a restart have to
    /// replay them, while new locks wait (Lustre's `recovery_time_soft`).
    #[arg(long, default_value_t = ost::ldlm::LdlmConfig::default().recovery_window.as_secs())]
    pub recovery_window: u64,
}

fn parse_target(s: &str) -> std::result::Result<ost::TargetConfig, String> {
    let (i, d) = s.split_once(':').ok_or("expected INDEX:DIR")?;
    Ok(ost::TargetConfig { index: i.parse().map_err(|_| format!("bad OST index `{i}`"))?, dir: d.into() })
}

pub async fn oss(a: OssArgs) -> Result<()> {
    let mut cfg = ost::OssConfig::new(&a.fsname, a.nid, a.mgs, a.osts.clone());
    cfg.port = a.port;
    cfg.metrics = a.metrics.clone();
    cfg.ldlm.recovery_window = std::time::Duration::from_secs(a.recovery_window);
    let h = ost::Oss::start(cfg).await.context("starting the OSS")?;
    let registry = crate::metrics::oss_registry(&h)?;
    if let Some(addr) = &a.metrics {
        crate::metrics::serve(addr, registry.clone()).await?;
    }
    let _lctl = lctl_serve(crate::lctl::servers::OssNode::new(&h, registry));
    eprintln!("glint oss: serving {} target(s) on {} port {}", a.osts.len(), served(&h.endpoint), a.port);
    wait_for_stop().await;
    h.endpoint.shutdown();
    for (_, t) in h.oss.targets() {
        if let Err(e) = t.store.sync_all() {
            eprintln!("glint oss: sync on stop failed: {e}");
        }
    }
    eprintln!("glint oss: stopped");
    Ok(())
}

/// The NIDs a server answers on, and why not on o2ib when it was asked to.
fn served(ep: &fabric::rpc::Endpoint) -> String {
    let nids: Vec<String> = ep.nids().iter().map(|n| n.to_string()).collect();
    match ep.o2ib_down() {
        Some(why) => format!("{} only (the o2ib NI is down: {why})", nids.join(",")),
        None => nids.join(","),
    }
}

/// Makes this server visible to `lctl` on this node. A server without
/// it still serves the file system, so a failure is only a warning.
fn lctl_serve(
    node: std::sync::Arc<dyn crate::lctl::params::Node>,
) -> Option<crate::lctl::rundir::Registered> {
    crate::lctl::control::serve(node)
        .inspect_err(|e| {
            tracing::warn!(error = %e, "lctl will not see this process");
            eprintln!("glint: lctl will not see this process: {e}");
        })
        .ok()
}

async fn wait_for_stop() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
