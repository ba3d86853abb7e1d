//! The redis crate's cluster-async client against a live shardai cluster, started from one
//! seed address. Run by tests/py/test_cluster.py:
//!
//! ```sh
//! target/release/cluster_client 127.0.0.1:7001 tests/models/redisai/linear_iris.onnx
//! target/release/cluster_client 127.0.0.1:7001 --cluster-wide @iris 300
//! ```
//!
//! With `--cluster-wide NAME COUNT` it runs the cluster-wide model NAME (stored once for the
//! whole cluster) on COUNT tensors spread over every slot range instead, each run by
//! AI.MODELEXECUTE (routed by the model name, then MOVED to the tensor's shard) and by
//! AI.DAGEXECUTE; prints `ok COUNT runs`.
//!
//! Stores INT32 tensors on 60 keys (spread over every shard), reads them back, then stores
//! the model on a `{tag}` in each shard (shards told apart by their master in CLUSTER SLOTS) and runs AI.MODELEXECUTE and AI.DAGEXECUTE there.
//! The client routes unknown commands by their first argument and follows MOVED for the
//! rest (AI.DAGEXECUTE's first argument is a keyword). Prints `ok 60 keys, 3 models`; any
//! mismatch exits non-zero.

use std::collections::BTreeSet;

use redis::{AsyncCommands as _, cluster::ClusterClient, cmd};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs cluster-wide model `name` on `count` tensors in slots of every shard.
async fn cluster_wide(
    con: &mut redis::cluster_async::ClusterConnection,
    name: &str,
    count: usize,
) -> Res<()> {
    let mut first: Option<Vec<String>> = None;
    for i in 0..count {
        let (x, y) = (format!("{{rsw-{i}}}x"), format!("{{rsw-{i}}}y"));
        let _: String = cmd("AI.TENSORSET")
            .arg(&x)
            .arg("FLOAT")
            .arg(1)
            .arg(4)
            .arg("VALUES")
            .arg(&["5.0", "3.4", "1.6", "0.4"])
            .query_async(con)
            .await?;
        let ok: String = cmd("AI.MODELEXECUTE")
            .arg(name)
            .arg("INPUTS")
            .arg(1)
            .arg(&x)
            .arg("OUTPUTS")
            .arg(1)
            .arg(&y)
            .query_async(con)
            .await?;
        assert_eq!(ok, "OK");
        let v: Vec<String> = cmd("AI.TENSORGET")
            .arg(&y)
            .arg("VALUES")
            .query_async(con)
            .await?;
        let dag: Vec<redis::Value> = cmd("AI.DAGEXECUTE")
            .arg("LOAD")
            .arg(1)
            .arg(&x)
            .arg("|>")
            .arg("AI.MODELEXECUTE")
            .arg(name)
            .arg("INPUTS")
            .arg(1)
            .arg(&x)
            .arg("OUTPUTS")
            .arg(1)
            .arg("o")
            .arg("|>")
            .arg("AI.TENSORGET")
            .arg("o")
            .arg("VALUES")
            .query_async(con)
            .await?;
        let last: Vec<String> =
            redis::from_redis_value(dag.last().cloned().ok_or("empty DAG reply")?)?;
        assert_eq!(last, v, "{x}");
        assert_eq!(first.get_or_insert_with(|| v.clone()), &v, "{x}");
    }
    println!("ok {count} runs");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    shardai_tests::exit_on_help(
        "usage: cluster_client HOST:PORT MODEL.onnx | cluster_client HOST:PORT --cluster-wide NAME COUNT\n\nA redis-rs cluster client against a shardai cluster: stores and runs a model where its keys live, or checks a cluster-wide model.",
    );
    let mut args = std::env::args().skip(1);
    let (Some(seed), Some(model)) = (args.next(), args.next()) else {
        return Err("usage: cluster_client HOST:PORT MODEL.onnx".into());
    };
    let client = ClusterClient::new(vec![format!("redis://{seed}/")])?;
    let mut con = client.get_async_connection().await?;
    if model == "--cluster-wide" {
        let (Some(name), Some(count)) = (args.next(), args.next()) else {
            return Err("usage: cluster_client HOST:PORT --cluster-wide NAME COUNT".into());
        };
        return cluster_wide(&mut con, &name, count.parse()?).await;
    }
    let blob = std::fs::read(&model)?;
    let _: () = con.set("rs:probe", "1").await?;

    for i in 0..60i64 {
        let ok: String = cmd("AI.TENSORSET")
            .arg(format!("rs:{i}"))
            .arg("INT32")
            .arg(1)
            .arg("VALUES")
            .arg(i)
            .query_async(&mut con)
            .await?;
        assert_eq!(ok, "OK");
    }
    for i in 0..60i64 {
        let v: Vec<i64> = cmd("AI.TENSORGET")
            .arg(format!("rs:{i}"))
            .arg("VALUES")
            .query_async(&mut con)
            .await?;
        assert_eq!(v, vec![i], "rs:{i}");
    }

    // A tag in each shard: the slot ranges of CLUSTER SLOTS, by their master's port.
    let slots: Vec<redis::Value> = cmd("CLUSTER").arg("SLOTS").query_async(&mut con).await?;
    let mut ranges = Vec::new();
    for s in &slots {
        if let redis::Value::Array(e) = s
            && let (redis::Value::Int(a), redis::Value::Int(b)) = (&e[0], &e[1])
            && let redis::Value::Array(master) = &e[2]
            && let Some(redis::Value::Int(port)) = master.get(1)
        {
            ranges.push((*a, *b, *port));
        }
    }
    let shards: BTreeSet<i64> = ranges.iter().map(|r| r.2).collect();
    let mut done = BTreeSet::new();
    for n in 0..100_000 {
        if done.len() == shards.len() {
            break;
        }
        let tag = format!("rs{n}");
        let slot = i64::from(shardai_protocol::slot::key_slot(tag.as_bytes()));
        let Some(&(_, _, shard)) = ranges.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)) else {
            continue;
        };
        if !done.insert(shard) {
            continue;
        }
        let (m, x, y) = (
            format!("m{{{tag}}}"),
            format!("in{{{tag}}}"),
            format!("out{{{tag}}}"),
        );
        let ok: String = cmd("AI.MODELSTORE")
            .arg(&m)
            .arg("ONNX")
            .arg("CPU")
            .arg("BLOB")
            .arg(&blob)
            .query_async(&mut con)
            .await?;
        assert_eq!(ok, "OK");
        let _: String = cmd("AI.TENSORSET")
            .arg(&x)
            .arg("FLOAT")
            .arg(1)
            .arg(4)
            .arg("VALUES")
            .arg(&["5.0", "3.4", "1.6", "0.4"])
            .query_async(&mut con)
            .await?;
        let _: String = cmd("AI.MODELEXECUTE")
            .arg(&m)
            .arg("INPUTS")
            .arg(1)
            .arg(&x)
            .arg("OUTPUTS")
            .arg(1)
            .arg(&y)
            .query_async(&mut con)
            .await?;
        let direct: Vec<String> = cmd("AI.TENSORGET")
            .arg(&y)
            .arg("VALUES")
            .query_async(&mut con)
            .await?;
        assert_eq!(direct.len(), 1);
        let dag: Vec<redis::Value> = cmd("AI.DAGEXECUTE")
            .arg("LOAD")
            .arg(1)
            .arg(&x)
            .arg("|>")
            .arg("AI.MODELEXECUTE")
            .arg(&m)
            .arg("INPUTS")
            .arg(1)
            .arg(&x)
            .arg("OUTPUTS")
            .arg(1)
            .arg("o")
            .arg("|>")
            .arg("AI.TENSORGET")
            .arg("o")
            .arg("VALUES")
            .query_async(&mut con)
            .await?;
        let last: Vec<String> =
            redis::from_redis_value(dag.last().cloned().ok_or("empty DAG reply")?)?;
        assert_eq!(last, direct);
    }
    assert_eq!(done.len(), shards.len());
    println!("ok 60 keys, {} models", done.len());
    Ok(())
}
