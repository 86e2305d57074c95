//! `MGSNID[:MGSNID...]:/FSNAME` as `glint mount` and fstab give it:
//! parsing never panics, and a parsed spec prints as a spec that parses
//! back to the same MGS list and file system name.

#![no_main]

use client::MountSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(spec) = s.parse::<MountSpec>() else { return };
    assert!(!spec.mgs.is_empty());
    let text = spec.to_string();
    let back = text.parse::<MountSpec>().unwrap_or_else(|e| panic!("{s:?} printed as {text:?}: {e}"));
    assert_eq!(back, spec, "{s:?} printed as {text:?}");
});
