//! A writer watched from another mount (`glint bench files`' last part):
//! a job writes its checkpoint in 64 KiB writes while a login node runs
//! `watch ls -l` on it, here a stat every 10 ms from a second mount. The
//! writer's bandwidth alone is the yardstick; the callbacks its locks got
//! say whether the stats made it flush (they should not: a stat of a file
//! another client writes is a glimpse).

use super::report::{bandwidth, human, ratio};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WRITE: usize = 64 << 10;
const STAT_EVERY: Duration = Duration::from_millis(10);

/// One pass: bytes per second, stats made, and lock callbacks and glimpses
/// the OSTs sent meanwhile.
struct Pass {
    rate: f64,
    stats: u64,
    callbacks: u64,
    glimpses: u64,
}

/// The OSTs whose lock counters are read.
pub type Targets = Vec<Arc<ost::service::Target>>;

/// Writes `bytes` through `writer` alone and while `watcher` stats the
/// file, twice each, the order swapped in the second round (the first
/// pass of a round writes where nothing was freed yet); prints each.
pub fn run(osts: &Targets, writer: &Path, watcher: &Path, bytes: u64) -> Result<()> {
    println!(
        "a checkpoint of {} written in 64 KiB writes, alone and while the second mount stats it every 10 ms:",
        human(bytes)
    );
    for round in 0..2 {
        let (a, w) = if round == 0 {
            let a = pass(osts, writer, watcher, bytes, false, round)?;
            (a, pass(osts, writer, watcher, bytes, true, round)?)
        } else {
            let w = pass(osts, writer, watcher, bytes, true, round)?;
            (pass(osts, writer, watcher, bytes, false, round)?, w)
        };
        println!(
            "  alone {:>11} | watched {:>11} ({} stats; {} lock callbacks, {} glimpses) | ratio {}",
            bandwidth(a.rate),
            bandwidth(w.rate),
            w.stats,
            w.callbacks,
            w.glimpses,
            ratio(w.rate, a.rate)
        );
    }
    Ok(())
}

fn pass(
    osts: &Targets,
    writer: &Path,
    watcher: &Path,
    bytes: u64,
    watched: bool,
    round: u32,
) -> Result<Pass> {
    let name = format!("ckpt-{round}-{}", if watched { "watched" } else { "alone" });
    let (path, seen_at) = (writer.join(&name), watcher.join(&name));
    let mut f = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(AtomicU64::new(0));
    let watch = watched.then(|| spawn_watch(seen_at, stop.clone(), stats.clone()));
    let before = ldlm(osts);
    let data = vec![0x6bu8; WRITE];
    let started = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        f.write_all(&data[..n]).with_context(|| format!("write {}", path.display()))?;
        left -= n as u64;
    }
    f.sync_all().with_context(|| format!("fsync {}", path.display()))?;
    let rate = bytes as f64 / started.elapsed().as_secs_f64();
    drop(f);
    stop.store(true, Ordering::Relaxed);
    if let Some(w) = watch {
        w.join().map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
    }
    let after = ldlm(osts);
    std::fs::remove_file(&path).with_context(|| format!("unlink {}", path.display()))?;
    Ok(Pass {
        rate,
        stats: stats.load(Ordering::Relaxed),
        callbacks: after.0 - before.0,
        glimpses: after.1 - before.1,
    })
}

/// Stats `path` every 10 ms until told to stop; a size that goes down is
/// an error (the file only grows).
fn spawn_watch(
    path: PathBuf,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let mut last = 0;
        while !stop.load(Ordering::Relaxed) {
            // The create may not have reached the listing the watcher's
            // kernel looked at yet.
            if let Ok(m) = std::fs::metadata(&path) {
                if m.len() < last {
                    bail!("{} shrank from {last} to {} bytes while written", path.display(), m.len());
                }
                last = m.len();
                count.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(STAT_EVERY);
        }
        Ok(())
    })
}

/// Blocking callbacks and glimpses sent by every OST so far.
fn ldlm(osts: &Targets) -> (u64, u64) {
    let count = |f: fn(&ost::ldlm::LdlmStats) -> &AtomicU64| {
        osts.iter().map(|t| f(t.ldlm.stats()).load(Ordering::Relaxed)).sum()
    };
    (count(|s| &s.callbacks), count(|s| &s.glimpses))
}
