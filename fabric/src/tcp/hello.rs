//! Connection setup: the hello exchange that tells each side who the other
//! is, which set a connection belongs to, and the peer's incarnation.
//! This is the one place a later authentication handshake sits.

use super::Inner;
use super::conn::{Conn, ConnSet, reader};
use super::frame::{FrameType, HEADER_LEN, Header};
use crate::lnd::LndError;
use crate::{Nid, ProcessId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
struct Hello {
    nid: Nid,
    pid: u32,
    /// Changes every time the process starts, so a peer can tell a restart
    /// from a dropped connection.
    incarnation: u64,
    set_id: u64,
    /// 0 is the control connection, 1.. the bulk ones.
    index: u8,
    total: u8,
    peer_credits: u16,
}

/// Connections of one set that the passive side has accepted so far.
pub(super) struct Partial {
    conns: Vec<Option<(OwnedReadHalf, OwnedWriteHalf)>>,
    peer_credits: u16,
}

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ ((std::process::id() as u64) << 32)
}

async fn write_hello(stream: &mut TcpStream, hello: &Hello) -> std::io::Result<()> {
    let body = postcard::to_allocvec(hello).map_err(std::io::Error::other)?;
    let mut h = Header::new(FrameType::Hello);
    h.len = body.len() as u32;
    let raw = h.seal(&[&body]);
    stream.write_all(&raw).await?;
    stream.write_all(&body).await
}

async fn read_hello(stream: &mut TcpStream) -> std::io::Result<Hello> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut raw = [0u8; HEADER_LEN];
    stream.read_exact(&mut raw).await?;
    let h = Header::decode(&raw).map_err(|e| bad(e.to_string()))?;
    if h.ftype != FrameType::Hello {
        return Err(bad(format!("expected a hello, got {:?}", h.ftype)));
    }
    let mut body = vec![0u8; h.len as usize];
    stream.read_exact(&mut body).await?;
    h.verify(&raw, &body).map_err(|e| bad(e.to_string()))?;
    let hello: Hello = postcard::from_bytes(&body).map_err(|e| bad(format!("bad hello: {e}")))?;
    if hello.total == 0 || hello.index >= hello.total || hello.total > 17 {
        return Err(bad(format!("bad hello: connection {} of {}", hello.index, hello.total)));
    }
    Ok(hello)
}

fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// Makes a new connection set to `id` (the active side).
pub(super) async fn connect(lnd: &Arc<Inner>, id: ProcessId) -> Result<(Arc<ConnSet>, Readers), LndError> {
    let total = 1 + lnd.cfg.bulk_conns as u8;
    let set_id = lnd.next_set.fetch_add(1, Ordering::Relaxed) ^ (lnd.incarnation << 16);
    let addr = id.nid.socket_addr(lnd.cfg.port);
    let unreachable = |reason: String| LndError::Unreachable { peer: id, reason };
    let mut halves = Vec::with_capacity(total as usize);
    let mut peer_credits = lnd.cfg.peer_credits;
    for index in 0..total {
        let mut stream = tokio::time::timeout(lnd.cfg.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("connect to {addr} timed out")))?
            .map_err(|e| unreachable(format!("connect to {addr}: {e}")))?;
        tune(&stream);
        let mine = Hello {
            nid: lnd.cfg.nid,
            pid: lnd.cfg.pid,
            incarnation: lnd.incarnation,
            set_id,
            index,
            total,
            peer_credits: lnd.cfg.peer_credits,
        };
        let theirs = tokio::time::timeout(HELLO_TIMEOUT, async {
            write_hello(&mut stream, &mine).await?;
            read_hello(&mut stream).await
        })
        .await
        .map_err(|_| unreachable("hello timed out".into()))?
        .map_err(|e| unreachable(format!("hello: {e}")))?;
        if theirs.pid != id.pid {
            return Err(unreachable(format!("{addr} answers as pid {}, not {}", theirs.pid, id.pid)));
        }
        peer_credits = peer_credits.min(theirs.peer_credits);
        halves.push(stream.into_split());
    }
    assemble(lnd, id, set_id, halves, peer_credits).map_err(|e| unreachable(format!("{addr}: {e}")))
}

/// The sockets of a set, moved to the runtime that reads them.
pub(super) struct Readers {
    halves: Vec<OwnedReadHalf>,
    home: Option<Handle>,
}

fn assemble(
    lnd: &Arc<Inner>,
    peer: ProcessId,
    set_id: u64,
    halves: Vec<(OwnedReadHalf, OwnedWriteHalf)>,
    peer_credits: u16,
) -> std::io::Result<(Arc<ConnSet>, Readers)> {
    let home = lnd.placement.get().and_then(|place| place(peer));
    let mut readers = Vec::with_capacity(halves.len());
    let mut conns = Vec::with_capacity(halves.len());
    for (rd, wr) in halves {
        let (rd, wr) = match &home {
            Some(h) => rehome(rd, wr, h)?,
            None => (rd, wr),
        };
        readers.push(rd);
        conns.push(Conn::new(wr));
    }
    let control = conns.remove(0);
    let stats = lnd.peer(peer).stats.clone();
    Ok((ConnSet::new(peer, set_id, control, conns, peer_credits, stats), Readers { halves: readers, home }))
}

/// Registers a socket with `home`'s reactor, so its readiness wakes the
/// thread that reads it rather than the runtime that accepted it.
fn rehome(
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    home: &Handle,
) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf)> {
    let std = rd.reunite(wr).map_err(std::io::Error::other)?.into_std()?;
    let _in = home.enter();
    Ok(TcpStream::from_std(std)?.into_split())
}

pub(super) fn start_readers(lnd: &Arc<Inner>, set: &Arc<ConnSet>, readers: Readers) {
    for rd in readers.halves {
        let task = reader(lnd.clone(), set.clone(), rd);
        match &readers.home {
            Some(h) => drop(h.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
    }
}

pub(super) async fn accept_loop(lnd: Arc<Inner>, listener: TcpListener) {
    let mut stop = lnd.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, from)) => {
                let lnd = lnd.clone();
                tokio::spawn(async move {
                    if let Err(e) = accept_one(&lnd, stream).await {
                        lnd.stats.frames_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%from, error = %e, "refused a connection");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_one(lnd: &Arc<Inner>, mut stream: TcpStream) -> std::io::Result<()> {
    tune(&stream);
    let theirs = tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no hello"))??;
    let peer = ProcessId { nid: theirs.nid, pid: theirs.pid };
    let mine = Hello {
        nid: lnd.cfg.nid,
        pid: lnd.cfg.pid,
        incarnation: lnd.incarnation,
        set_id: theirs.set_id,
        index: theirs.index,
        total: theirs.total,
        peer_credits: lnd.cfg.peer_credits,
    };
    let key = (peer, theirs.set_id);
    write_hello(&mut stream, &mine).await?;
    let ready = {
        let mut asm = lnd.assembling.lock().expect("assembling lock");
        // Bound what a peer can make this node hold for half-made sets.
        if asm.len() > 4096 {
            asm.clear();
        }
        let p = asm.entry(key).or_insert_with(|| Partial {
            conns: (0..theirs.total).map(|_| None).collect(),
            peer_credits: lnd.cfg.peer_credits.min(theirs.peer_credits),
        });
        if p.conns.len() != theirs.total as usize || p.conns[theirs.index as usize].is_some() {
            asm.remove(&key);
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "inconsistent connection set"));
        }
        p.conns[theirs.index as usize] = Some(stream.into_split());
        if p.conns.iter().all(|c| c.is_some()) { asm.remove(&key) } else { None }
    };
    if let Some(p) = ready {
        let halves = p.conns.into_iter().map(|c| c.expect("all present")).collect();
        let (set, readers) = assemble(lnd, peer, theirs.set_id, halves, p.peer_credits)?;
        // Readers start only once the set is installed, so a reply to the
        // first request always finds it.
        lnd.install(set.clone());
        start_readers(lnd, &set, readers);
        tracing::debug!(%peer, "connection set accepted");
    }
    Ok(())
}
