//! A minimal HTTP/1.1 server for `/metrics`: GET and HEAD there, 404 elsewhere, 405 for other
//! methods, one response per connection (`Connection: close`). A thread per connection, with
//! read and write timeouts, so a slow or silent client holds only its own thread.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const MAX_HEAD: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 64;

/// What renders the exposition, called once per scrape.
pub type Metrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The response to a request whose head (request line and headers) is `head`.
pub fn respond(head: &str, metrics: &dyn Fn() -> String) -> Vec<u8> {
    let line = head.split("\r\n").next().unwrap_or("");
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return simple(400, "Bad Request", "malformed request line\n", &[]);
    };
    if !version.starts_with("HTTP/1.") {
        return simple(505, "HTTP Version Not Supported", "HTTP/1.0 or HTTP/1.1 only\n", &[]);
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return simple(404, "Not Found", "not found: metrics are at /metrics\n", &[]);
    }
    match method {
        "GET" | "HEAD" => {
            let body = metrics();
            let mut out = head_bytes(200, "OK", CONTENT_TYPE, body.len(), &[]);
            if method == "GET" {
                out.extend_from_slice(body.as_bytes());
            }
            out
        }
        _ => simple(405, "Method Not Allowed", "GET or HEAD\n", &[("Allow", "GET, HEAD")]),
    }
}

fn head_bytes(code: u16, reason: &str, content_type: &str, length: usize, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n"
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn simple(code: u16, reason: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = head_bytes(code, reason, "text/plain; charset=utf-8", body.len(), extra);
    out.extend_from_slice(body.as_bytes());
    out
}

/// Read a request head (up to the blank line); None when the client sent no complete head.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn handle(mut stream: TcpStream, metrics: &dyn Fn() -> String) {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let response = match read_head(&mut stream) {
        Some(head) => respond(&head, metrics),
        None => simple(400, "Bad Request", "incomplete request\n", &[]),
    };
    let _ = stream.write_all(&response);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Serve `/metrics` on `listener` until the process ends.
pub fn serve(listener: TcpListener, metrics: Metrics) -> ! {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut stream, _)) = listener.accept() else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.write_all(&simple(503, "Service Unavailable", "too many connections\n", &[]));
            continue;
        }
        let (metrics, open) = (Arc::clone(&metrics), Arc::clone(&open));
        thread::spawn(move || {
            handle(stream, &*metrics);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    fn body() -> String {
        "m 1\n".to_string()
    }

    #[test]
    fn get_metrics() {
        let r = text(respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &body));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(r.contains("Content-Length: 4\r\n") && r.ends_with("\r\n\r\nm 1\n"));
    }

    #[test]
    fn head_has_no_body_and_a_query_is_ignored() {
        let r = text(respond("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", &body));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("Content-Length: 4\r\n") && r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn elsewhere_is_404_other_methods_405_garbage_400() {
        assert!(text(respond("GET / HTTP/1.1\r\n\r\n", &body)).starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text(respond("GET /metricsx HTTP/1.1\r\n\r\n", &body)).starts_with("HTTP/1.1 404 "));
        let post = text(respond("POST /metrics HTTP/1.1\r\n\r\n", &body));
        assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"));
        assert!(text(respond("hello\r\n\r\n", &body)).starts_with("HTTP/1.1 400 "));
        assert!(text(respond("GET /metrics SPDY/3\r\n\r\n", &body)).starts_with("HTTP/1.1 505 "));
    }

    #[test]
    fn serves_over_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || serve(listener, Arc::new(|| "up 1\n".to_string())));
        for _ in 0..3 {
            let mut stream = TcpStream::connect(addr).unwrap();
            // The head in two writes: the server reads until the blank line.
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n").unwrap();
            stream.write_all(b"\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            assert!(response.starts_with("HTTP/1.1 200 OK") && response.ends_with("\r\n\r\nup 1\n"), "{response}");
        }
    }
}
