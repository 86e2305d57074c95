//! `glint lctl` (and `lctl` as argv0): Lustre's lctl for the glint
//! processes of this node. `dl` lists their devices, `get_param` and
//! `list_param` read parameters by dotted names with `*` globs,
//! `set_param` changes the live client tunables, `ping` is `lnetctl ping`.
//! Each process is found in the run directory and asked over its control
//! socket (see `rundir` and `control`).

pub mod control;
pub mod glob;
pub mod mount;
pub mod params;
pub mod rundir;
pub mod servers;
pub mod stats;

use anyhow::{Result, bail};
use control::{Reply, Request, ask};
use params::Param;
use rundir::Registration;
use std::path::Path;

#[derive(clap::Subcommand, Debug)]
pub enum LctlCmd {
    /// The devices of this node's glint processes (`lctl dl`).
    #[command(visible_alias = "device_list")]
    Dl,
    /// Print parameters: NAME=VALUE, stats files after `NAME=`.
    #[command(name = "get_param", visible_alias = "get-param")]
    GetParam {
        /// Print the values only.
        #[arg(short = 'n')]
        values_only: bool,
        /// Print the names only.
        #[arg(short = 'N')]
        names_only: bool,
        /// Dotted names; `*` and `?` match within one component.
        #[arg(required = true)]
        patterns: Vec<String>,
    },
    /// Print the names of parameters.
    #[command(name = "list_param", visible_alias = "list-param")]
    ListParam {
        #[arg(default_values_t = ["*.*.*".to_string()])]
        patterns: Vec<String>,
    },
    /// Set live tunables: NAME=VALUE ... (e.g. osc.*.max_rpcs_in_flight=16).
    #[command(name = "set_param", visible_alias = "set-param")]
    SetParam {
        /// Lustre's permanent setting through the MGS: not served by glint.
        #[arg(short = 'P')]
        permanent: bool,
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Whether the glint server at NID answers (as `lnetctl ping`).
    Ping {
        nid: fabric::Nid,
        /// Seconds to wait for the answer.
        #[arg(default_value_t = 10)]
        timeout: u64,
    },
}

/// Asks every live process of the run directory; a process that does not
/// answer is reported and skipped.
fn ask_all(dir: &Path, req: &Request) -> Vec<(Registration, Reply)> {
    let mut out = Vec::new();
    for reg in rundir::live(dir) {
        match ask(&reg.socket, req) {
            Ok(r) => out.push((reg, r)),
            Err(e) => eprintln!("lctl: glint {} process {} did not answer: {e}", reg.kind, reg.pid),
        }
    }
    out
}

/// The `dl` listing.
pub fn device_list(dir: &Path) -> String {
    let mut out = String::new();
    let mut n = 0;
    for (_, reply) in ask_all(dir, &Request::Devices) {
        for d in reply.devices {
            out.push_str(&format!("{n:>3} UP {} {} {} {}\n", d.kind, d.name, d.uuid, d.refs));
            n += 1;
        }
    }
    out
}

/// Formats parameters as `get_param` prints them.
pub fn format_params(params: &[Param], values_only: bool, names_only: bool) -> String {
    let mut out = String::new();
    for p in params {
        let multi = p.value.contains('\n');
        if names_only {
            out.push_str(&p.name);
        } else if values_only {
            out.push_str(&p.value);
        } else if multi {
            out.push_str(&format!("{}=\n{}", p.name, p.value));
        } else {
            out.push_str(&format!("{}={}", p.name, p.value));
        }
        out.push('\n');
    }
    out
}

/// Every parameter `patterns` name on this node, and the patterns that named none.
pub fn get_params(dir: &Path, patterns: &[String]) -> (Vec<Param>, Vec<String>) {
    let mut all: Vec<Param> = Vec::new();
    for (_, reply) in ask_all(dir, &Request::Get { patterns: patterns.to_vec() }) {
        all.extend(reply.params);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let unmatched =
        patterns.iter().filter(|p| !all.iter().any(|x| glob::matches(p, &x.name))).cloned().collect();
    (all, unmatched)
}

/// Sets one `NAME=VALUE` on every process it names: first every process
/// checks it, and only if all take it is it applied, so a bad name or
/// value changes nothing. Returns the names set.
pub fn set_param(dir: &Path, setting: &str) -> Result<Vec<String>> {
    let Some((pattern, value)) = setting.split_once('=') else {
        bail!("set_param: `{setting}`: expected NAME=VALUE");
    };
    let check = Request::Set { pattern: pattern.into(), value: value.into(), apply: false };
    let mut takers = Vec::new();
    for (reg, reply) in ask_all(dir, &check) {
        if let Some(e) = reply.error {
            bail!("set_param: {} (errno {})", e.message, fabric::Errno(e.errno).name());
        }
        if !reply.no_match {
            takers.push(reg);
        }
    }
    if takers.is_empty() {
        bail!("set_param: param_path '{pattern}': No such file or directory");
    }
    let apply = Request::Set { pattern: pattern.into(), value: value.into(), apply: true };
    let mut names = Vec::new();
    for reg in takers {
        let reply = ask(&reg.socket, &apply)?;
        if let Some(e) = reply.error {
            bail!("set_param: {} (errno {})", e.message, fabric::Errno(e.errno).name());
        }
        names.extend(reply.params.into_iter().map(|p| p.name));
    }
    names.sort();
    Ok(names)
}

pub async fn run(cmd: LctlCmd) -> Result<i32> {
    let dir = rundir::run_dir();
    match cmd {
        LctlCmd::Dl => {
            print!("{}", device_list(&dir));
            Ok(0)
        }
        LctlCmd::GetParam { values_only, names_only, patterns } => {
            let (params, unmatched) = get_params(&dir, &patterns);
            print!("{}", format_params(&params, values_only, names_only));
            for p in &unmatched {
                eprintln!("error: get_param: param_path '{p}': No such file or directory");
            }
            Ok(if unmatched.is_empty() { 0 } else { 2 })
        }
        LctlCmd::ListParam { patterns } => {
            let (params, unmatched) = get_params(&dir, &patterns);
            print!("{}", format_params(&params, false, true));
            for p in &unmatched {
                eprintln!("error: list_param: param_path '{p}': No such file or directory");
            }
            Ok(if unmatched.is_empty() { 0 } else { 2 })
        }
        LctlCmd::SetParam { permanent, settings } => {
            if permanent {
                bail!(
                    "set_param -P: glint has no permanent parameters in the MGS yet; set them on each node"
                );
            }
            for s in &settings {
                let value = s.split_once('=').map(|(_, v)| v).unwrap_or_default();
                for name in set_param(&dir, s)? {
                    println!("{name}={value}");
                }
            }
            Ok(0)
        }
        LctlCmd::Ping { nid, timeout } => {
            let timeout = std::time::Duration::from_secs(timeout.max(1));
            let ep = crate::lnetctl::ping::endpoint(nid, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("cannot start a fabric endpoint: {e}"))?;
            let outcome = crate::lnetctl::ping::ping(&ep, nid).await;
            ep.shutdown();
            match outcome {
                crate::lnetctl::ping::Outcome::Alive { .. } => {
                    // LNet's well-known process id, as lctl ping prints it.
                    println!("12345-{nid}");
                    Ok(0)
                }
                crate::lnetctl::ping::Outcome::Failed(e) => {
                    eprintln!("failed to ping {nid}: {e}");
                    Ok(1)
                }
            }
        }
    }
}
