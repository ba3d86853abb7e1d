//! The C interface between the server and `libshardai_torch.so`, the TORCH backend library
//! (crate `shardai-torch`): the types of the functions that library exports and of the
//! callbacks it calls, the tensor view both sides pass, the interface version, and where
//! libtorch is mapped ([`mapped_libtorch_dir`]).
//!
//! libtorch is loaded with that library, on the first TORCH model or script, so a server
//! that never runs one does not map libtorch at all. Only C types cross: tensors as
//! [`TensorView`]s over memory the caller keeps alive for the call, strings as pointer and
//! length, errors as NUL-terminated strings the library allocates and frees
//! ([`FreeStrFn`]). Outputs are handed to a [`Sink`], which copies them.
//!
//! Every change that alters a type here or what a function means bumps [`VERSION`]; the
//! server refuses a library of another version (its log says which).

use std::ffi::{c_char, c_void};

/// The interface version a library answers from `shai_torch_version` ([`VersionFn`]).
pub const VERSION: u32 = 1;

/// The folder of the `libtorch_cpu.so` this process mapped (read from /proc/self/maps), or
/// `None` while libtorch is not loaded. Both sides use it: the library to open
/// `libtorch_cuda.so` beside it, the server to read the wheel's version.
pub fn mapped_libtorch_dir() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
}

/// Element types, numbered for the interface.
pub mod dtype {
    /// 32-bit float.
    pub const FLOAT: i32 = 0;
    /// 64-bit float.
    pub const DOUBLE: i32 = 1;
    /// Signed 8-bit integer.
    pub const INT8: i32 = 2;
    /// Signed 16-bit integer.
    pub const INT16: i32 = 3;
    /// Signed 32-bit integer.
    pub const INT32: i32 = 4;
    /// Signed 64-bit integer.
    pub const INT64: i32 = 5;
    /// Unsigned 8-bit integer.
    pub const UINT8: i32 = 6;
    /// Boolean, one byte each.
    pub const BOOL: i32 = 7;
}

/// A dense row-major tensor lent for the duration of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TensorView {
    /// One of [`dtype`]'s codes.
    pub dtype: i32,
    /// Number of dimensions.
    pub ndim: usize,
    /// `ndim` dimensions.
    pub shape: *const i64,
    /// The elements, `len` bytes.
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
}

/// Takes one output tensor (copying it: the view is valid only during the call). Returns 0,
/// or non-zero when it could not take it, which stops the call.
pub type Sink = unsafe extern "C" fn(ctx: *mut c_void, tensor: *const TensorView) -> i32;

/// Writes `len` bytes at `data` into the text `target` (a reply or an error message).
pub type SetText = unsafe extern "C" fn(target: *mut c_void, data: *const c_char, len: usize);

/// A script's `redis.execute`: runs the command `argv` (`argc` arguments of `lens` bytes) for
/// the call whose context is `ctx`, writes its RESP2 reply into `reply` with `set`. Returns 0,
/// or 1 when the command could not run at all (`reply` then says why).
pub type ExecuteFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    argv: *const *const c_char,
    lens: *const usize,
    argc: usize,
    reply: *mut c_void,
    set: SetText,
) -> i32;

/// A script's `redisAI.model_execute`: runs the model at `key` on `n_inputs` tensors for the
/// call whose context is `ctx`, expecting `n_outputs` outputs, each handed to
/// `push(outputs, ..)`. Returns 0, or 1 with the error written into `err` with `set_err`.
pub type ModelFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    key: *const c_char,
    key_len: usize,
    inputs: *const TensorView,
    n_inputs: usize,
    n_outputs: i64,
    outputs: *mut c_void,
    push: Sink,
    err: *mut c_void,
    set_err: SetText,
) -> i32;

/// `shai_torch_version`: the interface version the library implements.
pub type VersionFn = unsafe extern "C" fn() -> u32;
/// `shai_torch_init`: sizes libtorch's thread pools (0: libtorch's default) and installs the
/// scripts' callbacks. Called once, before any other function but the version.
pub type InitFn =
    unsafe extern "C" fn(intra_op: i32, inter_op: i32, execute: ExecuteFn, model: ModelFn);
/// `shai_torch_cuda_devices`: opens libtorch's CUDA library (once) and returns how many CUDA
/// devices libtorch sees; sets `why` when the library could not be opened.
pub type CudaDevicesFn = unsafe extern "C" fn(why: *mut *mut c_char) -> i64;
/// `shai_torch_model_load`: loads a saved TorchScript module onto `device` (-1: the CPU, n:
/// CUDA device n). Null on failure, with `err` set.
pub type ModelLoadFn = unsafe extern "C" fn(
    blob: *const u8,
    len: usize,
    device: i32,
    err: *mut *mut c_char,
) -> *mut c_void;
/// `shai_torch_model_run`: runs a loaded module's `forward` on `n` inputs, handing each
/// output tensor to `sink(sink_ctx, ..)` in order. Returns 0; 1 with `err` set; 2 when the
/// sink stopped the call.
pub type ModelRunFn = unsafe extern "C" fn(
    model: *const c_void,
    inputs: *const TensorView,
    n: usize,
    sink: Sink,
    sink_ctx: *mut c_void,
    err: *mut *mut c_char,
) -> i32;
/// `shai_torch_model_free` / `shai_torch_script_free`: frees a handle.
pub type FreeFn = unsafe extern "C" fn(handle: *mut c_void);
/// `shai_torch_module_names`: a saved module's `forward` parameter names, each followed by a
/// NUL, written into `names` with `set`; returns how many tensors `forward` declares it
/// returns, or -1 with `err` set.
pub type ModuleNamesFn = unsafe extern "C" fn(
    blob: *const u8,
    len: usize,
    names: *mut c_void,
    set: SetText,
    err: *mut *mut c_char,
) -> i32;
/// `shai_torch_script_compile`: compiles TorchScript source. Null on failure, with `err` set.
pub type ScriptCompileFn =
    unsafe extern "C" fn(src: *const c_char, len: usize, err: *mut *mut c_char) -> *mut c_void;
/// `shai_torch_script_signature`: writes the parameter kinds of function `name` (at most
/// `max`) and returns how many parameters it has, or -1 when there is no such function.
pub type ScriptSignatureFn = unsafe extern "C" fn(
    script: *const c_void,
    name: *const c_char,
    kinds: *mut i32,
    max: usize,
) -> i64;
/// `shai_torch_script_run`: calls function `name` of a script on `device` (as for
/// [`ModelLoadFn`]) with `nargs` parameters of `kinds`: per parameter one tensor of `tensors`
/// for a tensor, one string of `strs` for a scalar, and the parameter's count of
/// `tensor_counts` / `str_counts` for a list. `ctx` is handed to the callbacks made during the
/// call. With `want_outputs`, the tensors it returns go to `sink(sink_ctx, ..)`. Returns 0;
/// 1 with `err` set; 2 when the function returned something other than tensors; 3 when the
/// sink stopped the call.
pub type ScriptRunFn = unsafe extern "C" fn(
    script: *const c_void,
    name: *const c_char,
    device: i32,
    kinds: *const i32,
    nargs: usize,
    tensors: *const TensorView,
    tensor_counts: *const usize,
    strs: *const *const c_char,
    str_lens: *const usize,
    str_counts: *const usize,
    want_outputs: i32,
    ctx: *mut c_void,
    sink: Sink,
    sink_ctx: *mut c_void,
    err: *mut *mut c_char,
) -> i32;
/// `shai_torch_free_str`: frees a string the library returned.
pub type FreeStrFn = unsafe extern "C" fn(s: *mut c_char);

/// Kinds of a script function's parameters ([`ScriptSignatureFn`], [`ScriptRunFn`]).
pub mod kind {
    /// A tensor.
    pub const TENSOR: i32 = 0;
    /// A list of tensors.
    pub const TENSOR_LIST: i32 = 1;
    /// A list of strings.
    pub const STR_LIST: i32 = 2;
    /// An integer.
    pub const INT: i32 = 3;
    /// A float.
    pub const FLOAT: i32 = 4;
    /// A string.
    pub const STR: i32 = 5;
    /// A list of integers.
    pub const INT_LIST: i32 = 6;
    /// A list of floats.
    pub const FLOAT_LIST: i32 = 7;
    /// Anything else (a call cannot bind it).
    pub const OTHER: i32 = 8;
}
