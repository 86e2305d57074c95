//! The MDS process (devices `mgs` and `mdt`) and an OSS process (an
//! `obdfilter` device per OST) as lctl sees them. Their parameters are
//! read-only: counters, space and identity.

use super::params::{Device, Node, Param, ParamError};
use super::stats::{Counter, Snapshot, op_lines, render};
use prometheus::Registry;
use std::sync::Arc;

/// Connections of the process, shown as the devices' reference count.
fn peers(s: &Snapshot) -> u64 {
    s.value("glint_fabric_peers", &[]).unwrap_or(0.0) as u64
}

fn read_only(names: &[String]) -> Result<(), ParamError> {
    Err(ParamError::ReadOnly(names.first().cloned().unwrap_or_default()))
}

pub struct MdsNode {
    mds: Arc<mds::Mds>,
    registry: Registry,
}

impl MdsNode {
    pub fn new(handle: &mds::MdsHandle, registry: Registry) -> Arc<MdsNode> {
        Arc::new(MdsNode { mds: handle.mds.clone(), registry })
    }

    fn target(&self) -> String {
        format!("{}-MDT0000", self.fsname())
    }
}

impl Node for MdsNode {
    fn kind(&self) -> &'static str {
        "mds"
    }

    fn fsname(&self) -> String {
        self.mds.mdt().fsname().to_string()
    }

    fn devices(&self) -> Vec<Device> {
        let refs = peers(&Snapshot::gather(&self.registry));
        let t = self.target();
        vec![
            Device { kind: "mgs".into(), name: "MGS".into(), uuid: "MGS".into(), refs },
            Device { kind: "mdt".into(), name: t.clone(), uuid: format!("{t}_UUID"), refs },
        ]
    }

    fn params(&self) -> Vec<Param> {
        let s = Snapshot::gather(&self.registry);
        let t = self.target();
        let p = |what: &str| format!("mdt.{t}.{what}");
        let mut out = vec![
            Param::ro(p("md_stats"), render(s.at, &op_lines(self.mds.op_summaries()))),
            Param::ro(p("uuid"), format!("{t}_UUID")),
        ];
        if let Ok(fs) = self.mds.mdt().statfs() {
            out.push(Param::ro(p("filestotal"), fs.files));
            out.push(Param::ro(p("filesfree"), fs.ffree));
        }
        let l = [("target", t.as_str())];
        let num = |name: &str| s.value(name, &l).unwrap_or(0.0) as u64;
        out.push(Param::ro(
            p("commit_stats"),
            render(
                s.at,
                &[
                    Counter::new("commits", num("glint_mds_commits_total"), "reqs"),
                    Counter::new("committed_ops", num("glint_mds_committed_ops_total"), "reqs"),
                ],
            ),
        ));
        out.push(Param::ro(p("destroy_log_objects"), num("glint_mds_destroy_log_objects")));
        out
    }

    fn set(&self, names: &[String], _value: &str, _apply: bool) -> Result<(), ParamError> {
        read_only(names)
    }
}

pub struct OssNode {
    oss: Arc<ost::Oss>,
    registry: Registry,
}

impl OssNode {
    pub fn new(handle: &ost::OssHandle, registry: Registry) -> Arc<OssNode> {
        Arc::new(OssNode { oss: handle.oss.clone(), registry })
    }

    fn targets(&self) -> Vec<(String, Arc<ost::service::Target>)> {
        let mut v: Vec<_> =
            self.oss.targets().map(|(_, t)| (t.store.label().target_name(), t.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl Node for OssNode {
    fn kind(&self) -> &'static str {
        "oss"
    }

    fn fsname(&self) -> String {
        self.oss.fsname().to_string()
    }

    fn devices(&self) -> Vec<Device> {
        let refs = peers(&Snapshot::gather(&self.registry));
        let mut out = vec![Device { kind: "ost".into(), name: "OSS".into(), uuid: "OSS_uuid".into(), refs }];
        for (t, _) in self.targets() {
            out.push(Device { kind: "obdfilter".into(), uuid: format!("{t}_UUID"), name: t, refs });
        }
        out
    }

    fn params(&self) -> Vec<Param> {
        let s = Snapshot::gather(&self.registry);
        let mut out = Vec::new();
        for (t, target) in self.targets() {
            let p = |what: &str| format!("obdfilter.{t}.{what}");
            let l = [("target", t.as_str())];
            let num = |name: &str| s.value(name, &l).unwrap_or(0.0) as u64;
            // Lustre's first two lines: the transfers, counted in bytes.
            let mut lines = vec![
                Counter::samples("read_bytes", target.stats.read.summary(), "bytes"),
                Counter::samples("write_bytes", target.stats.write.summary(), "bytes"),
            ];
            lines.extend(op_lines(target.latency.summaries()));
            out.push(Param::ro(p("stats"), render(s.at, &lines)));
            out.push(Param::ro(p("uuid"), format!("{t}_UUID")));
            out.push(Param::ro(p("recovery_status"), target.ldlm.recovery_status()));
            out.push(Param::ro(p("recovery_time_soft"), target.ldlm.recovery_window().as_secs()));
            out.push(Param::ro(
                format!("ldlm.namespaces.{}.lock_count", target.ldlm.name()),
                target.ldlm.lock_count(),
            ));
            out.push(Param::ro(p("read_bytes_total"), num("glint_ost_read_bytes_total")));
            out.push(Param::ro(p("write_bytes_total"), num("glint_ost_write_bytes_total")));
            if let Ok(fs) = target.store.statfs() {
                let kib = |blocks: u64| blocks.saturating_mul(fs.bsize as u64) / 1024;
                out.push(Param::ro(p("kbytestotal"), kib(fs.blocks)));
                out.push(Param::ro(p("kbytesfree"), kib(fs.bfree)));
                out.push(Param::ro(p("kbytesavail"), kib(fs.bavail)));
                out.push(Param::ro(p("filestotal"), fs.files));
                out.push(Param::ro(p("filesfree"), fs.ffree));
            }
        }
        out
    }

    fn set(&self, names: &[String], _value: &str, _apply: bool) -> Result<(), ParamError> {
        read_only(names)
    }
}
