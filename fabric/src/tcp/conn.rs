//! One connection set to one peer: a control connection for immediate
//! messages and bulk connections for data, as socklnd types them, with the
//! credits and outstanding bulk operations that live and die with it.

use super::frame::{FrameError, FrameType, HEADER_LEN, Header};
use super::{Inner, PeerStats};
use crate::lnd::{BulkBuf, LndError, MAX_IMMEDIATE, RecvBuf};
use crate::memory::Access;
use crate::{Errno, ProcessId};
use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, Semaphore, oneshot};

pub(super) struct Conn {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    fd: RawFd,
}

impl Conn {
    pub(super) fn new(writer: OwnedWriteHalf) -> Arc<Conn> {
        let fd = writer.as_ref().as_raw_fd();
        Arc::new(Conn { writer: tokio::sync::Mutex::new(writer), fd })
    }
}

/// A bulk operation this node started and waits on, by cookie.
pub(super) enum Pending {
    Get(Box<dyn GetSink>),
    Put(oneshot::Sender<Result<(), LndError>>),
}

/// Where the bytes of a GetData go, and whom to tell.
pub(super) trait GetSink: Send {
    fn target(&mut self) -> &mut [u8];
    fn complete(self: Box<Self>, r: Result<(), LndError>);
}

/// Owns the caller's buffer until the transfer ends; dropped unanswered
/// (its connection set torn down) it answers with the loss, so the caller
/// always gets its buffer back.
/// What a bulk read hands back: the buffer and how the transfer went.
pub(super) type GetDone<B> = (B, Result<(), LndError>);

pub(super) struct Sink<B: BulkBuf> {
    buf: Option<B>,
    off: usize,
    len: usize,
    peer: ProcessId,
    tx: Option<oneshot::Sender<GetDone<B>>>,
}

impl<B: BulkBuf> Sink<B> {
    pub(super) fn new(
        buf: B,
        off: usize,
        len: usize,
        peer: ProcessId,
    ) -> (Self, oneshot::Receiver<GetDone<B>>) {
        let (tx, rx) = oneshot::channel();
        (Sink { buf: Some(buf), off, len, peer, tx: Some(tx) }, rx)
    }
}

impl<B: BulkBuf> GetSink for Sink<B> {
    fn target(&mut self) -> &mut [u8] {
        let (off, len) = (self.off, self.len);
        &mut self.buf.as_mut().expect("sink holds its buffer").io_mut().as_mut_slice()[off..off + len]
    }
    fn complete(mut self: Box<Self>, r: Result<(), LndError>) {
        if let (Some(buf), Some(tx)) = (self.buf.take(), self.tx.take()) {
            let _ = tx.send((buf, r));
        }
    }
}

impl<B: BulkBuf> Drop for Sink<B> {
    fn drop(&mut self) {
        if let (Some(buf), Some(tx)) = (self.buf.take(), self.tx.take()) {
            let _ = tx.send((buf, Err(LndError::ConnectionLost { peer: self.peer })));
        }
    }
}

pub(super) struct ConnSet {
    pub peer: ProcessId,
    /// Which set of the peer's this is, as its hello named it.
    pub set_id: u64,
    pub control: Arc<Conn>,
    pub bulk: Vec<Arc<Conn>>,
    next_bulk: AtomicUsize,
    /// Credits this node holds for sending immediate messages to the peer.
    pub credits: Semaphore,
    /// Credits this node owes the peer for messages it has consumed.
    to_return: AtomicU32,
    /// Owed credits that make it worth a frame of their own (half the
    /// grant, as o2iblnd's high-water mark). Fewer ride back on the next
    /// message: a request/reply exchange then sends no credit-only frame.
    /// A sender that has run out has all its credits owed to it, which is
    /// at least this many, so it is never left waiting.
    credit_highwater: u32,
    credit_notify: Notify,
    pub pending: Mutex<HashMap<u64, Pending>>,
    dead: AtomicBool,
    /// Whether the loss of this set was reported (`Inner::connection_lost`).
    pub(super) loss_reported: AtomicBool,
    /// The peer's counters, shared by all its connection sets.
    pub stats: Arc<PeerStats>,
}

/// Kills the connection set if a write is abandoned half-way, because a
/// torn frame leaves the stream unparseable.
struct TornGuard<'a> {
    set: &'a ConnSet,
    armed: bool,
}

impl Drop for TornGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.set.mark_dead();
        }
    }
}

/// Frames up to this size (header included) go out in one plain write.
const SMALL_FRAME: usize = 1024;

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    parts: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    let mut parts = parts;
    while !parts.is_empty() {
        let n = w.write_vectored(parts).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

impl ConnSet {
    pub(super) fn new(
        peer: ProcessId,
        set_id: u64,
        control: Arc<Conn>,
        bulk: Vec<Arc<Conn>>,
        peer_credits: u16,
        stats: Arc<PeerStats>,
    ) -> Arc<ConnSet> {
        Arc::new(ConnSet {
            peer,
            set_id,
            control,
            bulk,
            next_bulk: AtomicUsize::new(0),
            credits: Semaphore::new(peer_credits as usize),
            to_return: AtomicU32::new(0),
            credit_highwater: (peer_credits as u32 / 2).max(1),
            credit_notify: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
            loss_reported: AtomicBool::new(false),
            stats,
        })
    }

    pub(super) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn bulk_conn(&self) -> &Arc<Conn> {
        if self.bulk.is_empty() {
            return &self.control;
        }
        let i = self.next_bulk.fetch_add(1, Ordering::Relaxed);
        &self.bulk[i % self.bulk.len()]
    }

    /// Stops everything on this set: sockets shut so readers wake, waiters
    /// failed, and no new credits handed out. Returns whether this call was
    /// the one that killed it.
    pub(super) fn mark_dead(&self) -> bool {
        if self.dead.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.credits.close();
        for c in std::iter::once(&self.control).chain(self.bulk.iter()) {
            // SAFETY: shutdown on a socket fd we own; it only wakes readers.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        }
        let drained: Vec<Pending> =
            self.pending.lock().expect("pending lock").drain().map(|(_, p)| p).collect();
        for p in drained {
            let err = LndError::ConnectionLost { peer: self.peer };
            match p {
                Pending::Get(sink) => sink.complete(Err(err)),
                Pending::Put(tx) => {
                    let _ = tx.send(Err(err));
                }
            }
        }
        self.credit_notify.notify_one();
        true
    }

    /// Writes one frame on `conn`, returning owed credits in its header.
    pub(super) async fn write_frame(
        &self,
        conn: &Conn,
        mut h: Header,
        payload: &[&[u8]],
        checksum_payload: bool,
    ) -> Result<(), LndError> {
        if self.is_dead() {
            return Err(LndError::ConnectionLost { peer: self.peer });
        }
        let mut w = conn.writer.lock().await;
        h.credits = self.to_return.swap(0, Ordering::AcqRel).min(u16::MAX as u32) as u16;
        h.len = payload.iter().map(|p| p.len()).sum::<usize>() as u32;
        let raw = h.seal(if checksum_payload { payload } else { &[] });
        let len = HEADER_LEN + h.len as usize;
        if len <= SMALL_FRAME {
            // One plain send: writev costs about twice as much per call
            // for the few hundred bytes of a small RPC.
            let mut one = [0u8; SMALL_FRAME];
            let mut at = 0;
            for p in std::iter::once(&raw[..]).chain(payload.iter().copied()) {
                one[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
            let mut guard = TornGuard { set: self, armed: true };
            let r = w.write_all(&one[..len]).await;
            guard.armed = r.is_err();
            drop(guard);
            return r.map_err(|_| LndError::ConnectionLost { peer: self.peer });
        }
        let mut slices: [IoSlice<'_>; 4] =
            [IoSlice::new(&raw), IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[])];
        assert!(payload.len() <= 3, "at most three payload parts");
        for (i, p) in payload.iter().enumerate() {
            slices[i + 1] = IoSlice::new(p);
        }
        let mut guard = TornGuard { set: self, armed: true };
        let r = write_all_vectored(&mut *w, &mut slices[..payload.len() + 1]).await;
        guard.armed = r.is_err();
        drop(guard);
        r.map_err(|_| LndError::ConnectionLost { peer: self.peer })
    }

    pub(super) async fn send_msg(&self, parts: &[&[u8]]) -> Result<(), LndError> {
        let permit =
            self.credits.acquire().await.map_err(|_| LndError::ConnectionLost { peer: self.peer })?;
        permit.forget();
        self.write_frame(&self.control, Header::new(FrameType::Msg), parts, true).await
    }

    /// A received message was consumed: its buffer is free again.
    fn return_credit(&self) {
        if self.to_return.fetch_add(1, Ordering::AcqRel) + 1 >= self.credit_highwater {
            self.credit_notify.notify_one();
        }
    }

    /// Sends owed credits when no other traffic carried them back.
    pub(super) async fn credit_returner(self: Arc<Self>) {
        loop {
            self.credit_notify.notified().await;
            if self.is_dead() {
                return;
            }
            // Let a reply already on its way carry the credit instead.
            tokio::task::yield_now().await;
            if self.to_return.load(Ordering::Acquire) > 0
                && self.write_frame(&self.control, Header::new(FrameType::Noop), &[], true).await.is_err()
            {
                return;
            }
        }
    }

    /// Records a bulk operation; refused (and dropped) once the set is dead.
    pub(super) fn register(&self, cookie: u64, p: Pending) -> Result<(), ()> {
        let mut pending = self.pending.lock().expect("pending lock");
        if self.is_dead() {
            return Err(());
        }
        pending.insert(cookie, p);
        Ok(())
    }

    pub(super) fn unregister(&self, cookie: u64) -> Option<Pending> {
        self.pending.lock().expect("pending lock").remove(&cookie)
    }

    pub(super) async fn send_get_req(
        &self,
        cookie: u64,
        key: u64,
        addr: u64,
        blen: u32,
    ) -> Result<(), LndError> {
        let mut h = Header::new(FrameType::GetReq);
        h.cookie = cookie;
        h.key = key;
        h.addr = addr;
        h.blen = blen;
        self.write_frame(self.bulk_conn(), h, &[], true).await
    }

    pub(super) async fn send_put(
        &self,
        cookie: u64,
        key: u64,
        addr: u64,
        data: &[u8],
    ) -> Result<(), LndError> {
        let mut h = Header::new(FrameType::PutData);
        h.cookie = cookie;
        h.key = key;
        h.addr = addr;
        self.write_frame(self.bulk_conn(), h, &[data], false).await
    }

    async fn send_bulk_status(&self, ftype: FrameType, cookie: u64, errno: i32) {
        let mut h = Header::new(ftype);
        h.cookie = cookie;
        h.errno = errno;
        let _ = self.write_frame(self.bulk_conn(), h, &[], true).await;
    }
}

/// A received immediate message in one of the LND's recycled buffers.
pub(super) struct TcpMsg {
    buf: Vec<u8>,
    len: usize,
    set: Arc<ConnSet>,
    lnd: Arc<Inner>,
}

impl RecvBuf for TcpMsg {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for TcpMsg {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let _ = self.lnd.msg_bufs.push(buf);
        self.set.return_credit();
    }
}

async fn discard<R: AsyncRead + Unpin>(r: &mut R, mut n: usize) -> std::io::Result<()> {
    let mut scratch = [0u8; 8192];
    while n > 0 {
        let k = n.min(scratch.len());
        r.read_exact(&mut scratch[..k]).await?;
        n -= k;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("peer sent {got} bytes for a bulk read of {want}")]
    BulkLength { got: u32, want: usize },
    #[error("unexpected {0:?} frame")]
    Unexpected(FrameType),
}

/// Reads frames from one connection until it fails, then kills the set.
pub(super) async fn reader(lnd: Arc<Inner>, set: Arc<ConnSet>, rd: OwnedReadHalf) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let err = loop {
        match read_one(&lnd, &set, &mut rd).await {
            Ok(()) => {}
            Err(e) => break e,
        }
    };
    if set.mark_dead() {
        match &err {
            ReadError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::info!(peer = %set.peer, "connection closed by peer")
            }
            ReadError::Io(e) if set.is_dead() && e.kind() != std::io::ErrorKind::InvalidData => {
                tracing::info!(peer = %set.peer, error = %e, "connection lost")
            }
            _ => {
                lnd.stats.frames_refused.fetch_add(1, Ordering::Relaxed);
                if matches!(err, ReadError::Frame(FrameError::Checksum { .. })) {
                    lnd.stats.checksum_errors.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(peer = %set.peer, error = %err, "dropping connection after a bad frame")
            }
        }
    }
    // Whoever marked the set dead (a torn write, say), its loss is reported
    // once, here at the latest: waiting calls and lock holders learn of it.
    lnd.connection_lost(&set);
}

async fn read_one<R: AsyncRead + Unpin>(
    lnd: &Arc<Inner>,
    set: &Arc<ConnSet>,
    rd: &mut R,
) -> Result<(), ReadError> {
    let mut raw = [0u8; HEADER_LEN];
    rd.read_exact(&mut raw).await?;
    let h = Header::decode(&raw)?;
    if h.credits > 0 {
        set.credits.add_permits(h.credits as usize);
    }
    match h.ftype {
        FrameType::Msg => {
            let mut buf = lnd.msg_bufs.pop().unwrap_or_default();
            if buf.len() < MAX_IMMEDIATE {
                buf.resize(MAX_IMMEDIATE, 0);
            }
            let len = h.len as usize;
            rd.read_exact(&mut buf[..len]).await?;
            h.verify(&raw, &buf[..len])?;
            lnd.stats.rx_msgs.fetch_add(1, Ordering::Relaxed);
            lnd.stats.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
            set.stats.rx_msgs.fetch_add(1, Ordering::Relaxed);
            set.stats.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
            let msg = TcpMsg { buf, len, set: set.clone(), lnd: lnd.clone() };
            lnd.deliver.deliver(set.peer, Box::new(msg));
        }
        FrameType::Noop => h.verify(&raw, &[])?,
        FrameType::GetReq => {
            h.verify(&raw, &[])?;
            serve_get(lnd, set, h);
        }
        FrameType::GetData => {
            h.verify(&raw, &[])?;
            match set.unregister(h.cookie) {
                Some(Pending::Get(mut sink)) => {
                    let target = sink.target();
                    if target.len() != h.len as usize {
                        let want = target.len();
                        sink.complete(Err(LndError::BulkRefused { peer: set.peer, errno: Errno::EPROTO }));
                        return Err(ReadError::BulkLength { got: h.len, want });
                    }
                    rd.read_exact(target).await?;
                    lnd.stats.bulk_rx_bytes.fetch_add(h.len as u64, Ordering::Relaxed);
                    set.stats.bulk_rx_bytes.fetch_add(h.len as u64, Ordering::Relaxed);
                    sink.complete(Ok(()));
                }
                Some(Pending::Put(tx)) => {
                    let _ = tx.send(Err(LndError::BulkRefused { peer: set.peer, errno: Errno::EPROTO }));
                    return Err(ReadError::Unexpected(h.ftype));
                }
                // The waiter gave up; the bytes still have to be consumed.
                None => discard(rd, h.len as usize).await?,
            }
        }
        FrameType::PutData => {
            h.verify(&raw, &[])?;
            match lnd.registry.resolve(h.key, h.addr, h.len as u64, Access::Write) {
                Ok(mut dest) => {
                    // SAFETY: the range was exposed for writing by its owner,
                    // who leaves it alone until the RPC completes.
                    rd.read_exact(unsafe { dest.as_mut_slice() }).await?;
                    lnd.stats.bulk_rx_bytes.fetch_add(h.len as u64, Ordering::Relaxed);
                    set.stats.bulk_rx_bytes.fetch_add(h.len as u64, Ordering::Relaxed);
                    let set = set.clone();
                    tokio::spawn(async move { set.send_bulk_status(FrameType::PutDone, h.cookie, 0).await });
                }
                Err(e) => {
                    discard(rd, h.len as usize).await?;
                    lnd.stats.bulk_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %set.peer, error = %e, "refused a bulk write");
                    let set = set.clone();
                    let errno = e.errno().0;
                    tokio::spawn(
                        async move { set.send_bulk_status(FrameType::BulkErr, h.cookie, errno).await },
                    );
                }
            }
        }
        FrameType::PutDone | FrameType::BulkErr => {
            h.verify(&raw, &[])?;
            let result = if h.ftype == FrameType::PutDone {
                Ok(())
            } else {
                Err(LndError::BulkRefused { peer: set.peer, errno: Errno(h.errno) })
            };
            match set.unregister(h.cookie) {
                Some(Pending::Put(tx)) => {
                    let _ = tx.send(result);
                }
                Some(Pending::Get(sink)) => sink.complete(result),
                None => {}
            }
        }
        FrameType::Hello => return Err(ReadError::Unexpected(h.ftype)),
    }
    Ok(())
}

/// A peer asks for bytes of a range this node exposed for reading.
fn serve_get(lnd: &Arc<Inner>, set: &Arc<ConnSet>, h: Header) {
    let set = set.clone();
    match lnd.registry.resolve(h.key, h.addr, h.blen as u64, Access::Read) {
        Ok(src) => {
            lnd.stats.bulk_tx_bytes.fetch_add(h.blen as u64, Ordering::Relaxed);
            set.stats.bulk_tx_bytes.fetch_add(h.blen as u64, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut reply = Header::new(FrameType::GetData);
                reply.cookie = h.cookie;
                let conn = set.bulk_conn().clone();
                let _ = set.write_frame(&conn, reply, &[src.as_slice()], false).await;
            });
        }
        Err(e) => {
            lnd.stats.bulk_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %set.peer, error = %e, "refused a bulk read");
            let errno = e.errno().0;
            tokio::spawn(async move { set.send_bulk_status(FrameType::BulkErr, h.cookie, errno).await });
        }
    }
}
