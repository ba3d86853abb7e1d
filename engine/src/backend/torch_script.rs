//! TorchScript scripts on libtorch: compiling AI.SCRIPTSTORE's source and calling its
//! functions, through the C++ shim in `csrc/torch_script.cpp` (libtorch's TorchScript
//! compiler has no C API, and `tch` does not expose it).
//!
//! This module owns the `unsafe` calls into the shim, each with why it is sound. Inputs are
//! copied into libtorch tensors (a script may write to its inputs, and stored tensors are
//! shared); outputs are copied out. Compiling runs on a blocking thread, calls on the device
//! queues' threads, never on an async worker.
#![allow(unsafe_code)]

use std::{
    ffi::{CStr, CString, c_char},
    sync::Arc,
};

use shardai_protocol::Error;

use super::torch::{device, err, from_torch, kind_of};
use crate::{
    script::{ArgKind, Binding, CompiledScript},
    tensor::Tensor,
};

/// The shim's compiled-script handle.
#[repr(C)]
struct ShaiScript {
    _private: [u8; 0],
}

/// libtorch's `at::Tensor` (the same handle `tch` wraps).
type AtTensor = std::ffi::c_void;

unsafe extern "C" {
    fn shai_free_str(s: *mut c_char);
    fn shai_script_compile(
        src: *const c_char,
        len: usize,
        err: *mut *mut c_char,
    ) -> *mut ShaiScript;
    fn shai_script_free(s: *mut ShaiScript);
    fn shai_script_signature(
        s: *const ShaiScript,
        name: *const c_char,
        kinds: *mut i32,
        max: usize,
    ) -> i64;
    fn shai_script_run(
        s: *const ShaiScript,
        name: *const c_char,
        device: *const c_char,
        kinds: *const i32,
        nargs: usize,
        tensors: *const *const AtTensor,
        tensor_counts: *const usize,
        strs: *const *const c_char,
        str_lens: *const usize,
        str_counts: *const usize,
        want_outputs: i32,
        out: *mut *mut *mut AtTensor,
        n_out: *mut usize,
        err: *mut *mut c_char,
    ) -> i32;
    fn shai_free_tensors(arr: *mut *mut AtTensor);
}

/// Takes the shim's error string (null: a generic text).
fn take_error(p: *mut c_char) -> String {
    if p.is_null() {
        return "the TorchScript compiler failed".into();
    }
    // SAFETY: the shim sets `err` only to a NUL-terminated string it allocated with malloc,
    // which is read once here and freed with the shim's matching free.
    let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: as above; `p` is not used again.
    unsafe { shai_free_str(p) };
    text
}

fn kind_from(k: i32) -> ArgKind {
    match k {
        0 => ArgKind::Tensor,
        1 => ArgKind::TensorList,
        2 => ArgKind::StrList,
        3 => ArgKind::Int,
        4 => ArgKind::Float,
        5 => ArgKind::Str,
        6 => ArgKind::IntList,
        7 => ArgKind::FloatList,
        _ => ArgKind::Other,
    }
}

fn kind_to(k: ArgKind) -> i32 {
    match k {
        ArgKind::Tensor => 0,
        ArgKind::TensorList => 1,
        ArgKind::StrList => 2,
        ArgKind::Int => 3,
        ArgKind::Float => 4,
        ArgKind::Str => 5,
        ArgKind::IntList => 6,
        ArgKind::FloatList => 7,
        ArgKind::Other => 8,
    }
}

/// A script compiled by libtorch.
struct TorchScript {
    handle: *mut ShaiScript,
    /// libtorch's device string (`cpu`, `cuda:0`).
    device: CString,
}

// SAFETY: the handle owns a `torch::jit::CompilationUnit` that is never changed after
// compilation; libtorch allows calling its functions from several threads at once (each call
// has its own interpreter stack), and the handle is freed only in `drop`, when no call can be
// running (they borrow `self`).
unsafe impl Send for TorchScript {}
// SAFETY: see `Send`: calls only read the compilation unit.
unsafe impl Sync for TorchScript {}

impl Drop for TorchScript {
    fn drop(&mut self) {
        // SAFETY: `handle` came from `shai_script_compile`, is non-null and is freed once.
        unsafe { shai_script_free(self.handle) };
    }
}

/// Compiles `source` for `device` (`CPU`, `GPU`, `GPU:n`). Blocking: a backend call.
pub(super) fn compile(source: &[u8], device_name: &str) -> Result<Arc<dyn CompiledScript>, Error> {
    let dev = device(device_name)?;
    let device = CString::new(match dev {
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_string(),
    })
    .map_err(|_| Error::Verbatim("ERR Invalid DEVICE".into()))?;
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `source` is a valid buffer of `source.len()` bytes for the call's duration (the
    // shim copies it); `error` is a valid out-pointer.
    let handle = unsafe { shai_script_compile(source.as_ptr().cast(), source.len(), &mut error) };
    if handle.is_null() {
        return Err(Error::Verbatim(one_line(&take_error(error))));
    }
    Ok(Arc::new(TorchScript { handle, device }))
}

/// libtorch's message on one line, as RedisAI sends it: every line break becomes a space.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

impl CompiledScript for TorchScript {
    fn signature(&self, function: &str) -> Option<Vec<ArgKind>> {
        let name = CString::new(function).ok()?;
        let mut kinds = [0i32; 64];
        // SAFETY: `handle` is live (owned by self); `name` is NUL-terminated; `kinds` has room
        // for `kinds.len()` entries, the most the shim writes.
        let n = unsafe {
            shai_script_signature(self.handle, name.as_ptr(), kinds.as_mut_ptr(), kinds.len())
        };
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n > kinds.len() {
            return Some(vec![ArgKind::Other; n]);
        }
        Some(kinds[..n].iter().map(|&k| kind_from(k)).collect())
    }

    fn call(
        &self,
        function: &str,
        binding: &Binding,
        tensors: &[Arc<Tensor>],
        outputs: bool,
    ) -> Result<Vec<Tensor>, Error> {
        let n = binding.kinds.len();
        let wanted: usize = binding.tensor_counts.iter().sum();
        let strings: usize = binding.str_counts.iter().sum();
        if binding.tensor_counts.len() != n
            || binding.str_counts.len() != n
            || wanted != tensors.len()
            || strings != binding.strs.len()
        {
            return Err(Error::Verbatim(
                "Wrong number of inputs provided to AI.SCRIPTEXECUTE command".into(),
            ));
        }
        let name = CString::new(function)
            .map_err(|_| Error::Verbatim("ERR function name not specified".into()))?;
        let inputs = tensors
            .iter()
            .map(|t| {
                let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                tch::Tensor::f_from_data_size(t.blob(), &shape, kind_of(t.dtype())?).map_err(err)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let input_ptrs: Vec<*const AtTensor> = inputs
            .iter()
            .map(|t| t.as_ptr().cast::<AtTensor>())
            .collect();
        let kinds: Vec<i32> = binding.kinds.iter().map(|&k| kind_to(k)).collect();
        let str_ptrs: Vec<*const c_char> = binding.strs.iter().map(|s| s.as_ptr().cast()).collect();
        let str_lens: Vec<usize> = binding.strs.iter().map(|s| s.len()).collect();
        let mut out: *mut *mut AtTensor = std::ptr::null_mut();
        let mut n_out = 0usize;
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: `handle` is live; every array has the length the shim reads (`kinds`,
        // `tensor_counts` and `str_counts` have `n` entries, checked above; the shim reads
        // `sum(tensor_counts)` tensors and `sum(str_counts)` strings, which are the lengths of
        // `input_ptrs` and `str_ptrs`/`str_lens`, checked above); the tensors and strings
        // they point to outlive the call (`inputs`, `binding`); the out-pointers are valid.
        let rc = unsafe {
            shai_script_run(
                self.handle,
                name.as_ptr(),
                self.device.as_ptr(),
                kinds.as_ptr(),
                n,
                input_ptrs.as_ptr(),
                binding.tensor_counts.as_ptr(),
                str_ptrs.as_ptr(),
                str_lens.as_ptr(),
                binding.str_counts.as_ptr(),
                i32::from(outputs),
                &mut out,
                &mut n_out,
                &mut error,
            )
        };
        match rc {
            0 => {}
            2 => {
                return Err(Error::Verbatim(format!(
                    "Function returned non-tensor values{function}"
                )));
            }
            _ => return Err(Error::Verbatim(one_line(&take_error(error)))),
        }
        if out.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: on success the shim set `out` to a malloc'd array of `n_out` handles, each a
        // new `at::Tensor` this side now owns: `from_ptr` takes each one over (tch frees it),
        // and the array itself is freed once with the shim's matching free.
        let outputs: Vec<tch::Tensor> = unsafe {
            let handles = std::slice::from_raw_parts(out, n_out);
            let ts = handles
                .iter()
                .map(|&p| tch::Tensor::from_ptr(p.cast()))
                .collect();
            shai_free_tensors(out);
            ts
        };
        outputs.iter().map(from_torch).collect()
    }
}
