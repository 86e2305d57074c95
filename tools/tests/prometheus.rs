//! A real Prometheus scrapes a running glint file system.
//!
//! `glint up` starts an MDS, two OSSs and a FUSE mount on loopback, each
//! serving metrics; Prometheus (the Debian package, installed here when
//! missing) scrapes them every second. The test writes and reads a file
//! through the mount and asks Prometheus, in PromQL over its HTTP API, that
//! every target is up and that the throughput and operation counters rose.
//!
//! Needs root (FUSE, and apt-get when Prometheus is missing).

#[path = "common/ports.rs"]
mod ports;
use ports::{free, pick_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GLINT: &str = env!("CARGO_BIN_EXE_glint");
const OSTS: u16 = 2;
/// Every wait is bounded so a hang fails with a message instead of stalling.
const PATIENCE: Duration = Duration::from_secs(30);
const FILE_BYTES: usize = 32 << 20;

/// Installs Prometheus from the distribution when it is not on PATH.
fn ensure_prometheus() {
    if Command::new("prometheus").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return;
    }
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| {
        let mut c = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            c.arg("apt-get");
        }
        let st = c.args(args).env("DEBIAN_FRONTEND", "noninteractive").status().expect("running apt-get");
        assert!(st.success(), "apt-get {args:?} failed: install the Debian package `prometheus`");
    };
    apt(&["update", "-qq"]);
    apt(&["install", "-y", "-qq", "--no-install-recommends", "prometheus"]);
}

/// The file system and Prometheus; `Drop` stops both, also on failure.
struct Rig {
    state: PathBuf,
    prometheus: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut p) = self.prometheus.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = Command::new(GLINT).arg("down").arg("--state").arg(&self.state).status();
    }
}

/// GET `path` from `addr` over HTTP/1.1; the status code and the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// Percent-encodes a PromQL expression for a query string.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether the instant query `q` (a comparison) has a result now.
fn holds(prom: &str, q: &str) -> bool {
    let Ok((200, body)) = http_get(prom, &format!("/api/v1/query?query={}", encode(q))) else {
        return false;
    };
    assert!(body.contains(r#""status":"success""#), "query {q} failed: {body}");
    // A comparison filters the vector: empty means false.
    !body.contains(r#""result":[]"#)
}

/// Waits until `q` holds, or fails with what Prometheus last said.
fn wait_for(prom: &str, q: &str) {
    let start = Instant::now();
    while !holds(prom, q) {
        if start.elapsed() > PATIENCE {
            let (_, targets) = http_get(prom, "/api/v1/targets").unwrap_or_default();
            let value = q.split([' ', '>', '<', '=']).next().unwrap_or(q);
            let (_, now) =
                http_get(prom, &format!("/api/v1/query?query={}", encode(value))).unwrap_or_default();
            panic!("`{q}` did not hold within {PATIENCE:?}; now {now}\ntargets: {targets}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn write_config(path: &Path, targets: &[String]) {
    let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: glint\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [{list}]\n"
    );
    std::fs::write(path, cfg).unwrap();
}

#[test]
fn prometheus_scrapes_a_running_file_system() {
    ensure_prometheus();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mount = dir.path().join("mnt");
    // `glint up` listens on 127.0.0.1..(OSTS+1) at `port`; metrics come on
    // 127.0.0.1 from `metrics` on, one port per server and the mount.
    let port = pick_port(|p| (1..=OSTS + 1).all(|i| free(&format!("127.0.0.{i}"), p)));
    let metrics = pick_port(|p| p < 65000 && (p..p + OSTS + 2).all(|q| free("127.0.0.1", q)));
    let mut rig = Rig { state: state.clone(), prometheus: None, _dir: dir };

    let up = Command::new(GLINT)
        .args(["up", "--osts", &OSTS.to_string(), "--port", &port.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .arg("--state")
        .arg(&state)
        .arg("--mount")
        .arg(&mount)
        .output()
        .expect("running glint up");
    let out = String::from_utf8_lossy(&up.stdout);
    assert!(up.status.success(), "glint up failed: {out}{}", String::from_utf8_lossy(&up.stderr));
    let targets: Vec<String> = (0..OSTS + 2).map(|i| format!("127.0.0.1:{}", metrics + i)).collect();
    for t in &targets {
        assert!(out.contains(&format!("http://{t}/metrics")), "glint up does not print {t}: {out}");
    }
    // Our own server answers 404 off /metrics.
    assert_eq!(http_get(&targets[0], "/nothing").unwrap().0, 404);

    let prom = format!("127.0.0.1:{}", pick_port(|p| free("127.0.0.1", p)));
    let config = rig._dir.path().join("prometheus.yml");
    write_config(&config, &targets);
    let log = std::fs::File::create(rig._dir.path().join("prometheus.log")).unwrap();
    rig.prometheus = Some(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", rig._dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={prom}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting prometheus"),
    );
    let start = Instant::now();
    while !matches!(http_get(&prom, "/-/ready"), Ok((200, _))) {
        assert!(start.elapsed() < PATIENCE, "prometheus did not get ready within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every target up, and nothing written yet.
    let n = targets.len();
    wait_for(&prom, &format!("count(up{{job=\"glint\"}} == 1) == {n}"));
    wait_for(&prom, "sum(glint_ost_write_bytes_total) == 0");

    let data: Vec<u8> = (0..FILE_BYTES).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(mount.join("file"), &data).unwrap();
    assert_eq!(std::fs::read(mount.join("file")).unwrap(), data);

    let bytes = FILE_BYTES;
    wait_for(&prom, &format!("sum(glint_ost_write_bytes_total) >= {bytes}"));
    wait_for(&prom, &format!("sum(glint_ost_read_bytes_total) >= {bytes}"));
    wait_for(&prom, &format!("sum(glint_client_write_bytes_total) >= {bytes}"));
    wait_for(&prom, &format!("sum(glint_client_read_bytes_total) >= {bytes}"));
    wait_for(&prom, &format!("sum(glint_fabric_bulk_rx_bytes_total{{job=\"glint\"}}) >= {}", 2 * bytes));
    wait_for(&prom, "sum(glint_ost_op_duration_seconds_count{op=\"write\"}) >= 32");
    wait_for(&prom, "sum(glint_mds_op_duration_seconds_count{op=\"create\"}) >= 1");
    wait_for(&prom, "sum(glint_mds_commit_seconds_count{phase=\"durable\"}) >= 1");
    wait_for(&prom, "sum(glint_client_op_duration_seconds_count{op=\"open\"}) >= 1");
    wait_for(&prom, "sum(glint_fabric_rpc_service_seconds_count) > 0");
    wait_for(&prom, "count(glint_ost_capacity_bytes > 0) == 2");
    // The latency histograms answer a percentile.
    wait_for(
        &prom,
        "histogram_quantile(0.99, sum by (le) (glint_ost_op_duration_seconds_bucket{op=\"write\"})) > 0",
    );
    wait_for(&prom, &format!("count(up{{job=\"glint\"}} == 1) == {n}"));

    // Every query of the Grafana dashboard is PromQL this Prometheus accepts.
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 20, "the dashboard has {} queries", exprs.len());
    for e in exprs {
        let q = e.replace("$__rate_interval", "5s").replace("$target", ".*");
        let (code, body) = http_get(&prom, &format!("/api/v1/query?query={}", encode(&q))).unwrap();
        assert!(code == 200 && body.contains(r#""status":"success""#), "dashboard query `{q}`: {body}");
    }
}

/// The `expr` of every panel query in docs/grafana/glint.json.
fn dashboard_exprs() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/glint.json");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let key = r#""expr": ""#;
    let mut rest = text.as_str();
    while let Some(at) = rest.find(key) {
        rest = &rest[at + key.len()..];
        let mut expr = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => expr.extend(chars.next().map(|(_, c)| c)),
                Some((i, '"')) => break i,
                Some((_, c)) => expr.push(c),
                None => panic!("unterminated expr in {path}"),
            }
        };
        rest = &rest[end..];
        out.push(expr);
    }
    out
}
