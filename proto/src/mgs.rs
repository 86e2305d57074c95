//! The management service: which targets a file system has and where.

use crate::layout::StripeSpec;
use fabric::Nid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    Mdt,
    Ost,
}

/// One target and the NIDs its server answers on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub kind: TargetKind,
    pub index: u32,
    pub nids: Vec<Nid>,
    /// The target's Prometheus address, if it serves one.
    pub metrics: Option<String>,
}

impl TargetInfo {
    /// Lustre's name for the target: `FSNAME-OST0001`.
    pub fn name(&self, fsname: &str) -> String {
        match self.kind {
            TargetKind::Mdt => format!("{fsname}-MDT{:04x}", self.index),
            TargetKind::Ost => format!("{fsname}-OST{:04x}", self.index),
        }
    }
}

/// What a client or server learns from the MGS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsConfig {
    pub fsname: String,
    pub mdt: Option<TargetInfo>,
    pub osts: Vec<TargetInfo>,
    pub default_stripe: StripeSpec,
    /// Bumped whenever a target is added or changes NIDs.
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MgsRequest {
    Register { fsname: String, target: TargetInfo },
    GetConfig { fsname: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MgsReply {
    Registered { version: u64 },
    Config(FsConfig),
}
