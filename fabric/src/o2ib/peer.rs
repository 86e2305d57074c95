//! One o2ib connection as the LND drives it: the queue pair, its credits,
//! the control messages waiting for a credit, and the bulk operations in
//! flight on it. Everything that lives and dies with the queue pair lives
//! here, so tearing a connection down fails exactly what was waiting on it.

use super::connection::Connection;
use super::credits::{Kind, Pools};
use super::wire::{HEADER_LEN, Header, MsgType};
use super::{O2ibError, Registration};
use crate::lnd::{BulkBuf, LndError, RecvBuf};
use crate::{Errno, ProcessId};
use sideway::rdmacm::communication_manager::EventChannel;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{Notify, oneshot};

/// How a bulk grant request ended: the rkey covering the range, or the
/// errno the owner refused with.
pub(crate) type GrantResult = Result<u32, Errno>;

/// A bulk transfer posted to the HCA: it holds the caller's buffer until
/// the completion (or the connection's end), then hands it back.
pub(crate) trait RdmaWaiter: Send {
    fn finish(self: Box<Self>, result: Result<(), LndError>);
}

/// What a bulk operation hands back: the buffer and how it went.
pub(crate) type BulkDone<B> = (B, Result<(), LndError>);

pub(crate) struct Waiter<B: BulkBuf> {
    buf: Option<B>,
    tx: Option<oneshot::Sender<BulkDone<B>>>,
    peer: ProcessId,
}

impl<B: BulkBuf> Waiter<B> {
    pub(crate) fn new(buf: B, peer: ProcessId) -> (Waiter<B>, oneshot::Receiver<BulkDone<B>>) {
        let (tx, rx) = oneshot::channel();
        (Waiter { buf: Some(buf), tx: Some(tx), peer }, rx)
    }

    /// The buffer back, for a transfer that was never posted.
    pub(crate) fn into_buf(mut self) -> B {
        self.tx = None;
        self.buf.take().expect("waiter holds its buffer")
    }
}

impl<B: BulkBuf> RdmaWaiter for Waiter<B> {
    fn finish(mut self: Box<Self>, result: Result<(), LndError>) {
        if let (Some(buf), Some(tx)) = (self.buf.take(), self.tx.take()) {
            let _ = tx.send((buf, result));
        }
    }
}

impl<B: BulkBuf> Drop for Waiter<B> {
    fn drop(&mut self) {
        // Dropped unfinished (its connection went away): answer anyway, so
        // the caller always gets its buffer back.
        if let (Some(buf), Some(tx)) = (self.buf.take(), self.tx.take()) {
            let _ = tx.send((buf, Err(LndError::ConnectionLost { peer: self.peer })));
        }
    }
}

pub(crate) struct State {
    /// `None` once torn down.
    pub verbs: Option<Connection>,
    pub credits: Pools,
    /// Messages the LND itself owes the peer (hello, grants), sent in
    /// order as credits allow, before any waiting caller's message.
    pub ctrl: VecDeque<(Header, Vec<u8>)>,
    pub grants: HashMap<u64, oneshot::Sender<GrantResult>>,
    pub rdma: HashMap<u64, Box<dyn RdmaWaiter>>,
    pub noops: u64,
}

/// One connection.
pub(crate) struct Conn {
    pub id: u64,
    /// Whether this side dialed.
    pub active: bool,
    /// Who is at the other end, once its hello arrived.
    pub peer: OnceLock<ProcessId>,
    /// That peer's counters, set with `peer`.
    pub stats: OnceLock<Arc<super::PeerStats>>,
    pub incarnation: OnceLock<u64>,
    pub state: Mutex<State>,
    /// Woken when credits or slots free up, and when the connection dies.
    pub notify: Notify,
    dead: AtomicBool,
    /// Where received messages are, kept mapped for messages still held
    /// after the connection is gone.
    recv_reg: Arc<Registration>,
    msg_size: usize,
    /// The active side's rdma_cm channel, which reports a disconnect.
    pub channel: Option<Arc<EventChannel>>,
    pub cq_key: usize,
    /// The active side waits here for the peer's hello.
    pub hello_tx: Mutex<Option<oneshot::Sender<super::wire::Hello>>>,
}

impl Conn {
    pub(crate) fn new(
        id: u64,
        verbs: Connection,
        channel: Option<Arc<EventChannel>>,
        active: bool,
        depth: u16,
        ctrl_depth: u16,
    ) -> Arc<Conn> {
        verbs.identifier().setup_context(id);
        let recv_reg = verbs.recv_registration().clone();
        let msg_size = verbs.config().msg_size;
        let cq_key = verbs.cq_key();
        Arc::new(Conn {
            id,
            active,
            peer: OnceLock::new(),
            stats: OnceLock::new(),
            incarnation: OnceLock::new(),
            state: Mutex::new(State {
                verbs: Some(verbs),
                credits: Pools::new(depth, ctrl_depth),
                ctrl: VecDeque::new(),
                grants: HashMap::new(),
                rdma: HashMap::new(),
                noops: 0,
            }),
            notify: Notify::new(),
            dead: AtomicBool::new(false),
            recv_reg,
            msg_size,
            channel,
            cq_key,
            hello_tx: Mutex::new(None),
        })
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("o2ib connection lock")
    }

    /// Marks the connection dead and takes everything that lived on it:
    /// the queue pair (to be dropped first, so the HCA stops touching
    /// memory) and the waiters (to be failed after). `None` if it was
    /// already dead.
    pub(crate) fn kill(&self) -> Option<Remains> {
        if self.dead.swap(true, Ordering::AcqRel) {
            return None;
        }
        let mut st = self.lock();
        let remains = Remains {
            verbs: st.verbs.take(),
            grants: std::mem::take(&mut st.grants),
            rdma: std::mem::take(&mut st.rdma),
        };
        st.ctrl.clear();
        drop(st);
        self.notify.notify_waiters();
        Some(remains)
    }

    /// A message this node received, without a copy: it holds receive
    /// buffer `slot` until dropped.
    pub(crate) fn message(self: &Arc<Self>, slot: usize, len: usize) -> O2ibMsg {
        let off = slot * self.msg_size + HEADER_LEN;
        let ptr = (self.recv_reg.addr() + off as u64) as *const u8;
        O2ibMsg { conn: self.clone(), _reg: self.recv_reg.clone(), slot, ptr, len }
    }
}

/// What a dead connection leaves to clean up.
pub(crate) struct Remains {
    verbs: Option<Connection>,
    grants: HashMap<u64, oneshot::Sender<GrantResult>>,
    rdma: HashMap<u64, Box<dyn RdmaWaiter>>,
}

impl Remains {
    /// Destroys the queue pair, then fails every waiter.
    pub(crate) fn fail(self, peer: ProcessId) {
        drop(self.verbs);
        drop(self.grants);
        for (_, w) in self.rdma {
            w.finish(Err(LndError::ConnectionLost { peer }));
        }
    }
}

/// The credit pool a message of this type takes from.
pub(crate) fn kind_of(mtype: MsgType) -> Kind {
    match mtype {
        MsgType::Msg => Kind::Msg,
        MsgType::Noop => Kind::Noop,
        MsgType::Hello | MsgType::BulkReq | MsgType::BulkGrant => Kind::Ctrl,
    }
}

/// Posts `h` with `parts` if a credit and a send buffer allow; `Ok(false)`
/// when it must wait.
pub(crate) fn try_post(st: &mut State, mut h: Header, parts: &[&[u8]]) -> Result<bool, O2ibError> {
    let kind = kind_of(h.mtype);
    let allowed = st.credits.may_send(kind);
    let Some(verbs) = st.verbs.as_mut() else {
        return Err(O2ibError::BadConfig("connection is closed".into()));
    };
    if !allowed || verbs.free_send_slots() == 0 {
        return Ok(false);
    }
    let back = st.credits.take(kind);
    h.credits = back.msg_credits;
    h.ctrl_credits = back.ctrl_credits;
    h.len = parts.iter().map(|p| p.len()).sum::<usize>() as u32;
    let raw = h.encode();
    let mut all: [&[u8]; 4] = [&raw, &[], &[], &[]];
    assert!(parts.len() <= 3, "at most three payload parts");
    for (i, p) in parts.iter().enumerate() {
        all[i + 1] = p;
    }
    match verbs.send_parts(0, &all[..parts.len() + 1]) {
        Ok(()) => Ok(true),
        Err(e) => {
            st.credits.untake(kind, back);
            Err(e)
        }
    }
}

/// Sends what the LND owes the peer, in order, while credits allow; then
/// a NOOP if credits are piling up with nothing to carry them.
pub(crate) fn pump(st: &mut State) -> Result<(), O2ibError> {
    while let Some((h, body)) = st.ctrl.front() {
        let (h, body) = (*h, body.clone());
        if !try_post(st, h, &[&body])? {
            return Ok(());
        }
        st.ctrl.pop_front();
    }
    if st.credits.wants_noop() && try_post(st, Header::new(MsgType::Noop), &[])? {
        st.noops += 1;
    }
    Ok(())
}

/// An immediate message in the receive buffer it arrived in. Dropping it
/// posts the buffer again and owes the sender a credit.
pub(crate) struct O2ibMsg {
    conn: Arc<Conn>,
    _reg: Arc<Registration>,
    slot: usize,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are written by the HCA before the completion that
// created this message and not again until the slot is reposted, which
// only this message's drop does; `_reg` keeps them mapped.
unsafe impl Send for O2ibMsg {}
unsafe impl Sync for O2ibMsg {}

impl RecvBuf for O2ibMsg {
    fn bytes(&self) -> &[u8] {
        // SAFETY: see the Send/Sync note above.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for O2ibMsg {
    fn drop(&mut self) {
        let mut st = self.conn.lock();
        let Some(verbs) = st.verbs.as_mut() else { return };
        if let Err(e) = verbs.repost_recv(self.slot) {
            tracing::warn!(error = %e, "o2ib: cannot repost a receive buffer");
            return;
        }
        st.credits.msg.reposted();
        if let Err(e) = pump(&mut st) {
            tracing::debug!(error = %e, "o2ib: credit return failed");
        }
    }
}
