//! `lfs df`: space (or inodes with `-i`) on every target, one line each
//! as lfs prints them (`glint-OST0001_UUID ... /mnt/glint[OST:1]`), then
//! `filesystem_summary:` with blocks summed over the OSTs and inodes from
//! the MDT.

use super::error::LfsError;
use client::Client;
use proto::{StatFs, TargetInfo, TargetKind};

/// One target's space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpace {
    pub kind: TargetKind,
    pub index: u32,
    pub stat: StatFs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub fsname: String,
    /// The MDT first, then the OSTs by index.
    pub targets: Vec<TargetSpace>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `-h`: bytes with binary suffixes.
    pub human: bool,
    /// `-i`: inodes instead of blocks.
    pub inodes: bool,
}

/// Asks the MDS and every OST for their space.
pub async fn collect(c: &Client) -> Result<Report, LfsError> {
    let (mdt, osts) = c.statfs_targets().await?;
    let mut targets = vec![TargetSpace { kind: TargetKind::Mdt, index: 0, stat: mdt }];
    targets.extend(osts.into_iter().map(|(index, stat)| TargetSpace { kind: TargetKind::Ost, index, stat }));
    Ok(Report { fsname: c.fsname().to_string(), targets })
}

/// (total, used, available) as lfs counts them: KiB, bytes with `-h`,
/// or inodes with `-i`.
fn amounts(s: &StatFs, o: Options) -> (u64, u64, u64) {
    if o.inodes {
        return (s.files, s.files.saturating_sub(s.ffree), s.ffree);
    }
    let shift = if o.human { 0 } else { 10 };
    let b = s.bsize as u128;
    let scale = |blocks: u64| ((blocks as u128 * b) >> shift).min(u64::MAX as u128) as u64;
    (scale(s.blocks), scale(s.blocks.saturating_sub(s.bfree)), scale(s.bavail))
}

/// A number as `lfs df -h` writes it: `%8.1f` and a suffix once it
/// passes 1024, else the plain number.
fn cooked(v: u64) -> String {
    let mut value = v as f64;
    let mut radix = 0;
    while value > 1024.0 {
        value /= 1024.0;
        radix += 1;
    }
    if radix == 0 { v.to_string() } else { format!("{value:8.1}{}", b"KMGTPEZY"[radix - 1] as char) }
}

fn row(uuid: &str, s: &StatFs, o: Options, mount: &str, suffix: &str) -> String {
    let (total, used, avail) = amounts(s, o);
    let ratio = if used + avail > 0 { used as f64 / (used + avail) as f64 } else { 0.0 };
    let show = |v: u64| if o.human { cooked(v) } else { v.to_string() };
    let pct = format!("{}%", (ratio * 100.0 + 0.5) as u32);
    format!(
        "{uuid:<20} {:>11} {:>11} {:>11} {pct:>4} {mount}{suffix}\n",
        show(total),
        show(used),
        show(avail)
    )
}

/// The whole `lfs df` output for one mount.
pub fn text(r: &Report, mount: &str, o: Options) -> String {
    let mut out = if o.inodes {
        format!("{:<20} {:>11} {:>11} {:>11} {:>4} Mounted on\n", "UUID", "Inodes", "IUsed", "IFree", "IUse%")
    } else {
        let unit = if o.human { "bytes" } else { "1K-blocks" };
        format!("{:<20} {:>11} {:>11} {:>11} {:>4} Mounted on\n", "UUID", unit, "Used", "Available", "Use%")
    };
    // Summed in bytes (bsize 1) so targets of different block sizes add up.
    let mut sum = StatFs { bsize: 1, ..StatFs::default() };
    let mut ost_ffree = 0u64;
    for t in &r.targets {
        let info = TargetInfo { kind: t.kind, index: t.index, nids: Vec::new(), metrics: None };
        let label = match t.kind {
            TargetKind::Mdt => "MDT",
            TargetKind::Ost => "OST",
        };
        let uuid = format!("{}_UUID", info.name(&r.fsname));
        out.push_str(&row(&uuid, &t.stat, o, mount, &format!("[{label}:{}]", t.index)));
        let s = &t.stat;
        match t.kind {
            TargetKind::Mdt => {
                sum.files += s.files;
                sum.ffree += s.ffree;
            }
            TargetKind::Ost => {
                let b = s.bsize as u64;
                sum.blocks += s.blocks * b;
                sum.bfree += s.bfree * b;
                sum.bavail += s.bavail * b;
                ost_ffree += s.ffree;
            }
        }
    }
    // With fewer objects free on the OSTs than inodes on the MDT, files
    // run out at the OSTs' figure; show that, as lfs does.
    if ost_ffree < sum.ffree {
        sum.files = (sum.files - sum.ffree) + ost_ffree;
        sum.ffree = ost_ffree;
    }
    out.push('\n');
    out.push_str(&row("filesystem_summary:", &sum, o, mount, ""));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let ost = |index, blocks, bfree| TargetSpace {
            kind: TargetKind::Ost,
            index,
            stat: StatFs { bsize: 4096, blocks, bfree, bavail: bfree, files: 1000, ffree: 900, namelen: 255 },
        };
        Report {
            fsname: "glint".into(),
            targets: vec![
                TargetSpace {
                    kind: TargetKind::Mdt,
                    index: 0,
                    stat: StatFs { bsize: 4096, files: 5000, ffree: 4990, ..StatFs::default() },
                },
                ost(0, 262144, 196608),
                ost(1, 262144, 262144),
            ],
        }
    }

    #[test]
    fn block_rows_match_lfs() {
        let out = text(&report(), "/mnt/glint", Options::default());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "UUID                   1K-blocks        Used   Available Use% Mounted on");
        assert_eq!(
            lines[1],
            "glint-MDT0000_UUID             0           0           0   0% /mnt/glint[MDT:0]"
        );
        assert_eq!(
            lines[2],
            "glint-OST0000_UUID       1048576      262144      786432  25% /mnt/glint[OST:0]"
        );
        assert_eq!(
            lines[3],
            "glint-OST0001_UUID       1048576           0     1048576   0% /mnt/glint[OST:1]"
        );
        assert_eq!(lines[4], "");
        assert_eq!(lines[5], "filesystem_summary:      2097152      262144     1835008  13% /mnt/glint");
        assert!(out.ends_with("/mnt/glint\n\n"));
    }

    #[test]
    fn human_and_inodes() {
        let out = text(&report(), "/m", Options { human: true, inodes: false });
        assert!(
            out.starts_with("UUID                       bytes        Used   Available Use% Mounted on\n")
        );
        assert!(
            out.contains("glint-OST0000_UUID       1024.0M      256.0M      768.0M  25% /m[OST:0]\n"),
            "{out}"
        );
        let out = text(&report(), "/m", Options { human: false, inodes: true });
        assert!(
            out.contains("UUID                      Inodes       IUsed       IFree IUse% Mounted on\n"),
            "{out}"
        );
        assert!(
            out.contains("glint-MDT0000_UUID          5000          10        4990   0% /m[MDT:0]\n"),
            "{out}"
        );
        // 1800 objects free on the OSTs bound the file system's free inodes.
        assert!(out.contains("filesystem_summary:         1810          10        1800   1% /m\n"), "{out}");
        assert_eq!(cooked(1000), "1000");
        assert_eq!(cooked(1536), "     1.5K");
    }
}
