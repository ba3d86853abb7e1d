//! Load generator for tests/bench/cluster_bench.py: `--clients` connections spread over
//! `--addrs` (round-robin), each optionally sending READONLY first, then the command after
//! `--` over and over for `--secs` seconds, one request in flight per connection (as
//! redis-benchmark without pipelining). `__key__` in the command becomes one of `--keys`
//! keys `<prefix><n>`. Prints one JSON line: requests/s, p50 and p99 in ms, errors.
//!
//! ```sh
//! target/release/read_load --addrs 127.0.0.1:7001,127.0.0.1:7002 --clients 50 --secs 10 \
//!     --readonly --keys 1000 --prefix '{rb}:' -- AI.TENSORGET __key__ BLOB
//! ```

use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Opts {
    addrs: Vec<String>,
    clients: usize,
    secs: f64,
    readonly: bool,
    keys: usize,
    prefix: String,
    cmd: Vec<String>,
}

fn opts() -> Res<Opts> {
    let mut o = Opts {
        addrs: Vec::new(),
        clients: 50,
        secs: 10.0,
        readonly: false,
        keys: 1,
        prefix: String::new(),
        cmd: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--addrs" => o.addrs = val()?.split(',').map(String::from).collect(),
            "--clients" => o.clients = val()?.parse()?,
            "--secs" => o.secs = val()?.parse()?,
            "--keys" => o.keys = val()?.parse()?,
            "--prefix" => o.prefix = val()?,
            "--readonly" => o.readonly = true,
            "--" => {
                o.cmd = args.by_ref().collect();
                break;
            }
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    if o.addrs.is_empty() || o.cmd.is_empty() {
        return Err(
            "usage: read_load --addrs A,B --clients N --secs S [--readonly] \
                    [--keys N --prefix P] -- COMMAND ARGS (with __key__)"
                .into(),
        );
    }
    Ok(o)
}

async fn client(addr: String, o: std::sync::Arc<Opts>, seed: usize) -> Res<(Vec<u32>, u64)> {
    let c = redis::Client::open(format!("redis://{addr}/"))?;
    let mut con = c.get_multiplexed_async_connection().await?;
    if o.readonly {
        let _: String = redis::cmd("READONLY").query_async(&mut con).await?;
    }
    let end = Instant::now() + Duration::from_secs_f64(o.secs);
    let (mut lat, mut errors, mut n) = (Vec::new(), 0u64, seed);
    while Instant::now() < end {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("{}{}", o.prefix, (n >> 33) % o.keys.max(1));
        let mut cmd = redis::cmd(&o.cmd[0]);
        for a in &o.cmd[1..] {
            if a == "__key__" {
                cmd.arg(&key);
            } else {
                cmd.arg(a);
            }
        }
        let t = Instant::now();
        match cmd.query_async::<redis::Value>(&mut con).await {
            Ok(redis::Value::ServerError(_)) | Err(_) => errors += 1,
            Ok(_) => lat.push(t.elapsed().as_micros() as u32),
        }
    }
    Ok((lat, errors))
}

#[tokio::main]
async fn main() -> Res<()> {
    shardai_tests::exit_on_help(
        "usage: read_load --addrs A,B --clients N --secs S [--readonly] [--keys N --prefix P] -- COMMAND ARGS (with __key__)\n\nN connections send COMMAND to the given nodes for S seconds, one request in flight each; prints one JSON line: requests/s, p50 and p99 in ms, errors.",
    );
    let o = std::sync::Arc::new(opts()?);
    let started = Instant::now();
    let tasks: Vec<_> = (0..o.clients)
        .map(|i| {
            let addr = o.addrs[i % o.addrs.len()].clone();
            tokio::spawn(client(addr, o.clone(), i))
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await??;
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    println!(
        "{{\"rps\": {:.0}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"requests\": {}, \"errors\": {errors}}}",
        lat.len() as f64 / secs,
        pct(0.5),
        pct(0.99),
        lat.len()
    );
    Ok(())
}
