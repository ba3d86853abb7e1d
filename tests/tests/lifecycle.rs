//! The process as a user meets it: --help, configuration sources, inline commands,
//! pipelining, the connection limit, large BLOBs, and graceful shutdown.

use std::{process::Command, time::Duration};

use redis::cmd;
use shardai_tests::{Server, binary, exchange, exchange_until_close};

#[test]
fn help_explains_every_option() {
    let out = Command::new(binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--port",
        "--bind",
        "--dir",
        "--config",
        "--maxclients",
        "--proto-max-bulk-len",
        "--backends-path",
        "--log",
        "SHARDAI_PORT",
        "[default: 6379]",
        "[default: 127.0.0.1]",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}:\n{text}");
    }
    let bad = Command::new(binary())
        .args(["--port", "notaport"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--port"));
}

#[test]
fn config_file_and_environment() {
    let file = std::env::temp_dir().join(format!("shardai-conf-{}.conf", std::process::id()));
    std::fs::write(
        &file,
        "# a comment\nmaxclients 77\nproto-max-bulk-len 2mb\n",
    )
    .unwrap();
    let s = Server::start_with(&["--config", file.to_str().unwrap()]);
    let mut c = s.client();
    let v: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, ["maxclients", "77"]);
    let v: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("proto-max-bulk-len")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, ["proto-max-bulk-len", "2097152"]);
    // A flag on the command line wins over the file.
    let s2 = Server::start_with(&["--config", file.to_str().unwrap(), "--maxclients", "5"]);
    let v: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut s2.client())
        .unwrap();
    assert_eq!(v, ["maxclients", "5"]);
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn inline_commands_and_pipelining() {
    let s = Server::start();
    let mut c = s.raw();
    let (out, _) = exchange(&mut c, b"PING\r\n", Duration::from_secs(5));
    assert_eq!(out, b"+PONG\r\n");
    let (out, _) = exchange(
        &mut c,
        b"AI.TENSORSET t FLOAT 2 VALUES 1 2\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(out, b"+OK\r\n");
    let (out, _) = exchange(&mut c, b"AI.TENSORGET t VALUES\n", Duration::from_secs(5));
    assert_eq!(out, b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n");
    let (out, _) = exchange(
        &mut c,
        b"set \"a b\" 'c d'\r\nget \"a b\"\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(out, b"+OK\r\n$3\r\nc d\r\n");

    // 1000 pipelined requests in one write, answered in order.
    let mut req = Vec::new();
    for i in 0..1000 {
        req.extend(
            format!(
                "*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n${}\r\n{}\r\n",
                i.to_string().len(),
                i
            )
            .as_bytes(),
        );
    }
    let mut con = s.client();
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("INCRBY").arg("m").arg(i);
    }
    let results: Vec<i64> = p.query(&mut con).unwrap();
    let mut sum = 0;
    for (i, r) in results.iter().enumerate() {
        sum += i as i64;
        assert_eq!(*r, sum);
    }
    let (mut out, _) = exchange(&mut c, &req, Duration::from_secs(5));
    while out.iter().filter(|&&b| b == b'\n').count() < 1000 {
        let (more, closed) = exchange(&mut c, b"", Duration::from_secs(5));
        assert!(!closed && !more.is_empty(), "replies stopped early");
        out.extend(more);
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().count(), 1000);
    assert!(text.ends_with(":499500\r\n"));
}

#[test]
fn connection_limit() {
    let s = Server::start_with(&["--maxclients", "2"]);
    let mut a = s.raw();
    assert_eq!(
        exchange(&mut a, b"PING\r\n", Duration::from_secs(5)).0,
        b"+PONG\r\n"
    );
    // The harness's readiness probe may not have been reaped yet: wait until `a` is alone.
    let mut alone = false;
    for _ in 0..100 {
        let (info, _) = exchange(&mut a, b"INFO clients\r\n", Duration::from_secs(5));
        if String::from_utf8_lossy(&info).contains("connected_clients:1\r\n") {
            alone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(alone, "the readiness probe connection was never closed");
    let mut b = s.raw();
    assert_eq!(
        exchange(&mut b, b"PING\r\n", Duration::from_secs(5)).0,
        b"+PONG\r\n"
    );
    let mut third = s.raw();
    let (out, closed) = exchange_until_close(&mut third, b"PING\r\n", Duration::from_secs(10));
    assert_eq!(out, b"-ERR max number of clients reached\r\n");
    assert!(closed);
    drop(a);
    // The slot frees once the server has seen the close; poll rather than guess how long.
    let mut served = false;
    for _ in 0..50 {
        let mut again = s.raw();
        if exchange(&mut again, b"PING\r\n", Duration::from_secs(5)).0 == b"+PONG\r\n" {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served, "a freed slot was never reused");
    let info: String = cmd("INFO")
        .arg("stats")
        .query(&mut s.client_limit_free(&mut b))
        .unwrap();
    let rejected: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("rejected_connections:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(rejected >= 1, "{info}");
}

trait LimitFree {
    fn client_limit_free(&self, existing: &mut std::net::TcpStream) -> redis::Connection;
}

impl LimitFree for Server {
    /// Frees one slot by closing `existing`, then connects a redis-rs client.
    fn client_limit_free(&self, existing: &mut std::net::TcpStream) -> redis::Connection {
        let _ = existing.shutdown(std::net::Shutdown::Both);
        std::thread::sleep(Duration::from_millis(200));
        self.client()
    }
}

#[test]
fn hundred_megabyte_blob_round_trips_without_extra_copies() {
    let s = Server::start();
    let mut c = s.client();
    let rss = |c: &mut redis::Connection| -> u64 {
        let info: String = cmd("INFO").arg("memory").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory_rss:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = rss(&mut c);
    let blob: Vec<u8> = (0..100 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let _: () = cmd("AI.TENSORSET")
        .arg("big")
        .arg("UINT8")
        .arg(blob.len())
        .arg("BLOB")
        .arg(&blob)
        .query(&mut c)
        .unwrap();
    let stored = rss(&mut c);
    let back: Vec<u8> = cmd("AI.TENSORGET")
        .arg("big")
        .arg("BLOB")
        .query(&mut c)
        .unwrap();
    assert!(back == blob, "BLOB changed on the way through");
    let after_get = rss(&mut c);
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    // Stored once: the read buffer became the tensor. Reading it back wrote from that buffer.
    assert!(
        mb(stored - before) < 130.0,
        "storing 100 MB grew RSS by {:.0} MB",
        mb(stored - before)
    );
    assert!(
        mb(after_get.saturating_sub(before)) < 130.0,
        "after GET RSS grew by {:.0} MB",
        mb(after_get - before)
    );
    let meta: Vec<redis::Value> = cmd("AI.TENSORGET")
        .arg("big")
        .arg("META")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        meta[3],
        redis::Value::Array(vec![redis::Value::Int(blob.len() as i64)])
    );
}

#[test]
fn sigterm_and_sigint_shut_down_gracefully() {
    for signal in ["-TERM", "-INT"] {
        let mut s = Server::start();
        let mut c = s.raw();
        assert_eq!(
            exchange(&mut c, b"PING\r\n", Duration::from_secs(5)).0,
            b"+PONG\r\n"
        );
        let pid = s.pid().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
        // The idle connection is closed by the server, and the process exits 0.
        let (_, closed) = exchange_until_close(&mut c, b"", Duration::from_secs(10));
        assert!(closed, "connection not closed on {signal}");
        let status = s.stop(Duration::from_secs(10)).expect("process exited");
        assert!(status.success(), "{signal}: {status:?}");
        let log = s.log();
        assert!(
            log.contains("shutting down") && log.contains("shardai stopped"),
            "{log}"
        );
    }
}
