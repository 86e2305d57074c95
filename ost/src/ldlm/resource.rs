//! The locks on one object and the rules between them, without any I/O:
//! which held locks a request conflicts with, and how wide a grant may
//! grow. [`super::Namespace`] does the waiting and the callbacks.

use fabric::ProcessId;
use proto::{LockExtent, LockHandle, LockMode};

/// Who holds a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A client that enqueued it, known by its process id.
    Client(ProcessId),
    /// The OST itself, for the length of one write, punch or truncate that
    /// came without a lock (Lustre's server-side locking). It is never
    /// called back: it goes when the I/O ends. `for_client` is the client
    /// the I/O came from, whose own locks it leaves alone.
    Io { for_client: ProcessId },
}

impl Owner {
    /// Whether two owners' locks may conflict: a client never conflicts
    /// with itself, and server I/O locks never conflict with each other
    /// (the object store orders overlapping I/O itself).
    fn may_conflict(&self, other: &Owner) -> bool {
        match (self, other) {
            (Owner::Client(a), Owner::Client(b)) => a != b,
            (Owner::Io { .. }, Owner::Io { .. }) => false,
            (Owner::Io { for_client }, Owner::Client(c)) | (Owner::Client(c), Owner::Io { for_client }) => {
                // The I/O's own client keeps its locks through its I/O
                // (it updates its own cache), but a lock it asks for while
                // its I/O runs waits, so no read overtakes the write.
                !(matches!(self, Owner::Io { .. }) && for_client == c)
            }
        }
    }
}

/// One lock on the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    pub handle: LockHandle,
    pub owner: Owner,
    pub mode: LockMode,
    pub extent: LockExtent,
    /// What the holder asked for (`extent` is what it was granted, often
    /// grown): where it works. A request that calls this lock back grows
    /// its own grant no further than this (see [`Resource::grow`]).
    pub want: LockExtent,
    /// A blocking callback is on its way to the holder; whoever needs the
    /// range waits for it instead of sending another.
    pub cancelling: bool,
}

impl Lock {
    /// Whether this held lock stands in the way of `mode` on `extent` for
    /// `owner`.
    pub fn conflicts(&self, owner: &Owner, mode: LockMode, extent: &LockExtent) -> bool {
        self.extent.overlaps(extent) && self.stands_against(owner, mode)
    }

    /// Whether this lock and one of `mode` for `owner` may not overlap.
    fn stands_against(&self, owner: &Owner, mode: LockMode) -> bool {
        owner.may_conflict(&self.owner) && !mode.compatible(self.mode)
    }
}

/// The locks on one object.
#[derive(Debug, Default)]
pub struct Resource {
    pub locks: Vec<Lock>,
}

impl Resource {
    /// The held locks `mode` on `extent` for `owner` conflicts with.
    pub fn conflicting<'a>(
        &'a self,
        owner: &'a Owner,
        mode: LockMode,
        extent: &'a LockExtent,
    ) -> impl Iterator<Item = &'a Lock> + 'a {
        self.locks.iter().filter(move |l| l.conflicts(owner, mode, extent))
    }

    /// The widest extent containing `want` that overlaps no lock `mode`
    /// conflicts with, as Lustre grows a granted extent: usually the whole
    /// object, else up to the nearest conflicting lock on each side, and
    /// short of the ranges that the holders of locks this request called
    /// back had asked for (`avoid`). Without that, two clients writing
    /// different parts of one object (IOR's shared file) would each be
    /// granted the whole object and call the other's lock back at every
    /// write; with it, the second conflict leaves each a lock over its own
    /// part. A range in `avoid` that overlaps `want` (both want the same
    /// bytes) limits nothing. `want` itself must conflict with nothing.
    pub fn grow(&self, owner: &Owner, mode: LockMode, want: LockExtent, avoid: &[LockExtent]) -> LockExtent {
        let held = self.locks.iter().filter(|l| l.stands_against(owner, mode)).map(|l| l.extent);
        let mut grown = LockExtent::WHOLE;
        for e in held.chain(avoid.iter().copied()) {
            if e.end < want.start {
                grown.start = grown.start.max(e.end + 1);
            } else if e.start > want.end {
                grown.end = grown.end.min(e.start - 1);
            }
        }
        grown
    }

    pub fn remove(&mut self, handle: LockHandle) -> Option<Lock> {
        let i = self.locks.iter().position(|l| l.handle == handle)?;
        Some(self.locks.swap_remove(i))
    }

    /// Client locks (server I/O locks are not counted).
    pub fn client_locks(&self) -> usize {
        self.locks.iter().filter(|l| matches!(l.owner, Owner::Client(_))).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client(pid: u32) -> Owner {
        Owner::Client(ProcessId { nid: "10.0.0.1@tcp".parse().unwrap(), pid })
    }

    fn ext(start: u64, end: u64) -> LockExtent {
        LockExtent::new(start, end).unwrap()
    }

    fn lock(h: u64, owner: Owner, mode: LockMode, extent: LockExtent) -> Lock {
        Lock { handle: LockHandle(h), owner, mode, extent, want: extent, cancelling: false }
    }

    #[test]
    fn readers_share_and_writers_exclude_other_clients() {
        let mut r = Resource::default();
        r.locks.push(lock(1, client(1), LockMode::PR, LockExtent::WHOLE));
        assert_eq!(r.conflicting(&client(2), LockMode::PR, &ext(0, 9)).count(), 0);
        assert_eq!(r.conflicting(&client(2), LockMode::PW, &ext(0, 9)).count(), 1);
        // A client's own locks never stand in its way.
        assert_eq!(r.conflicting(&client(1), LockMode::PW, &ext(0, 9)).count(), 0);
    }

    #[test]
    fn server_io_revokes_other_clients_only_and_holds_off_new_locks() {
        let mut r = Resource::default();
        r.locks.push(lock(1, client(1), LockMode::PR, ext(0, 99)));
        r.locks.push(lock(2, client(2), LockMode::PR, ext(0, 99)));
        let io = Owner::Io { for_client: client_pid(1) };
        let hit: Vec<_> = r.conflicting(&io, LockMode::PW, &ext(10, 19)).map(|l| l.handle).collect();
        assert_eq!(hit, vec![LockHandle(2)]);
        r.locks.push(lock(3, io, LockMode::PW, ext(10, 19)));
        // While the I/O runs, a lock over its range waits, its client's too.
        assert_eq!(r.conflicting(&client(1), LockMode::PR, &ext(15, 15)).count(), 1);
        assert_eq!(r.conflicting(&client(3), LockMode::PR, &ext(15, 15)).count(), 1);
        // Other I/O goes on beside it.
        let io2 = Owner::Io { for_client: client_pid(3) };
        assert_eq!(
            r.conflicting(&io2, LockMode::PW, &ext(15, 15)).filter(|l| l.handle == LockHandle(3)).count(),
            0
        );
    }

    fn client_pid(pid: u32) -> ProcessId {
        ProcessId { nid: "10.0.0.1@tcp".parse().unwrap(), pid }
    }

    #[test]
    fn a_lone_grant_grows_to_the_whole_object() {
        let r = Resource::default();
        assert_eq!(r.grow(&client(1), LockMode::PR, ext(4096, 8191), &[]), LockExtent::WHOLE);
    }

    #[test]
    fn a_grant_grows_up_to_its_conflicting_neighbours() {
        let mut r = Resource::default();
        r.locks.push(lock(1, client(2), LockMode::PW, ext(0, 999)));
        r.locks.push(lock(2, client(2), LockMode::PW, ext(5000, 5999)));
        r.locks.push(lock(3, client(3), LockMode::PR, ext(0, u64::MAX)));
        assert_eq!(r.grow(&client(1), LockMode::PR, ext(2000, 2999), &[]), ext(1000, 4999));
        // A writer must also stay clear of the other client's reader.
        let pw = r.grow(&client(1), LockMode::PW, ext(2000, 2999), &[]);
        assert!(pw.contains(&ext(2000, 2999)));
    }

    #[test]
    fn a_grant_stops_short_of_where_the_holders_it_called_back_work() {
        let r = Resource::default();
        let (a_works, b_wants) = (ext(0, 65535), ext(1 << 28, (1 << 28) + 65535));
        // B called back A's whole-object lock; A had asked for its first 64 KiB.
        let b = r.grow(&client(2), LockMode::PW, b_wants, &[a_works]);
        assert_eq!(b, LockExtent::from(65536));
        // Both asking for the same bytes: nothing to stop short of.
        assert_eq!(r.grow(&client(2), LockMode::PW, a_works, &[ext(4096, 8191)]), LockExtent::WHOLE);
    }

    fn mode() -> impl Strategy<Value = LockMode> {
        prop_oneof![Just(LockMode::PR), Just(LockMode::PW)]
    }

    fn extent() -> impl Strategy<Value = LockExtent> {
        (0u64..64, 0u64..64, any::<bool>()).prop_map(|(a, b, eof)| {
            let (s, e) = (a.min(b), a.max(b));
            LockExtent { start: s, end: if eof && e > 48 { u64::MAX } else { e } }
        })
    }

    proptest! {
        /// Grants made the way the namespace makes them (conflicting locks
        /// called back and gone first, then the extent grown) never leave
        /// two conflicting locks of different clients at once, and every
        /// grant covers what was asked.
        #[test]
        fn granted_locks_never_conflict(reqs in proptest::collection::vec((0u32..4, mode(), extent(), any::<bool>()), 1..40)) {
            let mut r = Resource::default();
            for (h, (pid, mode, want, cancel_one)) in reqs.into_iter().enumerate() {
                let owner = client(pid);
                let in_way: Vec<Lock> = r.conflicting(&owner, mode, &want).cloned().collect();
                for l in &in_way {
                    r.remove(l.handle);
                }
                prop_assert_eq!(r.conflicting(&owner, mode, &want).count(), 0);
                let avoid: Vec<LockExtent> = in_way.iter().map(|l| l.want).collect();
                let grown = r.grow(&owner, mode, want, &avoid);
                prop_assert!(grown.contains(&want));
                r.locks.push(Lock { want, ..lock(h as u64 + 1, owner, mode, grown) });
                if cancel_one && r.locks.len() > 2 {
                    r.locks.remove(0);
                }
                for a in &r.locks {
                    for b in &r.locks {
                        if a.handle != b.handle {
                            prop_assert!(!a.conflicts(&b.owner, b.mode, &b.extent),
                                "{:?} and {:?} are both granted", a, b);
                        }
                    }
                }
            }
        }
    }
}
