use super::region::{IoBuf, Region};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// Fixed-size buffers carved from one region, handed out without locks or
/// allocation. A service keeps one pool per CPT so its buffers sit on the
/// NUMA node of the threads that use them.
pub struct BufferPool {
    region: Arc<Region>,
    buf_size: usize,
    free: ArrayQueue<usize>,
    waiters: tokio::sync::Notify,
}

impl BufferPool {
    pub fn new(buf_size: usize, count: usize, numa_node: Option<usize>) -> std::io::Result<Arc<BufferPool>> {
        assert!(buf_size > 0 && count > 0, "empty buffer pool");
        let page = 4096;
        let buf_size = buf_size.div_ceil(page) * page;
        let region = Region::new(buf_size * count, numa_node)?;
        let free = ArrayQueue::new(count);
        for i in 0..count {
            let _ = free.push(i);
        }
        Ok(Arc::new(BufferPool { region, buf_size, free, waiters: tokio::sync::Notify::new() }))
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// A buffer if one is free now.
    pub fn try_get(self: &Arc<Self>) -> Option<PoolBuf> {
        let idx = self.free.pop()?;
        // SAFETY: index `idx` was free, so no other IoBuf covers its range.
        let buf = unsafe { IoBuf::from_parts(self.region.clone(), idx * self.buf_size, self.buf_size) };
        Some(PoolBuf { buf: Some(buf), idx, pool: self.clone() })
    }

    /// A buffer, waiting for one to be returned when all are in use: the
    /// pool's size is the back-pressure on whoever uses it.
    pub async fn get(self: &Arc<Self>) -> PoolBuf {
        loop {
            let notified = self.waiters.notified();
            if let Some(b) = self.try_get() {
                return b;
            }
            notified.await;
        }
    }
}

/// A buffer borrowed from a pool; it goes back when dropped.
pub struct PoolBuf {
    buf: Option<IoBuf>,
    idx: usize,
    pool: Arc<BufferPool>,
}

impl PoolBuf {
    pub fn io(&self) -> &IoBuf {
        self.buf.as_ref().expect("live pool buffer")
    }

    pub fn io_mut(&mut self) -> &mut IoBuf {
        self.buf.as_mut().expect("live pool buffer")
    }
}

impl std::ops::Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.io().as_slice()
    }
}

impl std::ops::DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.io_mut().as_mut_slice()
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.buf = None;
        let _ = self.pool.free.push(self.idx);
        self.pool.waiters.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_out_disjoint_aligned_buffers_and_takes_them_back() {
        let pool = BufferPool::new(5000, 3, None).unwrap();
        assert_eq!(pool.buf_size(), 8192);
        let mut a = pool.try_get().unwrap();
        let b = pool.try_get().unwrap();
        let c = pool.try_get().unwrap();
        assert!(pool.try_get().is_none());
        assert_eq!(a.io().addr() % 4096, 0);
        let mut addrs = [a.io().addr(), b.io().addr(), c.io().addr()];
        addrs.sort();
        assert!(addrs.windows(2).all(|w| w[1] - w[0] >= 8192));
        a[0] = 7;
        drop(b);
        let again = pool.get().await;
        assert_eq!(again.len(), 8192);
        assert_eq!(a[0], 7);
    }
}
