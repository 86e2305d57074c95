//! The OSS: one fabric endpoint serving the OSTs of one node. Writes pull
//! the client's data into a NUMA-local pool buffer and check its crc32c
//! before a byte reaches the disk; reads push from a pool buffer into the
//! client's exposed range.

use crate::io_threads::IoThreads;
use crate::ldlm::{ClientFile, Glimpsed, IoGuard, LdlmConfig, Namespace};
use crate::{ObjTimes, ObjectStore, OstError};
use fabric::metrics::{OpHistograms, Samples};
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{BufferPool, Errno, Nid, Pid, PoolBuf, ProcessId};
use prometheus::HistogramVec;
use proto::ost::MAX_RPC_BYTES;
use proto::{
    LockExtent, LockHandle, MAX_SHORT_IO_BYTES, MgsReply, MgsRequest, OstReply, OstRequest, TargetInfo,
    TargetKind, decode, decode_ost_call, encode, encode_ost_reply, portal,
};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One target an OSS serves.
#[derive(Clone, Debug)]
pub struct TargetConfig {
    pub dir: PathBuf,
    pub index: u32,
}

#[derive(Clone, Debug)]
pub struct OssConfig {
    pub fsname: String,
    pub nid: Nid,
    pub port: u16,
    pub mgs: Nid,
    pub targets: Vec<TargetConfig>,
    /// The largest bulk RPC accepted (and the size of each pool buffer).
    pub max_rpc_bytes: usize,
    /// Pool buffers, which bound the bulk RPCs served at once.
    pub buffers: usize,
    pub io_threads: usize,
    pub metrics: Option<String>,
    /// Lock callback timeout and the sweep of gone lock holders.
    pub ldlm: LdlmConfig,
}

impl OssConfig {
    pub fn new(fsname: &str, nid: Nid, mgs: Nid, targets: Vec<TargetConfig>) -> OssConfig {
        OssConfig {
            fsname: fsname.to_string(),
            nid,
            port: fabric::tcp::DEFAULT_PORT,
            mgs,
            targets,
            max_rpc_bytes: 4 << 20,
            buffers: 16,
            io_threads: 8,
            metrics: None,
            ldlm: LdlmConfig::default(),
        }
    }
}

/// Counters of one target, read by metrics and `lctl get_param obdfilter.*.stats`.
#[derive(Default, Debug)]
pub struct TargetStats {
    /// Bytes of each read and of each write served.
    pub read: Samples,
    pub write: Samples,
    pub checksum_errors: AtomicU64,
    pub ops: [AtomicU64; 22],
}

pub struct Target {
    pub store: Arc<ObjectStore>,
    pub stats: TargetStats,
    /// Time to serve each operation on this target.
    pub latency: OpHistograms,
    /// The extent locks on this target's objects.
    pub ldlm: Arc<Namespace>,
}

pub struct Oss {
    fsname: String,
    targets: HashMap<u32, Arc<Target>>,
    io: IoThreads,
    bufs: Arc<BufferPool>,
    /// Buffers for short I/O, apart so small requests never wait behind
    /// the bulk ones for a large buffer.
    short_bufs: Arc<BufferPool>,
    max_rpc: usize,
    latency: HistogramVec,
}

/// A running OSS; dropping it does not stop it, `shutdown` does.
pub struct OssHandle {
    pub endpoint: Endpoint,
    pub oss: Arc<Oss>,
}

/// The target's lock holders, waited for after a restart.
const LOCK_HOLDERS_FILE: &str = "CLIENTS";

/// Short reads and writes served at once (each holds a 32 KiB buffer).
const SHORT_BUFFERS: usize = 64;

/// Refuses (EBADMSG, counted) bytes whose crc32c is not `want`: they
/// were damaged on the way, and nothing of them is written.
fn check_crc(req: &Request, target: &Target, fid: proto::Fid, data: &[u8], want: u32) -> Result<(), Errno> {
    let got = crc32c::crc32c(data);
    if got == want {
        return Ok(());
    }
    target.stats.checksum_errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(peer = %req.from, %fid, want, got, "write checksum mismatch; nothing written");
    Err(Errno::EBADMSG)
}

fn ost_err(e: OstError) -> Errno {
    e.errno()
}

impl Oss {
    /// Opens every target (refusing any whose label does not match), starts
    /// the endpoint, and registers each target with the MGS.
    pub async fn start(cfg: OssConfig) -> Result<OssHandle, OssError> {
        let io = IoThreads::start("ost_io", cfg.io_threads, cfg.nid.addr).map_err(OssError::Threads)?;
        let bufs = BufferPool::new(cfg.max_rpc_bytes, cfg.buffers, Some(io.numa_node()))
            .map_err(|e| OssError::Memory(e.to_string()))?;
        let short_bufs = BufferPool::new(MAX_SHORT_IO_BYTES, SHORT_BUFFERS, Some(io.numa_node()))
            .map_err(|e| OssError::Memory(e.to_string()))?;
        let latency = fabric::metrics::latency_histogram(
            "glint_ost_op_duration_seconds",
            "Time an OST takes to serve an operation, bulk transfer included, per target and operation.",
            &["target", "op"],
        );
        let mut targets = HashMap::new();
        for t in &cfg.targets {
            let store = ObjectStore::open(&t.dir, &cfg.fsname, t.index)
                .map_err(|e| OssError::Target { dir: t.dir.clone(), reason: e.to_string() })?;
            let ops = OpHistograms::new(latency.clone(), &[&store.label().target_name()]);
            let ns = format!("filter-{}_UUID", store.label().target_name());
            let holders = ClientFile::new(store.root().join(LOCK_HOLDERS_FILE));
            let ldlm = Namespace::new(ns, t.index, cfg.ldlm.clone(), store.run(), Some(holders));
            let target = Target { store: Arc::new(store), stats: TargetStats::default(), latency: ops, ldlm };
            targets.insert(t.index, Arc::new(target));
        }
        let max_rpc = cfg.max_rpc_bytes;
        let oss =
            Arc::new(Oss { fsname: cfg.fsname.clone(), targets, io, bufs, short_bufs, max_rpc, latency });
        let mut ecfg = EndpointConfig::server_at(cfg.nid);
        ecfg.tcp.port = cfg.port;
        let endpoint = Endpoint::start(ecfg).await.map_err(|e| OssError::Listen(e.to_string()))?;
        if let Some(why) = endpoint.o2ib_down() {
            tracing::warn!(nid = %cfg.nid, reason = why, "the o2ib NI is down: the OSS serves over tcp only");
        }
        endpoint.register(portal::OST, oss.clone());
        for t in oss.targets.values() {
            t.ldlm.start(endpoint.clone());
        }
        let mgs = ProcessId { nid: cfg.mgs, pid: Pid::SERVER };
        for t in &cfg.targets {
            let target = TargetInfo {
                kind: TargetKind::Ost,
                index: t.index,
                nids: endpoint.nids(),
                metrics: cfg.metrics.clone(),
            };
            let req = MgsRequest::Register { fsname: cfg.fsname.clone(), target };
            let r = endpoint
                .call(mgs, portal::MGS, 2, &encode(&req))
                .await
                .map_err(|e| OssError::Mgs(e.to_string()))?;
            match decode::<MgsReply>("MGS reply", r.body()) {
                Ok(MgsReply::Registered { .. }) => {}
                other => return Err(OssError::Mgs(format!("unexpected reply {other:?}"))),
            }
        }
        tracing::info!(nids = ?endpoint.nids(), targets = cfg.targets.len(), "OSS serving");
        Ok(OssHandle { endpoint, oss })
    }

    pub fn fsname(&self) -> &str {
        &self.fsname
    }

    pub fn targets(&self) -> impl Iterator<Item = (&u32, &Arc<Target>)> {
        self.targets.iter()
    }

    /// Operation latencies of every target, labelled `target` and `op`.
    pub fn latency(&self) -> &HistogramVec {
        &self.latency
    }

    /// Disk jobs waiting for a thread, per CPT of the disk thread pool.
    pub fn queue_depth(&self) -> Vec<(usize, usize)> {
        self.io.queue_depth()
    }

    async fn disk<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<R, OstError> + Send + 'static,
    ) -> Result<R, Errno> {
        self.io.run(f).await?.map_err(ost_err)
    }

    async fn serve(self: Arc<Self>, req: Request) -> Response {
        let (call, data) = decode_ost_call(req.body()).map_err(|e| {
            tracing::warn!(peer = %req.from, error = %e, "bad OST request");
            Errno::EPROTO
        })?;
        // Where a short write's bytes start in the body.
        let data_at = req.body().len() - data.len();
        let target = self.targets.get(&call.target).cloned().ok_or(Errno::ENODEV)?;
        if let Some(n) = target.stats.ops.get(call.op.opcode() as usize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let store = target.store.clone();
        let (opcode, name, started) = (call.op.opcode(), call.op.name(), Instant::now());
        let timed = target.clone();
        let reply: Result<Vec<u8>, Errno> = async move {
            if let OstRequest::ReadShort { fid, offset, len } = call.op {
                return self.read_short(&req, &target, fid, offset, len).await;
            }
            Ok(encode(&match call.op {
                OstRequest::Connect { fsname, index } => {
                    if fsname != self.fsname || index != call.target {
                        return Err(Errno::ENODEV);
                    }
                    OstReply::Connected {
                        uuid: store.label().uuid.clone(),
                        run: store.run(),
                        recovering: target.ldlm.recovering(),
                    }
                }
                OstRequest::Precreate { seq, first_oid, count } => {
                    self.disk(move || store.precreate(seq, first_oid, count)).await?;
                    OstReply::Precreated { seq, first_oid, count }
                }
                OstRequest::LastId { seq } => {
                    OstReply::LastId { seq, oid: self.disk(move || store.last_id(seq)).await? }
                }
                OstRequest::Destroy { fid } => {
                    self.disk(move || store.destroy(fid)).await?;
                    target.ldlm.forget(fid);
                    OstReply::Done
                }
                OstRequest::Write { fid, offset, len, segs, crc, sync, lock } => {
                    self.write(&req, &target, fid, offset, len, segs, crc, sync, lock).await?
                }
                OstRequest::Read { fid, offset, len, segs } => {
                    self.read(&req, &target, fid, offset, len, segs).await?
                }
                OstRequest::WriteShort { fid, offset, crc, sync, lock } => {
                    let data = &req.body()[data_at..];
                    self.write_short(&req, &target, fid, offset, data, crc, sync, lock).await?
                }
                OstRequest::ReadShort { .. } => unreachable!("answered above"),
                OstRequest::Punch { fid, offset, len } => {
                    let _io = self.lock_write(&req, &target, fid, offset, len, None).await?;
                    self.disk(move || store.punch(fid, offset, len)).await?;
                    OstReply::Done
                }
                OstRequest::Truncate { fid, size } => {
                    let _io = target.ldlm.lock_io(req.from, fid, LockExtent::from(size)).await?;
                    self.disk(move || store.truncate(fid, size)).await?;
                    OstReply::Done
                }
                OstRequest::Getattr { fid } => {
                    // Writes another client gathered under a PW lock count
                    // towards the size: they come in first.
                    target.ldlm.lock_read(req.from, fid, LockExtent::WHOLE).await?;
                    OstReply::Attr(self.disk(move || store.getattr(fid)).await?)
                }
                OstRequest::Setattr { fid, atime, mtime } => {
                    // Other clients hold the times under their locks.
                    let _io = target.ldlm.lock_io(req.from, fid, LockExtent::WHOLE).await?;
                    self.disk(move || store.setattr(fid, ObjTimes { atime, mtime })).await?;
                    OstReply::Done
                }
                OstRequest::Sync { fid } => {
                    self.disk(move || match fid {
                        Some(f) => store.sync(f),
                        None => store.sync_all(),
                    })
                    .await?;
                    OstReply::Done
                }
                OstRequest::Statfs => OstReply::Statfs(self.disk(move || store.statfs()).await?),
                OstRequest::DestroyOrphans { seq, last_used } => {
                    let (oid, _) = self.disk(move || store.destroy_orphans(seq, last_used)).await?;
                    OstReply::LastId { seq, oid }
                }
                OstRequest::Enqueue { fid, mode, extent } => {
                    let (handle, extent) = target.ldlm.enqueue(req.from, fid, mode, extent).await?;
                    self.granted(&req, &target, fid, handle, extent).await?
                }
                OstRequest::Cancel { fid, handle } => {
                    target.ldlm.cancel(req.from, fid, handle)?;
                    OstReply::Done
                }
                OstRequest::Replay { fid, mode, extent, handle: old } => {
                    let handle = target.ldlm.replay(req.from, fid, mode, extent, old).await?;
                    self.granted(&req, &target, fid, handle, extent).await?
                }
                OstRequest::ReplayDone => {
                    target.ldlm.replay_done(req.from);
                    OstReply::Done
                }
                OstRequest::Disconnect => {
                    target.ldlm.disconnect(req.from).await;
                    OstReply::Done
                }
                OstRequest::Glimpse { fid } => match target.ldlm.glimpse(req.from, fid).await? {
                    Glimpsed::Granted(handle, extent) => {
                        self.granted(&req, &target, fid, handle, extent).await?
                    }
                    Glimpsed::Sizes(sizes) => {
                        let mut attr = self.disk(move || store.getattr(fid)).await?;
                        attr.size = sizes.into_iter().fold(attr.size, u64::max);
                        OstReply::Attr(attr)
                    }
                },
            }))
        }
        .await;
        timed.latency.observe(opcode, || name, started.elapsed().as_secs_f64());
        reply
    }

    /// The answer to a grant, with the object's attributes read once the
    /// lock is held (a write that grows the object from here on calls the
    /// lock back first). If they cannot be read the lock is given back:
    /// the client will not know it, so none is left behind.
    async fn granted(
        &self,
        req: &Request,
        target: &Arc<Target>,
        fid: proto::Fid,
        handle: LockHandle,
        extent: LockExtent,
    ) -> Result<OstReply, Errno> {
        let store = target.store.clone();
        match self.disk(move || store.getattr(fid)).await {
            Ok(attr) => Ok(OstReply::Granted { handle, extent, attr }),
            Err(e) => {
                let _ = target.ldlm.cancel(req.from, fid, handle);
                Err(e)
            }
        }
    }

    fn check_bulk(&self, len: u64, segs: &[fabric::BulkHandle]) -> Result<(), Errno> {
        if len > self.max_rpc as u64 || len > MAX_RPC_BYTES {
            return Err(Errno::EINVAL);
        }
        if segs.iter().try_fold(0u64, |acc, s| acc.checked_add(s.len)) != Some(len) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        req: &Request,
        target: &Arc<Target>,
        fid: proto::Fid,
        offset: u64,
        len: u64,
        segs: Vec<fabric::BulkHandle>,
        crc: u32,
        sync: bool,
        lock: Option<LockHandle>,
    ) -> Result<OstReply, Errno> {
        self.check_bulk(len, &segs)?;
        // The range is held before a pool buffer is taken: a write waiting
        // for a callback must not keep the buffer the holder's flush needs.
        let _io = self.lock_write(req, target, fid, offset, len, lock).await?;
        let mut buf: PoolBuf = self.bufs.get().await;
        let mut at = 0usize;
        for seg in segs {
            let (b, r) = req.bulk.get(seg, buf, at).await;
            buf = b;
            r.map_err(|e| e.errno())?;
            at += seg.len as usize;
        }
        check_crc(req, target, fid, &buf[..len as usize], crc)?;
        self.write_from(target, fid, offset, buf, len as usize, sync).await
    }

    async fn read(
        &self,
        req: &Request,
        target: &Arc<Target>,
        fid: proto::Fid,
        offset: u64,
        len: u64,
        segs: Vec<fabric::BulkHandle>,
    ) -> Result<OstReply, Errno> {
        self.check_bulk(len, &segs)?;
        let (mut buf, got) = self.read_into(req, target, fid, offset, len, &self.bufs).await?;
        let crc = crc32c::crc32c(&buf[..got]);
        // Push only the bytes the object holds; the client zero-fills the rest.
        let mut at = 0usize;
        for seg in segs {
            if at >= got {
                break;
            }
            let n = (seg.len as usize).min(got - at);
            let part = seg.slice(0, n as u64).ok_or(Errno::EINVAL)?;
            let (b, r) = req.bulk.put(part, buf, at).await;
            buf = b;
            r.map_err(|e| e.errno())?;
            at += seg.len as usize;
        }
        target.stats.read.add(got as u64);
        Ok(OstReply::ReadDone { len: got as u64, crc })
    }

    /// Writes the first `len` bytes of `buf` at `offset` of `fid`.
    async fn write_from(
        &self,
        target: &Arc<Target>,
        fid: proto::Fid,
        offset: u64,
        buf: PoolBuf,
        len: usize,
        sync: bool,
    ) -> Result<OstReply, Errno> {
        let store = target.store.clone();
        self.disk(move || store.write(fid, offset, &buf[..len], sync)).await?;
        target.stats.write.add(len as u64);
        Ok(OstReply::Written { len: len as u64 })
    }

    /// Holds `[offset, offset + len)` of `fid` for a write, other
    /// clients' locks over it called back first; then, for bytes gathered
    /// under the client's lock `lock`, checks that the lock is still the
    /// client's. Checked once the range is held, so no eviction can hand
    /// the range to another client between the check and the write.
    async fn lock_write(
        &self,
        req: &Request,
        target: &Arc<Target>,
        fid: proto::Fid,
        offset: u64,
        len: u64,
        lock: Option<LockHandle>,
    ) -> Result<Option<IoGuard>, Errno> {
        let io = match LockExtent::of_range(offset, len) {
            Some(e) => Some(target.ldlm.lock_io(req.from, fid, e).await?),
            None => None,
        };
        if let Some(h) = lock
            && let Err(e) = target.ldlm.check_gathered(req.from, fid, h)
        {
            // A write to an object that is gone is ENOENT, whatever its lock.
            let store = target.store.clone();
            self.disk(move || store.getattr(fid)).await?;
            return Err(e);
        }
        Ok(io)
    }

    /// Reads up to `len` bytes at `offset` into a buffer of `pool`, once
    /// other clients' overlapping PW locks (and the bytes they gathered)
    /// are called back; the buffer and how many bytes the object held.
    async fn read_into(
        &self,
        req: &Request,
        target: &Arc<Target>,
        fid: proto::Fid,
        offset: u64,
        len: u64,
        pool: &Arc<BufferPool>,
    ) -> Result<(PoolBuf, usize), Errno> {
        if let Some(e) = LockExtent::of_range(offset, len) {
            target.ldlm.lock_read(req.from, fid, e).await?;
        }
        let buf: PoolBuf = pool.get().await;
        let store = target.store.clone();
        let (buf, got) = self
            .io
            .run(move || {
                let mut buf = buf;
                let r = store.read(fid, offset, &mut buf[..len as usize]);
                (buf, r)
            })
            .await?;
        Ok((buf, got.map_err(ost_err)?))
    }

    /// A write whose bytes came inside the request.
    #[allow(clippy::too_many_arguments)]
    async fn write_short(
        &self,
        req: &Request,
        target: &Arc<Target>,
        fid: proto::Fid,
        offset: u64,
        data: &[u8],
        crc: u32,
        sync: bool,
        lock: Option<LockHandle>,
    ) -> Result<OstReply, Errno> {
        check_crc(req, target, fid, data, crc)?;
        let len = data.len();
        let _io = self.lock_write(req, target, fid, offset, len as u64, lock).await?;
        // Copied into an aligned buffer, so the disk write can be direct.
        let mut buf: PoolBuf = self.short_bufs.get().await;
        buf[..len].copy_from_slice(data);
        self.write_from(target, fid, offset, buf, len, sync).await
    }

    /// A read whose bytes go back inside the reply: the encoded reply.
    async fn read_short(
        &self,
        req: &Request,
        target: &Arc<Target>,
        fid: proto::Fid,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Errno> {
        if len > MAX_SHORT_IO_BYTES as u64 {
            return Err(Errno::EINVAL);
        }
        let (buf, got) = self.read_into(req, target, fid, offset, len, &self.short_bufs).await?;
        let data = &buf[..got];
        target.stats.read.add(got as u64);
        Ok(encode_ost_reply(&OstReply::ReadShort { crc: crc32c::crc32c(data) }, data))
    }
}

impl Service for Oss {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(self.serve(req))
    }

    /// Reads (bulk and short: a short read's reply holds up to 32 KiB),
    /// getattr and statfs.
    fn idempotent(&self, opcode: u16) -> bool {
        matches!(opcode, 1 | 3 | 13)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OssError {
    #[error("cannot start disk threads: {0}")]
    Threads(Errno),
    #[error("cannot allocate bulk buffers: {0}")]
    Memory(String),
    #[error("target {dir}: {reason}")]
    Target { dir: PathBuf, reason: String },
    #[error("cannot listen: {0}")]
    Listen(String),
    #[error("cannot register with the MGS: {0}")]
    Mgs(String),
}
