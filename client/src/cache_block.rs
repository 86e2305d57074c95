//! The bytes of one cached block. Readahead reads each block straight into
//! a registered buffer that the cache then keeps, so an OST's data is not
//! copied out of an I/O buffer on its way into the cache; buffers go back
//! to a free list when their block leaves the cache, so a streaming reader
//! does not pay for new pages (and their registration) per block.

use crossbeam_queue::ArrayQueue;
use fabric::IoBuf;
use std::sync::Arc;

/// Registered buffers of one size for cache blocks, kept for reuse up to
/// a bound.
pub(crate) struct BlockBufs {
    size: usize,
    free: ArrayQueue<IoBuf>,
}

impl BlockBufs {
    /// Buffers of `size` bytes; at most `keep` are kept once free.
    pub fn new(size: usize, keep: usize) -> Arc<BlockBufs> {
        Arc::new(BlockBufs { size, free: ArrayQueue::new(keep.max(1)) })
    }

    /// A buffer of `size` bytes, reused or newly registered.
    pub fn get(self: &Arc<Self>) -> std::io::Result<BlockBuf> {
        let buf = match self.free.pop() {
            Some(b) => b,
            None => IoBuf::alloc(self.size, None)?,
        };
        Ok(BlockBuf { buf: Some(buf), len: self.size, home: self.clone() })
    }
}

/// A registered buffer holding one block; back to its free list when
/// dropped.
pub(crate) struct BlockBuf {
    buf: Option<IoBuf>,
    len: usize,
    home: Arc<BlockBufs>,
}

impl BlockBuf {
    pub fn io(&self) -> &IoBuf {
        self.buf.as_ref().expect("live block buffer")
    }

    /// Keeps only the first `len` bytes as the block (a short read).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            // A full free list lets the buffer go back to the system.
            let _ = self.home.free.push(b);
        }
    }
}

/// A cached block's bytes.
pub(crate) enum BlockData {
    Registered(BlockBuf),
    Heap(Vec<u8>),
}

impl std::ops::Deref for BlockData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            BlockData::Registered(b) => &b.io().as_slice()[..b.len],
            BlockData::Heap(v) => v,
        }
    }
}

impl From<Vec<u8>> for BlockData {
    fn from(v: Vec<u8>) -> BlockData {
        BlockData::Heap(v)
    }
}

impl From<BlockBuf> for BlockData {
    fn from(b: BlockBuf) -> BlockData {
        BlockData::Registered(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_up_to_the_bound() {
        let bufs = BlockBufs::new(8192, 1);
        let a = bufs.get().unwrap();
        let b = bufs.get().unwrap();
        let (a_addr, b_addr) = (a.io().addr(), b.io().addr());
        drop(a);
        drop(b);
        assert_eq!(bufs.free.len(), 1, "only one is kept");
        let c = bufs.get().unwrap();
        assert_eq!(c.io().addr(), a_addr, "the kept one comes back");
        assert_ne!(c.io().addr(), b_addr);
    }

    #[test]
    fn a_short_block_shows_only_its_bytes() {
        let bufs = BlockBufs::new(4096, 4);
        let mut b = bufs.get().unwrap();
        b.truncate(100);
        b.truncate(5000);
        assert_eq!(BlockData::from(b).len(), 100);
        assert_eq!(&*BlockData::from(vec![1, 2, 3]), &[1, 2, 3]);
    }
}
