//! The byte ranges of one open object known to have their blocks, so a
//! write into them can skip the `fallocate` that reserves space before any
//! byte is written: an overwrite of allocated blocks cannot run out of
//! space. On tmpfs a 1 MiB `fallocate` over pages that already exist costs
//! a fifth of the write itself.
//!
//! What is recorded is only ever a subset of what is allocated: a range is
//! added after a reservation succeeded, and removed before (or as) punch,
//! truncate or an undone reservation frees it. Forgetting is always safe
//! (the next write reserves again), so the set is bounded by dropping its
//! shortest ranges.

/// Ranges kept at most; a striped sequential writer needs one or two, a
/// few out-of-order RPCs a handful more.
const MAX_RANGES: usize = 32;

/// Disjoint, non-adjacent `[start, end)` ranges in ascending order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Allocated {
    ranges: Vec<(u64, u64)>,
}

impl Allocated {
    /// Whether every byte of `[start, end)` is known allocated.
    pub(crate) fn covers(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        // The first range ending after `start` is the only one that can hold it.
        let i = self.ranges.partition_point(|&(_, e)| e <= start);
        self.ranges.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
    }

    /// Records `[start, end)` as allocated, merging with its neighbours.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Ranges touching or overlapping [start, end) are merged into it.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let last = self.ranges.partition_point(|&(s, _)| s <= end);
        let (mut s, mut e) = (start, end);
        if first < last {
            s = s.min(self.ranges[first].0);
            e = e.max(self.ranges[last - 1].1);
        }
        self.ranges.splice(first..last, std::iter::once((s, e)));
        while self.ranges.len() > MAX_RANGES {
            let shortest = (0..self.ranges.len())
                .min_by_key(|&i| self.ranges[i].1 - self.ranges[i].0)
                .expect("more than MAX_RANGES ranges");
            self.ranges.remove(shortest);
        }
    }

    /// Forgets `[start, end)`: its blocks are being freed.
    pub(crate) fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if e <= start || end <= s {
                kept.push((s, e));
                continue;
            }
            if s < start {
                kept.push((s, start));
            }
            if end < e {
                kept.push((end, e));
            }
        }
        self.ranges = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_out_of_order_pieces() {
        let mut a = Allocated::default();
        a.insert(2, 3);
        a.insert(0, 1);
        assert!(!a.covers(0, 3));
        a.insert(1, 2);
        assert_eq!(a.ranges, vec![(0, 3)]);
        assert!(a.covers(0, 3) && a.covers(1, 2) && !a.covers(2, 4));
    }

    #[test]
    fn punch_splits() {
        let mut a = Allocated::default();
        a.insert(0, 100);
        a.remove(40, 60);
        assert_eq!(a.ranges, vec![(0, 40), (60, 100)]);
        assert!(!a.covers(30, 50) && a.covers(0, 40) && a.covers(60, 100));
        a.remove(10, u64::MAX);
        assert_eq!(a.ranges, vec![(0, 10)]);
    }

    #[test]
    fn bounded() {
        let mut a = Allocated::default();
        for i in 0..1000u64 {
            a.insert(i * 10, i * 10 + 1 + i % 3);
        }
        assert!(a.ranges.len() <= MAX_RANGES);
    }

    proptest! {
        /// Against a byte map: a byte is claimed exactly when it was
        /// inserted and not removed since. Fewer than MAX_RANGES operations
        /// (each adds at most one range), so nothing is forgotten.
        #[test]
        fn matches_a_byte_map(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..60), 0..MAX_RANGES)) {
            let mut a = Allocated::default();
            let mut model = vec![false; 260];
            for (add, start, len) in ops {
                let end = start + len;
                if add {
                    a.insert(start, end);
                    model[start as usize..end as usize].fill(true);
                } else {
                    a.remove(start, end);
                    model[start as usize..end as usize].fill(false);
                }
                for w in a.ranges.windows(2) {
                    prop_assert!(w[0].1 < w[1].0, "ranges out of order or touching: {:?}", a.ranges);
                }
                for s in 0..250u64 {
                    for l in [1u64, 7] {
                        let want = model[s as usize..(s + l) as usize].iter().all(|b| *b);
                        prop_assert_eq!(a.covers(s, s + l), want, "[{}, {}) in {:?}", s, s + l, a.ranges);
                    }
                }
            }
        }
    }
}
