//! Builds the TorchScript test models with libtorch itself (tch's tracing), so that no Python
//! torch (whose CPU-only build is not on PyPI) is needed.
//!
//! ```sh
//! target/release/make_torch_models OUT_DIR
//! ```
//!
//! Writes `mul.pt` (a*b), `batch_mismatch.pt` (sums the batch
//! away) and `mnist_cnn.pt` (an MNIST-sized CNN with fixed random weights), plus
//! `mnist_cnn.expected` (its output for the input `mnist_cnn.input`, both raw little-endian
//! f32) computed here by libtorch.

use std::path::PathBuf;

use tch::{CModule, Device, Kind, Tensor, nn, nn::Module};

fn main() {
    shardai_tests::exit_on_help(
        "usage: make_torch_models OUT_DIR\n\nWrites the TorchScript test models (mul.pt, batch_mismatch.pt, mnist_cnn.pt, with mnist_cnn.input and mnist_cnn.expected) into OUT_DIR.",
    );
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: make_torch_models OUT_DIR"),
    );
    std::fs::create_dir_all(&out).expect("create OUT_DIR");
    tch::manual_seed(7);
    // Example inputs must be distinct tensors: the tracer maps inputs by identity.
    let a = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
    let b = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
    let save = |m: CModule, name: &str| m.save(out.join(name)).expect("save");

    save(
        CModule::create_by_tracing("Mul", "forward", &[a.shallow_clone(), b], &mut |x| {
            vec![&x[0] * &x[1]]
        })
        .expect("trace mul"),
        "mul.pt",
    );
    // A module with two outputs cannot come from tracing (a traced method returns one value
    // when saved): tests/models/make_torch_two_outputs.py rewrites mul.pt's source instead.
    save(
        CModule::create_by_tracing("BatchMismatch", "forward", &[a.shallow_clone()], &mut |x| {
            vec![x[0].sum_dim_intlist(0, true, Kind::Float)]
        })
        .expect("trace batch mismatch"),
        "batch_mismatch.pt",
    );

    // An MNIST-sized CNN: conv(1→8, 5) → relu → maxpool 2 → conv(8→16, 5) → relu → maxpool 2
    // → linear(256→10).
    let mut vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let c1 = nn::conv2d(&root / "c1", 1, 8, 5, Default::default());
    let c2 = nn::conv2d(&root / "c2", 8, 16, 5, Default::default());
    let fc = nn::linear(&root / "fc", 256, 10, Default::default());
    // Traced weights become constants, which must not require gradients.
    vs.freeze();
    let net = move |x: &Tensor| {
        let x = c1.forward(x).relu().max_pool2d_default(2);
        let x = c2.forward(&x).relu().max_pool2d_default(2);
        fc.forward(&x.flatten(1, -1))
    };
    let input = Tensor::rand([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    let cnn =
        CModule::create_by_tracing("MnistCnn", "forward", &[input.shallow_clone()], &mut |x| {
            vec![net(&x[0])]
        })
        .expect("trace cnn");
    let expected = tch::no_grad(|| cnn.forward_ts(&[input.shallow_clone()]).expect("run cnn"));
    save(cnn, "mnist_cnn.pt");
    let raw = |t: &Tensor| {
        let t = t.contiguous();
        let mut buf = vec![0u8; t.numel() * 4];
        t.copy_data_u8(&mut buf, t.numel());
        buf
    };
    std::fs::write(out.join("mnist_cnn.input"), raw(&input)).expect("write input");
    std::fs::write(out.join("mnist_cnn.expected"), raw(&expected)).expect("write expected");
}
