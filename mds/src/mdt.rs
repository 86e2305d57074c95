//! An MDT: the namespace store on one redb file, its committer thread, and
//! the operations that change it.

use crate::alloc::{ObjectPools, PoolTunables};
use crate::batch::Batch;
use crate::commit::{self, CommitStats, Job, Op, Reply, Shared, Stats, Ticket};
use crate::error::MdsError;
use crate::migrate;
use crate::namespace;
use crate::opens::OpenFiles;
use crate::records::{self, fid_key};
use crate::tables::{self, ReadTables, View, WriteTables};
use crate::xattr::XattrMode;
use fabric::Errno;
use proto::{Attr, Cred, Fid, Layout, SetAttr, StripeSpec, Timestamp};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

/// One metadata target. Share it between threads (`Arc<Mdt>`); dropping it
/// finishes the queued operations and stops the committer.
pub struct Mdt {
    pub(crate) shared: Arc<Shared>,
    path: PathBuf,
    fsname: String,
    tx: Option<mpsc::Sender<Job>>,
    committer: Option<JoinHandle<()>>,
}

/// While held, no batch commits: the metadata write barrier (Lustre's
/// `barrier_freeze`), e.g. for a consistent snapshot of the MDT file.
/// Operations queue up meanwhile and commit together when it is dropped.
pub struct Freeze<'a> {
    _gate: MutexGuard<'a, ()>,
}

impl Mdt {
    /// Creates a new MDT at `path` (which must not exist) for file system
    /// `fsname`, with a root directory `0755 root:root`.
    pub fn format(path: impl AsRef<Path>, fsname: &str) -> Result<Mdt, MdsError> {
        let path = path.as_ref();
        if path.exists() {
            return Err(MdsError::Posix(Errno::EEXIST));
        }
        if fsname.is_empty()
            || fsname.len() > 8
            || !fsname.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            // Lustre's rule: up to 8 characters, letters, digits, underscore.
            return Err(MdsError::Posix(Errno::EINVAL));
        }
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            let mut t = WriteTables::open(&txn)?;
            let m = &mut t.meta;
            m.insert(tables::META_FORMAT, tables::u64_bytes(tables::FORMAT_VERSION).as_slice())?;
            m.insert(tables::META_FSNAME, fsname.as_bytes())?;
            m.insert(tables::META_NEXT_OID, tables::u64_bytes(Fid::ROOT.oid as u64 + 1).as_slice())?;
            m.insert(tables::META_NEXT_DESTROY, tables::u64_bytes(1).as_slice())?;
            m.insert(tables::META_INODES, tables::u64_bytes(1).as_slice())?;
            m.insert(tables::META_FS_STRIPE, records::encode_plain(&StripeSpec::fs_default()).as_slice())?;
            let root = namespace::root_inode(Timestamp::now());
            t.inodes.insert(fid_key(Fid::ROOT), records::encode_inode(&root).as_slice())?;
        }
        txn.commit()?;
        drop(db);
        tracing::info!(path = %path.display(), fsname, "formatted MDT");
        Mdt::open(path)
    }

    /// Opens an MDT. Orphans left by a previous run (unlinked while open)
    /// are destroyed: their objects go to the destroy log.
    pub fn open(path: impl AsRef<Path>) -> Result<Mdt, MdsError> {
        Mdt::open_with(path, PoolTunables::default())
    }

    /// `open`, with the object pool tunables given.
    pub fn open_with(path: impl AsRef<Path>, tunables: PoolTunables) -> Result<Mdt, MdsError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(MdsError::NotFormatted(format!("{}: no such file", path.display())));
        }
        let db =
            Database::open(path).map_err(|e| MdsError::NotFormatted(format!("{}: {e}", path.display())))?;
        migrate::upgrade(&db, path)?;
        let shared = Shared {
            db,
            pools: ObjectPools::new(tunables),
            opens: OpenFiles::default(),
            stats: Stats::default(),
            gate: Mutex::new(()),
        };
        let fsname = {
            let txn = shared.db.begin_read()?;
            let t = ReadTables::open(&txn)
                .map_err(|e| MdsError::NotFormatted(format!("{}: {e}", path.display())))?;
            for item in t.ost_used.iter()? {
                let (k, v) = item?;
                let (ost, seq) = k.value();
                shared.pools.note_used(ost, seq, v.value());
            }
            String::from_utf8_lossy(&t.meta(tables::META_FSNAME)?.unwrap_or_default()).into_owned()
        };
        cleanup_orphans(&shared)?;

        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::channel();
        let worker = shared.clone();
        let committer = std::thread::Builder::new()
            .name(format!("mdt-commit-{fsname}"))
            .spawn(move || commit::committer(&worker, rx))
            .map_err(|e| MdsError::Store(format!("cannot start the committer: {e}")))?;
        tracing::info!(path = %path.display(), fsname, "opened MDT");
        Ok(Mdt { shared, path: path.to_path_buf(), fsname, tx: Some(tx), committer: Some(committer) })
    }

    pub fn fsname(&self) -> &str {
        &self.fsname
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The precreated-object pools new files take their objects from.
    pub fn pools(&self) -> &ObjectPools {
        &self.shared.pools
    }

    pub fn commit_stats(&self) -> CommitStats {
        self.shared.stats.snapshot()
    }

    /// Operations per group commit, as a histogram (`glint_mds_commit_batch_ops`).
    pub fn commit_batches(&self) -> &prometheus::Histogram {
        &self.shared.stats.batch
    }

    /// Seconds per group commit by phase (`glint_mds_commit_seconds`).
    pub fn commit_seconds(&self) -> &prometheus::HistogramVec {
        &self.shared.stats.seconds
    }

    /// Holds every commit until the guard is dropped (waits for the batch
    /// in progress).
    pub fn freeze(&self) -> Freeze<'_> {
        Freeze { _gate: self.shared.gate.lock().unwrap_or_else(|e| e.into_inner()) }
    }

    /// Queues a change for the committer; the ticket answers once it is
    /// durable (or refused).
    pub fn submit(&self, op: Op) -> Ticket {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if let Some(tx) = &self.tx {
            self.shared.stats.queued.fetch_add(1, Ordering::Relaxed);
            if tx.send(Job { op, reply }).is_err() {
                self.shared.stats.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Ticket { rx }
    }

    fn run(&self, op: Op) -> Result<Reply, MdsError> {
        self.submit(op).wait()
    }

    fn run_attr(&self, op: Op) -> Result<Attr, MdsError> {
        match self.run(op)? {
            Reply::Attr(a) | Reply::Created { attr: a, .. } => Ok(a),
            Reply::Done => Err(MdsError::Corrupt("committer answered with no attributes".into())),
        }
    }

    fn run_done(&self, op: Op) -> Result<(), MdsError> {
        self.run(op).map(|_| ())
    }

    /// Creates regular file `name` in `parent` with permission bits `mode`
    /// (umask already applied) and striping `stripe` (unset fields inherit
    /// the directory's default, then the file system's).
    pub fn create(
        &self,
        cred: &Cred,
        parent: Fid,
        name: impl AsRef<[u8]>,
        mode: u32,
        stripe: &StripeSpec,
    ) -> Result<(Attr, Layout), MdsError> {
        let op =
            Op::Create { cred: cred.clone(), parent, name: name.as_ref().to_vec(), mode, stripe: *stripe };
        match self.run(op)? {
            Reply::Created { attr, layout } => Ok((attr, layout)),
            _ => Err(MdsError::Corrupt("committer answered a create with no layout".into())),
        }
    }

    pub fn mkdir(
        &self,
        cred: &Cred,
        parent: Fid,
        name: impl AsRef<[u8]>,
        mode: u32,
    ) -> Result<Attr, MdsError> {
        self.run_attr(Op::Mkdir { cred: cred.clone(), parent, name: name.as_ref().to_vec(), mode })
    }

    /// `mode` carries the type: `S_IFIFO`, `S_IFSOCK`, `S_IFCHR`, `S_IFBLK`
    /// (root only), or `S_IFREG` (a file with default striping).
    pub fn mknod(
        &self,
        cred: &Cred,
        parent: Fid,
        name: impl AsRef<[u8]>,
        mode: u32,
        rdev: u64,
    ) -> Result<Attr, MdsError> {
        self.run_attr(Op::Mknod { cred: cred.clone(), parent, name: name.as_ref().to_vec(), mode, rdev })
    }

    pub fn symlink(
        &self,
        cred: &Cred,
        parent: Fid,
        name: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> Result<Attr, MdsError> {
        let op = Op::Symlink {
            cred: cred.clone(),
            parent,
            name: name.as_ref().to_vec(),
            target: target.as_ref().to_vec(),
        };
        self.run_attr(op)
    }

    /// A new name `name` in `parent` for `fid`.
    pub fn link(&self, cred: &Cred, fid: Fid, parent: Fid, name: impl AsRef<[u8]>) -> Result<Attr, MdsError> {
        self.run_attr(Op::Link { cred: cred.clone(), fid, parent, name: name.as_ref().to_vec() })
    }

    pub fn unlink(&self, cred: &Cred, parent: Fid, name: impl AsRef<[u8]>) -> Result<(), MdsError> {
        self.run_done(Op::Unlink { cred: cred.clone(), parent, name: name.as_ref().to_vec() })
    }

    pub fn rmdir(&self, cred: &Cred, parent: Fid, name: impl AsRef<[u8]>) -> Result<(), MdsError> {
        self.run_done(Op::Rmdir { cred: cred.clone(), parent, name: name.as_ref().to_vec() })
    }

    pub fn rename(
        &self,
        cred: &Cred,
        src_parent: Fid,
        src_name: impl AsRef<[u8]>,
        dst_parent: Fid,
        dst_name: impl AsRef<[u8]>,
    ) -> Result<(), MdsError> {
        self.run_done(Op::Rename {
            cred: cred.clone(),
            src_parent,
            src_name: src_name.as_ref().to_vec(),
            dst_parent,
            dst_name: dst_name.as_ref().to_vec(),
        })
    }

    pub fn setattr(&self, cred: &Cred, fid: Fid, attr: &SetAttr) -> Result<Attr, MdsError> {
        self.run_attr(Op::SetAttr { cred: cred.clone(), fid, attr: *attr })
    }

    pub fn setxattr(
        &self,
        cred: &Cred,
        fid: Fid,
        name: &str,
        value: &[u8],
        mode: XattrMode,
    ) -> Result<(), MdsError> {
        self.run_done(Op::SetXattr {
            cred: cred.clone(),
            fid,
            name: name.to_string(),
            value: value.to_vec(),
            mode,
        })
    }

    pub fn removexattr(&self, cred: &Cred, fid: Fid, name: &str) -> Result<(), MdsError> {
        self.run_done(Op::RemoveXattr { cred: cred.clone(), fid, name: name.to_string() })
    }

    /// Sets (`None`: removes) the default striping of directory `dir`.
    pub fn set_dir_stripe(&self, cred: &Cred, dir: Fid, spec: Option<StripeSpec>) -> Result<(), MdsError> {
        self.run_done(Op::SetDirStripe { cred: cred.clone(), dir, spec })
    }

    /// Sets the file system's default striping (root only).
    pub fn set_fs_stripe(&self, cred: &Cred, spec: StripeSpec) -> Result<(), MdsError> {
        self.run_done(Op::SetFsStripe { cred: cred.clone(), spec })
    }

    /// Forgets destroy-log entries whose objects the OSTs destroyed.
    pub fn destroy_log_done(&self, ids: &[u64]) -> Result<(), MdsError> {
        self.run_done(Op::DestroyDone { ids: ids.to_vec() })
    }

    /// Drops one open of `fid`; the last close of an unlinked file destroys
    /// it (durably) before returning.
    pub fn close_file(&self, fid: Fid) -> Result<(), MdsError> {
        if self.shared.opens.close(fid)? {
            // Queued behind the unlink that orphaned it, if that has not
            // committed yet; a no-op if that unlink was refused after all.
            self.run_done(Op::ReleaseOrphan { fid })?;
        }
        Ok(())
    }

    /// Stops the committer after the queued operations are answered.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(h) = self.committer.take()
            && h.join().is_err()
        {
            tracing::error!(fsname = %self.fsname, "the MDT committer panicked");
        }
    }

    pub(crate) fn read(&self) -> Result<ReadTables, MdsError> {
        let txn = self.shared.db.begin_read()?;
        ReadTables::open(&txn)
    }
}

impl std::fmt::Debug for Mdt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mdt").field("fsname", &self.fsname).field("path", &self.path).finish_non_exhaustive()
    }
}

impl Drop for Mdt {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Destroys every orphan: nothing is open after a restart.
fn cleanup_orphans(shared: &Shared) -> Result<(), MdsError> {
    let txn = shared.db.begin_write()?;
    let count = {
        let mut b = Batch::new(&txn, &shared.pools, &shared.opens)?;
        let mut orphans = Vec::new();
        for item in b.t.orphans.iter()? {
            orphans.push(records::key_fid(item?.0.value()));
        }
        for &fid in &orphans {
            b.destroy(fid)?;
        }
        orphans.len()
    };
    if count > 0 {
        txn.commit()?;
        tracing::info!(count, "destroyed orphans left by the previous run");
    } else {
        txn.abort()?;
    }
    Ok(())
}
