//! The answers hyper writes by itself, before a request reaches the router,
//! as JSON error bodies like every other error.
//!
//! When hyper cannot read a request it answers at once and closes the
//! connection: 400 for a request line or header it cannot parse (a NUL byte
//! in a header, say), 414 for a request target over 64 KiB (path and query
//! string), 431 for headers over its buffer (about 400 KiB) or too many of
//! them. Those answers have an empty body and no Content-Type, and no
//! middleware sees them. [`JsonErrorListener`] wraps each connection and
//! replaces exactly such an answer (a 400, 414 or 431 head alone, with
//! `content-length: 0` and no Content-Type, which the router never sends:
//! its errors are all JSON) by the same status with the API's
//! `{"error": "…", "code": "VALIDATION_ERROR"}` body.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use axum::serve::Listener;
use callback_store::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ApiError;

/// A TCP listener whose connections answer hyper's own protocol errors in
/// JSON. `serve` uses it; pass it to `axum::serve` instead of a
/// `TcpListener` to get the same in your own server.
#[derive(Debug)]
pub struct JsonErrorListener(pub TcpListener);

impl Listener for JsonErrorListener {
    type Io = JsonErrors<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.0).await;
        (JsonErrors::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

/// A connection that rewrites hyper's empty protocol-error answers (see the
/// module's documentation); everything else passes through unchanged.
#[derive(Debug)]
pub struct JsonErrors<S> {
    inner: S,
    /// A rewritten answer and how much of it is written.
    replacement: Vec<u8>,
    sent: usize,
}

impl<S> JsonErrors<S> {
    pub fn new(inner: S) -> Self {
        JsonErrors {
            inner,
            replacement: Vec::new(),
            sent: 0,
        }
    }
}

/// The message of each answer hyper makes itself.
fn message(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "request: cannot be read as HTTP/1.1 (the request line or a header is malformed, e.g. a header holds a control character)",
        414 => "request: the path and query string must be shorter than 64 KiB",
        431 => "headers: too large or too many (at most about 400 KiB and 100 headers)",
        _ => return None,
    })
}

/// The JSON version of `buf` if it is exactly one of hyper's own answers.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    // Cheap tests first: every other write passes after these.
    if buf.len() > 512 || !buf.starts_with(b"HTTP/1.1 4") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let message = message(status)?;
    let headers: Vec<&str> = lines.collect();
    let lower = |h: &&str| h.to_ascii_lowercase();
    if headers
        .iter()
        .any(|h| h.is_empty() || lower(h).starts_with("content-type:"))
        || !headers.iter().any(|h| lower(h) == "content-length: 0")
    {
        return None;
    }
    let body = ApiError::new(
        StatusCode::from_u16(status).ok()?,
        ErrorCode::ValidationError.as_str(),
        message,
    )
    .body_json();
    let mut out = format!("{status_line}\r\n");
    for h in headers.iter().filter(|h| lower(h) != "content-length: 0") {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("content-type: application/json\r\n");
    out.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    Some(out.into_bytes())
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.replacement.len() {
            let rest = &self.replacement[self.sent..];
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

/// Not vectored, so that hyper writes each answer's head as one buffer.
impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if let Some(replacement) = rewrite(buf) {
            this.replacement = replacement;
            this.sent = 0;
            // The rest, if the socket is full, goes out on flush.
            if let Poll::Ready(Err(e)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_empty_answers_get_the_json_error_body() {
        for (status, reason) in [
            (400, "Bad Request"),
            (414, "URI Too Long"),
            (431, "Request Header Fields Too Large"),
        ] {
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 23 Nov 2026 15:02:23 GMT\r\n\r\n"
            );
            let out = String::from_utf8(rewrite(head.as_bytes()).unwrap()).unwrap();
            let (new_head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(new_head.starts_with(&format!("HTTP/1.1 {status} {reason}\r\n")));
            assert!(new_head.contains("\r\ncontent-type: application/json\r\n"));
            assert!(new_head.contains(&format!("\r\ncontent-length: {}", body.len())));
            assert!(!new_head.contains("content-length: 0"), "{new_head}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["code"], "VALIDATION_ERROR");
        }
    }

    #[test]
    fn the_routers_answers_pass_unchanged() {
        for answer in [
            // a JSON error, head and body in one buffer, or the head alone
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            "{\"error\":\"x\"}",
        ] {
            assert_eq!(rewrite(answer.as_bytes()), None, "{answer}");
        }
    }
}
