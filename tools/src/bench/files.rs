//! `glint bench files`: small files through the FUSE mount, as `tar x`,
//! `ls -l`, `cat` and `rm -r` use them, beside the same work on the local
//! file system in the same run.
//!
//! One mount writes the files (create, write, close, one file at a time);
//! a second mount, which has seen none of them (a login node looking at a
//! job's output), lists them with their attributes, reads them, and
//! removes them. The local run does the same in a directory on the disk
//! the servers use; its second pass finds everything in the kernel's
//! caches, which no mount of a network file system can, and it does not
//! sync while the MDS commits every change durably.

use super::cluster::{BenchFs, fs_type};
use super::report::{rate, ratio, size_arg};
use anyhow::{Context, Result, bail};
use client::fuse::{MountOptions, spawn_mount_async};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct FilesBench {
    /// How many files.
    #[arg(short = 'n', long, default_value_t = 2000)]
    pub files: u64,
    /// Bytes written into each (e.g. 4k, 64k).
    #[arg(long, default_value = "4k", value_parser = size_arg)]
    pub size: u64,
    /// OSTs (one OSS each); files get one stripe each, spread over them.
    #[arg(long, default_value_t = 4)]
    pub osts: usize,
    /// Directory on the disk for the MDT, the OSTs, the mounts and the
    /// local run (default: a temporary directory under /var/tmp).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Bytes of the checkpoint written while the second mount stats it
    /// (0: skip that part).
    #[arg(long, default_value = "256M", value_parser = size_arg)]
    pub checkpoint: u64,
}

/// The phases, in the order they run.
const PHASES: [Phase; 4] = [Phase::Write, Phase::List, Phase::Read, Phase::Remove];

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// create, write the file's bytes, close (`tar x`, `cp -r`).
    Write,
    /// readdir, then lstat of every entry (`ls -l`).
    List,
    /// open, read to the end, close (`cat`).
    Read,
    /// unlink (`rm -r`).
    Remove,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Write => "create + write + close (tar x)",
            Phase::List => "readdir + lstat each (ls -l)",
            Phase::Read => "open + read + close (cat)",
            Phase::Remove => "unlink (rm -r)",
        }
    }
}

pub async fn run(a: FilesBench) -> Result<()> {
    if a.files == 0 || a.osts == 0 {
        bail!("--files and --osts must be positive");
    }
    let base = a.dir.clone().unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let work = tempfile::Builder::new()
        .prefix("glint-bench-files")
        .tempdir_in(&base)
        .with_context(|| format!("making a directory under {}", base.display()))?;
    let w = work.path();
    let osts: Vec<PathBuf> = (0..a.osts).map(|i| w.join(format!("ost{i}"))).collect();
    let fs = BenchFs::start(&w.join("mdt"), &osts).await?;
    println!(
        "glint bench files: {} files of {} bytes, one at a time; MDS and {} OSTs in this process on {} ({}), \
         tcp LND on loopback; local file system: the same in {}",
        a.files,
        a.size,
        a.osts,
        w.display(),
        fs_type(w),
        w.join("local").display()
    );
    println!(
        "(a second mount, which has seen none of the files, lists, reads and removes them; the local \
         run finds them in the kernel's caches, and does not sync where the MDS commits each change)"
    );
    let result = measure(&fs, w, &a).await;
    fs.shutdown();
    let (glint, local) = result?;
    println!("{:<34} {:>12} {:>12} {:>7}", "files/s", "glint", "local", "ratio");
    for (i, p) in PHASES.iter().enumerate() {
        println!(
            "{:<34} {:>12} {:>12} {:>7}",
            p.label(),
            rate(glint[i]),
            rate(local[i]),
            ratio(glint[i], local[i])
        );
    }
    Ok(())
}

/// Files per second of each phase, glint's and the local file system's.
async fn measure(fs: &BenchFs, w: &Path, a: &FilesBench) -> Result<([f64; 4], [f64; 4])> {
    let (writer_dir, reader_dir) = (w.join("mnt-writer"), w.join("mnt-reader"));
    std::fs::create_dir_all(&writer_dir)?;
    std::fs::create_dir_all(&reader_dir)?;
    let writer = spawn_mount_async(&fs.spec(), &writer_dir, MountOptions::default())
        .await
        .context("mounting the writer's mount")?;
    let reader = spawn_mount_async(&fs.spec(), &reader_dir, MountOptions::default())
        .await
        .context("mounting the reader's mount")?;
    let (files, size, checkpoint) = (a.files, a.size as usize, a.checkpoint);
    let osts: super::watched::Targets =
        fs.osses.iter().flat_map(|o| o.oss.targets().map(|(_, t)| t.clone()).collect::<Vec<_>>()).collect();
    let glint = tokio::task::spawn_blocking(move || {
        std::fs::create_dir(writer_dir.join("d")).context("mkdir on the mount")?;
        let rates = phases(&writer_dir.join("d"), &reader_dir.join("d"), files, size)?;
        if checkpoint > 0 {
            super::watched::run(&osts, &writer_dir, &reader_dir, checkpoint)?;
        }
        Ok::<_, anyhow::Error>(rates)
    })
    .await
    .context("the mount's run")??;
    drop((writer, reader));
    let local_dir = w.join("local");
    let local = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&local_dir)?;
        phases(&local_dir, &local_dir, files, size)
    })
    .await
    .context("the local run")??;
    Ok((glint, local))
}

/// Runs every phase, writing through `write_dir` and doing the rest
/// through `other_dir` (the same directory seen from elsewhere).
fn phases(write_dir: &Path, other_dir: &Path, files: u64, size: usize) -> Result<[f64; 4]> {
    let data = vec![0x5au8; size];
    let mut out = [0.0; 4];
    for (i, p) in PHASES.iter().enumerate() {
        let started = Instant::now();
        match p {
            Phase::Write => {
                for n in 0..files {
                    let path = write_dir.join(name(n));
                    let mut f =
                        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
                    f.write_all(&data).with_context(|| format!("write {}", path.display()))?;
                    drop(f);
                }
            }
            Phase::List => {
                let mut seen = 0u64;
                for e in std::fs::read_dir(other_dir)
                    .with_context(|| format!("readdir {}", other_dir.display()))?
                {
                    let path = e?.path();
                    let m = std::fs::symlink_metadata(&path)
                        .with_context(|| format!("lstat {}", path.display()))?;
                    if m.len() != size as u64 {
                        bail!("{} is {} bytes, not {size}", path.display(), m.len());
                    }
                    seen += 1;
                }
                if seen != files {
                    bail!("listed {seen} files of {files}");
                }
            }
            Phase::Read => {
                for n in 0..files {
                    let path = other_dir.join(name(n));
                    let got = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                    if got != data {
                        bail!("{} does not hold what was written", path.display());
                    }
                }
            }
            Phase::Remove => {
                for n in 0..files {
                    let path = other_dir.join(name(n));
                    std::fs::remove_file(&path).with_context(|| format!("unlink {}", path.display()))?;
                }
            }
        }
        out[i] = files as f64 / started.elapsed().as_secs_f64();
    }
    Ok(out)
}

fn name(n: u64) -> String {
    format!("f{n:07}")
}
