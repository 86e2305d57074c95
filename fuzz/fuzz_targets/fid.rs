//! FIDs as `lfs path2fid` prints them and `lfs fid2path` takes them:
//! parsing never panics, a parsed FID prints as text that parses back to
//! it, and folding it into an inode number never overflows.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::Fid;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(fid) = s.parse::<Fid>() else { return };
    let text = fid.to_string();
    let back = text.parse::<Fid>().unwrap_or_else(|e| panic!("{s:?} printed as {text:?}: {e}"));
    assert_eq!(back, fid, "{s:?} printed as {text:?}");
    assert_ne!(fid.ino(), 0, "inode 0 is not a file");
});
