//! Where a network device sits: the kernel publishes the NUMA node of a
//! PCI device under sysfs, and a service handles a NIC's traffic best on
//! the partition of that node (Lustre's NI `cpt` binding).

use std::net::IpAddr;
use std::path::Path;

/// The NUMA node of a network (`eth0`, `ib0`) or RDMA (`mlx5_0`) device,
/// when the kernel knows it.
pub fn device_numa_node(dev: &str) -> Option<usize> {
    device_numa_node_in(Path::new("/sys"), dev)
}

/// As [`device_numa_node`], under another sysfs root.
pub fn device_numa_node_in(sysfs: &Path, dev: &str) -> Option<usize> {
    // A device name is one path component; anything else is not a device.
    if dev.is_empty() || dev == "." || dev == ".." || dev.contains(['/', '\0']) {
        return None;
    }
    ["class/net", "class/infiniband"].iter().find_map(|class| {
        let text = std::fs::read_to_string(sysfs.join(class).join(dev).join("device/numa_node")).ok()?;
        // -1: a device without NUMA affinity (virtual, or firmware silent).
        text.trim().parse::<i64>().ok().and_then(|n| usize::try_from(n).ok())
    })
}

/// The interface that holds local address `addr`, e.g. `ib0` for an IPoIB
/// address.
pub fn interface_of_addr(addr: IpAddr) -> Option<String> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; its name is a NUL-terminated string and its
        // address, when present, is a sockaddr of the family it states.
        let entry = unsafe { &*cur };
        let here = unsafe { sockaddr_ip(entry.ifa_addr) };
        if here == Some(addr) {
            let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
            found = Some(name.to_string_lossy().into_owned());
            break;
        }
        cur = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// # Safety
/// `sa` is null or points to a sockaddr whose size matches its family.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: per the contract, the family field is readable and tells the
    // real type.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*sa.cast::<libc::sockaddr_in>();
                Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let sin6 = &*sa.cast::<libc::sockaddr_in6>();
                Some(IpAddr::from(sin6.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpt::{CptTable, TopologyDesc};

    fn fake_device(root: &Path, class: &str, dev: &str, node: &str) {
        let dir = root.join(class).join(dev).join("device");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("numa_node"), node).unwrap();
    }

    #[test]
    fn reads_numa_node_of_net_and_rdma_devices() {
        let sys = tempfile::tempdir().unwrap();
        fake_device(sys.path(), "class/net", "ib0", "1\n");
        fake_device(sys.path(), "class/infiniband", "mlx5_0", "3\n");
        fake_device(sys.path(), "class/net", "eth0", "-1\n");
        fake_device(sys.path(), "class/net", "bad0", "one\n");
        assert_eq!(device_numa_node_in(sys.path(), "ib0"), Some(1));
        assert_eq!(device_numa_node_in(sys.path(), "mlx5_0"), Some(3));
        assert_eq!(device_numa_node_in(sys.path(), "eth0"), None);
        assert_eq!(device_numa_node_in(sys.path(), "bad0"), None);
        assert_eq!(device_numa_node_in(sys.path(), "missing0"), None);
        assert_eq!(device_numa_node_in(sys.path(), "../net/ib0"), None);
        assert_eq!(device_numa_node_in(sys.path(), ".."), None);
        assert_eq!(device_numa_node_in(sys.path(), ""), None);
    }

    #[test]
    fn loopback_address_is_on_lo() {
        assert_eq!(interface_of_addr("127.0.0.1".parse().unwrap()).as_deref(), Some("lo"));
        assert_eq!(interface_of_addr("192.0.2.123".parse().unwrap()), None, "TEST-NET-1 is never local");
    }

    #[test]
    fn the_cpt_of_a_device_is_the_one_on_its_node() {
        let topo = TopologyDesc::uniform(2, 2, 4, 1, 0).unwrap();
        let table = CptTable::with_count(&topo, 8).unwrap();
        let sys = tempfile::tempdir().unwrap();
        fake_device(sys.path(), "class/net", "ib0", "2\n");
        fake_device(sys.path(), "class/infiniband", "mlx5_1", "3\n");
        fake_device(sys.path(), "class/net", "eth9", "9\n");
        // Node 2's first partition is the nearest to a NIC on node 2.
        assert_eq!(table.cpt_for_device_in(sys.path(), "ib0"), 4);
        assert_eq!(table.cpt_for_device_in(sys.path(), "mlx5_1"), 6);
        // A node without partitions, or no node at all: partition 0.
        assert_eq!(table.cpt_for_device_in(sys.path(), "eth9"), 0);
        assert_eq!(table.cpt_for_device_in(sys.path(), "eth0"), 0);
    }
}
