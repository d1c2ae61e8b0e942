//! Message passing over TCP: a client sends numbered messages, the server checks and echoes
//! each, the client checks the echo and times the round trip.
//!
//! Frames are a 4-byte big-endian length and that many bytes. The first frame each way is a
//! hello, `workload/1 arch=<arch> version=<version>`, so each side reports who it talked to.
//! A message is its sequence number (8 bytes, big endian) then filler bytes derived from it:
//! the receiver recomputes them, so byte order or corruption between architectures shows.
//! An empty frame ends the exchange; the server answers it with an empty frame.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use svckit::expo::Registry;

pub const MAX_FRAME: usize = 16 << 20;
const PROTOCOL: &str = "workload/1";

fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    w.write_all(&(payload.len() as u32).to_be_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    r.read_exact(&mut length)?;
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {length} bytes (limit {MAX_FRAME})")));
    }
    let mut payload = vec![0u8; length];
    r.read_exact(&mut payload)?;
    Ok(payload)
}

/// Message `seq` of `size` bytes (at least 8).
pub fn message(seq: u64, size: usize) -> Vec<u8> {
    let mut out = seq.to_be_bytes().to_vec();
    out.extend((8..size.max(8)).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    out
}

fn hello() -> Vec<u8> {
    format!("{PROTOCOL} arch={} version={}", std::env::consts::ARCH, env!("CARGO_PKG_VERSION")).into_bytes()
}

/// The peer's arch and version from its hello.
fn parse_hello(frame: &[u8]) -> io::Result<(String, String)> {
    let text = String::from_utf8_lossy(frame);
    let mut words = text.split(' ');
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("not a {PROTOCOL} hello: {text:?}"));
    if words.next() != Some(PROTOCOL) {
        return Err(bad());
    }
    let (mut arch, mut version) = (None, None);
    for word in words {
        match word.split_once('=') {
            Some(("arch", a)) => arch = Some(a.to_string()),
            Some(("version", v)) => version = Some(v.to_string()),
            _ => {}
        }
    }
    Ok((arch.ok_or_else(bad)?, version.ok_or_else(bad)?))
}

/// What one side saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub role: &'static str,
    pub peer_arch: String,
    pub peer_version: String,
    pub sent: u64,
    pub received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub round_trips: Vec<f64>, // seconds, the client's
    pub seconds: f64,
}

impl Report {
    pub fn metrics(&self, r: &mut Registry) {
        let role = [("role", self.role)];
        r.gauge("workload_pingpong_peer_info", "The peer's architecture and version, from its hello.",
                &[("role", self.role), ("peer_arch", &self.peer_arch), ("peer_version", &self.peer_version)], 1.0);
        r.counter("workload_messages_sent_total", "Messages sent (hello and end not counted).", &role, self.sent as f64);
        r.counter("workload_messages_received_total", "Messages received and checked.", &role, self.received as f64);
        r.counter("workload_message_bytes_sent_total", "Bytes of messages sent, frame headers included.", &role, self.bytes_sent as f64);
        r.counter("workload_message_bytes_received_total", "Bytes of messages received, frame headers included.", &role, self.bytes_received as f64);
        if self.role == "client" {
            r.summary("workload_roundtrip_seconds", "Time from sending a message to having its echo checked.",
                      &role, &self.round_trips, &[0.5, 0.9, 0.99]);
        }
        r.gauge("workload_pingpong_seconds", "Wall time of the exchange, hellos included.", &role, self.seconds);
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn configure(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?; // one small message at a time: Nagle would add its delay to each
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

/// Send `count` messages of `size` bytes to `address` and check each echo.
pub fn client(address: SocketAddr, count: u64, size: usize, timeout: Duration) -> io::Result<Report> {
    let started = Instant::now();
    let stream = TcpStream::connect_timeout(&address, timeout)?;
    configure(&stream, timeout)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    write_frame(&mut writer, &hello())?;
    let (peer_arch, peer_version) = parse_hello(&read_frame(&mut reader)?)?;
    let mut report = Report { role: "client", peer_arch, peer_version, ..Report::default() };
    for seq in 0..count {
        let sent = message(seq, size);
        let start = Instant::now();
        write_frame(&mut writer, &sent)?;
        report.sent += 1;
        report.bytes_sent += 4 + sent.len() as u64;
        let echo = read_frame(&mut reader)?;
        if echo != sent {
            return Err(invalid(format!("message {seq} came back different")));
        }
        report.round_trips.push(start.elapsed().as_secs_f64());
        report.received += 1;
        report.bytes_received += 4 + echo.len() as u64;
    }
    write_frame(&mut writer, &[])?;
    if !read_frame(&mut reader)?.is_empty() {
        return Err(invalid("the server did not end the exchange".into()));
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Serve one client on `stream`: check and echo its messages until it ends.
pub fn serve_one(stream: TcpStream, timeout: Duration) -> io::Result<Report> {
    let started = Instant::now();
    configure(&stream, timeout)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    let (peer_arch, peer_version) = parse_hello(&read_frame(&mut reader)?)?;
    write_frame(&mut writer, &hello())?;
    let mut report = Report { role: "server", peer_arch, peer_version, ..Report::default() };
    loop {
        let frame = read_frame(&mut reader)?;
        if frame.is_empty() {
            write_frame(&mut writer, &[])?;
            break;
        }
        if frame.len() < 8 {
            return Err(invalid(format!("message of {} bytes, fewer than its sequence number", frame.len())));
        }
        let seq = u64::from_be_bytes(frame[..8].try_into().expect("8 bytes"));
        if seq != report.received {
            return Err(invalid(format!("message {seq} arrived where {} was expected", report.received)));
        }
        if frame != message(seq, frame.len()) {
            return Err(invalid(format!("message {seq}: its bytes are not the ones its number gives")));
        }
        report.received += 1;
        report.bytes_received += 4 + frame.len() as u64;
        write_frame(&mut writer, &frame)?;
        report.sent += 1;
        report.bytes_sent += 4 + frame.len() as u64;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Serve `peers` clients on `listener`, one after the other; their reports summed.
pub fn server(listener: TcpListener, peers: u64, timeout: Duration) -> io::Result<Report> {
    let mut total = Report { role: "server", ..Report::default() };
    for _ in 0..peers {
        let (stream, _) = listener.accept()?;
        let one = serve_one(stream, timeout)?;
        total.peer_arch = one.peer_arch;
        total.peer_version = one.peer_version;
        total.sent += one.sent;
        total.received += one.received;
        total.bytes_sent += one.bytes_sent;
        total.bytes_received += one.bytes_received;
        total.seconds += one.seconds;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn messages_carry_their_number_big_endian() {
        let m = message(0x0102, 12);
        assert_eq!(&m[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(m.len(), 12);
        assert_eq!(message(7, 0).len(), 8);
        assert_ne!(message(1, 64), message(2, 64));
    }

    #[test]
    fn hello_round_trip_and_refusal() {
        let (arch, version) = parse_hello(&hello()).unwrap();
        assert_eq!((arch.as_str(), version.as_str()), (std::env::consts::ARCH, env!("CARGO_PKG_VERSION")));
        assert!(parse_hello(b"GET / HTTP/1.1").is_err());
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut bytes = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        bytes.extend([0; 8]);
        assert!(read_frame(&mut &bytes[..]).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn client_and_server_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let timeout = Duration::from_secs(10);
        let server = thread::spawn(move || server(listener, 1, timeout).unwrap());
        let client = client(address, 50, 100, timeout).unwrap();
        let server = server.join().unwrap();
        assert_eq!((client.sent, client.received, server.received, server.sent), (50, 50, 50, 50));
        assert_eq!((client.bytes_sent, server.bytes_received), (50 * 104, 50 * 104));
        assert_eq!(client.round_trips.len(), 50);
        assert_eq!(server.peer_arch, std::env::consts::ARCH);
        let mut r = Registry::new();
        client.metrics(&mut r);
        server.metrics(&mut r);
        let text = r.render();
        assert!(text.contains("workload_messages_sent_total{role=\"client\"} 50\n"), "{text}");
        assert!(text.contains("workload_messages_received_total{role=\"server\"} 50\n"), "{text}");
        assert!(text.contains("workload_roundtrip_seconds_count{role=\"client\"} 50\n"), "{text}");
    }

    #[test]
    fn the_server_refuses_a_message_out_of_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = thread::spawn(move || server(listener, 1, Duration::from_secs(10)));
        let stream = TcpStream::connect(address).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = BufWriter::new(stream);
        write_frame(&mut writer, &hello()).unwrap();
        read_frame(&mut reader).unwrap();
        write_frame(&mut writer, &message(5, 16)).unwrap();
        let error = server.join().unwrap().unwrap_err();
        assert!(error.to_string().contains("message 5 arrived where 0 was expected"), "{error}");
    }
}
