//! Striped I/O: a byte range is cut along stripes, the pieces for each
//! object are gathered into RPCs of up to `rpc_size`, and every OST is
//! written or read in parallel, each within its in-flight limit.

use crate::client::Client;
use crate::data_buf::DataBuf;
use crate::error::{ClientError, Result};
use crate::integrity::Integrity;
use crate::join;
use crate::readahead::{CachedPiece, NotCached};
use fabric::{Access, BulkHandle, Errno, Exposure, IoBuf, PoolBuf};
use proto::{Fid, Layout, LockHandle, OstReply, OstRequest, Raid0, layout::MAX_FILE_SIZE};
use std::sync::Arc;
use tokio::task::JoinSet;

/// The bytes of a read: lent from a cached block, or owned.
pub struct ReadBytes(Bytes);

enum Bytes {
    Shared { block: Arc<DataBuf>, range: std::ops::Range<usize> },
    Owned(Vec<u8>),
}

impl std::ops::Deref for ReadBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Bytes::Shared { block, range } => &block[range.clone()],
            Bytes::Owned(v) => v,
        }
    }
}

impl ReadBytes {
    pub fn empty() -> ReadBytes {
        ReadBytes(Bytes::Owned(Vec::new()))
    }

    /// One piece is lent; several are copied into one buffer.
    fn from_pieces(mut pieces: Vec<CachedPiece>, len: usize) -> ReadBytes {
        if pieces.len() == 1 {
            let (block, range) = pieces.pop().expect("one piece").into_shared();
            return ReadBytes(Bytes::Shared { block, range });
        }
        let mut out = vec![0u8; len];
        CachedPiece::copy_all(&pieces, &mut out);
        ReadBytes(Bytes::Owned(out))
    }
}

/// How a read started by [`Client::pread_start`] went.
pub enum ReadStart {
    Done(ReadBytes),
    Pending(PendingRead),
}

/// A read the cache could not answer at once.
pub struct PendingRead {
    client: Arc<Client>,
    layout: Layout,
    off: u64,
    len: usize,
    not: NotCached,
}

impl PendingRead {
    /// Waits for readahead on its way, or reads from the OSTs.
    pub async fn finish(self) -> Result<ReadBytes> {
        let PendingRead { client, layout, off, len, not } = self;
        if let Some(pieces) = client.cached_after(&layout, off, len as u64, not).await {
            return Ok(ReadBytes::from_pieces(pieces, len));
        }
        let r0 = raid0(&layout)?;
        let mut out = vec![0u8; len];
        let n = client.read_objects(&layout, r0, off, &mut out).await?;
        out.truncate(n);
        Ok(ReadBytes(Bytes::Owned(out)))
    }
}

/// How often a transfer whose checksum did not match is sent again before
/// the caller gets EIO.
const CHECKSUM_RETRIES: u32 = 3;

/// One RPC's worth of one object: object range `[obj_off, obj_off+len)`
/// and the file offsets of its pieces, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub stripe: usize,
    pub obj_off: u64,
    pub len: u64,
    /// (file offset, length) of each piece, contiguous in the object.
    pub pieces: Vec<(u64, u64)>,
}

/// Groups the stripe extents of `[off, off+len)` into per-object chunks of
/// at most `rpc_size` bytes, never crossing an RPC-size boundary of the
/// object so RPCs stay aligned.
pub(crate) fn plan(r0: &Raid0, off: u64, len: u64, rpc_size: u64) -> Vec<Chunk> {
    let mut open: Vec<Option<Chunk>> = vec![None; r0.stripe_count()];
    let mut out = Vec::new();
    for e in r0.extents(off, len) {
        let mut file_off = e.file_off;
        let mut obj_off = e.obj_off;
        let mut left = e.len;
        while left > 0 {
            let room = rpc_size - obj_off % rpc_size;
            let n = left.min(room);
            let slot = &mut open[e.stripe];
            match slot {
                Some(c) if c.obj_off + c.len == obj_off && c.len + n <= rpc_size => {
                    c.len += n;
                    c.pieces.push((file_off, n));
                }
                _ => {
                    if let Some(c) = slot.take() {
                        out.push(c);
                    }
                    *slot = Some(Chunk { stripe: e.stripe, obj_off, len: n, pieces: vec![(file_off, n)] });
                }
            }
            if obj_off % rpc_size + n == rpc_size
                && let Some(c) = slot.take()
            {
                out.push(c);
            }
            file_off += n;
            obj_off += n;
            left -= n;
        }
    }
    out.extend(open.into_iter().flatten());
    out
}

/// Copies one chunk's bytes into the caller's buffer, zero-filling what the
/// object did not hold, and notes how far data reached.
fn copy_out(
    (chunk, r): (Chunk, Result<(PoolBuf, u64)>),
    off: u64,
    out: &mut [u8],
    seen: &mut Seen,
) -> Result<()> {
    let (buf, got) = r?;
    let mut at = 0u64;
    for (file_off, n) in &chunk.pieces {
        let dst = (file_off - off) as usize;
        let have = got.saturating_sub(at).min(*n) as usize;
        out[dst..dst + have].copy_from_slice(&buf[at as usize..at as usize + have]);
        at += n;
    }
    seen.chunk(&chunk, got, off, out);
    Ok(())
}

/// What the chunks of one read found: how far data reached, and whether
/// any object ended before its chunk did.
struct Seen {
    end: u64,
    short: bool,
}

impl Seen {
    fn new(off: u64) -> Seen {
        Seen { end: off, short: false }
    }

    /// Notes that `chunk` brought `got` bytes, and zero-fills in `out`
    /// (which starts at file offset `off`) the part of its pieces it did
    /// not bring.
    fn chunk(&mut self, chunk: &Chunk, got: u64, off: u64, out: &mut [u8]) {
        if got < chunk.len {
            self.short = true;
        }
        let mut at = 0u64;
        for (file_off, n) in &chunk.pieces {
            let dst = (file_off - off) as usize;
            let have = got.saturating_sub(at).min(*n) as usize;
            if have > 0 {
                self.end = self.end.max(file_off + have as u64);
            }
            out[dst + have..dst + *n as usize].fill(0);
            at += n;
        }
    }
}

fn raid0(layout: &Layout) -> Result<&Raid0> {
    layout.raid0().filter(|r| !r.objects.is_empty()).ok_or(ClientError::Errno(Errno::EIO))
}

fn check_range(off: u64, len: u64) -> Result<()> {
    if off.checked_add(len).is_none_or(|end| end > MAX_FILE_SIZE) {
        return Err(ClientError::Errno(Errno::EFBIG));
    }
    Ok(())
}

/// The lock `fid`'s bytes were gathered under, if they were.
fn lock_of(under: &[(Fid, LockHandle)], fid: Fid) -> Option<LockHandle> {
    under.iter().find(|(f, _)| *f == fid).map(|(_, h)| *h)
}

/// RPCs of one registered-buffer call started at once; the per-OST limit
/// still bounds what is on the wire.
const REGISTERED_WINDOW: usize = 64;

impl Client {
    /// Checksum mismatches this client saw, and the fault injection that
    /// damages bulk transfers on purpose (for tests).
    pub fn integrity(&self) -> &Integrity {
        &self.integrity
    }

    /// Writes `data` at `off` of the file with `layout`. The data is copied
    /// once into registered buffers; [`Client::pwrite_registered`] avoids
    /// even that copy.
    pub async fn pwrite(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        data: &[u8],
        sync: bool,
    ) -> Result<usize> {
        self.pwrite_under(layout, off, data, sync, &[]).await
    }

    /// [`Client::pwrite`] of bytes gathered under the PW locks `under`
    /// (by object), which each write RPC names.
    pub(crate) async fn pwrite_under(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        data: &[u8],
        sync: bool,
        under: &[(Fid, LockHandle)],
    ) -> Result<usize> {
        check_range(off, data.len() as u64)?;
        let r0 = raid0(layout)?;
        let _changing = self.changing(layout, off, data.len() as u64);
        let mut tasks = JoinSet::new();
        for chunk in plan(r0, off, data.len() as u64, self.rpc_size() as u64) {
            let mut buf = self.pool.get().await;
            let mut at = 0usize;
            let mut crc = 0u32;
            for (file_off, n) in &chunk.pieces {
                let src = (file_off - off) as usize;
                let dst = &mut buf[at..at + *n as usize];
                dst.copy_from_slice(&data[src..src + *n as usize]);
                // While the piece is still in cache.
                crc = crc32c::crc32c_append(crc, dst);
                at += *n as usize;
            }
            let obj = r0.objects[chunk.stripe];
            let lock = lock_of(under, obj.fid);
            let me = self.clone();
            tasks.spawn(async move {
                let ex = me
                    .ep
                    .registry()
                    .expose_range(buf.io(), 0, chunk.len as usize, Access::Read)
                    .map_err(|e| e.errno())?;
                let r = me.write_rpc(
                    obj.ost_idx,
                    obj.fid,
                    chunk.obj_off,
                    vec![ex.handle()],
                    chunk.len,
                    crc,
                    sync,
                    lock,
                );
                let r = r.await;
                drop((ex, buf));
                r
            });
            // Surface a failure early instead of queueing more work.
            while let Some(r) = tasks.try_join_next() {
                r.expect("write task")?;
            }
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("write task")?;
        }
        Ok(data.len())
    }

    /// One write RPC of `len` bytes the OST pulls from `segs`. The OST
    /// refuses data whose checksum does not match (EBADMSG) and writes
    /// nothing; the bytes were damaged on the way, so they are sent again,
    /// and a transfer damaged every time is EIO.
    #[allow(clippy::too_many_arguments)]
    async fn write_rpc(
        &self,
        ost: u32,
        fid: Fid,
        offset: u64,
        segs: Vec<BulkHandle>,
        len: u64,
        crc: u32,
        sync: bool,
        lock: Option<LockHandle>,
    ) -> Result<()> {
        let short = self.is_short_io(ost, len);
        let mut refused = 0;
        loop {
            let damage = self.integrity.take_write_damage();
            let r = if short {
                let req = OstRequest::WriteShort { fid, offset, crc, sync, lock };
                let data = |body: &mut Vec<u8>| self.append_exposed(body, &segs, damage);
                self.ost_with_data(ost, &req, data).await.map(|a| a.reply)
            } else {
                let damaged = if damage { Some(self.damaged_copy(&segs, len)?) } else { None };
                let segs = match &damaged {
                    Some((_, ex)) => vec![ex.handle()],
                    None => segs.clone(),
                };
                self.ost(ost, &OstRequest::Write { fid, offset, len, segs, crc, sync, lock }).await
            };
            match r {
                Ok(OstReply::Written { .. }) => return Ok(()),
                Ok(_) => return Err(ClientError::UnexpectedReply { service: "OST" }),
                Err(e) if e.errno() == Errno::EBADMSG => {
                    self.integrity.write_refused();
                    if refused == CHECKSUM_RETRIES {
                        tracing::error!(ost, %fid, offset, len, "write checksum refused on every attempt");
                        return Err(ClientError::Errno(Errno::EIO));
                    }
                    refused += 1;
                    tracing::warn!(ost, %fid, offset, attempt = refused, "write checksum refused by the OST; resending");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends the bytes `segs` name to a short write's request (with
    /// the first bit flipped when `damage`: fault injection).
    fn append_exposed(&self, body: &mut Vec<u8>, segs: &[BulkHandle], damage: bool) -> Result<()> {
        let start = body.len();
        for s in segs {
            let src =
                self.ep.registry().resolve(s.key, s.addr, s.len, Access::Read).map_err(|e| e.errno())?;
            body.extend_from_slice(src.as_slice());
        }
        if damage && let Some(b) = body.get_mut(start) {
            *b ^= 1;
        }
        Ok(())
    }

    /// Fault injection: a copy of the bytes `segs` name with one bit
    /// flipped, exposed for the OST to pull in their place.
    fn damaged_copy(&self, segs: &[BulkHandle], len: u64) -> Result<(IoBuf, Exposure)> {
        let mut copy = IoBuf::alloc(len as usize, None).map_err(|e| Errno::from_io(&e))?;
        let mut at = 0usize;
        for s in segs {
            let src =
                self.ep.registry().resolve(s.key, s.addr, s.len, Access::Read).map_err(|e| e.errno())?;
            copy.as_mut_slice()[at..at + src.len()].copy_from_slice(src.as_slice());
            at += src.len();
        }
        if let Some(b) = copy.as_mut_slice().first_mut() {
            *b ^= 1;
        }
        let ex = self.ep.registry().expose(&copy, Access::Read);
        Ok((copy, ex))
    }

    /// Writes from a registered buffer: the OSTs pull straight from it.
    pub async fn pwrite_registered(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        buf: &IoBuf,
        sync: bool,
    ) -> Result<usize> {
        self.pwrite_from(layout, off, buf, buf.len(), sync, &[]).await
    }

    /// Writes the first `len` bytes of the registered `buf` at `off`.
    pub(crate) async fn pwrite_from(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        buf: &IoBuf,
        len: usize,
        sync: bool,
        under: &[(Fid, LockHandle)],
    ) -> Result<usize> {
        let len = len.min(buf.len());
        check_range(off, len as u64)?;
        let r0 = raid0(layout)?;
        let _changing = self.changing(layout, off, len as u64);
        let mut tasks = JoinSet::new();
        for chunk in plan(r0, off, len as u64, self.rpc_size() as u64) {
            let mut segs = Vec::with_capacity(chunk.pieces.len());
            let mut exposures = Vec::with_capacity(chunk.pieces.len());
            let mut crc = 0u32;
            for (file_off, n) in &chunk.pieces {
                let at = (file_off - off) as usize;
                crc = crc32c::crc32c_append(crc, &buf[at..at + *n as usize]);
                let ex = self
                    .ep
                    .registry()
                    .expose_range(buf, at, *n as usize, Access::Read)
                    .map_err(|e| e.errno())?;
                segs.push(ex.handle());
                exposures.push(ex);
            }
            let obj = r0.objects[chunk.stripe];
            let lock = lock_of(under, obj.fid);
            let me = self.clone();
            tasks.spawn(async move {
                let r =
                    me.write_rpc(obj.ost_idx, obj.fid, chunk.obj_off, segs, chunk.len, crc, sync, lock).await;
                drop(exposures);
                r
            });
        }
        // Every RPC is waited for, failed or not: until its task ends its
        // exposure still lets the OST read `buf`, which the caller may
        // reuse once this returns.
        let mut first = None;
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r.expect("write task") {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(len), Err)
    }

    /// Reads into `out` from `off`; returns the bytes read, short only at
    /// end of file. Holes read as zeros.
    pub async fn pread(self: &Arc<Self>, layout: &Layout, off: u64, out: &mut [u8]) -> Result<usize> {
        check_range(off, out.len() as u64)?;
        let r0 = raid0(layout)?;
        let n = self.readable(r0, off, out.len());
        let out = &mut out[..n];
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(n) = self.read_cached(layout, off, out).await {
            return Ok(n);
        }
        self.read_objects(layout, r0, off, out).await
    }

    /// Reads `len` bytes from `off` (fewer at end of file): when the cache
    /// holds them in one block, that block is lent rather than copied (a
    /// reply can be written straight from it); otherwise into a buffer of
    /// their own.
    pub async fn pread_shared(self: &Arc<Self>, layout: &Layout, off: u64, len: usize) -> Result<ReadBytes> {
        match self.pread_start(layout, off, len)? {
            ReadStart::Done(bytes) => Ok(bytes),
            ReadStart::Pending(p) => p.finish().await,
        }
    }

    /// [`Client::pread_shared`] as far as it goes without waiting: the
    /// bytes when the cache holds them (or the file ends before `off`),
    /// else a read to finish. A FUSE thread answers a cached read
    /// itself, without handing it to the runtime. Starts readahead, so it
    /// is called inside the client's runtime (`Handle::enter`).
    pub fn pread_start(self: &Arc<Self>, layout: &Layout, off: u64, len: usize) -> Result<ReadStart> {
        check_range(off, len as u64)?;
        let r0 = raid0(layout)?;
        let len = self.readable(r0, off, len);
        if len == 0 {
            return Ok(ReadStart::Done(ReadBytes::empty()));
        }
        match self.cached_now(layout, off, len as u64) {
            Ok(pieces) => Ok(ReadStart::Done(ReadBytes::from_pieces(pieces, len))),
            Err(not) => Ok(ReadStart::Pending(PendingRead {
                client: self.clone(),
                layout: layout.clone(),
                off,
                len,
                not,
            })),
        }
    }

    /// How much of `len` bytes from `off` there is to read: under PR locks
    /// over every object the size is known, and nothing past it is asked
    /// for (the second read(2) of `cat` costs no RPC).
    fn readable(&self, r0: &Raid0, off: u64, len: usize) -> usize {
        match self.size_under_locks(r0) {
            Some(size) => size.saturating_sub(off).min(len as u64) as usize,
            None => len,
        }
    }

    /// Reads `out` from the objects, in parallel RPCs through pool buffers.
    async fn read_objects(
        self: &Arc<Self>,
        layout: &Layout,
        r0: &Raid0,
        off: u64,
        out: &mut [u8],
    ) -> Result<usize> {
        let mut tasks = JoinSet::new();
        let mut seen = Seen::new(off);
        for chunk in plan(r0, off, out.len() as u64, self.rpc_size() as u64) {
            // Each result is copied out as soon as it arrives, which gives its
            // buffer back: a read larger than the pool never waits on itself.
            let buf = loop {
                if let Some(b) = self.pool.try_get() {
                    break b;
                }
                match tasks.join_next().await {
                    Some(r) => copy_out(r.expect("read task"), off, out, &mut seen)?,
                    None => break self.pool.get().await,
                }
            };
            let obj = r0.objects[chunk.stripe];
            let me = self.clone();
            tasks.spawn(async move {
                let r = me.read_chunk(obj.ost_idx, obj.fid, chunk.obj_off, chunk.len, buf).await;
                (chunk, r)
            });
        }
        while let Some(r) = tasks.join_next().await {
            copy_out(r.expect("read task"), off, out, &mut seen)?;
        }
        self.read_end(layout, off, out.len() as u64, &seen).await
    }

    /// Reads into the registered `buf` from `off`: the OSTs push straight
    /// into it, with no copy on this side. Returns the bytes read, short
    /// only at end of file; holes read as zeros. If the call is dropped
    /// before it returns, what `buf` holds is unspecified.
    pub async fn pread_registered(
        self: &Arc<Self>,
        layout: &Layout,
        off: u64,
        buf: &mut IoBuf,
    ) -> Result<usize> {
        let len = buf.len() as u64;
        check_range(off, len)?;
        let r0 = raid0(layout)?;
        let chunks = plan(r0, off, len, self.rpc_size() as u64);
        let results = {
            let (shared, chunks): (&IoBuf, &[Chunk]) = (buf, &chunks);
            let rpcs = (0..chunks.len()).map(|i| async move {
                let c = &chunks[i];
                let obj = r0.objects[c.stripe];
                (i, self.read_into(shared, off, c, obj.ost_idx, obj.fid).await)
            });
            join::run_all(rpcs, REGISTERED_WINDOW).await
        };
        let mut got = vec![0u64; chunks.len()];
        for (i, r) in results {
            got[i] = r?;
        }
        let mut seen = Seen::new(off);
        for (c, n) in chunks.iter().zip(&got) {
            seen.chunk(c, *n, off, buf.as_mut_slice());
        }
        self.read_end(layout, off, len, &seen).await
    }

    /// One chunk read straight into its pieces of `buf` (which starts at
    /// file offset `off`), checked as soon as it lands and read again while
    /// its checksum does not match; the bytes the OST sent.
    pub(crate) async fn read_into(
        &self,
        buf: &IoBuf,
        off: u64,
        chunk: &Chunk,
        ost: u32,
        fid: Fid,
    ) -> Result<u64> {
        let mut segs = Vec::with_capacity(chunk.pieces.len());
        let mut exposures = Vec::with_capacity(chunk.pieces.len());
        for (file_off, n) in &chunk.pieces {
            let ex = self
                .ep
                .registry()
                .expose_range(buf, (file_off - off) as usize, *n as usize, Access::Write)
                .map_err(|e| e.errno())?;
            segs.push(ex.handle());
            exposures.push(ex);
        }
        let mut attempt = 0;
        loop {
            let (n, crc) = self.read_rpc(ost, fid, chunk.obj_off, chunk.len, segs.clone()).await?;
            // Other chunks may still be landing in `buf`: the pieces are read
            // through the registry, which names exactly this chunk's bytes.
            let mut have = 0u32;
            let mut at = 0u64;
            for h in &segs {
                let take = n.saturating_sub(at).min(h.len);
                if take > 0 {
                    let mut piece = self
                        .ep
                        .registry()
                        .resolve(h.key, h.addr, take, Access::Write)
                        .map_err(|e| e.errno())?;
                    if at == 0 && self.integrity.take_read_damage() {
                        // SAFETY: this call owns the range, and the transfer into it is over.
                        unsafe { piece.as_mut_slice()[0] ^= 1 };
                    }
                    have = crc32c::crc32c_append(have, piece.as_slice());
                }
                at += h.len;
            }
            if have == crc {
                drop(exposures);
                return Ok(n);
            }
            self.integrity.read_mismatch();
            if attempt == CHECKSUM_RETRIES {
                return Err(ClientError::Checksum { ost, want: crc, got: have });
            }
            attempt += 1;
            tracing::warn!(ost, %fid, want = crc, got = have, attempt, "read checksum mismatch; reading again");
        }
    }

    /// One read RPC of up to `len` bytes into `segs`: the bytes the OST
    /// sent (never more than asked) and their checksum.
    async fn read_rpc(
        &self,
        ost: u32,
        fid: Fid,
        offset: u64,
        len: u64,
        segs: Vec<BulkHandle>,
    ) -> Result<(u64, u32)> {
        if !self.is_short_io(ost, len) {
            return match self.ost(ost, &OstRequest::Read { fid, offset, len, segs }).await? {
                OstReply::ReadDone { len: got, crc } if got <= len => Ok((got, crc)),
                _ => Err(ClientError::UnexpectedReply { service: "OST" }),
            };
        }
        let answer = self.ost_with_data(ost, &OstRequest::ReadShort { fid, offset, len }, |_| Ok(())).await?;
        let (OstReply::ReadShort { crc }, data) = (&answer.reply, answer.data()) else {
            return Err(ClientError::UnexpectedReply { service: "OST" });
        };
        if data.len() as u64 > len {
            return Err(ClientError::UnexpectedReply { service: "OST" });
        }
        // Into the ranges the caller exposed, as a bulk push would have put
        // them; the caller checks the crc over them there.
        let mut rest = data;
        for h in &segs {
            if rest.is_empty() {
                break;
            }
            let n = rest.len().min(h.len as usize);
            let mut dst =
                self.ep.registry().resolve(h.key, h.addr, n as u64, Access::Write).map_err(|e| e.errno())?;
            // SAFETY: the caller exposed `segs` for this read to land in and
            // does not touch them until it returns.
            unsafe { dst.as_mut_slice() }.copy_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        Ok((data.len() as u64, *crc))
    }

    /// How many bytes from `off` a read of `len` bytes returns, given what
    /// its chunks found.
    async fn read_end(&self, layout: &Layout, off: u64, len: u64, seen: &Seen) -> Result<usize> {
        let end = if seen.short {
            // Ask every object how long it is: bytes up to the real end of
            // file that no object holds are holes, not EOF.
            self.glimpse_size(layout).await?.max(seen.end).min(off + len)
        } else {
            off + len
        };
        Ok(end.saturating_sub(off) as usize)
    }

    pub(crate) async fn read_chunk(
        &self,
        ost: u32,
        fid: Fid,
        obj_off: u64,
        len: u64,
        buf: PoolBuf,
    ) -> Result<(PoolBuf, u64)> {
        let mut buf = buf;
        let mut attempt = 0;
        loop {
            match self.read_chunk_once(ost, fid, obj_off, len, buf).await {
                Err((ClientError::Checksum { ost, want, got }, b)) if attempt < CHECKSUM_RETRIES => {
                    attempt += 1;
                    tracing::warn!(ost, %fid, want, got, attempt, "read checksum mismatch; reading again");
                    buf = b;
                }
                Err((e, _)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
    }

    async fn read_chunk_once(
        &self,
        ost: u32,
        fid: Fid,
        obj_off: u64,
        len: u64,
        mut buf: PoolBuf,
    ) -> std::result::Result<(PoolBuf, u64), (ClientError, PoolBuf)> {
        let ex = match self.ep.registry().expose_range(buf.io(), 0, len as usize, Access::Write) {
            Ok(ex) => ex,
            Err(e) => return Err((e.errno().into(), buf)),
        };
        let reply = self.read_rpc(ost, fid, obj_off, len, vec![ex.handle()]).await;
        drop(ex);
        let (got, crc) = match reply {
            Ok(r) => r,
            Err(e) => return Err((e, buf)),
        };
        if got > 0 && self.integrity.take_read_damage() {
            buf[0] ^= 1;
        }
        let have = crc32c::crc32c(&buf[..got as usize]);
        if have != crc {
            self.integrity.read_mismatch();
            return Err((ClientError::Checksum { ost, want: crc, got: have }, buf));
        }
        Ok((buf, got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proto::{StripeObject, layout::STRIPE_SIZE_UNIT};

    fn r0(size: u64, count: u32) -> Raid0 {
        Raid0 {
            stripe_size: size,
            stripe_offset: None,
            objects: (0..count)
                .map(|i| StripeObject { ost_idx: i, fid: Fid::new(Fid::ost_seq(i), 1) })
                .collect(),
        }
    }

    #[test]
    fn one_mib_stripes_make_one_rpc_per_stripe() {
        let r = r0(1 << 20, 4);
        let chunks = plan(&r, 0, 8 << 20, 1 << 20);
        assert_eq!(chunks.len(), 8);
        assert!(chunks.iter().all(|c| c.len == 1 << 20 && c.pieces.len() == 1));
    }

    #[test]
    fn small_stripes_gather_into_full_rpcs() {
        let r = r0(64 << 10, 2);
        let chunks = plan(&r, 0, 4 << 20, 1 << 20);
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.len == 1 << 20 && c.pieces.len() == 16));
    }

    proptest! {
        #[test]
        fn plan_covers_the_range_once(units in 1u64..20, count in 1u32..6, off in 0u64..(1 << 24),
                                      len in 0u64..(1 << 23), rpc_pow in 16u32..22) {
            let r = r0(units * STRIPE_SIZE_UNIT, count);
            let rpc = 1u64 << rpc_pow;
            let chunks = plan(&r, off, len, rpc);
            let mut pieces: Vec<(u64, u64)> = chunks.iter().flat_map(|c| c.pieces.clone()).collect();
            pieces.sort();
            let mut pos = off;
            for (o, n) in &pieces {
                prop_assert_eq!(*o, pos);
                pos += n;
            }
            prop_assert_eq!(pos, off + len);
            for c in &chunks {
                prop_assert!(c.len <= rpc);
                prop_assert_eq!(c.obj_off / rpc, (c.obj_off + c.len - 1) / rpc);
                let mut obj = c.obj_off;
                for (fo, n) in &c.pieces {
                    prop_assert_eq!(r.map(*fo), (c.stripe, obj));
                    obj += n;
                }
                prop_assert_eq!(obj, c.obj_off + c.len);
            }
        }
    }
}
