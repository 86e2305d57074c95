//! The tcp LND's frame header, as a peer could send it: decode never
//! panics, a decoded header re-encodes to the very bytes it came from (so
//! no field is silently dropped or altered), and a header sealed over a
//! payload always verifies against that payload and no other.

#![no_main]

use fabric::tcp::{HEADER_LEN, Header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((raw, payload)) = data.split_first_chunk::<HEADER_LEN>() else { return };
    let Ok(h) = Header::decode(raw) else { return };
    assert_eq!(&h.encode(), raw, "decode dropped or changed a field");
    let claimed_ok = h.verify(raw, payload).is_ok();

    let mut sealed = h;
    let sealed_raw = sealed.seal(&[payload]);
    let back = Header::decode(&sealed_raw).expect("a sealed header of a decodable one decodes");
    assert_eq!(back, sealed);
    back.verify(&sealed_raw, payload).expect("a sealed header verifies against its own payload");
    if claimed_ok {
        assert_eq!(sealed.crc, h.crc, "two crcs accepted for one header and payload");
    }
    if let Some((first, rest)) = payload.split_first() {
        let mut changed = rest.to_vec();
        changed.insert(0, first ^ 0x01);
        assert!(back.verify(&sealed_raw, &changed).is_err(), "a flipped payload bit still verified");
    }
});
