//! A blocking RESP2 client for the admin commands: calls, and calls that follow MOVED to
//! a group's leader.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

/// A reply from a node.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    /// A status or bulk string.
    Str(String),
    /// An error reply.
    Err(String),
    /// An integer.
    Int(i64),
    /// A null.
    Nil,
    /// An array.
    Arr(Vec<Val>),
}

impl Val {
    pub(super) fn text(&self) -> String {
        match self {
            Val::Str(s) | Val::Err(s) => s.clone(),
            Val::Int(n) => n.to_string(),
            Val::Nil => String::new(),
            Val::Arr(v) => v.iter().map(Val::text).collect::<Vec<_>>().join(" "),
        }
    }
}

/// A blocking RESP2 connection.
pub(super) struct Conn {
    addr: String,
    r: BufReader<TcpStream>,
}

impl Conn {
    pub(super) fn open(addr: &str) -> Result<Conn, String> {
        let sock = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|e| format!("{addr}: {e}"))?
            .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
            .ok_or_else(|| format!("cannot connect to {addr}: is shardai running there?"))?;
        let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
        Ok(Conn {
            addr: addr.to_string(),
            r: BufReader::new(sock),
        })
    }

    pub(super) fn call(&mut self, args: &[&str]) -> Result<Val, String> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.r
            .get_mut()
            .write_all(&req)
            .map_err(|e| format!("{}: {e}", self.addr))?;
        self.read().map_err(|e| format!("{}: {e}", self.addr))
    }

    fn read(&mut self) -> std::io::Result<Val> {
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let line = line.trim_end_matches(['\r', '\n']);
        let bad = || std::io::Error::other(format!("bad reply line {line:?}"));
        let (t, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        Ok(match t {
            "+" => Val::Str(rest.to_string()),
            "-" => Val::Err(rest.to_string()),
            ":" => Val::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Ok(Val::Nil);
                }
                let mut b = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut b)?;
                b.truncate(n as usize);
                Val::Str(String::from_utf8_lossy(&b).into_owned())
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Ok(Val::Nil);
                }
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.read()?);
                }
                Val::Arr(v)
            }
            _ => return Err(bad()),
        })
    }

    /// Calls and fails on an error reply.
    pub(super) fn ok(&mut self, args: &[&str]) -> Result<Val, String> {
        match self.call(args)? {
            Val::Err(e) => Err(format!("{}: {e}", self.addr)),
            v => Ok(v),
        }
    }
}

/// Sends `args` to `addr`, following MOVED redirects to the leader.
pub(super) fn call_leader(addr: &str, args: &[&str]) -> Result<Val, String> {
    let mut addr = addr.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Conn::open(&addr)?.call(args)? {
            Val::Err(e) if e.starts_with("MOVED ") => {
                addr = e.split(' ').nth(2).unwrap_or_default().to_string();
            }
            Val::Err(e) if e.starts_with("CLUSTERDOWN") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Val::Err(e) => return Err(format!("{addr}: {e}")),
            v => return Ok(v),
        }
    }
}

pub(super) fn call_strs(addr: &str, args: &[String], leader: bool) -> Result<Val, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if leader {
        call_leader(addr, &args)
    } else {
        Conn::open(addr)?.ok(&args)
    }
}
