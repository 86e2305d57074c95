//! The o2ib poller: one thread per NI that sleeps in `poll(2)` on the
//! completion channel (every connection's completion queue signals it),
//! the listener's rdma_cm channel and the rdma_cm channels of the
//! connections this node dialed, and hands on what they report:
//! messages to `Deliver`, bulk completions to the futures waiting on them,
//! credits to the senders waiting for them, and every failure to a
//! teardown of its connection.
//!
//! The thread enters the runtime the NI was started on, so the layer above
//! may spawn tasks from `Deliver::deliver`.

use super::cm::{CmNews, next_news};
use super::connection::Repost;
use super::credits::Taken;
use super::lnd::Inner;
use super::peer::{Conn, pump};
use super::wire::{HEADER_LEN, Header, Hello, MsgType};
use super::{Op, WorkCompletionStatus, completion_errno};
use crate::lnd::LndError;
use crate::memory::Access;
use crate::{Errno, ProcessId};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What one connection's completions asked for, handled after its lock is
/// released.
enum Event {
    /// A message for the layer above, in receive buffer `slot`.
    Msg {
        slot: usize,
        len: usize,
    },
    /// A message for the LND itself (already reposted).
    Ctrl {
        h: Header,
        body: Vec<u8>,
    },
    Rdma {
        cookie: u64,
        status: WorkCompletionStatus,
    },
    /// The connection cannot go on.
    Fail {
        why: String,
        protocol: bool,
    },
}

pub(crate) fn run(lnd: Arc<Inner>) {
    let _rt = lnd.rt.enter();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut watched: Vec<Arc<Conn>> = Vec::new();
    while !lnd.shutdown.load(Ordering::Acquire) {
        let fresh = std::mem::take(&mut *lnd.fresh.lock().expect("fresh lock"));
        for conn in fresh {
            arm_and_drain(&lnd, &conn);
        }
        fds.clear();
        watched.clear();
        let pfd = |fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        fds.push(pfd(lnd.wake.as_raw_fd()));
        fds.push(pfd(lnd.comp_channel.as_raw_fd()));
        let listening = match lnd.listener.lock().expect("listener lock").as_ref() {
            Some(l) => {
                fds.push(pfd(l.fd()));
                true
            }
            None => false,
        };
        let first_watched = fds.len();
        for conn in lnd.conns.lock().expect("conns lock").values() {
            if let Some(ch) = &conn.channel {
                fds.push(pfd(ch.as_raw_fd()));
                watched.push(conn.clone());
            }
        }
        // SAFETY: `fds` is a valid array of pollfds for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(error = %err, "o2ib poller: poll failed; stopping");
                return;
            }
            continue;
        }
        if fds[0].revents != 0 {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from our eventfd.
            unsafe { libc::read(lnd.wake.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
        }
        if fds[1].revents != 0 {
            completion_events(&lnd);
        }
        if listening && fds[2].revents != 0 {
            listener_events(&lnd);
        }
        for (i, conn) in watched.iter().enumerate() {
            if fds[first_watched + i].revents != 0 {
                channel_events(&lnd, conn);
            }
        }
    }
    tracing::debug!(nid = %lnd.cfg.nid, "o2ib poller stopped");
}

fn completion_events(lnd: &Arc<Inner>) {
    loop {
        let mut cq: *mut rdma_mummy_sys::ibv_cq = std::ptr::null_mut();
        let mut ctx: *mut libc::c_void = std::ptr::null_mut();
        // SAFETY: the channel is alive (lnd holds it) and non-blocking; the
        // out-pointers are valid locals.
        let rc = unsafe {
            rdma_mummy_sys::ibv_get_cq_event(lnd.comp_channel.comp_channel().as_ptr(), &mut cq, &mut ctx)
        };
        if rc != 0 {
            return;
        }
        // Acknowledged at once: destroying a CQ waits for every event of
        // it that was read to be acknowledged.
        // SAFETY: `cq` was just reported by the channel; a CQ cannot be
        // destroyed while an event read from it is unacknowledged.
        unsafe { rdma_mummy_sys::ibv_ack_cq_events(cq, 1) };
        let conn = lnd.by_cq.lock().expect("by_cq lock").get(&(cq as usize)).cloned();
        if let Some(conn) = conn {
            arm_and_drain(lnd, &conn);
        }
    }
}

fn listener_events(lnd: &Arc<Inner>) {
    loop {
        let news = match lnd.listener.lock().expect("listener lock").as_ref() {
            Some(listener) => listener.next_news(),
            None => return,
        };
        match news {
            Ok(None) => return,
            Ok(Some(CmNews::Accepted(verbs))) => {
                let conn = Conn::new(
                    lnd.new_conn_id(),
                    *verbs,
                    None,
                    false,
                    lnd.cfg.peer_credits,
                    lnd.cfg.ctrl_credits,
                );
                tracing::debug!(conn = conn.id, "o2ib accepted a connection");
                lnd.adopt(conn);
            }
            Ok(Some(CmNews::Closed(id))) => {
                if let Some(conn_id) = id.get_context::<u64>() {
                    let conn = lnd.conns.lock().expect("conns lock").get(&conn_id).cloned();
                    if let Some(conn) = conn {
                        lnd.teardown(&conn, "peer disconnected");
                    }
                }
            }
            Ok(Some(CmNews::Nothing)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "o2ib listener event");
                return;
            }
        }
    }
}

fn channel_events(lnd: &Arc<Inner>, conn: &Arc<Conn>) {
    let Some(channel) = &conn.channel else { return };
    loop {
        match next_news(channel) {
            Ok(None) => return,
            Ok(Some(CmNews::Closed(_))) => lnd.teardown(conn, "peer disconnected"),
            Ok(Some(_)) => {}
            Err(e) => {
                lnd.teardown(conn, &format!("rdma_cm channel: {e}"));
                return;
            }
        }
    }
}

/// Re-arms the connection's completion queue and takes every completion
/// off it (those that arrived before arming raise no event).
fn arm_and_drain(lnd: &Arc<Inner>, conn: &Arc<Conn>) {
    let armed = match conn.lock().verbs.as_ref() {
        Some(v) => v.arm(),
        None => return,
    };
    if let Err(e) = armed {
        lnd.teardown(conn, &format!("cannot arm the completion queue: {e}"));
        return;
    }
    while poll_once(lnd, conn) > 0 {}
}

fn poll_once(lnd: &Arc<Inner>, conn: &Arc<Conn>) -> usize {
    let mut events = Vec::new();
    let n = {
        let mut st = conn.lock();
        let state = &mut *st;
        let Some(verbs) = state.verbs.as_mut() else { return 0 };
        let credits = &mut state.credits;
        let polled = verbs.poll_with(|wc| match wc.op {
            Op::Recv if wc.is_ok() => match Header::decode(wc.data) {
                Ok(h) => {
                    credits.returned(Taken { msg_credits: h.credits, ctrl_credits: h.ctrl_credits });
                    if h.mtype == MsgType::Msg {
                        events.push(Event::Msg { slot: wc.wr_id as usize, len: h.len as usize });
                        Repost::Later
                    } else {
                        credits.ctrl.reposted();
                        events.push(Event::Ctrl { h, body: wc.data[HEADER_LEN..].to_vec() });
                        Repost::Now
                    }
                }
                Err(e) => {
                    events.push(Event::Fail { why: format!("bad message: {e}"), protocol: true });
                    Repost::Now
                }
            },
            Op::Send if wc.is_ok() => Repost::Now,
            Op::Read | Op::Write => {
                events.push(Event::Rdma { cookie: wc.wr_id, status: wc.status });
                Repost::Now
            }
            op => {
                events.push(Event::Fail {
                    why: format!("{op:?} completed with {:?}", wc.status),
                    protocol: false,
                });
                Repost::Now
            }
        });
        let n = match polled {
            Ok(n) => n,
            Err(e) => {
                events.push(Event::Fail { why: format!("poll: {e}"), protocol: false });
                0
            }
        };
        if let Err(e) = pump(state) {
            events.push(Event::Fail { why: format!("send failed: {e}"), protocol: false });
        }
        n
    };
    if n > 0 {
        conn.notify.notify_waiters();
    }
    for ev in events {
        handle(lnd, conn, ev);
    }
    n
}

fn handle(lnd: &Arc<Inner>, conn: &Arc<Conn>, ev: Event) {
    match ev {
        Event::Msg { slot, len } => {
            let msg = conn.message(slot, len);
            let Some(peer) = conn.peer.get().copied() else {
                drop(msg);
                protocol_error(lnd, conn, "a message before the hello");
                return;
            };
            lnd.stats.rx_msgs.fetch_add(1, Ordering::Relaxed);
            lnd.stats.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
            if let Some(p) = conn.stats.get() {
                p.received(len);
            }
            lnd.deliver.deliver(peer, Box::new(msg));
        }
        Event::Ctrl { h, body } => control(lnd, conn, h, &body),
        Event::Rdma { cookie, status } => {
            let waiter = conn.lock().rdma.remove(&cookie);
            let peer = conn.peer.get().copied().unwrap_or(ProcessId { nid: lnd.cfg.nid, pid: 0 });
            if status == WorkCompletionStatus::Success {
                if let Some(w) = waiter {
                    w.finish(Ok(()));
                }
                return;
            }
            lnd.stats.error_completions.fetch_add(1, Ordering::Relaxed);
            let errno = completion_errno(status);
            if let Some(w) = waiter {
                let err = if errno == Errno::EACCES {
                    LndError::BulkRefused { peer, errno }
                } else {
                    LndError::ConnectionLost { peer }
                };
                w.finish(Err(err));
            }
            // An error completion leaves the queue pair in error.
            lnd.teardown(conn, &format!("RDMA completed with {status:?}"));
        }
        Event::Fail { why, protocol } => {
            if protocol {
                protocol_error(lnd, conn, &why);
            } else {
                if !conn.is_dead() {
                    lnd.stats.error_completions.fetch_add(1, Ordering::Relaxed);
                }
                lnd.teardown(conn, &why);
            }
        }
    }
}

fn protocol_error(lnd: &Arc<Inner>, conn: &Arc<Conn>, why: &str) {
    if !conn.is_dead() {
        lnd.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(conn = conn.id, peer = ?conn.peer.get(), reason = why, "o2ib protocol error");
    }
    lnd.teardown(conn, why);
}

fn control(lnd: &Arc<Inner>, conn: &Arc<Conn>, h: Header, body: &[u8]) {
    match h.mtype {
        MsgType::Hello => {
            let hello = match Hello::decode(body) {
                Ok(hello) => hello,
                Err(e) => return protocol_error(lnd, conn, &e.to_string()),
            };
            if conn.active {
                if let Some(tx) = conn.hello_tx.lock().expect("hello lock").take() {
                    let _ = tx.send(hello);
                }
                return;
            }
            if conn.peer.get().is_some() {
                return protocol_error(lnd, conn, "a second hello");
            }
            if let Err(why) = lnd.check_hello(&hello) {
                return protocol_error(lnd, conn, &why);
            }
            lnd.bind_peer(conn, hello.id());
            let _ = conn.incarnation.set(hello.incarnation);
            lnd.install(hello.id(), conn, hello.incarnation);
            lnd.queue_ctrl(conn, Header::new(MsgType::Hello), lnd.hello().encode());
        }
        MsgType::Noop => {}
        MsgType::BulkReq => {
            let Some(peer) = conn.peer.get().copied() else {
                return protocol_error(lnd, conn, "a bulk request before the hello");
            };
            // Registering a range the first time pins its pages, which is
            // slow: done off this thread, so completions keep flowing.
            let (lnd, conn) = (lnd.clone(), conn.clone());
            lnd.rt.clone().spawn_blocking(move || {
                let mut grant = Header::new(MsgType::BulkGrant);
                grant.cookie = h.cookie;
                match grant_rkey(&lnd, &h) {
                    Ok(rkey) => grant.rkey = rkey,
                    Err(errno) => {
                        lnd.stats.bulk_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, key = h.key, addr = h.addr, len = h.blen, %errno, "o2ib refused a bulk request");
                        grant.status = errno.0;
                    }
                }
                lnd.queue_ctrl(&conn, grant, Vec::new());
            });
        }
        MsgType::BulkGrant => {
            let tx = conn.lock().grants.remove(&h.cookie);
            if let Some(tx) = tx {
                let _ = tx.send(if h.status == 0 { Ok(h.rkey) } else { Err(Errno(h.status)) });
            }
        }
        MsgType::Msg => unreachable!("messages are handed up, not handled here"),
    }
}

/// Checks a peer's bulk request against this node's exposures (key, every
/// byte of the range, direction) and returns the rkey of a registration
/// covering exactly what was exposed.
fn grant_rkey(lnd: &Arc<Inner>, h: &Header) -> Result<u32, Errno> {
    let access = if h.status != 0 { Access::Write } else { Access::Read };
    if h.blen == 0 || h.blen > crate::lnd::MAX_BULK as u64 {
        return Err(Errno::EINVAL);
    }
    let resolved = lnd.registry.resolve(h.key, h.addr, h.blen, access).map_err(|e| e.errno())?;
    let base = resolved.as_slice().as_ptr().cast_mut();
    let len = resolved.len();
    // SAFETY: `resolved` holds the exposed region mapped, and the cache
    // keeps it for as long as the registration lives.
    let reg = unsafe { lnd.regs.for_exposed(base, len, Box::new(std::sync::Mutex::new(resolved))) }.map_err(
        |e| {
            tracing::warn!(error = %e, "o2ib cannot register an exposed range");
            e.errno()
        },
    )?;
    Ok(reg.rkey())
}
