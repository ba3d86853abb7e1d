//! Replies and their encoding into RESP2 or RESP3.
//!
//! A [`Reply`] is a protocol-independent value; [`WriteBuf`] encodes it for the connection's
//! protocol version. RESP3 types degrade the way Redis degrades them for RESP2 clients:
//! maps become flat arrays, sets become arrays, doubles become bulk strings, booleans become
//! integers and nulls become `$-1` / `*-1`. Large bulk strings are not copied into the output
//! buffer: they are queued as shared `Bytes` chunks and written straight from the store.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;

/// Bulk strings at least this long are written from their own buffer instead of copied.
const ZERO_COPY_MIN: usize = 16 * 1024;

/// A reply value, independent of the protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status line.
    Status(&'static str),
    /// A status line with owned text.
    StatusOwned(String),
    /// An error line (the text comes from [`Error`]).
    Error(Error),
    /// `:n`.
    Int(i64),
    /// `$len` bulk string.
    Bulk(Bytes),
    /// Null bulk string (`$-1` / `_`).
    Nil,
    /// Null array (`*-1` / `_`).
    NilArray,
    /// `*n` array.
    Array(Vec<Reply>),
    /// RESP3 map; a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set; an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 double; a bulk string in RESP2.
    Double(f64),
    /// RESP3 boolean; an integer in RESP2.
    Bool(bool),
    /// RESP3 verbatim text (`=len\r\ntxt:...`); a bulk string in RESP2.
    Verbatim(String),
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Status("OK");

    /// A bulk string from a static or owned string.
    pub fn bulk(s: impl Into<Bytes>) -> Reply {
        Reply::Bulk(s.into())
    }

    /// A bulk string copied from a slice.
    pub fn bulk_copy(s: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s))
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Self {
        Reply::Error(e)
    }
}

impl<T: Into<Reply>> From<Result<T, Error>> for Reply {
    fn from(r: Result<T, Error>) -> Self {
        match r {
            Ok(v) => v.into(),
            Err(e) => Reply::Error(e),
        }
    }
}

/// Formats a double as Redis 7.2 does: shortest round-trip digits, `inf`, `-inf`, `nan`,
/// and an exponent (`1e+300`) for very large or very small magnitudes.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = d.abs();
    if a != 0.0 && !(1e-5..1e17).contains(&a) {
        let s = format!("{d:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{d}")
    }
}

/// The output side of a connection: encoded replies waiting to be written.
#[derive(Debug, Default)]
pub struct WriteBuf {
    chunks: VecDeque<Bytes>,
    cur: BytesMut,
    len: usize,
}

impl WriteBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        WriteBuf::default()
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn put(&mut self, b: &[u8]) {
        self.cur.extend_from_slice(b);
        self.len += b.len();
    }

    fn put_bulk_body(&mut self, b: &Bytes) {
        if b.len() >= ZERO_COPY_MIN {
            if !self.cur.is_empty() {
                let head = self.cur.split().freeze();
                self.chunks.push_back(head);
            }
            self.chunks.push_back(b.clone());
            self.len += b.len();
        } else {
            self.put(b);
        }
    }

    fn put_header(&mut self, marker: u8, n: usize) {
        let mut tmp = itoa::Buffer::new();
        let digits = tmp.format(n);
        self.cur.reserve(digits.len() + 3);
        self.cur.put_u8(marker);
        self.cur.extend_from_slice(digits.as_bytes());
        self.cur.extend_from_slice(b"\r\n");
        self.len += digits.len() + 3;
    }

    /// Encodes `reply` for protocol version `resp` (2 or 3).
    pub fn push(&mut self, reply: &Reply, resp: u8) {
        let v3 = resp >= 3;
        match reply {
            Reply::Status(s) => self.line(b'+', s),
            Reply::StatusOwned(s) => self.line(b'+', s),
            Reply::Error(e) => {
                let text = e.wire_text();
                self.line(if e.is_status() { b'+' } else { b'-' }, &text);
            }
            Reply::Int(i) => {
                let mut tmp = itoa::Buffer::new();
                self.line(b':', tmp.format(*i));
            }
            Reply::Bulk(b) => {
                self.put_header(b'$', b.len());
                self.put_bulk_body(b);
                self.put(b"\r\n");
            }
            Reply::Nil if v3 => self.put(b"_\r\n"),
            Reply::Nil => self.put(b"$-1\r\n"),
            Reply::NilArray if v3 => self.put(b"_\r\n"),
            Reply::NilArray => self.put(b"*-1\r\n"),
            Reply::Array(items) => {
                self.put_header(b'*', items.len());
                for r in items {
                    self.push(r, resp);
                }
            }
            Reply::Set(items) => {
                self.put_header(if v3 { b'~' } else { b'*' }, items.len());
                for r in items {
                    self.push(r, resp);
                }
            }
            Reply::Map(pairs) => {
                if v3 {
                    self.put_header(b'%', pairs.len());
                } else {
                    self.put_header(b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    self.push(k, resp);
                    self.push(v, resp);
                }
            }
            Reply::Double(d) => {
                let s = format_double(*d);
                if v3 {
                    self.line(b',', &s);
                } else {
                    self.push(&Reply::Bulk(Bytes::from(s)), resp);
                }
            }
            Reply::Bool(b) if v3 => self.put(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => self.put(if *b { b":1\r\n" } else { b":0\r\n" }),
            Reply::Verbatim(s) if v3 => {
                self.put_header(b'=', s.len() + 4);
                self.put(b"txt:");
                self.put(s.as_bytes());
                self.put(b"\r\n");
            }
            Reply::Verbatim(s) => self.push(&Reply::Bulk(Bytes::from(s.clone())), resp),
        }
    }

    fn line(&mut self, marker: u8, s: &str) {
        self.cur.reserve(s.len() + 3);
        self.cur.put_u8(marker);
        self.cur.extend_from_slice(s.as_bytes());
        self.cur.extend_from_slice(b"\r\n");
        self.len += s.len() + 3;
    }

    /// Takes everything encoded so far as a list of chunks to write in order.
    pub fn take(&mut self) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.chunks.drain(..).collect();
        if !self.cur.is_empty() {
            out.push(self.cur.split().freeze());
        }
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, resp: u8) -> Vec<u8> {
        let mut w = WriteBuf::new();
        w.push(r, resp);
        let n = w.len();
        let out: Vec<u8> = w.take().concat();
        assert_eq!(out.len(), n);
        out
    }

    #[test]
    fn resp2_and_resp3_encodings() {
        let m = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&m, 2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, 3), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Double(1.0), 2), b"$1\r\n1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), 3), b",1.5\r\n");
        assert_eq!(enc(&Reply::Nil, 2), b"$-1\r\n");
        assert_eq!(enc(&Reply::Nil, 3), b"_\r\n");
        assert_eq!(enc(&Reply::Bool(true), 2), b":1\r\n");
        assert_eq!(enc(&Reply::Bool(false), 3), b"#f\r\n");
        assert_eq!(enc(&Reply::Set(vec![Reply::OK]), 3), b"~1\r\n+OK\r\n");
        assert_eq!(enc(&Reply::Verbatim("x".into()), 3), b"=5\r\ntxt:x\r\n");
        assert_eq!(
            enc(&Reply::Error(Error::Syntax), 2),
            b"-ERR syntax error\r\n"
        );
        assert_eq!(enc(&Reply::Error(Error::TimedOut), 2), b"+TIMEDOUT\r\n");
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(0.1f32 as f64), "0.10000000149011612");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(f64::NAN), "nan");
        assert_eq!(format_double(1e300), "1e+300");
        assert_eq!(format_double(1e-7), "1e-7");
    }

    #[test]
    fn large_bulks_are_not_copied() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let mut w = WriteBuf::new();
        w.push(&Reply::Bulk(big.clone()), 2);
        let chunks = w.take();
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[1].as_ptr(),
            big.as_ptr(),
            "the stored buffer itself is written"
        );
    }
}

/// Differential tests: replies encoded here, decoded by the `redis-protocol` crate.
#[cfg(test)]
mod differential {
    use bytes::BytesMut;
    use redis_protocol::{
        resp2::{decode::decode_bytes_mut as decode2, types::BytesFrame as F2},
        resp3::{decode::complete::decode_bytes_mut as decode3, types::BytesFrame as F3},
    };

    use super::*;

    fn sample() -> Vec<Reply> {
        let big = Bytes::from(vec![b'x'; 70_000]);
        vec![
            Reply::OK,
            Reply::Int(-42),
            Reply::Bulk(Bytes::from_static(b"a\r\nb\0")),
            Reply::Bulk(big),
            Reply::Nil,
            Reply::NilArray,
            Reply::Double(0.1f32 as f64),
            Reply::Bool(true),
            Reply::Error(Error::InvalidValue),
            Reply::Verbatim("# Server\r\nx:1\r\n".into()),
            Reply::Array(vec![
                Reply::bulk("dtype"),
                Reply::bulk("FLOAT"),
                Reply::bulk("shape"),
                Reply::Array(vec![Reply::Int(2), Reply::Int(2)]),
            ]),
            Reply::Map(vec![(
                Reply::bulk("k"),
                Reply::Set(vec![Reply::Status("write")]),
            )]),
        ]
    }

    fn encode(replies: &[Reply], resp: u8) -> BytesMut {
        let mut w = WriteBuf::new();
        for r in replies {
            w.push(r, resp);
        }
        BytesMut::from(&w.take().concat()[..])
    }

    #[test]
    fn resp2_replies_decode_with_redis_protocol() {
        let replies = sample();
        let mut buf = encode(&replies, 2);
        let mut frames = Vec::new();
        while let Some((f, _, _)) = decode2(&mut buf).expect("valid RESP2") {
            frames.push(f);
        }
        assert_eq!(frames.len(), replies.len());
        assert_eq!(frames[0], F2::SimpleString(Bytes::from_static(b"OK")));
        assert_eq!(frames[1], F2::Integer(-42));
        assert_eq!(frames[2], F2::BulkString(Bytes::from_static(b"a\r\nb\0")));
        assert!(matches!(&frames[3], F2::BulkString(b) if b.len() == 70_000));
        assert_eq!(frames[4], F2::Null);
        assert_eq!(
            frames[6],
            F2::BulkString(Bytes::from_static(b"0.10000000149011612"))
        );
        assert_eq!(frames[7], F2::Integer(1));
        assert_eq!(frames[8], F2::Error("ERR invalid value".into()));
        assert!(matches!(&frames[10], F2::Array(v) if v.len() == 4));
        assert!(matches!(&frames[11], F2::Array(v) if v.len() == 2));
    }

    #[test]
    fn resp3_replies_decode_with_redis_protocol() {
        let replies = sample();
        let mut buf = encode(&replies, 3);
        let mut frames = Vec::new();
        while let Some((f, _, _)) = decode3(&mut buf).expect("valid RESP3") {
            frames.push(f);
        }
        assert_eq!(frames.len(), replies.len());
        assert!(matches!(frames[4], F3::Null));
        assert!(matches!(frames[5], F3::Null));
        assert!(matches!(frames[6], F3::Double { data, .. } if data == 0.1f32 as f64));
        assert!(matches!(frames[7], F3::Boolean { data: true, .. }));
        assert!(
            matches!(&frames[9], F3::VerbatimString { data, .. } if data.starts_with(b"# Server"))
        );
        assert!(matches!(&frames[11], F3::Map { data, .. } if data.len() == 1));
    }
}
