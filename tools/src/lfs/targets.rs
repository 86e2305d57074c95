//! `lfs osts`, `lfs mdts` and `lfs check`: the targets of a mount and
//! whether each answers, in lfs's words (`0: glint-OST0000_UUID ACTIVE`,
//! `glint-OST0000-osc-INSTANCE: active`).

use std::fmt::Write;

/// What `lfs check` asks about.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The MDT and every OST.
    Servers,
    /// Every OST.
    Osts,
    /// The MDT.
    Mds,
    /// The same as servers.
    All,
}

/// How the targets answered a probe: the MDT, then each OST by index.
pub struct Probe {
    pub fsname: String,
    pub mdt: bool,
    pub osts: Vec<(u32, bool)>,
}

fn state(up: bool) -> &'static str {
    if up { "ACTIVE" } else { "INACTIVE" }
}

/// `lfs osts`: `OBDS:` then a line per OST.
pub fn osts_text(p: &Probe) -> String {
    let mut out = String::from("OBDS:\n");
    for (i, up) in &p.osts {
        let _ = writeln!(out, "{i}: {}-OST{i:04x}_UUID {}", p.fsname, state(*up));
    }
    out
}

/// `lfs mdts`: `MDTS:` then the one MDT.
pub fn mdts_text(p: &Probe) -> String {
    format!("MDTS:\n0: {}-MDT0000_UUID {}\n", p.fsname, state(p.mdt))
}

/// `lfs check`: a line per client device of the mount (`-mdc-`, `-osc-`
/// and the mount's instance), and whether every one asked answered.
pub fn check_text(p: &Probe, instance: &str, what: Check) -> (String, bool) {
    let mut out = String::new();
    let mut all = true;
    let mut line = |name: String, up: bool| {
        all &= up;
        let _ = writeln!(out, "{name}: {}", if up { "active" } else { "inactive" });
    };
    if what != Check::Osts {
        line(format!("{}-MDT0000-mdc-{instance}", p.fsname), p.mdt);
    }
    if what != Check::Mds {
        for (i, up) in &p.osts {
            line(format!("{}-OST{i:04x}-osc-{instance}", p.fsname), *up);
        }
    }
    (out, all)
}

/// Lustre's `lfs find` takes find(1)'s single-dash names (`-type f`,
/// `-size +1M`, `-name '*.h5'`) as well as its own `--type`: the former
/// become the latter before the arguments are parsed.
pub fn find_style_args(args: Vec<String>) -> Vec<String> {
    let Some(at) = args.iter().position(|a| a == "find") else { return args };
    if at == 0 || args[at - 1] != "lfs" {
        return args;
    }
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i <= at {
                return a;
            }
            match a.as_str() {
                "-type" => "--type".into(),
                "-name" => "--name".into(),
                "-size" => "--size".into(),
                "-mtime" => "--mtime".into(),
                "-ost" | "-obd" | "--obd" => "--ost".into(),
                "-stripe-count" | "-stripe_count" | "--stripe_count" => "--stripe-count".into(),
                _ => a,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe {
        Probe { fsname: "glint".into(), mdt: true, osts: vec![(0, true), (1, false)] }
    }

    #[test]
    fn lists_targets_as_lfs_does() {
        assert_eq!(
            osts_text(&probe()),
            "OBDS:\n0: glint-OST0000_UUID ACTIVE\n1: glint-OST0001_UUID INACTIVE\n"
        );
        assert_eq!(mdts_text(&probe()), "MDTS:\n0: glint-MDT0000_UUID ACTIVE\n");
    }

    #[test]
    fn check_names_each_client_device_and_fails_on_a_silent_one() {
        let (text, ok) = check_text(&probe(), "abc", Check::Servers);
        assert_eq!(
            text,
            "glint-MDT0000-mdc-abc: active\nglint-OST0000-osc-abc: active\nglint-OST0001-osc-abc: inactive\n"
        );
        assert!(!ok);
        let (text, ok) = check_text(&probe(), "abc", Check::Mds);
        assert_eq!(text, "glint-MDT0000-mdc-abc: active\n");
        assert!(ok);
    }

    #[test]
    fn find_takes_single_dash_names_after_find_only() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            find_style_args(v("glint lfs find /mnt -type f -size +1M -name *.h5 -obd 3")),
            v("glint lfs find /mnt --type f --size +1M --name *.h5 --ost 3")
        );
        assert_eq!(find_style_args(v("lfs find /mnt -stripe-count 2")), v("lfs find /mnt --stripe-count 2"));
        assert_eq!(find_style_args(v("glint lfs getstripe -type")), v("glint lfs getstripe -type"));
        // A file named find, not the subcommand.
        assert_eq!(find_style_args(v("glint lfs getstripe find -type")), v("glint lfs getstripe find -type"));
    }
}
