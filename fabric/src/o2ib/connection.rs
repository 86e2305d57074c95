//! One RC queue pair to one peer: immediate messages through pre-posted
//! receive buffers, RDMA WRITE and READ against a peer's [`RemoteBuf`], and
//! completion polling.
//!
//! Every request takes a slot (a send buffer, or an RDMA slot that keeps
//! the local registration alive) and gives it back when its completion is
//! polled, so the work queues can never overflow and no buffer is freed
//! while the HCA may still touch it.

use super::completion::{Completion, Op, Queue, decode_wr_id, encode_wr_id};
use super::device::mtu_bytes;
use super::{Hca, O2ibError, Registration, RemoteBuf};
use sideway::ibverbs::AccessFlags;
use sideway::ibverbs::completion::{
    BasicCompletionQueue, CompletionChannel, CompletionQueue, PollCompletionQueueError, WorkCompletionStatus,
};
use sideway::ibverbs::device_context::Mtu;
use sideway::ibverbs::queue_pair::{
    BasicQueuePair, PostSendGuard, QueuePair, QueuePairAttributeMask, QueuePairState, SetScatterGatherEntry,
    WorkRequestFlags,
};
use sideway::rdmacm::communication_manager::Identifier;
use std::sync::Arc;
use std::time::Duration;

/// Sizes of one connection's queues and buffers.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Bytes in one immediate message buffer (o2iblnd's IBLND_MSG_SIZE is
    /// 4 KiB: header plus an inline payload).
    pub msg_size: usize,
    /// Receive buffers kept posted. The peer must never have more messages
    /// in flight than this; credits enforce that above this layer.
    pub recv_slots: usize,
    /// Immediate messages this side may have in flight.
    pub send_slots: usize,
    /// RDMA READs and WRITEs this side may have in flight.
    pub rdma_slots: usize,
    /// How long connection setup may take.
    pub timeout: Duration,
    /// Where the completion queue signals new completions, for a poller
    /// that sleeps instead of spinning; `None` for callers that poll.
    pub comp_channel: Option<Arc<CompletionChannel>>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            msg_size: 4096,
            recv_slots: 32,
            send_slots: 32,
            rdma_slots: 32,
            timeout: Duration::from_secs(30),
            comp_channel: None,
        }
    }
}

impl ConnConfig {
    fn check(&self) -> Result<(), O2ibError> {
        let bad = |why: &str| Err(O2ibError::BadConfig(why.to_owned()));
        if self.msg_size == 0 || u32::try_from(self.msg_size).is_err() {
            return bad("msg_size must be between 1 byte and 4 GiB");
        }
        if self.recv_slots == 0 || self.send_slots == 0 || self.rdma_slots == 0 {
            return bad("every slot count must be at least 1");
        }
        if self.recv_slots.max(self.send_slots).max(self.rdma_slots) > 1 << 16 {
            return bad("slot counts are limited to 65536");
        }
        Ok(())
    }
}

/// Whether a received message's buffer goes back to the HCA at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repost {
    Now,
    /// The caller keeps the buffer and reposts it later.
    Later,
}

#[derive(Clone, Copy, Default)]
struct RawCompletion {
    wr_id: u64,
    status: u32,
    byte_len: u32,
}

struct RdmaSlot {
    wr_id: u64,
    op: Op,
    // Holds the local memory until the HCA is done with it.
    _local: Arc<Registration>,
}

/// A connected RC queue pair.
pub struct Connection {
    // Field order is drop order: the QP goes before its CQ, its cm id and
    // the buffers it may still reference.
    qp: BasicQueuePair,
    cq: Arc<BasicCompletionQueue>,
    id: Arc<Identifier>,
    hca: Arc<Hca>,
    cfg: ConnConfig,
    recv_buf: Arc<Registration>,
    send_buf: Arc<Registration>,
    free_send: Vec<usize>,
    send_owner: Vec<Option<u64>>,
    free_rdma: Vec<usize>,
    rdma: Vec<Option<RdmaSlot>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("hca", &self.hca.name())
            .field("qp_num", &self.qp.qp_number())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

const POLL_BATCH: usize = 32;

impl Connection {
    /// A queue pair on `id`'s device in INIT with every receive posted,
    /// ready for the rdma_cm handshake.
    pub(crate) fn create(
        hca: &Arc<Hca>,
        id: Arc<Identifier>,
        cfg: &ConnConfig,
    ) -> Result<Connection, O2ibError> {
        cfg.check()?;
        let ctx = id.get_device_context().ok_or(O2ibError::NoRdmaDevice)?;
        if !hca.is_device(&ctx) {
            use sideway::ibverbs::device::DeviceInfo;
            return Err(O2ibError::WrongDevice { expected: hca.name().to_owned(), got: ctx.name() });
        }
        let send_wr = cfg.send_slots + cfg.rdma_slots;
        let cqe = send_wr + cfg.recv_slots;
        let mut builder = hca.context().create_cq_builder();
        builder.setup_cqe(cqe as u32);
        if let Some(channel) = &cfg.comp_channel {
            builder.setup_comp_channel(channel, 0);
        }
        let cq = builder.build().map_err(|e| O2ibError::call("ibv_create_cq", e))?;
        let mut qp = hca
            .pd()
            .create_qp_builder()
            .setup_max_send_wr(send_wr as u32)
            .setup_max_recv_wr(cfg.recv_slots as u32)
            .setup_max_send_sge(1)
            .setup_max_recv_sge(1)
            .setup_send_cq(Arc::clone(&cq))
            .setup_recv_cq(Arc::clone(&cq))
            .build()
            .map_err(|e| O2ibError::call("ibv_create_qp", e))?;

        let mut attr =
            id.get_qp_attr(QueuePairState::Init).map_err(|e| O2ibError::call("rdma_init_qp_attr", e))?;
        // rdma_cm grants remote READ only once it knows the responder
        // resources; bulk needs both directions from the start.
        attr.setup_access_flags(AccessFlags::LocalWrite | AccessFlags::RemoteWrite | AccessFlags::RemoteRead);
        qp.modify(&attr).map_err(|e| O2ibError::call("modify QP to INIT", e))?;

        let recv_buf = Registration::alloc(hca, cfg.msg_size * cfg.recv_slots, None)?;
        let send_buf = Registration::alloc(hca, cfg.msg_size * cfg.send_slots, None)?;
        let mut conn = Connection {
            qp,
            cq,
            id,
            hca: Arc::clone(hca),
            cfg: cfg.clone(),
            recv_buf,
            send_buf,
            free_send: (0..cfg.send_slots).rev().collect(),
            send_owner: vec![None; cfg.send_slots],
            free_rdma: (0..cfg.rdma_slots).rev().collect(),
            rdma: (0..cfg.rdma_slots).map(|_| None).collect(),
        };
        for slot in 0..cfg.recv_slots {
            conn.post_recv(slot)?;
        }
        Ok(conn)
    }

    /// Move the queue pair through RTR to RTS with the attributes rdma_cm
    /// negotiated, path MTU at most 4096 and the device's full RDMA READ
    /// depth in both directions.
    pub(crate) fn ready(&mut self) -> Result<(), O2ibError> {
        let mut rtr = self
            .id
            .get_qp_attr(QueuePairState::ReadyToReceive)
            .map_err(|e| O2ibError::call("rdma_init_qp_attr(RTR)", e))?;
        let mtu = rtr.path_mtu().min(Mtu::Mtu4096);
        rtr.setup_path_mtu(mtu);
        // sideway exposes no way to put the READ depth into the CM
        // handshake, so both ends (both glint) set it on the QP directly.
        rtr.setup_max_dest_read_atomic(self.hca.max_rd_atomic());
        self.qp.modify(&rtr).map_err(|e| O2ibError::call("modify QP to RTR", e))?;

        let mut rts = self
            .id
            .get_qp_attr(QueuePairState::ReadyToSend)
            .map_err(|e| O2ibError::call("rdma_init_qp_attr(RTS)", e))?;
        rts.setup_max_read_atomic(self.hca.max_rd_atomic());
        self.qp.modify(&rts).map_err(|e| O2ibError::call("modify QP to RTS", e))?;
        tracing::debug!(qp = self.qp.qp_number(), mtu = mtu_bytes(mtu), "o2ib queue pair ready");
        Ok(())
    }

    pub(crate) fn identifier(&self) -> &Arc<Identifier> {
        &self.id
    }

    pub fn qp_number(&self) -> u32 {
        self.qp.qp_number()
    }

    pub fn hca(&self) -> &Arc<Hca> {
        &self.hca
    }

    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }

    /// The path MTU the queue pair runs, in bytes.
    pub fn path_mtu(&self) -> Result<u32, O2ibError> {
        let (attr, _) =
            self.qp.query(QueuePairAttributeMask::PathMtu).map_err(|e| O2ibError::call("ibv_query_qp", e))?;
        Ok(mtu_bytes(attr.path_mtu()))
    }

    /// Sends and RDMA operations posted and not yet polled.
    pub fn in_flight(&self) -> usize {
        (self.cfg.send_slots - self.free_send.len()) + (self.cfg.rdma_slots - self.free_rdma.len())
    }

    fn post_recv(&mut self, slot: usize) -> Result<(), O2ibError> {
        let (addr, len) = self.recv_buf.local(slot * self.cfg.msg_size, self.cfg.msg_size)?;
        let lkey = self.recv_buf.lkey();
        let mut guard = self.qp.start_post_recv();
        // SAFETY: the slot lies in recv_buf, registered on this QP's PD and
        // kept alive by the connection; it is not read until its
        // completion arrives.
        unsafe { guard.construct_wr(encode_wr_id(Queue::Recv, slot)).setup_sge(lkey, addr, len) };
        guard.post().map_err(|e| O2ibError::call("ibv_post_recv", e))
    }

    /// Send one immediate message; its completion carries `wr_id`.
    pub fn send(&mut self, wr_id: u64, msg: &[u8]) -> Result<(), O2ibError> {
        self.send_parts(wr_id, &[msg])
    }

    /// Send one immediate message gathered from `parts` (copied one after
    /// the other into a send buffer); its completion carries `wr_id`.
    pub fn send_parts(&mut self, wr_id: u64, parts: &[&[u8]]) -> Result<(), O2ibError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > self.cfg.msg_size {
            return Err(O2ibError::TooLarge { len: total, max: self.cfg.msg_size });
        }
        let slot =
            self.free_send.pop().ok_or(O2ibError::Busy { what: "send", slots: self.cfg.send_slots })?;
        let result = self.post_send_slot(slot, parts, total);
        match result {
            Ok(()) => self.send_owner[slot] = Some(wr_id),
            Err(_) => self.free_send.push(slot),
        }
        result
    }

    /// Send buffers free now.
    pub fn free_send_slots(&self) -> usize {
        self.free_send.len()
    }

    /// RDMA slots free now.
    pub fn free_rdma_slots(&self) -> usize {
        self.free_rdma.len()
    }

    /// Post receive buffer `slot` again, after a message kept with
    /// [`Repost::Later`] has been consumed.
    pub fn repost_recv(&mut self, slot: usize) -> Result<(), O2ibError> {
        if slot >= self.cfg.recv_slots {
            return Err(O2ibError::OutOfRange { off: slot, len: 1, region_len: self.cfg.recv_slots });
        }
        self.post_recv(slot)
    }

    /// The registered memory receive buffers live in; slot `i` is at
    /// `i * msg_size`.
    pub(crate) fn recv_registration(&self) -> &Arc<Registration> {
        &self.recv_buf
    }

    /// Ask for one event on the completion channel at the next completion.
    /// Completions that arrived before this call raise no event: poll
    /// once more after arming.
    pub(crate) fn arm(&self) -> Result<(), O2ibError> {
        // SAFETY: the CQ is alive (self holds it); req_notify only flags it.
        let rc = unsafe { rdma_mummy_sys::ibv_req_notify_cq(self.cq.cq().as_ptr(), 0) };
        if rc != 0 {
            return Err(O2ibError::call("ibv_req_notify_cq", std::io::Error::from_raw_os_error(rc)));
        }
        Ok(())
    }

    /// The completion queue's address, which completion channel events name.
    pub(crate) fn cq_key(&self) -> usize {
        // SAFETY: only the address is taken, as an identity.
        unsafe { self.cq.cq().as_ptr() as usize }
    }

    fn post_send_slot(&mut self, slot: usize, parts: &[&[u8]], total: usize) -> Result<(), O2ibError> {
        let off = slot * self.cfg.msg_size;
        let mut at = off;
        for part in parts {
            self.send_buf.write_at(at, part)?;
            at += part.len();
        }
        let (addr, len) = self.send_buf.local(off, total)?;
        let lkey = self.send_buf.lkey();
        let mut guard = self.qp.start_post_send();
        let wr = guard.construct_wr(encode_wr_id(Queue::Send, slot), WorkRequestFlags::Signaled).setup_send();
        // SAFETY: the slot lies in send_buf, registered on this PD and not
        // rewritten until this send's completion frees the slot.
        unsafe { wr.setup_sge(lkey, addr, len) };
        guard.post().map_err(|e| O2ibError::call("ibv_post_send", e))
    }

    /// RDMA WRITE `remote.len` bytes from `local` at `off` into the peer's
    /// `remote` range.
    pub fn post_write(
        &mut self,
        wr_id: u64,
        local: &Arc<Registration>,
        off: usize,
        remote: RemoteBuf,
    ) -> Result<(), O2ibError> {
        self.post_rdma(Op::Write, wr_id, local, off, remote)
    }

    /// RDMA READ the peer's `remote` range into `local` at `off`.
    pub fn post_read(
        &mut self,
        wr_id: u64,
        local: &Arc<Registration>,
        off: usize,
        remote: RemoteBuf,
    ) -> Result<(), O2ibError> {
        self.post_rdma(Op::Read, wr_id, local, off, remote)
    }

    fn post_rdma(
        &mut self,
        op: Op,
        wr_id: u64,
        local: &Arc<Registration>,
        off: usize,
        remote: RemoteBuf,
    ) -> Result<(), O2ibError> {
        if !Arc::ptr_eq(local.hca(), &self.hca) {
            return Err(O2ibError::ForeignRegistration);
        }
        let (addr, len) = local.local(off, remote.len as usize)?;
        let slot =
            self.free_rdma.pop().ok_or(O2ibError::Busy { what: "RDMA", slots: self.cfg.rdma_slots })?;
        let mut guard = self.qp.start_post_send();
        let wr = guard.construct_wr(encode_wr_id(Queue::Rdma, slot), WorkRequestFlags::Signaled);
        let wr = match op {
            Op::Read => wr.setup_read(remote.rkey, remote.addr),
            _ => wr.setup_write(remote.rkey, remote.addr),
        };
        // SAFETY: the range was checked against `local`, which the slot
        // keeps alive until the completion is polled.
        unsafe { wr.setup_sge(local.lkey(), addr, len) };
        match guard.post() {
            Ok(()) => {
                self.rdma[slot] = Some(RdmaSlot { wr_id, op, _local: Arc::clone(local) });
                Ok(())
            }
            Err(e) => {
                self.free_rdma.push(slot);
                Err(O2ibError::call("ibv_post_send", e))
            }
        }
    }

    /// Hand every completion now in the queue (up to a batch) to `f`, and
    /// return how many there were. A received message is posted again once
    /// `f` returns; a failed request is reported, not returned as an error.
    pub fn poll(&mut self, mut f: impl FnMut(Completion<'_>)) -> Result<usize, O2ibError> {
        self.poll_with(|c| {
            f(c);
            Repost::Now
        })
    }

    /// As [`Connection::poll`], but `f` may keep a received message's
    /// buffer ([`Repost::Later`]) and give it back with
    /// [`Connection::repost_recv`] once it has been consumed, so a message
    /// is handed on without a copy.
    pub fn poll_with(&mut self, mut f: impl FnMut(Completion<'_>) -> Repost) -> Result<usize, O2ibError> {
        let mut batch = [RawCompletion::default(); POLL_BATCH];
        let mut n = 0;
        match self.cq.start_poll() {
            // sideway polls POLL_BATCH entries at a time; stopping at the
            // batch size never drops one it already took off the queue.
            Ok(poller) => {
                for wc in poller {
                    batch[n] =
                        RawCompletion { wr_id: wc.wr_id(), status: wc.status(), byte_len: wc.byte_len() };
                    n += 1;
                    if n == POLL_BATCH {
                        break;
                    }
                }
            }
            Err(PollCompletionQueueError::CompletionQueueEmpty) => return Ok(0),
            Err(e) => return Err(O2ibError::call("ibv_poll_cq", e)),
        }
        for wc in &batch[..n] {
            self.deliver(*wc, &mut f)?;
        }
        Ok(n)
    }

    fn deliver(
        &mut self,
        wc: RawCompletion,
        f: &mut impl FnMut(Completion<'_>) -> Repost,
    ) -> Result<(), O2ibError> {
        let status = WorkCompletionStatus::from(wc.status);
        let Some((queue, slot)) = decode_wr_id(wc.wr_id) else {
            tracing::warn!(wr_id = wc.wr_id, ?status, "completion for a work request o2ib never posted");
            return Ok(());
        };
        match queue {
            Queue::Send => {
                let Some(wr_id) = self.send_owner.get_mut(slot).and_then(Option::take) else {
                    tracing::warn!(slot, "send completion for a free slot");
                    return Ok(());
                };
                self.free_send.push(slot);
                let _ = f(Completion { op: Op::Send, wr_id, status, data: &[] });
            }
            Queue::Rdma => {
                let Some(done) = self.rdma.get_mut(slot).and_then(Option::take) else {
                    tracing::warn!(slot, "RDMA completion for a free slot");
                    return Ok(());
                };
                self.free_rdma.push(slot);
                let _ = f(Completion { op: done.op, wr_id: done.wr_id, status, data: &[] });
            }
            Queue::Recv => {
                if status != WorkCompletionStatus::Success {
                    // The QP is in error: nothing will arrive in this slot
                    // again, so it is not posted again.
                    let _ = f(Completion { op: Op::Recv, wr_id: slot as u64, status, data: &[] });
                    return Ok(());
                }
                let len = (wc.byte_len as usize).min(self.cfg.msg_size);
                // SAFETY: the HCA finished writing this slot (its completion
                // is here) and it is posted again only after `f` returns.
                let data = unsafe { self.recv_buf.slice(slot * self.cfg.msg_size, len)? };
                if f(Completion { op: Op::Recv, wr_id: slot as u64, status, data }) == Repost::Now {
                    self.post_recv(slot)?;
                }
            }
        }
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Tell the peer now rather than letting it find out by timeout.
        if let Err(e) = self.id.disconnect() {
            tracing::debug!(error = %e, "rdma_disconnect");
        }
    }
}
