//! The one RESP2 reply reader of this crate, for what the node itself sends to other nodes:
//! the operator's admin client (`shardai cluster ...`) and MIGRATE's replies from the target.
//!
//! [`parse`] is pure (bytes in, one reply out, or "need more"); [`RespReader`] feeds it
//! from a blocking or an async socket, with a bound on the bytes one reply may take. It also
//! builds requests ([`request`]).
//!
//! It is not `redis-protocol`'s decoder, which the protocol crate's tests use: that one
//! recurses once per nested array with no bound, and these replies come from another host
//! (MIGRATE's target is any address a client names), so [`parse`] bounds the nesting.

use std::io::{self, Read};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest reply the admin client accepts (a topology, a key list).
pub const MAX_REPLY: usize = 256 << 20;
/// Bytes asked of the socket at least per read.
const READ_CHUNK: usize = 16 * 1024;
/// Deepest nesting of arrays accepted.
const MAX_DEPTH: usize = 8;

/// A reply from a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A status reply (`+OK`).
    Status(String),
    /// A bulk string.
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
    /// The reply as text (arrays joined by spaces).
    pub fn text(&self) -> String {
        match self {
            Val::Status(s) | Val::Str(s) | Val::Err(s) => s.clone(),
            Val::Int(n) => n.to_string(),
            Val::Nil => String::new(),
            Val::Arr(v) => v.iter().map(Val::text).collect::<Vec<_>>().join(" "),
        }
    }
}

/// The bytes of a request: a RESP array of bulk strings.
pub fn request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses one reply from the start of `buf`: `Ok(Some((reply, bytes used)))`, `Ok(None)`
/// when `buf` holds only part of it, or an error for bytes that are not a RESP2 reply.
pub fn parse(buf: &[u8]) -> Result<Option<(Val, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Val, usize)>, String> {
    let Some(nl) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        if buf.len() - at > 64 * 1024 {
            return Err("reply line too long".into());
        }
        return Ok(None);
    };
    let line = &buf[at..at + nl];
    let next = at + nl + 2;
    let bad = || format!("bad reply line {:?}", String::from_utf8_lossy(line));
    let (&t, rest) = line.split_first().ok_or_else(bad)?;
    let rest = std::str::from_utf8(rest).map_err(|_| bad())?;
    let int = || rest.parse::<i64>().map_err(|_| bad());
    Ok(Some(match t {
        b'+' => (Val::Status(rest.to_string()), next),
        b'-' => (Val::Err(rest.to_string()), next),
        b':' => (Val::Int(int()?), next),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Val::Nil, next)));
            }
            let n = usize::try_from(n).map_err(|_| bad())?;
            if n > MAX_REPLY {
                return Err(format!("reply of {n} bytes refused"));
            }
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err("bulk string not terminated".into());
            }
            let s = String::from_utf8_lossy(&buf[next..next + n]).into_owned();
            (Val::Str(s), next + n + 2)
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Val::Nil, next)));
            }
            if depth >= MAX_DEPTH || n as u64 > MAX_REPLY as u64 / 3 {
                return Err(bad());
            }
            let mut items = Vec::with_capacity((n as usize).min(1024));
            let mut pos = next;
            for _ in 0..n {
                match parse_at(buf, pos, depth + 1)? {
                    Some((v, p)) => {
                        items.push(v);
                        pos = p;
                    }
                    None => return Ok(None),
                }
            }
            (Val::Arr(items), pos)
        }
        _ => return Err(bad()),
    }))
}

/// Reads replies from a socket, keeping bytes that arrived ahead of the reply being read.
///
/// Each read asks for at least as many bytes as are already buffered, so a large reply is
/// parsed a logarithmic number of times, not once per small read.
#[derive(Debug)]
pub struct RespReader {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// Most bytes one reply may take.
    limit: usize,
}

impl Default for RespReader {
    fn default() -> Self {
        RespReader::with_limit(MAX_REPLY)
    }
}

impl RespReader {
    /// A reader that refuses a reply larger than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        RespReader {
            buf: Vec::new(),
            start: 0,
            limit,
        }
    }

    fn take(&mut self) -> io::Result<Option<Val>> {
        let parsed = parse(&self.buf[self.start..]).map_err(io::Error::other)?;
        let too_big =
            || io::Error::other(format!("reply larger than {} bytes refused", self.limit));
        if let Some((v, used)) = parsed {
            if used > self.limit {
                return Err(too_big());
            }
            self.start += used;
            if self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            }
            return Ok(Some(v));
        }
        if self.buf.len() - self.start > self.limit {
            return Err(too_big());
        }
        Ok(None)
    }

    /// Makes room for the next read and returns how many bytes to ask for.
    fn room(&mut self) -> usize {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let want = self.buf.len().clamp(READ_CHUNK, self.limit.max(READ_CHUNK));
        self.buf.reserve(want);
        want
    }

    /// The next reply from a blocking reader.
    pub fn read(&mut self, r: &mut impl Read) -> io::Result<Val> {
        loop {
            if let Some(v) = self.take()? {
                return Ok(v);
            }
            let want = self.room();
            let len = self.buf.len();
            self.buf.resize(len + want, 0);
            let got = loop {
                match r.read(&mut self.buf[len..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            self.buf.truncate(len + *got.as_ref().unwrap_or(&0));
            if got? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The next reply from an async reader.
    pub async fn read_async(&mut self, r: &mut (impl AsyncRead + Unpin)) -> io::Result<Val> {
        loop {
            if let Some(v) = self.take()? {
                return Ok(v);
            }
            self.room();
            if r.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_kind() {
        assert_eq!(
            parse(b"+OK\r\n").unwrap(),
            Some((Val::Status("OK".into()), 5))
        );
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap(),
            Some((Val::Err("ERR no".into()), 9))
        );
        assert_eq!(parse(b":-7\r\n").unwrap(), Some((Val::Int(-7), 5)));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((Val::Nil, 5)));
        assert_eq!(
            parse(b"$3\r\na\r\n\r\n+x").unwrap(),
            Some((Val::Str("a\r\n".into()), 9))
        );
        assert_eq!(
            parse(b"*2\r\n:1\r\n*1\r\n$1\r\nk\r\n").unwrap(),
            Some((
                Val::Arr(vec![Val::Int(1), Val::Arr(vec![Val::Str("k".into())])]),
                19
            ))
        );
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some((Val::Nil, 5)));
    }

    #[test]
    fn partial_replies_wait_for_more() {
        let whole = b"*2\r\n$5\r\nhello\r\n:3\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(whole).unwrap().is_some());
    }

    #[test]
    fn garbage_and_huge_lengths_are_refused() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"$99999999999\r\n").is_err());
        assert!(parse(b"$1\r\nab\r\n").is_err());
        let deep = "*1\r\n".repeat(20);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn reader_keeps_pipelined_replies() {
        let mut r = RespReader::default();
        let mut src: &[u8] = b"+OK\r\n-BUSYKEY x\r\n:1\r\n";
        assert_eq!(r.read(&mut src).unwrap(), Val::Status("OK".into()));
        assert_eq!(r.read(&mut src).unwrap(), Val::Err("BUSYKEY x".into()));
        assert_eq!(r.read(&mut src).unwrap(), Val::Int(1));
        assert!(r.read(&mut src).is_err(), "end of input");
    }

    #[test]
    fn a_reply_over_the_limit_is_refused() {
        let mut r = RespReader::with_limit(64);
        let big = format!("${}\r\n{}\r\n", 100, "x".repeat(100));
        let mut src = big.as_bytes();
        assert!(r.read(&mut src).is_err());
        let mut r = RespReader::with_limit(64);
        let mut src: &[u8] = b"-ERR small\r\n";
        assert_eq!(r.read(&mut src).unwrap(), Val::Err("ERR small".into()));
    }

    #[test]
    fn large_replies_read_in_few_parses() {
        // Every read re-parses the buffered reply from its start: reads that grow with the
        // buffer keep that to a few parses of a 1 MB array of 100,000 elements.
        let mut body = String::from("*100000\r\n");
        for i in 0..100_000 {
            body.push_str(&format!("${}\r\n{i}\r\n", i.to_string().len()));
        }
        let mut r = RespReader::default();
        let mut src = body.as_bytes();
        match r.read(&mut src).unwrap() {
            Val::Arr(v) => assert_eq!(v.len(), 100_000),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn async_reads_keep_pipelined_replies() {
        let mut r = RespReader::with_limit(1024);
        let mut src: &[u8] = b"+OK\r\n:7\r\n";
        assert_eq!(
            r.read_async(&mut src).await.unwrap(),
            Val::Status("OK".into())
        );
        assert_eq!(r.read_async(&mut src).await.unwrap(), Val::Int(7));
    }

    #[test]
    fn requests_are_bulk_arrays() {
        assert_eq!(
            request(&["GET", "k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()
        );
    }
}
