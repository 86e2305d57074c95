//! End-to-end integrity of bulk data. Every bulk carries a crc32c computed
//! where the bytes start and checked where they land; a transfer whose
//! bytes and checksum disagree is sent again a few times, counted here, and
//! never written (the OST refuses it) nor handed to the caller.
//!
//! It also holds the fault injection that proves this, in the manner of
//! Lustre's `fail_loc` (`OBD_FAIL_OSC_CHECKSUM_SEND` / `_RECEIVE`): it is
//! compiled in always, costs one relaxed atomic load per bulk RPC, and does
//! nothing until a test (or an operator chasing a bug) arms it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Checksum mismatches a client saw, and the damage it was asked to do.
#[derive(Debug, Default)]
pub struct Integrity {
    damage_writes: AtomicU32,
    damage_reads: AtomicU32,
    write_mismatches: AtomicU64,
    read_mismatches: AtomicU64,
}

/// Takes one from `n` unless it is zero; whether it took one.
fn take(n: &AtomicU32) -> bool {
    // The common case (nothing armed) is a plain load.
    n.load(Ordering::Relaxed) > 0
        && n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1)).is_ok()
}

impl Integrity {
    /// Damages the next `n` write transfers this client sends: the OST
    /// receives the data with one bit flipped (the client's own copy stays
    /// intact, as when a bulk is damaged on the wire), beside the checksum
    /// of the right data.
    pub fn damage_writes(&self, n: u32) {
        self.damage_writes.store(n, Ordering::Release);
    }

    /// Damages the next `n` read transfers this client receives: one bit of
    /// what arrived is flipped before the checksum is checked.
    pub fn damage_reads(&self, n: u32) {
        self.damage_reads.store(n, Ordering::Release);
    }

    /// Write transfers an OST refused because data and checksum disagreed.
    pub fn write_mismatches(&self) -> u64 {
        self.write_mismatches.load(Ordering::Relaxed)
    }

    /// Read transfers whose data did not match the OST's checksum.
    pub fn read_mismatches(&self) -> u64 {
        self.read_mismatches.load(Ordering::Relaxed)
    }

    pub(crate) fn take_write_damage(&self) -> bool {
        take(&self.damage_writes)
    }

    pub(crate) fn take_read_damage(&self) -> bool {
        take(&self.damage_reads)
    }

    pub(crate) fn write_refused(&self) {
        self.write_mismatches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read_mismatch(&self) {
        self.read_mismatches.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_taken_exactly_as_often_as_armed() {
        let i = Integrity::default();
        assert!(!i.take_write_damage());
        i.damage_writes(2);
        assert!(i.take_write_damage());
        assert!(i.take_write_damage());
        assert!(!i.take_write_damage());
        assert!(!i.take_read_damage(), "arming writes does not arm reads");
        i.damage_reads(1);
        assert!(i.take_read_damage());
        assert!(!i.take_read_damage());
    }
}
