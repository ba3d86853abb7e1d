//! Builds ONNX Runtime's memory-limited allocator (`csrc/onnx_allocator.cpp`) when the
//! `onnx` feature is on.

fn main() {
    println!("cargo:rerun-if-changed=csrc/onnx_allocator.cpp");
    if std::env::var_os("CARGO_FEATURE_ONNX").is_some() {
        // Plain C++: ONNX Runtime is opened at run time, its allocator struct is mirrored.
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            .file("csrc/onnx_allocator.cpp")
            .compile("shardai_onnx_allocator");
    }
}
