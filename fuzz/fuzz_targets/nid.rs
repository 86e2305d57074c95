//! NIDs and networks as admins and config files write them: parsing never
//! panics, and a parsed NID or network prints as text that parses back to
//! the same value (what `lctl list_nids` prints, a config file can say).

#![no_main]

use fabric::{Net, Nid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(nid) = s.parse::<Nid>() {
        let text = nid.to_string();
        let back = text.parse::<Nid>().unwrap_or_else(|e| panic!("{s:?} printed as {text:?}: {e}"));
        assert_eq!(back, nid, "{s:?} printed as {text:?}");
        // A socket address can be formed for every NID a node may listen on.
        let _ = nid.socket_addr(988);
    }
    if let Ok(net) = s.parse::<Net>() {
        let text = net.to_string();
        let back = text.parse::<Net>().unwrap_or_else(|e| panic!("{s:?} printed as {text:?}: {e}"));
        assert_eq!(back, net, "{s:?} printed as {text:?}");
    }
});
