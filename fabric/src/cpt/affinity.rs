//! Pinning the calling thread to a set of cpus, through
//! `sched_setaffinity` with a mask sized for the cpus named (so machines
//! with more than the 1024 cpus of a fixed `cpu_set_t` work too).

use std::io;
use std::mem::size_of;

const WORD_BITS: usize = libc::c_ulong::BITS as usize;
/// Larger cpu ids than this are not a real machine's; refusing them keeps a
/// bad id from sizing a huge mask.
const MAX_CPU: usize = 1 << 20;

/// Restricts the calling thread to `cpus`. Fails with EINVAL when the list
/// is empty or names no cpu this process may use, and with EPERM where the
/// container forbids it.
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    let Some(&max) = cpus.iter().max() else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    if max >= MAX_CPU {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // The kernel wants the mask at least as wide as its own cpumask; a
    // multiple of cpu_set_t is always wide enough for ids below MAX_CPU.
    let words = (max / WORD_BITS + 1).max(size_of::<libc::cpu_set_t>() / size_of::<libc::c_ulong>());
    let mut mask = vec![0 as libc::c_ulong; words];
    for &cpu in cpus {
        mask[cpu / WORD_BITS] |= 1 << (cpu % WORD_BITS);
    }
    // SAFETY: the mask is `words` initialised words and we pass its size in
    // bytes; the kernel reads no further.
    let rc = unsafe {
        libc::sched_setaffinity(
            0,
            words * size_of::<libc::c_ulong>(),
            mask.as_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The cpus the calling thread may run on, ascending.
pub fn current_thread_affinity() -> io::Result<Vec<usize>> {
    let mut words = size_of::<libc::cpu_set_t>() / size_of::<libc::c_ulong>();
    loop {
        let mut mask = vec![0 as libc::c_ulong; words];
        // SAFETY: as above; the kernel writes at most the size we pass.
        let rc = unsafe {
            libc::sched_getaffinity(
                0,
                words * size_of::<libc::c_ulong>(),
                mask.as_mut_ptr().cast::<libc::cpu_set_t>(),
            )
        };
        if rc == 0 {
            return Ok((0..words * WORD_BITS)
                .filter(|&c| mask[c / WORD_BITS] & (1 << (c % WORD_BITS)) != 0)
                .collect());
        }
        let err = io::Error::last_os_error();
        // EINVAL: the kernel's cpumask is wider than our buffer.
        if err.raw_os_error() != Some(libc::EINVAL) || words * WORD_BITS >= MAX_CPU {
            return Err(err);
        }
        words *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_reads_back_on_a_fresh_thread() {
        let allowed = current_thread_affinity().unwrap();
        assert!(!allowed.is_empty());
        let last = *allowed.last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(&[last]).unwrap();
            assert_eq!(current_thread_affinity().unwrap(), vec![last]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn refuses_impossible_masks() {
        std::thread::spawn(|| {
            let before = current_thread_affinity().unwrap();
            for bad in [&[][..], &[MAX_CPU], &[MAX_CPU - 1]] {
                let e = pin_current_thread(bad).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
            }
            assert_eq!(current_thread_affinity().unwrap(), before, "a failed pin changes nothing");
        })
        .join()
        .unwrap();
    }
}
