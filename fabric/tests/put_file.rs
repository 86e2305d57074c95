//! Bulk puts straight from a file over the tcp LND (`sendfile`): the bytes
//! land exactly, from any offset, over several socket writes; a file
//! shorter than the put fails it without corrupting the stream; a forged
//! handle is refused; and the connection serves the next call afterwards.

use fabric::memory::{Access, BulkHandle};
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Errno, IoBuf, Nid, Pid, ProcessId};
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

const PORTAL: u16 = 9;
const PUT_FILE: u16 = 1;
const FROM_FILES: u16 = 2;

/// A loopback address of this test's own, so tests run in parallel.
fn unique_nid() -> Nid {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte array.
    unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 3, 0) };
    format!("127.{}.{}.{}@tcp", b[0], b[1], b[2].max(2)).parse().unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 251) as u8 ^ (i >> 12) as u8).collect()
}

/// Serves PUT_FILE: body = handle (addr, len, key) and a file offset; puts
/// that many bytes of its file from that offset into the handle.
struct FileServer {
    file: File,
}

impl Service for FileServer {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move {
            match req.opcode {
                FROM_FILES => Ok(vec![u8::from(req.bulk.puts_from_files())]),
                PUT_FILE => {
                    let b = req.body();
                    let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
                    let h = BulkHandle { addr: word(0), len: word(1), key: word(2) };
                    let buf = IoBuf::alloc(4096, None).map_err(Errno::from)?;
                    let (_, r) = req.bulk.put_file(h, &self.file, word(3), buf, 0).await;
                    r.map_err(|e| e.errno())?;
                    Ok(Vec::new())
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        })
    }
}

fn body(h: BulkHandle, file_off: u64) -> Vec<u8> {
    [h.addr, h.len, h.key, file_off].iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[tokio::test]
async fn puts_from_a_file_land_exactly_and_bad_ones_fail_cleanly() {
    let data = pattern(5 << 20);
    let mut tmp = tempfile::tempfile().unwrap();
    tmp.write_all(&data).unwrap();

    let server_nid = unique_nid();
    let server = Endpoint::start(EndpointConfig::server(server_nid)).await.unwrap();
    server.register(PORTAL, Arc::new(FileServer { file: tmp }));
    let client = Endpoint::start(EndpointConfig::client(unique_nid())).await.unwrap();
    let srv = ProcessId { nid: server_nid, pid: Pid::SERVER };

    let r = client.call(srv, PORTAL, FROM_FILES, b"").await.unwrap();
    assert_eq!(r.body(), [1], "tcp should put from files without the buffer");

    // Several MiB from an unaligned offset: more than one socket buffer's worth.
    let len = 3 << 20;
    let mut sink = IoBuf::alloc(len, None).unwrap();
    let ex = client.registry().expose(&sink, Access::Write);
    client.call(srv, PORTAL, PUT_FILE, &body(ex.handle(), 12345)).await.unwrap();
    drop(ex);
    assert!(sink.as_mut_slice() == &data[12345..12345 + len], "the bytes put differ from the file's");

    // The file ends before the put does: an error, not a hang or a torn stream.
    let ex = client.registry().expose(&sink, Access::Write);
    let near_end = (data.len() - 1000) as u64;
    let err = client.call(srv, PORTAL, PUT_FILE, &body(ex.handle(), near_end)).await.err();
    assert!(err.is_some(), "a put past the end of the file succeeded");
    drop(ex);

    // A forged key: the client's LND refuses the bytes.
    let ex = client.registry().expose(&sink, Access::Write);
    let forged = BulkHandle { key: ex.handle().key ^ 0x5a, ..ex.handle() };
    let err = client.call(srv, PORTAL, PUT_FILE, &body(forged, 0)).await.err().unwrap();
    assert_ne!(err.errno(), Errno(0));

    // And the next put works and is exact.
    let small = 100_000;
    let ex = client.registry().expose_range(&sink, 0, small, Access::Write).unwrap();
    client.call(srv, PORTAL, PUT_FILE, &body(ex.handle(), 7)).await.unwrap();
    drop(ex);
    assert!(sink.as_mut_slice()[..small] == data[7..7 + small]);
}
