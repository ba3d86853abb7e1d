//! Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384.

/// Number of hash slots.
pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM), as Redis Cluster computes it, from the `crc16` crate (table-driven,
/// a byte a step). The keyspace computes it on every access; on 16 to 40 byte keys the crate
/// measured as fast as the hand-written table it replaced, or slightly faster (numbers, and
/// how to rerun them, in docs/crc16.md; the bench is `tests::crc16_speed`).
fn crc16(data: &[u8]) -> u16 {
    ::crc16::State::<::crc16::XMODEM>::calculate(data)
}

/// The hash slot of `key`: only the part between the first `{` and the next `}` counts when
/// that part is not empty.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}foo"), crc16(b"{}foo") % SLOTS);
    }

    /// The hand-written table-driven CRC16 (XMODEM) that the crate replaced, kept as the
    /// baseline of `crc16_speed` and as a second implementation to check the crate against.
    fn table_crc16(data: &[u8]) -> u16 {
        const TABLE: [u16; 256] = {
            let mut table = [0u16; 256];
            let mut i = 0;
            while i < 256 {
                let mut crc = (i as u16) << 8;
                let mut bit = 0;
                while bit < 8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ 0x1021
                    } else {
                        crc << 1
                    };
                    bit += 1;
                }
                table[i] = crc;
                i += 1;
            }
            table
        };
        data.iter().fold(0u16, |crc, &b| {
            (crc << 8) ^ TABLE[((crc >> 8) as u8 ^ b) as usize]
        })
    }

    #[test]
    fn crate_matches_the_table_it_replaced() {
        assert_eq!(crc16(b""), table_crc16(b""));
        for k in sample_keys(4096) {
            assert_eq!(
                crc16(&k),
                table_crc16(&k),
                "{}",
                String::from_utf8_lossy(&k)
            );
        }
    }

    /// Realistic keys: 16 to 40 bytes, some with a hash tag, from a fixed seed.
    fn sample_keys(n: usize) -> Vec<Vec<u8>> {
        let words = [
            "user", "session", "tensor", "model", "cart", "feed", "img", "emb",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let r = next();
                let len = 16 + (r % 25) as usize;
                let mut k = format!(
                    "{}:{}{}:{}:",
                    words[(r >> 8) as usize % words.len()],
                    if r >> 20 & 3 == 0 { "{" } else { "" },
                    r >> 24 & 0xFFFFF,
                    words[(r >> 44) as usize % words.len()],
                )
                .into_bytes();
                if r >> 20 & 3 == 0 {
                    let close = k.iter().rposition(|&b| b == b':').unwrap_or(0) - 1;
                    k.insert(close + 1, b'}');
                }
                while k.len() < len {
                    k.push(b'a' + (next() % 26) as u8);
                }
                k.truncate(len);
                k
            })
            .collect()
    }

    /// ns per key of `f` over `keys`, `rounds` times.
    fn ns_per_key(keys: &[Vec<u8>], rounds: usize, f: impl Fn(&[u8]) -> u16) -> f64 {
        let start = std::time::Instant::now();
        let mut acc = 0u16;
        for _ in 0..rounds {
            for k in keys {
                acc ^= f(std::hint::black_box(k));
            }
        }
        std::hint::black_box(acc);
        start.elapsed().as_nanos() as f64 / (rounds * keys.len()) as f64
    }

    /// The `crc16` crate's XMODEM against the hand-written table it replaced, alternating,
    /// on 2 M keys a run, fifteen runs each (release build; best on an idle machine):
    /// `cargo test -p shardai-protocol --release --lib slot::tests::crc16_speed -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn crc16_speed() {
        let keys = sample_keys(4096);
        let avg = keys.iter().map(Vec::len).sum::<usize>() as f64 / keys.len() as f64;
        let rounds = 512;
        let (mut table, mut krate) = (Vec::new(), Vec::new());
        for run in 0..15 {
            let t = ns_per_key(&keys, rounds, table_crc16);
            let c = ns_per_key(&keys, rounds, crc16);
            println!("run {run}: table {t:.2} ns/key, crc16 crate {c:.2} ns/key");
            table.push(t);
            krate.push(c);
        }
        let stats = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2])
        };
        let ((t_min, t_med), (c_min, c_med)) = (stats(&mut table), stats(&mut krate));
        println!(
            "keys of {avg:.1} bytes on average: table min {t_min:.2} / median {t_med:.2} ns/key, \
             crate min {c_min:.2} / median {c_med:.2} ns/key"
        );
    }
}
