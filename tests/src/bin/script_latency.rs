//! Benchmark: a TorchScript pre-processing script served by shardai versus the same function
//! called in-process.
//!
//! The script normalises a 224×224×3 UINT8 image into a 1×3×224×224 FLOAT tensor (ImageNet
//! mean and standard deviation). One client measures, for `--iters` iterations each:
//! - `AI.SCRIPTEXECUTE` on the stored image, its output stored (a replicated write);
//! - `AI.DAGEXECUTE LOAD 1 image |> AI.SCRIPTEXECUTE ... |> AI.TENSORGET out META`: the same
//!   call with its output kept inside the DAG;
//! - the same function compiled and called in this process through shardai's own script code
//!   on libtorch (input copied in, output copied out), without queue or network;
//! - for scale, AI.TENSORSET of a tensor of the output's size (the replicated write that
//!   AI.SCRIPTEXECUTE's stored output costs).
//!
//! Prints p50/p99 of each and the served − in-process p50 differences.
//!
//! ```sh
//! cargo build --release -p shardai-node -p shardai-tests
//! target/release/script_latency [--iters 2000] [--device CPU]
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use shardai_engine::{
    Tensor,
    backend::{Backends, default_path},
    script::{ENTRY_POINT, bind},
};
use shardai_protocol::DType;
use shardai_tests::Server;

const SOURCE: &str = r#"
def pre_process(tensors: List[Tensor], keys: List[str], args: List[str]):
    image = tensors[0].float().div(255.0)
    mean = torch.tensor([0.485, 0.456, 0.406], device=image.device)
    std = torch.tensor([0.229, 0.224, 0.225], device=image.device)
    image = image.sub(mean).div(std)
    return image.permute(2, 0, 1).unsqueeze(0).contiguous()
"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `f` `iters` times after `iters / 10` warm-up runs; the sorted timings.
fn time(iters: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut out = Vec::with_capacity(iters);
    for i in 0..iters + iters / 10 {
        let t = Instant::now();
        f();
        if i >= iters / 10 {
            out.push(t.elapsed());
        }
    }
    out.sort();
    out
}

fn main() {
    shardai_tests::exit_on_help(
        "usage: script_latency [--iters N] [--device D]\n\nOne client: a TorchScript pre-processing script served by shardai (AI.SCRIPTEXECUTE, and inside AI.DAGEXECUTE) against the same function called in-process.",
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
    let iters: usize = flag("--iters", "2000").parse().expect("--iters N");
    let device = flag("--device", "CPU");
    let shape = vec![224usize, 224, 3];
    let pixels: Vec<u8> = (0..shape.iter().product::<usize>())
        .map(|i| (i * 7 % 256) as u8)
        .collect();

    // In-process: shardai's script code on libtorch, on this thread.
    let backends = Backends::new(default_path());
    let compiled = backends
        .compile_script(SOURCE.as_bytes(), &device)
        .expect("the script compiles");
    let binding = bind("pre_process", Some(&ENTRY_POINT), true, 1, &[], &[]).expect("binds");
    let image =
        vec![Tensor::from_blob(DType::Uint8, shape.clone(), Bytes::from(pixels.clone())).unwrap()];
    let mut out_len = 0;
    let mut in_process = || {
        time(iters, || {
            let out = compiled
                .call("pre_process", &binding, &image, true, None)
                .expect("runs");
            out_len = out[0].byte_size();
        })
    };
    // Measured before and after the server's runs; the faster of the two is the reference
    // (the conservative choice for the difference).
    let before = in_process();

    // Served.
    let server = Server::start();
    let mut con = server.client();
    let _: () = redis::cmd("AI.SCRIPTSTORE")
        .arg("pre{img}")
        .arg(&device)
        .arg("ENTRY_POINTS")
        .arg(1)
        .arg("pre_process")
        .arg("SOURCE")
        .arg(SOURCE)
        .query(&mut con)
        .expect("SCRIPTSTORE");
    let _: () = redis::cmd("AI.TENSORSET")
        .arg("image{img}")
        .arg("UINT8")
        .arg(&shape)
        .arg("BLOB")
        .arg(&pixels)
        .query(&mut con)
        .expect("TENSORSET");
    let mut execute = redis::cmd("AI.SCRIPTEXECUTE");
    execute
        .arg("pre{img}")
        .arg("pre_process")
        .arg("INPUTS")
        .arg(1)
        .arg("image{img}")
        .arg("OUTPUTS")
        .arg(1)
        .arg("out{img}");
    let served = time(iters, || {
        let _: () = execute.query(&mut con).expect("SCRIPTEXECUTE");
    });
    let mut dag = redis::cmd("AI.DAGEXECUTE");
    dag.arg("LOAD")
        .arg(1)
        .arg("image{img}")
        .arg("|>")
        .arg("AI.SCRIPTEXECUTE")
        .arg("pre{img}")
        .arg("pre_process")
        .arg("INPUTS")
        .arg(1)
        .arg("image{img}")
        .arg("OUTPUTS")
        .arg(1)
        .arg("x")
        .arg("|>")
        .arg("AI.TENSORGET")
        .arg("x")
        .arg("META");
    let in_dag = time(iters, || {
        let _: redis::Value = dag.query(&mut con).expect("DAGEXECUTE");
    });
    // What storing the output costs by itself: AI.TENSORSET of a tensor of its size.
    let output: Vec<u8> = vec![0; 224 * 224 * 3 * 4];
    let mut set = redis::cmd("AI.TENSORSET");
    set.arg("out2{img}")
        .arg("FLOAT")
        .arg(1)
        .arg(3)
        .arg(224)
        .arg(224)
        .arg("BLOB")
        .arg(&output);
    let write = time(iters, || {
        let _: () = set.query(&mut con).expect("TENSORSET");
    });
    let mut ping = redis::cmd("PING");
    ping.arg("x");
    let floor = time(iters, || {
        let _: String = ping.query(&mut con).expect("PING");
    });

    let after = in_process();
    assert_eq!(out_len, 224 * 224 * 3 * 4);
    let direct = if percentile(&after, 0.5) < percentile(&before, 0.5) {
        after
    } else {
        before
    };
    let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
    println!(
        "224x224x3 UINT8 -> 1x3x224x224 FLOAT normalisation, {iters} iterations, device {device}; \
         one PING: p50 {:.0} µs",
        us(percentile(&floor, 0.5))
    );
    println!("| path | p50 µs | p99 µs | p50 − in-process p50 µs |");
    println!("|---|---|---|---|");
    println!(
        "| in-process (libtorch) | {:.0} | {:.0} | |",
        us(d50),
        us(d99)
    );
    for (name, t) in [
        ("AI.SCRIPTEXECUTE (output stored)", &served),
        (
            "AI.DAGEXECUTE LOAD → SCRIPTEXECUTE → TENSORGET META",
            &in_dag,
        ),
        (
            "AI.TENSORSET of the output's size alone (no script)",
            &write,
        ),
    ] {
        let (p50, p99) = (percentile(t, 0.5), percentile(t, 0.99));
        println!(
            "| {name} | {:.0} | {:.0} | {:+.0} |",
            us(p50),
            us(p99),
            us(p50) - us(d50)
        );
    }
}
