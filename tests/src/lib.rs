//! The end-to-end harness: starts the real `shardai` binary on a free loopback port with its
//! own data folder, waits until it answers, and stops it by PID (SIGTERM, then SIGKILL).
//!
//! The binary is `$SHARDAI_BIN` when set (the test script builds a release binary and sets
//! it), else `target/release/shardai`, else `target/debug/shardai`.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Path of the shardai binary under test.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("SHARDAI_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(root.join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("shardai");
        if p.exists() {
            return p;
        }
    }
    panic!("no shardai binary: run `cargo build --release -p shardai-node` or set SHARDAI_BIN");
}

/// For the benchmark and tool binaries: when the command line asks for help (`-h`,
/// `--help`, before any `--`), prints `usage` and exits 0, before any argument is taken for
/// a path or a model.
pub fn exit_on_help(usage: &str) {
    let mut args = std::env::args().skip(1).take_while(|a| a != "--");
    if args.any(|a| a == "-h" || a == "--help") {
        // A reader that stops early (`| head`) is not an error.
        let _ = writeln!(std::io::stdout(), "{usage}");
        std::process::exit(0);
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A running shardai process.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its data folder (removed on drop).
    pub dir: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts a server with default options.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra command-line arguments.
    pub fn start_with(extra: &[&str]) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("shardai-test-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create data dir");
            let log = dir.with_extension("log");
            let logfile = std::fs::File::create(&log).expect("create log file");
            let child = Command::new(binary())
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(logfile)
                .spawn()
                .expect("spawn shardai");
            let mut s = Server {
                child: Some(child),
                port,
                dir,
                log,
            };
            if s.wait_ready(Duration::from_secs(10)) {
                return s;
            }
            s.kill();
        }
        panic!("shardai did not start");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !self.alive() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() {
                    // A server with a password answers NOAUTH: it is serving.
                    return &buf == b"+PONG\r\n" || &buf == b"-NOAUTH";
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A redis-rs connection (RESP2).
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("client")
            .get_connection()
            .expect("connect")
    }

    /// A redis-rs connection speaking RESP3.
    pub fn client_resp3(&self) -> redis::Connection {
        redis::Client::open(format!("{}?protocol=resp3", self.url()))
            .expect("client")
            .get_connection()
            .expect("connect")
    }

    /// A raw TCP connection with a read timeout.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status (SIGKILL after `limit`).
    pub fn stop(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs redis-cli against this server and returns its stdout. `args` are passed as is.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_input(args, None)
    }

    /// Runs redis-cli with `input` on standard input.
    pub fn cli_input(&self, args: &[&str], input: Option<&[u8]>) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli is installed (Debian's redis-tools)");
        if let Some(data) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(data).expect("write stdin");
        }
        let out = child.wait_with_output().expect("redis-cli ran");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sends raw bytes and reads whatever comes back until the server closes the connection,
/// `limit` passes, or (with `until_close` false) nothing more arrives for 100 ms after some
/// data did. Returns the bytes read and whether the connection was closed.
fn read_back(
    stream: &mut TcpStream,
    bytes: &[u8],
    limit: Duration,
    until_close: bool,
) -> (Vec<u8>, bool) {
    let _ = stream.write_all(bytes);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !until_close && !out.is_empty() {
                    return (out, false);
                }
            }
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Sends raw bytes and reads the reply: until the server closes the connection, `limit`
/// passes, or no more data arrives for 100 ms after some did.
pub fn exchange(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> (Vec<u8>, bool) {
    read_back(stream, bytes, limit, false)
}

/// Sends `bytes`, then reads until the server closes the connection (or `limit` passes).
/// Returns everything read and whether the connection was closed.
pub fn exchange_until_close(
    stream: &mut TcpStream,
    bytes: &[u8],
    limit: Duration,
) -> (Vec<u8>, bool) {
    read_back(stream, bytes, limit, true)
}
