//! A tiny HTTP/1.1 server for Prometheus scrapes: `GET /metrics` answers
//! the registry in the text exposition format, anything else 404 (or 405
//! for another method). One task per connection, keep-alive, and a bound
//! on how much of a request is read, so a misbehaving client costs a few
//! KiB and a task at most.

use prometheus::{Encoder, Registry, TextEncoder};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most of a request (line and headers) read before refusing it.
pub const MAX_REQUEST: usize = 8 * 1024;
/// A connection that sends no complete request for this long is closed.
const IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request line is malformed")]
    BadRequestLine,
    #[error("not HTTP/1.x")]
    BadVersion,
    #[error("a header line is malformed")]
    BadHeader,
    #[error("request bodies are not accepted")]
    Body,
}

/// The parts of a request the server acts on.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The path, without any query string.
    pub path: String,
    /// Whether the client asked to keep the connection open.
    pub keep_alive: bool,
}

/// Where the head of a request ends in `buf` (after the blank line).
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parses a request head (request line and headers, through the blank line).
pub fn parse_head(head: &[u8]) -> Result<RequestHead, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::BadRequestLine)?;
    let mut lines = text.split("\r\n");
    let line = lines.next().ok_or(HttpError::BadRequestLine)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || !target.starts_with('/') {
        return Err(HttpError::BadRequestLine);
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HttpError::BadVersion),
    };
    for h in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = h.split_once(':').ok_or(HttpError::BadHeader)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if (name.eq_ignore_ascii_case("content-length") && value != "0")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return Err(HttpError::Body);
        }
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    Ok(RequestHead { method: method.to_string(), path, keep_alive })
}

/// Binds `addr` (HOST:PORT) for metrics.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot serve metrics on {addr}: {e}")))
}

/// Serves `registry` on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, registry: Registry) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, &registry).await {
                        tracing::debug!(%from, error = %e, "metrics connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            if buf.len() >= MAX_REQUEST {
                return respond(
                    &mut stream,
                    431,
                    "Request Header Fields Too Large",
                    "text/plain",
                    b"",
                    false,
                )
                .await;
            }
            let mut chunk = [0u8; 1024];
            let n = match tokio::time::timeout(IDLE, stream.read(&mut chunk)).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            };
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = match parse_head(&buf[..end]) {
            Ok(h) => h,
            Err(e) => {
                let body = format!("{e}\n");
                return respond(&mut stream, 400, "Bad Request", "text/plain", body.as_bytes(), false).await;
            }
        };
        buf.drain(..end);
        let keep = head.keep_alive;
        match (head.method.as_str(), head.path.as_str()) {
            ("GET", "/metrics") => {
                let mut body = Vec::with_capacity(16 * 1024);
                let encoder = TextEncoder::new();
                if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
                    tracing::error!(error = %e, "encoding metrics failed");
                    respond(&mut stream, 500, "Internal Server Error", "text/plain", b"", keep).await?;
                } else {
                    respond(&mut stream, 200, "OK", encoder.format_type(), &body, keep).await?;
                }
            }
            (_, "/metrics") => {
                respond(&mut stream, 405, "Method Not Allowed", "text/plain", b"only GET\n", keep).await?
            }
            _ => {
                respond(&mut stream, 404, "Not Found", "text/plain", b"metrics are at /metrics\n", keep)
                    .await?
            }
        }
        if !keep {
            return Ok(());
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_scrape() {
        let h = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\n\r\n").unwrap();
        assert_eq!(h, RequestHead { method: "GET".into(), path: "/metrics".into(), keep_alive: true });
        let h = parse_head(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn refuses_what_it_does_not_serve() {
        assert_eq!(parse_head(b"GET /metrics HTTP/2\r\n\r\n"), Err(HttpError::BadVersion));
        assert_eq!(parse_head(b"GET  /metrics HTTP/1.1\r\n\r\n"), Err(HttpError::BadRequestLine));
        assert_eq!(parse_head(b"get /metrics HTTP/1.1\r\n\r\n"), Err(HttpError::BadRequestLine));
        assert_eq!(parse_head(b"GET metrics HTTP/1.1\r\n\r\n"), Err(HttpError::BadRequestLine));
        assert_eq!(parse_head(b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"), Err(HttpError::BadHeader));
        assert_eq!(parse_head(b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n"), Err(HttpError::Body));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_head(&bytes);
            let _ = head_end(&bytes);
        }

        #[test]
        fn reads_back_what_a_client_sends(
            method in "[A-Z]{1,8}",
            path in "/[a-z0-9/._-]{0,40}",
            query in proptest::option::of("[a-z0-9=&]{0,20}"),
            close in any::<bool>(),
            headers in proptest::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{0,40}"), 0..6),
        ) {
            let mut req = format!("{method} {path}");
            if let Some(q) = &query {
                req.push('?');
                req.push_str(q);
            }
            req.push_str(" HTTP/1.1\r\n");
            for (n, v) in &headers {
                let n = n.to_ascii_lowercase();
                if n == "connection" || n == "content-length" || n == "transfer-encoding" {
                    continue;
                }
                req.push_str(&format!("{n}: {v}\r\n"));
            }
            if close {
                req.push_str("Connection: close\r\n");
            }
            req.push_str("\r\n");
            let end = head_end(req.as_bytes()).unwrap();
            prop_assert_eq!(end, req.len());
            let h = parse_head(req.as_bytes()).unwrap();
            prop_assert_eq!(h.method, method);
            prop_assert_eq!(h.path, path);
            prop_assert_eq!(h.keep_alive, !close);
        }
    }
}
