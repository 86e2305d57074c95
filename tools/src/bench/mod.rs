//! Benchmarks: programs that print each figure beside the physical limit
//! measured in the same run.

pub mod cluster;
pub mod fabric;
pub mod files;
pub mod fio;
pub mod io;
pub mod md;
pub mod ost;
pub mod report;
pub mod tmpfs;
pub mod watched;

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Latency samples.
#[derive(Default)]
pub struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    pub fn add(&mut self, d: Duration) {
        self.samples.push(d);
    }

    pub fn count(&self) -> usize {
        self.samples.len()
    }

    pub fn merge(&mut self, other: Stats) {
        self.samples.extend(other.samples);
    }

    /// The `p`th percentile in microseconds.
    pub fn pct(&mut self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        self.samples.sort();
        let i = ((p / 100.0) * (self.samples.len() - 1) as f64).round() as usize;
        self.samples[i].as_secs_f64() * 1e6
    }
}

/// Starts the server half of a yardstick tool on a free loopback port and
/// gives it a moment to listen; the port and the server.
fn tool_server(tool: &str, args: &[&str]) -> Result<(String, std::process::Child)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
    let server = Command::new(tool)
        .args(args)
        .args(["-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {tool} (apt-get install {tool})"))?;
    std::thread::sleep(Duration::from_millis(300));
    Ok((port, server))
}

/// Single-stream TCP bandwidth on loopback by iperf3, in Gbit/s.
pub fn iperf3_gbits(seconds: u32) -> Result<f64> {
    let (port, mut server) = tool_server("iperf3", &["-s", "-1", "-B", "127.0.0.1"])?;
    let out = Command::new("iperf3")
        .args(["-c", "127.0.0.1", "-p", &port, "-t", &seconds.to_string(), "-P", "1", "-J"])
        .output()
        .context("running the iperf3 client")?;
    let _ = server.wait();
    if !out.status.success() {
        bail!("iperf3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The receiver's summary: "sum_received": { ... "bits_per_second": N
    let at = text.find("\"sum_received\"").context("iperf3 output has no sum_received")?;
    let rest = &text[at..];
    let k = rest.find("\"bits_per_second\"").context("iperf3 output has no bits_per_second")?;
    let num: String = rest[k + 17..]
        .chars()
        .skip_while(|c| *c == ':' || c.is_whitespace())
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '+')
        .collect();
    Ok(num.parse::<f64>().context("iperf3 bits_per_second")? / 1e9)
}

/// Round-trip times of a TCP ping-pong of `size` bytes on loopback by
/// sockperf (`pp --full-rtt`): server and client in their own processes,
/// each blocking in recv as an RPC's two ends do, like netperf's TCP_RR.
pub struct PingPong {
    pub p50_us: f64,
    pub p99_us: f64,
}

pub fn sockperf_ping_pong(size: usize, seconds: u64) -> Result<PingPong> {
    let (port, mut server) = tool_server("sockperf", &["sr", "--tcp", "-i", "127.0.0.1"])?;
    let out = Command::new("sockperf")
        .args(["pp", "--tcp", "-i", "127.0.0.1", "-p", &port, "--full-rtt"])
        .args(["-m", &size.to_string(), "-t", &seconds.to_string()])
        .output()
        .context("running the sockperf client");
    let _ = server.kill();
    let _ = server.wait();
    let out = out?;
    if !out.status.success() {
        bail!("sockperf failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // sockperf prints its statistics on stderr or stdout depending on the
    // version: "---> percentile 50.000 =   63.624" (microseconds).
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let pct = |p: &str| -> Result<f64> {
        let key = format!("percentile {p} =");
        let at = text.find(&key).with_context(|| format!("sockperf printed no {key}"))?;
        let num: String = text[at + key.len()..]
            .chars()
            .skip_while(|c| c.is_whitespace())
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        num.parse::<f64>().with_context(|| format!("sockperf {key} {num:?}"))
    };
    Ok(PingPong { p50_us: pct("50.000")?, p99_us: pct("99.000")? })
}
