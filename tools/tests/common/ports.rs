//! Ports for tests that start real servers: random ones from the high
//! range, so tests running at once do not collide.

/// Whether `port` can be bound on `addr` now.
pub fn free(addr: &str, port: u16) -> bool {
    std::net::TcpListener::bind((addr, port)).is_ok()
}

/// A random port from the high range for which `ok` holds.
pub fn pick_port(ok: impl Fn(u16) -> bool) -> u16 {
    for _ in 0..200 {
        let mut b = [0u8; 2];
        // SAFETY: getrandom fills the 2-byte array it is given.
        unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 2, 0) };
        let port = 20000 + u16::from_le_bytes(b) % 40000;
        if ok(port) {
            return port;
        }
    }
    panic!("no free port found");
}
