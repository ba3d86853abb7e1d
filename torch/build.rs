//! Builds the TorchScript shim (`csrc/torch_script.cpp`) against the libtorch that `tch`
//! links (the `LIBTORCH` folder, set for the workspace in `.cargo/config.toml`).

fn main() {
    println!("cargo:rerun-if-changed=csrc/torch_script.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        panic!("the TORCH backend needs LIBTORCH (the torch wheel's folder): run scripts/setup");
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
