//! The OSS's disk threads: pinned service threads on the CPT nearest the
//! NIC (fabric's CPT pool), fed through its bounded queue. Disk calls block,
//! so they run here rather than on the async runtime that moves bytes.

use fabric::Errno;
use fabric::cpt::{CptConfig, CptPool, CptPoolConfig, CptTable, SubmitError, ThreadsPerCpt};
use std::net::IpAddr;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

pub struct IoThreads {
    pool: CptPool<Job>,
    cpt: usize,
    numa_node: usize,
}

impl IoThreads {
    /// `threads` per CPT; jobs go to the CPT of the interface holding `addr`.
    pub fn start(name: &str, threads: usize, addr: IpAddr) -> Result<IoThreads, Errno> {
        let table = CptTable::detect(&CptConfig::PerNumaNode).map_err(Errno::from)?;
        let cpt = table.cpt_for_addr(addr);
        let numa_node = table.cpt(cpt).map(|c| c.home_node()).unwrap_or(0);
        let mut cfg = CptPoolConfig::new(name);
        cfg.threads = ThreadsPerCpt::Fixed(threads.max(1));
        let pool = CptPool::spawn(&table, &cfg, |_thread, job: Job| job()).map_err(Errno::from)?;
        Ok(IoThreads { pool, cpt, numa_node })
    }

    /// The NUMA node whose memory the disk threads prefer.
    pub fn numa_node(&self) -> usize {
        self.numa_node
    }

    /// Jobs waiting for a disk thread, per CPT of the pool.
    pub fn queue_depth(&self) -> Vec<(usize, usize)> {
        (0..self.pool.len()).map(|cpt| (cpt, self.pool.queued(cpt))).collect()
    }

    /// Runs `f` on a disk thread and waits for its result. A full queue is
    /// back-pressure: the caller waits for room rather than queueing more.
    pub async fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, Errno> {
        let (tx, rx) = oneshot::channel();
        let mut job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        loop {
            match self.pool.submit(self.cpt, job) {
                Ok(()) => break,
                Err(SubmitError::Full(j)) => {
                    job = j;
                    tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                }
                Err(e) => return Err(e.errno()),
            }
        }
        rx.await.map_err(|_| Errno::EIO)
    }
}
