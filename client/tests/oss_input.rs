//! Bad OST requests sent straight to an OSS: each gets an errno reply,
//! nothing is written, and the OSS goes on serving.

mod support;

use client::{Client, process_cred};
use fabric::{BulkHandle, Errno};
use proto::{
    Fid, MAX_SHORT_IO_BYTES, OstCall, OstReply, OstRequest, StripeSpec, decode_ost_reply, encode,
    encode_ost_call, layout::MAX_FILE_SIZE, portal,
};
use support::TestFs;

/// Sends `body` as an OST request to OSS 0; its reply body or errno.
async fn raw(c: &Client, fs: &TestFs, opcode: u16, body: &[u8]) -> Result<Vec<u8>, Errno> {
    let peer = fs.osses[0].endpoint.id();
    match c.endpoint().call(peer, portal::OST, opcode, body).await {
        Ok(r) => Ok(r.body().to_vec()),
        Err(e) => Err(e.errno()),
    }
}

fn call(op: OstRequest, data: &[u8]) -> Vec<u8> {
    encode_ost_call(&OstCall { target: 0, op }, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_range_requests_get_errnos_and_change_nothing() {
    let fs = TestFs::start(1).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let spec = StripeSpec { stripe_count: Some(1), ..Default::default() };
    let (_, layout) = c.create(&process_cred(), c.root(), "f", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    c.pwrite(&layout, 0, &[7u8; 4096], false).await.unwrap();
    let fid: Fid = layout.raid0().unwrap().objects[0].fid;
    let (w, r) = (4, 3);
    let short = |data: &[u8], crc: u32| {
        call(OstRequest::WriteShort { fid, offset: 0, crc, sync: false, lock: None }, data)
    };

    // Short write data over the limit, and bytes after a request that
    // carries none: the message is refused before anything runs.
    let big = vec![1u8; MAX_SHORT_IO_BYTES + 1];
    assert_eq!(raw(&c, &fs, w, &short(&big, crc32c::crc32c(&big))).await, Err(Errno::EPROTO));
    let mut read = call(OstRequest::Read { fid, offset: 0, len: 4096, segs: vec![] }, &[]);
    read.extend_from_slice(b"junk");
    assert_eq!(raw(&c, &fs, r, &read).await, Err(Errno::EPROTO));
    assert_eq!(raw(&c, &fs, w, &short(&[1, 2, 3], 0)[..5]).await, Err(Errno::EPROTO), "truncated");

    // Well formed, but wrong: a checksum that does not match, a short read
    // over the limit, offsets past the largest size, a bulk write larger
    // than the OSS's RPC size.
    assert_eq!(raw(&c, &fs, w, &short(&[9u8; 4096], 1)).await, Err(Errno::EBADMSG));
    let over = OstRequest::ReadShort { fid, offset: 0, len: MAX_SHORT_IO_BYTES as u64 + 1 };
    assert_eq!(raw(&c, &fs, r, &call(over, &[])).await, Err(Errno::EINVAL));
    let data = [9u8; 16];
    let far = OstRequest::WriteShort {
        fid,
        offset: MAX_FILE_SIZE,
        crc: crc32c::crc32c(&data),
        sync: false,
        lock: None,
    };
    assert_eq!(raw(&c, &fs, w, &call(far, &data)).await, Err(Errno::EFBIG));
    let huge = 64 << 20;
    let seg = BulkHandle { addr: 4096, len: huge, key: 1, rkey: None };
    let bulk =
        OstRequest::Write { fid, offset: 0, len: huge, segs: vec![seg], crc: 0, sync: false, lock: None };
    assert_eq!(raw(&c, &fs, w, &call(bulk, &[])).await, Err(Errno::EINVAL));
    let gone = Fid::new(fid.seq, fid.oid + 1000);
    let nothing = OstRequest::ReadShort { fid: gone, offset: 0, len: 16 };
    assert_eq!(raw(&c, &fs, r, &call(nothing, &[])).await, Err(Errno::ENOENT));

    // None of it touched the object, and the OSS still answers.
    let body =
        raw(&c, &fs, r, &call(OstRequest::ReadShort { fid, offset: 0, len: 8192 }, &[])).await.unwrap();
    let (reply, bytes) = decode_ost_reply(&body).unwrap();
    assert_eq!(reply, OstReply::ReadShort { crc: crc32c::crc32c(&[7u8; 4096]) });
    assert!(bytes == [7u8; 4096], "the object changed");
    let statfs = raw(&c, &fs, 13, &encode(&OstCall { target: 0, op: OstRequest::Statfs })).await;
    assert!(statfs.is_ok());
    fs.shutdown();
}
