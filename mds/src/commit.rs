//! Group commit: one thread applies every queued change in one write
//! transaction and commits once, then answers each caller.
//!
//! While a commit is being made durable, new operations queue up; the
//! next batch takes all of them, so the cost of a durable commit is shared
//! by however many callers arrived meanwhile.

use crate::alloc::ObjectPools;
use crate::attrs;
use crate::batch::Batch;
use crate::error::MdsError;
use crate::namespace;
use crate::opens::OpenFiles;
use crate::tables::View;
use crate::xattr::{self, XattrMode};
use proto::{Attr, Cred, Fid, Layout, SetAttr, StripeSpec};
use redb::Database;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// Most operations one transaction takes.
pub const MAX_BATCH: usize = 4096;

/// A change to the namespace, as queued for the committer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create {
        cred: Cred,
        parent: Fid,
        name: Vec<u8>,
        mode: u32,
        stripe: StripeSpec,
    },
    Mkdir {
        cred: Cred,
        parent: Fid,
        name: Vec<u8>,
        mode: u32,
    },
    Mknod {
        cred: Cred,
        parent: Fid,
        name: Vec<u8>,
        mode: u32,
        rdev: u64,
    },
    Symlink {
        cred: Cred,
        parent: Fid,
        name: Vec<u8>,
        target: Vec<u8>,
    },
    Link {
        cred: Cred,
        fid: Fid,
        parent: Fid,
        name: Vec<u8>,
    },
    Unlink {
        cred: Cred,
        parent: Fid,
        name: Vec<u8>,
    },
    Rmdir {
        cred: Cred,
        parent: Fid,
        name: Vec<u8>,
    },
    Rename {
        cred: Cred,
        src_parent: Fid,
        src_name: Vec<u8>,
        dst_parent: Fid,
        dst_name: Vec<u8>,
    },
    SetAttr {
        cred: Cred,
        fid: Fid,
        attr: SetAttr,
    },
    SetXattr {
        cred: Cred,
        fid: Fid,
        name: String,
        value: Vec<u8>,
        mode: XattrMode,
    },
    RemoveXattr {
        cred: Cred,
        fid: Fid,
        name: String,
    },
    /// `None` removes the directory's default.
    SetDirStripe {
        cred: Cred,
        dir: Fid,
        spec: Option<StripeSpec>,
    },
    SetFsStripe {
        cred: Cred,
        spec: StripeSpec,
    },
    /// These destroy-log entries reached their OSTs.
    DestroyDone {
        ids: Vec<u64>,
    },
    /// Destroys `fid` if it is an unlinked inode nobody has open (sent at
    /// last close; a no-op otherwise).
    ReleaseOrphan {
        fid: Fid,
    },
}

/// What a committed operation answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Done,
    Attr(Attr),
    Created { attr: Attr, layout: Layout },
}

/// Counters of the committer, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Durable commits made.
    pub commits: u64,
    /// Operations those commits carried (refused ones included).
    pub ops: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
    /// Operations waiting for the committer now.
    pub queued: u64,
}

pub(crate) struct Stats {
    commits: AtomicU64,
    ops: AtomicU64,
    largest: AtomicU64,
    pub queued: AtomicU64,
    /// Operations per batch, for metrics.
    pub batch: prometheus::Histogram,
    /// Seconds per batch: applying its operations, then making them
    /// durable (`phase`), for metrics.
    pub seconds: prometheus::HistogramVec,
}

impl Default for Stats {
    fn default() -> Self {
        let buckets = prometheus::exponential_buckets(1.0, 2.0, MAX_BATCH.ilog2() as usize + 1)
            .expect("constant, valid buckets");
        let opts = prometheus::HistogramOpts::new(
            "glint_mds_commit_batch_ops",
            "Operations made durable together by one group commit.",
        )
        .buckets(buckets);
        let seconds = prometheus::HistogramOpts::new(
            "glint_mds_commit_seconds",
            "Time one group commit spends applying its batch (phase=apply) and making it durable (phase=durable).",
        )
        .buckets(prometheus::exponential_buckets(25e-6, 2.0, 14).expect("constant, valid buckets"));
        Stats {
            commits: AtomicU64::default(),
            ops: AtomicU64::default(),
            largest: AtomicU64::default(),
            queued: AtomicU64::default(),
            batch: prometheus::Histogram::with_opts(opts).expect("valid histogram"),
            seconds: prometheus::HistogramVec::new(seconds, &["phase"]).expect("valid histogram"),
        }
    }
}

impl Stats {
    pub fn snapshot(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            largest_batch: self.largest.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }
}

/// The state the committer and the readers share.
pub(crate) struct Shared {
    pub db: Database,
    pub pools: ObjectPools,
    pub opens: OpenFiles,
    pub stats: Stats,
    /// Held by the committer for each batch, and by a freeze.
    pub gate: Mutex<()>,
}

pub(crate) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply, MdsError>>,
}

/// An operation's reply, which arrives once the change is durable. Wait
/// for it with `wait` on a plain thread, or `.await` it in async code.
pub struct Ticket {
    pub(crate) rx: oneshot::Receiver<Result<Reply, MdsError>>,
}

impl Ticket {
    /// Blocks until the reply arrives. Not for use inside an async runtime
    /// (await the ticket there).
    pub fn wait(self) -> Result<Reply, MdsError> {
        self.rx.blocking_recv().unwrap_or(Err(MdsError::Shutdown))
    }
}

impl Future for Ticket {
    type Output = Result<Reply, MdsError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| r.unwrap_or(Err(MdsError::Shutdown)))
    }
}

fn apply(b: &mut Batch, op: &Op) -> Result<Reply, MdsError> {
    let attr = |r: Result<Attr, MdsError>| r.map(Reply::Attr);
    let done = |r: Result<(), MdsError>| r.map(|()| Reply::Done);
    match op {
        Op::Create { cred, parent, name, mode, stripe } => {
            namespace::create(b, cred, *parent, name, *mode, stripe)
                .map(|(attr, layout)| Reply::Created { attr, layout })
        }
        Op::Mkdir { cred, parent, name, mode } => attr(namespace::mkdir(b, cred, *parent, name, *mode)),
        Op::Mknod { cred, parent, name, mode, rdev } => {
            attr(namespace::mknod(b, cred, *parent, name, *mode, *rdev))
        }
        Op::Symlink { cred, parent, name, target } => {
            attr(namespace::symlink(b, cred, *parent, name, target))
        }
        Op::Link { cred, fid, parent, name } => attr(namespace::link(b, cred, *fid, *parent, name)),
        Op::Unlink { cred, parent, name } => done(namespace::unlink(b, cred, *parent, name)),
        Op::Rmdir { cred, parent, name } => done(namespace::rmdir(b, cred, *parent, name)),
        Op::Rename { cred, src_parent, src_name, dst_parent, dst_name } => {
            done(namespace::rename(b, cred, *src_parent, src_name, *dst_parent, dst_name))
        }
        Op::SetAttr { cred, fid, attr: sa } => attr(attrs::setattr(b, cred, *fid, sa)),
        Op::SetXattr { cred, fid, name, value, mode } => done(xattr::set(b, cred, *fid, name, value, *mode)),
        Op::RemoveXattr { cred, fid, name } => done(xattr::remove(b, cred, *fid, name)),
        Op::SetDirStripe { cred, dir, spec } => done(attrs::set_dir_stripe(b, cred, *dir, spec.as_ref())),
        Op::SetFsStripe { cred, spec } => done(attrs::set_fs_stripe(b, cred, spec)),
        Op::DestroyDone { ids } => {
            for &id in ids {
                b.destroy_log_done(id)?;
            }
            Ok(Reply::Done)
        }
        Op::ReleaseOrphan { fid } => {
            let destroy = match b.t.inode(*fid)? {
                Some(i) => i.nlink == 0 && b.opens.claim_for_destroy(*fid),
                None => false,
            };
            if destroy {
                b.dying.push(*fid);
                b.destroy(*fid)?;
            }
            Ok(Reply::Done)
        }
    }
}

/// Runs `ops` in one write transaction and commits it. An operation that
/// fails after writing spoils the transaction: it is aborted and run again
/// without that operation, which gets the error.
pub(crate) fn run_batch(shared: &Shared, ops: &[&Op]) -> Vec<Result<Reply, MdsError>> {
    let mut excluded: Vec<Option<MdsError>> = vec![None; ops.len()];
    loop {
        let (results, outcome) = attempt(shared, ops, &excluded);
        match outcome {
            Attempt::Spoiled(i, e) => {
                tracing::error!(error = %e, op = ?ops[i], "operation failed part way; retrying its batch without it");
                excluded[i] = Some(e);
            }
            Attempt::Finished => {
                return results
                    .into_iter()
                    .zip(excluded)
                    .map(|(r, x)| match x {
                        Some(e) => Err(e),
                        None => r.unwrap_or(Err(MdsError::Shutdown)),
                    })
                    .collect();
            }
        }
    }
}

enum Attempt {
    Finished,
    Spoiled(usize, MdsError),
}

fn attempt(
    shared: &Shared,
    ops: &[&Op],
    excluded: &[Option<MdsError>],
) -> (Vec<Option<Result<Reply, MdsError>>>, Attempt) {
    let fail_all = |e: MdsError| (ops.iter().map(|_| Some(Err(e.clone()))).collect(), Attempt::Finished);
    let started = std::time::Instant::now();
    let txn = match shared.db.begin_write() {
        Ok(t) => t,
        Err(e) => return fail_all(e.into()),
    };
    let mut b = match Batch::new(&txn, &shared.pools, &shared.opens) {
        Ok(b) => b,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(ops.len());
    let mut any_change = false;
    let mut spoiled = None;
    for (i, op) in ops.iter().enumerate() {
        if excluded[i].is_some() {
            results.push(None);
            continue;
        }
        b.begin_op();
        let r = apply(&mut b, op);
        if r.is_err() && b.mutated() {
            spoiled = Some((i, r.err().unwrap_or(MdsError::Shutdown)));
            break;
        }
        any_change |= b.mutated();
        results.push(Some(r));
    }
    let (allocated, dying) = b.finish();
    shared.stats.seconds.with_label_values(&["apply"]).observe(started.elapsed().as_secs_f64());
    let outcome = if let Some((i, e)) = spoiled {
        let _ = txn.abort();
        shared.pools.put_back(&allocated);
        Attempt::Spoiled(i, e)
    } else if !any_change {
        // Only refusals: nothing to make durable.
        let _ = txn.abort();
        Attempt::Finished
    } else {
        let durable = std::time::Instant::now();
        let committed = txn.commit();
        shared.stats.seconds.with_label_values(&["durable"]).observe(durable.elapsed().as_secs_f64());
        match committed {
            Ok(()) => {
                shared.stats.commits.fetch_add(1, Ordering::Relaxed);
                Attempt::Finished
            }
            Err(e) => {
                tracing::error!(error = %e, "metadata commit failed");
                shared.pools.put_back(&allocated);
                shared.opens.clear_dying(&dying);
                return fail_all(e.into());
            }
        }
    };
    shared.opens.clear_dying(&dying);
    (results, outcome)
}

/// The committer thread's loop: ends when every sender is gone.
pub(crate) fn committer(shared: &Shared, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let gate = shared.gate.lock().unwrap_or_else(|e| e.into_inner());
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let n = jobs.len() as u64;
        shared.stats.queued.fetch_sub(n, Ordering::Relaxed);
        let ops: Vec<&Op> = jobs.iter().map(|j| &j.op).collect();
        let results = run_batch(shared, &ops);
        shared.stats.ops.fetch_add(n, Ordering::Relaxed);
        shared.stats.largest.fetch_max(n, Ordering::Relaxed);
        shared.stats.batch.observe(n as f64);
        drop(gate);
        for (job, r) in jobs.into_iter().zip(results) {
            // A caller that gave up waiting is no error.
            let _ = job.reply.send(r);
        }
    }
}
