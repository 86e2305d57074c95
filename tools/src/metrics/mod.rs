//! Prometheus metrics of the glint servers and the mount: a registry per
//! process, holding the collectors of what the process runs, served over
//! HTTP on the address given with `--metrics`. See docs/metrics.md.

pub mod http;

use anyhow::{Context, Result};
use fabric::metrics::FabricCollector;
use prometheus::Registry;
use prometheus::core::Collector;
use std::sync::Arc;

fn registry(collectors: Vec<Box<dyn Collector>>) -> Result<Registry> {
    let r = Registry::new();
    for c in collectors {
        r.register(c).context("registering a metrics collector")?;
    }
    Ok(r)
}

/// The MGS/MDS process: its fabric and its MDT.
pub fn mds_registry(h: &mds::MdsHandle) -> Result<Registry> {
    registry(vec![
        Box::new(FabricCollector::new(&h.endpoint)),
        Box::new(mds::metrics::MdsCollector::new(h.mds.clone())),
    ])
}

/// An OSS process: its fabric and its OSTs.
pub fn oss_registry(h: &ost::OssHandle) -> Result<Registry> {
    registry(vec![
        Box::new(FabricCollector::new(&h.endpoint)),
        Box::new(ost::metrics::OstCollector::new(h.oss.clone())),
    ])
}

/// A mount (or any client): its fabric and its operations.
pub fn client_registry(c: &Arc<client::Client>) -> Result<Registry> {
    registry(vec![
        Box::new(FabricCollector::new(c.endpoint())),
        Box::new(client::metrics::ClientCollector::new(c.clone())),
    ])
}

/// Binds `addr` and serves `registry` there from a task on the current runtime.
pub async fn serve(addr: &str, registry: Registry) -> Result<()> {
    let listener = http::bind(addr).await?;
    tracing::info!(%addr, "serving metrics at /metrics");
    tokio::spawn(http::serve(listener, registry));
    Ok(())
}
