//! The MDS and MGS as one server: the namespace ([`Mdt`]) and the
//! configuration ([`Mgs`]) served on their portals, and the background
//! work that keeps creates from waiting on OSTs — precreated object pools
//! topped up, OST free space tracked for the allocator, and the destroy
//! log drained to the OSTs.

use crate::{MdsError, Mdt, Mgs, Opened, XattrMode};
use fabric::metrics::OpHistograms;
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Errno, Nid, Pid, ProcessId};
use proto::{
    Attr, DirEntry, Fid, Layout, MdsCall, MdsReply, MdsRequest, OstCall, OstReply, OstRequest, TargetInfo,
    TargetKind, decode, encode, portal,
};
use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The MDT's database inside its target directory.
pub const MDT_DB: &str = "mdt.redb";
/// Listing replies (readdir, getattr_many) stay well inside one immediate
/// message.
const READDIR_BYTES: usize = 48 * 1024;
/// Xattr values travel in immediate messages too.
const XATTR_WIRE_MAX: usize = 60 * 1024;
/// Objects asked of one OST per precreate round.
const PRECREATE_BATCH: u32 = 512;

#[derive(Clone, Debug)]
pub struct MdsConfig {
    pub dir: PathBuf,
    pub nid: Nid,
    pub port: u16,
    pub metrics: Option<String>,
    /// Lustre's root_squash: requests from uid 0 on any client run as this
    /// uid:gid instead.
    pub root_squash: Option<(u32, u32)>,
}

/// Creates the MDT and MGS stores of a new file system under `dir`.
pub fn format(dir: &Path, fsname: &str) -> Result<(), MdsError> {
    std::fs::create_dir_all(dir).map_err(|e| MdsError::Store(format!("{}: {e}", dir.display())))?;
    Mdt::format(dir.join(MDT_DB), fsname)?.shutdown();
    Mgs::open(dir).map_err(|e| MdsError::Store(e.to_string()))?;
    Ok(())
}

/// Counters per operation, for metrics and `lctl get_param mdt.*.md_stats`.
#[derive(Default, Debug)]
pub struct MdsStats {
    pub ops: [AtomicU64; 32],
    pub precreated: AtomicU64,
    pub destroyed: AtomicU64,
}

pub struct Mds {
    root_squash: Option<(u32, u32)>,
    mdt: Arc<Mdt>,
    mgs: Arc<Mgs>,
    ep: Endpoint,
    refill: Notify,
    /// OSTs whose orphan objects this process has had destroyed: until
    /// then nothing is precreated on them.
    orphans_cleaned: Mutex<HashSet<u32>>,
    pub stats: MdsStats,
    /// Time to serve each operation.
    latency: OpHistograms,
}

/// A running MDS/MGS.
pub struct MdsHandle {
    pub endpoint: Endpoint,
    pub mds: Arc<Mds>,
}

fn mds_errno(e: MdsError) -> Errno {
    e.errno()
}

impl Mds {
    pub async fn start(cfg: MdsConfig) -> Result<MdsHandle, MdsError> {
        let mdt = Arc::new(Mdt::open(cfg.dir.join(MDT_DB))?);
        let target_name = format!("{}-MDT0000", mdt.fsname());
        let mgs = Mgs::open(&cfg.dir).map_err(|e| MdsError::Store(e.to_string()))?;
        let mut ecfg = EndpointConfig::server_at(cfg.nid);
        ecfg.tcp.port = cfg.port;
        let ep = Endpoint::start(ecfg).await.map_err(|e| MdsError::Store(format!("cannot listen: {e}")))?;
        let nids = ep.nids();
        if let Some(why) = ep.o2ib_down() {
            tracing::warn!(nid = %cfg.nid, reason = why, "the o2ib NI is down: the MDS and MGS serve over tcp only");
        }
        let target = TargetInfo { kind: TargetKind::Mdt, index: 0, nids, metrics: cfg.metrics.clone() };
        mgs.register(mdt.fsname(), target).map_err(|e| MdsError::Store(e.to_string()))?;
        let mds = Arc::new(Mds {
            root_squash: cfg.root_squash,
            mdt,
            mgs: mgs.clone(),
            ep: ep.clone(),
            refill: Notify::new(),
            orphans_cleaned: Mutex::new(HashSet::new()),
            stats: MdsStats::default(),
            latency: OpHistograms::new(
                fabric::metrics::latency_histogram(
                    "glint_mds_op_duration_seconds",
                    "Time the MDS takes to serve an operation, its commit included, per operation.",
                    &["target", "op"],
                ),
                &[&target_name],
            ),
        });
        ep.register(portal::MGS, mgs);
        ep.register(portal::MDS, mds.clone());
        tokio::spawn(mds.clone().keep_pools_full());
        tokio::spawn(mds.clone().drain_destroy_log());
        tracing::info!(nids = ?ep.nids(), fsname = mds.mdt.fsname(), "MDS and MGS serving");
        Ok(MdsHandle { endpoint: ep, mds })
    }

    pub fn mdt(&self) -> &Arc<Mdt> {
        &self.mdt
    }

    pub fn mgs(&self) -> &Arc<Mgs> {
        &self.mgs
    }

    /// Operation latencies, labelled `target` and `op`.
    pub fn latency(&self) -> &prometheus::HistogramVec {
        self.latency.vec()
    }

    /// Each operation served so far, with its times in microseconds
    /// (`mdt.*.md_stats`).
    pub fn op_summaries(&self) -> Vec<(String, fabric::metrics::SampleSummary)> {
        self.latency.summaries()
    }

    fn osts(&self) -> Vec<TargetInfo> {
        self.mgs.config(self.mdt.fsname()).map(|c| c.osts).unwrap_or_default()
    }

    async fn ost(&self, t: &TargetInfo, op: OstRequest) -> Result<OstReply, Errno> {
        let nid = self.ep.pick_nid(&t.nids).ok_or(Errno::EHOSTUNREACH)?;
        let peer = ProcessId { nid, pid: Pid::SERVER };
        let opcode = op.opcode();
        let r = self
            .ep
            .call(peer, portal::OST, opcode, &encode(&OstCall { target: t.index, op }))
            .await
            .map_err(|e| e.errno())?;
        decode::<OstReply>("OST reply", r.body()).map_err(|e| e.errno())
    }

    /// Tops up each OST's pool of precreated objects and refreshes its free
    /// space, every second and whenever a create finds a pool low.
    async fn keep_pools_full(self: Arc<Self>) {
        loop {
            let osts = self.osts();
            let mut tasks = tokio::task::JoinSet::new();
            for t in osts.iter().cloned() {
                let me = self.clone();
                tasks.spawn(async move {
                    me.mdt.pools().add_ost(t.index);
                    if let Ok(OstReply::Statfs(s)) = me.ost(&t, OstRequest::Statfs).await {
                        me.mdt.pools().set_ost_space(
                            t.index,
                            s.bavail * s.bsize as u64,
                            s.blocks * s.bsize as u64,
                        );
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            // Small batches first, so a new OST is usable within one round
            // trip; the loop comes straight back while pools are still low.
            let wanted = self.mdt.pools().refill_wanted();
            for (idx, count) in wanted.iter().copied() {
                let Some(t) = osts.iter().find(|t| t.index == idx).cloned() else { continue };
                let me = self.clone();
                tasks.spawn(async move {
                    if let Err(e) = me.precreate(&t, count.min(PRECREATE_BATCH)).await {
                        tracing::warn!(ost = idx, error = %e, "precreate failed");
                    }
                });
            }
            let refilled = !tasks.is_empty();
            while tasks.join_next().await.is_some() {}
            if refilled {
                continue;
            }
            tokio::select! {
                _ = self.refill.notified() => {}
                _ = self.mgs.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Has OST `t` destroy the objects this MDS precreated there in an
    /// earlier run and never used (its pools are lost with the process),
    /// once per OST per run, before anything is precreated on it.
    async fn destroy_orphans(&self, t: &TargetInfo) -> Result<(), Errno> {
        if self.orphans_cleaned.lock().unwrap_or_else(|e| e.into_inner()).contains(&t.index) {
            return Ok(());
        }
        let seq = Fid::ost_seq(t.index);
        let last_used = self.mdt.last_used_object(t.index, seq).map_err(mds_errno)?;
        match self.ost(t, OstRequest::DestroyOrphans { seq, last_used }).await? {
            OstReply::LastId { oid, .. } => {
                self.mdt.pools().set_created(t.index, seq, oid);
                self.orphans_cleaned.lock().unwrap_or_else(|e| e.into_inner()).insert(t.index);
                tracing::info!(ost = t.index, last_used, last_id = oid, "orphan objects destroyed");
                Ok(())
            }
            _ => Err(Errno::EPROTO),
        }
    }

    async fn precreate(&self, t: &TargetInfo, count: u32) -> Result<(), Errno> {
        self.destroy_orphans(t).await?;
        let seq = Fid::ost_seq(t.index);
        let first_oid = self.mdt.pools().next_precreate(t.index, seq).ok_or(Errno::ENOSPC)?;
        let count = count.min(proto::ost::MAX_PRECREATE).min(u32::MAX - first_oid + 1);
        match self.ost(t, OstRequest::Precreate { seq, first_oid, count }).await? {
            OstReply::Precreated { seq, first_oid, count } => {
                let added =
                    self.mdt.pools().add_precreated(t.index, seq, first_oid, count).map_err(mds_errno)?;
                self.stats.precreated.fetch_add(added as u64, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(Errno::EPROTO),
        }
    }

    /// Sends the objects of deleted files to their OSTs for destruction.
    async fn drain_destroy_log(self: Arc<Self>) {
        loop {
            let pending = self.mdt.destroy_log_pending(256).unwrap_or_default();
            let mut done = Vec::new();
            let osts = self.osts();
            for (id, obj) in &pending {
                let Some(t) = osts.iter().find(|t| t.index == obj.ost_idx) else { continue };
                match self.ost(t, OstRequest::Destroy { fid: obj.fid }).await {
                    Ok(_) | Err(Errno::ENOENT) => done.push(*id),
                    Err(e) => {
                        tracing::debug!(ost = obj.ost_idx, fid = %obj.fid, error = %e, "destroy deferred")
                    }
                }
            }
            let drained = done.len();
            if !done.is_empty() {
                self.stats.destroyed.fetch_add(done.len() as u64, Ordering::Relaxed);
                // The trim is a group-committed write: it blocks, so it runs
                // off the async runtime.
                let mdt = self.mdt.clone();
                let trimmed = tokio::task::spawn_blocking(move || mdt.destroy_log_done(&done))
                    .await
                    .unwrap_or(Err(crate::MdsError::Shutdown));
                if let Err(e) = trimmed {
                    tracing::warn!(error = %e, "cannot trim the destroy log");
                }
            }
            if drained < 256 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    fn with_layout(&self, attr: Attr) -> Result<MdsReply, Errno> {
        Ok(MdsReply::Attr { layout: self.layout_of(&attr)?, attr })
    }

    /// A regular file's layout (none for anything else).
    fn layout_of(&self, attr: &Attr) -> Result<Option<Layout>, Errno> {
        if !attr.is_reg() {
            return Ok(None);
        }
        match self.mdt.layout(attr.fid) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.errno() == Errno::ENODATA => Ok(None),
            Err(e) => Err(e.errno()),
        }
    }

    /// Right after start (or after an OST joins) the pools of some OSTs
    /// may still be empty; a create asking for more stripes than are ready,
    /// or for a first OST (`lfs setstripe -i`) that is not ready, waits
    /// briefly for the refill instead of getting fewer stripes or other
    /// OSTs. An OST still empty after that is skipped, as Lustre skips an
    /// inactive one.
    async fn wait_for_pools(&self, parent: Fid, stripe: &proto::StripeSpec) {
        let Ok(spec) = self.mdt.effective_stripe(parent, stripe) else { return };
        let osts = self.osts();
        let wanted = match spec.stripe_count.unwrap_or(1) {
            -1 => osts.len(),
            c => (c.max(1) as usize).min(osts.len()),
        };
        let first = spec.stripe_offset.filter(|&i| osts.iter().any(|t| t.index == i));
        for _ in 0..40 {
            let pools = self.mdt.pools();
            let ready = pools.osts().iter().filter(|i| pools.available(**i) > 0).count();
            if ready >= wanted && first.is_none_or(|i| pools.available(i) > 0) {
                return;
            }
            self.refill.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create(&self, call: &MdsCall) -> Result<MdsReply, Errno> {
        let MdsRequest::Create { parent, name, mode, stripe, exclusive, open } = &call.op else {
            unreachable!()
        };
        self.wait_for_pools(*parent, stripe).await;
        for attempt in 0..50 {
            let (mdt, cred, parent, n, mode, stripe) =
                (self.mdt.clone(), call.cred.clone(), *parent, name.clone(), *mode, *stripe);
            let created = tokio::task::spawn_blocking(move || mdt.create(&cred, parent, &n, mode, &stripe))
                .await
                .map_err(|_| Errno::EIO)?;
            let (attr, layout, new) = match created {
                Ok((attr, layout)) => (attr, Some(layout), true),
                Err(e) if e.errno() == Errno::EEXIST && !exclusive => {
                    let attr = self.mdt.lookup(&call.cred, parent, name).map_err(mds_errno)?;
                    if attr.is_dir() {
                        return Err(Errno::EISDIR);
                    }
                    (attr, self.layout_of(&attr)?, false)
                }
                // The pools are being filled (a new file system, or a burst
                // of creates): wait for the refill rather than fail.
                Err(e) if e.errno() == Errno::ENOSPC && !self.osts().is_empty() && attempt < 49 => {
                    self.refill.notify_one();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(e.errno()),
            };
            let parent = self.mdt.getattr(parent).map_err(mds_errno)?;
            let Some(flags) = *open else { return Ok(MdsReply::Created { attr, layout, new, parent }) };
            let opened = self.open_for(&call.cred, attr.fid, flags, new)?;
            return Ok(MdsReply::Created {
                attr: opened.attr,
                layout: opened.layout.or(layout),
                new,
                parent,
            });
        }
        Err(Errno::ENOSPC)
    }

    /// Opens `fid` for `cred`. A file this very call created (`created`)
    /// is its caller's own, and the caller may use it whatever its mode
    /// says, as open(O_CREAT) with mode 0444 gives a writable descriptor.
    fn open_for(&self, cred: &proto::Cred, fid: Fid, flags: u32, created: bool) -> Result<Opened, Errno> {
        let checked_as = if created { proto::Cred::root() } else { cred.clone() };
        self.mdt.open_file(&checked_as, fid, flags as i32).map_err(mds_errno)
    }

    async fn serve(self: Arc<Self>, req: Request) -> Response {
        let mut call: MdsCall = decode("MDS request", req.body()).map_err(|e| {
            tracing::warn!(peer = %req.from, error = %e, "bad MDS request");
            Errno::EPROTO
        })?;
        if let Some((uid, gid)) = self.root_squash
            && call.cred.uid == 0
        {
            call.cred = proto::Cred { uid, gid, groups: Vec::new() };
        }
        self.stats.ops[(call.op.opcode() as usize).min(31)].fetch_add(1, Ordering::Relaxed);
        let (opcode, name, started) = (call.op.opcode(), call.op.name(), std::time::Instant::now());
        let reply = if matches!(call.op, MdsRequest::Create { .. }) {
            self.create(&call).await
        } else {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.serve_blocking(call)).await.unwrap_or(Err(Errno::EIO))
        };
        self.latency.observe(opcode, || name, started.elapsed().as_secs_f64());
        let reply = reply?;
        if self.mdt.pools().osts().iter().any(|i| self.mdt.pools().low_water(*i)) {
            self.refill.notify_one();
        }
        Ok(encode(&reply))
    }

    /// Every operation but create: the store's calls block on the disk (or
    /// on their group commit).
    fn serve_blocking(&self, call: MdsCall) -> Result<MdsReply, Errno> {
        let mdt = &self.mdt;
        let cred = &call.cred;
        let e = mds_errno;
        Ok(match call.op {
            MdsRequest::Connect { fsname } => {
                if fsname != mdt.fsname() {
                    return Err(Errno::ENODEV);
                }
                MdsReply::Connected { root: Fid::ROOT }
            }
            MdsRequest::Lookup { parent, name } => {
                self.with_layout(mdt.lookup(cred, parent, &name).map_err(e)?)?
            }
            MdsRequest::Getattr { fid } => self.with_layout(mdt.getattr(fid).map_err(e)?)?,
            MdsRequest::Setattr { fid, attr } => {
                self.with_layout(mdt.setattr(cred, fid, &attr).map_err(e)?)?
            }
            MdsRequest::Create { .. } => unreachable!("served by create"),
            MdsRequest::Mkdir { parent, name, mode } => {
                MdsReply::Attr { attr: mdt.mkdir(cred, parent, &name, mode).map_err(e)?, layout: None }
            }
            MdsRequest::Mknod { parent, name, mode, rdev } => {
                MdsReply::Attr { attr: mdt.mknod(cred, parent, &name, mode, rdev).map_err(e)?, layout: None }
            }
            MdsRequest::Symlink { parent, name, target } => {
                MdsReply::Attr { attr: mdt.symlink(cred, parent, &name, &target).map_err(e)?, layout: None }
            }
            MdsRequest::Readlink { fid } => MdsReply::Link {
                target: String::from_utf8_lossy(&mdt.readlink(fid).map_err(e)?).into_owned(),
            },
            MdsRequest::Link { fid, parent, name } => {
                self.with_layout(mdt.link(cred, fid, parent, &name).map_err(e)?)?
            }
            MdsRequest::Unlink { parent, name } => {
                mdt.unlink(cred, parent, &name).map_err(e)?;
                MdsReply::Unlinked { parent: mdt.getattr(parent).map_err(e)? }
            }
            MdsRequest::Rmdir { parent, name } => {
                mdt.rmdir(cred, parent, &name).map_err(e)?;
                MdsReply::Unlinked { parent: mdt.getattr(parent).map_err(e)? }
            }
            MdsRequest::Rename { parent, name, new_parent, new_name } => {
                mdt.rename(cred, parent, &name, new_parent, &new_name).map_err(e)?;
                MdsReply::Done
            }
            MdsRequest::GetattrMany { fids } => {
                let mut attrs = mdt.getattr_many(&fids).map_err(e)?;
                // Within one message: the caller asks again for the rest.
                let mut bytes = 0;
                let fits = attrs
                    .iter()
                    .position(|a| {
                        bytes += proto::encode(a).len();
                        bytes > READDIR_BYTES
                    })
                    .unwrap_or(attrs.len());
                attrs.truncate(fits.max(1));
                MdsReply::Attrs { attrs }
            }
            MdsRequest::Readdir { fid, cookie, max } => {
                let page = mdt.readdir(cred, fid, cookie, max.clamp(1, 4096) as usize).map_err(e)?;
                let mut entries = Vec::with_capacity(page.entries.len());
                let mut bytes = 0;
                let mut eof = page.eof;
                for d in page.entries {
                    bytes += d.name.len() + 40;
                    if bytes > READDIR_BYTES {
                        eof = false;
                        break;
                    }
                    let name = String::from_utf8(d.name).map_err(|_| Errno::EINVAL)?;
                    entries.push(DirEntry { name, fid: d.fid, kind: d.kind, cookie: d.cookie });
                }
                MdsReply::Entries { entries, eof }
            }
            MdsRequest::Getxattr { fid, name } => {
                let value = mdt.getxattr(cred, fid, &name).map_err(e)?;
                if value.len() > XATTR_WIRE_MAX {
                    return Err(Errno::E2BIG);
                }
                MdsReply::Xattr { value }
            }
            MdsRequest::Setxattr { fid, name, value, flags } => {
                if value.len() > XATTR_WIRE_MAX {
                    return Err(Errno::E2BIG);
                }
                mdt.setxattr(cred, fid, &name, &value, XattrMode::from_flags(flags as i32)?).map_err(e)?;
                MdsReply::Done
            }
            MdsRequest::Listxattr { fid } => {
                MdsReply::XattrNames { names: mdt.listxattr(cred, fid).map_err(e)? }
            }
            MdsRequest::Removexattr { fid, name } => {
                mdt.removexattr(cred, fid, &name).map_err(e)?;
                MdsReply::Done
            }
            MdsRequest::Open { fid, flags } => {
                let Opened { attr, layout } = self.open_for(cred, fid, flags, false)?;
                MdsReply::Attr { attr, layout }
            }
            MdsRequest::Close { fid } => {
                mdt.close_file(fid).map_err(e)?;
                MdsReply::Done
            }
            MdsRequest::Statfs => MdsReply::Statfs(mdt.statfs().map_err(e)?),
            MdsRequest::SetDirStripe { fid, stripe } => {
                stripe.validate().map_err(|_| Errno::EINVAL)?;
                mdt.set_dir_stripe(cred, fid, Some(stripe)).map_err(e)?;
                MdsReply::Done
            }
            MdsRequest::GetDirStripe { fid } => MdsReply::DirStripe {
                stripe: mdt.effective_stripe(fid, &proto::StripeSpec::default()).map_err(e)?,
            },
            MdsRequest::Fid2Path { fid, link } => {
                let (path, links) = mdt.fid2path(cred, fid, link).map_err(e)?;
                MdsReply::Path { path, link, links }
            }
        })
    }
}

impl Service for Mds {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(self.serve(req))
    }
}
