//! The one RESP2 reply reader of this crate, for what the node itself sends to other nodes:
//! the operator's admin client (`shardai cluster ...`) and MIGRATE's replies from the target.
//!
//! [`parse`] is pure (bytes in, one reply out, or "need more"); [`RespReader`] feeds it
//! from a blocking or an async socket. It also builds requests ([`request`]). It never
//! allocates more than a reply's declared size, which [`MAX_REPLY`] bounds.

use std::io::{self, Read};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest reply accepted (a topology or key list); a larger declared length is refused.
pub const MAX_REPLY: usize = 512 << 20;
/// Deepest nesting of arrays accepted.
const MAX_DEPTH: usize = 8;

/// A reply from a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
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
    /// The reply as text (arrays joined by spaces).
    pub fn text(&self) -> String {
        match self {
            Val::Str(s) | Val::Err(s) => s.clone(),
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
        b'+' => (Val::Str(rest.to_string()), next),
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
#[derive(Debug, Default)]
pub struct RespReader {
    buf: Vec<u8>,
}

impl RespReader {
    fn take(&mut self) -> io::Result<Option<Val>> {
        match parse(&self.buf).map_err(io::Error::other)? {
            Some((v, used)) => {
                self.buf.drain(..used);
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    fn fill(&mut self, chunk: &[u8]) -> io::Result<()> {
        if chunk.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if self.buf.len() + chunk.len() > MAX_REPLY + 64 * 1024 {
            return Err(io::Error::other("reply too large"));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The next reply from a blocking reader.
    pub fn read(&mut self, r: &mut impl Read) -> io::Result<Val> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(v) = self.take()? {
                return Ok(v);
            }
            let n = r.read(&mut chunk)?;
            self.fill(&chunk[..n])?;
        }
    }

    /// The next reply from an async reader.
    pub async fn read_async(&mut self, r: &mut (impl AsyncRead + Unpin)) -> io::Result<Val> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(v) = self.take()? {
                return Ok(v);
            }
            let n = r.read(&mut chunk).await?;
            self.fill(&chunk[..n])?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_kind() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some((Val::Str("OK".into()), 5)));
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
        assert_eq!(r.read(&mut src).unwrap(), Val::Str("OK".into()));
        assert_eq!(r.read(&mut src).unwrap(), Val::Err("BUSYKEY x".into()));
        assert_eq!(r.read(&mut src).unwrap(), Val::Int(1));
        assert!(r.read(&mut src).is_err(), "end of input");
    }

    #[test]
    fn requests_are_bulk_arrays() {
        assert_eq!(
            request(&["GET", "k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()
        );
    }
}
