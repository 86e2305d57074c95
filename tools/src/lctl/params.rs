//! What one glint process shows `lctl`: its devices (the `lctl dl` rows)
//! and its parameters by Lustre-style dotted names, some of them
//! writable. Each kind of process (MDS, OSS, mount) implements [`Node`].

use fabric::Errno;
use serde::{Deserialize, Serialize};

/// One `lctl dl` row: `  3 UP osc glint-OST0000-osc-ffff… glint-OST0000_UUID 4`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Lustre's device type: mgs, mdt, obdfilter, mdc, osc, llite.
    pub kind: String,
    pub name: String,
    pub uuid: String,
    /// Lustre prints the device's reference count; glint prints the
    /// connections (fabric peers) of the process that holds the device.
    pub refs: u64,
}

/// One parameter and its value now. A multi-line value (stats) is
/// printed on the lines after `name=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub value: String,
    pub writable: bool,
}

impl Param {
    pub fn ro(name: String, value: impl ToString) -> Param {
        Param { name, value: value.to_string(), writable: false }
    }

    pub fn rw(name: String, value: impl ToString) -> Param {
        Param { name, value: value.to_string(), writable: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("param_path '{0}': No such file or directory")]
    NoMatch(String),
    #[error("{0}: read-only parameter")]
    ReadOnly(String),
    #[error("{name}={value}: {reason}")]
    BadValue { name: String, value: String, reason: String },
}

impl ParamError {
    pub fn errno(&self) -> Errno {
        match self {
            ParamError::NoMatch(_) => Errno::ENOENT,
            ParamError::ReadOnly(_) => Errno::EACCES,
            ParamError::BadValue { .. } => Errno::EINVAL,
        }
    }
}

/// One glint process as `lctl` sees it.
pub trait Node: Send + Sync + 'static {
    /// `mds`, `oss` or `client`.
    fn kind(&self) -> &'static str;
    fn fsname(&self) -> String;
    fn devices(&self) -> Vec<Device>;
    /// Every parameter with its value now.
    fn params(&self) -> Vec<Param>;
    /// Sets `value` on the writable parameters `names` (all of this
    /// node's), after checking it for every one of them; with `apply`
    /// false only checks. An error changes nothing.
    fn set(&self, names: &[String], value: &str, apply: bool) -> Result<(), ParamError>;
}

/// Parses a whole-number value, naming the parameter when it is not one.
pub fn number(name: &str, value: &str) -> Result<usize, ParamError> {
    value.trim().parse().map_err(|_| ParamError::BadValue {
        name: name.to_string(),
        value: value.to_string(),
        reason: "not a whole number".into(),
    })
}

/// The parameters of `node` that `patterns` name, by name, without repeats.
pub fn select(all: Vec<Param>, patterns: &[String]) -> Vec<Param> {
    let mut out: Vec<Param> =
        all.into_iter().filter(|p| patterns.iter().any(|pat| super::glob::matches(pat, &p.name))).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// Sets `value` on what `pattern` names in `node`: every match must be
/// writable and take the value; returns the names set (or that would be).
pub fn set_matching(
    node: &dyn Node,
    pattern: &str,
    value: &str,
    apply: bool,
) -> Result<Vec<String>, ParamError> {
    let matched = select(node.params(), &[pattern.to_string()]);
    if matched.is_empty() {
        return Err(ParamError::NoMatch(pattern.to_string()));
    }
    if let Some(p) = matched.iter().find(|p| !p.writable) {
        return Err(ParamError::ReadOnly(p.name.clone()));
    }
    let names: Vec<String> = matched.into_iter().map(|p| p.name).collect();
    node.set(&names, value, apply)?;
    Ok(names)
}
