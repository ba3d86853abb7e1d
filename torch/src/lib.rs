//! `libshardai_torch.so`, the TORCH backend: libtorch through `tch` for saved TorchScript
//! modules ([`model`]) and a C++ shim over libtorch's TorchScript compiler for scripts
//! ([`script`]), behind the C interface of `shardai-torch-abi`.
//!
//! The server opens this library on its first TORCH model or script, so libtorch (its
//! library pages and the heap its static initialisers fill) is mapped only in servers that
//! use it. This file owns the exported entry points that are not about models or scripts:
//! the interface version, initialisation, CUDA and the strings handed back.
//!
//! Every entry point returns errors as text and never unwinds: libtorch's errors come back
//! through `tch`'s `f_` functions, the shim catches every C++ exception, and a panic (a `tch`
//! call that panics instead of returning its error) is caught at the entry point ([`guard`])
//! and answered as a failed call, the panic's message going to the server's log (stderr).
#![allow(unsafe_code)]

pub mod model;
pub mod script;

use std::ffi::{CString, c_char};

use shardai_torch_abi as abi;

/// A libtorch error as wire text: its first line (a C++ backtrace follows it), after `ERR `.
fn wire(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("torch error").trim();
    format!("ERR {first}")
}

/// What a call answers when it panicked (the server's text for a backend that panics).
pub(crate) const PANICKED: &str =
    "ERR the backend failed while running the model (see the server log)";

/// Runs `f`, or answers `failed` when it panics: no panic may unwind out of an `extern "C"`
/// function (it would abort the server).
pub(crate) fn guard<T>(failed: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(failed)
}

/// [`guard`] for a fallible call: a panic is an `Err` with [`PANICKED`].
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    guard(Err(PANICKED.into()), f)
}

/// Hands `text` to the caller through `err`, to be freed with [`shai_torch_free_str`].
///
/// # Safety
/// `err` is null or valid for a write.
unsafe fn set_err(err: *mut *mut c_char, text: &str) {
    if err.is_null() {
        return;
    }
    let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the caller's contract.
    unsafe { *err = text.into_raw() };
}

/// The interface version this library implements.
#[unsafe(no_mangle)]
pub extern "C" fn shai_torch_version() -> u32 {
    abi::VERSION
}
const _: abi::VersionFn = shai_torch_version;

/// Sizes libtorch's thread pools and installs the scripts' callbacks (see `abi::InitFn`).
///
/// # Safety
/// The callbacks stay valid for the life of the process.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_init(
    intra_op: i32,
    inter_op: i32,
    execute: abi::ExecuteFn,
    model: abi::ModelFn,
) {
    // libtorch's thread pools are process-wide; the inter-op pool can be sized only before
    // its first use, which is after this.
    // A panic here only leaves libtorch's default pool sizes.
    guard((), || {
        if intra_op > 0 {
            tch::set_num_threads(intra_op);
        }
        if inter_op > 0 {
            tch::set_num_interop_threads(inter_op);
        }
    });
    script::install_callbacks(execute, model);
}
const _: abi::InitFn = shai_torch_init;

/// Opens `libtorch_cuda.so` once, from beside `libtorch_cpu.so` (kept open for the life of
/// the process). Nothing references it, so the linker leaves it out of this library's
/// dependencies: the first GPU model or script opens it here.
fn load_torch_cuda() -> &'static Result<(), String> {
    static CUDA: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    CUDA.get_or_init(|| {
        let dir = abi::mapped_libtorch_dir().ok_or("libtorch_cpu.so is not mapped")?;
        let path = dir.join("libtorch_cuda.so");
        // SAFETY: opening libtorch_cuda runs its static initialisers, which register CUDA
        // hooks with the libtorch_cpu this process already mapped (the one found above, so
        // the two come from the same wheel). The `OnceLock` opens it at most once, and it is
        // never unloaded (`forget` below), so the hooks never point into unmapped code.
        let lib = unsafe {
            libloading::os::unix::Library::open(
                Some(&path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
            )
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        std::mem::forget(lib);
        Ok(())
    })
}

/// How many CUDA devices libtorch sees, opening its CUDA library first (see
/// `abi::CudaDevicesFn`).
///
/// # Safety
/// `why` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_cuda_devices(why: *mut *mut c_char) -> i64 {
    if let Err(e) = load_torch_cuda() {
        // SAFETY: the caller's contract.
        unsafe { set_err(why, e) };
    }
    let count = || {
        if tch::Cuda::is_available() {
            tch::Cuda::device_count()
        } else {
            0
        }
    };
    // A panic counts as no device.
    guard(0, count)
}
const _: abi::CudaDevicesFn = shai_torch_cuda_devices;

/// libtorch's device for the interface's number: -1 the CPU, n CUDA device n.
fn device(n: i32) -> tch::Device {
    if n < 0 {
        tch::Device::Cpu
    } else {
        tch::Device::Cuda(n as usize)
    }
}

/// Frees a string this library handed out.
///
/// # Safety
/// `s` is null or a string from this library, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_free_str(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the caller's contract: it came from `CString::into_raw` in `set_err`.
        drop(unsafe { CString::from_raw(s) });
    }
}
const _: abi::FreeStrFn = shai_torch_free_str;
