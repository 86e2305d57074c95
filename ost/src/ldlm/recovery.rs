//! A target's lock recovery after a restart, as Lustre's recovery window:
//! the clients that held locks in the previous run (kept on disk, see
//! [`super::clients`]) ask for them back (`Replay`) and say when they are
//! done (`ReplayDone`); until every one of them has, or the window's time
//! is up, no new lock is granted and no unlocked I/O runs, so no client
//! can write over a range another still has gathered writes under. A
//! client that does not come back in time loses its locks, as an evicted
//! one does: writes naming them are refused.

use super::clients::{ClientFile, ClientKey};
use proto::LockHandle;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(super) struct Recovery {
    file: Option<ClientFile>,
    state: Mutex<State>,
    /// Serialises the saves of the file, so the last one written is the
    /// newest set.
    saving: Mutex<()>,
    open: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Clients of the previous run that have not finished replaying.
    waiting: HashSet<ClientKey>,
    /// How many there were at the start, and when the window opened and
    /// closed (seconds since the epoch).
    expected: usize,
    /// Of those, how many said they were done.
    completed: usize,
    started: u64,
    ended: Option<u64>,
    /// Clients that took or replayed a lock in this run.
    holders: HashSet<ClientKey>,
    /// Of those, the ones no finished save has written to the file yet.
    unsaved: HashSet<ClientKey>,
    /// Handles of earlier runs replayed in this one, by client, and their
    /// new handles.
    replayed: HashMap<(ClientKey, LockHandle), LockHandle>,
}

impl Recovery {
    /// Reads who held locks before; the window is open if anybody did.
    /// Without a file (a namespace in memory only) there is no recovery.
    pub(super) fn start(name: &str, file: Option<ClientFile>) -> Arc<Recovery> {
        let waiting = match file.as_ref().map(ClientFile::load) {
            Some(Ok(w)) => w,
            Some(Err(e)) => {
                tracing::warn!(ns = name, error = %e, "cannot read the lock holders of the last run: no recovery");
                HashSet::new()
            }
            None => HashSet::new(),
        };
        let open = !waiting.is_empty();
        if open {
            tracing::info!(
                ns = name,
                clients = waiting.len(),
                "recovering: waiting for the lock holders of the last run to replay"
            );
        }
        let (expected, started) = (waiting.len(), unix_now());
        let ended = (!open).then_some(started);
        Arc::new(Recovery {
            file,
            state: Mutex::new(State { waiting, expected, started, ended, ..State::default() }),
            saving: Mutex::new(()),
            open: AtomicBool::new(open),
        })
    }

    pub(super) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Refuses, while the window is open, what must wait for it: the
    /// client asks again shortly. Refused rather than parked, since a
    /// parked request keeps its receive buffer and so the client's send
    /// credit, which the client's replay needs.
    pub(super) fn check(&self) -> Result<(), fabric::Errno> {
        if self.is_open() { Err(fabric::Errno::EINPROGRESS) } else { Ok(()) }
    }

    /// Whether `client` is one the window waits for.
    pub(super) fn awaits(&self, client: ClientKey) -> bool {
        self.state.lock().expect("recovery lock").waiting.contains(&client)
    }

    /// Clients still awaited.
    pub(super) fn waiting(&self) -> usize {
        self.state.lock().expect("recovery lock").waiting.len()
    }

    /// Closes the window; what it says is logged with whoever did not come,
    /// and they are struck from the file.
    pub(super) fn close(self: &Arc<Self>, name: &str, why: &str) {
        let missing = {
            let mut st = self.state.lock().expect("recovery lock");
            if !self.open.swap(false, Ordering::AcqRel) {
                return;
            }
            st.ended = Some(unix_now());
            std::mem::take(&mut st.waiting)
        };
        if missing.is_empty() {
            tracing::info!(ns = name, why, "recovery done: every lock holder of the last run replayed");
        } else {
            tracing::warn!(
                ns = name,
                why,
                missing = missing.len(),
                "recovery over without every lock holder of the last run: their locks are gone"
            );
            let (me, name) = (self.clone(), name.to_string());
            tokio::spawn(async move { me.save(&name).await });
        }
    }

    /// `client` has replayed all it held; the window closes if it was the
    /// last one awaited.
    pub(super) fn done(self: &Arc<Self>, name: &str, client: ClientKey) {
        let last = {
            let mut st = self.state.lock().expect("recovery lock");
            let was_waited_for = st.waiting.remove(&client);
            st.completed += usize::from(was_waited_for);
            was_waited_for && st.waiting.is_empty()
        };
        if last {
            self.close(name, "the last client replayed");
        }
    }

    pub(super) fn note_replayed(&self, client: ClientKey, old: LockHandle, new: LockHandle) {
        self.state.lock().expect("recovery lock").replayed.insert((client, old), new);
    }

    /// The handle `client`'s lock `old` of an earlier run was replayed as.
    pub(super) fn replayed_as(&self, client: ClientKey, old: LockHandle) -> Option<LockHandle> {
        self.state.lock().expect("recovery lock").replayed.get(&(client, old)).copied()
    }

    /// Records that `client` holds locks here, on disk before it is
    /// granted its first one (once per client per run). A second enqueue
    /// of the client that comes while the first one's save is under way
    /// saves too rather than pass it: its grant must not come first.
    pub(super) async fn note_holder(self: &Arc<Self>, name: &str, client: ClientKey) {
        if self.file.is_none() {
            return;
        }
        {
            let mut st = self.state.lock().expect("recovery lock");
            if st.holders.insert(client) {
                st.unsaved.insert(client);
            } else if !st.unsaved.contains(&client) {
                return;
            }
        }
        self.save(name).await;
    }

    /// `client` left: it is not waited for after a restart.
    pub(super) async fn forget_holder(self: &Arc<Self>, name: &str, client: ClientKey) {
        let was = {
            let mut st = self.state.lock().expect("recovery lock");
            st.waiting.remove(&client) | st.holders.remove(&client)
        };
        if was && self.file.is_some() {
            self.save(name).await;
        }
        if self.is_open() && self.waiting() == 0 {
            self.close(name, "the last client awaited left");
        }
    }

    /// What `lctl get_param obdfilter.*.recovery_status` shows, in Lustre's
    /// words; `window`: the recovery window's length.
    pub(super) fn status(&self, window: std::time::Duration) -> String {
        let st = self.state.lock().expect("recovery lock");
        let mut out = match st.ended {
            Some(end) => format!(
                "status: COMPLETE\nrecovery_start: {}\nrecovery_duration: {}\n",
                st.started,
                end.saturating_sub(st.started)
            ),
            None => format!(
                "status: RECOVERING\nrecovery_start: {}\ntime_remaining: {}\n",
                st.started,
                (st.started + window.as_secs()).saturating_sub(unix_now())
            ),
        };
        out.push_str(&format!(
            "completed_clients: {}/{}\nreplayed_locks: {}\n",
            st.completed,
            st.expected,
            st.replayed.len()
        ));
        out
    }

    /// Writes this run's holders, and those of the last still awaited. A
    /// failure (a full disk) is logged: the locks are granted anyway, and
    /// only that client's replay after a restart is at risk.
    async fn save(self: &Arc<Self>, name: &str) {
        let me = self.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = me.saving.lock().expect("save lock");
            let set: HashSet<ClientKey> = {
                let st = me.state.lock().expect("recovery lock");
                st.holders.union(&st.waiting).copied().collect()
            };
            let saved = me.file.as_ref().map_or(Ok(()), |f| f.save(&set));
            if saved.is_ok() {
                me.state.lock().expect("recovery lock").unsaved.retain(|c| !set.contains(c));
            }
            saved
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(ns = name, error = %e, "cannot save the lock holders"),
            Err(e) => tracing::warn!(ns = name, error = %e, "saving the lock holders failed"),
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Keeps `rec`'s saves from running until the returned sender is used
    /// (or dropped) and the thread joined.
    fn hold_saves(rec: &Arc<Recovery>) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (release, released) = mpsc::channel::<()>();
        let (held, is_held) = mpsc::channel::<()>();
        let rec = rec.clone();
        let t = std::thread::spawn(move || {
            let _saves = rec.saving.lock().unwrap();
            held.send(()).unwrap();
            let _ = released.recv();
        });
        is_held.recv().unwrap();
        (release, t)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_first_enqueue_waits_for_the_holder_to_be_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CLIENTS");
        let rec = Recovery::start("test", Some(ClientFile::new(path.clone())));
        let client = ClientKey { addr: "127.0.0.9".parse().unwrap(), pid: 7 };
        let (release, disk) = hold_saves(&rec);
        let first = tokio::spawn({
            let rec = rec.clone();
            async move { rec.note_holder("test", client).await }
        });
        while !rec.state.lock().unwrap().holders.contains(&client) {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let rec = rec.clone();
            async move { rec.note_holder("test", client).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "the second enqueue went on before the holder was saved");
        release.send(()).unwrap();
        disk.join().unwrap();
        first.await.unwrap();
        second.await.unwrap();
        assert!(ClientFile::new(path).load().unwrap().contains(&client));
        assert!(rec.state.lock().unwrap().unsaved.is_empty());
        // Once saved, a client's later enqueues do not save again.
        let (release, disk) = hold_saves(&rec);
        let later = tokio::time::timeout(std::time::Duration::from_secs(5), rec.note_holder("test", client));
        assert!(later.await.is_ok(), "a later enqueue waited for a save");
        drop(release);
        disk.join().unwrap();
    }
}
