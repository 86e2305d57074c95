//! The o2ib NI's counters: the NI's totals and each peer's, plain atomics
//! that the metrics collector reads when Prometheus scrapes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one o2ib NI.
#[derive(Default, Debug)]
pub struct O2ibStats {
    pub tx_msgs: AtomicU64,
    pub rx_msgs: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Bytes this node moved by RDMA READ (bulk_get).
    pub rdma_read_bytes: AtomicU64,
    /// Bytes this node moved by RDMA WRITE (bulk_put).
    pub rdma_write_bytes: AtomicU64,
    pub connects: AtomicU64,
    /// Connections set up to a peer that had been connected before.
    pub reconnects: AtomicU64,
    pub disconnects: AtomicU64,
    /// Bulk requests of peers this node refused (unknown key, outside the
    /// exposed range, wrong direction): handles without an rkey only, as
    /// the HCA refuses the others without this node seeing them.
    pub bulk_refused: AtomicU64,
    /// Bulk transfers this node started that the peer's HCA refused (a
    /// remote access error: a bad rkey, range or direction).
    pub rdma_refused: AtomicU64,
    /// Work requests that completed with an error.
    pub error_completions: AtomicU64,
    /// Messages that broke the protocol (the connection was dropped).
    pub protocol_errors: AtomicU64,
}

/// What this node exchanged with one peer, across its connections.
#[derive(Default, Debug)]
pub struct PeerStats {
    pub tx_msgs: AtomicU64,
    pub rx_msgs: AtomicU64,
    /// Immediate message payload bytes.
    pub tx_bytes: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Bytes this node read from the peer's memory (RDMA READ).
    pub rdma_read_bytes: AtomicU64,
    /// Bytes this node wrote into the peer's memory (RDMA WRITE).
    pub rdma_write_bytes: AtomicU64,
}

impl PeerStats {
    pub(crate) fn sent(&self, bytes: usize) {
        self.tx_msgs.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.rx_msgs.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}
