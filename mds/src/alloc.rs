//! Choosing OST objects for a new file's stripes.
//!
//! Each OST precreates objects in batches (the caller asks it to and hands
//! the reply to `add_precreated`), so a create takes object ids from memory
//! and never waits for an OST. The first stripe goes to the OST picked by a
//! smooth weighted round-robin over free space: with balanced OSTs that is
//! plain round-robin, with unbalanced ones each OST gets new stripes in
//! proportion to its free bytes. An explicit stripe offset starts at that
//! OST and takes the following ones in index order.

use crate::error::{MdsError, refuse};
use fabric::Errno;
use proto::{Fid, StripeObject};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// How many precreated objects the MDS keeps per OST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolTunables {
    /// Below this many objects the OST's pool wants a refill.
    pub low_water: u32,
    /// A refill asks for enough objects to get back to this many.
    pub refill_target: u32,
    /// OSTs whose free space differs by less than this percentage of the
    /// largest are treated as equal (plain round-robin), as Lustre's
    /// `qos_threshold_rr`.
    pub balance_threshold_pct: u32,
}

impl Default for PoolTunables {
    fn default() -> PoolTunables {
        // Lustre precreates in batches of 32 growing to 20000; a pool of a
        // few thousand covers a burst of creates between refills.
        PoolTunables { low_water: 256, refill_target: 4096, balance_threshold_pct: 17 }
    }
}

#[derive(Clone, Copy, Debug)]
struct IdRange {
    seq: u64,
    next: u64,
    end: u64,
}

#[derive(Default, Debug)]
struct OstPool {
    ranges: VecDeque<IdRange>,
    available: u64,
    /// (bytes free, bytes total), once the OST has reported.
    space: Option<(u64, u64)>,
    /// Smooth weighted round-robin credit.
    credit: i128,
}

#[derive(Default, Debug)]
struct Pools {
    osts: BTreeMap<u32, OstPool>,
    /// The highest object id ever handed out per (OST, seq): precreated ids
    /// at or below it are refused, so an id is never in two layouts.
    highest: HashMap<(u32, u64), u32>,
    /// The highest object id known to exist per (OST, seq): used, pooled,
    /// or left by an orphan cleanup. The next precreate starts above it.
    created: HashMap<(u32, u64), u32>,
    tunables: PoolTunables,
}

/// The precreated objects of every OST and the policy that hands them out.
#[derive(Debug, Default)]
pub struct ObjectPools {
    inner: Mutex<Pools>,
}

impl ObjectPools {
    pub fn new(tunables: PoolTunables) -> ObjectPools {
        ObjectPools { inner: Mutex::new(Pools { tunables, ..Pools::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pools> {
        // The pools hold no invariant a panic elsewhere could break halfway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn tunables(&self) -> PoolTunables {
        self.lock().tunables
    }

    pub fn set_tunables(&self, t: PoolTunables) {
        self.lock().tunables = t;
    }

    /// Makes OST `ost_idx` known (with no objects yet).
    pub fn add_ost(&self, ost_idx: u32) {
        self.lock().osts.entry(ost_idx).or_default();
    }

    /// Adds `count` objects `[first_oid, first_oid + count)` in `seq` that
    /// OST `ost_idx` has precreated. Ids already handed out are skipped.
    /// Returns how many were added.
    pub fn add_precreated(
        &self,
        ost_idx: u32,
        seq: u64,
        first_oid: u32,
        count: u32,
    ) -> Result<u32, MdsError> {
        let end = first_oid as u64 + count as u64;
        if end > u32::MAX as u64 + 1 {
            return refuse(Errno::EINVAL);
        }
        let mut p = self.lock();
        let start = match p.highest.get(&(ost_idx, seq)) {
            Some(&h) => (first_oid as u64).max(h as u64 + 1),
            None => first_oid as u64,
        };
        let pool = p.osts.entry(ost_idx).or_default();
        if start >= end {
            return Ok(0);
        }
        // Overlap with ids already pooled would hand one object out twice.
        if pool.ranges.iter().any(|r| r.seq == seq && r.next < end && start < r.end) {
            return refuse(Errno::EEXIST);
        }
        pool.ranges.push_back(IdRange { seq, next: start, end });
        pool.available += end - start;
        let c = p.created.entry((ost_idx, seq)).or_insert(0);
        *c = (*c).max((end - 1) as u32);
        Ok((end - start) as u32)
    }

    /// Records that OST `ost_idx` holds objects of `seq` up to `last_id`
    /// and none above (what it answers after destroying orphans).
    pub fn set_created(&self, ost_idx: u32, seq: u64, last_id: u32) {
        let mut p = self.lock();
        let c = p.created.entry((ost_idx, seq)).or_insert(0);
        *c = (*c).max(last_id);
    }

    /// The first id the next precreate on OST `ost_idx` asks for: above
    /// every id used, pooled, or known to exist. Asking from there (rather
    /// than from the OST's LAST_ID) takes in objects of a precreate whose
    /// reply was lost, as the OST skips objects that already exist.
    pub fn next_precreate(&self, ost_idx: u32, seq: u64) -> Option<u32> {
        let p = self.lock();
        let used = p.highest.get(&(ost_idx, seq)).copied().unwrap_or(0);
        let created = p.created.get(&(ost_idx, seq)).copied().unwrap_or(0);
        used.max(created).checked_add(1)
    }

    /// Records an OST's free and total space, which weights the choice.
    pub fn set_ost_space(&self, ost_idx: u32, bytes_free: u64, bytes_total: u64) {
        self.lock().osts.entry(ost_idx).or_default().space = Some((bytes_free, bytes_total));
    }

    /// Objects left in OST `ost_idx`'s pool.
    pub fn available(&self, ost_idx: u32) -> u64 {
        self.lock().osts.get(&ost_idx).map_or(0, |o| o.available)
    }

    /// Whether OST `ost_idx`'s pool is below its low-water mark and should
    /// be refilled.
    pub fn low_water(&self, ost_idx: u32) -> bool {
        let p = self.lock();
        p.osts.get(&ost_idx).is_some_and(|o| o.available < p.tunables.low_water as u64)
    }

    /// Every OST below its low-water mark, with how many objects to ask it
    /// to precreate.
    pub fn refill_wanted(&self) -> Vec<(u32, u32)> {
        let p = self.lock();
        let t = p.tunables;
        p.osts
            .iter()
            .filter(|(_, o)| o.available < t.low_water as u64)
            .map(|(&i, o)| (i, (t.refill_target as u64).saturating_sub(o.available) as u32))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// The OSTs known, in index order.
    pub fn osts(&self) -> Vec<u32> {
        self.lock().osts.keys().copied().collect()
    }

    /// Notes that an object id was used by a stored layout (at MDT open).
    pub(crate) fn note_used(&self, ost_idx: u32, seq: u64, oid: u32) {
        let mut p = self.lock();
        let h = p.highest.entry((ost_idx, seq)).or_insert(oid);
        *h = (*h).max(oid);
    }

    /// Returns objects of creates that were not committed. They go back to
    /// the front in the order they were taken, so each pool stays in
    /// ascending id order: every id still pooled is then above every id a
    /// committed layout took, which is what lets the MDS call everything
    /// above the highest used id an orphan after a restart.
    pub(crate) fn put_back(&self, objects: &[StripeObject]) {
        let mut p = self.lock();
        for o in objects.iter().rev() {
            let pool = p.osts.entry(o.ost_idx).or_default();
            let oid = o.fid.oid as u64;
            pool.ranges.push_front(IdRange { seq: o.fid.seq, next: oid, end: oid + 1 });
            pool.available += 1;
        }
    }

    /// Picks objects for a file of `stripe_count` stripes (`-1`: every OST;
    /// more than there are OSTs: one per OST), starting at `stripe_offset`
    /// when given. OSTs with no object left or no free space are skipped;
    /// with none usable the answer is ENOSPC (see `refill_wanted`).
    pub fn allocate(
        &self,
        stripe_count: i32,
        stripe_offset: Option<u32>,
    ) -> Result<Vec<StripeObject>, MdsError> {
        let mut p = self.lock();
        let n = p.osts.len();
        if let Some(off) = stripe_offset
            && !p.osts.contains_key(&off)
        {
            return refuse(Errno::EINVAL);
        }
        let want = if stripe_count < 0 { n } else { (stripe_count as usize).min(n) };
        let usable = |o: &OstPool| o.available > 0 && o.space.is_none_or(|(free, _)| free > 0);
        let chosen: Vec<u32> = match stripe_offset {
            Some(off) => {
                let ring = p.osts.range(off..).chain(p.osts.range(..off));
                ring.filter(|(_, o)| usable(o)).map(|(&i, _)| i).take(want).collect()
            }
            None => {
                let weights = weights(&p.osts, p.tunables.balance_threshold_pct);
                let mut chosen = Vec::with_capacity(want);
                while chosen.len() < want {
                    let eligible: Vec<u32> = p
                        .osts
                        .iter()
                        .filter(|(i, o)| usable(o) && !chosen.contains(*i))
                        .map(|(&i, _)| i)
                        .collect();
                    if eligible.is_empty() {
                        break;
                    }
                    let total: i128 = eligible.iter().map(|i| weights[i]).sum();
                    let mut best: Option<(u32, i128)> = None;
                    for &i in &eligible {
                        let o = p.osts.get_mut(&i).expect("eligible OSTs are in the map");
                        o.credit += weights[&i];
                        if best.is_none_or(|(_, c)| o.credit > c) {
                            best = Some((i, o.credit));
                        }
                    }
                    let (pick, _) = best.expect("eligible is not empty");
                    p.osts.get_mut(&pick).expect("picked from the map").credit -= total;
                    chosen.push(pick);
                }
                chosen
            }
        };
        if chosen.is_empty() {
            return refuse(Errno::ENOSPC);
        }
        let mut objects = Vec::with_capacity(chosen.len());
        for i in chosen {
            let pool = p.osts.get_mut(&i).expect("chosen OSTs are in the map");
            let r = pool.ranges.front_mut().expect("a usable pool has a range");
            let (seq, oid) = (r.seq, r.next as u32);
            r.next += 1;
            if r.next == r.end {
                pool.ranges.pop_front();
            }
            pool.available -= 1;
            let h = p.highest.entry((i, seq)).or_insert(oid);
            *h = (*h).max(oid);
            objects.push(StripeObject { ost_idx: i, fid: Fid::new(seq, oid) });
        }
        Ok(objects)
    }
}

/// Each OST's weight: its free bytes, or equal weights when the OSTs are
/// balanced within `threshold_pct` (or none has reported its space).
fn weights(osts: &BTreeMap<u32, OstPool>, threshold_pct: u32) -> HashMap<u32, i128> {
    let known: Vec<u64> = osts.values().filter_map(|o| o.space.map(|(f, _)| f)).collect();
    let max = known.iter().copied().max().unwrap_or(0);
    let min = known.iter().copied().min().unwrap_or(0);
    let balanced = known.is_empty() || (max - min) as u128 * 100 <= max as u128 * threshold_pct as u128;
    let mean = if known.is_empty() {
        1
    } else {
        (known.iter().map(|&f| f as u128).sum::<u128>() / known.len() as u128) as i128
    };
    osts.iter()
        .map(|(&i, o)| {
            let w = match (balanced, o.space) {
                (true, _) => 1,
                (false, Some((free, _))) => free as i128,
                (false, None) => mean,
            };
            (i, w.max(1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools(osts: u32, each: u32) -> ObjectPools {
        let p = ObjectPools::new(PoolTunables::default());
        for i in 0..osts {
            p.add_precreated(i, Fid::ost_seq(i), 1, each).unwrap();
        }
        p
    }

    fn osts_of(v: &[StripeObject]) -> Vec<u32> {
        v.iter().map(|o| o.ost_idx).collect()
    }

    #[test]
    fn balanced_osts_take_turns() {
        let p = pools(4, 100);
        let firsts: Vec<u32> = (0..8).map(|_| p.allocate(1, None).unwrap()[0].ost_idx).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        // Objects come out of each pool in order.
        let o = p.allocate(1, None).unwrap()[0];
        assert_eq!(o.fid, Fid::new(Fid::ost_seq(0), 3));
    }

    #[test]
    fn multi_stripe_files_use_distinct_osts_evenly() {
        let p = pools(4, 100);
        let mut per_ost = [0u32; 4];
        for _ in 0..40 {
            let v = osts_of(&p.allocate(2, None).unwrap());
            assert_eq!(v.len(), 2);
            assert_ne!(v[0], v[1]);
            for i in v {
                per_ost[i as usize] += 1;
            }
        }
        assert_eq!(per_ost, [20, 20, 20, 20]);
    }

    #[test]
    fn offset_starts_there_and_wraps() {
        let p = pools(4, 10);
        assert_eq!(osts_of(&p.allocate(3, Some(2)).unwrap()), vec![2, 3, 0]);
        assert_eq!(p.allocate(1, Some(9)).unwrap_err().errno(), Errno::EINVAL);
    }

    #[test]
    fn minus_one_and_oversized_counts_cover_every_ost() {
        let p = pools(3, 10);
        let mut all = osts_of(&p.allocate(-1, None).unwrap());
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        assert_eq!(p.allocate(50, None).unwrap().len(), 3);
    }

    #[test]
    fn empty_pools_are_skipped_then_enospc() {
        let p = pools(3, 1);
        p.allocate(1, Some(1)).unwrap();
        assert!(p.low_water(1));
        // OST 1 is empty: a full-width file gets the other two.
        assert_eq!(osts_of(&p.allocate(-1, None).unwrap()).len(), 2);
        assert_eq!(p.allocate(1, None).unwrap_err().errno(), Errno::ENOSPC);
        let want = p.refill_wanted();
        assert_eq!(want, vec![(0, 4096), (1, 4096), (2, 4096)]);
        p.add_precreated(1, Fid::ost_seq(1), 2, 5).unwrap();
        assert_eq!(osts_of(&p.allocate(1, None).unwrap()), vec![1]);
    }

    #[test]
    fn full_osts_are_skipped() {
        let p = pools(2, 10);
        p.set_ost_space(0, 0, 100);
        p.set_ost_space(1, 100, 100);
        for _ in 0..4 {
            assert_eq!(osts_of(&p.allocate(1, None).unwrap()), vec![1]);
        }
    }

    #[test]
    fn free_space_weights_the_choice() {
        let p = pools(2, 1000);
        p.set_ost_space(0, 300 << 30, 400 << 30);
        p.set_ost_space(1, 100 << 30, 400 << 30);
        let mut per_ost = [0u32; 2];
        for _ in 0..400 {
            per_ost[p.allocate(1, None).unwrap()[0].ost_idx as usize] += 1;
        }
        assert_eq!(per_ost, [300, 100]);
        // Within the balance threshold the OSTs are treated as equal.
        p.set_ost_space(0, 105 << 30, 400 << 30);
        p.set_ost_space(1, 100 << 30, 400 << 30);
        let mut per_ost = [0u32; 2];
        for _ in 0..100 {
            per_ost[p.allocate(1, None).unwrap()[0].ost_idx as usize] += 1;
        }
        assert_eq!(per_ost, [50, 50]);
    }

    #[test]
    fn used_ids_are_never_handed_out_again() {
        let p = ObjectPools::new(PoolTunables::default());
        p.note_used(0, 7, 10);
        assert_eq!(p.add_precreated(0, 7, 5, 10).unwrap(), 4); // 11..15
        assert_eq!(p.allocate(1, None).unwrap()[0].fid, Fid::new(7, 11));
        assert_eq!(p.add_precreated(0, 7, 12, 2).unwrap_err().errno(), Errno::EEXIST);
        assert_eq!(p.add_precreated(0, 7, u32::MAX, 2).unwrap_err().errno(), Errno::EINVAL);
        let o = p.allocate(1, None).unwrap();
        p.put_back(&o);
        assert_eq!(p.allocate(1, None).unwrap(), o);
    }
}
