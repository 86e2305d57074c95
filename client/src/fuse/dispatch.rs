//! The kernel's FUSE requests, each handed to a task on the mount's tokio
//! runtime so that slow ones (a 64 MiB read, a stat that asks every OST)
//! never hold up the others; the task answers the kernel when it is done.

use super::convert::{time_or_now, timestamp, to_fuse_errno};
use super::cred::Caller;
use super::mounted::{Mounted, OrErrno, R};
use crate::io::ReadStart;
use fuser::{
    AccessFlags, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use proto::SetAttr;
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;

/// How many entries one readdir asks for at most; the kernel's buffer
/// usually fills before that.
const READDIR_BATCH: usize = 1024;

pub(crate) struct GlintFs {
    pub m: Arc<Mounted>,
    pub rt: Handle,
}

fn err(e: fabric::Errno) -> fuser::Errno {
    to_fuse_errno(e)
}

fn empty(reply: ReplyEmpty, r: R<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(err(e)),
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, r: R<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => match u32::try_from(v.len()) {
            Ok(n) => reply.size(n),
            Err(_) => reply.error(fuser::Errno::E2BIG),
        },
        Ok(v) if v.len() > size as usize => reply.error(fuser::Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(err(e)),
    }
}

/// Directory contents may change under another client, and the file
/// data is never cached: every open reads the OSTs.
fn open_flags() -> FopenFlags {
    FopenFlags::FOPEN_DIRECT_IO
}

impl GlintFs {
    fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(Arc<Mounted>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(Arc::clone(&self.m)));
    }

    fn ttl(&self) -> (Duration, Duration) {
        (self.m.opts.entry_ttl, self.m.opts.attr_ttl)
    }

    fn entry_task<Fut>(&self, reply: ReplyEntry, f: impl FnOnce(Arc<Mounted>) -> Fut)
    where
        Fut: Future<Output = R<fuser::FileAttr>> + Send + 'static,
    {
        let (entry_ttl, _) = self.ttl();
        let m = Arc::clone(&self.m);
        let fut = f(Arc::clone(&self.m));
        self.rt.spawn(async move {
            match fut.await {
                Ok(a) => reply.entry_with_ttls(&entry_ttl, &m.attr_ttl_of(a.ino.0), &a, Generation(0)),
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn attr_task<Fut>(&self, reply: ReplyAttr, fut: Fut)
    where
        Fut: Future<Output = R<fuser::FileAttr>> + Send + 'static,
    {
        let m = Arc::clone(&self.m);
        self.rt.spawn(async move {
            match fut.await {
                Ok(a) => reply.attr(&m.attr_ttl_of(a.ino.0), &a),
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn empty_task<Fut>(&self, reply: ReplyEmpty, fut: Fut)
    where
        Fut: Future<Output = R<()>> + Send + 'static,
    {
        self.rt.spawn(async move { empty(reply, fut.await) });
    }
}

impl Filesystem for GlintFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let max = self.m.opts.max_io;
        if let Err(nearest) = config.set_max_write(max) {
            tracing::info!(wanted = max, nearest, "max_write limited");
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(max) {
            let _ = config.set_max_readahead(nearest);
        }
        // Directory operations of different names in one directory may run
        // together: the MDS serialises what must be.
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Shared mappings of files opened for direct I/O, which programs
        // that mmap their files (databases, some build tools) need.
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        // Files are opened for direct I/O; without this the kernel sends an
        // application's O_DIRECT aio (fio's iodepth, databases) one request
        // at a time, so the stripes were never read or written in parallel.
        let _ = config.add_capabilities(InitFlags::FUSE_ASYNC_DIO);
        // `ls -l` gets the entries of a directory with their attributes,
        // read ahead in batches, instead of a lookup per name; the kernel
        // asks for them only while the listing's names are being looked up.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (c, name) = (Caller::from_request(req), name.to_owned());
        self.entry_task(reply, move |m| async move { m.lookup(c, parent.0, &name).await });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.m.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.m.fresh_dir_attr(ino.0) {
            Some(Ok(a)) => return reply.attr(&self.m.opts.attr_ttl, &a),
            Some(Err(e)) => return reply.error(err(e)),
            None => {}
        }
        let (c, m) = (Caller::from_request(req), Arc::clone(&self.m));
        self.attr_task(reply, async move { m.getattr(c, ino.0).await });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ((atime, atime_now), (mtime, mtime_now)) = (time_or_now(atime), time_or_now(mtime));
        let set = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime: ctime.map(timestamp),
            atime_now,
            mtime_now,
        };
        let (c, m) = (Caller::from_request(req), Arc::clone(&self.m));
        self.attr_task(reply, async move { m.setattr(c, ino.0, set).await });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let c = Caller::from_request(req);
        self.spawn(move |m| async move {
            match m.readlink(c, ino.0).await {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (c, name) = (Caller::from_request(req), name.to_owned());
        self.entry_task(reply, move |m| async move { m.mknod(c, parent.0, &name, mode, rdev).await });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let (c, name) = (Caller::from_request(req), name.to_owned());
        self.entry_task(reply, move |m| async move { m.mkdir(c, parent.0, &name, mode).await });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (c, name, m) = (Caller::from_request(req), name.to_owned(), Arc::clone(&self.m));
        self.empty_task(reply, async move { m.unlink(c, parent.0, &name).await });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (c, name, m) = (Caller::from_request(req), name.to_owned(), Arc::clone(&self.m));
        self.empty_task(reply, async move { m.rmdir(c, parent.0, &name).await });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let (c, name, target) = (Caller::from_request(req), link_name.to_owned(), target.to_owned());
        self.entry_task(reply, move |m| async move { m.symlink(c, parent.0, &name, &target).await });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (c, m) = (Caller::from_request(req), Arc::clone(&self.m));
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.empty_task(reply, async move {
            m.rename(c, parent.0, &name, newparent.0, &newname, flags.bits()).await
        });
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (c, name) = (Caller::from_request(req), newname.to_owned());
        self.entry_task(reply, move |m| async move { m.link(c, ino.0, newparent.0, &name).await });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let c = Caller::from_request(req);
        self.spawn(move |m| async move {
            match m.open(c, ino.0, flags.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), open_flags()),
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // A read the cache holds is answered here, without waking the
        // runtime: a cross-CPU wake-up costs more than the copy.
        let started = {
            let _in_runtime = self.rt.enter();
            self.m.read_start(fh.0, offset, size)
        };
        match started {
            Ok(Some(ReadStart::Done(d))) => reply.data(&d),
            Ok(Some(ReadStart::Pending(p))) => {
                self.rt.spawn(async move {
                    match p.finish().await.or_errno() {
                        Ok(d) => reply.data(&d),
                        Err(e) => reply.error(err(e)),
                    }
                });
            }
            Ok(None) => self.spawn(move |m| async move {
                match m.read(fh.0, offset, size).await {
                    Ok(d) => reply.data(&d),
                    Err(e) => reply.error(err(e)),
                }
            }),
            Err(e) => reply.error(err(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let taken = {
            let _in_runtime = self.rt.enter();
            self.m.write_now(fh.0, offset, data)
        };
        if taken {
            return reply.written(data.len() as u32);
        }
        let data = data.to_vec();
        self.spawn(move |m| async move {
            match m.write(fh.0, offset, data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let m = Arc::clone(&self.m);
        self.empty_task(reply, async move { m.flush(fh.0).await });
    }

    fn release(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let (c, m) = (Caller::from_request(req), Arc::clone(&self.m));
        self.empty_task(reply, async move { m.release(c, fh.0).await });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let m = Arc::clone(&self.m);
        self.empty_task(reply, async move { m.fsync(fh.0).await });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.m.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(&self, req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let c = Caller::from_request(req);
        self.spawn(move |m| async move {
            match m.readdir(c, fh.0, offset, READDIR_BATCH).await {
                Ok(entries) => {
                    for e in entries {
                        if reply.add(INodeNo(e.ino), e.next, e.kind, &e.name) {
                            break;
                        }
                    }
                    reply.ok()
                }
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let c = Caller::from_request(req);
        self.spawn(move |m| async move {
            match m.readdirplus(c, fh.0, offset, READDIR_BATCH).await {
                Ok(entries) => {
                    for e in entries {
                        let l = &e.listed;
                        if reply.add(INodeNo(l.ino), l.next, &l.name, &e.ttl, &e.attr, Generation(0)) {
                            break;
                        }
                        // The kernel holds the inode as after a lookup.
                        if let Some(t) = &e.took
                            && let Err(e) = m.took(ino.0, t)
                        {
                            tracing::warn!(fid = %t.fid, error = ?e, "readdirplus: cannot remember an inode");
                        }
                    }
                    reply.ok()
                }
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        match self.m.releasedir(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // The MDS replies only once a change is committed: nothing to sync.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.spawn(move |m| async move {
            match m.statfs().await {
                Ok(s) => {
                    reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize)
                }
                Err(e) => reply.error(err(e)),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (c, m) = (Caller::from_request(req), Arc::clone(&self.m));
        let (name, value) = (name.to_owned(), value.to_vec());
        self.empty_task(reply, async move { m.setxattr(c, ino.0, &name, value, flags).await });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // `ls -l` asks every file for `security.selinux`: answered here
        // for the files a listing found without any.
        if self.m.known_without_xattrs(ino.0) {
            return reply.error(err(fabric::Errno::ENODATA));
        }
        let (c, name) = (Caller::from_request(req), name.to_owned());
        self.spawn(move |m| async move { xattr_reply(reply, size, m.getxattr(c, ino.0, &name).await) });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if self.m.known_without_xattrs(ino.0) {
            return xattr_reply(reply, size, Ok(Vec::new()));
        }
        let c = Caller::from_request(req);
        self.spawn(move |m| async move { xattr_reply(reply, size, m.listxattr(c, ino.0).await) });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (c, m, name) = (Caller::from_request(req), Arc::clone(&self.m), name.to_owned());
        self.empty_task(reply, async move { m.removexattr(c, ino.0, &name).await });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (c, m) = (Caller::from_request(req), Arc::clone(&self.m));
        self.empty_task(reply, async move { m.access(c, ino.0, mask.bits()).await });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (c, name) = (Caller::from_request(req), name.to_owned());
        let (entry_ttl, _) = self.ttl();
        self.spawn(move |m| async move {
            match m.create(c, parent.0, &name, mode, flags).await {
                Ok((attr, fh)) => {
                    reply.created(&entry_ttl, &attr, Generation(0), FileHandle(fh), open_flags())
                }
                Err(e) => reply.error(err(e)),
            }
        });
    }
}
