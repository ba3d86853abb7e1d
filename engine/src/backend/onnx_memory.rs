//! BACKEND_MEMORY_LIMIT for ONNX Runtime: the allocator of `csrc/onnx_allocator.cpp`,
//! registered in ONNX Runtime's environment when the library loads, serves every session's
//! CPU memory, counts what ONNX Runtime holds and refuses an allocation past the limit with
//! RedisAI's `Onnxruntime memory limit exceeded, memory allocation failed.` (as the reason a
//! model cannot be stored or a run fails). The limit is in decimal MB, as RedisAI's.
// The allocator is C++ (only C++ can fail an allocation inside ONNX Runtime), called
// through FFI; ONNX Runtime's raw API registers it.
#![allow(unsafe_code)]

/// Bytes in one MB of BACKEND_MEMORY_LIMIT.
const MB: u64 = 1_000_000;

#[cfg(feature = "onnx")]
mod native {
    unsafe extern "C" {
        pub(super) fn shai_onnx_allocator_new(
            memory_info: *const std::ffi::c_void,
        ) -> *mut std::ffi::c_void;
        pub(super) fn shai_onnx_set_limit(bytes: u64);
        pub(super) fn shai_onnx_memory_in_use() -> u64;
        pub(super) fn shai_onnx_memory_accesses() -> u64;
    }
}

/// Sets BACKEND_MEMORY_LIMIT (MB; 0: none). It applies to the next allocation, also of
/// models already loaded.
pub fn set_limit_mb(mb: u64) {
    #[cfg(feature = "onnx")]
    // SAFETY: stores an atomic.
    unsafe {
        native::shai_onnx_set_limit(mb.saturating_mul(MB))
    };
    #[cfg(not(feature = "onnx"))]
    let _ = mb.saturating_mul(MB);
}

/// Bytes ONNX Runtime holds now (`ai_onnxruntime_memory`).
pub fn in_use() -> u64 {
    #[cfg(feature = "onnx")]
    // SAFETY: reads an atomic.
    return unsafe { native::shai_onnx_memory_in_use() };
    #[cfg(not(feature = "onnx"))]
    0
}

/// Allocations and frees so far (`ai_onnxruntime_memory_access_num`).
pub fn accesses() -> u64 {
    #[cfg(feature = "onnx")]
    // SAFETY: reads an atomic.
    return unsafe { native::shai_onnx_memory_accesses() };
    #[cfg(not(feature = "onnx"))]
    0
}

/// Registers the counting allocator in `env` for the CPU.
#[cfg(feature = "onnx")]
pub(super) fn register(env: &ort::environment::Environment) -> Result<(), String> {
    use ort::AsPointer;
    let api = ort::api();
    let mut info: *mut ort::sys::OrtMemoryInfo = std::ptr::null_mut();
    let status_text = |s: ort::sys::OrtStatusPtr| -> Option<String> {
        if s.0.is_null() {
            return None;
        }
        // SAFETY: a non-null status from the API; read, then released once.
        unsafe {
            let msg = (api.GetErrorMessage)(s.0);
            let text = std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned();
            (api.ReleaseStatus)(s.0);
            Some(text)
        }
    };
    // SAFETY: `info` is an out-pointer the call fills.
    let s = unsafe {
        (api.CreateCpuMemoryInfo)(
            ort::sys::OrtAllocatorType::OrtDeviceAllocator,
            ort::sys::OrtMemType::OrtMemTypeDefault,
            &mut info,
        )
    };
    if let Some(e) = status_text(s) {
        return Err(format!("ONNX Runtime memory info: {e}"));
    }
    // The memory info and the allocator live as long as the process: the environment keeps
    // the allocator, and sessions ask it for the memory info.
    // SAFETY: `info` is valid; the allocator only stores it.
    let allocator = unsafe { native::shai_onnx_allocator_new(info.cast()) };
    // SAFETY: the environment pointer is live while `env` is; the allocator is never freed.
    let s = unsafe { (api.RegisterAllocator)(env.ptr().cast_mut(), allocator.cast()) };
    match status_text(s) {
        Some(e) => Err(format!("ONNX Runtime allocator: {e}")),
        None => Ok(()),
    }
}
