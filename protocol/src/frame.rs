//! Request framing: bytes from a socket into argument vectors.
//!
//! Clients send either RESP multibulk requests (`*N\r\n$len\r\n...`) or inline commands
//! (`PING\r\n`, as redis-cli and telnet do). [`RequestDecoder`] walks a multibulk request's
//! headers once, resuming across reads, so that a declared length above
//! `proto-max-bulk-len` is refused before a byte of it is buffered and every malformed frame
//! gets Redis's own `Protocol error` text. A complete request is split off the read buffer
//! and its arguments are `Bytes` views into it: a 100 MB BLOB is never copied between the
//! socket and the store. The `redis-protocol` crate is the reference this decoder is
//! checked against (see the differential tests below).

use bytes::{Bytes, BytesMut};

use crate::error::Error;

/// Redis's limit on an inline request or a header line (`PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;
/// Redis's limit on the number of arguments of one request.
pub const MAX_MULTIBULK: i64 = 1024 * 1024;
/// The arguments room is made for before they arrive (Redis's first `argv` allocation).
const ARGS_RESERVED: usize = 1024;
/// Default for `proto-max-bulk-len`, as in Redis.
pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
/// Default limit on the bytes of one request (Redis's `client-query-buffer-limit`).
pub const DEFAULT_MAX_REQUEST: usize = 1024 * 1024 * 1024;

/// The outcome of looking at the front of the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// One request's arguments (never empty).
    Request(Vec<Bytes>),
    /// A request with no arguments (`*0`, `*-1` or an empty inline line): nothing to answer.
    Empty,
    /// The buffer holds only part of a request; `need` is a lower bound on the total bytes
    /// the buffer must hold before the next call can make progress (use it to reserve).
    Incomplete {
        /// Total bytes wanted in the buffer.
        need: usize,
    },
}

/// Splits requests off a read buffer, enforcing Redis's limits. One per connection: it
/// remembers how far it scanned an incomplete request.
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    max_bulk: usize,
    max_request: usize,
    partial: Option<Partial>,
    spare: Vec<(usize, usize)>,
}

/// How far an incomplete multibulk request has been scanned.
#[derive(Debug, Clone)]
struct Partial {
    /// Arguments still to scan.
    left: usize,
    /// Offset of the next bulk header.
    pos: usize,
    /// Where the payload of the bulk being waited for begins, once its header was read.
    payload_at: Option<usize>,
    /// (offset, length) of each complete argument.
    args: Vec<(usize, usize)>,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(DEFAULT_MAX_BULK, DEFAULT_MAX_REQUEST)
    }
}

impl RequestDecoder {
    /// A decoder refusing bulk strings longer than `max_bulk` and requests larger than
    /// `max_request` bytes.
    pub fn new(max_bulk: usize, max_request: usize) -> Self {
        RequestDecoder {
            max_bulk,
            max_request: max_request.max(max_bulk),
            partial: None,
            spare: Vec::new(),
        }
    }

    /// When the last call returned `Incomplete` while waiting for a bulk string's payload:
    /// the offset in the buffer where that payload begins. Lets the caller place a large
    /// payload (a tensor's BLOB) at an aligned address before reading it.
    pub fn pending_payload(&self) -> Option<usize> {
        self.partial.as_ref().and_then(|p| p.payload_at)
    }

    /// The configured `proto-max-bulk-len`.
    pub fn max_bulk(&self) -> usize {
        self.max_bulk
    }

    /// Changes `proto-max-bulk-len` (CONFIG SET).
    pub fn set_max_bulk(&mut self, max_bulk: usize) {
        self.max_bulk = max_bulk;
        self.max_request = self.max_request.max(max_bulk);
    }

    /// Decodes the request at the front of `buf`, removing its bytes when it is complete.
    /// A protocol error means the connection must be answered and closed.
    ///
    /// Between calls the caller may only append to `buf` (or move its contents to a larger
    /// buffer): the decoder keeps offsets into the incomplete request.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Error> {
        match buf.first() {
            None => Ok(Decoded::Incomplete { need: 1 }),
            Some(b'*') => self.decode_multibulk(buf),
            Some(_) => decode_inline(buf),
        }
    }

    fn decode_multibulk(&mut self, buf: &mut BytesMut) -> Result<Decoded, Error> {
        // Resume where the last call stopped: a request arriving in many reads is scanned
        // once, not once per read.
        let mut p = match self.partial.take() {
            Some(p) => p,
            None => {
                let Some((count, pos)) = header_line(buf, 0, "too big mbulk count string")? else {
                    return Ok(Decoded::Incomplete {
                        need: buf.len() + 1,
                    });
                };
                let count = parse_i64(count)
                    .filter(|n| *n <= MAX_MULTIBULK)
                    .ok_or_else(|| proto("invalid multibulk length"))?;
                if count <= 0 {
                    let _ = buf.split_to(pos);
                    return Ok(Decoded::Empty);
                }
                let mut args = std::mem::take(&mut self.spare);
                args.clear();
                // Room for the first arguments only: a header claiming a million of them
                // (a dozen bytes) reserves no more than what arrives needs, as in Redis.
                args.reserve((count as usize).min(ARGS_RESERVED));
                Partial {
                    left: count as usize,
                    pos,
                    payload_at: None,
                    args,
                }
            }
        };
        while p.left > 0 {
            let Some(&first) = buf.get(p.pos) else {
                let need = p.pos + 1;
                self.partial = Some(p);
                return Ok(Decoded::Incomplete { need });
            };
            if first != b'$' {
                return Err(proto(&format!("expected '$', got '{}'", first as char)));
            }
            let Some((len, next)) = header_line(buf, p.pos, "too big bulk count string")? else {
                let need = buf.len() + 1;
                self.partial = Some(p);
                return Ok(Decoded::Incomplete { need });
            };
            let len = parse_i64(len)
                .filter(|n| *n >= 0 && (*n as u64) <= self.max_bulk as u64)
                .ok_or_else(|| proto("invalid bulk length"))? as usize;
            let end = next + len + 2;
            if end > self.max_request {
                return Err(proto("request is larger than client-query-buffer-limit"));
            }
            if end > buf.len() {
                // Keep the header position: the next call re-reads only this header.
                p.payload_at = Some(next);
                self.partial = Some(p);
                return Ok(Decoded::Incomplete { need: end });
            }
            // Redis skips these two bytes unread; refusing anything but CRLF keeps a
            // desynchronised client from having its payload run as commands.
            if &buf[end - 2..end] != b"\r\n" {
                return Err(proto("expected CRLF after bulk data"));
            }
            p.payload_at = None;
            p.args.push((next, len));
            p.pos = end;
            p.left -= 1;
        }
        // Complete: split the request off the buffer; every argument is a view into it.
        let frame = buf.split_to(p.pos).freeze();
        let args = p
            .args
            .iter()
            .map(|&(at, len)| frame.slice(at..at + len))
            .collect();
        self.spare = p.args;
        Ok(Decoded::Request(args))
    }
}

fn proto(msg: &str) -> Error {
    Error::Protocol(msg.to_string())
}

/// Finds the header line starting at `start` (its first byte is the type marker). Returns
/// the line without the marker and the position after its CRLF, or `None` when the line is
/// not complete yet.
fn header_line<'a>(
    buf: &'a [u8],
    start: usize,
    too_big: &str,
) -> Result<Option<(&'a [u8], usize)>, Error> {
    let rest = &buf[start..];
    match rest.iter().position(|&b| b == b'\r') {
        Some(i) if i > MAX_INLINE => Err(proto(too_big)),
        Some(i) if i + 1 < rest.len() => Ok(Some((&rest[1..i], start + i + 2))),
        Some(_) => Ok(None),
        None if rest.len() > MAX_INLINE => Err(proto(too_big)),
        None => Ok(None),
    }
}

/// Strict decimal parse as Redis's `string2ll`: optional '-', digits, no spaces, no '+'.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = (d - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    if neg && v == 0 {
        return None;
    }
    Some(v)
}

fn decode_inline(buf: &mut BytesMut) -> Result<Decoded, Error> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(proto("too big inline request"));
        }
        return Ok(Decoded::Incomplete {
            need: buf.len() + 1,
        });
    };
    if nl > MAX_INLINE {
        return Err(proto("too big inline request"));
    }
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let args = split_args(line).ok_or_else(|| proto("unbalanced quotes in request"))?;
    if args.is_empty() {
        return Ok(Decoded::Empty);
    }
    Ok(Decoded::Request(
        args.into_iter().map(Bytes::from).collect(),
    ))
}

/// Splits an inline command line as Redis's `sdssplitargs` does: whitespace separates
/// arguments; "double quotes" support `\n \r \t \b \a \\ \"` and `\xHH` escapes; 'single
/// quotes' support `\'`. A closing quote must be followed by whitespace or the end.
/// Returns `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(h(line[i + 2]) * 16 + h(line[i + 3]));
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | b'\0' => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_argument_count_reserves_room_for_a_few_only() {
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1048576\r\n$3\r\nSET\r\n"[..]);
        assert!(matches!(d.decode(&mut buf), Ok(Decoded::Incomplete { .. })));
        let p = d.partial.as_ref().expect("a request under way");
        assert_eq!((p.left, p.args.len()), (1048575, 1));
        assert!(p.args.capacity() <= ARGS_RESERVED, "{}", p.args.capacity());
    }

    fn dec(input: &[u8]) -> (Result<Decoded, Error>, BytesMut) {
        let mut buf = BytesMut::from(input);
        let r = RequestDecoder::default().decode(&mut buf);
        (r, buf)
    }

    fn req(args: &[&str]) -> Decoded {
        Decoded::Request(
            args.iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn multibulk_and_pipelining() {
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1\r\n$4\r\nPING\r\n"[..]);
        let mut d = RequestDecoder::default();
        assert_eq!(d.decode(&mut buf).unwrap(), req(&["ECHO", "hi"]));
        assert_eq!(d.decode(&mut buf).unwrap(), req(&["PING"]));
        assert!(matches!(
            d.decode(&mut buf).unwrap(),
            Decoded::Incomplete { .. }
        ));
    }

    #[test]
    fn incomplete_reports_needed_size() {
        let (r, buf) = dec(b"*1\r\n$10\r\nabc");
        assert_eq!(r.unwrap(), Decoded::Incomplete { need: 21 });
        assert_eq!(buf.len(), 12, "nothing consumed");
        for cut in 1..18 {
            let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
            let (r, _) = dec(&full[..cut]);
            assert!(
                matches!(r.unwrap(), Decoded::Incomplete { .. }),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn pending_payload_offset() {
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$10\r\nabc"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Decoded::Incomplete { need: 30 }
        );
        assert_eq!(d.pending_payload(), Some(18));
        buf.extend_from_slice(b"defghij\r\n");
        assert!(matches!(d.decode(&mut buf).unwrap(), Decoded::Request(_)));
        assert_eq!(d.pending_payload(), None);
    }

    #[test]
    fn binary_bulk_is_kept_verbatim() {
        let (r, _) = dec(b"*2\r\n$3\r\nSET\r\n$4\r\n\r\n\0\xff\r\n");
        assert_eq!(
            r.unwrap(),
            Decoded::Request(vec![
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"\r\n\0\xff")
            ])
        );
    }

    #[test]
    fn protocol_errors_have_redis_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*2000000\r\n", "invalid multibulk length"),
            (b"*1\r\n+OK\r\n", "expected '$', got '+'"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$abc\r\n", "invalid bulk length"),
            (b"*1\r\n$536870913\r\n", "invalid bulk length"),
            (b"*1\r\n$99999999999999999999999\r\n", "invalid bulk length"),
            (b"SET \"abc\r\n", "unbalanced quotes in request"),
            (b"*1\r\n$4\r\nPINGxx", "expected CRLF after bulk data"),
        ];
        for (input, text) in cases {
            let (r, _) = dec(input);
            assert_eq!(
                r.unwrap_err(),
                Error::Protocol(text.to_string()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn huge_declared_length_is_refused_before_buffering() {
        let mut d = RequestDecoder::new(1024, 4096);
        let mut buf = BytesMut::from(&b"*1\r\n$1025\r\n"[..]);
        assert!(d.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&b"*1\r\n$1024\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Decoded::Incomplete { need: 1037 }
        );
    }

    #[test]
    fn endless_header_lines_are_refused() {
        let mut long = b"*".to_vec();
        long.extend(std::iter::repeat_n(b'1', MAX_INLINE + 2));
        assert_eq!(
            dec(&long).0.unwrap_err(),
            proto("too big mbulk count string")
        );
        let long = vec![b'a'; MAX_INLINE + 2];
        assert_eq!(dec(&long).0.unwrap_err(), proto("too big inline request"));
    }

    #[test]
    fn empty_requests() {
        assert_eq!(dec(b"*0\r\n").0.unwrap(), Decoded::Empty);
        assert_eq!(dec(b"*-1\r\n").0.unwrap(), Decoded::Empty);
        assert_eq!(dec(b"\r\n").0.unwrap(), Decoded::Empty);
        assert_eq!(dec(b"   \n").0.unwrap(), Decoded::Empty);
    }

    #[test]
    fn inline_commands() {
        assert_eq!(dec(b"PING\r\n").0.unwrap(), req(&["PING"]));
        assert_eq!(dec(b"set a  b\n").0.unwrap(), req(&["set", "a", "b"]));
        assert_eq!(
            dec(b"SET k \"a b\\x41\\n\" 'it\\'s'\r\n").0.unwrap(),
            req(&["SET", "k", "a bA\n", "it's"])
        );
        assert!(dec(b"SET k \"a\"b\r\n").0.is_err());
        assert!(dec(b"SET k 'a\r\n").0.is_err());
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"9223372036854775808",
            b"1.5",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}

/// Differential tests: the decoder against the `redis-protocol` crate's RESP2 decoder, on
/// random binary requests fed in random pieces.
#[cfg(test)]
mod differential {
    use bytes::BytesMut;
    use redis_protocol::resp2::{decode::decode_bytes_mut, types::BytesFrame};

    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    fn reference(wire: &[u8]) -> Vec<Vec<Bytes>> {
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some((frame, _, _)) = decode_bytes_mut(&mut buf).expect("valid RESP") {
            let BytesFrame::Array(items) = frame else {
                panic!("not an array")
            };
            out.push(
                items
                    .into_iter()
                    .map(|f| match f {
                        BytesFrame::BulkString(b) => b,
                        other => panic!("{other:?}"),
                    })
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn agrees_with_redis_protocol_on_random_requests() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let mut wire = Vec::new();
            for _ in 0..1 + rng.below(5) {
                let argc = 1 + rng.below(6);
                wire.extend(format!("*{argc}\r\n").as_bytes());
                for _ in 0..argc {
                    let len = match rng.below(4) {
                        0 => 0,
                        1 => rng.below(10),
                        2 => rng.below(300),
                        _ => rng.below(70_000),
                    };
                    wire.extend(format!("${len}\r\n").as_bytes());
                    wire.extend((0..len).map(|_| rng.next() as u8));
                    wire.extend(b"\r\n");
                }
            }
            let want = reference(&wire);
            // Feed the bytes in random pieces, as a socket would.
            let mut d = RequestDecoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut at = 0;
            while at < wire.len() {
                let n = 1 + rng.below(if round % 2 == 0 { 20 } else { 100_000 } as u64);
                let end = (at + n).min(wire.len());
                buf.extend_from_slice(&wire[at..end]);
                at = end;
                loop {
                    match d.decode(&mut buf).expect("valid request") {
                        Decoded::Request(args) => got.push(args),
                        Decoded::Empty => {}
                        Decoded::Incomplete { need } => {
                            assert!(need > buf.len());
                            break;
                        }
                    }
                }
            }
            assert!(buf.is_empty());
            assert_eq!(got, want, "round {round}");
        }
    }
}
