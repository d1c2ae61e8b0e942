//! hello-rs: the example Rust microservice (std only: no crates.io is reachable from build nodes).
//! `hello-rs` prints a greeting; `hello-rs serve ADDR` answers HTTP/1.0 with it.
use std::io::{Read, Write};
use std::net::TcpListener;

fn greeting() -> String {
    format!(
        "hello from hello-rs {} on {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 2 && args[1] == "serve" {
        let listener = TcpListener::bind(&args[2]).expect("bind");
        for stream in listener.incoming() {
            let mut stream = match stream {
                Ok(s) => s,
                Err(_) => continue,
            };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let body = greeting();
            let _ = write!(stream, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{}", body.len(), body);
        }
        return;
    }
    print!("{}", greeting());
}
