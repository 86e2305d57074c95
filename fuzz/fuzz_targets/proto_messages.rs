//! Every message body a glint service or client decodes off the wire:
//! the codec never panics on any bytes (and never allocates what the bytes
//! merely claim), and a value it accepts survives encode and decode
//! unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(what: &'static str, bytes: &[u8]) {
    let Ok(v) = proto::decode::<T>(what, bytes) else { return };
    let again = proto::encode(&v);
    let back: T = proto::decode(what, &again).unwrap_or_else(|e| panic!("{what} re-encoded fails: {e}"));
    assert_eq!(back, v, "{what} changed on the way through the codec");
}

/// The OST's framing of short I/O: a message, then raw bytes after it.
fn ost_with_data(bytes: &[u8]) {
    if let Ok((call, tail)) = proto::decode_ost_call(bytes) {
        let again = proto::encode_ost_call(&call, tail);
        let (back, t) = proto::decode_ost_call(&again).expect("a short write re-encoded decodes");
        assert_eq!((back, t), (call, tail));
    }
    if let Ok((reply, tail)) = proto::decode_ost_reply(bytes) {
        let again = proto::encode_ost_reply(&reply, tail);
        let (back, t) = proto::decode_ost_reply(&again).expect("a short read re-encoded decodes");
        assert_eq!((back, t), (reply, tail));
    }
}

fuzz_target!(|data: &[u8]| {
    ost_with_data(data);
    round_trip::<proto::OstCall>("OstCall", data);
    round_trip::<proto::OstReply>("OstReply", data);
    round_trip::<proto::MdsCall>("MdsCall", data);
    round_trip::<proto::MdsReply>("MdsReply", data);
    round_trip::<proto::MgsRequest>("MgsRequest", data);
    round_trip::<proto::MgsReply>("MgsReply", data);
    round_trip::<proto::FsConfig>("FsConfig", data);
    round_trip::<proto::Layout>("Layout", data);
    round_trip::<proto::ldlm::LdlmCallback>("LdlmCallback", data);
    round_trip::<proto::ldlm::LdlmCallbackReply>("LdlmCallbackReply", data);
});
