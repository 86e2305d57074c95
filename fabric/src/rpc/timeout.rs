//! Adaptive timeouts, as ptlrpc's: how long to wait for a reply follows
//! the service times a server has reported recently, within bounds.

use crate::ProcessId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const HISTORY: usize = 8;

#[derive(Clone, Copy, Debug)]
pub struct TimeoutBounds {
    pub min: Duration,
    pub max: Duration,
    /// Before anything was measured.
    pub initial: Duration,
}

impl Default for TimeoutBounds {
    fn default() -> Self {
        TimeoutBounds {
            min: Duration::from_secs(5),
            max: Duration::from_secs(600),
            initial: Duration::from_secs(30),
        }
    }
}

#[derive(Default, Clone, Copy)]
struct History {
    /// Worst round trip (service time plus network) of recent replies.
    samples: [Duration; HISTORY],
    next: usize,
    filled: usize,
}

pub struct AdaptiveTimeouts {
    bounds: TimeoutBounds,
    per_service: Mutex<HashMap<(ProcessId, u16), History>>,
}

impl AdaptiveTimeouts {
    pub fn new(bounds: TimeoutBounds) -> Self {
        AdaptiveTimeouts { bounds, per_service: Mutex::new(HashMap::new()) }
    }

    pub fn observe(&self, peer: ProcessId, portal: u16, round_trip: Duration) {
        let mut m = self.per_service.lock().expect("timeouts lock");
        let h = m.entry((peer, portal)).or_default();
        h.samples[h.next] = round_trip;
        h.next = (h.next + 1) % HISTORY;
        h.filled = (h.filled + 1).min(HISTORY);
    }

    /// How long to wait for the next reply from this service.
    pub fn timeout(&self, peer: ProcessId, portal: u16) -> Duration {
        let m = self.per_service.lock().expect("timeouts lock");
        match m.get(&(peer, portal)) {
            Some(h) if h.filled > 0 => {
                let worst = h.samples[..h.filled].iter().max().copied().unwrap_or_default();
                // Room for a slower request than any seen lately.
                (worst * 4 + Duration::from_secs(1)).clamp(self.bounds.min, self.bounds.max)
            }
            _ => self.bounds.initial.clamp(self.bounds.min, self.bounds.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_service_times_within_bounds() {
        let t = AdaptiveTimeouts::new(TimeoutBounds::default());
        let p = ProcessId { nid: "127.0.0.1@tcp".parse().unwrap(), pid: 1 };
        assert_eq!(t.timeout(p, 1), Duration::from_secs(30));
        t.observe(p, 1, Duration::from_millis(2));
        assert_eq!(t.timeout(p, 1), Duration::from_secs(5));
        t.observe(p, 1, Duration::from_secs(20));
        assert_eq!(t.timeout(p, 1), Duration::from_secs(81));
        t.observe(p, 1, Duration::from_secs(1000));
        assert_eq!(t.timeout(p, 1), Duration::from_secs(600));
        for _ in 0..HISTORY {
            t.observe(p, 1, Duration::from_millis(1));
        }
        assert_eq!(t.timeout(p, 1), Duration::from_secs(5), "old slow samples age out");
    }
}
