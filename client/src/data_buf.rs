//! Bytes the client keeps for a while, in registered memory: readahead's
//! blocks and the write-back buffers of open files. Bulk moves straight
//! between them and the wire (an OST pushes a block into the buffer the
//! cache then keeps; it pulls gathered writes from the buffer they were
//! gathered in), with no copy through an I/O pool buffer. A new region
//! costs page faults (and, over o2ib, a registration), so buffers that
//! fall free are kept, up to a byte budget, for the next block or file.

use fabric::IoBuf;
use std::sync::{Arc, Mutex};

/// Registered buffers kept for reuse, up to `budget` bytes.
pub(crate) struct Recycler {
    budget: usize,
    /// Free buffers, oldest first, and their bytes.
    free: Mutex<(Vec<IoBuf>, usize)>,
}

impl Recycler {
    pub fn new(budget: usize) -> Arc<Recycler> {
        Arc::new(Recycler { budget, free: Mutex::new((Vec::new(), 0)) })
    }

    /// An empty buffer of `size` bytes, reused or newly registered.
    pub fn get(self: &Arc<Self>, size: usize) -> std::io::Result<RecycledBuf> {
        let reused = {
            let mut free = self.free.lock().expect("recycler");
            let found = free.0.iter().position(|b| b.len() == size);
            found.map(|i| {
                free.1 -= size;
                free.0.swap_remove(i)
            })
        };
        let buf = match reused {
            Some(b) => b,
            None => IoBuf::alloc(size, None)?,
        };
        Ok(RecycledBuf { buf: Some(buf), len: 0, home: self.clone() })
    }

    fn put(&self, buf: IoBuf) {
        let size = buf.len();
        if size > self.budget {
            return;
        }
        let mut evicted = Vec::new();
        let mut free = self.free.lock().expect("recycler");
        while free.1 + size > self.budget && !free.0.is_empty() {
            let old = free.0.remove(0);
            free.1 -= old.len();
            evicted.push(old);
        }
        free.1 += size;
        free.0.push(buf);
        drop(free);
        // Unmapped outside the mutex.
        drop(evicted);
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.lock().expect("recycler").1
    }
}

impl std::fmt::Debug for Recycler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recycler").field("budget", &self.budget).finish_non_exhaustive()
    }
}

/// A registered buffer holding `len` bytes of data; back to its recycler
/// when dropped.
pub(crate) struct RecycledBuf {
    buf: Option<IoBuf>,
    len: usize,
    home: Arc<Recycler>,
}

impl RecycledBuf {
    /// The whole buffer, as exposed for bulk.
    pub fn io(&self) -> &IoBuf {
        self.buf.as_ref().expect("live buffer")
    }

    pub fn capacity(&self) -> usize {
        self.io().len()
    }

    /// The first `len` bytes hold data (a bulk transfer put them there).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "data past the buffer");
        self.len = len;
    }
}

impl Drop for RecycledBuf {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.home.put(b);
        }
    }
}

/// Data in a registered buffer when one could be had, else on the heap.
pub(crate) enum DataBuf {
    Registered(RecycledBuf),
    Heap(Vec<u8>),
}

impl DataBuf {
    /// An empty buffer for up to `cap` bytes: registered if `from` gives
    /// one.
    pub fn with_capacity(cap: usize, from: Option<&Arc<Recycler>>) -> DataBuf {
        match from.map(|r| r.get(cap)) {
            Some(Ok(b)) => DataBuf::Registered(b),
            Some(Err(e)) => {
                tracing::debug!(cap, error = %e, "no registered buffer; gathering on the heap");
                DataBuf::Heap(Vec::with_capacity(cap))
            }
            None => DataBuf::Heap(Vec::with_capacity(cap)),
        }
    }

    /// Appends `src`; a registered buffer must have room for it.
    pub fn extend(&mut self, src: &[u8]) {
        match self {
            DataBuf::Registered(b) => {
                let at = b.len;
                let io = b.buf.as_mut().expect("live buffer");
                io.as_mut_slice()[at..at + src.len()].copy_from_slice(src);
                b.len = at + src.len();
            }
            DataBuf::Heap(v) => v.extend_from_slice(src),
        }
    }
}

impl std::ops::Deref for DataBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            DataBuf::Registered(b) => &b.io().as_slice()[..b.len],
            DataBuf::Heap(v) => v,
        }
    }
}

impl From<Vec<u8>> for DataBuf {
    fn from(v: Vec<u8>) -> DataBuf {
        DataBuf::Heap(v)
    }
}

impl From<RecycledBuf> for DataBuf {
    fn from(b: RecycledBuf) -> DataBuf {
        DataBuf::Registered(b)
    }
}

impl PartialEq for DataBuf {
    fn eq(&self, other: &DataBuf) -> bool {
        **self == **other
    }
}

impl Eq for DataBuf {}

impl std::fmt::Debug for DataBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if matches!(self, DataBuf::Registered(_)) { "registered" } else { "heap" };
        write!(f, "DataBuf({kind}, {} bytes)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_buffers_are_reused_within_the_budget() {
        let r = Recycler::new(8192);
        let a = r.get(4096).unwrap();
        let b = r.get(4096).unwrap();
        let c = r.get(8192).unwrap();
        let (a_addr, c_addr) = (a.io().addr(), c.io().addr());
        drop(a);
        drop(b);
        assert_eq!(r.kept(), 8192);
        assert_eq!(r.get(4096).unwrap().io().addr(), a_addr, "a kept buffer of the size comes back");
        drop(c);
        assert_eq!(r.kept(), 8192, "the oldest went to make room");
        assert_eq!(r.get(8192).unwrap().io().addr(), c_addr);
        drop(r.get(16384).unwrap());
        assert_eq!(r.kept(), 8192, "a buffer larger than the budget is not kept");
    }

    #[test]
    fn data_shows_only_what_was_put_there() {
        let r = Recycler::new(1 << 20);
        let mut d = DataBuf::with_capacity(4096, Some(&r));
        assert!(matches!(d, DataBuf::Registered(_)));
        d.extend(b"abc");
        d.extend(b"de");
        assert_eq!(&*d, b"abcde");
        assert_eq!(d, DataBuf::from(b"abcde".to_vec()));
        let mut b = r.get(4096).unwrap();
        b.set_len(100);
        assert_eq!(DataBuf::from(b).len(), 100);
        let mut h = DataBuf::with_capacity(10, None);
        h.extend(b"xy");
        assert_eq!(&*h, b"xy");
    }
}
