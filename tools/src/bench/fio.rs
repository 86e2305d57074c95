//! fio as the yardstick: the same workload on a local directory, run in
//! the same benchmark, read back from fio's terse (version 3) output.

use anyhow::{Context, Result, bail};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One fio job on one file.
#[derive(Clone, Debug)]
pub struct FioJob {
    pub file: PathBuf,
    /// fio's `rw=`: write, read, randwrite, randread.
    pub rw: &'static str,
    pub block_size: u64,
    /// Bytes of the file (and of a sequential run).
    pub size: u64,
    pub iodepth: usize,
    /// `direct=1` (O_DIRECT); tmpfs refuses it.
    pub direct: bool,
    /// Run for this long instead of once over `size`.
    pub time_based: Option<Duration>,
    /// One read(2)/write(2) at a time (`ioengine=psync`), as `dd` or an
    /// application's own loop does, instead of libaio with `iodepth`.
    pub one_at_a_time: bool,
}

/// What fio measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FioResult {
    pub bytes_per_sec: f64,
    pub iops: f64,
}

impl FioJob {
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--name=glint-bench".to_string(),
            format!("--filename={}", self.file.display()),
            format!("--rw={}", self.rw),
            format!("--bs={}", self.block_size),
            format!("--size={}", self.size),
            format!("--iodepth={}", self.iodepth),
            format!("--ioengine={}", if self.one_at_a_time { "psync" } else { "libaio" }),
            format!("--direct={}", u8::from(self.direct)),
            "--numjobs=1".to_string(),
            // Blocks are allocated as they are written, on every side: the
            // OST and the mount do not preallocate either.
            "--fallocate=none".to_string(),
            "--output-format=terse".to_string(),
            "--terse-version=3".to_string(),
        ];
        if let Some(t) = self.time_based {
            a.push("--time_based".to_string());
            a.push(format!("--runtime={}ms", t.as_millis().max(1)));
            // Random offsets over the whole file, not a permutation fio
            // must track: as the glint side does.
            a.push("--norandommap".to_string());
            a.push("--randrepeat=0".to_string());
        }
        a
    }

    /// Runs fio off the async runtime, whose threads keep serving the
    /// servers and mounts under test meanwhile.
    pub async fn run_async(&self) -> Result<FioResult> {
        let job = self.clone();
        tokio::task::spawn_blocking(move || job.run()).await.context("fio task")?
    }

    pub fn run(&self) -> Result<FioResult> {
        let out =
            Command::new("fio").args(self.args()).output().context("running fio (apt-get install fio)")?;
        if !out.status.success() {
            bail!(
                "fio {} on {} failed: {}",
                self.rw,
                self.file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("3;"))
            .with_context(|| format!("fio printed no terse v3 line: {text}"))?;
        parse_terse(line, self.rw.contains("write"))
    }
}

/// The read or write figures of a terse v3 line. Fields (1-based): 6..=9
/// read KiB, KiB/s, IOPS, ms; 47..=50 the same for writes; 5 the error.
pub fn parse_terse(line: &str, write: bool) -> Result<FioResult> {
    let f: Vec<&str> = line.trim().split(';').collect();
    if f.first() != Some(&"3") || f.len() < 50 {
        bail!("not a fio terse version 3 line ({} fields)", f.len());
    }
    let num = |i: usize| -> Result<f64> {
        f[i - 1].parse::<f64>().with_context(|| format!("fio terse field {i} `{}` is not a number", f[i - 1]))
    };
    if num(5)? != 0.0 {
        bail!("fio reported error {}", f[4]);
    }
    let base = if write { 47 } else { 6 };
    Ok(FioResult { bytes_per_sec: num(base + 1)? * 1024.0, iops: num(base + 2)? })
}

/// Whether files in `dir` can be opened with O_DIRECT (tmpfs says EINVAL).
pub fn supports_direct_io(dir: &Path) -> bool {
    let probe = dir.join(".glint-bench-odirect");
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(read: [&str; 4], write: [&str; 4], err: &str) -> String {
        let mut f = vec!["0".to_string(); 60];
        f[0] = "3".into();
        f[1] = "fio-3.33".into();
        f[2] = "glint-bench".into();
        f[4] = err.into();
        for i in 0..4 {
            f[5 + i] = read[i].into();
            f[46 + i] = write[i].into();
        }
        f.join(";")
    }

    #[test]
    fn reads_the_write_half_of_a_real_line() {
        // A line fio 3.33 printed for a 256 MiB sequential write.
        let real = "3;fio-3.33;t;0;0;0;0;0;0;0;0;0.000000;0.000000;0;0;0.000000;0.000000;1.000000%=0;\
            5.000000%=0;10.000000%=0;20.000000%=0;30.000000%=0;40.000000%=0;50.000000%=0;60.000000%=0;\
            70.000000%=0;80.000000%=0;90.000000%=0;95.000000%=0;99.000000%=0;99.500000%=0;99.900000%=0;\
            99.950000%=0;99.990000%=0;0%=0;0%=0;0%=0;0;0;0.000000;0.000000;0;0;0.000000%;0.000000;\
            0.000000;262144;1197004;1168;219;82;14648";
        let w = parse_terse(real, true).unwrap();
        assert_eq!(w, FioResult { bytes_per_sec: 1197004.0 * 1024.0, iops: 1168.0 });
        let r = parse_terse(real, false).unwrap();
        assert_eq!(r, FioResult { bytes_per_sec: 0.0, iops: 0.0 });
    }

    #[test]
    fn refuses_other_versions_short_lines_and_errors() {
        assert!(parse_terse("2;fio-3.33;x", false).is_err());
        assert!(parse_terse("3;fio-3.33;x;0;0;1;2;3", false).is_err());
        assert!(parse_terse(&line(["1", "2", "3", "4"], ["0"; 4], "5"), false).is_err());
        assert!(parse_terse(&line(["1", "x", "3", "4"], ["0"; 4], "0"), false).is_err());
    }

    #[test]
    fn a_time_based_job_asks_for_random_offsets_everywhere() {
        let job = FioJob {
            file: "/d/f".into(),
            rw: "randread",
            block_size: 4096,
            size: 1 << 30,
            iodepth: 8,
            direct: false,
            time_based: Some(Duration::from_secs(5)),
            one_at_a_time: false,
        };
        let a = job.args();
        for want in ["--rw=randread", "--bs=4096", "--direct=0", "--runtime=5000ms", "--norandommap"] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
    }

    proptest! {
        #[test]
        fn picks_the_right_half(rk in 0u64..1 << 40, ri in 0u64..1 << 30, wk in 0u64..1 << 40, wi in 0u64..1 << 30) {
            let l = line(["7", &rk.to_string(), &ri.to_string(), "9"], ["7", &wk.to_string(), &wi.to_string(), "9"], "0");
            let r = parse_terse(&l, false).unwrap();
            let w = parse_terse(&l, true).unwrap();
            prop_assert_eq!(r, FioResult { bytes_per_sec: rk as f64 * 1024.0, iops: ri as f64 });
            prop_assert_eq!(w, FioResult { bytes_per_sec: wk as f64 * 1024.0, iops: wi as f64 });
        }
    }
}
