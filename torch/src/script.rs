//! TorchScript scripts through the C++ shim in `csrc/torch_script.cpp` (libtorch's
//! TorchScript compiler and method schemas have no C API, and `tch` does not expose them):
//! compiling AI.SCRIPTSTORE's source, describing and calling its functions, reading a saved
//! module's `forward` names, and relaying the scripts' `redis.execute` and
//! `redisAI.model_execute` to the server's callbacks.
//!
//! Inputs are copied into libtorch tensors (a script may write to its inputs, and stored
//! tensors are shared); outputs are lent to the caller's sink, which copies them.

use std::{
    ffi::{CStr, c_char, c_void},
    sync::OnceLock,
};

use shardai_torch_abi::{self as abi, TensorView};

use crate::{
    device,
    model::{copied, hand_out},
    set_err,
};

/// The shim's compiled-script handle.
#[repr(C)]
struct ShaiScript {
    _private: [u8; 0],
}

/// libtorch's `at::Tensor` (the same handle `tch` wraps).
type AtTensor = c_void;

/// The shim's `redis.execute` callback.
type ShimExecuteFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    argv: *const *const c_char,
    lens: *const usize,
    argc: usize,
    reply: *mut c_void,
) -> i32;

/// The shim's `redisAI.model_execute` callback.
type ShimModelFn = unsafe extern "C" fn(
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
    fn shai_set_callbacks(execute: ShimExecuteFn, model: ShimModelFn);
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

/// The server's callbacks, installed once by `shai_torch_init`.
static CALLBACKS: OnceLock<(abi::ExecuteFn, abi::ModelFn)> = OnceLock::new();

/// Installs the server's callbacks and this library's relays into the shim, once.
pub(crate) fn install_callbacks(execute: abi::ExecuteFn, model: abi::ModelFn) {
    if CALLBACKS.set((execute, model)).is_ok() {
        // SAFETY: the two relays have the shim's callback types and live as long as this
        // library, which the server never unloads.
        unsafe { shai_set_callbacks(relay_execute, relay_model) };
    }
}

/// Moves a shim string (malloc'd, NUL-terminated) into the caller's `err` (or a generic
/// text when the shim gave none).
///
/// # Safety
/// `p` is null or a string from the shim, not used again; `err` as for [`set_err`].
unsafe fn pass_error(p: *mut c_char, err: *mut *mut c_char) {
    let text = if p.is_null() {
        "the TorchScript compiler failed".to_string()
    } else {
        // SAFETY: the caller's contract; the shim's string is freed with the shim's free.
        unsafe {
            let text = CStr::from_ptr(p).to_string_lossy().into_owned();
            shai_free_str(p);
            text
        }
    };
    // SAFETY: the caller's contract.
    unsafe { set_err(err, &text) };
}

/// Writes text into a shim `std::string` (the [`abi::SetText`] the server's callbacks get).
unsafe extern "C" fn set_string(target: *mut c_void, data: *const c_char, len: usize) {
    // SAFETY: the server calls this only with the `std::string*` it was handed by a relay
    // below, during that relay, and `len` bytes at `data` (the shim copies).
    unsafe { shai_string_set(target, data, len) }
}

/// The shim's `redis.execute`, relayed to the server's.
///
/// # Safety
/// Called only by the shim during `shai_script_run` (see its `ExecuteFn`).
unsafe extern "C" fn relay_execute(
    ctx: *mut c_void,
    argv: *const *const c_char,
    lens: *const usize,
    argc: usize,
    reply: *mut c_void,
) -> i32 {
    let Some((execute, _)) = CALLBACKS.get() else {
        return 1;
    };
    // SAFETY: the shim's arguments are passed on as they came; `set_string` writes into
    // `reply`, the shim's string.
    unsafe { execute(ctx, argv, lens, argc, reply, set_string) }
}

/// Takes one output of the server's model callback: a new libtorch tensor (a copy) for the
/// shim's operator.
unsafe extern "C" fn push_tensor(outputs: *mut c_void, view: *const TensorView) -> i32 {
    // SAFETY: the server calls this only during a relayed model call, with `outputs` the
    // vector the shim handed the relay and a view of valid memory.
    match crate::guarded(|| unsafe { copied(&*view) }) {
        Ok(mut t) => {
            let p = t.as_mut_ptr();
            std::mem::forget(t);
            // SAFETY: the handle `p` is handed over (forgotten here, freed by the shim).
            unsafe { shai_tensor_push(outputs, p.cast()) };
            0
        }
        Err(_) => 1,
    }
}

/// An input lent to the server's model callback: the tensor (on the CPU, contiguous), its
/// shape, its interface type code and its length in bytes.
type Lent = (tch::Tensor, Vec<i64>, i32, usize);

/// The shim's `redisAI.model_execute`, relayed to the server's: the inputs are lent as
/// views, the outputs come back through [`push_tensor`].
///
/// # Safety
/// Called only by the shim during `shai_script_run` (see its `ModelFn`), with `n_inputs` new
/// tensor handles this side takes over.
unsafe extern "C" fn relay_model(
    ctx: *mut c_void,
    key: *const c_char,
    key_len: usize,
    inputs: *const *mut AtTensor,
    n_inputs: usize,
    n_outputs: i64,
    outputs: *mut c_void,
    err: *mut c_void,
) -> i32 {
    // Taken over first, so that they are freed whatever happens below.
    let inputs: Vec<tch::Tensor> = (0..n_inputs)
        // SAFETY: `inputs` holds `n_inputs` new handles, each owned from now on by its
        // `tch::Tensor` (which frees it).
        .map(|i| unsafe { tch::Tensor::from_ptr((*inputs.add(i)).cast()) })
        .collect();
    let fail = |text: &str| {
        // SAFETY: `err` is the operator's error string.
        unsafe { shai_string_set(err, text.as_ptr().cast(), text.len()) };
        1
    };
    let Some((_, model)) = CALLBACKS.get() else {
        return fail("the server installed no callbacks");
    };
    // Each input on the CPU and contiguous, kept alive while its view is lent.
    let lend = || -> Result<Vec<Lent>, String> {
        let mut held = Vec::with_capacity(inputs.len());
        for t in &inputs {
            let t = t
                .f_to_device(tch::Device::Cpu)
                .and_then(|t| t.f_contiguous())
                .map_err(crate::wire)?;
            let kind = t.f_kind().map_err(crate::wire)?;
            let dtype = super::model::code_of(kind)?;
            let shape = t.size();
            if shape.contains(&0) {
                return Err("ERR model produced an empty tensor".into());
            }
            let len = t.numel() * kind.elt_size_in_bytes();
            held.push((t, shape, dtype, len));
        }
        Ok(held)
    };
    let held = match crate::guarded(lend) {
        Ok(held) => held,
        Err(e) => return fail(&e),
    };
    let views: Vec<TensorView> = held
        .iter()
        .map(|(t, shape, dtype, len)| TensorView {
            dtype: *dtype,
            ndim: shape.len(),
            shape: shape.as_ptr(),
            data: t.data_ptr().cast::<u8>().cast_const(),
            len: *len,
        })
        .collect();
    // SAFETY: the views point into `held`, alive for the call; `outputs` and
    // `err` are the shim's, handed to `push_tensor` and `set_string`, which expect them.
    unsafe {
        model(
            ctx,
            key,
            key_len,
            views.as_ptr(),
            views.len(),
            n_outputs,
            outputs,
            push_tensor,
            err,
            set_string,
        )
    }
}

/// A saved module's `forward` names (see `abi::ModuleNamesFn`).
///
/// # Safety
/// `blob` holds `len` bytes; `set` may be called with `names`; `err` is null or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_module_names(
    blob: *const u8,
    len: usize,
    names: *mut c_void,
    set: abi::SetText,
    err: *mut *mut c_char,
) -> i32 {
    let (mut buf, mut buf_len, mut error) = (std::ptr::null_mut(), 0usize, std::ptr::null_mut());
    // SAFETY: `blob` is valid for its length for the call; the shim writes `buf`/`buf_len`
    // or `error` (never both) and catches every C++ exception.
    let outputs =
        unsafe { shai_module_forward(blob.cast(), len, &mut buf, &mut buf_len, &mut error) };
    if outputs < 0 {
        // SAFETY: `error` is the shim's; the caller's contract covers `err`.
        unsafe { pass_error(error, err) };
        return -1;
    }
    // SAFETY: on success `buf` is a malloc'd buffer of `buf_len` bytes, handed to `set`
    // (which copies) and then freed once with the shim's free.
    unsafe {
        set(names, buf, buf_len);
        shai_free_str(buf);
    }
    outputs
}
const _: abi::ModuleNamesFn = shai_torch_module_names;

/// Compiles a script (see `abi::ScriptCompileFn`).
///
/// # Safety
/// `src` holds `len` bytes; `err` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_script_compile(
    src: *const c_char,
    len: usize,
    err: *mut *mut c_char,
) -> *mut c_void {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `src` is a valid buffer of `len` bytes for the call (the shim copies it);
    // `error` is a valid out-pointer.
    let handle = unsafe { shai_script_compile(src, len, &mut error) };
    if handle.is_null() {
        // SAFETY: `error` is the shim's; the caller's contract covers `err`.
        unsafe { pass_error(error, err) };
    }
    handle.cast()
}
const _: abi::ScriptCompileFn = shai_torch_script_compile;

/// Frees a compiled script.
///
/// # Safety
/// `script` came from [`shai_torch_script_compile`], is freed once and no call uses it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_script_free(script: *mut c_void) {
    if !script.is_null() {
        // SAFETY: the caller's contract.
        unsafe { shai_script_free(script.cast()) };
    }
}
const _: abi::FreeFn = shai_torch_script_free;

/// A script function's parameter kinds (see `abi::ScriptSignatureFn`).
///
/// # Safety
/// `script` is a live handle; `name` is NUL-terminated; `kinds` has room for `max` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_script_signature(
    script: *const c_void,
    name: *const c_char,
    kinds: *mut i32,
    max: usize,
) -> i64 {
    // SAFETY: the caller's contract is the shim's.
    unsafe { shai_script_signature(script.cast(), name, kinds, max) }
}
const _: abi::ScriptSignatureFn = shai_torch_script_signature;

/// Calls a script function (see `abi::ScriptRunFn`).
///
/// # Safety
/// As `abi::ScriptRunFn` says: every array has the length the kinds and counts imply, every
/// view and string is valid for the call, `ctx` is what the server's callbacks expect,
/// `sink` may be called with `sink_ctx`, `err` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_script_run(
    script: *const c_void,
    name: *const c_char,
    dev: i32,
    kinds: *const i32,
    nargs: usize,
    tensors: *const TensorView,
    tensor_counts: *const usize,
    strs: *const *const c_char,
    str_lens: *const usize,
    str_counts: *const usize,
    want_outputs: i32,
    ctx: *mut c_void,
    sink: abi::Sink,
    sink_ctx: *mut c_void,
    err: *mut *mut c_char,
) -> i32 {
    // How many tensors the parameters take, as the shim reads them.
    let mut n_tensors = 0usize;
    for a in 0..nargs {
        // SAFETY: `kinds` and `tensor_counts` hold `nargs` entries.
        let (k, count) = unsafe { (*kinds.add(a), *tensor_counts.add(a)) };
        n_tensors += match k {
            abi::kind::TENSOR => 1,
            abi::kind::TENSOR_LIST => count,
            _ => 0,
        };
    }
    let mut inputs = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        // SAFETY: `tensors` holds one view per tensor the parameters take (the caller's
        // contract), each of valid memory.
        match crate::guarded(|| unsafe { copied(&*tensors.add(i)) }) {
            Ok(t) => inputs.push(t),
            Err(e) => {
                // SAFETY: the caller's contract.
                unsafe { set_err(err, &e) };
                return 1;
            }
        }
    }
    let input_ptrs: Vec<*const AtTensor> = inputs
        .iter()
        .map(|t| t.as_ptr().cast::<AtTensor>())
        .collect();
    let device = match device(dev) {
        tch::Device::Cuda(n) => format!("cuda:{n}\0"),
        _ => "cpu\0".to_string(),
    };
    let mut out: *mut *mut AtTensor = std::ptr::null_mut();
    let mut n_out = 0usize;
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `script` is live; `input_ptrs` holds the tensors the parameters take, alive
    // (`inputs`) for the call; every other array is the caller's, of the lengths the shim
    // reads (the caller's contract); `device` is NUL-terminated; the out-pointers are valid.
    let rc = unsafe {
        shai_script_run(
            script.cast(),
            name,
            device.as_ptr().cast(),
            kinds,
            nargs,
            input_ptrs.as_ptr(),
            tensor_counts,
            strs,
            str_lens,
            str_counts,
            want_outputs,
            ctx,
            &mut out,
            &mut n_out,
            &mut error,
        )
    };
    match rc {
        0 => {}
        2 => return 2,
        _ => {
            // SAFETY: `error` is the shim's; the caller's contract covers `err`.
            unsafe { pass_error(error, err) };
            return 1;
        }
    }
    if out.is_null() {
        return 0;
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
    for t in &outputs {
        // SAFETY: the caller's contract covers `sink` and `sink_ctx`.
        match crate::guarded(|| unsafe { hand_out(t, sink, sink_ctx) }) {
            Ok(true) => {}
            Ok(false) => return 3,
            Err(e) => {
                // SAFETY: the caller's contract.
                unsafe { set_err(err, &e) };
                return 1;
            }
        }
    }
    0
}
const _: abi::ScriptRunFn = shai_torch_script_run;
