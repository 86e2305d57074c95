//! The object store of one OST: a labelled directory holding objects
//! under `O/`, and everything an OST does to its disk.
//!
//! Every operation is a blocking system call or a few; call them from
//! service threads (or `spawn_blocking`), any number at once. Requests for
//! different objects share no lock beyond a shard of the descriptor cache;
//! requests on one object are ordered by its range lock.

use crate::attr::{self, ObjAttr, ObjTimes};
use crate::direct_io;
use crate::durable::{make_dir, sync_dir};
use crate::error::{OstError, Result};
use crate::fd_cache::FdCache;
use crate::label::{LABEL_FILE, Label, check_fsname};
use crate::last_id::LastId;
use crate::object::ObjectHandle;
use crate::paths::{self, SUBDIRS};
use crate::range_lock::Mode;
use crate::space;
use proto::layout::MAX_FILE_SIZE;
use proto::{Fid, StatFs};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The ceiling for one precreate request, shared with the MDS through the protocol.
pub use proto::ost::MAX_PRECREATE;

/// How a store is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Objects kept open; each may hold two descriptors (buffered and
    /// `O_DIRECT`).
    pub fd_cache: usize,
    /// Use `O_DIRECT` for aligned requests when the file system allows it.
    pub direct_io: bool,
}

impl Default for StoreOptions {
    /// A quarter of the descriptor limit for cached objects (leaving the
    /// rest for sockets and the second descriptor), direct I/O on.
    fn default() -> StoreOptions {
        // SAFETY: zeroed is a valid rlimit; getrlimit fills it.
        let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: valid out pointer.
        let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
            rl.rlim_cur as usize
        } else {
            1024
        };
        StoreOptions { fd_cache: (limit / 4).clamp(64, 16_384), direct_io: true }
    }
}

/// One OST's objects on a local directory.
#[derive(Debug)]
pub struct ObjectStore {
    root: PathBuf,
    label: Label,
    direct_io: bool,
    /// Cleared the first time the file system refuses fallocate.
    fallocate_works: AtomicBool,
    fds: FdCache,
    /// Sequences whose directory tree is known to exist.
    seqs: RwLock<HashSet<u64>>,
    last_ids: RwLock<HashMap<u64, Arc<Mutex<LastId>>>>,
    root_file: File,
    /// How many times the target has been opened, this time included.
    run: u32,
}

/// The count of the target's runs (opens), kept as LAST_ID is.
const RUNS_FILE: &str = "RUNS";

fn check_range(fid: Fid, off: u64, len: u64) -> Result<u64> {
    match off.checked_add(len) {
        Some(end) if end <= MAX_FILE_SIZE => Ok(end),
        _ => Err(OstError::TooBig { fid, off, len, max: MAX_FILE_SIZE }),
    }
}

fn check_oid(fid: Fid) -> Result<()> {
    if fid.oid == 0 {
        return Err(OstError::InvalidArgument(format!("object {fid}: oid 0 names no object")));
    }
    Ok(())
}

impl ObjectStore {
    /// Makes `dir` (created if missing) a target of file system `fsname`
    /// with OST index `index`: the `O/` tree, then the label, so a label
    /// on disk always means a complete format. Refuses a directory that
    /// already has a label.
    pub fn format(dir: &Path, fsname: &str, index: u32) -> Result<Label> {
        check_fsname(fsname)?;
        std::fs::create_dir_all(dir).map_err(|e| OstError::io(format!("mkdir {}", dir.display()), e))?;
        if let Some(found) = Label::read(dir)? {
            return Err(OstError::AlreadyFormatted { dir: dir.to_path_buf(), found: found.target_name() });
        }
        make_dir(&paths::objects_dir(dir))?;
        let label = Label::new(fsname, index)?;
        label.write(dir)?;
        tracing::info!(dir = %dir.display(), target = %label.target_name(), uuid = %label.uuid, "formatted");
        Ok(label)
    }

    /// Opens the target in `dir` with default options; see [`ObjectStore::open_with`].
    pub fn open(dir: &Path, fsname: &str, index: u32) -> Result<ObjectStore> {
        ObjectStore::open_with(dir, fsname, index, StoreOptions::default())
    }

    /// Opens the target in `dir`, refusing it unless its label names file
    /// system `fsname` and OST index `index`.
    pub fn open_with(dir: &Path, fsname: &str, index: u32, opts: StoreOptions) -> Result<ObjectStore> {
        let not_formatted = || OstError::NotFormatted { dir: dir.to_path_buf() };
        if !dir.is_dir() {
            return Err(not_formatted());
        }
        let label = Label::read(dir)?.ok_or_else(not_formatted)?;
        if label.fsname != fsname || label.index != index {
            return Err(OstError::LabelMismatch {
                dir: dir.to_path_buf(),
                fsname: fsname.to_string(),
                index,
                found_fsname: label.fsname,
                found_index: label.index,
            });
        }
        let objects = paths::objects_dir(dir);
        if !objects.is_dir() {
            return Err(OstError::Damaged {
                path: objects,
                reason: "the object directory is missing".into(),
            });
        }
        let _ = std::fs::remove_file(dir.join(format!("{LABEL_FILE}.tmp")));
        let direct_io = opts.direct_io && direct_io::probe(dir);
        let root_file = File::open(dir).map_err(|e| OstError::io(format!("open {}", dir.display()), e))?;
        let mut runs = LastId::open(&dir.join(RUNS_FILE))?;
        let run = runs.get() + 1;
        runs.advance(run)?;
        tracing::info!(dir = %dir.display(), target = %label.target_name(), direct_io, run, "target opened");
        Ok(ObjectStore {
            root: dir.to_path_buf(),
            label,
            direct_io,
            fallocate_works: AtomicBool::new(true),
            fds: FdCache::new(opts.fd_cache),
            seqs: RwLock::new(HashSet::new()),
            last_ids: RwLock::new(HashMap::new()),
            root_file,
            run,
        })
    }

    /// Which run of the target this is: 1 the first time it is opened, one
    /// more each time after (durably counted), so what was handed out in a
    /// run can be told from an earlier run's.
    pub fn run(&self) -> u32 {
        self.run
    }

    pub fn label(&self) -> &Label {
        &self.label
    }

    /// The target directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether aligned requests bypass the page cache on this target.
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    /// Objects currently held open by the descriptor cache.
    pub fn open_objects(&self) -> usize {
        self.fds.len()
    }

    // ---- namespace -------------------------------------------------------

    /// Creates the directory tree of `seq` once (all 32 subdirectories, as
    /// Lustre does), durably.
    fn ensure_seq(&self, seq: u64) -> Result<()> {
        if self.seqs.read().unwrap_or_else(|p| p.into_inner()).contains(&seq) {
            return Ok(());
        }
        let mut seqs = self.seqs.write().unwrap_or_else(|p| p.into_inner());
        if seqs.contains(&seq) {
            return Ok(());
        }
        let dir = paths::seq_dir(&self.root, seq);
        make_dir(&dir)?;
        for d in 0..SUBDIRS {
            let sub = paths::sub_dir(&self.root, seq, d);
            match std::fs::create_dir(&sub) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(OstError::io(format!("mkdir {}", sub.display()), e)),
            }
        }
        sync_dir(&dir)?;
        seqs.insert(seq);
        Ok(())
    }

    fn last_id_record(&self, seq: u64) -> Result<Arc<Mutex<LastId>>> {
        if let Some(r) = self.last_ids.read().unwrap_or_else(|p| p.into_inner()).get(&seq) {
            return Ok(r.clone());
        }
        let mut map = self.last_ids.write().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(&seq) {
            return Ok(r.clone());
        }
        let r = Arc::new(Mutex::new(LastId::open(&paths::last_id_path(&self.root, seq))?));
        map.insert(seq, r.clone());
        Ok(r)
    }

    fn advance_last_id(&self, seq: u64, oid: u32) -> Result<u32> {
        let rec = self.last_id_record(seq)?;
        let mut rec = rec.lock().unwrap_or_else(|p| p.into_inner());
        rec.advance(oid)?;
        Ok(rec.get())
    }

    /// Creates the file of one object; `Ok(false)` if it already existed.
    fn create_file(&self, fid: Fid) -> Result<bool> {
        let path = paths::object_path(&self.root, fid);
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(OstError::io(format!("create object {fid} at {}", path.display()), e)),
        }
    }

    /// Creates one empty object, durably, and raises LAST_ID of its
    /// sequence to it if it is the highest. EEXIST if it exists.
    pub fn create(&self, fid: Fid) -> Result<()> {
        check_oid(fid)?;
        self.ensure_seq(fid.seq)?;
        if !self.create_file(fid)? {
            return Err(OstError::ObjectExists(fid));
        }
        sync_dir(&paths::sub_dir(&self.root, fid.seq, fid.oid))?;
        self.advance_last_id(fid.seq, fid.oid)?;
        tracing::debug!(%fid, "object created");
        Ok(())
    }

    /// Creates objects `first_oid ..= first_oid + count - 1` of `seq` for
    /// the MDS's pool, skipping any that exist (so a resent request is
    /// harmless), makes them durable with one fsync per directory touched,
    /// then records the new LAST_ID durably. Returns LAST_ID after.
    pub fn precreate(&self, seq: u64, first_oid: u32, count: u32) -> Result<u32> {
        if first_oid == 0 || count == 0 || count > MAX_PRECREATE {
            return Err(OstError::InvalidArgument(format!(
                "precreate of {count} objects from oid {first_oid} in sequence {seq:#x}: \
                 need oid >= 1 and 1 to {MAX_PRECREATE} objects"
            )));
        }
        let last = first_oid.checked_add(count - 1).ok_or_else(|| {
            OstError::InvalidArgument(format!(
                "precreate of {count} objects from oid {first_oid} runs past the largest oid"
            ))
        })?;
        self.ensure_seq(seq)?;
        // Held throughout, so an orphan cleanup of the sequence never runs
        // beside a precreate of it.
        let rec = self.last_id_record(seq)?;
        let mut rec = rec.lock().unwrap_or_else(|p| p.into_inner());
        let mut touched = 0u32;
        let mut created = 0u32;
        for oid in first_oid..=last {
            if self.create_file(Fid::new(seq, oid))? {
                touched |= 1 << (oid % SUBDIRS);
                created += 1;
            }
        }
        for d in (0..SUBDIRS).filter(|d| touched & (1 << d) != 0) {
            sync_dir(&paths::sub_dir(&self.root, seq, d))?;
        }
        rec.advance(last)?;
        let last_id = rec.get();
        tracing::debug!(seq = format_args!("{seq:#x}"), first_oid, count, created, last_id, "precreated");
        Ok(last_id)
    }

    /// Destroys every object of `seq` above `last_used` up to LAST_ID:
    /// those the MDS precreated and never gave to a file (the MDS's pool
    /// when it stopped). LAST_ID stays where it is, so precreation goes on
    /// above it and no object id is used twice. Durable when it returns;
    /// if the process dies part way, running it again finishes the job.
    /// Returns LAST_ID and how many objects were destroyed.
    pub fn destroy_orphans(&self, seq: u64, last_used: u32) -> Result<(u32, u32)> {
        if self.last_id(seq)? == 0 {
            // Nothing was ever precreated in this sequence.
            return Ok((0, 0));
        }
        let rec = self.last_id_record(seq)?;
        let rec = rec.lock().unwrap_or_else(|p| p.into_inner());
        let last_id = rec.get();
        let mut touched = 0u32;
        let mut destroyed = 0u32;
        for oid in last_used.saturating_add(1)..=last_id {
            let fid = Fid::new(seq, oid);
            let path = paths::object_path(&self.root, fid);
            match self.fds.remove_then(fid, || std::fs::remove_file(&path)) {
                Ok(()) => {
                    touched |= 1 << (oid % SUBDIRS);
                    destroyed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(OstError::io(format!("unlink orphan {fid} at {}", path.display()), e)),
            }
        }
        for d in (0..SUBDIRS).filter(|d| touched & (1 << d) != 0) {
            sync_dir(&paths::sub_dir(&self.root, seq, d))?;
        }
        if destroyed > 0 {
            tracing::info!(
                seq = format_args!("{seq:#x}"),
                last_used,
                last_id,
                destroyed,
                "destroyed orphan objects"
            );
        }
        Ok((last_id, destroyed))
    }

    /// The highest oid created in `seq` as recorded durably (0 when none).
    pub fn last_id(&self, seq: u64) -> Result<u32> {
        if let Some(r) = self.last_ids.read().unwrap_or_else(|p| p.into_inner()).get(&seq) {
            return Ok(r.lock().unwrap_or_else(|p| p.into_inner()).get());
        }
        LastId::peek(&paths::last_id_path(&self.root, seq))
    }

    /// Removes an object and frees its space, durably. Requests already
    /// running on it finish on the unlinked file; later ones get ENOENT.
    pub fn destroy(&self, fid: Fid) -> Result<()> {
        check_oid(fid)?;
        let path = paths::object_path(&self.root, fid);
        self.fds.remove_then(fid, || std::fs::remove_file(&path)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                OstError::NoSuchObject(fid)
            } else {
                OstError::io(format!("unlink object {fid} at {}", path.display()), e)
            }
        })?;
        sync_dir(&paths::sub_dir(&self.root, fid.seq, fid.oid))?;
        tracing::debug!(%fid, "object destroyed");
        Ok(())
    }

    fn handle(&self, fid: Fid) -> Result<Arc<ObjectHandle>> {
        check_oid(fid)?;
        let path = paths::object_path(&self.root, fid);
        self.fds.get_or_open(fid, || {
            ObjectHandle::open(fid, path.clone()).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => OstError::NoSuchObject(fid),
                _ => OstError::io(format!("open object {fid} at {}", path.display()), e),
            })
        })
    }

    // ---- data ------------------------------------------------------------

    /// Makes sure `[off, off+len)` of the object has its blocks, so the
    /// write that follows cannot run out of space half way. Blocks this
    /// handle reserved before, and nothing freed since, are not asked for
    /// again. The caller holds the range exclusively.
    fn reserve(&self, h: &ObjectHandle, off: u64, len: u64) -> Result<()> {
        let fid = h.fid;
        if self.fallocate_works.load(Ordering::Relaxed) {
            if h.allocated().covers(off, off + len) {
                return Ok(());
            }
            match space::reserve(&h.file, off, len) {
                Ok(()) => {
                    h.allocated().insert(off, off + len);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    self.undo_reserve(h, off, len);
                    return Err(OstError::NoSpace { fid, off, len });
                }
                Err(e) if space::unsupported(&e) => {
                    tracing::warn!(dir = %self.root.display(), "fallocate unsupported; checking free space instead");
                    self.fallocate_works.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(OstError::io(format!("reserve space in object {fid}"), e)),
            }
        }
        let avail = space::available_bytes(&self.root)
            .map_err(|e| OstError::io(format!("statvfs {}", self.root.display()), e))?;
        if avail < len { Err(OstError::NoSpace { fid, off, len }) } else { Ok(()) }
    }

    /// After a reservation failed part way, frees what it left past the end
    /// of the object. Only bytes of this request's own range, past the
    /// size, are touched: no data lives there, and the range lock keeps
    /// every other request out of it.
    fn undo_reserve(&self, h: &ObjectHandle, off: u64, len: u64) {
        let end = off + len;
        h.allocated().remove(off, end);
        let Ok(meta) = h.file.metadata() else { return };
        let start = off.max(meta.len());
        if start < end
            && let Err(e) = space::punch_hole(&h.file, start, end - start)
        {
            tracing::warn!(fid = %h.fid, error = %e, "could not free a failed reservation");
        }
    }

    /// Writes `data` at `off`. Either every byte is written or, when space
    /// runs out, none is and the error is ENOSPC. With `sync`, the data
    /// (and the size it implies) is on disk when this returns.
    pub fn write(&self, fid: Fid, off: u64, data: &[u8], sync: bool) -> Result<()> {
        let end = check_range(fid, off, data.len() as u64)?;
        let h = self.handle(fid)?;
        if data.is_empty() {
            return Ok(());
        }
        let _range = h.ranges.lock(off, end, Mode::Exclusive);
        self.reserve(&h, off, data.len() as u64)?;
        let io_err = |e| OstError::io(format!("write object {fid} at {off}"), e);
        let mut done = false;
        if self.direct_io
            && direct_io::eligible(data.as_ptr(), off, data.len())
            && let Some(f) = h.direct_file()
        {
            match f.write_all_at(data, off) {
                Ok(()) => done = true,
                // The file system took the descriptor but not this request; buffered serves.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        if !done {
            h.file.write_all_at(data, off).map_err(io_err)?;
        }
        if sync {
            h.file.sync_data().map_err(|e| OstError::io(format!("fdatasync object {fid}"), e))?;
        }
        Ok(())
    }

    /// Reads into `buf` from `off`; returns the bytes read, fewer than
    /// `buf.len()` only at the end of the object. Holes read as zeros.
    pub fn read(&self, fid: Fid, off: u64, buf: &mut [u8]) -> Result<usize> {
        if off > MAX_FILE_SIZE {
            return Err(OstError::TooBig { fid, off, len: buf.len() as u64, max: MAX_FILE_SIZE });
        }
        let h = self.handle(fid)?;
        // Nothing is ever stored past the largest size.
        let want = (buf.len() as u64).min(MAX_FILE_SIZE - off) as usize;
        let buf = &mut buf[..want];
        if buf.is_empty() {
            return Ok(0);
        }
        let _range = h.ranges.lock(off, off + want as u64, Mode::Shared);
        let io_err = |e| OstError::io(format!("read object {fid} at {off}"), e);
        let mut got = 0;
        if self.direct_io
            && direct_io::eligible(buf.as_ptr(), off, buf.len())
            && let Some(f) = h.direct_file()
        {
            match read_full(f, buf, off, true) {
                Ok(n) => return Ok(n),
                Err((n, e)) if e.raw_os_error() == Some(libc::EINVAL) => got = n,
                Err((_, e)) => return Err(io_err(e)),
            }
        }
        match read_full(&h.file, &mut buf[got..], off + got as u64, false) {
            Ok(n) => Ok(got + n),
            Err((_, e)) => Err(io_err(e)),
        }
    }

    /// Frees `[off, off+len)`: it reads as zeros afterwards, its blocks
    /// return to the file system, the size stays. A range running past
    /// the end of the object is cut there (pass `u64::MAX - off` to punch
    /// to the end).
    pub fn punch(&self, fid: Fid, off: u64, len: u64) -> Result<()> {
        if off > MAX_FILE_SIZE {
            return Err(OstError::TooBig { fid, off, len, max: MAX_FILE_SIZE });
        }
        let end = off.saturating_add(len).min(MAX_FILE_SIZE);
        let h = self.handle(fid)?;
        if end == off {
            return Ok(());
        }
        let _range = h.ranges.lock(off, end, Mode::Exclusive);
        // Past the size there is nothing to free (and asking the file system
        // to punch beyond its own largest file is EFBIG). The size cannot
        // grow into our range while we hold it.
        let size = h.file.metadata().map_err(|e| OstError::io(format!("fstat object {fid}"), e))?.len();
        let end = end.min(size);
        if end <= off {
            return Ok(());
        }
        h.allocated().remove(off, end);
        match space::punch_hole(&h.file, off, end - off) {
            Ok(()) => Ok(()),
            Err(e) if space::unsupported(&e) => self.zero_range(&h, off, end),
            Err(e) => Err(OstError::io(format!("punch object {fid} at {off} for {len}"), e)),
        }
    }

    /// Punch for file systems without hole punching: the range reads as
    /// zeros, though its space stays allocated.
    fn zero_range(&self, h: &ObjectHandle, off: u64, end: u64) -> Result<()> {
        let fid = h.fid;
        let zeros = vec![0u8; 1 << 20];
        let mut at = off;
        while at < end {
            let n = (end - at).min(zeros.len() as u64) as usize;
            h.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| OstError::io(format!("zero object {fid} at {at}"), e))?;
            at += n as u64;
        }
        Ok(())
    }

    /// Sets the object's size: cuts it (freeing the blocks past `size`) or
    /// extends it with a hole.
    pub fn truncate(&self, fid: Fid, size: u64) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(OstError::TooBig { fid, off: size, len: 0, max: MAX_FILE_SIZE });
        }
        let h = self.handle(fid)?;
        // Everything from the new end on changes, whichever way the size moves.
        let _range = h.ranges.lock(size, u64::MAX, Mode::Exclusive);
        h.allocated().remove(size, u64::MAX);
        h.file.set_len(size).map_err(|e| OstError::io(format!("truncate object {fid} to {size}"), e))
    }

    // ---- attributes and durability ---------------------------------------

    pub fn getattr(&self, fid: Fid) -> Result<ObjAttr> {
        let h = self.handle(fid)?;
        let m = h.file.metadata().map_err(|e| OstError::io(format!("fstat object {fid}"), e))?;
        Ok(attr::from_metadata(&m))
    }

    /// Sets the access and modification times the request carries.
    pub fn setattr(&self, fid: Fid, times: ObjTimes) -> Result<()> {
        for t in [times.atime, times.mtime].into_iter().flatten() {
            if t.nsec >= 1_000_000_000 {
                return Err(OstError::InvalidArgument(format!("object {fid}: {} nanoseconds", t.nsec)));
            }
        }
        let h = self.handle(fid)?;
        attr::set_times(&h.file, times).map_err(|e| OstError::io(format!("set times of object {fid}"), e))
    }

    /// Makes every completed write to the object durable (fdatasync).
    pub fn sync(&self, fid: Fid) -> Result<()> {
        let h = self.handle(fid)?;
        h.file.sync_data().map_err(|e| OstError::io(format!("fdatasync object {fid}"), e))
    }

    /// Makes everything written to the target durable (syncfs).
    pub fn sync_all(&self) -> Result<()> {
        space::syncfs(&self.root_file).map_err(|e| OstError::io(format!("syncfs {}", self.root.display()), e))
    }

    /// Space and inodes of the backing file system.
    pub fn statfs(&self) -> Result<StatFs> {
        space::statfs(&self.root).map_err(|e| OstError::io(format!("statvfs {}", self.root.display()), e))
    }
}

/// `pread` until `buf` is full or the file ends. On error, also says how
/// much was read before it. On an `O_DIRECT` descriptor (`direct`), a read
/// that stops off alignment has met the end of the file; asking again from
/// there would only earn EINVAL.
fn read_full(
    f: &File,
    buf: &mut [u8],
    off: u64,
    direct: bool,
) -> std::result::Result<usize, (usize, io::Error)> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if direct && !n.is_multiple_of(crate::aligned_buf::DIRECT_IO_ALIGN) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((got, e)),
        }
    }
    Ok(got)
}
