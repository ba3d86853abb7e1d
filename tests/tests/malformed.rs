//! Hostile input: random bytes, truncated frames, wrong arity, bad numbers, huge declared
//! lengths and invalid UTF-8. Each is answered with an error or a closed connection, never a
//! hang or a crash, and a second client keeps being served throughout.

use std::{
    io::{Read, Write},
    net::Shutdown,
    time::{Duration, Instant},
};

use shardai_tests::{Server, exchange, exchange_until_close};

/// Deterministic xorshift generator, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends `input`, closes our write side and reads until the server closes. Returns the
/// reply bytes. Panics if the server neither answers nor closes in time.
fn send_and_close(s: &Server, input: &[u8]) -> Vec<u8> {
    let mut c = s.raw();
    let _ = c.write_all(input);
    let _ = c.shutdown(Shutdown::Write);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!(
                "no close after {:?}: {e} (input {:?})",
                start.elapsed(),
                input.escape_ascii().to_string()
            ),
        }
    }
}

fn assert_healthy(s: &mut Server, probe: &mut std::net::TcpStream) {
    assert!(s.alive(), "server died; log:\n{}", s.log());
    let (reply, closed) = exchange(
        probe,
        b"*2\r\n$3\r\nGET\r\n$6\r\nsentry\r\n",
        Duration::from_secs(5),
    );
    assert!(!closed, "probe connection was closed");
    assert_eq!(reply, b"$4\r\nsafe\r\n");
}

#[test]
fn two_hundred_malformed_inputs() {
    let mut s = Server::start();
    let mut probe = s.raw();
    let (r, _) = exchange(
        &mut probe,
        &resp(&[b"SET", b"sentry", b"safe"]),
        Duration::from_secs(5),
    );
    assert_eq!(r, b"+OK\r\n");
    let mut count = 0;

    // 1. Random bytes, inline-looking and multibulk-looking.
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in 0..80 {
        let len = 1 + (rng.next() % 300) as usize;
        let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            input[0] = b'*';
        }
        send_and_close(&s, &input);
        count += 1;
    }
    assert_healthy(&mut s, &mut probe);

    // 2. Every truncation of valid requests.
    let valid = [
        resp(&[b"AI.TENSORSET", b"t", b"FLOAT", b"2", b"VALUES", b"1", b"2"]),
        resp(&[
            b"AI.TENSORSET",
            b"b",
            b"UINT8",
            b"4",
            b"BLOB",
            b"\0\x01\x02\x03",
        ]),
    ];
    for v in &valid {
        for cut in 1..v.len() {
            let out = send_and_close(&s, &v[..cut]);
            assert!(
                out.is_empty(),
                "a partial request must not be executed: {out:?}"
            );
            count += 1;
        }
    }
    assert_healthy(&mut s, &mut probe);

    // 3. Wrong arity, bad numbers, bad words: an error reply each.
    let bad: Vec<Vec<&[u8]>> = vec![
        vec![b"GET"],
        vec![b"GET", b"a", b"b"],
        vec![b"SET", b"a"],
        vec![b"AI.TENSORSET", b"t"],
        vec![b"AI.TENSORSET", b"t", b"FLOAT"],
        vec![b"AI.TENSORGET"],
        vec![b"AI.TENSORGET", b"t", b"META", b"BLOB", b"VALUES"],
        vec![b"MSET", b"a"],
        vec![b"TYPE"],
        vec![b"INCRBY", b"n", b"1.5"],
        vec![b"INCRBY", b"n", b"99999999999999999999"],
        vec![b"SCAN", b"-1"],
        vec![b"SCAN", b"abc"],
        vec![b"SCAN", b"0", b"COUNT", b"-5"],
        vec![b"SET", b"a", b"b", b"EX", b"-1"],
        vec![b"SET", b"a", b"b", b"EX", b"1e3"],
        vec![b"SELECT", b"x"],
        vec![b"HELLO", b"x"],
        vec![b"AI.TENSORSET", b"t", b"FLOAT", b"-1"],
        vec![b"AI.TENSORSET", b"t", b"FLOAT", b"1.5"],
        vec![b"AI.TENSORSET", b"t", b"FLOAT", b"99999999999999999999"],
        vec![b"AI.TENSORSET", b"t", b"FLOAT", b"2", b"VALUES", b"1", b"x"],
        vec![b"AI.TENSORSET", b"t", b"DOUBLE", b"1", b"VALUES", b"1e999"],
        vec![
            b"AI.TENSORSET",
            b"t",
            b"INT64",
            b"1",
            b"VALUES",
            b"9223372036854775808",
        ],
        vec![b"AI.TENSORSET", b"t", b"UINT16", b"1", b"VALUES", b"-0"],
        vec![b"AI.TENSORSET", b"t", b"INT8", b"1", b"VALUES", b""],
        vec![b"AI.TENSORSET", b"t", b"FLOAT", b"4", b"BLOB", b"xyz"],
        vec![
            b"AI.TENSORSET",
            b"t",
            b"FLOAT",
            b"1024",
            b"1024",
            b"1024",
            b"1024",
        ],
        vec![b"AI.CONFIG"],
        vec![b"AI.CONFIG", b"MODEL_CHUNK_SIZE", b"abc"],
        vec![b"CONFIG", b"SET", b"proto-max-bulk-len", b"tiny"],
        vec![b"CLIENT", b"SETNAME", b"has space"],
        vec![
            b"COMMAND",
            b"GETKEYS",
            b"AI.MODELEXECUTE",
            b"m",
            b"INPUTS",
            b"-3",
        ],
        vec![b"NOSUCHCOMMAND", b"arg"],
        vec![b""],
        // Invalid UTF-8 in names, types and options.
        vec![b"\xff\xfe\xfd"],
        vec![b"AI.TENSORSET", b"t", b"\xc3\x28", b"1"],
        vec![b"AI.TENSORGET", b"t\xff", b"\xff"],
        vec![b"SET", b"k", b"v", b"\xe2\x82"],
        vec![b"CONFIG", b"GET"],
        vec![b"AI.TENSORSET", b"t", b"STRING", b"1", b"VALUES", b"a\0b"],
        vec![b"AI.TENSORSET", b"t", b"BOOL", b"1", b"BLOB", b"\x07"],
    ];
    for args in &bad {
        let out = send_and_close(&s, &resp(args));
        assert!(
            out.starts_with(b"-"),
            "{args:?} got {:?}",
            String::from_utf8_lossy(&out)
        );
        count += 1;
    }
    assert_healthy(&mut s, &mut probe);

    // 4. Protocol violations: the server answers with Redis's text and closes by itself.
    let proto: Vec<(&[u8], &str)> = vec![
        (
            b"*1\r\n$999999999999\r\n",
            "-ERR Protocol error: invalid bulk length",
        ),
        (
            b"*1\r\n$536870913\r\n",
            "-ERR Protocol error: invalid bulk length",
        ),
        (b"*1\r\n$-2\r\n", "-ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length"),
        (
            b"*99999999\r\n",
            "-ERR Protocol error: invalid multibulk length",
        ),
        (b"*abc\r\n", "-ERR Protocol error: invalid multibulk length"),
        (
            b"*2\r\n:1\r\n",
            "-ERR Protocol error: expected '$', got ':'",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'",
        ),
        (
            b"SET a \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"SET a 'x\r\n",
            "-ERR Protocol error: unbalanced quotes in request",
        ),
        (b"*1\r\n$4\r\nPINGxx", "-ERR Protocol error"),
    ];
    for (input, want) in &proto {
        let mut c = s.raw();
        let (out, closed) = exchange_until_close(&mut c, input, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with(want),
            "{:?}: {text}",
            input.escape_ascii().to_string()
        );
        assert!(
            closed,
            "connection left open after {:?}",
            input.escape_ascii().to_string()
        );
        count += 1;
    }
    // Endless header lines and inline requests are cut off at 64 KiB.
    for prefix in [&b"*"[..], b"*1\r\n$", b"GET "] {
        let mut input = prefix.to_vec();
        input.extend(std::iter::repeat_n(b'1', 70_000));
        let mut c = s.raw();
        let (out, closed) = exchange_until_close(&mut c, &input, Duration::from_secs(10));
        assert!(
            out.starts_with(b"-ERR Protocol error: too big"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert!(closed);
        count += 1;
    }
    assert_healthy(&mut s, &mut probe);
    assert!(count >= 200, "only {count} malformed inputs");
}

#[test]
fn huge_declared_length_is_refused_before_the_body() {
    let s = Server::start_with(&["--proto-max-bulk-len", "1mb"]);
    let mut c = s.raw();
    // Declare 2 MB and send nothing more: the error must come at once.
    let (out, closed) = exchange_until_close(
        &mut c,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    // Exactly at the limit is fine.
    let mut c = s.raw();
    let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 1 << 20));
    req.extend_from_slice(b"\r\n");
    let (out, _) = exchange(&mut c, &req, Duration::from_secs(5));
    assert_eq!(out, b"+OK\r\n");
}
