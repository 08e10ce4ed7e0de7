//! Requests over a plain socket, for bytes a client library refuses to send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer read off a plain socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request over a plain socket, so that any bytes can be sent,
/// even those a client library refuses (a NUL in a header, a 64 KiB
/// target): `host`, `connection: close` and, with a body, `content-length`
/// are added. The body goes from another thread, its errors ignored (the
/// server may answer and close before reading it all). Reads the answer.
pub fn raw_exchange(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> RawAnswer {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" {
        head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let body = body.to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&head);
        let _ = writer.write_all(&body);
    });
    let mut answer = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 16384];
    let split = |answer: &[u8]| answer.windows(4).position(|w| w == b"\r\n\r\n");
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = split(&answer) {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| answer.len() >= end + 4 + n) {
                break;
            }
        }
    }
    let _ = sender.join();
    let end = split(&answer).unwrap_or_else(|| {
        panic!(
            "{method} {}: no answer ({:?})",
            &target[..target.len().min(80)],
            String::from_utf8_lossy(&answer)
        )
    });
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawAnswer {
        status,
        head,
        body: answer[end + 4..].to_vec(),
    }
}
