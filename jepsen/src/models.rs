//! The model workload: the test suite's small ONNX model (`linear_iris.onnx`, a linear
//! regression over four features) stored on the healthy cluster twice, as a key of the
//! workload's slot and as a cluster-wide model (`@jepsen`, held by every node through the
//! metadata group), with the bytes it gives for each of a few inputs (both must agree);
//! then executed throughout the faults, odd executions by the cluster-wide model and even
//! ones by the keyed one, half the time as
//! AI.TENSORSET of an input and AI.MODELEXECUTE, half as one AI.DAGEXECUTE that PERSISTs
//! its output, each execution with an output key of its own; after the heal, every output
//! read from every replica of its shard (READONLY, no redirects), once each replica has
//! applied a write made after all of them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use redis::Value;
use tokio::task::JoinSet;

use crate::checker::models::Seen;
use crate::client::{Client, Reply};
use crate::history::{Kind, Op};

/// The model, from the test suite's models.
const MODEL: &[u8] = include_bytes!("../../tests/models/redisai/linear_iris.onnx");
/// Every key of the workload has the hash tag `{la2}`: slot 0, the first slot a reshard
/// moves (`shardai cluster reshard` takes the source's lowest slots), so the outputs move
/// between shards in a two-shard run.
const MODEL_KEY: &str = "{la2}model";
/// The same model stored once for the whole cluster.
const WIDE_MODEL: &str = "@jepsen";

/// The model execution `v` runs: the cluster-wide one for odd `v`.
fn model_of(v: i64) -> &'static str {
    if v.rem_euclid(2) == 1 {
        WIDE_MODEL
    } else {
        MODEL_KEY
    }
}
/// Iris measurements (sepal and petal length and width, cm).
const INPUTS: [[f32; 4]; 6] = [
    [5.0, 3.4, 1.6, 0.4],
    [6.7, 3.1, 4.4, 1.4],
    [6.3, 2.8, 5.1, 1.5],
    [4.9, 3.0, 1.4, 0.2],
    [7.7, 3.8, 6.7, 2.2],
    [5.8, 2.7, 4.1, 1.0],
];

/// The output key of execution `v`.
pub(crate) fn output_key(v: i64) -> String {
    format!("{{la2}}o.{v}")
}

/// The index of execution `v`'s input.
pub(crate) fn input_of(v: i64) -> i64 {
    v.rem_euclid(INPUTS.len() as i64)
}

fn tensor_args(c: &mut redis::Cmd, key: &str, x: &[f32; 4]) {
    c.arg("AI.TENSORSET")
        .arg(key)
        .arg("FLOAT")
        .arg(1)
        .arg(4)
        .arg("VALUES");
    for f in x {
        c.arg(f.to_string());
    }
}

/// `AI.MODELEXECUTE <model> INPUTS 1 input OUTPUTS 1 output`, appended to `c`.
fn model_args(c: &mut redis::Cmd, model: &str, input: &str, output: &str) {
    c.arg("AI.MODELEXECUTE")
        .arg(model)
        .arg("INPUTS")
        .arg(1)
        .arg(input)
        .arg("OUTPUTS")
        .arg(1)
        .arg(output);
}

/// A reply's first error inside an array (a DAG's failed step), as the whole reply.
fn dag_error(r: Reply) -> Reply {
    if let Reply::Value(Value::Array(items), at) = &r
        && let Some(Value::ServerError(e)) =
            items.iter().find(|v| matches!(v, Value::ServerError(_)))
    {
        let text = format!("{} {}", e.code(), e.details().unwrap_or_default());
        return Reply::Error(text, at.clone());
    }
    r
}

/// Stores the model (keyed and cluster-wide) and returns the bytes of its output for each
/// input (AI.TENSORGET ... BLOB), the same from both, retrying for up to `within`.
pub(crate) async fn prepare(addrs: &[String], within: Duration) -> Result<Vec<Vec<u8>>> {
    let end = Instant::now() + within;
    let mut client = Client::new(Duration::from_secs(5), false);
    let mut stores = Vec::new();
    for name in [MODEL_KEY, WIDE_MODEL] {
        let mut store = redis::cmd("AI.MODELSTORE");
        store
            .arg(name)
            .arg("ONNX")
            .arg("CPU")
            .arg("BLOB")
            .arg(MODEL);
        stores.push(store);
    }
    let mut n = 0;
    let mut last = String::new();
    let mut expected: Vec<Vec<u8>> = Vec::new();
    while expected.len() < INPUTS.len() {
        if Instant::now() > end {
            bail!("the model workload could not start: {last}");
        }
        let node = &addrs[n % addrs.len()];
        n += 1;
        if !stores.is_empty() {
            match client.call(node, &stores[0]).await {
                Reply::Value(..) => {
                    stores.remove(0);
                }
                other => last = format!("AI.MODELSTORE: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let x = &INPUTS[expected.len()];
        let mut outs = Vec::new();
        for model in [MODEL_KEY, WIDE_MODEL] {
            let mut c = redis::cmd("AI.DAGEXECUTE_RO");
            c.arg("ROUTING").arg("{la2}").arg("|>");
            tensor_args(&mut c, "x", x);
            c.arg("|>");
            model_args(&mut c, model, "x", "y");
            c.arg("|>").arg("AI.TENSORGET").arg("y").arg("BLOB");
            match dag_error(client.call(node, &c).await) {
                Reply::Value(Value::Array(items), _) => match items.last() {
                    Some(Value::BulkString(b)) => outs.push(b.clone()),
                    other => bail!("the model's output for {x:?} is {other:?}, not a blob"),
                },
                other => last = format!("executing {model}: {other:?}"),
            }
        }
        match &outs[..] {
            [a, b] if a == b => expected.push(a.clone()),
            [a, b] => bail!("{MODEL_KEY} gives {a:?} for {x:?} but {WIDE_MODEL} gives {b:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok(expected)
}

/// Runs execution `v` through `node`: a DAG that persists the output when `dag`, else an
/// input set and AI.MODELEXECUTE (never sent when the input was not acknowledged).
pub(crate) async fn execute(client: &mut Client, node: &str, v: i64, dag: bool) -> Reply {
    let x = &INPUTS[input_of(v) as usize];
    let out = output_key(v);
    let mut exec = redis::Cmd::new();
    if dag {
        exec.arg("AI.DAGEXECUTE")
            .arg("PERSIST")
            .arg(1)
            .arg(&out)
            .arg("|>");
        tensor_args(&mut exec, "x", x);
        exec.arg("|>");
        model_args(&mut exec, model_of(v), "x", &out);
    } else {
        let input = format!("{{la2}}i.{v}");
        let mut set = redis::Cmd::new();
        tensor_args(&mut set, &input, x);
        match client.call(node, &set).await {
            Reply::Value(..) => {}
            Reply::Error(e, at) => return Reply::NotSent(format!("{at}: input: {e}")),
            Reply::Unknown(e) | Reply::NotSent(e) => {
                return Reply::NotSent(format!("input: {e}"));
            }
        }
        model_args(&mut exec, model_of(v), &input, &out);
    }
    dag_error(client.call(node, &exec).await)
}

/// Reads every execution's output from every node of its shard (nodes `s * shard_size ..`
/// are shard `s`), each node once it has applied a write made now (so that it has applied
/// every execution before): per output key, what each replica holds. A node that redirects
/// to another shard's node is not a replica and is left out; one that redirects within its
/// shard lags and is asked again.
pub(crate) async fn final_read(
    addrs: &[String],
    shard_size: usize,
    ops: &[Op],
    within: Duration,
) -> Result<BTreeMap<String, Vec<(String, Seen)>>> {
    let keys: Vec<String> = ops
        .iter()
        .filter(|o| o.kind == Kind::Model)
        .map(|o| o.key.clone())
        .collect();
    let end = Instant::now() + within;
    let barrier = format!("{{la2}}barrier.{}", rand::random::<u32>());
    let mut set = redis::Cmd::new();
    tensor_args(&mut set, &barrier, &INPUTS[0]);
    let mut client = Client::new(Duration::from_secs(2), false);
    let mut n = 0;
    while !matches!(
        client.call(&addrs[n % addrs.len()], &set).await,
        Reply::Value(..)
    ) {
        n += 1;
        if Instant::now() > end {
            bail!("the final write of the model workload was not acknowledged in {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut seen: BTreeMap<String, Vec<(String, Seen)>> = BTreeMap::new();
    for i in 0..addrs.len() {
        let name = format!("n{i}");
        let Some(conn) = replica(addrs, i, shard_size, &barrier, end).await? else {
            continue;
        };
        let mut tasks = JoinSet::new();
        for chunk in keys.chunks(256) {
            let mut conn = conn.clone();
            let chunk = chunk.to_vec();
            tasks.spawn(async move {
                let mut out = Vec::new();
                for k in chunk {
                    // A read that fails (not one that finds nothing) is tried again.
                    let mut got = get_blob(&mut conn, &k).await;
                    while got.is_err() && Instant::now() < end {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        got = get_blob(&mut conn, &k).await;
                    }
                    out.push((k, got));
                }
                out
            });
        }
        while let Some(r) = tasks.join_next().await {
            for (k, got) in r? {
                let got = got.map_err(|e| anyhow::anyhow!("{name}: AI.TENSORGET {k}: {e}"))?;
                seen.entry(k).or_default().push((name.clone(), got));
            }
        }
    }
    Ok(seen)
}

/// Whether node `i`, which redirected to node `to`, is a replica of the slot all the same
/// (the same shard: it lags) rather than a node of another shard.
fn same_shard(i: usize, to: Option<usize>, shard_size: usize) -> bool {
    to.is_some_and(|to| to / shard_size == i / shard_size)
}

/// A READONLY connection to node `i` once it has applied `barrier`; None when it is not a
/// replica of the workload's slot.
async fn replica(
    addrs: &[String],
    i: usize,
    shard_size: usize,
    barrier: &str,
    end: Instant,
) -> Result<Option<redis::aio::MultiplexedConnection>> {
    let addr = &addrs[i];
    let mut last = String::new();
    while Instant::now() < end {
        match try_replica(addr, barrier).await {
            Ok(c) => return Ok(Some(c)),
            Err(e) if e.starts_with("MOVED") => {
                let to = e
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| addrs.iter().position(|x| x == a));
                if !same_shard(i, to, shard_size) {
                    return Ok(None);
                }
                last = e;
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{addr} did not apply the model workload's final write: {last}")
}

async fn try_replica(
    addr: &str,
    barrier: &str,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut c = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("READONLY")
        .query_async::<Value>(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    match get_blob(&mut c, barrier).await? {
        Some(_) => Ok(c),
        None => Err(format!("{addr} has not applied it yet")),
    }
}

/// AI.TENSORGET key BLOB: the bytes, None for no such key, or the error.
async fn get_blob(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    let mut cmd = redis::cmd("AI.TENSORGET");
    cmd.arg(key).arg("BLOB");
    match cmd.query_async::<Value>(c).await {
        Ok(Value::BulkString(b)) => Ok(Some(b)),
        Ok(other) => Err(format!("AI.TENSORGET {key} BLOB answered {other:?}")),
        Err(e) if e.to_string().contains("tensor key is empty") => Ok(None),
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(d)) => Err(format!("{code} {d}")),
            _ => Err(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_within_the_shard_is_a_lagging_replica() {
        // Shards of three: n0-n2, n3-n5.
        assert!(same_shard(1, Some(0), 3));
        assert!(same_shard(5, Some(3), 3));
        assert!(!same_shard(3, Some(2), 3));
        assert!(!same_shard(0, None, 3));
    }

    #[test]
    fn a_failed_dag_step_is_the_reply() {
        let reply = |resp: &[u8]| {
            let v = redis::parse_redis_value(resp).expect("valid RESP");
            dag_error(Reply::Value(v, "n0".into()))
        };
        match reply(b"*2\r\n+OK\r\n-ERR model failed\r\n") {
            Reply::Error(e, at) => {
                assert_eq!((e.as_str(), at.as_str()), ("ERR model failed", "n0"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(reply(b"*2\r\n+OK\r\n+OK\r\n"), Reply::Value(..)));
    }
}
