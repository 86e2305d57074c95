//! Registering the ranges this node exposes, so their handles carry an
//! rkey and the peer that moves the bulk RDMAs at once, with no round
//! trip to ask for it (o2iblnd's `kib_rdma_desc` in a GET or PUT request).
//!
//! Each exposure gets a registration of exactly its bytes, for exactly the
//! access it grants (remote read for a write RPC's data, remote write for a
//! read RPC's buffer), so the HCA refuses every byte outside it and the
//! other direction, as the registry does for tcp. The registration lives in
//! the exposure and is deregistered when the exposure is withdrawn: the
//! rkey dies with it, and a peer that kept it after its RPC has nothing
//! left to touch. (A registration cache would outlive the exposure;
//! memory windows would make the revocation cheaper, a bind and an
//! invalidate instead of a register and a deregister, but sideway has no
//! binding for them.)

use super::{Hca, Registration};
use crate::memory::{Access, Region, RemoteKeys};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The registrar an o2ib NI installs in its node's registry.
pub(crate) struct ExposureKeys {
    pub(crate) hca: Arc<Hca>,
    /// Exposures registered, and those withdrawn (deregistered).
    pub(crate) registered: Arc<AtomicU64>,
    pub(crate) deregistered: Arc<AtomicU64>,
}

/// One exposure's registration; dropping it deregisters.
struct Exposed {
    _reg: Registration,
    deregistered: Arc<AtomicU64>,
}

impl Drop for Exposed {
    fn drop(&mut self) {
        self.deregistered.fetch_add(1, Ordering::Relaxed);
    }
}

impl RemoteKeys for ExposureKeys {
    fn register(
        &self,
        region: &Arc<Region>,
        addr: u64,
        len: u64,
        access: Access,
    ) -> std::io::Result<(u32, Box<dyn Any + Send + Sync>)> {
        let base = region.base() as u64;
        let inside = addr >= base && addr.checked_add(len).is_some_and(|e| e <= base + region.len() as u64);
        if !inside || len == 0 {
            return Err(std::io::Error::other(format!("{addr:#x}+{len} is not a range of the region")));
        }
        let reg = Registration::register_range(&self.hca, region.clone(), addr, len as usize, access)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.registered.fetch_add(1, Ordering::Relaxed);
        let rkey = reg.rkey();
        Ok((rkey, Box::new(Exposed { _reg: reg, deregistered: self.deregistered.clone() })))
    }
}
