//! The client's pinger, as a Lustre client pings its targets: a connection
//! to an OSS that went (a network blip, a restart) is made again at once.
//! Clients do not listen, so until the client connects again the OSS's
//! blocking callbacks cannot reach it, and a holder that cannot be reached
//! within the callback timeout is evicted, which costs it its cache and
//! its gathered writes; and an OSS that restarted waits for the clients
//! that held locks to replay them before it grants new ones.

use crate::client::Client;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often lost connections are looked for: well inside the OSTs'
/// callback timeout (10 s by default).
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// What the pinger knows, per OST.
#[derive(Default)]
struct Pinging {
    /// Connection losses made good.
    seen: HashMap<u32, u64>,
    /// A ping is on its way.
    busy: HashSet<u32>,
    /// A failed ping was reported (once per outage, not every second).
    reported: HashSet<u32>,
}

/// Starts the pinger of `client`; it stops when the client is dropped or
/// its endpoint shut down.
pub(crate) fn start(client: &Arc<Client>) {
    let weak = Arc::downgrade(client);
    tokio::spawn(async move {
        let state = Arc::new(Mutex::new(Pinging::default()));
        loop {
            tokio::time::sleep(PING_INTERVAL).await;
            let Some(c) = weak.upgrade() else { return };
            if c.endpoint().is_shut_down() {
                return;
            }
            for ost in c.ost_indices() {
                let Some(peer) = c.ost_peer(ost) else { continue };
                let losses = c.endpoint().connection_losses(peer);
                {
                    let mut st = state.lock().expect("pinger state");
                    if losses <= st.seen.get(&ost).copied().unwrap_or(0) || st.busy.contains(&ost) {
                        continue;
                    }
                    st.busy.insert(ost);
                }
                let (c, state) = (c.clone(), state.clone());
                tokio::spawn(async move {
                    let made = c.reconnect(ost).await;
                    let mut st = state.lock().expect("pinger state");
                    match made {
                        Ok(_) => {
                            st.seen.insert(ost, losses);
                            st.reported.remove(&ost);
                            tracing::info!(ost, "connected again to the OST after a lost connection");
                        }
                        Err(e) if st.reported.insert(ost) => {
                            tracing::warn!(ost, error = %e, "cannot reach the OST again; trying every second")
                        }
                        Err(e) => tracing::debug!(ost, error = %e, "cannot reach the OST again"),
                    }
                    st.busy.remove(&ost);
                });
            }
        }
    });
}
