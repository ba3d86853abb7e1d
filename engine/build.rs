//! Builds the TorchScript script shim (`csrc/torch_script.cpp`) when the `torch` feature is
//! on, against the libtorch that `tch` links (the `LIBTORCH` folder, set for the workspace in
//! `.cargo/config.toml`), and ONNX Runtime's memory-limited allocator
//! (`csrc/onnx_allocator.cpp`) when the `onnx` feature is on.

fn main() {
    println!("cargo:rerun-if-changed=csrc/torch_script.cpp");
    println!("cargo:rerun-if-changed=csrc/onnx_allocator.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_ONNX").is_some() {
        // Plain C++: ONNX Runtime is opened at run time, its allocator struct is mirrored.
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            .file("csrc/onnx_allocator.cpp")
            .compile("shardai_onnx_allocator");
    }
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        panic!("the torch feature needs LIBTORCH (the torch wheel's folder): run scripts/setup");
    };
    let include = libtorch.join("include");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/torch_script.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("shardai_torch_script");
    // The shim's symbols are in libtorch_cpu / libc10, which `tch` already links.
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!(
        "cargo:rustc-link-search=native={}",
        libtorch.join("lib").display()
    );
}
