//! Finding RDMA devices. A node without one (or without rdma-core
//! installed) gets `NoRdmaDevice` and runs tcp only.

use super::O2ibError;
use sideway::ibverbs::device::{DeviceInfo, DeviceList};
use sideway::ibverbs::device_context::{LinkLayer, Mtu, PortState};

/// One RDMA device and its ports, as the node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmaDevice {
    /// The kernel name, e.g. `mlx5_0` or `rxe0`.
    pub name: String,
    pub node_guid: u64,
    pub ports: Vec<RdmaPort>,
}

/// One port of a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmaPort {
    /// Ports count from 1.
    pub num: u8,
    pub active: bool,
    /// The largest RDMA payload per packet the port runs now, in bytes.
    pub active_mtu: u32,
    /// RoCE (and Soft-RoCE) ports are Ethernet; native InfiniBand is not.
    pub ethernet: bool,
    pub gid_table_len: u32,
}

/// Bytes in one packet's payload for an MTU setting.
pub fn mtu_bytes(mtu: Mtu) -> u32 {
    match mtu {
        Mtu::Mtu256 => 256,
        Mtu::Mtu512 => 512,
        Mtu::Mtu1024 => 1024,
        Mtu::Mtu2048 => 2048,
        Mtu::Mtu4096 => 4096,
    }
}

/// Every RDMA device on this node. `Err(NoRdmaDevice)` when there is
/// none, or when libibverbs cannot be loaded: rdma-core is opened at run
/// time, so its absence is an ordinary answer rather than a start-up
/// failure.
pub fn list_devices() -> Result<Vec<RdmaDevice>, O2ibError> {
    let list = match DeviceList::new() {
        Ok(list) => list,
        Err(e) => {
            tracing::debug!(error = %e, cause = ?std::error::Error::source(&e), "no verbs device list");
            return Err(O2ibError::NoRdmaDevice);
        }
    };
    if list.is_empty() {
        return Err(O2ibError::NoRdmaDevice);
    }
    let mut devices = Vec::with_capacity(list.len());
    for dev in &list {
        let name = dev.name();
        let ctx = dev.open().map_err(|e| O2ibError::call("ibv_open_device", e))?;
        let attr = ctx.query_device().map_err(|e| O2ibError::call("ibv_query_device", e))?;
        let mut ports = Vec::new();
        for num in 1..=attr.phys_port_cnt() {
            let port = ctx.query_port(num).map_err(|e| O2ibError::call("ibv_query_port", e))?;
            ports.push(RdmaPort {
                num,
                active: port.port_state() == PortState::Active,
                active_mtu: mtu_bytes(port.active_mtu()),
                ethernet: port.link_layer() == LinkLayer::Ethernet,
                gid_table_len: port.gid_tbl_len().max(0) as u32,
            });
        }
        devices.push(RdmaDevice { name, node_guid: attr.node_guid().as_u64(), ports });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_never_panics_and_never_returns_an_empty_list() {
        // On a host without RDMA this is the NoRdmaDevice path; with a
        // device it must describe at least one.
        match list_devices() {
            Ok(devices) => {
                assert!(!devices.is_empty());
                assert!(devices.iter().all(|d| !d.name.is_empty()));
            }
            Err(O2ibError::NoRdmaDevice) => {}
            Err(other) => panic!("unexpected error listing devices: {other}"),
        }
    }

    #[test]
    fn mtu_sizes() {
        assert_eq!(mtu_bytes(Mtu::Mtu4096), 4096);
        assert_eq!(mtu_bytes(Mtu::Mtu256), 256);
    }
}
