//! The RPC header at the front of every message a service receives:
//! decode never panics, and what it accepts is exactly a header that
//! re-encodes to the same 48 bytes followed by the body it claims.

#![no_main]

use fabric::rpc::{RPC_HEADER_LEN, RpcHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|msg: &[u8]| {
    let Ok(h) = RpcHeader::decode(msg) else { return };
    assert_eq!(&h.encode()[..], &msg[..RPC_HEADER_LEN], "decode dropped or changed a field");
    assert_eq!(h.body_len as usize, msg.len() - RPC_HEADER_LEN);
});
