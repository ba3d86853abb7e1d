//! TorchScript scripts on libtorch: compiling AI.SCRIPTSTORE's source and calling its
//! functions, and reading a saved module's `forward` parameter names (AI.MODELGET META),
//! through the C++ shim in `csrc/torch_script.cpp` (libtorch's TorchScript compiler and
//! method schemas have no C API, and `tch` does not expose them).
//!
//! This module owns the `unsafe` calls into the shim, each with why it is sound. Inputs are
//! copied into libtorch tensors (a script may write to its inputs, and stored tensors are
//! shared); outputs are copied out. Compiling runs on a blocking thread, calls on the device
//! queues' threads, never on an async worker.
#![allow(unsafe_code)]

use std::{
    ffi::{CStr, CString, c_char, c_void},
    panic::AssertUnwindSafe,
    sync::{Arc, Once},
};

use bytes::Bytes;
use shardai_protocol::Error;

use super::torch::{device, err, from_torch, kind_of};
use crate::{
    script::{ArgKind, Binding, CompiledScript, ScriptHost},
    tensor::Tensor,
};

/// The shim's compiled-script handle.
#[repr(C)]
struct ShaiScript {
    _private: [u8; 0],
}

/// libtorch's `at::Tensor` (the same handle `tch` wraps).
type AtTensor = std::ffi::c_void;

/// `redis.execute`'s callback (see the shim's `ExecuteFn`).
type ExecuteFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    argv: *const *const c_char,
    lens: *const usize,
    argc: usize,
    reply: *mut c_void,
) -> i32;

/// `redisAI.model_execute`'s callback (see the shim's `ModelFn`).
type ModelFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    key: *const c_char,
    key_len: usize,
    inputs: *const *mut AtTensor,
    n_inputs: usize,
    n_outputs: i64,
    outputs: *mut c_void,
    err: *mut c_void,
) -> i32;

unsafe extern "C" {
    fn shai_set_callbacks(execute: ExecuteFn, model: ModelFn);
    fn shai_string_set(s: *mut c_void, data: *const c_char, len: usize);
    fn shai_tensor_push(v: *mut c_void, t: *mut AtTensor);
    fn shai_free_str(s: *mut c_char);
    fn shai_script_compile(
        src: *const c_char,
        len: usize,
        err: *mut *mut c_char,
    ) -> *mut ShaiScript;
    fn shai_script_free(s: *mut ShaiScript);
    fn shai_module_forward(
        data: *const c_char,
        len: usize,
        names: *mut *mut c_char,
        names_len: *mut usize,
        err: *mut *mut c_char,
    ) -> i32;
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
        ctx: *mut c_void,
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

/// The names a saved TorchScript module declares: its `forward` parameters (without `self`)
/// as inputs, and one empty name per tensor `forward` declares it returns (RedisAI's META).
/// Blocking: it loads the module once more, on the CPU.
pub(super) fn module_names(blob: &[u8]) -> Result<(Vec<Bytes>, Vec<Bytes>), String> {
    let (mut names, mut len, mut err) = (std::ptr::null_mut(), 0usize, std::ptr::null_mut());
    // SAFETY: `blob` is valid for its length for the call; the shim writes `names`/`len` or
    // `err` (never both) and catches every C++ exception.
    let outputs = unsafe {
        shai_module_forward(
            blob.as_ptr().cast(),
            blob.len(),
            &mut names,
            &mut len,
            &mut err,
        )
    };
    if outputs < 0 {
        return Err(take_error(err));
    }
    // SAFETY: on success `names` is a malloc'd buffer of `len` bytes, read once here and
    // freed with the shim's matching free.
    let bytes = unsafe { std::slice::from_raw_parts(names.cast::<u8>(), len) }.to_vec();
    // SAFETY: as above; `names` is not used again.
    unsafe { shai_free_str(names) };
    let inputs = bytes
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(Bytes::copy_from_slice)
        .collect();
    Ok((inputs, vec![Bytes::new(); outputs as usize]))
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

/// Sets `text` into the shim's `std::string` at `s`.
///
/// # Safety
/// `s` must be the `std::string*` the shim handed to a callback, for the callback's duration.
unsafe fn set_string(s: *mut c_void, text: &[u8]) {
    // SAFETY: the caller's contract; `text` is valid for `text.len()` bytes (the shim copies).
    unsafe { shai_string_set(s, text.as_ptr().cast(), text.len()) }
}

/// `redis.execute`: the command's arguments to the call's host, its reply back.
///
/// # Safety
/// Called only by the shim, during a call of `shai_script_run` whose `ctx` is a live
/// `*const &dyn ScriptHost` (see `TorchScript::call`), with `argc` arguments of the given
/// lengths and `reply` its `std::string`.
unsafe extern "C" fn execute_cb(
    ctx: *mut c_void,
    argv: *const *const c_char,
    lens: *const usize,
    argc: usize,
    reply: *mut c_void,
) -> i32 {
    let run = AssertUnwindSafe(|| {
        // SAFETY: see the function's contract.
        let host: &dyn ScriptHost = unsafe { *(ctx as *const &dyn ScriptHost) };
        let args: Vec<Bytes> = (0..argc)
            .map(|i| {
                // SAFETY: `argv` and `lens` hold `argc` entries, each a buffer of its length.
                let arg = unsafe {
                    std::slice::from_raw_parts((*argv.add(i)).cast::<u8>(), *lens.add(i))
                };
                Bytes::copy_from_slice(arg)
            })
            .collect();
        host.execute(args)
    });
    match std::panic::catch_unwind(run) {
        Ok(bytes) => {
            // SAFETY: `reply` is the callback's `std::string`.
            unsafe { set_string(reply, &bytes) };
            0
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { set_string(reply, b"the command failed (see the server log)") };
            1
        }
    }
}

/// `redisAI.model_execute`: runs a stored model through the call's host.
///
/// # Safety
/// Called only by the shim, during a call of `shai_script_run` whose `ctx` is a live
/// `*const &dyn ScriptHost`, with `n_inputs` new tensor handles this side takes over,
/// `outputs` the operator's output vector and `err` its error `std::string`.
unsafe extern "C" fn model_cb(
    ctx: *mut c_void,
    key: *const c_char,
    key_len: usize,
    inputs: *const *mut AtTensor,
    n_inputs: usize,
    n_outputs: i64,
    outputs: *mut c_void,
    err_out: *mut c_void,
) -> i32 {
    // Taken over first, so that they are freed whatever happens below.
    let inputs: Vec<tch::Tensor> = (0..n_inputs)
        // SAFETY: `inputs` holds `n_inputs` new handles, each owned from now on by its
        // `tch::Tensor` (which frees it).
        .map(|i| unsafe { tch::Tensor::from_ptr((*inputs.add(i)).cast()) })
        .collect();
    let run = AssertUnwindSafe(|| -> Result<Vec<tch::Tensor>, Error> {
        // SAFETY: see the function's contract.
        let host: &dyn ScriptHost = unsafe { *(ctx as *const &dyn ScriptHost) };
        // SAFETY: `key` is a buffer of `key_len` bytes for the call's duration.
        let key = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) };
        let tensors = inputs
            .iter()
            .map(from_torch)
            .collect::<Result<Vec<_>, _>>()?;
        let outs = host.model_execute(key, tensors, n_outputs.max(0) as usize)?;
        outs.iter()
            .map(|t| {
                let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                tch::Tensor::f_from_data_size(t.data(), &shape, kind_of(t.dtype())?).map_err(err)
            })
            .collect()
    });
    let result = std::panic::catch_unwind(run).unwrap_or_else(|_| {
        Err(Error::Verbatim(
            "the model failed while running (see the server log)".into(),
        ))
    });
    match result {
        Ok(ts) => {
            for mut t in ts {
                let p = t.as_mut_ptr();
                std::mem::forget(t);
                // SAFETY: `outputs` is the operator's vector; the handle `p` is handed over
                // (forgotten here, freed by the shim).
                unsafe { shai_tensor_push(outputs, p.cast()) };
            }
            0
        }
        Err(e) => {
            let text = e.wire_text();
            // SAFETY: `err_out` is the operator's error string.
            unsafe { set_string(err_out, text.as_bytes()) };
            1
        }
    }
}

/// Installs the callbacks once per process.
fn install_callbacks() {
    static ONCE: Once = Once::new();
    // SAFETY: the two functions have the shim's callback types, and stay valid for the life
    // of the process.
    ONCE.call_once(|| unsafe { shai_set_callbacks(execute_cb, model_cb) });
}

/// Compiles `source` for `device` (`CPU`, `GPU`, `GPU:n`). Blocking: a backend call.
pub(super) fn compile(source: &[u8], device_name: &str) -> Result<Arc<dyn CompiledScript>, Error> {
    install_callbacks();
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
        tensors: &[Tensor],
        outputs: bool,
        host: Option<&dyn ScriptHost>,
    ) -> Result<Vec<Tensor>, Error> {
        let n = binding.kinds.len();
        // What the shim reads is what the binding says, parameter by parameter.
        binding.check(tensors.len())?;
        let name = CString::new(function)
            .map_err(|_| Error::Verbatim("ERR function name not specified".into()))?;
        let inputs = tensors
            .iter()
            .map(|t| {
                let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                tch::Tensor::f_from_data_size(t.data(), &shape, kind_of(t.dtype())?).map_err(err)
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
        // The callbacks' context: a pointer to `host` on this stack, for this call only.
        let ctx: *mut c_void = match &host {
            Some(h) => h as *const &dyn ScriptHost as *mut c_void,
            None => std::ptr::null_mut(),
        };
        // SAFETY: `handle` is live; `ctx` points at `host`, which outlives the call (the
        // shim uses it only during the call); every array has the length the shim reads:
        // `kinds`, `tensor_counts` and `str_counts` have `n` entries, and the shim reads, per
        // parameter, one tensor for a Tensor, one string for a scalar and the parameter's
        // count for a list, which `Binding::check` matched against the kinds and against the
        // lengths of `input_ptrs` and `str_ptrs`/`str_lens`; the tensors and strings
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
                ctx,
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
