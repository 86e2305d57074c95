//! Mounting: connect the client on the mount's own runtime, mount
//! `/dev/fuse` on the directory, and serve until unmounted — in the
//! foreground (`glint mount`) or on a background thread with a guard that
//! unmounts on drop.

use super::MountOptions;
use super::dispatch::GlintFs;
use super::mounted::Mounted;
use crate::{Client, ClientError, MountSpec};
use fabric::Errno;
use fuser::{MountOption, SessionACL};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::runtime::Runtime;

/// Why a mount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl MountError {
    pub fn errno(&self) -> Errno {
        match self {
            MountError::Client(e) => e.errno(),
            MountError::Io { source, .. } => Errno::from_io(source),
        }
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> MountError {
    move |source| MountError::Io { what, source }
}

fn runtime(opts: &MountOptions) -> Result<Runtime, MountError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .thread_name("glint-fuse")
        .enable_all()
        .build()
        .map_err(io("starting the mount's runtime"))
}

/// What the kernel is told: the source reads like Lustre's
/// (`127.0.0.1@tcp:/glint`), the type is `fuse.glint`.
fn fuse_config(spec: &MountSpec, opts: &MountOptions) -> fuser::Config {
    let mut c = fuser::Config::default();
    // The spec's own form, NIDs joined by ':': no comma, which would end
    // the option.
    let source = spec.to_string();
    c.mount_options = vec![
        MountOption::FSName(source),
        MountOption::CUSTOM("subtype=glint".into()),
        MountOption::CUSTOM(format!("max_read={}", opts.max_io)),
        MountOption::NoSuid,
        MountOption::NoDev,
        // The kernel checks each access against the inode's mode as well,
        // as it does for Lustre: a name another user looked up moments ago
        // is in the kernel's cache, and a path walk through it would not
        // otherwise reach the MDS, which checks every call it receives.
        MountOption::DefaultPermissions,
        if opts.read_only { MountOption::RO } else { MountOption::RW },
    ];
    c.acl = if opts.allow_other { SessionACL::All } else { SessionACL::Owner };
    c.n_threads = Some(opts.fuse_threads.max(1));
    c.clone_fd = true;
    c
}

/// Connects on a thread of its own: the caller may be inside another
/// runtime, where blocking on this one is not allowed.
fn connect(rt: &Runtime, spec: &str, opts: &MountOptions) -> Result<Arc<Client>, MountError> {
    let tunables = opts.tunables.clone();
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(Client::mount_with(spec, tunables)))
            .join()
            .unwrap_or(Err(ClientError::Errno(Errno::EIO)))
    })
    .map_err(MountError::from)
}

fn session(
    client: Arc<Client>,
    rt: &Runtime,
    spec: &MountSpec,
    dir: &Path,
    opts: MountOptions,
) -> Result<fuser::Session<GlintFs>, MountError> {
    let config = fuse_config(spec, &opts);
    let m = Arc::new(Mounted::new(client.clone(), opts));
    let fs = GlintFs { m: m.clone(), rt: rt.handle().clone() };
    let session = fuser::Session::new(fs, dir, &config).map_err(io("mounting /dev/fuse"))?;
    // The kernel caches a file's attributes for `attr_ttl`; they were read
    // under locks on its objects, and when one goes (another client
    // changes the file) the kernel's copy goes too, so a stat anywhere
    // shows a change at once. Attributes only (offset -1): the kernel
    // keeps no file data (direct I/O), and dropping the pages of a shared
    // mapping would wait on reads that may be waiting for this callback.
    let notifier = session.notifier();
    let mounted = Arc::downgrade(&m);
    client.on_lock_lost(Arc::new(move |object| {
        let Some(ino) = mounted.upgrade().and_then(|m| m.objects.ino_of(object)) else { return };
        if let Err(e) = notifier.inval_inode(fuser::INodeNo(ino), -1, 0) {
            tracing::debug!(ino, error = %e, "the kernel kept no attributes to drop");
        }
    }));
    Ok(session)
}

/// Mounts `spec` (`MGSNID:/FSNAME`) on `dir` and serves it until it is
/// unmounted (`umount DIR`, or SIGINT/SIGTERM to this process).
pub fn mount(spec: &str, dir: &Path, opts: MountOptions) -> Result<(), MountError> {
    mount_then(spec, dir, opts, |_, _| Ok(()))
}

/// [`mount`], calling `connected` with the client and the mount's runtime
/// once connected and before serving, to start what serves beside the
/// mount (its metrics).
pub fn mount_then(
    spec: &str,
    dir: &Path,
    opts: MountOptions,
    connected: impl FnOnce(&Arc<Client>, &tokio::runtime::Handle) -> std::io::Result<()>,
) -> Result<(), MountError> {
    let parsed: MountSpec = spec.parse()?;
    let rt = runtime(&opts)?;
    let client = connect(&rt, spec, &opts)?;
    if let Err(e) = connected(&client, rt.handle()) {
        rt.shutdown_background();
        return Err(io("starting what serves beside the mount")(e));
    }
    let mut session = session(client.clone(), &rt, &parsed, dir, opts)?;
    let mut unmounter = session.unmount_callable();
    let target = dir.to_path_buf();
    rt.spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler: only umount ends the mount");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!(dir = %target.display(), "signal: unmounting");
        if let Err(e) = tokio::task::spawn_blocking(move || unmounter.unmount()).await.unwrap_or(Ok(())) {
            tracing::error!(dir = %target.display(), error = %e, "unmount failed (files still open?)");
        }
    });
    tracing::info!(fs = %parsed, dir = %dir.display(), "serving");
    let served = session.run().map_err(io("serving /dev/fuse"));
    // As a Lustre client does when it unmounts: writers need not wait for
    // the OSTs to find this client gone.
    let given_back = rt.block_on(async {
        let given_back = tokio::time::timeout(UNMOUNT_STEP, client.cancel_locks()).await;
        // Apart, so a slow flush does not leave the OSTs waiting for this
        // client after their next restart.
        let _ = tokio::time::timeout(UNMOUNT_STEP, client.disconnect()).await;
        given_back
    });
    if !matches!(given_back, Ok(Ok(()))) {
        tracing::info!(
            "not every lock was given back at unmount; the OSTs drop them when they find the client gone"
        );
    }
    rt.shutdown_background();
    served
}

/// The longest an unmount waits to give its locks back, and to disconnect.
const UNMOUNT_STEP: std::time::Duration = std::time::Duration::from_secs(5);

/// A mount served by a background thread; dropping it unmounts.
pub struct MountGuard {
    session: Option<fuser::BackgroundSession>,
    rt: Option<Runtime>,
    client: Arc<Client>,
    dir: PathBuf,
}

impl std::fmt::Debug for MountGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountGuard").field("dir", &self.dir).field("fs", &self.client.fsname()).finish()
    }
}

impl MountGuard {
    pub fn mountpoint(&self) -> &Path {
        &self.dir
    }

    /// The client under the mount, for what the mount does not show.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Unmounts now, reporting failure (a busy mount) instead of logging it.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), MountError> {
        let mut result = Ok(());
        if let Some(s) = self.session.take()
            && let Err(e) = s.umount_and_join()
        {
            // Still in use: detach it so the directory is free, and let the
            // session end when the last user goes.
            tracing::warn!(dir = %self.dir.display(), error = %e, "unmount failed; detaching");
            lazy_unmount(&self.dir);
            result = Err(MountError::Io { what: "unmounting", source: e });
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        result
    }
}

fn lazy_unmount(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return };
    // SAFETY: a valid NUL-terminated path; umount2 touches nothing else.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "unmount on drop");
        }
    }
}

/// Mounts `spec` on `dir` and serves it from a background thread until the
/// guard is dropped. Blocks while it connects, so a caller whose servers
/// run on its own current-thread runtime uses [`spawn_mount_async`].
pub fn spawn_mount(spec: &str, dir: &Path, opts: MountOptions) -> Result<MountGuard, MountError> {
    let parsed: MountSpec = spec.parse()?;
    let rt = runtime(&opts)?;
    let client = match connect(&rt, spec, &opts) {
        Ok(c) => c,
        Err(e) => {
            rt.shutdown_background();
            return Err(e);
        }
    };
    background(client, rt, &parsed, dir, opts)
}

/// [`spawn_mount`] for async callers: connecting awaits instead of blocking.
pub async fn spawn_mount_async(spec: &str, dir: &Path, opts: MountOptions) -> Result<MountGuard, MountError> {
    let parsed: MountSpec = spec.parse()?;
    let rt = runtime(&opts)?;
    let (owned, tunables) = (spec.to_string(), opts.tunables.clone());
    let connected = rt.spawn(async move { Client::mount_with(&owned, tunables).await }).await;
    let client = match connected {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            rt.shutdown_background();
            return Err(e.into());
        }
        Err(_) => {
            rt.shutdown_background();
            return Err(ClientError::Errno(Errno::EIO).into());
        }
    };
    background(client, rt, &parsed, dir, opts)
}

fn background(
    client: Arc<Client>,
    rt: Runtime,
    spec: &MountSpec,
    dir: &Path,
    opts: MountOptions,
) -> Result<MountGuard, MountError> {
    let spawned = session(Arc::clone(&client), &rt, spec, dir, opts)
        .and_then(|s| s.spawn().map_err(io("starting the FUSE session")));
    match spawned {
        Ok(s) => Ok(MountGuard { session: Some(s), rt: Some(rt), client, dir: dir.to_path_buf() }),
        Err(e) => {
            rt.shutdown_background();
            Err(e)
        }
    }
}
