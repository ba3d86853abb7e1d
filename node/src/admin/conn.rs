//! A blocking RESP2 client for the admin commands: calls, and calls that follow MOVED to
//! a group's leader. Replies are read by the crate's one reader, [`crate::resp`].

use std::{
    io::Write,
    net::TcpStream,
    time::{Duration, Instant},
};

pub(super) use crate::resp::Val;
use crate::resp::{RespReader, request};

/// Credentials every connection authenticates with: (user, password).
static CREDENTIALS: std::sync::OnceLock<(Option<String>, String)> = std::sync::OnceLock::new();

/// Makes every connection authenticate (`AUTH [user] pass`) when it opens.
pub(super) fn set_credentials(user: Option<String>, pass: String) {
    let _ = CREDENTIALS.set((user, pass));
}

/// MIGRATE's AUTH/AUTH2 arguments for the credentials, if any.
pub(super) fn migrate_auth() -> Vec<String> {
    match CREDENTIALS.get() {
        None => Vec::new(),
        Some((None, pass)) => vec!["AUTH".into(), pass.clone()],
        Some((Some(user), pass)) => vec!["AUTH2".into(), user.clone(), pass.clone()],
    }
}

/// A blocking RESP2 connection.
pub(super) struct Conn {
    addr: String,
    sock: TcpStream,
    reader: RespReader,
}

impl Conn {
    pub(super) fn open(addr: &str) -> Result<Conn, String> {
        let sock = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|e| format!("{addr}: {e}"))?
            .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
            .ok_or_else(|| format!("cannot connect to {addr}: is shardai running there?"))?;
        let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
        let mut conn = Conn {
            addr: addr.to_string(),
            sock,
            reader: RespReader::default(),
        };
        if let Some((user, pass)) = CREDENTIALS.get() {
            let mut args = vec!["AUTH"];
            args.extend(user.as_deref());
            args.push(pass);
            conn.ok(&args)?;
        }
        Ok(conn)
    }

    pub(super) fn call(&mut self, args: &[&str]) -> Result<Val, String> {
        self.sock
            .write_all(&request(args))
            .map_err(|e| format!("{}: {e}", self.addr))?;
        self.read().map_err(|e| format!("{}: {e}", self.addr))
    }

    fn read(&mut self) -> std::io::Result<Val> {
        self.reader.read(&mut self.sock)
    }

    /// Calls and fails on an error reply.
    pub(super) fn ok(&mut self, args: &[&str]) -> Result<Val, String> {
        match self.call(args)? {
            Val::Err(e) => Err(format!("{}: {e}", self.addr)),
            v => Ok(v),
        }
    }
}

/// The TLS client port `addr` announces to TLS clients (`CONFIG GET tls-port`), if any.
pub(super) fn tls_port(addr: &str) -> Result<Option<u16>, String> {
    let v = Conn::open(addr)?.ok(&["CONFIG", "GET", "tls-port"])?;
    let Val::Arr(pair) = v else {
        return Ok(None);
    };
    Ok(pair
        .get(1)
        .and_then(|p| p.text().parse::<u16>().ok())
        .filter(|p| *p != 0))
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
