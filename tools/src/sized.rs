//! Targets of a fixed size, for `glint up --ost-size 10G --mdt-size 1G`:
//! each target directory is an ext4 file system in an image file of that
//! size, loop-mounted on the directory, as Lustre's test setup
//! (llmount.sh with OSTSIZE/MDSSIZE) builds its targets. The target then
//! reports that size as its capacity (`lfs df`, `glint status`, the
//! capacity metrics) and a write past it fails with ENOSPC, through the
//! same space checks as on a dedicated disk.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Below this ext4 leaves too little room after its own metadata.
pub const MIN_SIZE: u64 = 16 << 20;

/// The image file beside a target directory: `ost0` → `ost0.img`.
pub fn image_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".img");
    dir.with_file_name(name)
}

/// Parses a size option (`64M`, `10G`) and checks it is usable.
pub fn parse(s: &str) -> Result<u64> {
    let n = crate::spec::parse_size(s)?;
    if n < MIN_SIZE {
        bail!("size `{s}` is too small: a target needs at least {} MiB", MIN_SIZE >> 20);
    }
    Ok(n)
}

fn is_mounted(dir: &Path) -> bool {
    let want = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(m) = fs::read_to_string("/proc/mounts") else { return false };
    m.lines().any(|l| l.split_whitespace().nth(1) == Some(&*want.to_string_lossy()))
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Makes an empty `size`-byte ext4 image for `dir` and mounts it there.
pub fn create(dir: &Path, size: u64) -> Result<()> {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        bail!("a target size needs root: each sized target is a loop-mounted ext4 image");
    }
    let image = image_of(dir);
    if image.exists() {
        bail!("{} exists already; remove it or leave the size out", image.display());
    }
    let f = fs::File::create(&image).with_context(|| format!("creating {}", image.display()))?;
    // Sparse: the image takes space only as the target fills.
    f.set_len(size).with_context(|| format!("sizing {}", image.display()))?;
    drop(f);
    // No blocks reserved for root: the target's users are all clients.
    run(
        Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&image),
        "mkfs.ext4 (install e2fsprogs)",
    )?;
    attach(dir)
}

/// Mounts `dir`'s image on it unless it is mounted already.
pub fn attach(dir: &Path) -> Result<()> {
    if is_mounted(dir) {
        return Ok(());
    }
    let image = image_of(dir);
    if !image.exists() {
        bail!("{} is missing: the sized target of {} is gone", image.display(), dir.display());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    run(
        Command::new("mount").args(["-o", "loop"]).arg(&image).arg(dir),
        &format!("mounting {}", image.display()),
    )
}

/// Unmounts `dir`'s image (its data stays in the image).
pub fn detach(dir: &Path) -> Result<()> {
    if !is_mounted(dir) {
        return Ok(());
    }
    run(Command::new("umount").arg(dir), &format!("unmounting {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sits_beside_the_directory() {
        assert_eq!(image_of(Path::new("/s/ost3")), PathBuf::from("/s/ost3.img"));
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(parse("64M").unwrap(), 64 << 20);
        assert_eq!(parse("10G").unwrap(), 10 << 30);
        assert!(parse("1M").unwrap_err().to_string().contains("too small"));
        assert!(parse("lots").is_err());
    }
}
