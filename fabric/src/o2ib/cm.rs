//! Connection setup with rdma_cm, as o2iblnd does it: the passive side
//! listens on an IP address and port, the active side resolves the peer's
//! address and route, each creates its own queue pair, and the CM
//! exchanges queue pair numbers and sequence numbers.
//!
//! Event channels are non-blocking and waited on with `poll(2)` so every
//! step has a deadline instead of hanging on a silent peer.

use super::{ConnConfig, Connection, Hca, O2ibError};
use sideway::rdmacm::communication_manager::{
    ConnectionParameter, Event, EventChannel, EventType, GetEventErrorKind, Identifier, PortSpace,
};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn new_channel() -> Result<Arc<EventChannel>, O2ibError> {
    let channel = EventChannel::new().map_err(|e| O2ibError::call("rdma_create_event_channel", e))?;
    channel.set_nonblocking(true).map_err(|e| O2ibError::call("set event channel non-blocking", e))?;
    Ok(channel)
}

fn event_name(expected: &EventType) -> &'static str {
    match expected {
        EventType::AddressResolved => "ADDR_RESOLVED",
        EventType::RouteResolved => "ROUTE_RESOLVED",
        EventType::ConnectRequest => "CONNECT_REQUEST",
        EventType::ConnectResponse => "CONNECT_RESPONSE",
        EventType::Established => "ESTABLISHED",
        _ => "another rdma_cm event",
    }
}

/// Wait for `expected` on `channel` until `deadline` (forever if `None`).
/// Disconnects of earlier connections on a listener's channel are passed
/// over; anything else unexpected ends the handshake.
pub(crate) fn wait_event(
    channel: &Arc<EventChannel>,
    during: &'static str,
    expected: EventType,
    deadline: Option<Instant>,
) -> Result<Event, O2ibError> {
    let start = Instant::now();
    loop {
        match channel.get_cm_event() {
            Ok(event) => {
                let got = event.event_type();
                if got == expected {
                    return Ok(event);
                }
                if matches!(got, EventType::Disconnected | EventType::TimewaitExit) {
                    tracing::debug!(?got, during, "rdma_cm event of another connection");
                    continue;
                }
                return Err(O2ibError::CmEvent {
                    during,
                    expected: event_name(&expected),
                    got: format!("{got:?}"),
                    status: event.status(),
                });
            }
            Err(e) if matches!(e.0, GetEventErrorKind::NoEvent) => {}
            Err(e) => return Err(O2ibError::call("rdma_get_cm_event", e)),
        }
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let millis = start.elapsed().as_millis();
                    return Err(O2ibError::CmTimeout { expected: event_name(&expected), millis });
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        let mut pfd = libc::pollfd { fd: channel.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ready == 0 {
            let millis = start.elapsed().as_millis();
            return Err(O2ibError::CmTimeout { expected: event_name(&expected), millis });
        }
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(O2ibError::call("poll rdma_cm channel", err));
            }
        }
    }
}

pub(crate) fn ack(event: Event) -> Result<(), O2ibError> {
    event.ack().map_err(|e| O2ibError::call("rdma_ack_cm_event", e))
}

fn conn_param(conn: &Connection) -> ConnectionParameter {
    // Retry and RNR retry at 7: a receiver briefly out of buffers makes the
    // sender retry forever instead of breaking the connection.
    let mut param = ConnectionParameter::default();
    param.setup_qp_number(conn.qp_number());
    param
}

/// Open an RC connection to a listener at `dst` through `hca`.
pub fn connect(hca: &Arc<Hca>, dst: SocketAddr, cfg: &ConnConfig) -> Result<Connection, O2ibError> {
    connect_watched(hca, dst, cfg).map(|(conn, _)| conn)
}

/// What an rdma_cm event channel reported, outside a handshake.
pub(crate) enum CmNews {
    /// A peer's connection was accepted; messages may already arrive.
    Accepted(Box<Connection>),
    /// The connection of this id is gone (disconnect, error, device removal).
    Closed(Arc<Identifier>),
    /// Something that needs no action.
    Nothing,
}

/// Take one event off `channel` without blocking: `None` when there is
/// none. Used for the channels of established connections, where every
/// event but ESTABLISHED means the connection is over.
pub(crate) fn next_news(channel: &Arc<EventChannel>) -> Result<Option<CmNews>, O2ibError> {
    let event = match channel.get_cm_event() {
        Ok(event) => event,
        Err(e) if matches!(e.0, GetEventErrorKind::NoEvent) => return Ok(None),
        Err(e) => return Err(O2ibError::call("rdma_get_cm_event", e)),
    };
    let got = event.event_type();
    let id = event.cm_id();
    ack(event)?;
    Ok(Some(match (got, id) {
        (EventType::Established | EventType::TimewaitExit, _) | (_, None) => CmNews::Nothing,
        (other, Some(id)) => {
            tracing::debug!(event = ?other, "rdma_cm event ends a connection");
            CmNews::Closed(id)
        }
    }))
}

/// Open an RC connection to a listener at `dst` through `hca`, and return
/// the event channel that will report its disconnection.
pub(crate) fn connect_watched(
    hca: &Arc<Hca>,
    dst: SocketAddr,
    cfg: &ConnConfig,
) -> Result<(Connection, Arc<EventChannel>), O2ibError> {
    let deadline = Some(Instant::now() + cfg.timeout);
    let step = cfg.timeout.min(Duration::from_secs(30));
    let channel = new_channel()?;
    let id = channel.create_id(PortSpace::Tcp).map_err(|e| O2ibError::call("rdma_create_id", e))?;
    id.resolve_addr(None, dst, step).map_err(|e| O2ibError::call("rdma_resolve_addr", e))?;
    ack(wait_event(&channel, "connect", EventType::AddressResolved, deadline)?)?;
    id.resolve_route(step).map_err(|e| O2ibError::call("rdma_resolve_route", e))?;
    ack(wait_event(&channel, "connect", EventType::RouteResolved, deadline)?)?;

    let mut conn = Connection::create(hca, Arc::clone(&id), cfg)?;
    id.connect(conn_param(&conn)).map_err(|e| O2ibError::call("rdma_connect", e))?;
    ack(wait_event(&channel, "connect", EventType::ConnectResponse, deadline)?)?;
    conn.ready()?;
    id.establish().map_err(|e| O2ibError::call("rdma_establish", e))?;
    tracing::debug!(%dst, qp = conn.qp_number(), "o2ib connected");
    Ok((conn, channel))
}

/// A passive rdma_cm endpoint accepting RC connections on one address.
pub struct Listener {
    // Listening lasts as long as this id.
    _id: Arc<Identifier>,
    channel: Arc<EventChannel>,
    hca: Arc<Hca>,
    cfg: ConnConfig,
    addr: SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("addr", &self.addr).field("hca", &self.hca.name()).finish()
    }
}

impl Listener {
    /// Listen on `addr`, whose device must be `hca`'s.
    pub fn bind(hca: &Arc<Hca>, addr: SocketAddr, cfg: ConnConfig) -> Result<Listener, O2ibError> {
        let channel = new_channel()?;
        let id = channel.create_id(PortSpace::Tcp).map_err(|e| O2ibError::call("rdma_create_id", e))?;
        id.bind_addr(addr).map_err(|e| O2ibError::call("rdma_bind_addr", e))?;
        if let Some(ctx) = id.get_device_context()
            && !hca.is_device(&ctx)
        {
            use sideway::ibverbs::device::DeviceInfo;
            return Err(O2ibError::WrongDevice { expected: hca.name().to_owned(), got: ctx.name() });
        }
        id.listen(64).map_err(|e| O2ibError::call("rdma_listen", e))?;
        tracing::debug!(%addr, device = hca.name(), "o2ib listening");
        Ok(Listener { _id: id, channel, hca: Arc::clone(hca), cfg, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The event channel's descriptor, readable when an event waits.
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.channel.as_raw_fd()
    }

    /// Handle one event of the listener's channel without blocking: a
    /// connect request is accepted at once (the ESTABLISHED that follows
    /// needs nothing: receives are posted and the queue pair is ready), a
    /// disconnect names the connection that is over. `None` when no event
    /// waits.
    pub(crate) fn next_news(&self) -> Result<Option<CmNews>, O2ibError> {
        let event = match self.channel.get_cm_event() {
            Ok(event) => event,
            Err(e) if matches!(e.0, GetEventErrorKind::NoEvent) => return Ok(None),
            Err(e) => return Err(O2ibError::call("rdma_get_cm_event", e)),
        };
        let got = event.event_type();
        let id = event.cm_id();
        ack(event)?;
        let Some(id) = id else { return Ok(Some(CmNews::Nothing)) };
        match got {
            EventType::ConnectRequest => {
                let accepted = Connection::create(&self.hca, id, &self.cfg).and_then(|mut conn| {
                    conn.ready()?;
                    conn.identifier()
                        .accept(conn_param(&conn))
                        .map_err(|e| O2ibError::call("rdma_accept", e))?;
                    Ok(conn)
                });
                match accepted {
                    Ok(conn) => Ok(Some(CmNews::Accepted(Box::new(conn)))),
                    Err(e) => {
                        // Dropping the id rejects the request.
                        tracing::warn!(error = %e, "refusing o2ib connection");
                        Ok(Some(CmNews::Nothing))
                    }
                }
            }
            EventType::Established | EventType::TimewaitExit => Ok(Some(CmNews::Nothing)),
            other => {
                tracing::debug!(event = ?other, "rdma_cm event ends an accepted connection");
                Ok(Some(CmNews::Closed(id)))
            }
        }
    }

    /// Accept the next connection, waiting at most `timeout` for it to
    /// arrive (forever if `None`). Handshakes are served one at a time.
    pub fn accept(&self, timeout: Option<Duration>) -> Result<Connection, O2ibError> {
        let arrival = timeout.map(|t| Instant::now() + t);
        let request = wait_event(&self.channel, "accept", EventType::ConnectRequest, arrival)?;
        let id = request.cm_id().ok_or_else(|| {
            O2ibError::call("rdma_get_cm_event", std::io::Error::other("request without an id"))
        })?;
        ack(request)?;
        let mut conn = match Connection::create(&self.hca, id, &self.cfg) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "refusing o2ib connection");
                return Err(e);
            }
        };
        conn.ready()?;
        conn.identifier().accept(conn_param(&conn)).map_err(|e| O2ibError::call("rdma_accept", e))?;
        let deadline = Some(Instant::now() + self.cfg.timeout);
        ack(wait_event(&self.channel, "accept", EventType::Established, deadline)?)?;
        tracing::debug!(listener = %self.addr, qp = conn.qp_number(), "o2ib accepted");
        Ok(conn)
    }
}
