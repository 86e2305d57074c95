//! A mount as lctl sees it: an `llite` device for the mount, an `mdc` for
//! its MDT connection and an `osc` per OST connection, named as Lustre
//! names them (`glint-OST0000-osc-<instance>`), and the client tunables
//! that `set_param` changes while the mount runs.

use super::params::{Device, Node, Param, ParamError, number};
use super::stats::{Counter, Snapshot, op_lines, render};
use client::{Client, RpcStats, TunableError};
use fabric::metrics::SampleSummary;
use prometheus::Registry;
use std::sync::Arc;

const MAX_RPCS_IN_FLIGHT: &str = "max_rpcs_in_flight";
const MAX_PAGES_PER_RPC: &str = "max_pages_per_rpc";
const SHORT_IO_BYTES: &str = "short_io_bytes";
const MAX_READ_AHEAD_MB: &str = "max_read_ahead_mb";
const MAX_READ_AHEAD_PER_FILE_MB: &str = "max_read_ahead_per_file_mb";

pub struct MountNode {
    client: Arc<Client>,
    registry: Registry,
    /// Lustre tells mounts apart by the superblock's address; glint by
    /// `lfs::fids::instance_id` of the mount's source and directory, so
    /// that `lfs getname` and `lfs check` name the same devices.
    instance: String,
}

impl MountNode {
    pub fn new(client: &Arc<Client>, registry: Registry, instance: String) -> Arc<MountNode> {
        Arc::new(MountNode { client: client.clone(), registry, instance })
    }

    pub fn osc_name(&self, ost: u32) -> String {
        format!("{}-OST{ost:04x}-osc-{}", self.client.fsname(), self.instance)
    }

    fn mdc_name(&self) -> String {
        format!("{}-MDT0000-mdc-{}", self.client.fsname(), self.instance)
    }

    fn llite_name(&self) -> String {
        format!("{}-{}", self.client.fsname(), self.instance)
    }

    /// The OST an `osc.NAME.PARAM` parameter is about, and PARAM.
    fn osc_of<'a>(&self, name: &'a str) -> Option<(u32, &'a str)> {
        let rest = name.strip_prefix("osc.")?;
        let (dev, param) = rest.rsplit_once('.')?;
        self.client.ost_indices().into_iter().find(|i| self.osc_name(*i) == dev).map(|i| (i, param))
    }
}

/// Lustre's `rpc_stats`, the "rpcs in flight" table.
pub fn rpc_stats_text(at: std::time::SystemTime, s: &RpcStats) -> String {
    let mut out = super::stats::snapshot_time(at);
    out.push_str(&format!(
        "\nread RPCs in flight:  {}\nwrite RPCs in flight: {}\n",
        s.read_in_flight, s.write_in_flight
    ));
    out.push_str("\n\t\t\tread\t\t\twrite\nrpcs in flight        rpcs   % cum % |       rpcs   % cum %\n");
    let (rt, wt) = (s.read.iter().sum::<u64>().max(1), s.write.iter().sum::<u64>().max(1));
    let (mut rc, mut wc) = (0, 0);
    for i in 0..s.read.len().max(s.write.len()) {
        let r = s.read.get(i).copied().unwrap_or(0);
        let w = s.write.get(i).copied().unwrap_or(0);
        rc += r;
        wc += w;
        // Lustre's own row format, tabs included, for scripts that parse it.
        out.push_str(&format!(
            "{i}:\t\t{r:>10} {:>3} {:>3}   | {w:>10} {:>3} {:>3}\n",
            r * 100 / rt,
            rc * 100 / rt,
            w * 100 / wt,
            wc * 100 / wt
        ));
    }
    out.trim_end().to_string()
}

impl Node for MountNode {
    fn kind(&self) -> &'static str {
        "client"
    }

    fn fsname(&self) -> String {
        self.client.fsname().to_string()
    }

    fn devices(&self) -> Vec<Device> {
        let s = Snapshot::gather(&self.registry);
        let refs = s.value("glint_fabric_peers", &[]).unwrap_or(0.0) as u64;
        let fs = self.client.fsname();
        let mut out = vec![Device {
            kind: "mdc".into(),
            name: self.mdc_name(),
            uuid: format!("{fs}-MDT0000_UUID"),
            refs,
        }];
        for i in self.client.ost_indices() {
            out.push(Device {
                kind: "osc".into(),
                name: self.osc_name(i),
                uuid: format!("{fs}-OST{i:04x}_UUID"),
                refs,
            });
        }
        out.push(Device {
            kind: "llite".into(),
            name: self.llite_name(),
            uuid: format!("{}_UUID", self.llite_name()),
            refs,
        });
        out
    }

    fn params(&self) -> Vec<Param> {
        let s = Snapshot::gather(&self.registry);
        let fs = self.client.fsname().to_string();
        let config = self.client.config();
        let mut out = Vec::new();
        let (mut reads, mut writes) = (SampleSummary::default(), SampleSummary::default());
        for i in self.client.ost_indices() {
            let dev = self.osc_name(i);
            let p = |what: &str| format!("osc.{dev}.{what}");
            let target = format!("{fs}-OST{i:04x}");
            if let Some(n) = self.client.max_rpcs_in_flight(i) {
                out.push(Param::rw(p(MAX_RPCS_IN_FLIGHT), n));
            }
            out.push(Param::rw(p(MAX_PAGES_PER_RPC), self.client.max_pages_per_rpc()));
            if let Some(n) = self.client.short_io_bytes(i) {
                out.push(Param::rw(p(SHORT_IO_BYTES), n));
            }
            if let Some(st) = self.client.osc_stats(i) {
                reads = reads.merge(st.read);
                writes = writes.merge(st.write);
                let mut lines = vec![
                    Counter::samples("read_bytes", st.read, "bytes"),
                    Counter::samples("write_bytes", st.write, "bytes"),
                ];
                lines.extend(op_lines(st.ops));
                out.push(Param::ro(p("stats"), render(s.at, &lines)));
            }
            if let Some(r) = self.client.rpc_stats(i) {
                out.push(Param::ro(p("rpc_stats"), rpc_stats_text(s.at, &r)));
            }
            if let Some(n) = self.client.rpcs_in_flight(i) {
                out.push(Param::ro(p("cur_rpcs_in_flight"), n));
            }
            if let Some(t) = config.osts.iter().find(|t| t.index == i) {
                let nid = t.nids.first().map(|n| n.to_string()).unwrap_or_default();
                out.push(Param::ro(p("ost_conn_uuid"), nid));
            }
            out.push(Param::ro(p("ost_server_uuid"), format!("{target}_UUID\tFULL")));
            // Lustre names a client's lock namespace after its OSC.
            out.push(Param::ro(format!("ldlm.namespaces.{dev}.lock_count"), self.client.lock_count_on(i)));
        }
        let md_ops = op_lines(self.client.mdc_stats());
        let md_total: u64 = md_ops.iter().map(|c| c.count).sum();
        out.push(Param::ro(format!("mdc.{}.md_stats", self.mdc_name()), render(s.at, &md_ops)));
        if let Some(t) = &config.mdt {
            let nid = t.nids.first().map(|n| n.to_string()).unwrap_or_default();
            out.push(Param::ro(format!("mdc.{}.mds_conn_uuid", self.mdc_name()), nid));
        }
        // The mount's own counts, per RPC: glint's FUSE layer does not
        // count system calls apart from the RPCs they cause.
        let mut llite = vec![
            Counter::samples("read_bytes", reads, "bytes"),
            Counter::samples("write_bytes", writes, "bytes"),
        ];
        llite.push(Counter::new("metadata_rpcs", md_total, "reqs"));
        out.push(Param::ro(format!("llite.{}.stats", self.llite_name()), render(s.at, &llite)));
        let l = |what: &str| format!("llite.{}.{what}", self.llite_name());
        out.push(Param::rw(l(MAX_READ_AHEAD_MB), self.client.max_read_ahead_mb()));
        out.push(Param::rw(l(MAX_READ_AHEAD_PER_FILE_MB), self.client.max_read_ahead_per_file_mb()));
        out.push(Param::ro(
            l("read_ahead_stats"),
            read_ahead_stats_text(s.at, self.client.read_ahead_stats()),
        ));
        out
    }

    fn set(&self, names: &[String], value: &str, apply: bool) -> Result<(), ParamError> {
        let bad = |name: &str, e: TunableError| ParamError::BadValue {
            name: name.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        };
        let mut rif = Vec::new();
        let mut short = Vec::new();
        let mut pages_named = Vec::new();
        let mut read_ahead = Vec::new();
        let llite = format!("llite.{}.", self.llite_name());
        for name in names {
            if let Some(p @ (MAX_READ_AHEAD_MB | MAX_READ_AHEAD_PER_FILE_MB)) = name.strip_prefix(&llite) {
                read_ahead.push((name, p));
                continue;
            }
            match self.osc_of(name) {
                Some((ost, MAX_RPCS_IN_FLIGHT)) => rif.push((name, ost)),
                Some((ost, SHORT_IO_BYTES)) => short.push((name, ost)),
                Some((ost, MAX_PAGES_PER_RPC)) => pages_named.push(ost),
                _ => return Err(ParamError::ReadOnly(name.clone())),
            }
        }
        if let Some((name, _)) = rif.first() {
            let n = number(name, value)?;
            client::check_rpcs_in_flight(n).map_err(|e| bad(name, e))?;
        }
        if let Some((name, _)) = short.first() {
            let n = number(name, value)?;
            client::check_short_io_bytes(n).map_err(|e| bad(name, e))?;
        }
        let pages = match pages_named.first() {
            None => None,
            Some(_) => {
                let name = format!("osc.*.{MAX_PAGES_PER_RPC}");
                let all = self.client.ost_indices();
                if all.iter().any(|i| !pages_named.contains(i)) {
                    return Err(ParamError::BadValue {
                        name: name.clone(),
                        value: value.to_string(),
                        reason: "glint keeps one max_pages_per_rpc per mount: name every OSC of the mount \
                                 (osc.*.max_pages_per_rpc)"
                            .into(),
                    });
                }
                let n = number(&name, value)?;
                self.client.check_max_pages_per_rpc(n).map_err(|e| bad(&name, e))?;
                Some((name, n))
            }
        };
        for (name, param) in &read_ahead {
            let n = number(name, value)?;
            let r = if *param == MAX_READ_AHEAD_MB {
                if n > client::MAX_READ_AHEAD_MB { Err(TunableError::ReadAhead(n)) } else { Ok(()) }
            } else {
                let max = self.client.max_read_ahead_mb();
                if n > max { Err(TunableError::ReadAheadPerFile { mb: n, max }) } else { Ok(()) }
            };
            r.map_err(|e| bad(name, e))?;
        }
        if !apply {
            return Ok(());
        }
        for (name, param) in read_ahead {
            let n = number(name, value)?;
            let r = if param == MAX_READ_AHEAD_MB {
                self.client.set_max_read_ahead_mb(n)
            } else {
                self.client.set_max_read_ahead_per_file_mb(n)
            };
            r.map_err(|e| bad(name, e))?;
        }
        if let Some(first) = rif.first() {
            let n = number(first.0, value)?;
            for (name, ost) in &rif {
                self.client.set_max_rpcs_in_flight(*ost, n).map_err(|e| bad(name, e))?;
            }
        }
        if let Some(first) = short.first() {
            let n = number(first.0, value)?;
            for (name, ost) in &short {
                self.client.set_short_io_bytes(*ost, n).map_err(|e| bad(name, e))?;
            }
        }
        if let Some((name, n)) = pages {
            self.client.set_max_pages_per_rpc(n).map_err(|e| bad(&name, e))?;
        }
        Ok(())
    }
}

/// Lustre's `read_ahead_stats`: counters in pages, zeros left out.
pub fn read_ahead_stats_text(at: std::time::SystemTime, s: &client::ReadAheadStats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let lines = [
        Counter::new("hits", s.hits.load(Relaxed), "pages"),
        Counter::new("misses", s.misses.load(Relaxed), "pages"),
        Counter::new("readpage_not_consecutive", s.not_consecutive.load(Relaxed), "pages"),
        Counter::new("read_ahead_windows", s.windows.load(Relaxed), "windows"),
        Counter::new("read_ahead_bytes", s.bytes.load(Relaxed), "bytes"),
    ];
    render(at, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_stats_read_like_lustre() {
        let s = RpcStats { read_in_flight: 0, write_in_flight: 1, read: vec![4], write: vec![1, 3] };
        let text = rpc_stats_text(std::time::UNIX_EPOCH, &s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "read RPCs in flight:  0");
        assert_eq!(lines[2], "write RPCs in flight: 1");
        assert_eq!(lines[6], "0:\t\t         4 100 100   |          1  25  25");
        assert_eq!(lines[7], "1:\t\t         0   0 100   |          3  75 100");
        assert_eq!(lines.len(), 8);
    }
}
