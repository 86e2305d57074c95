//! Replies remembered per client, so a request resent after a lost
//! connection is answered again rather than run twice.

use crate::ProcessId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// How many replies one client may leave in the cache; older ones go first.
const PER_CLIENT: usize = 1024;

enum Slot {
    Running,
    Done(Arc<Vec<u8>>),
}

/// What to do with an arriving request.
pub enum Begin {
    /// First time seen: run it.
    Run,
    /// Already answered: send this reply again.
    Replay(Arc<Vec<u8>>),
    /// Still running: its reply will go out when it finishes.
    Running,
}

#[derive(Default)]
pub struct ReplyCache {
    clients: Mutex<HashMap<ProcessId, BTreeMap<u64, Slot>>>,
}

impl ReplyCache {
    /// Looks `xid` up, forgetting every reply below `min_unreplied`, which
    /// the client says it has received.
    pub fn begin(&self, client: ProcessId, xid: u64, min_unreplied: u64) -> Begin {
        let mut clients = self.clients.lock().expect("reply cache lock");
        let slots = clients.entry(client).or_default();
        while let Some(entry) = slots.first_entry() {
            if *entry.key() >= min_unreplied || *entry.key() == xid {
                break;
            }
            entry.remove();
        }
        match slots.get(&xid) {
            Some(Slot::Running) => Begin::Running,
            Some(Slot::Done(r)) => Begin::Replay(r.clone()),
            None => {
                if slots.len() >= PER_CLIENT {
                    slots.pop_first();
                }
                slots.insert(xid, Slot::Running);
                Begin::Run
            }
        }
    }

    pub fn finish(&self, client: ProcessId, xid: u64, reply: Arc<Vec<u8>>) {
        let mut clients = self.clients.lock().expect("reply cache lock");
        if let Some(slot) = clients.get_mut(&client).and_then(|s| s.get_mut(&xid)) {
            *slot = Slot::Done(reply);
        }
    }

    pub fn len(&self) -> usize {
        self.clients.lock().expect("reply cache lock").values().map(|s| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_once_replays_after_and_forgets_acknowledged() {
        let c = ReplyCache::default();
        let p = ProcessId { nid: "127.0.0.1@tcp".parse().unwrap(), pid: 7 };
        assert!(matches!(c.begin(p, 10, 10), Begin::Run));
        assert!(matches!(c.begin(p, 10, 10), Begin::Running));
        c.finish(p, 10, Arc::new(vec![1, 2]));
        assert!(matches!(c.begin(p, 10, 10), Begin::Replay(r) if *r == vec![1, 2]));
        assert!(matches!(c.begin(p, 11, 11), Begin::Run));
        assert_eq!(c.len(), 1, "xid 10 was acknowledged by min_unreplied 11");
        for x in 12..12 + 2 * PER_CLIENT as u64 {
            let _ = c.begin(p, x, 11);
        }
        assert!(c.len() <= PER_CLIENT);
    }
}
