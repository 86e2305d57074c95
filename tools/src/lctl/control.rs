//! The control socket of a glint process: `lctl` connects to
//! `<pid>.sock` in the run directory, writes one request (TOML) and
//! closes its side, and reads one reply. A Unix socket rather than the
//! metrics HTTP listener because lctl acts on the local node only: the
//! socket works whether or not metrics are served, is not reachable from
//! the network, and its file mode says who may change a tunable.

use super::params::{Device, Node, Param, ParamError, select, set_matching};
use super::rundir::{self, Registered};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most of a request read; real ones are a few hundred bytes.
const MAX_REQUEST: u64 = 64 * 1024;
/// A connection that does not finish its request or reply in this long is dropped.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Devices,
    Get {
        patterns: Vec<String>,
    },
    /// With `apply` false, only checks that the value would be taken.
    Set {
        pattern: String,
        value: String,
        apply: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub errno: i32,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub params: Vec<Param>,
    /// For a Set that matched nothing here: not an error for lctl unless
    /// no process matched.
    #[serde(default)]
    pub no_match: bool,
    pub error: Option<WireError>,
}

/// Answers one request.
pub fn answer(node: &dyn Node, req: Request) -> Reply {
    match req {
        Request::Devices => Reply { devices: node.devices(), ..Default::default() },
        Request::Get { patterns } => Reply { params: select(node.params(), &patterns), ..Default::default() },
        Request::Set { pattern, value, apply } => match set_matching(node, &pattern, &value, apply) {
            Ok(names) => Reply {
                params: names
                    .into_iter()
                    .map(|name| Param { name, value: value.clone(), writable: true })
                    .collect(),
                ..Default::default()
            },
            Err(ParamError::NoMatch(_)) => Reply { no_match: true, ..Default::default() },
            Err(e) => Reply {
                error: Some(WireError { errno: e.errno().0, message: e.to_string() }),
                ..Default::default()
            },
        },
    }
}

/// Registers this process in the run directory and serves its control
/// socket from a task on the current runtime until the runtime stops
/// (which removes the registration).
/// Serves `node` on a control socket in the run directory. The caller
/// keeps the returned registration for as long as the process serves:
/// dropping it removes the record and the socket, which a task on a
/// runtime torn down by `process::exit` would never do.
pub fn serve(node: Arc<dyn Node>) -> std::io::Result<Registered> {
    serve_in(&rundir::run_dir(), node)
}

pub fn serve_in(dir: &Path, node: Arc<dyn Node>) -> std::io::Result<Registered> {
    let (registered, listener) = rundir::register(dir, node.kind(), &node.fsname())?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    tokio::spawn(accept_loop(listener, node));
    Ok(registered)
}

async fn accept_loop(listener: tokio::net::UnixListener, node: Arc<dyn Node>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let node = node.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(PATIENCE, connection(stream, node)).await {
                        Ok(Err(e)) => tracing::debug!(error = %e, "lctl connection ended"),
                        Err(_) => tracing::debug!("lctl connection timed out"),
                        Ok(Ok(())) => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "lctl control accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: tokio::net::UnixStream, node: Arc<dyn Node>) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut text = String::new();
    rd.take(MAX_REQUEST).read_to_string(&mut text).await?;
    let reply = match toml::from_str::<Request>(&text) {
        // Statfs and metric gathering block briefly; keep them off the
        // threads that move the file system's data.
        Ok(req) => {
            tokio::task::spawn_blocking(move || answer(&*node, req)).await.map_err(std::io::Error::other)?
        }
        Err(e) => Reply {
            error: Some(WireError {
                errno: fabric::Errno::EINVAL.0,
                message: format!("bad lctl request: {e}"),
            }),
            ..Default::default()
        },
    };
    let out = toml::to_string(&reply).map_err(std::io::Error::other)?;
    wr.write_all(out.as_bytes()).await?;
    wr.shutdown().await
}

/// Sends `req` to the process listening on `socket` and waits for the reply.
pub fn ask(socket: &Path, req: &Request) -> std::io::Result<Reply> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(PATIENCE))?;
    s.set_write_timeout(Some(PATIENCE))?;
    s.write_all(toml::to_string(req).map_err(std::io::Error::other)?.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    toml::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        for req in [
            Request::Devices,
            Request::Get { patterns: vec!["osc.*.stats".into()] },
            Request::Set { pattern: "osc.*.max_rpcs_in_flight".into(), value: "4".into(), apply: false },
        ] {
            let text = toml::to_string(&req).unwrap();
            assert_eq!(toml::from_str::<Request>(&text).unwrap(), req, "{text}");
        }
        let reply = Reply {
            params: vec![Param { name: "a.b.stats".into(), value: "line 1\nline 2".into(), writable: false }],
            error: Some(WireError { errno: 22, message: "no".into() }),
            ..Default::default()
        };
        let text = toml::to_string(&reply).unwrap();
        assert_eq!(toml::from_str::<Reply>(&text).unwrap(), reply);
    }

    proptest::proptest! {
        /// What arrives on the socket is anyone's bytes: decoding never
        /// panics, and whatever decodes round-trips.
        #[test]
        fn any_request_text_decodes_or_is_refused(text in "\\PC{0,200}") {
            if let Ok(req) = toml::from_str::<Request>(&text) {
                let again = toml::to_string(&req).unwrap();
                proptest::prop_assert_eq!(toml::from_str::<Request>(&again).unwrap(), req);
            }
        }

        #[test]
        fn shaped_requests_round_trip(patterns in proptest::collection::vec("\\PC{0,30}", 0..4),
                                      value in "\\PC{0,30}", apply: bool) {
            for req in [Request::Get { patterns: patterns.clone() },
                        Request::Set { pattern: patterns.concat(), value: value.clone(), apply }] {
                let text = toml::to_string(&req).unwrap();
                proptest::prop_assert_eq!(toml::from_str::<Request>(&text).unwrap(), req);
            }
        }
    }
}
