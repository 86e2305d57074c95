//! The client's part in an OST's recovery. After a restart, an OST waits
//! for the clients that held locks there; each asks back every lock it
//! held, as it was (Lustre's lock replay), so the writes gathered under
//! them are not refused and no other client is granted a lock over a range
//! this client still has writes gathered in before they are sent. A client
//! that unmounts says so, and is not waited for.

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::locks::Held;
use fabric::RpcError;
use proto::{OstReply, OstRequest};

impl Client {
    /// Connects to OST `ost` again after a lost connection; if its OSS
    /// restarted and is recovering, replays every lock this client held
    /// there, then tells it this client is done.
    pub(crate) async fn reconnect(&self, ost: u32) -> Result<()> {
        let Some(peer) = self.ost_peer(ost) else { return Ok(()) };
        // Counted before the connect: a loss after it is seen again.
        let losses = self.endpoint().connection_losses(peer);
        let req = OstRequest::Connect { fsname: self.fsname().to_string(), index: ost };
        let OstReply::Connected { run, recovering, .. } = self.ost(ost, &req).await? else {
            return Err(ClientError::UnexpectedReply { service: "OST" });
        };
        if !recovering {
            // No restart (or its recovery is over; or an eviction): the
            // locks go now, so none is set aside later to be replayed at
            // some later restart.
            self.locks_intact(ost);
            self.locks.forget_replayable(ost);
            return Ok(());
        }
        let (mut replayed, mut refused) = (0, 0);
        for (fid, mode, extent, old) in self.locks.to_replay(ost) {
            if old.run() >= run {
                continue;
            }
            match self.ost(ost, &OstRequest::Replay { fid, mode, extent, handle: old }).await {
                Ok(OstReply::Granted { handle, attr, .. }) => {
                    self.locks.replayed(ost, fid, old, Held::granted(handle, mode, extent, attr.size));
                    replayed += 1;
                }
                // Refused (too late, or its object is gone): writes gathered
                // under it will be too, as an evicted client's are.
                Err(e @ ClientError::Rpc(RpcError::Remote(_))) => {
                    refused += 1;
                    tracing::warn!(ost, %fid, error = %e, "the OST did not take a lock back");
                }
                // Lost on the way: the pinger tries again, with what is
                // still to replay.
                Err(e) => return Err(e),
                Ok(_) => return Err(ClientError::UnexpectedReply { service: "OST" }),
            }
        }
        self.locks.forget_replayable(ost);
        self.ost(ost, &OstRequest::ReplayDone).await?;
        self.locks.note_conn(ost, peer, losses);
        tracing::info!(ost, replayed, refused, "replayed locks to a restarted OST");
        Ok(())
    }

    /// Gives back every lock, then tells each OST that granted one that
    /// this client is gone, so none waits for it after a restart (an
    /// unmount).
    pub async fn unmount(&self) -> Result<()> {
        let given_back = self.cancel_locks().await;
        self.disconnect().await;
        given_back
    }

    /// Tells each OST that granted this client a lock that it is gone.
    pub async fn disconnect(&self) {
        for ost in self.locks.granted_by() {
            if let Err(e) = self.ost(ost, &OstRequest::Disconnect).await {
                tracing::debug!(ost, error = %e, "disconnecting from the OST");
            }
        }
    }
}
