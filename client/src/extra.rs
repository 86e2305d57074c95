//! Small compositions of the client's calls that the FUSE mount needs.

use crate::client::Client;
use crate::error::Result;
use proto::{Layout, OstRequest, Timestamp};
use std::sync::Arc;

impl Client {
    /// Sets the access and modification times of every object of a file.
    /// A file's times are the newest of the MDS's and its objects', so an
    /// explicit `utimens` must reach the objects too, or their own times
    /// (from the last write) win.
    pub async fn set_object_times(
        self: &Arc<Self>,
        layout: &Layout,
        atime: Option<Timestamp>,
        mtime: Option<Timestamp>,
    ) -> Result<()> {
        if atime.is_none() && mtime.is_none() {
            return Ok(());
        }
        let mut set = tokio::task::JoinSet::new();
        for o in layout.objects().copied() {
            let me = Arc::clone(self);
            set.spawn(async move {
                let r = me.ost(o.ost_idx, &OstRequest::Setattr { fid: o.fid, atime, mtime }).await;
                me.locks.forget_attr(o.fid);
                r
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("object setattr task")?;
        }
        Ok(())
    }
}
