//! Benchmark: a model served by shardai versus the same model called in-process.
//!
//! For each ONNX model given, one client sends AI.TENSORSET + AI.MODELEXECUTE +
//! AI.TENSORGET as one pipeline and waits for the three replies; the same input is also run
//! in this process through shardai's own ONNX backend (the same `ort` code and the same
//! libonnxruntime the server loads), without queue or network. Prints p50/p99 of both and the
//! difference.
//!
//! ```sh
//! cargo build --release -p shardai-node -p shardai-tests
//! target/release/model_latency tests/models/redisai/mnist.onnx:1,1,28,28 [--iters 3000]
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use shardai_engine::{
    Tensor,
    backend::{Backends, default_path},
};
use shardai_protocol::{DType, command::Backend as Kind};
use shardai_tests::Server;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut iters = 3000usize;
    if let Some(i) = args.iter().position(|a| a == "--iters") {
        iters = args[i + 1].parse().expect("--iters N");
        args.drain(i..i + 2);
    }
    if args.is_empty() {
        eprintln!("usage: model_latency MODEL.onnx:d1,d2,... [...] [--iters N]");
        std::process::exit(2);
    }
    let server = Server::start();
    let mut con = server.client();
    let backends = Backends::new(default_path());
    let onnx = backends
        .get(Kind::Onnx)
        .expect("ONNX backend (run scripts/setup)");
    // The floor: three pipelined PINGs on the same connection.
    let mut ping = Vec::with_capacity(iters);
    for _ in 0..iters {
        let mut p = redis::pipe();
        p.cmd("PING").ignore().cmd("PING").ignore().cmd("PING");
        let t = Instant::now();
        let _: (String,) = p.query(&mut con).expect("PING");
        ping.push(t.elapsed());
    }
    ping.sort();
    println!(
        "network floor (3 pipelined PINGs): p50 {:.0} µs, p99 {:.0} µs",
        us(percentile(&ping, 0.5)),
        us(percentile(&ping, 0.99))
    );
    println!(
        "| model | served p50 µs | served p99 µs | in-process p50 µs | in-process p99 µs | p50 difference µs |"
    );
    println!("|---|---|---|---|---|---|");
    for spec in &args {
        let (path, shape) = spec.split_once(':').expect("MODEL:SHAPE");
        let shape: Vec<usize> = shape
            .split(',')
            .map(|d| d.parse().expect("dimension"))
            .collect();
        let blob = std::fs::read(path).expect("model file");
        let n: usize = shape.iter().product();
        let data: Vec<u8> = (0..n)
            .flat_map(|i| ((i % 255) as f32 / 255.0).to_le_bytes())
            .collect();

        // In-process: the backend itself, on this thread.
        let model = onnx.load(&blob, "CPU", &[], &[]).expect("model loads");
        let input = Arc::new(
            Tensor::from_blob(DType::Float, shape.clone(), Bytes::from(data.clone())).unwrap(),
        );
        // Models with several inputs get the same tensor for each.
        let inputs = vec![input; model.num_inputs().unwrap_or(1)];
        let mut direct = Vec::with_capacity(iters);
        for i in 0..iters + iters / 10 {
            let t = Instant::now();
            let out = model.run(&inputs).expect("runs");
            let took = t.elapsed();
            assert!(!out.is_empty());
            if i >= iters / 10 {
                direct.push(took);
            }
        }

        // Served: one pipelined round trip per iteration.
        let _: () = redis::cmd("AI.MODELSTORE")
            .arg("m")
            .arg("ONNX")
            .arg("CPU")
            .arg("BLOB")
            .arg(&blob)
            .query(&mut con)
            .expect("MODELSTORE");
        let mut served = Vec::with_capacity(iters);
        for i in 0..iters + iters / 10 {
            let mut p = redis::pipe();
            p.cmd("AI.TENSORSET")
                .arg("in")
                .arg("FLOAT")
                .arg(&shape)
                .arg("BLOB")
                .arg(&data)
                .ignore();
            p.cmd("AI.MODELEXECUTE")
                .arg("m")
                .arg("INPUTS")
                .arg(inputs.len())
                .arg(vec!["in"; inputs.len()])
                .arg("OUTPUTS")
                .arg(model.num_outputs().unwrap_or(1))
                .arg(
                    (0..model.num_outputs().unwrap_or(1))
                        .map(|i| format!("out{i}"))
                        .collect::<Vec<_>>(),
                )
                .ignore();
            p.cmd("AI.TENSORGET").arg("out0").arg("BLOB");
            let t = Instant::now();
            let (out,): (Vec<u8>,) = p.query(&mut con).expect("pipeline");
            let took = t.elapsed();
            assert!(!out.is_empty());
            if i >= iters / 10 {
                served.push(took);
            }
        }
        direct.sort();
        served.sort();
        let (s50, s99, d50, d99) = (
            percentile(&served, 0.5),
            percentile(&served, 0.99),
            percentile(&direct, 0.5),
            percentile(&direct, 0.99),
        );
        println!(
            "| {path} {shape:?} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.0} |",
            us(s50),
            us(s99),
            us(d50),
            us(d99),
            us(s50) - us(d50)
        );
    }
}
