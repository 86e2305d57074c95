//! The cluster spec: one TOML file naming hosts, roles, NIDs and target
//! directories, from which `glint up --spec FILE` starts the part of the
//! file system that lives on this host and `glint systemd` prints unit
//! files — so the same file serves one laptop and a rack of nodes.
//!
//! ```toml
//! fsname = "scratch"
//! port = 988
//! [default_stripe]
//! count = 1
//! size = "1M"
//! [mds]
//! host = "mds01"
//! nid = "10.0.0.1@tcp"
//! dir = "/srv/glint/mdt"
//! [[oss]]
//! host = "oss01"
//! nid = "10.0.0.11@tcp"
//! osts = [{ index = 0, dir = "/srv/glint/ost0" }, { index = 1, dir = "/srv/glint/ost1" }]
//! recovery_window = 60   # optional: seconds clients have to replay locks after a restart
//! [[client]]
//! host = "*"
//! mount = "/mnt/scratch"
//! ```

use anyhow::{Context, Result, bail};
use fabric::Nid;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub fsname: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub default_stripe: Option<StripeDefault>,
    pub mds: MdsSpec,
    #[serde(default)]
    pub oss: Vec<OssSpec>,
    #[serde(default)]
    pub client: Vec<ClientSpec>,
}

fn default_port() -> u16 {
    fabric::tcp::DEFAULT_PORT
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct StripeDefault {
    pub count: Option<i32>,
    pub size: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct MdsSpec {
    pub host: String,
    pub nid: String,
    pub dir: PathBuf,
    #[serde(default)]
    pub metrics: Option<String>,
    #[serde(default)]
    pub root_squash: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct OssSpec {
    pub host: String,
    pub nid: String,
    pub osts: Vec<OstSpec>,
    #[serde(default)]
    pub metrics: Option<String>,
    /// Seconds of the lock recovery window after a restart.
    #[serde(default)]
    pub recovery_window: Option<u64>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct OstSpec {
    pub index: u32,
    pub dir: PathBuf,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// A host name, or `*` for every host.
    pub host: String,
    pub mount: PathBuf,
}

/// One process this host runs for the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalServer {
    pub name: String,
    pub nid: String,
    pub args: Vec<String>,
    /// Targets to format before first start: (is_mdt, index, dir).
    pub targets: Vec<(bool, u32, PathBuf)>,
}

impl ClusterSpec {
    pub fn load(path: &Path) -> Result<ClusterSpec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let spec: ClusterSpec = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        if self.fsname.is_empty() || self.fsname.len() > 8 {
            bail!("fsname `{}` must be 1 to 8 characters", self.fsname);
        }
        served_nid(&self.mds.nid).with_context(|| format!("mds nid `{}`", self.mds.nid))?;
        let mut seen = std::collections::BTreeSet::new();
        for o in &self.oss {
            served_nid(&o.nid).with_context(|| format!("oss {} nid `{}`", o.host, o.nid))?;
            for t in &o.osts {
                if !seen.insert(t.index) {
                    bail!("OST index {} appears twice", t.index);
                }
            }
        }
        if let Some(s) = &self.default_stripe
            && let Some(size) = &s.size
        {
            parse_size(size)?;
        }
        Ok(())
    }

    pub fn mount_spec(&self) -> String {
        format!("{}:/{}", self.mds.nid, self.fsname)
    }

    /// The servers `host` runs, with the command line of each.
    pub fn local_servers(&self, host: &str) -> Vec<LocalServer> {
        let mut out = Vec::new();
        let port = self.port.to_string();
        if self.mds.host == host {
            let mut args = vec![
                "mds".to_string(),
                "--dir".into(),
                self.mds.dir.display().to_string(),
                "--nid".into(),
                self.mds.nid.clone(),
                "--port".into(),
                port.clone(),
            ];
            if let Some(m) = &self.mds.metrics {
                args.extend(["--metrics".to_string(), m.clone()]);
            }
            if let Some(r) = &self.mds.root_squash {
                args.extend(["--root-squash".to_string(), r.clone()]);
            }
            out.push(LocalServer {
                name: "mds".into(),
                nid: self.mds.nid.clone(),
                args,
                targets: vec![(true, 0, self.mds.dir.clone())],
            });
        }
        for (i, o) in self.oss.iter().enumerate().filter(|(_, o)| o.host == host) {
            let mut args = vec![
                "oss".to_string(),
                "--fsname".into(),
                self.fsname.clone(),
                "--nid".into(),
                o.nid.clone(),
                "--mgs".into(),
                self.mds.nid.clone(),
                "--port".into(),
                port.clone(),
            ];
            for t in &o.osts {
                args.extend(["--ost".to_string(), format!("{}:{}", t.index, t.dir.display())]);
            }
            if let Some(m) = &o.metrics {
                args.extend(["--metrics".to_string(), m.clone()]);
            }
            if let Some(w) = o.recovery_window {
                args.extend(["--recovery-window".to_string(), w.to_string()]);
            }
            out.push(LocalServer {
                name: format!("oss{i}"),
                nid: o.nid.clone(),
                args,
                targets: o.osts.iter().map(|t| (false, t.index, t.dir.clone())).collect(),
            });
        }
        out
    }

    /// Where `host` mounts the file system, if it is a client.
    pub fn local_mount(&self, host: &str) -> Option<PathBuf> {
        self.client.iter().find(|c| c.host == host || c.host == "*").map(|c| c.mount.clone())
    }

    /// systemd units for `host`: one per server, and a mount unit.
    pub fn systemd_units(&self, host: &str, glint: &str) -> Vec<(String, String)> {
        let mut units = Vec::new();
        for s in self.local_servers(host) {
            let name = format!("glint-{}-{}.service", self.fsname, s.name);
            let body = format!(
                "[Unit]\nDescription=glint {fs} {role} ({nid})\nAfter=network-online.target\nWants=network-online.target\n\n\
                 [Service]\nType=simple\nExecStart={glint} {args}\nKillSignal=SIGTERM\nTimeoutStopSec=30\nRestart=on-failure\n\
                 LimitNOFILE=1048576\nLimitMEMLOCK=infinity\n\n[Install]\nWantedBy=multi-user.target\n",
                fs = self.fsname,
                role = s.name,
                nid = s.nid,
                args = s.args.join(" ")
            );
            units.push((name, body));
        }
        if let Some(m) = self.local_mount(host) {
            let unit = systemd_escape_path(&m);
            let body = format!(
                "[Unit]\nDescription=glint {fs} on {dir}\nAfter=network-online.target\nWants=network-online.target\n\n\
                 [Mount]\nWhat={what}\nWhere={dir}\nType=fuse.glint\nOptions=_netdev,allow_other\n\n\
                 [Install]\nWantedBy=remote-fs.target\n",
                fs = self.fsname,
                dir = m.display(),
                what = self.mount_spec()
            );
            units.push((format!("{unit}.mount"), body));
        }
        units
    }
}

/// systemd's unit name for a mount point (`/mnt/scratch` → `mnt-scratch`).
fn systemd_escape_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        return "-".into();
    }
    trimmed
        .split('/')
        .map(|part| {
            part.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                        c.to_string()
                    } else {
                        format!("\\x{:02x}", c as u32)
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `1M`, `64k`, `4194304`.
/// A server's NID: on a tcp network, or on an o2ib one (served over tcp on
/// the same address too, which hosts without RDMA use).
fn served_nid(s: &str) -> Result<Nid> {
    let nid: Nid = s.parse()?;
    if !matches!(nid.net.kind, fabric::NetType::Tcp | fabric::NetType::O2ib) {
        bail!("a server NID is on a tcp or o2ib network, not {}", nid.net);
    }
    Ok(nid)
}

pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1u64 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => bail!("bad size suffix in `{s}`"),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("bad size `{s}`"))?;
    n.checked_mul(mult).with_context(|| format!("size `{s}` is too large"))
}

/// This host's name, as the spec names hosts.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
fsname = "scratch"
[default_stripe]
count = 2
size = "4M"
[mds]
host = "mds01"
nid = "10.0.0.1@tcp"
dir = "/srv/mdt"
[[oss]]
host = "oss01"
nid = "10.0.0.11@tcp"
osts = [{ index = 0, dir = "/srv/ost0" }, { index = 1, dir = "/srv/ost1" }]
[[oss]]
host = "oss02"
nid = "10.0.0.12@o2ib"
osts = [{ index = 2, dir = "/srv/ost2" }]
recovery_window = 90
[[client]]
host = "*"
mount = "/mnt/my scratch"
"#;

    #[test]
    fn each_host_gets_its_part() {
        let s: ClusterSpec = toml::from_str(SPEC).unwrap();
        s.check().unwrap();
        assert_eq!(s.local_servers("mds01").len(), 1);
        let oss = s.local_servers("oss01");
        assert_eq!(oss.len(), 1);
        assert!(oss[0].args.windows(2).any(|w| w[0] == "--ost" && w[1] == "1:/srv/ost1"));
        assert_eq!(oss[0].targets.len(), 2);
        assert!(s.local_servers("compute7").is_empty());
        assert_eq!(s.local_mount("compute7"), Some(PathBuf::from("/mnt/my scratch")));
        let units = s.systemd_units("oss01", "/usr/bin/glint");
        assert_eq!(units[0].0, "glint-scratch-oss0.service");
        assert!(units[0].1.contains("ExecStart=/usr/bin/glint oss --fsname scratch --nid 10.0.0.11@tcp"));
        assert_eq!(units[1].0, "mnt-my\\x20scratch.mount");
        assert!(units[1].1.contains("What=10.0.0.1@tcp:/scratch"));
        let o2ib = s.local_servers("oss02");
        assert!(o2ib[0].args.windows(2).any(|w| w[0] == "--nid" && w[1] == "10.0.0.12@o2ib"));
        assert!(o2ib[0].args.windows(2).any(|w| w[0] == "--mgs" && w[1] == "10.0.0.1@tcp"));
        assert!(o2ib[0].args.windows(2).any(|w| w[0] == "--recovery-window" && w[1] == "90"));
        assert!(!oss[0].args.iter().any(|a| a == "--recovery-window"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let dup = SPEC.replace("index = 2", "index = 1");
        let s: ClusterSpec = toml::from_str(&dup).unwrap();
        assert!(s.check().unwrap_err().to_string().contains("OST index 1 appears twice"));
        let bad = SPEC.replace("10.0.0.12@o2ib", "10.0.0.12@ib0");
        let s: ClusterSpec = toml::from_str(&bad).unwrap();
        assert!(format!("{:#}", s.check().unwrap_err()).contains("10.0.0.12@ib0"));
        assert!(toml::from_str::<ClusterSpec>(&SPEC.replace("fsname", "fs_name")).is_err());
        let lo = SPEC.replace("10.0.0.12@o2ib", "0@lo");
        let s: ClusterSpec = toml::from_str(&lo).unwrap();
        assert!(format!("{:#}", s.check().unwrap_err()).contains("tcp or o2ib network, not lo"));
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert!(parse_size("4Q").is_err());
    }
}
