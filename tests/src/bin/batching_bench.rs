//! Benchmark: auto-batching. C concurrent clients (threads, one connection each) send
//! batch-1 requests (AI.MODELEXECUTE, or AI.DAGEXECUTE_RO with `--dag`) to one model for a
//! fixed time, first stored with BATCHSIZE 0, then with BATCHSIZE B, then with BATCHSIZE B
//! and a queue delay of W µs (`AI.CONFIG BATCH_QUEUE_DELAY_US`, `--wait-us W`, default
//! 2000; a server without that setting skips the row); the same model is also run in this
//! process through shardai's own backend at batch 1 and at batch B, without queue or
//! network. Prints requests/s of each, the served ratio (B versus 0), served-with-batching
//! versus the library's own batch-B throughput, and the average batch the server formed
//! (AI.INFO samples / calls). With `--dag` each request is an AI.DAGEXECUTE_RO that loads
//! the client's input, runs the model and answers its output, storing nothing (an inference
//! client's request without AI.MODELEXECUTE's write of its output to the keyspace and the
//! log).
//!
//! ```sh
//! cargo build --release -p shardai-node -p shardai-tests
//! .venv/bin/python tests/models/make_onnx.py /tmp/m
//! target/release/batching_bench /tmp/m/mnist_cnn.onnx:1,28,28 [--clients 32] [--batch 32] [--secs 10] [--wait-us 2000] [--dag]
//! # a TorchScript model (.pt) on a GPU:
//! target/release/batching_bench resnet50.pt:3,224,224 --device GPU:0
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use shardai_engine::{
    Tensor,
    backend::{Backends, Settings, default_path},
};
use shardai_protocol::{DType, command::Backend as Kind};
use shardai_tests::Server;

fn flag(args: &mut Vec<String>, name: &str, default: &str) -> String {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args[i + 1].clone();
            args.drain(i..i + 2);
            v
        }
        None => default.to_string(),
    }
}

/// Requests per second that `clients` threads achieve against `key` for `secs`.
fn served(
    server: &Server,
    key: &str,
    clients: usize,
    row: &[u8],
    dims: &[usize],
    secs: u64,
    dag: bool,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (stop, done) = (stop.clone(), done.clone());
            let mut con = server.client();
            let (row, key) = (row.to_vec(), key.to_string());
            let mut shape = vec![1usize];
            shape.extend_from_slice(dims);
            std::thread::spawn(move || {
                let input = format!("in{i}");
                let output = format!("out{i}");
                let _: () = redis::cmd("AI.TENSORSET")
                    .arg(&input)
                    .arg("FLOAT")
                    .arg(&shape)
                    .arg("BLOB")
                    .arg(&row)
                    .query(&mut con)
                    .expect("TENSORSET");
                // With --dag nothing is stored: the input is read, the output answered.
                let mut request = if dag {
                    let mut c = redis::cmd("AI.DAGEXECUTE_RO");
                    c.arg("LOAD")
                        .arg(1)
                        .arg(&input)
                        .arg("|>")
                        .arg("AI.MODELEXECUTE");
                    c
                } else {
                    redis::cmd("AI.MODELEXECUTE")
                };
                request
                    .arg(&key)
                    .arg("INPUTS")
                    .arg(1)
                    .arg(&input)
                    .arg("OUTPUTS")
                    .arg(1)
                    .arg(&output);
                if dag {
                    request
                        .arg("|>")
                        .arg("AI.TENSORGET")
                        .arg(&output)
                        .arg("BLOB");
                }
                while !stop.load(Ordering::Relaxed) {
                    // An error reply, also one inside the DAG's reply, fails the query.
                    let _: redis::Value = request.query(&mut con).expect("request");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Warm-up, then measure.
    std::thread::sleep(Duration::from_secs(1));
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    count as f64 / elapsed
}

fn main() {
    shardai_tests::exit_on_help(
        "usage: batching_bench MODEL.onnx:d1,d2,... (dims after the batch) [--clients N] [--batch B] [--secs S] [--wait-us W] [--device D] [--dag]\n\nN batch-1 clients (32) against BATCHSIZE 0, BATCHSIZE B and BATCHSIZE B with a queue delay of W µs, and the backend's own batch-B throughput in-process. Each request is an AI.MODELEXECUTE that stores its output, or with --dag an AI.DAGEXECUTE_RO that reads the input, runs the model and answers the output without storing anything.",
    );
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let clients: usize = flag(&mut args, "--clients", "32")
        .parse()
        .expect("--clients N");
    let batch: usize = flag(&mut args, "--batch", "32").parse().expect("--batch N");
    let secs: u64 = flag(&mut args, "--secs", "10").parse().expect("--secs N");
    let device = flag(&mut args, "--device", "CPU");
    let wait_us: u64 = flag(&mut args, "--wait-us", "2000")
        .parse()
        .expect("--wait-us N");
    let dag = match args.iter().position(|a| a == "--dag") {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let Some(spec) = args.first() else {
        eprintln!(
            "usage: batching_bench MODEL.onnx:d1,d2,... (dims after the batch) [--clients N] [--batch B] [--secs S] [--wait-us W] [--device D] [--dag]"
        );
        std::process::exit(2);
    };
    let (path, dims) = spec.split_once(':').expect("MODEL:DIMS");
    let dims: Vec<usize> = dims.split(',').map(|d| d.parse().expect("dim")).collect();
    let blob = std::fs::read(path).expect("model file");
    let per_row: usize = dims.iter().product();
    let row: Vec<u8> = (0..per_row)
        .flat_map(|i| ((i % 255) as f32 / 255.0).to_le_bytes())
        .collect();

    // In-process: the library itself, on this thread, at batch 1 and at batch B.
    // The server reads SHARDAI_BACKENDSPATH itself; this process follows the same setting.
    let lib_path = std::env::var_os("SHARDAI_BACKENDSPATH")
        .map(std::path::PathBuf::from)
        .or_else(default_path);
    // ... and so do the thread settings (and SHARDAI_ONNX_SPINNING).
    let env_usize = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let threads = Settings {
        intra_op: env_usize("SHARDAI_INTRA_OP_PARALLELISM"),
        inter_op: env_usize("SHARDAI_INTER_OP_PARALLELISM"),
        execution_timeout_ms: 0,
        onnx_no_spinning: std::env::var("SHARDAI_ONNX_SPINNING").is_ok_and(|v| v == "no"),
    };
    let backends = Backends::with_threads(lib_path, threads);
    let kind = if path.ends_with(".pt") {
        Kind::Torch
    } else {
        Kind::Onnx
    };
    let backend = backends
        .get(kind)
        .expect("backend library (run scripts/setup)");
    let model = backend.load(&blob, &device, &[], &[]).expect("model loads");
    let mut in_process = Vec::new();
    for n in [1, batch] {
        let mut shape = vec![n];
        shape.extend_from_slice(&dims);
        let input = Tensor::from_blob(DType::Float, shape, Bytes::from(row.repeat(n))).unwrap();
        let inputs = vec![input];
        for _ in 0..20 {
            model.run(&inputs).expect("runs");
        }
        let start = Instant::now();
        let mut runs = 0u64;
        while start.elapsed() < Duration::from_secs(3) {
            model.run(&inputs).expect("runs");
            runs += 1;
        }
        in_process.push(runs as f64 * n as f64 / start.elapsed().as_secs_f64());
    }
    drop(model);

    let server = Server::start();
    let mut con = server.client();
    let mut results = Vec::new();
    for (bs, wait) in [(0, 0), (batch, 0), (batch, wait_us)] {
        // The delay is off on a fresh server; one that has no such setting (an earlier
        // build, for a comparison) runs the rows without it.
        if wait > 0 {
            let set: redis::RedisResult<()> = redis::cmd("AI.CONFIG")
                .arg("BATCH_QUEUE_DELAY_US")
                .arg(wait)
                .query(&mut con);
            if let Err(e) = set {
                eprintln!("no queue delay row: AI.CONFIG BATCH_QUEUE_DELAY_US answered {e}");
                continue;
            }
        }
        let key = format!("m{bs}-{wait}");
        let _: () = redis::cmd("AI.MODELSTORE")
            .arg(&key)
            .arg(kind.name())
            .arg(&device)
            .arg("BATCHSIZE")
            .arg(bs)
            .arg("BLOB")
            .arg(&blob)
            .query(&mut con)
            .expect("MODELSTORE");
        let rate = served(&server, &key, clients, &row, &dims, secs, dag);
        let info: Vec<redis::Value> = redis::cmd("AI.INFO").arg(&key).query(&mut con).unwrap();
        let int = |i: usize| match &info[i] {
            redis::Value::Int(n) => *n as f64,
            _ => 0.0,
        };
        results.push((bs, wait, rate, int(13) / int(15).max(1.0)));
    }
    let request = if dag {
        "AI.DAGEXECUTE_RO (LOAD, MODELEXECUTE, TENSORGET)"
    } else {
        "AI.MODELEXECUTE (output stored)"
    };
    println!(
        "{clients} clients, batch-1 requests: {request}, {secs} s each, model {path} on {device}"
    );
    println!("| run | requests/s | average batch (AI.INFO samples/calls) |");
    println!("|---|---|---|");
    for (bs, wait, rate, avg) in &results {
        let delay = if *wait > 0 {
            format!(", BATCH_QUEUE_DELAY_US {wait}")
        } else {
            String::new()
        };
        println!("| served, BATCHSIZE {bs}{delay} | {rate:.0} | {avg:.2} |");
    }
    println!("| in-process, batch 1 | {:.0} | 1 |", in_process[0]);
    println!(
        "| in-process, batch {batch} | {:.0} | {batch} |",
        in_process[1]
    );
    print!(
        "served BATCHSIZE {batch} / BATCHSIZE 0: {:.2}x; served BATCHSIZE {batch} / in-process batch {batch}: {:.2}x",
        results[1].2 / results[0].2,
        results[1].2 / in_process[1],
    );
    match results.get(2) {
        Some(delayed) => println!("; with the queue delay: {:.2}x", delayed.2 / in_process[1]),
        None => println!(),
    }
}
