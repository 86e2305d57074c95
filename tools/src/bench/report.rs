//! How benchmark figures are printed (a figure, the yardstick measured in
//! the same run, and their ratio) and how sizes are given to them.

/// A size argument as `lfs` takes one: `1048576`, `64k`, `4M`, `1G`.
pub fn size_arg(s: &str) -> Result<u64, String> {
    crate::lfs::sizes::parse_size("size", s).map_err(|e| e.to_string())
}

/// `4 GiB`, `512 MiB`, `12 KiB`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// `1.23 GiB/s`, `456 MiB/s`.
pub fn bandwidth(bytes_per_sec: f64) -> String {
    if bytes_per_sec >= (1u64 << 30) as f64 {
        format!("{:.2} GiB/s", bytes_per_sec / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB/s", bytes_per_sec / (1u64 << 20) as f64)
    }
}

/// `12.3k`, `456`, `1.20M` operations per second.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2}M", per_sec / 1e6)
    } else if per_sec >= 1e4 {
        format!("{:.1}k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}")
    }
}

/// `87%`, or `-` when the yardstick is missing or zero.
pub fn ratio(figure: f64, yardstick: f64) -> String {
    if yardstick > 0.0 && figure.is_finite() && yardstick.is_finite() {
        format!("{:.0}%", figure / yardstick * 100.0)
    } else {
        "-".to_string()
    }
}

/// ` (target >= 90%: met)` or ` (target >= 90%: missed by 12 points)`.
pub fn target(figure: f64, yardstick: f64, want_pct: f64) -> String {
    if yardstick <= 0.0 || !figure.is_finite() {
        return String::new();
    }
    let pct = figure / yardstick * 100.0;
    if pct >= want_pct {
        format!(" (target >= {want_pct:.0}%: met)")
    } else {
        format!(" (target >= {want_pct:.0}%: missed by {:.0} points)", want_pct - pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_ratios() {
        assert_eq!(bandwidth(1.5 * (1u64 << 30) as f64), "1.50 GiB/s");
        assert_eq!(bandwidth(300.0 * (1u64 << 20) as f64), "300 MiB/s");
        assert_eq!(rate(950.0), "950");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(rate(2_500_000.0), "2.50M");
        assert_eq!(ratio(45.0, 50.0), "90%");
        assert_eq!(ratio(1.0, 0.0), "-");
        assert_eq!(target(95.0, 100.0, 90.0), " (target >= 90%: met)");
        assert_eq!(target(60.0, 100.0, 70.0), " (target >= 70%: missed by 10 points)");
        assert_eq!(target(60.0, 0.0, 70.0), "");
        assert_eq!(human(4 << 30), "4 GiB");
        assert_eq!(human(1536 << 20), "1536 MiB");
        assert_eq!(size_arg("4M"), Ok(4 << 20));
        assert!(size_arg("4Q").is_err());
    }
}
