//! A mounted file system: the connection to the MGS, the MDS and every
//! OST, and the namespace operations an application needs.

use crate::data_buf::Recycler;
use crate::error::{ClientError, Result};
use crate::metrics::{ClientMetrics, OstLinkStats};
use crate::mount_spec::MountSpec;
use crate::tunables::{Brw, ClientTunables, InFlight, Live};
use fabric::rpc::{Endpoint, EndpointConfig, Reply};
use fabric::{BufferPool, Errno, NetType, Nid, Pid, ProcessId};
use proto::{
    Attr, Cred, DirEntry, Fid, FsConfig, InodeAttrs, Layout, LockExtent, LockMode, MdsCall, MdsReply,
    MdsRequest, MgsReply, MgsRequest, ObjAttr, OstCall, OstReply, OstRequest, Raid0, SetAttr, StatFs,
    StripeSpec, TargetKind, decode, decode_ost_reply, encode, portal,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

pub(crate) struct OstLink {
    pub peer: ProcessId,
    pub index: u32,
    pub in_flight: InFlight,
    /// Reads and writes up to this many bytes carry their data inside the
    /// RPC (`short_io_bytes`; 0: never).
    pub short_io: AtomicUsize,
    /// Operations, bytes and latencies of the RPCs to this OST, for metrics.
    pub stats: OstLinkStats,
}

/// A mounted glint file system.
pub struct Client {
    pub(crate) ep: Endpoint,
    spec: MountSpec,
    mgs: ProcessId,
    mds: ProcessId,
    root: Fid,
    config: RwLock<FsConfig>,
    pub(crate) osts: RwLock<HashMap<u32, Arc<OstLink>>>,
    pub(crate) tunables: ClientTunables,
    /// What `lctl set_param` changes while the mount runs.
    pub(crate) live: Live,
    pub(crate) pool: Arc<BufferPool>,
    pub(crate) metrics: ClientMetrics,
    /// Checksum mismatches seen, and the fault injection of bulk damage.
    pub(crate) integrity: crate::integrity::Integrity,
    /// Keeps this client's appends to one file apart.
    pub(crate) appends: crate::file::AppendLocks,
    /// Extent locks held and the file data cached under them.
    pub(crate) locks: Arc<crate::locks::LockCache>,
    pub(crate) ra: crate::readahead::ReadAhead,
    /// The size of a cached block (object offsets, aligned).
    pub(crate) ra_block: u64,
    /// Registered buffers for readahead's blocks.
    pub(crate) ra_bufs: Arc<Recycler>,
    /// Registered buffers for open files' gathered writes.
    pub(crate) dirty_bufs: Arc<Recycler>,
}

fn server(nid: Nid) -> ProcessId {
    ProcessId { nid, pid: Pid::SERVER }
}

/// This process's credentials, as a local file system would check them.
pub fn process_cred() -> Cred {
    // SAFETY: plain getters; getgroups is given a buffer of the size it reports.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        let mut groups = vec![0 as libc::gid_t; n.max(0) as usize];
        let n = libc::getgroups(n, groups.as_mut_ptr());
        groups.truncate(n.max(0) as usize);
        Cred { uid: libc::geteuid(), gid: libc::getegid(), groups }
    }
}

/// The local address this node uses to reach `nid`, which becomes the
/// client's own NID on that network.
fn local_nid_towards(nid: Nid) -> Nid {
    let sock = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((nid.addr, 9)).map(|_| s))
        .and_then(|s| s.local_addr());
    match sock {
        Ok(a) => Nid::new(a.ip(), nid.net),
        Err(_) => Nid::new(nid.addr, nid.net),
    }
}

impl Client {
    /// Mounts `MGSNID:/FSNAME`: asks the MGS for the file system's targets
    /// and connects to the MDS.
    pub async fn mount(spec: &str) -> Result<Arc<Client>> {
        Client::mount_with(spec, ClientTunables::default()).await
    }

    pub async fn mount_with(spec: &str, tunables: ClientTunables) -> Result<Arc<Client>> {
        let spec: MountSpec = spec.parse()?;
        let first = spec.mgs[0];
        // A file system named by an o2ib NID is reached over o2ib: the
        // client gets an o2ib NI (and a tcp one on the same address, which
        // carries everything when this host has no RDMA device).
        let towards = spec.mgs.iter().copied().find(|n| n.net.kind == NetType::O2ib).unwrap_or(first);
        let mut ecfg = EndpointConfig::client_at(local_nid_towards(towards));
        ecfg.retry_limit = tunables.retry_limit;
        ecfg.tcp.port = tunables.port;
        let ep = Endpoint::start(ecfg).await.map_err(|e| ClientError::Errno(Errno::from_io(&e)))?;
        if let Some(why) = ep.o2ib_down() {
            tracing::warn!(fs = %spec, reason = why, "this node's o2ib NI is down: mounting over tcp");
        }
        let mut last_err = None;
        let mut config = None;
        let mut mgs = server(first);
        for nid in &spec.mgs {
            mgs = server(*nid);
            match Self::fetch_config(&ep, mgs, &spec.fsname).await {
                Ok(c) => {
                    config = Some(c);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let config = match config {
            Some(c) => c,
            None => return Err(last_err.expect("at least one MGS NID was tried")),
        };
        let mdt = config.mdt.clone().ok_or_else(|| ClientError::NoMdt(spec.fsname.clone()))?;
        let mds = server(ep.pick_nid(&mdt.nids).ok_or(Errno::EHOSTUNREACH)?);
        let pool = BufferPool::new(tunables.rpc_size, tunables.io_buffers, None)
            .map_err(|e| ClientError::Errno(Errno::from_io(&e)))?;
        let metrics = ClientMetrics::new(&spec.fsname);
        let ra_mb = tunables.max_read_ahead_mb.min(crate::readahead::MAX_READ_AHEAD_MB);
        let locks = Arc::new(crate::locks::LockCache::new(ra_mb << 20));
        ep.register(
            proto::ldlm::LDLM_CB_PORTAL,
            Arc::new(crate::locks::CallbackService { cache: locks.clone() }),
        );
        let ra_file = (tunables.max_read_ahead_per_file_mb.min(ra_mb) as u64) << 20;
        let ra_block = tunables.rpc_size.min(1 << 20) as u64;
        let client = Client {
            ep,
            spec: spec.clone(),
            mgs,
            mds,
            root: Fid::ROOT,
            config: RwLock::new(config.clone()),
            osts: RwLock::new(HashMap::new()),
            live: Live::new(&tunables),
            tunables,
            pool,
            metrics,
            integrity: Default::default(),
            appends: Default::default(),
            locks,
            ra: crate::readahead::ReadAhead::new(ra_file),
            ra_block,
            ra_bufs: Recycler::new(ra_mb << 20),
            dirty_bufs: Recycler::new(DIRTY_BUFS_KEPT),
        };
        client.apply_config(&config);
        let root = match client.md(MdsRequest::Connect { fsname: spec.fsname.clone() }).await? {
            MdsReply::Connected { root } => root,
            _ => return Err(ClientError::UnexpectedReply { service: "MDS" }),
        };
        let client = Arc::new(Client { root, ..client });
        crate::pinger::start(&client);
        tracing::info!(fs = %spec, osts = config.osts.len(), "mounted");
        Ok(client)
    }

    async fn fetch_config(ep: &Endpoint, mgs: ProcessId, fsname: &str) -> Result<FsConfig> {
        let r = ep
            .call(mgs, portal::MGS, 1, &encode(&MgsRequest::GetConfig { fsname: fsname.to_string() }))
            .await?;
        match decode::<MgsReply>("MGS reply", r.body())? {
            MgsReply::Config(c) => Ok(c),
            _ => Err(ClientError::UnexpectedReply { service: "MGS" }),
        }
    }

    fn apply_config(&self, config: &FsConfig) {
        let mut osts = self.osts.write().expect("osts lock");
        for t in config.osts.iter().filter(|t| t.kind == TargetKind::Ost) {
            if osts.contains_key(&t.index) {
                continue;
            }
            let Some(nid) = self.ep.pick_nid(&t.nids) else {
                tracing::warn!(target = %t.name(&config.fsname), "registered without a NID; not used");
                continue;
            };
            if self.ep.o2ib().is_some() && nid.net.kind != NetType::O2ib {
                tracing::warn!(target = %t.name(&config.fsname), %nid, "the target has no o2ib NID: reaching it over tcp");
            }
            osts.entry(t.index).or_insert_with(|| {
                Arc::new(OstLink {
                    peer: server(nid),
                    index: t.index,
                    in_flight: InFlight::new(self.tunables.max_rpcs_in_flight),
                    short_io: AtomicUsize::new(self.tunables.short_io_bytes.min(proto::MAX_SHORT_IO_BYTES)),
                    stats: self.metrics.ost_link(&self.spec.fsname, t.index),
                })
            });
        }
        *self.config.write().expect("config lock") = config.clone();
    }

    /// Fetches the configuration again, picking up OSTs added since mount.
    pub async fn refresh_config(&self) -> Result<()> {
        let c = Self::fetch_config(&self.ep, self.mgs, &self.spec.fsname).await?;
        self.apply_config(&c);
        Ok(())
    }

    pub fn config(&self) -> FsConfig {
        self.config.read().expect("config lock").clone()
    }

    pub fn fsname(&self) -> &str {
        &self.spec.fsname
    }

    pub fn root(&self) -> Fid {
        self.root
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// The tunables as they are now (the RPC size may have been changed
    /// since mount; `max_rpcs_in_flight` is the default for new OSTs).
    pub fn tunables(&self) -> ClientTunables {
        ClientTunables { rpc_size: self.rpc_size(), ..self.tunables.clone() }
    }

    pub(crate) async fn ost_link(&self, index: u32) -> Result<Arc<OstLink>> {
        if let Some(l) = self.osts.read().expect("osts lock").get(&index).cloned() {
            return Ok(l);
        }
        self.refresh_config().await?;
        self.osts.read().expect("osts lock").get(&index).cloned().ok_or(ClientError::UnknownOst(index))
    }

    /// One MDS operation with this process's credentials.
    pub async fn md(&self, op: MdsRequest) -> Result<MdsReply> {
        self.md_as(process_cred(), op).await
    }

    /// One MDS operation on behalf of `cred` (the FUSE mount passes the
    /// calling process's).
    pub async fn md_as(&self, cred: Cred, op: MdsRequest) -> Result<MdsReply> {
        let (opcode, name, started) = (op.opcode(), op.name(), std::time::Instant::now());
        let body = encode(&MdsCall { cred, op });
        let r = self.ep.call(self.mds, portal::MDS, opcode, &body).await;
        self.metrics.md.observe(opcode, || name, started.elapsed().as_secs_f64());
        Ok(decode::<MdsReply>("MDS reply", r?.body())?)
    }

    /// One OST operation, within the OST's in-flight limit.
    pub async fn ost(&self, index: u32, req: &OstRequest) -> Result<OstReply> {
        ost_call(&self.ep, &*self.ost_link(index).await?, req).await
    }

    /// An OST RPC that may carry data either way (short I/O).
    pub(crate) async fn ost_with_data(
        &self,
        index: u32,
        req: &OstRequest,
        data: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<OstAnswer> {
        ost_exchange(&self.ep, &*self.ost_link(index).await?, req, data).await
    }

    /// The OSS that serves OST `ost`.
    pub(crate) fn ost_peer(&self, ost: u32) -> Option<ProcessId> {
        self.osts.read().expect("osts lock").get(&ost).map(|l| l.peer)
    }

    /// Whether a transfer of `len` bytes to or from `ost` goes inside its
    /// RPC rather than by bulk.
    pub(crate) fn is_short_io(&self, ost: u32, len: u64) -> bool {
        let osts = self.osts.read().expect("osts lock");
        osts.get(&ost).is_some_and(|l| len > 0 && len <= l.short_io.load(Ordering::Relaxed) as u64)
    }

    /// Looks up `name` in `parent`.
    pub async fn lookup(&self, cred: &Cred, parent: Fid, name: &str) -> Result<(Attr, Option<Layout>)> {
        attr_reply(self.md_as(cred.clone(), MdsRequest::Lookup { parent, name: name.to_string() }).await?)
    }

    /// Resolves an absolute path inside the file system (`/a/b`).
    pub async fn resolve(&self, cred: &Cred, path: &str) -> Result<(Attr, Option<Layout>)> {
        let mut cur = self.getattr_md(cred, self.root).await?;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            cur = self.lookup(cred, cur.0.fid, part).await?;
        }
        Ok(cur)
    }

    /// The MDS's view of an inode, without asking the OSTs for its size.
    pub async fn getattr_md(&self, cred: &Cred, fid: Fid) -> Result<(Attr, Option<Layout>)> {
        attr_reply(self.md_as(cred.clone(), MdsRequest::Getattr { fid }).await?)
    }

    /// Full attributes: a regular file's size, blocks and times come from
    /// its objects, asked in parallel (Lustre's glimpse).
    pub async fn getattr(&self, cred: &Cred, fid: Fid) -> Result<(Attr, Option<Layout>)> {
        let (mut attr, layout) = self.getattr_md(cred, fid).await?;
        if let Some(l) = &layout {
            self.merge_object_attrs(&mut attr, l).await?;
        }
        Ok((attr, layout))
    }

    /// Holds a `mode` lock over the whole of every object of `layout`,
    /// asked in parallel.
    pub(crate) async fn hold_whole(&self, layout: &Layout, mode: LockMode) -> Result<()> {
        let asks: Vec<_> =
            layout.objects().map(|o| self.hold(o.ost_idx, o.fid, mode, LockExtent::WHOLE)).collect();
        let n = asks.len();
        crate::join::run_all(asks, n).await.into_iter().collect()
    }

    /// The file's size, if locks over the whole of every object say it:
    /// no other client can change it before calling them back.
    pub(crate) fn size_under_locks(&self, r0: &Raid0) -> Option<u64> {
        let mut size = 0;
        for (stripe, o) in r0.objects.iter().enumerate() {
            // A loss is left for the read to act on (see `read_cached`).
            if !self.connection_unchanged(o.ost_idx) {
                return None;
            }
            size = size.max(r0.file_size_from_object(stripe, self.locks.attr_under_lock(o.fid)?.size));
        }
        Some(size)
    }

    pub(crate) async fn merge_object_attrs(&self, attr: &mut Attr, layout: &Layout) -> Result<()> {
        let objs = self.object_attrs(layout).await?;
        let Some(r0) = layout.raid0() else { return Ok(()) };
        let mut size = 0;
        let mut blocks = 0;
        for (stripe, o) in objs.iter().enumerate() {
            size = size.max(r0.file_size_from_object(stripe, o.size));
            blocks += o.blocks;
            attr.mtime = attr.mtime.max(o.mtime);
            attr.ctime = attr.ctime.max(o.ctime);
        }
        attr.size = size;
        attr.blocks = blocks;
        Ok(())
    }

    /// Every object's attributes, in stripe order, asked in parallel. Each
    /// is read under a PR lock over the whole object (taken when not held,
    /// and while it is held the attributes need no RPC: Lustre's lock value
    /// block), unless another client writes the object: then its size
    /// comes from what the writer knows, its cached writes counted, and the
    /// writer keeps its lock (see `Client::glimpse`).
    pub async fn object_attrs(&self, layout: &Layout) -> Result<Vec<ObjAttr>> {
        let mut asks = Vec::new();
        for (i, o) in layout.objects().copied().enumerate() {
            asks.push(async move { (i, self.glimpse(o.ost_idx, o.fid).await) });
        }
        let n = asks.len();
        let mut out = vec![ObjAttr::default(); n];
        for (i, r) in crate::join::run_all(asks, n).await {
            out[i] = r?;
        }
        Ok(out)
    }

    pub(crate) fn clone_handle(&self) -> Arc<ClientRef> {
        Arc::new(ClientRef { ep: self.ep.clone(), osts: self.osts.read().expect("osts lock").clone() })
    }

    pub async fn setattr(&self, cred: &Cred, fid: Fid, set: SetAttr) -> Result<(Attr, Option<Layout>)> {
        let r = attr_reply(self.md_as(cred.clone(), MdsRequest::Setattr { fid, attr: set }).await?)?;
        if let (Some(size), Some(layout)) = (set.size, &r.1) {
            self.truncate_objects(layout, size).await?;
        }
        self.getattr(cred, fid).await
    }

    /// Sets every object to the size `size` implies for its stripe, which
    /// frees the space past it.
    pub async fn truncate_objects(&self, layout: &Layout, size: u64) -> Result<()> {
        let Some(r0) = layout.raid0() else { return Ok(()) };
        let _changing = self.truncating(layout, size);
        let mut set = tokio::task::JoinSet::new();
        for (stripe, o) in r0.objects.iter().enumerate() {
            let me = self.clone_handle();
            let obj_size = r0.object_size_for(stripe, size);
            let o = *o;
            set.spawn(async move {
                me.ost(o.ost_idx, &OstRequest::Truncate { fid: o.fid, size: obj_size }).await?;
                Ok::<_, ClientError>((o.fid, obj_size))
            });
        }
        while let Some(r) = set.join_next().await {
            let (fid, obj_size) = r.expect("truncate task")?;
            self.locks.truncated(fid, obj_size);
        }
        Ok(())
    }

    pub async fn create(
        &self,
        cred: &Cred,
        parent: Fid,
        name: &str,
        mode: u32,
        stripe: StripeSpec,
        exclusive: bool,
    ) -> Result<(Attr, Option<Layout>)> {
        let op = MdsRequest::Create { parent, name: name.to_string(), mode, stripe, exclusive, open: None };
        created_reply(self.md_as(cred.clone(), op).await?).map(|c| (c.attr, c.layout))
    }

    /// `create`, and open the file for the caller with open(2)'s `flags`
    /// in the same MDS call (the open's own check of the caller's access
    /// applies to a file it did not create).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_open(
        &self,
        cred: &Cred,
        parent: Fid,
        name: &str,
        mode: u32,
        stripe: StripeSpec,
        exclusive: bool,
        flags: u32,
    ) -> Result<Created> {
        let op =
            MdsRequest::Create { parent, name: name.to_string(), mode, stripe, exclusive, open: Some(flags) };
        created_reply(self.md_as(cred.clone(), op).await?)
    }

    /// Completes `slot` with its objects' sizes and times (empties it if
    /// they are gone).
    async fn stat_objects(&self, slot: &mut Option<Stat>) {
        let Some(s) = slot.as_mut() else { return };
        let Some(layout) = s.layout.clone() else { return };
        match self.merge_object_attrs(&mut s.attr, &layout).await {
            Ok(()) => s.sizes_known = true,
            Err(e) if e.errno() == Errno::ENOENT => *slot = None,
            Err(e) => tracing::debug!(fid = %s.attr.fid, error = %e, "statahead: no size from the OSTs"),
        }
    }

    /// The MDS's view of many inodes at once, in the order of `fids`
    /// (`None` for one that is gone), without asking the OSTs.
    pub async fn getattr_many_md(&self, cred: &Cred, fids: &[Fid]) -> Result<Vec<Option<InodeAttrs>>> {
        let mut out = Vec::with_capacity(fids.len());
        while out.len() < fids.len() {
            let op = MdsRequest::GetattrMany { fids: fids[out.len()..].to_vec() };
            match self.md_as(cred.clone(), op).await? {
                MdsReply::Attrs { attrs } if !attrs.is_empty() && attrs.len() <= fids.len() - out.len() => {
                    out.extend(attrs)
                }
                _ => return Err(ClientError::UnexpectedReply { service: "MDS" }),
            }
        }
        Ok(out)
    }

    /// Full attributes of many inodes (statahead, for `ls -l`): the MDS's
    /// in one call, then every regular file's objects, `STATAHEAD_WINDOW`
    /// files at a time, each under a PR lock as `getattr` takes it. In the
    /// order of `fids`; `None` for a file that is gone (from the MDS, or
    /// its objects from their OSTs: unlinked meanwhile).
    pub async fn getattr_many(&self, cred: &Cred, fids: &[Fid]) -> Result<Vec<Option<Stat>>> {
        let mut all: Vec<Option<Stat>> = self
            .getattr_many_md(cred, fids)
            .await?
            .into_iter()
            .map(|a| {
                a.map(|i| Stat {
                    sizes_known: i.layout.is_none(),
                    attr: i.attr,
                    layout: i.layout,
                    xattrs: i.xattrs,
                })
            })
            .collect();
        let mut asks = Vec::new();
        for slot in all.iter_mut().filter(|s| s.as_ref().is_some_and(|s| !s.sizes_known)) {
            asks.push(self.stat_objects(slot));
        }
        crate::join::run_all(asks, STATAHEAD_WINDOW).await;
        Ok(all)
    }

    pub async fn mkdir(&self, cred: &Cred, parent: Fid, name: &str, mode: u32) -> Result<Attr> {
        let op = MdsRequest::Mkdir { parent, name: name.to_string(), mode };
        Ok(attr_reply(self.md_as(cred.clone(), op).await?)?.0)
    }

    /// Removes a name; the directory's attributes after.
    pub async fn unlink(&self, cred: &Cred, parent: Fid, name: &str) -> Result<Attr> {
        unlinked_reply(self.md_as(cred.clone(), MdsRequest::Unlink { parent, name: name.to_string() }).await?)
    }

    /// Removes an empty directory; its parent's attributes after.
    pub async fn rmdir(&self, cred: &Cred, parent: Fid, name: &str) -> Result<Attr> {
        unlinked_reply(self.md_as(cred.clone(), MdsRequest::Rmdir { parent, name: name.to_string() }).await?)
    }

    pub async fn rename(
        &self,
        cred: &Cred,
        parent: Fid,
        name: &str,
        new_parent: Fid,
        new_name: &str,
    ) -> Result<()> {
        let op =
            MdsRequest::Rename { parent, name: name.to_string(), new_parent, new_name: new_name.to_string() };
        self.md_as(cred.clone(), op).await.map(|_| ())
    }

    /// Every entry of a directory, following cookies to the end.
    pub async fn readdir_all(&self, cred: &Cred, fid: Fid) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let (entries, eof) = self.readdir(cred, fid, cookie, 512).await?;
            if let Some(last) = entries.last() {
                cookie = last.cookie;
            }
            out.extend(entries);
            if eof {
                return Ok(out);
            }
        }
    }

    pub async fn readdir(
        &self,
        cred: &Cred,
        fid: Fid,
        cookie: u64,
        max: u32,
    ) -> Result<(Vec<DirEntry>, bool)> {
        match self.md_as(cred.clone(), MdsRequest::Readdir { fid, cookie, max }).await? {
            MdsReply::Entries { entries, eof } => Ok((entries, eof)),
            _ => Err(ClientError::UnexpectedReply { service: "MDS" }),
        }
    }

    /// Space per target: the MDT's inodes and every OST's blocks.
    pub async fn statfs_targets(&self) -> Result<(StatFs, Vec<(u32, StatFs)>)> {
        let mdt = match self.md(MdsRequest::Statfs).await? {
            MdsReply::Statfs(s) => s,
            _ => return Err(ClientError::UnexpectedReply { service: "MDS" }),
        };
        let indices: Vec<u32> = {
            let mut v: Vec<u32> = self.osts.read().expect("osts lock").keys().copied().collect();
            v.sort();
            v
        };
        let mut set = tokio::task::JoinSet::new();
        for idx in indices {
            let me = self.clone_handle();
            set.spawn(async move { (idx, me.ost(idx, &OstRequest::Statfs).await) });
        }
        let mut osts = Vec::new();
        while let Some(r) = set.join_next().await {
            let (idx, r) = r.expect("statfs task");
            match r? {
                OstReply::Statfs(s) => osts.push((idx, s)),
                _ => return Err(ClientError::UnexpectedReply { service: "OST" }),
            }
        }
        osts.sort_by_key(|(i, _)| *i);
        Ok((mdt, osts))
    }

    /// Which targets answer a statfs within `within`: the MDT's answer,
    /// then each OST's by index (`lfs check servers`, `lfs osts`). A
    /// target that is down shows as false after `within`, not after the
    /// RPC layer's whole resend limit.
    pub async fn probe_targets(&self, within: std::time::Duration) -> (bool, Vec<(u32, bool)>) {
        let mut set = tokio::task::JoinSet::new();
        for idx in self.ost_indices() {
            let me = self.clone_handle();
            set.spawn(async move {
                let r = tokio::time::timeout(within, me.ost(idx, &OstRequest::Statfs)).await;
                (idx, matches!(r, Ok(Ok(OstReply::Statfs(_)))))
            });
        }
        let mdt = matches!(
            tokio::time::timeout(within, self.md(MdsRequest::Statfs)).await,
            Ok(Ok(MdsReply::Statfs(_)))
        );
        let mut osts = Vec::new();
        while let Some(r) = set.join_next().await {
            osts.push(r.expect("probe task"));
        }
        osts.sort_by_key(|(i, _)| *i);
        (mdt, osts)
    }

    /// The file system as `statfs(2)` reports it: blocks summed over the
    /// OSTs, inodes from the MDT.
    pub async fn statfs(&self) -> Result<StatFs> {
        let (mdt, osts) = self.statfs_targets().await?;
        let bsize = 4096u64;
        let mut s = StatFs {
            bsize: bsize as u32,
            namelen: 255,
            files: mdt.files,
            ffree: mdt.ffree,
            ..Default::default()
        };
        for (_, o) in &osts {
            let scale = o.bsize as u64;
            s.blocks += o.blocks * scale / bsize;
            s.bfree += o.bfree * scale / bsize;
            s.bavail += o.bavail * scale / bsize;
        }
        Ok(s)
    }
}

/// What background tasks of a client need: the endpoint and the OSTs.
pub(crate) struct ClientRef {
    ep: Endpoint,
    osts: HashMap<u32, Arc<OstLink>>,
}

impl ClientRef {
    pub async fn ost(&self, index: u32, req: &OstRequest) -> Result<OstReply> {
        ost_call(&self.ep, self.osts.get(&index).ok_or(ClientError::UnknownOst(index))?, req).await
    }
}

/// One OST RPC, within that OST's in-flight limit.
async fn ost_call(ep: &Endpoint, link: &OstLink, req: &OstRequest) -> Result<OstReply> {
    Ok(ost_exchange(ep, link, req, |_| Ok(())).await?.reply)
}

/// An OST's answer, with the bytes a short read brought back.
pub(crate) struct OstAnswer {
    pub reply: OstReply,
    msg: Reply,
    data_at: usize,
}

impl OstAnswer {
    pub fn data(&self) -> &[u8] {
        &self.msg.body()[self.data_at..]
    }
}

/// How long a client waits before it asks an OST in recovery again.
const RECOVERY_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// One OST RPC, within that OST's in-flight limit; `data` appends a short
/// write's bytes after the call. What an OST in its recovery window after
/// a restart refuses for now (EINPROGRESS) is asked again until it closes.
pub(crate) async fn ost_exchange(
    ep: &Endpoint,
    link: &OstLink,
    req: &OstRequest,
    data: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<OstAnswer> {
    // What a restarted OST waits for never waits behind other requests for
    // a slot.
    let recovery =
        matches!(req, OstRequest::Connect { .. } | OstRequest::Replay { .. } | OstRequest::ReplayDone);
    let mut body = encode(&OstCall { target: link.index, op: req.clone() });
    data(&mut body)?;
    let r = loop {
        let slot = if recovery { None } else { Some(link.in_flight.acquire(Brw::of(req)).await) };
        let started = std::time::Instant::now();
        let r = ep.call(link.peer, portal::OST, req.opcode(), &body).await;
        link.stats.latency.observe(req.opcode(), || req.name(), started.elapsed().as_secs_f64());
        match r {
            Err(fabric::RpcError::Remote(e)) if e == Errno::EINPROGRESS => {
                drop(slot);
                tokio::time::sleep(RECOVERY_RETRY).await;
            }
            r => break r,
        }
    };
    let msg = r?;
    let (reply, tail) = decode_ost_reply(msg.body())?;
    let data_at = msg.body().len() - tail.len();
    link.stats.count(&reply, tail.len());
    Ok(OstAnswer { reply, msg, data_at })
}

/// Files whose objects `getattr_many` asks at once.
const STATAHEAD_WINDOW: usize = 32;

/// Bytes of free write-back buffers kept for the next file that gathers
/// (a few buffers of the usual 4-16 MiB).
const DIRTY_BUFS_KEPT: usize = 64 << 20;

/// An inode as `Client::getattr_many` found it.
#[derive(Clone, Debug)]
pub struct Stat {
    pub attr: Attr,
    pub layout: Option<Layout>,
    /// The size, blocks and times include the objects' (false when their
    /// OSTs could not be asked: the MDS's alone). Anything without a
    /// layout has none to ask.
    pub sizes_known: bool,
    /// Whether it has any extended attribute.
    pub xattrs: bool,
}

/// What `Client::create_open` made or found.
#[derive(Clone, Debug)]
pub struct Created {
    pub attr: Attr,
    pub layout: Option<Layout>,
    /// This call created the file: its objects are empty.
    pub new: bool,
    /// The directory's attributes after the call.
    pub parent: Attr,
}

fn created_reply(r: MdsReply) -> Result<Created> {
    match r {
        MdsReply::Created { attr, layout, new, parent } => Ok(Created { attr, layout, new, parent }),
        _ => Err(ClientError::UnexpectedReply { service: "MDS" }),
    }
}

fn unlinked_reply(r: MdsReply) -> Result<Attr> {
    match r {
        MdsReply::Unlinked { parent } => Ok(parent),
        _ => Err(ClientError::UnexpectedReply { service: "MDS" }),
    }
}

pub(crate) fn attr_reply(r: MdsReply) -> Result<(Attr, Option<Layout>)> {
    match r {
        MdsReply::Attr { attr, layout } => Ok((attr, layout)),
        _ => Err(ClientError::UnexpectedReply { service: "MDS" }),
    }
}
