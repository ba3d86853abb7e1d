//! Benchmark: a model served by shardai versus the same model called in-process.
//!
//! For each model given, one client sends AI.TENSORSET + AI.MODELEXECUTE + AI.TENSORGET as
//! one pipeline and waits for the three replies; the same input is also run in this process
//! through shardai's own backend (the same code and the same native library the server
//! loads), without queue or network. Prints p50/p99 of both and the difference. The backend
//! follows the file's extension (`.onnx`, `.pt`, `.pb`, `.tflite`); TF models also name their
//! input and output nodes.
//!
//! ```sh
//! cargo build --release -p shardai-node -p shardai-tests
//! target/release/make_torch_models /tmp/m && .venv/bin/python tests/models/make_tf.py /tmp/m
//! .venv/bin/python tests/models/make_tflite.py /tmp/m
//! target/release/model_latency tests/models/redisai/mnist.onnx:1,1,28,28 \
//!     /tmp/m/mnist_cnn.pt:1,1,28,28 /tmp/m/mnist_cnn.pb:1,28,28,1:images:output \
//!     /tmp/m/mnist_cnn.tflite:1,28,28,1 [--iters 3000] [--device GPU:0]
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use shardai_engine::{
    Tensor,
    backend::{Backends, default_path},
};
use shardai_protocol::{DType, command::Backend as Kind};
use shardai_tests::Server;

/// One model to measure: `PATH:SHAPE[:INPUT,...:OUTPUT,...]`.
struct Spec {
    path: String,
    kind: Kind,
    shape: Vec<usize>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl Spec {
    fn parse(arg: &str) -> Spec {
        let mut parts = arg.split(':');
        let path = parts.next().expect("PATH").to_string();
        let shape = parts
            .next()
            .expect("PATH:SHAPE")
            .split(',')
            .map(|d| d.parse().expect("dimension"))
            .collect();
        let names = |p: Option<&str>| -> Vec<String> {
            p.map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        };
        let inputs = names(parts.next());
        let outputs = names(parts.next());
        let kind = match path.rsplit('.').next() {
            Some("onnx") => Kind::Onnx,
            Some("pt") => Kind::Torch,
            Some("pb") => Kind::Tf,
            Some("tflite") => Kind::TfLite,
            other => panic!("unknown model extension {other:?}"),
        };
        Spec {
            path,
            kind,
            shape,
            inputs,
            outputs,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    shardai_tests::exit_on_help(
        "usage: model_latency MODEL:d1,d2,...[:IN,...:OUT,...] [...] [--iters N] [--device D]\n\nOne client: a served model (pipelined AI.TENSORSET + AI.MODELEXECUTE + AI.TENSORGET, and one AI.DAGEXECUTE) against the same backend called in-process. The backend follows the file's extension (.onnx, .pt, .pb, .tflite); TF models also name their input and output nodes.",
    );
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut flag = |name: &str, default: &str| -> String {
        match args.iter().position(|a| a == name) {
            Some(i) => {
                let v = args[i + 1].clone();
                args.drain(i..i + 2);
                v
            }
            None => default.to_string(),
        }
    };
    let iters: usize = flag("--iters", "3000").parse().expect("--iters N");
    let device = flag("--device", "CPU");
    if args.is_empty() {
        eprintln!(
            "usage: model_latency MODEL:d1,d2,...[:IN,...:OUT,...] [...] [--iters N] [--device D]"
        );
        std::process::exit(2);
    }
    let server = Server::start();
    let mut con = server.client();
    // The server reads SHARDAI_BACKENDSPATH itself; this process follows the same setting.
    let lib_path = std::env::var_os("SHARDAI_BACKENDSPATH")
        .map(std::path::PathBuf::from)
        .or_else(default_path);
    let backends = Backends::new(lib_path);
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
        "network floor (3 pipelined PINGs): p50 {:.0} µs, p99 {:.0} µs; device {device}",
        us(percentile(&ping, 0.5)),
        us(percentile(&ping, 0.99))
    );
    println!(
        "| model | backend | served p50 µs | served p99 µs | in-process p50 µs | in-process p99 µs | p50 difference µs |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut dag_rows = Vec::new();
    for arg in &args {
        let spec = Spec::parse(arg);
        let shape = spec.shape.clone();
        let blob = std::fs::read(&spec.path).expect("model file");
        let n: usize = shape.iter().product();
        let data: Vec<u8> = (0..n)
            .flat_map(|i| ((i % 255) as f32 / 255.0).to_le_bytes())
            .collect();

        // In-process: the backend itself, on this thread.
        let backend = backends
            .get(spec.kind)
            .unwrap_or_else(|e| panic!("{} backend (run scripts/setup): {e}", spec.kind.name()));
        let model = backend
            .load(&blob, &device, &spec.inputs, &spec.outputs)
            .expect("model loads");
        let input =
            Tensor::from_blob(DType::Float, shape.clone(), Bytes::from(data.clone())).unwrap();
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
        let n_outputs = model.num_outputs().unwrap_or(1);
        drop(model);

        // Served: one pipelined round trip per iteration.
        let mut store = redis::cmd("AI.MODELSTORE");
        store.arg("m").arg(spec.kind.name()).arg(&device);
        if spec.kind == Kind::Tf {
            store.arg("INPUTS").arg(spec.inputs.len()).arg(&spec.inputs);
            store
                .arg("OUTPUTS")
                .arg(spec.outputs.len())
                .arg(&spec.outputs);
        }
        let _: () = store
            .arg("BLOB")
            .arg(&blob)
            .query(&mut con)
            .expect("MODELSTORE");
        let mut served: Vec<Duration> = Vec::with_capacity(iters);
        // The three steps, each as its argument list, sent pipelined and then as one DAG.
        let arg = |s: &str| s.as_bytes().to_vec();
        let dims: Vec<Vec<u8>> = shape.iter().map(|d| arg(&d.to_string())).collect();
        let mut set = vec![arg("AI.TENSORSET"), arg("in"), arg("FLOAT")];
        set.extend(dims);
        set.extend([arg("BLOB"), data.clone()]);
        let mut exec = vec![arg("AI.MODELEXECUTE"), arg("m"), arg("INPUTS")];
        exec.push(arg(&inputs.len().to_string()));
        exec.extend((0..inputs.len()).map(|_| arg("in")));
        exec.extend([arg("OUTPUTS"), arg(&n_outputs.to_string())]);
        exec.extend((0..n_outputs).map(|i| arg(&format!("out{i}"))));
        let get = vec![arg("AI.TENSORGET"), arg("out0"), arg("BLOB")];
        let steps = [set, exec, get];
        let mut pipeline = redis::pipe();
        for (k, step) in steps.iter().enumerate() {
            pipeline
                .cmd(std::str::from_utf8(&step[0]).unwrap_or_default())
                .arg(&step[1..]);
            if k < steps.len() - 1 {
                pipeline.ignore();
            }
        }
        let mut dag_cmd = redis::cmd("AI.DAGEXECUTE");
        dag_cmd.arg("ROUTING").arg("in");
        for step in &steps {
            dag_cmd.arg("|>").arg(step);
        }
        for i in 0..iters + iters / 10 {
            let t = Instant::now();
            let (out,): (Vec<u8>,) = pipeline.query(&mut con).expect("pipeline");
            let took = t.elapsed();
            assert!(!out.is_empty());
            if i >= iters / 10 {
                served.push(took);
            }
        }
        // The same three steps as one AI.DAGEXECUTE (the input and outputs stay in the DAG).
        let mut dag = Vec::with_capacity(iters);
        for i in 0..iters + iters / 10 {
            let c = &dag_cmd;
            let t = Instant::now();
            let replies: Vec<redis::Value> = c.query(&mut con).expect("DAG");
            let took = t.elapsed();
            assert!(matches!(replies.last(), Some(redis::Value::BulkString(_))));
            if i >= iters / 10 {
                dag.push(took);
            }
        }
        dag.sort();
        served.sort();
        dag_rows.push(format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            spec.path.rsplit('/').next().unwrap_or(&spec.path),
            spec.kind.name(),
            us(percentile(&served, 0.5)),
            us(percentile(&served, 0.99)),
            us(percentile(&dag, 0.5)),
            us(percentile(&dag, 0.99)),
        ));
        direct.sort();
        served.sort();
        let (s50, s99, d50, d99) = (
            percentile(&served, 0.5),
            percentile(&served, 0.99),
            percentile(&direct, 0.5),
            percentile(&direct, 0.99),
        );
        println!(
            "| {} {shape:?} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.0} |",
            spec.path.rsplit('/').next().unwrap_or(&spec.path),
            spec.kind.name(),
            us(s50),
            us(s99),
            us(d50),
            us(d99),
            us(s50) - us(d50)
        );
    }
    println!();
    println!(
        "| model | backend | 3 commands pipelined p50 µs | p99 µs | one AI.DAGEXECUTE p50 µs | p99 µs |"
    );
    println!("|---|---|---|---|---|---|");
    for row in dag_rows {
        println!("{row}");
    }
}
