//! What a directory entry name may be.

use fabric::Errno;

/// Longest name, in bytes, as NAME_MAX.
pub const NAME_MAX: usize = 255;
/// Longest symlink target, in bytes, as PATH_MAX less its NUL.
pub const SYMLINK_MAX: usize = 4095;

/// Checks a name given to any operation: ENOENT when empty (as an empty
/// path), ENAMETOOLONG past 255 bytes, EINVAL with `/` or NUL.
pub fn check(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `.` or `..`: names every directory has and nobody creates or removes.
pub fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_bad_names() {
        assert_eq!(check(b""), Err(Errno::ENOENT));
        assert_eq!(check(&[b'a'; 256]), Err(Errno::ENAMETOOLONG));
        assert_eq!(check(&[b'a'; 255]), Ok(()));
        assert_eq!(check(b"a/b"), Err(Errno::EINVAL));
        assert_eq!(check(b"a\0b"), Err(Errno::EINVAL));
        assert!(is_dot(b".") && is_dot(b"..") && !is_dot(b"..."));
    }

    proptest! {
        #[test]
        fn accepts_exactly_the_posix_names(name in proptest::collection::vec(any::<u8>(), 0..300)) {
            let ok = !name.is_empty() && name.len() <= 255 && !name.contains(&b'/') && !name.contains(&0);
            prop_assert_eq!(check(&name).is_ok(), ok);
        }
    }
}
