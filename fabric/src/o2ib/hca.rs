//! The HCA behind one local IP address: its device context and the one
//! protection domain every registration and queue pair on it shares (as
//! o2iblnd keeps one PD per `kib_hca_dev`).

use super::cm::{ack, new_channel, wait_event};
use super::{O2ibError, list_devices};
use sideway::ibverbs::device::DeviceInfo;
use sideway::ibverbs::device_context::DeviceContext;
use sideway::ibverbs::protection_domain::ProtectionDomain;
use sideway::rdmacm::communication_manager::{BindAddressErrorKind, EventType, PortSpace};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An opened RDMA device and its protection domain.
pub struct Hca {
    name: String,
    ctx: Arc<DeviceContext>,
    pd: Arc<ProtectionDomain>,
    port: u8,
    max_rd_atomic: u8,
}

impl std::fmt::Debug for Hca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hca").field("name", &self.name).field("port", &self.port).finish()
    }
}

impl Hca {
    /// The device that carries RDMA for local address `ip`, found the way
    /// o2iblnd finds it: bind an rdma_cm id to the address and take the
    /// device the kernel picked.
    pub fn for_address(ip: IpAddr) -> Result<Arc<Hca>, O2ibError> {
        // Ask libibverbs first: without rdma-core or a device this is the
        // clean NoRdmaDevice answer instead of an rdma_cm failure.
        list_devices()?;
        let channel = new_channel()?;
        let id = channel.create_id(PortSpace::Tcp).map_err(|e| O2ibError::call("rdma_create_id", e))?;
        if let Err(e) = id.bind_addr(SocketAddr::new(ip, 0)) {
            // ENODEV: the address is on an interface no RDMA device serves.
            let enodev = match &e.source {
                BindAddressErrorKind::Rdmacm(io) => io.raw_os_error() == Some(libc::ENODEV),
                _ => false,
            };
            return Err(if enodev { O2ibError::NoRdmaDevice } else { O2ibError::call("rdma_bind_addr", e) });
        }
        let (ctx, port) = match id.get_device_context() {
            Some(ctx) => (ctx, id.port()),
            // rdma_cm treats a loopback address like the wildcard and binds
            // no device; resolving the address picks the device serving it.
            None => {
                let id =
                    channel.create_id(PortSpace::Tcp).map_err(|e| O2ibError::call("rdma_create_id", e))?;
                let timeout = Duration::from_secs(10);
                id.resolve_addr(None, SocketAddr::new(ip, 0), timeout)
                    .map_err(|e| O2ibError::call("rdma_resolve_addr", e))?;
                let deadline = Some(Instant::now() + timeout);
                ack(wait_event(&channel, "device lookup", EventType::AddressResolved, deadline)?)?;
                (id.get_device_context().ok_or(O2ibError::NoRdmaDevice)?, id.port())
            }
        };
        let port = port.max(1);
        let pd = ctx.alloc_pd().map_err(|e| O2ibError::call("ibv_alloc_pd", e))?;
        let attr = ctx.query_device().map_err(|e| O2ibError::call("ibv_query_device", e))?;
        let max_rd_atomic = attr.max_qp_rd_atom().min(attr.max_qp_init_rd_atom()).clamp(1, 255) as u8;
        let name = ctx.name();
        tracing::debug!(%ip, device = %name, port, max_rd_atomic, "o2ib device for address");
        Ok(Arc::new(Hca { name, ctx, pd, port, max_rd_atomic }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u8 {
        self.port
    }

    /// How many RDMA READs one queue pair may have outstanding, both as
    /// initiator and as responder.
    pub fn max_rd_atomic(&self) -> u8 {
        self.max_rd_atomic
    }

    pub(crate) fn pd(&self) -> &Arc<ProtectionDomain> {
        &self.pd
    }

    pub(crate) fn context(&self) -> &Arc<DeviceContext> {
        &self.ctx
    }

    /// Whether `ctx` is this HCA's device (sideway hands out one context
    /// per device to every rdma_cm id).
    pub(crate) fn is_device(&self, ctx: &Arc<DeviceContext>) -> bool {
        Arc::ptr_eq(&self.ctx, ctx)
    }
}
