//! Malformed and unusual requests: the right error code, and the server
//! keeps answering afterwards (it must never panic or wedge).

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use dns_authority::{Authority, DnsConfig};
use tokio::sync::watch;

use crate::harness::{AP_SOUTHEAST_V4, CONFIG, TestServer, bind_same_port, table};

const TIMEOUT: Duration = Duration::from_secs(3);

/// A query for `name`/A in wire format. `questions` is the QDCOUNT written
/// in the header (the question itself is written once); `opt` is an OPT
/// record's RDATA, if any.
fn query(id: u16, name: &str, questions: u16, opt: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // QUERY, no flags
    out.extend_from_slice(&questions.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // ANCOUNT, NSCOUNT
    out.extend_from_slice(&u16::from(opt.is_some()).to_be_bytes());
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).unwrap());
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    if let Some(rdata) = opt {
        out.push(0); // root
        out.extend_from_slice(&[0, 41]); // OPT
        out.extend_from_slice(&1232u16.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]); // rcode, version, flags
        out.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        out.extend_from_slice(rdata);
    }
    out
}

fn udp_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

/// Sends `packet` and returns the response's RCODE (low four bits).
fn rcode_of(server: &TestServer, packet: &[u8]) -> u8 {
    let socket = udp_socket();
    socket.send_to(packet, ("127.0.0.1", server.port)).unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).expect("a response");
    assert!(len >= 12, "short response: {:?}", &buf[..len]);
    assert_eq!(buf[..2], packet[..2], "response id");
    assert_ne!(buf[2] & 0x80, 0, "QR set");
    buf[3] & 0x0f
}

const FORMERR: u8 = 1;

/// The server still answers a normal query.
fn assert_alive(server: &TestServer) {
    let dig = server.dig(&["api.shop.example.", "A"]);
    assert_eq!(dig.answers("A"), [AP_SOUTHEAST_V4], "{}", dig.raw);
}

#[test]
fn other_opcodes_are_not_implemented() {
    let server = TestServer::start();
    for opcode in ["status", "notify", "update"] {
        let arg = format!("+opcode={opcode}");
        let dig = server.dig(&["api.shop.example.", "A", &arg]);
        assert_eq!(dig.status, "NOTIMP", "{opcode}:\n{}", dig.raw);
        assert!(!dig.has_flag("aa"), "{}", dig.raw);
    }
}

#[test]
fn unknown_edns_version_gets_badvers() {
    let server = TestServer::start();
    let dig = server.dig(&["api.shop.example.", "A", "+edns=1", "+noednsnegotiation"]);
    assert_eq!(dig.status, "BADVERS", "{}", dig.raw);
    assert!(dig.answer.is_empty(), "{}", dig.raw);
}

#[test]
fn client_subnet_with_bits_beyond_its_prefix_is_formerr() {
    let server = TestServer::start();
    // ECS: family 1, source /20, scope 0, address 10.2.255 — the last byte
    // has bits set beyond the 20-bit prefix (RFC 7871 §6: FORMERR).
    let dig = server.dig(&["api.shop.example.", "A", "+ednsopt=8:000114000a02ff"]);
    assert_eq!(dig.status, "FORMERR", "{}", dig.raw);
    // A source prefix longer than an IPv4 address.
    let dig = server.dig(&["api.shop.example.", "A", "+ednsopt=8:000121000a020000ff"]);
    assert_eq!(dig.status, "FORMERR", "{}", dig.raw);
    assert_alive(&server);
}

#[test]
fn client_subnet_with_source_prefix_zero_uses_the_source_address() {
    let server = TestServer::start();
    let dig = server.dig(&["api.shop.example.", "A", "+subnet=0.0.0.0/0"]);
    assert_eq!(dig.answers("A"), [AP_SOUTHEAST_V4], "{}", dig.raw);
    assert_eq!(
        dig.client_subnet.as_deref(),
        Some("0.0.0.0/0/0"),
        "{}",
        dig.raw
    );
}

#[test]
fn wrong_question_counts_are_formerr() {
    let server = TestServer::start();
    // QDCOUNT 0.
    assert_eq!(
        rcode_of(&server, &query(7, "api.shop.example.", 0, None)[..12]),
        FORMERR
    );
    // QDCOUNT 2 with two questions.
    let mut two = query(8, "api.shop.example.", 2, None);
    let question = two[12..].to_vec();
    two.extend_from_slice(&question);
    assert_eq!(rcode_of(&server, &two), FORMERR);
    // QDCOUNT 2 with one: the message is short.
    assert_eq!(
        rcode_of(&server, &query(9, "api.shop.example.", 2, None)),
        FORMERR
    );
    assert_alive(&server);
}

/// xorshift64*: a tiny deterministic generator, so a failing run can be
/// replayed from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

#[test]
fn garbage_over_udp_never_stops_the_server() {
    const PACKETS: usize = 2_000;
    let seed = std::env::var("DNS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("garbage seed: {seed} (rerun with DNS_FUZZ_SEED={seed})");
    let server = TestServer::start();
    let socket = udp_socket();
    let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 10, 2, 0];
    let valid = query(1, "api.shop.example.", 1, Some(&ecs));
    let mut rng = Rng(seed);
    // Fixed shapes first: empty, shorter than a header, header only, a
    // response (QR set), then mutations of a valid query with ECS.
    let mut packets: Vec<Vec<u8>> = vec![vec![], vec![0; 11], valid[..12].to_vec(), {
        let mut response = valid.clone();
        response[2] |= 0x80;
        response
    }];
    while packets.len() < PACKETS {
        let mut packet = valid.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(packet.len());
            packet[at] = u8::try_from(rng.next() & 0xff).unwrap();
        }
        packet.truncate(1 + rng.below(packet.len()));
        packets.push(packet);
    }
    for packet in &packets {
        socket.send_to(packet, ("127.0.0.1", server.port)).unwrap();
    }
    assert_alive(&server);
}

#[test]
fn bad_tcp_clients_do_not_stop_the_server() {
    let server = TestServer::start();
    // A client that connects and says nothing: held no longer than the
    // server's idle timeout, and never blocking others meanwhile.
    let _idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // A frame of garbage, then a frame longer than what follows.
    let mut garbage = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    garbage.set_read_timeout(Some(TIMEOUT)).unwrap();
    garbage
        .write_all(&[0, 5, 1, 2, 3, 4, 5, 0xff, 0xff, 1])
        .unwrap();
    garbage.shutdown(std::net::Shutdown::Write).unwrap();
    // The server drops the connection (the frame can never complete)
    // rather than waiting on it.
    let mut sink = Vec::new();
    garbage
        .read_to_end(&mut sink)
        .expect("server closes the connection");
    assert!(sink.is_empty(), "no answer to garbage: {sink:?}");
    let dig = server.dig_tcp(&["api.shop.example.", "A"]);
    assert_eq!(dig.answers("A"), [AP_SOUTHEAST_V4], "{}", dig.raw);
}

#[test]
fn two_queries_on_one_tcp_connection() {
    let server = TestServer::start();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    for id in [21u16, 22] {
        let packet = query(id, "eu.shard.shop.example.", 1, None);
        let mut frame = u16::try_from(packet.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&packet);
        stream.write_all(&frame).unwrap();
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut response = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut response).unwrap();
        assert_eq!(response[..2], id.to_be_bytes());
        // NOERROR, AA, one answer.
        assert_eq!(response[3] & 0x0f, 0);
        assert_ne!(response[2] & 0x04, 0, "AA");
        assert_eq!(response[6..8], [0, 1]);
    }
}

#[test]
fn concurrent_udp_clients_each_get_their_own_answers() {
    // The UDP workers answer inline, several per socket: every client must
    // get every answer, to its own address, with its own id and question.
    const CLIENTS: u16 = 8;
    const QUERIES: u16 = 100;
    let server = TestServer::start();
    let port = server.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            std::thread::spawn(move || {
                let socket = udp_socket();
                let mut buf = [0u8; 1500];
                for n in 0..QUERIES {
                    let id = client * QUERIES + n;
                    let packet = query(id, "eu.shard.shop.example.", 1, None);
                    socket.send_to(&packet, ("127.0.0.1", port)).unwrap();
                    let (len, from) = socket.recv_from(&mut buf).expect("an answer");
                    assert_eq!(from.port(), port);
                    assert_eq!(buf[..2], id.to_be_bytes(), "answer to this query");
                    assert_eq!(buf[3] & 0x0f, 0, "NOERROR");
                    assert_eq!(buf[6..8], [0, 1], "one answer");
                    // The question is echoed after the header.
                    assert_eq!(buf[12..packet.len()], packet[12..], "question");
                    assert!(len > packet.len());
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
    assert_alive(&server);
}

#[test]
fn dropping_the_server_stops_its_udp_workers() {
    // The UDP workers are blocking threads, and a tokio runtime waits for
    // those when it shuts down: if dropping `serve` did not stop them, the
    // runtime (and with it the routing binary) would never exit.
    let config = DnsConfig::from_toml_str(CONFIG).unwrap();
    let (_table, receiver) = watch::channel(Arc::new(table()));
    let authority = Authority::new(config, receiver).unwrap();
    let (udp, tcp) = bind_same_port();
    let port = udp.local_addr().unwrap().port();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let serving = runtime.spawn(async move {
            let udp = tokio::net::UdpSocket::from_std(udp).unwrap();
            let tcp = tokio::net::TcpListener::from_std(tcp).unwrap();
            dns_authority::serve(authority, udp, tcp, std::future::pending()).await
        });
        // Serving: a query is answered by a worker.
        let socket = udp_socket();
        let packet = query(31, "eu.shard.shop.example.", 1, None);
        socket.send_to(&packet, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 1500];
        socket.recv_from(&mut buf).expect("an answer while serving");
        serving.abort();
        drop(runtime);
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the runtime shut down once the server was dropped");
}
