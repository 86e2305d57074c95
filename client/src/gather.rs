//! Gathering small sequential writes of one open file into RPC-size
//! extents, so `dd bs=4k` does not become 4 KiB OST RPCs.
//!
//! The buffer holds one contiguous extent that never crosses a multiple of
//! its capacity in the file, so every extent it hands out starts and ends
//! on an RPC boundary whenever the application writes sequentially, and
//! the striping code can send each as whole RPCs.

use crate::data_buf::{DataBuf, Recycler};
use proto::{Fid, Layout, LockHandle};
use std::sync::Arc;

/// The most one open file gathers before it writes.
const MAX_GATHER: u64 = 64 << 20;

/// How much one open file of `layout` gathers when `want` bytes are
/// asked for: at least one RPC per stripe so a full buffer keeps every
/// OST busy, at most 64 MiB, and always whole RPCs (0: no gathering).
pub(crate) fn gather_capacity(want: usize, rpc_size: usize, layout: Option<&Layout>) -> u64 {
    if want == 0 {
        return 0;
    }
    let rpc = rpc_size.max(1) as u64;
    let stripes = layout.and_then(Layout::raid0).map(|r| r.stripe_count()).unwrap_or(1).max(1) as u64;
    let want = (want as u64).max(rpc * stripes).min(MAX_GATHER.max(rpc));
    (want / rpc).max(1) * rpc
}

/// One extent that must now go to the OSTs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    pub off: u64,
    pub data: DataBuf,
}

/// A write-back buffer of one file handle.
/// Its bytes sit in a registered buffer when `bufs` gives one, so they
/// go out without another copy.
#[derive(Debug)]
pub(crate) struct Gather {
    cap: u64,
    start: u64,
    buf: Option<DataBuf>,
    bufs: Option<Arc<Recycler>>,
    /// The PW locks the bytes were gathered under, by object (the first
    /// noted since the buffer was last empty): the write RPCs name them.
    under: Vec<(Fid, LockHandle)>,
}

impl Gather {
    /// A buffer of `cap` bytes (a multiple of the RPC size; 0 turns
    /// gathering off, and every write goes straight through), taken from
    /// `bufs` when it starts to fill.
    pub fn new(cap: u64, bufs: Option<Arc<Recycler>>) -> Gather {
        Gather { cap, start: 0, buf: None, bufs, under: Vec::new() }
    }

    /// What was gathered under lock `old` of `fid` is now under `new` (the
    /// lock was replayed to a restarted OST).
    pub fn renote(&mut self, fid: Fid, old: LockHandle, new: LockHandle) {
        for (f, h) in &mut self.under {
            if *f == fid && *h == old {
                *h = new;
            }
        }
    }

    /// The locks noted for what is gathered, by object.
    pub fn noted_locks(&self) -> &[(Fid, LockHandle)] {
        &self.under
    }

    /// Notes that the next bytes of `fid` are gathered under `handle`.
    pub fn note_lock(&mut self, fid: Fid, handle: LockHandle) {
        if !self.under.iter().any(|(f, _)| *f == fid) {
            self.under.push((fid, handle));
        }
    }

    /// The locks of what was gathered, for the extents just taken out;
    /// forgotten once nothing is left gathered.
    pub fn locks_taken(&mut self) -> Arc<[(Fid, LockHandle)]> {
        let under = self.under.as_slice().into();
        if self.is_empty() {
            self.under.clear();
        }
        under
    }

    fn len(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn end(&self) -> u64 {
        self.start + self.len() as u64
    }

    /// The first multiple of the capacity after `off`: where an extent
    /// starting at `off` must stop.
    fn boundary(&self, off: u64) -> u64 {
        (off / self.cap).saturating_add(1).saturating_mul(self.cap)
    }

    /// Takes what is buffered, leaving the buffer empty.
    pub fn take(&mut self) -> Option<Extent> {
        let data = self.buf.take().filter(|b| !b.is_empty())?;
        Some(Extent { off: self.start, data })
    }

    /// Adds a write at `off`; returns the extents that must be written now,
    /// in order. Whatever is not returned stays buffered.
    pub fn add(&mut self, mut off: u64, mut data: &[u8]) -> Vec<Extent> {
        let mut out = Vec::new();
        if self.cap == 0 {
            if !data.is_empty() {
                out.push(Extent { off, data: data.to_vec().into() });
            }
            return out;
        }
        if !self.is_empty() && off != self.end() {
            out.extend(self.take());
        }
        while !data.is_empty() {
            if self.is_empty() {
                // Whole aligned capacity-size pieces need no gathering.
                if off.is_multiple_of(self.cap) && data.len() as u64 >= self.cap {
                    let n = (data.len() as u64 / self.cap * self.cap) as usize;
                    out.push(Extent { off, data: data[..n].to_vec().into() });
                    off += n as u64;
                    data = &data[n..];
                    continue;
                }
                self.start = off;
                if self.buf.is_none() {
                    self.buf = Some(DataBuf::with_capacity(self.cap as usize, self.bufs.as_ref()));
                }
            }
            let stop = self.boundary(self.start);
            let n = ((stop - self.end()) as usize).min(data.len());
            self.buf.as_mut().expect("a buffer to gather in").extend(&data[..n]);
            off += n as u64;
            data = &data[n..];
            if self.end() == stop {
                out.extend(self.take());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn small_sequential_writes_leave_as_whole_rpcs() {
        let mut g = Gather::new(MIB, None);
        let block = vec![7u8; 4096];
        let mut out = Vec::new();
        for i in 0..512u64 {
            out.extend(g.add(i * 4096, &block));
        }
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].off, out[0].data.len()), (0, MIB as usize));
        assert_eq!((out[1].off, out[1].data.len()), (MIB, MIB as usize));
        assert!(g.is_empty());
    }

    #[test]
    fn a_jump_flushes_what_was_gathered() {
        let mut g = Gather::new(MIB, None);
        assert!(g.add(0, b"abc").is_empty());
        let out = g.add(100, b"xyz");
        assert_eq!(out, vec![Extent { off: 0, data: b"abc".to_vec().into() }]);
        assert_eq!(g.take(), Some(Extent { off: 100, data: b"xyz".to_vec().into() }));
        assert_eq!(g.take(), None);
    }

    #[test]
    fn aligned_large_writes_pass_straight_through() {
        let mut g = Gather::new(MIB, None);
        let data = vec![1u8; (3 * MIB + 10) as usize];
        let out = g.add(2 * MIB, &data);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].off, out[0].data.len()), (2 * MIB, 3 * MIB as usize));
        assert_eq!(g.take().map(|e| (e.off, e.data.len())), Some((5 * MIB, 10)));
    }

    #[test]
    fn unaligned_writes_are_cut_at_the_boundary() {
        let mut g = Gather::new(MIB, None);
        let out = g.add(MIB - 3, b"abcdef");
        assert_eq!(out, vec![Extent { off: MIB - 3, data: b"abc".to_vec().into() }]);
        assert_eq!(g.take(), Some(Extent { off: MIB, data: b"def".to_vec().into() }));
    }

    #[test]
    fn zero_capacity_writes_through() {
        let mut g = Gather::new(0, None);
        assert_eq!(g.add(5, b"ab"), vec![Extent { off: 5, data: b"ab".to_vec().into() }]);
        assert!(g.add(9, b"").is_empty());
        assert!(g.is_empty());
    }

    proptest! {
        /// Replaying what the buffer hands out (then what it still holds)
        /// gives the same file as applying the writes directly, and no
        /// extent crosses a capacity boundary.
        #[test]
        fn replay_equals_direct_writes(
            cap_units in 0u64..4,
            writes in prop::collection::vec((0u64..20_000, 1usize..5_000, any::<u8>()), 1..40),
            sequential in any::<bool>(),
            registered in any::<bool>(),
        ) {
            let cap = cap_units * 4096;
            let mut g = Gather::new(cap, registered.then(|| Recycler::new(64 << 10)));
            let mut direct = vec![0u8; 220_000];
            let mut replay = vec![0u8; 220_000];
            let apply = |file: &mut Vec<u8>, e: &Extent| {
                file[e.off as usize..e.off as usize + e.data.len()].copy_from_slice(&e.data);
            };
            let mut pos = 0u64;
            for (off, len, byte) in writes {
                let off = if sequential { pos } else { off };
                pos = off + len as u64;
                let data = vec![byte; len];
                direct[off as usize..off as usize + len].copy_from_slice(&data);
                for e in g.add(off, &data) {
                    if cap > 0 && e.data.len() as u64 <= cap {
                        prop_assert!(e.off / cap == (e.off + e.data.len() as u64 - 1) / cap);
                    }
                    apply(&mut replay, &e);
                }
            }
            if let Some(e) = g.take() {
                apply(&mut replay, &e);
            }
            prop_assert_eq!(direct, replay);
        }
    }
}
