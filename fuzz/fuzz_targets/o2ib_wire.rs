//! The o2ib LND's message header and hello, as a peer could send them:
//! decode never panics, a decoded header re-encodes to the bytes it came
//! from (all but the reserved tail) and agrees with the message's length,
//! and a decoded hello round-trips; a bulk handle (what a request carries
//! for the peer to RDMA, rkey included) decodes only from its exact
//! encoding.

#![no_main]

use fabric::memory::BulkHandle;
use fabric::o2ib::wire::{HEADER_LEN, Header, Hello};
use libfuzzer_sys::fuzz_target;

/// Header bytes that carry fields; the rest are reserved and sent as zero.
const USED: usize = 54;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::decode(data) {
        assert_eq!(h.len as usize, data.len() - HEADER_LEN, "length not checked");
        assert_eq!(&h.encode()[..USED], &data[..USED], "decode dropped or changed a field");
        let mut again = h.encode().to_vec();
        again.extend_from_slice(&data[HEADER_LEN..]);
        assert_eq!(Header::decode(&again).expect("a re-encoded header decodes"), h);
    }
    if let Ok(hello) = Hello::decode(data) {
        assert_eq!(Hello::decode(&hello.encode()).expect("an encoded hello decodes"), hello);
    }
    if let Ok(h) = BulkHandle::from_bytes(data) {
        assert_eq!(&h.to_bytes()[..], data, "a handle decoded from bytes it does not encode to");
    }
});
