//! `glint lfs`: Lustre's `lfs` for glint mounts. It talks to the file
//! system through the client library, not through ioctls on the FUSE
//! mount: a path is placed in its `fuse.glint` mount (whose source is the
//! mount spec), the file system is mounted in-process, and the path is
//! resolved inside it with the caller's credentials. The work is done by
//! functions that take a [`client::Client`] and a path inside the file
//! system, so they run without any mount at all in tests.

pub mod df;
pub mod error;
pub mod fid2path;
pub mod fids;
pub mod find;
pub mod getstripe;
pub mod mounts;
pub mod setstripe;
pub mod sizes;
pub mod targets;

use client::{Client, process_cred};
use error::LfsError;
use mounts::{GlintMount, Located};
use proto::{Fid, StripeSpec, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(clap::Subcommand, Debug)]
pub enum LfsCmd {
    /// Set a directory's default striping, or create a file with a striping.
    Setstripe(StripeArgs),
    /// Create a directory whose new files get the given striping.
    Mkdir(StripeArgs),
    /// Show the layout of files and the default striping of directories.
    Getstripe(GetstripeArgs),
    /// Space (or inodes) on every target and on the whole file system.
    #[command(disable_help_flag = true)]
    Df(DfArgs),
    /// Walk a tree and print the paths that match.
    Find(FindArgs),
    /// The file system instance name and mount point of glint mounts.
    Getname { paths: Vec<String> },
    /// The FID of each path.
    Path2fid {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// The paths of each FID (every hard link's, unless --link picks one).
    Fid2path(fid2path::Fid2pathArgs),
    /// The OSTs of each glint mount (or of the one PATH is in), and whether
    /// each answers.
    Osts { path: Option<String> },
    /// The MDTs of each glint mount (or of the one PATH is in), and whether
    /// each answers.
    Mdts { path: Option<String> },
    /// Whether the servers of every glint mount answer; fails if one does
    /// not.
    Check {
        #[arg(value_enum)]
        what: targets::Check,
    },
}

/// How long a target may take to answer `lfs check`, `osts` or `mdts`.
const PROBE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct StripeArgs {
    /// Stripes per file; -1 stripes over every OST.
    #[arg(short = 'c', long = "stripe-count", allow_negative_numbers = true)]
    pub count: Option<i32>,
    /// Bytes per stripe, a multiple of 64 KiB (k, M, G suffixes).
    #[arg(short = 'S', long = "stripe-size")]
    pub size: Option<String>,
    /// The OST of the first stripe; -1 lets the MDS choose.
    #[arg(short = 'i', long = "stripe-index", allow_negative_numbers = true)]
    pub index: Option<i64>,
    pub path: String,
}

impl StripeArgs {
    fn spec(&self) -> Result<StripeSpec, LfsError> {
        let stripe_size = self.size.as_deref().map(|s| sizes::parse_size("stripe size", s)).transpose()?;
        let stripe_offset = match self.index {
            None | Some(-1) => None,
            Some(i) => Some(u32::try_from(i).map_err(|_| LfsError::BadArg {
                what: "stripe index",
                value: i.to_string(),
                reason: "expected an OST index or -1".into(),
            })?),
        };
        Ok(StripeSpec { stripe_count: self.count, stripe_size, stripe_offset })
    }
}

#[derive(clap::Args, Debug)]
pub struct GetstripeArgs {
    /// Only the stripe count.
    #[arg(short = 'c', long = "stripe-count")]
    pub count: bool,
    /// Only the stripe size.
    #[arg(short = 'S', long = "stripe-size")]
    pub size: bool,
    /// Only the first stripe's OST.
    #[arg(short = 'i', long = "stripe-index")]
    pub index: bool,
    /// A directory's own default, not its entries.
    #[arg(short = 'd', long = "directory")]
    pub directory: bool,
    /// YAML, as `lfs getstripe --yaml`.
    #[arg(short = 'y', long = "yaml")]
    pub yaml: bool,
    #[arg(required = true)]
    pub paths: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct DfArgs {
    /// Sizes in bytes with K, M, G... suffixes.
    #[arg(short = 'h', long = "human-readable")]
    pub human: bool,
    /// Inodes instead of blocks.
    #[arg(short = 'i', long = "inodes")]
    pub inodes: bool,
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// A path in the file system; every glint mount when absent.
    pub path: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    pub dir: String,
    /// [+-]N stripes (regular files only).
    #[arg(short = 'c', long = "stripe-count", allow_hyphen_values = true)]
    pub stripe_count: Option<String>,
    /// [+-]N[kMGTPE]: larger than, smaller than, or (rounded up) exactly.
    #[arg(short = 's', long, allow_hyphen_values = true)]
    pub size: Option<String>,
    /// f, d or l.
    #[arg(short = 't', long = "type")]
    pub kind: Option<String>,
    /// A shell glob on the last name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// [+-]N days since the last modification.
    #[arg(short = 'M', long, allow_hyphen_values = true)]
    pub mtime: Option<String>,
    /// Files with an object on this OST index.
    #[arg(short = 'O', long)]
    pub ost: Option<u32>,
}

impl FindArgs {
    fn query(&self) -> Result<find::Query, LfsError> {
        Ok(find::Query {
            kind: self.kind.as_deref().map(find::Kind::parse).transpose()?,
            name: self.name.clone(),
            stripe_count: self
                .stripe_count
                .as_deref()
                .map(|s| sizes::parse_count_bound("stripe count", s))
                .transpose()?,
            size: self.size.as_deref().map(sizes::parse_size_bound).transpose()?,
            mtime_days: self.mtime.as_deref().map(|s| sizes::parse_count_bound("mtime", s)).transpose()?,
            ost: self.ost,
        })
    }
}

/// Clients of the file systems a command touches, one per mount source.
#[derive(Default)]
struct Clients {
    by_source: HashMap<String, Arc<Client>>,
}

impl Clients {
    async fn get(&mut self, m: &GlintMount) -> Result<Arc<Client>, LfsError> {
        if let Some(c) = self.by_source.get(&m.source) {
            return Ok(c.clone());
        }
        let spec = m.spec()?;
        let c = Client::mount(&spec.to_string()).await?;
        self.by_source.insert(m.source.clone(), c.clone());
        Ok(c)
    }

    /// Gives back the locks the command took (a stat takes PR locks), as a
    /// Lustre client does when it unmounts, so a writer does not wait on a
    /// process that is gone.
    async fn release(self) {
        for c in self.by_source.values() {
            if let Err(e) = c.unmount().await {
                tracing::debug!(error = %e, "giving back the command's locks");
            }
        }
    }
}

/// Prints `lfs CMD: WHAT 'PATH': REASON` (or the bare error for bad
/// arguments) and returns the exit status: the errno.
fn report(cmd: &str, what: &str, path: &str, e: &LfsError) -> i32 {
    match e {
        LfsError::BadArg { .. } | LfsError::NotGlint(_) | LfsError::BadMountSource { .. } => {
            eprintln!("lfs {cmd}: {e}")
        }
        _ => eprintln!("lfs {cmd}: {what} '{path}': {}", e.reason()),
    }
    e.errno().0.clamp(1, 255)
}

async fn probe(c: &Client) -> targets::Probe {
    let (mdt, osts) = c.probe_targets(PROBE_WITHIN).await;
    targets::Probe { fsname: c.fsname().to_string(), mdt, osts }
}

/// `lfs osts` (`osts`) or `lfs mdts` for the mount of `path`, or for every
/// glint mount; the exit status.
async fn listing(osts: bool, path: &Option<String>, mounts: &[GlintMount], clients: &mut Clients) -> i32 {
    let cmd = if osts { "osts" } else { "mdts" };
    let chosen = match path {
        Some(p) => match mounts::locate(p, mounts) {
            Ok(l) => vec![l.mount],
            Err(e) => return report(cmd, "cannot stat", p, &e),
        },
        None => mounts.to_vec(),
    };
    let mut status = 0;
    for m in chosen {
        match clients.get(&m).await {
            Ok(c) => {
                let p = probe(&c).await;
                print!("{}", if osts { targets::osts_text(&p) } else { targets::mdts_text(&p) });
            }
            Err(e) => status = report(cmd, "cannot reach", &m.source, &e),
        }
    }
    status
}

pub async fn run(cmd: LfsCmd) -> anyhow::Result<i32> {
    let mounts = mounts::glint_mounts()?;
    let mut clients = Clients::default();
    let cred = process_cred();
    let mut status = 0;
    let locate = |p: &str| mounts::locate(p, &mounts);
    match cmd {
        LfsCmd::Setstripe(a) => {
            let r = async {
                let spec = a.spec()?;
                let l = locate(&a.path)?;
                let c = clients.get(&l.mount).await?;
                setstripe::setstripe(&c, &cred, &l.rel, spec).await
            }
            .await;
            if let Err(e) = r {
                let what = if e.errno() == fabric::Errno::EEXIST {
                    "cannot create composite file"
                } else {
                    "unable to set stripe for"
                };
                status = report("setstripe", what, &a.path, &e);
            }
        }
        LfsCmd::Mkdir(a) => {
            let r = async {
                let spec = a.spec()?;
                let l = locate(&a.path)?;
                let c = clients.get(&l.mount).await?;
                setstripe::mkdir(&c, &cred, &l.rel, spec).await
            }
            .await;
            if let Err(e) = r {
                status = report("mkdir", "cannot create directory", &a.path, &e);
            }
        }
        LfsCmd::Getstripe(a) => {
            let o = getstripe::Options {
                fields: getstripe::Fields { count: a.count, size: a.size, offset: a.index },
                dir_only: a.directory,
                yaml: a.yaml,
            };
            for p in &a.paths {
                let r = async {
                    let l = locate(p)?;
                    let c = clients.get(&l.mount).await?;
                    getstripe::getstripe_text(&c, &cred, p, &l.rel, o).await
                }
                .await;
                match r {
                    Ok(text) => print!("{text}"),
                    Err(e) if e.errno() == fabric::Errno::ENODATA => {
                        eprintln!("lfs getstripe: '{p}' has no stripe info");
                        status = libc::ENODATA;
                    }
                    Err(e) => status = report("getstripe", "cannot get layout of", p, &e),
                }
            }
        }
        LfsCmd::Df(a) => {
            let o = df::Options { human: a.human, inodes: a.inodes };
            let targets: Vec<GlintMount> = match &a.path {
                Some(p) => match locate(p) {
                    Ok(l) => vec![l.mount],
                    Err(e) => return Ok(report("df", "cannot stat", p, &e)),
                },
                None => mounts.clone(),
            };
            for m in targets {
                let dir = m.dir.display().to_string();
                let r = async { df::collect(&*clients.get(&m).await?).await }.await;
                match r {
                    Ok(rep) => print!("{}", df::text(&rep, &dir, o)),
                    Err(e) => status = report("df", "cannot stat", &dir, &e),
                }
            }
        }
        LfsCmd::Find(a) => {
            let r = async {
                let q = a.query()?;
                let l = locate(&a.dir)?;
                let c = clients.get(&l.mount).await?;
                find::find(&c, &cred, &l.rel, &q, Timestamp::now()).await
            }
            .await;
            match r {
                Ok(found) => {
                    let base = if a.dir.len() > 1 { a.dir.trim_end_matches('/') } else { a.dir.as_str() };
                    for suffix in found {
                        println!("{base}{suffix}");
                    }
                }
                Err(e) => status = report("find", "cannot walk", &a.dir, &e),
            }
        }
        LfsCmd::Osts { path } => status = listing(true, &path, &mounts, &mut clients).await,
        LfsCmd::Mdts { path } => status = listing(false, &path, &mounts, &mut clients).await,
        LfsCmd::Check { what } => {
            for m in &mounts {
                let instance = fids::instance_id(&m.source, &m.dir.to_string_lossy());
                match clients.get(m).await {
                    Ok(c) => {
                        let (text, ok) = targets::check_text(&probe(&c).await, &instance, what);
                        print!("{text}");
                        if !ok {
                            status = libc::EAGAIN;
                        }
                    }
                    Err(e) => status = report("check", "cannot reach", &m.source, &e),
                }
            }
        }
        LfsCmd::Getname { paths } => {
            if paths.is_empty() {
                for m in &mounts {
                    match m.spec() {
                        Ok(s) => {
                            println!(
                                "{} {}",
                                fids::instance_name(&s.fsname, &m.source, &m.dir.to_string_lossy()),
                                m.dir.display()
                            )
                        }
                        Err(e) => {
                            status = report("getname", "cannot get name for", &m.dir.to_string_lossy(), &e)
                        }
                    }
                }
            }
            for p in &paths {
                match locate(p).and_then(|l| Ok((l.mount.spec()?, l))) {
                    Ok((s, l)) => println!(
                        "{} {p}",
                        fids::instance_name(&s.fsname, &l.mount.source, &l.mount.dir.to_string_lossy())
                    ),
                    Err(e) => status = report("getname", "cannot get name for", p, &e),
                }
            }
        }
        LfsCmd::Path2fid { paths } => {
            let many = paths.len() > 1;
            for p in &paths {
                let r = async {
                    let l = locate(p)?;
                    let c = clients.get(&l.mount).await?;
                    fids::path2fid(&c, &cred, &l.rel).await
                }
                .await;
                match r {
                    Ok(fid) if many => println!("{p}: {fid}"),
                    Ok(fid) => println!("{fid}"),
                    Err(e) => status = report("path2fid", "cannot get fid for", p, &e),
                }
            }
        }
        LfsCmd::Fid2path(a) => {
            let fs = a.fs.clone();
            let mount = if fs.starts_with('/') {
                locate(&fs).map(|l: Located| l.mount)
            } else {
                mounts
                    .iter()
                    .find(|m| m.spec().is_ok_and(|s| s.fsname == fs))
                    .cloned()
                    .ok_or_else(|| LfsError::NotGlint(fs.clone()))
            };
            let mount = match mount {
                Ok(m) => m,
                Err(e) => return Ok(report("fid2path", "cannot find", &fs, &e)),
            };
            for f in &a.fids {
                let r =
                    async {
                        let fid: Fid = f.parse().map_err(|e: proto::fid::FidParseError| {
                            LfsError::BadArg { what: "FID", value: f.clone(), reason: e.to_string() }
                        })?;
                        let c = clients.get(&mount).await?;
                        Ok::<_, LfsError>((fid, fid2path::paths(&c, &cred, fid, a.link).await?))
                    }
                    .await;
                match r {
                    Ok((fid, found)) => {
                        let dir = mount.dir.to_string_lossy();
                        for (link, p) in found {
                            println!("{}", fid2path::line(&a, fid, link, &dir, &p));
                        }
                    }
                    Err(e) => status = report("fid2path", "cannot find", f, &e),
                }
            }
        }
    }
    clients.release().await;
    Ok(status)
}
