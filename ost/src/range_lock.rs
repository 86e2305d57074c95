//! A byte-range lock for one object, so that requests on overlapping ranges
//! run in the order they arrived (POSIX ordering: a read sees all of an
//! earlier write or none of it, two overlapping writes never interleave)
//! while requests on disjoint ranges, and reads on overlapping ones, run in
//! parallel.
//!
//! A request waits for every *earlier* conflicting request, granted or
//! still waiting; that keeps overlapping requests first come, first served
//! (a stream of readers cannot starve a writer) and cannot deadlock, since
//! a request only ever waits for older ones.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Whether a holder only reads the range or changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

#[derive(Debug)]
struct Request {
    ticket: u64,
    start: u64,
    end: u64,
    mode: Mode,
}

impl Request {
    fn conflicts(&self, other: &Request) -> bool {
        let overlap = self.start < self.end
            && other.start < other.end
            && self.start < other.end
            && other.start < self.end;
        overlap && (self.mode == Mode::Exclusive || other.mode == Mode::Exclusive)
    }
}

#[derive(Debug, Default)]
struct State {
    next_ticket: u64,
    /// Granted and waiting requests, oldest first.
    queue: VecDeque<Request>,
}

/// Range lock over the byte offsets of one object.
#[derive(Debug, Default)]
pub struct RangeLock {
    state: Mutex<State>,
    released: Condvar,
}

/// Holds `[start, end)` until dropped.
#[must_use = "the range is unlocked when the guard is dropped"]
pub struct RangeGuard<'a> {
    lock: &'a RangeLock,
    ticket: u64,
}

impl RangeLock {
    pub fn new() -> RangeLock {
        RangeLock::default()
    }

    /// Waits until `[start, end)` may be used in `mode`, then holds it.
    /// An empty range conflicts with nothing.
    pub fn lock(&self, start: u64, end: u64, mode: Mode) -> RangeGuard<'_> {
        let mut st = self.state();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back(Request { ticket, start, end, mode });
        while Self::blocked(&st, ticket) {
            st = self.released.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        RangeGuard { lock: self, ticket }
    }

    fn blocked(st: &State, ticket: u64) -> bool {
        let Some(me) = st.queue.iter().position(|r| r.ticket == ticket) else {
            return false;
        };
        let mine = &st.queue[me];
        st.queue.iter().take(me).any(|older| older.conflicts(mine))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a plain queue; a panic elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, ticket: u64) {
        let mut st = self.state();
        if let Some(i) = st.queue.iter().position(|r| r.ticket == ticket) {
            st.queue.remove(i);
        }
        drop(st);
        self.released.notify_all();
    }
}

impl Drop for RangeGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    #[test]
    fn disjoint_and_shared_ranges_do_not_block() {
        let l = RangeLock::new();
        let _a = l.lock(0, 10, Mode::Exclusive);
        let _b = l.lock(10, 20, Mode::Exclusive);
        let _c = l.lock(30, 40, Mode::Shared);
        let _d = l.lock(35, 45, Mode::Shared);
        let _e = l.lock(5, 5, Mode::Exclusive);
    }

    #[test]
    fn overlapping_writer_waits_for_holder() {
        let l = Arc::new(RangeLock::new());
        let g = l.lock(0, 100, Mode::Shared);
        let got = Arc::new(AtomicBool::new(false));
        let t = {
            let (l, got) = (l.clone(), got.clone());
            std::thread::spawn(move || {
                let _g = l.lock(50, 150, Mode::Exclusive);
                got.store(true, Ordering::SeqCst);
            })
        };
        // However long we wait, the writer must not get in while we hold the range.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!got.load(Ordering::SeqCst));
        drop(g);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
    }

    #[test]
    fn overlapping_exclusive_sections_never_interleave() {
        // A non-atomic read-modify-write of a shared counter, protected only by
        // overlapping ranges: a lost update means two holders were inside at once.
        let l = Arc::new(RangeLock::new());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|i| {
                let (l, counter) = (l.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let _g = l.lock(i, 100 + i, Mode::Exclusive);
                        let v = counter.load(Ordering::Relaxed);
                        std::thread::yield_now();
                        counter.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 8 * 2000);
    }
}
