use std::io::{Read, Write};
use std::net::TcpStream;

#[test]
fn distribution_starts_and_answers_v2() {
    let Some(reg) = hoist_testkit::distribution::Distribution::start() else {
        return;
    };
    let mut s = TcpStream::connect(reg.addr()).unwrap();
    write!(s, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", reg.addr()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
}
