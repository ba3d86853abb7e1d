//! TorchScript scripts through the TORCH library (see `torch`): compiling AI.SCRIPTSTORE's
//! source, describing and calling its functions, reading a saved module's `forward`
//! parameter names (AI.MODELGET META), and the two callbacks scripts reach the server with
//! (`redis.execute`, `redisAI.model_execute`).
//!
//! This module owns the `unsafe` calls into the library for scripts and the callbacks'
//! `unsafe` reads of what the library passes, each with why it is sound. Compiling runs on
//! a blocking thread, calls on the device queues' threads, never on an async worker.
#![allow(unsafe_code)]

use std::{
    ffi::{CString, c_char, c_void},
    panic::AssertUnwindSafe,
    sync::Arc,
};

use bytes::Bytes;
use shardai_protocol::Error;
use shardai_torch_abi::{self as abi, TensorView, kind};

use super::torch::{Api, Collected, api, collect, from_view, shapes, views};
use crate::{
    script::{ArgKind, Binding, CompiledScript, ScriptHost},
    tensor::Tensor,
};

/// Appends `len` bytes at `data` to the `Vec<u8>` at `target` (an [`abi::SetText`]).
///
/// # Safety
/// `target` is a live `*mut Vec<u8>`; `data` holds `len` bytes.
unsafe extern "C" fn append(target: *mut c_void, data: *const c_char, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the function's contract.
    unsafe {
        (*target.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(data.cast(), len))
    };
}

/// The names a saved TorchScript module declares: its `forward` parameters (without `self`)
/// as inputs, and one empty name per tensor `forward` declares it returns (RedisAI's META).
/// Blocking: it loads the module once more, on the CPU.
pub(super) fn module_names(api: &Api, blob: &[u8]) -> Result<(Vec<Bytes>, Vec<Bytes>), String> {
    let mut names: Vec<u8> = Vec::new();
    let mut err = std::ptr::null_mut();
    // SAFETY: `blob` is valid for its length for the call; `append` gets `names`, a live
    // `Vec<u8>`; `err` is a valid out-pointer.
    let outputs = unsafe {
        (api.module_names)(
            blob.as_ptr(),
            blob.len(),
            (&mut names as *mut Vec<u8>).cast(),
            append,
            &mut err,
        )
    };
    if outputs < 0 {
        // SAFETY: set by the failed call, taken once.
        return Err(unsafe { api.take_str(err, "the module could not be read") });
    }
    let inputs = names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(Bytes::copy_from_slice)
        .collect();
    Ok((inputs, vec![Bytes::new(); outputs as usize]))
}

fn kind_from(k: i32) -> ArgKind {
    match k {
        kind::TENSOR => ArgKind::Tensor,
        kind::TENSOR_LIST => ArgKind::TensorList,
        kind::STR_LIST => ArgKind::StrList,
        kind::INT => ArgKind::Int,
        kind::FLOAT => ArgKind::Float,
        kind::STR => ArgKind::Str,
        kind::INT_LIST => ArgKind::IntList,
        kind::FLOAT_LIST => ArgKind::FloatList,
        _ => ArgKind::Other,
    }
}

fn kind_to(k: ArgKind) -> i32 {
    match k {
        ArgKind::Tensor => kind::TENSOR,
        ArgKind::TensorList => kind::TENSOR_LIST,
        ArgKind::StrList => kind::STR_LIST,
        ArgKind::Int => kind::INT,
        ArgKind::Float => kind::FLOAT,
        ArgKind::Str => kind::STR,
        ArgKind::IntList => kind::INT_LIST,
        ArgKind::FloatList => kind::FLOAT_LIST,
        ArgKind::Other => kind::OTHER,
    }
}

/// A script compiled by libtorch.
struct TorchScript {
    api: Arc<Api>,
    handle: *mut c_void,
    /// The interface's device number (-1: the CPU).
    device: i32,
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
        // SAFETY: `handle` came from `script_compile`, is non-null and is freed once.
        unsafe { (self.api.script_free)(self.handle) };
    }
}

/// `redis.execute`: the command's arguments to the call's host, its reply back.
///
/// # Safety
/// Called only by the TORCH library, during a `script_run` whose `ctx` is a live
/// `*const &dyn ScriptHost` (see `TorchScript::call`), with `argc` arguments of the given
/// lengths and `reply` a text `set` writes.
pub(super) unsafe extern "C" fn execute_cb(
    ctx: *mut c_void,
    argv: *const *const c_char,
    lens: *const usize,
    argc: usize,
    reply: *mut c_void,
    set: abi::SetText,
) -> i32 {
    if ctx.is_null() {
        let text = b"redis.execute is not available here";
        // SAFETY: `reply` is the callback's text for `set`.
        unsafe { set(reply, text.as_ptr().cast(), text.len()) };
        return 1;
    }
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
    let (text, rc) = match std::panic::catch_unwind(run) {
        Ok(bytes) => (bytes, 0),
        Err(_) => (b"the command failed (see the server log)".to_vec(), 1),
    };
    // SAFETY: `reply` is the callback's text for `set`; `text` is valid for its length.
    unsafe { set(reply, text.as_ptr().cast(), text.len()) };
    rc
}

/// `redisAI.model_execute`: runs a stored model through the call's host.
///
/// # Safety
/// Called only by the TORCH library, during a `script_run` whose `ctx` is a live
/// `*const &dyn ScriptHost`, with `n_inputs` views of valid memory, `outputs` what `push`
/// takes and `err` a text `set_err` writes.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "C" fn model_cb(
    ctx: *mut c_void,
    key: *const c_char,
    key_len: usize,
    inputs: *const TensorView,
    n_inputs: usize,
    n_outputs: i64,
    outputs: *mut c_void,
    push: abi::Sink,
    err: *mut c_void,
    set_err: abi::SetText,
) -> i32 {
    let run = AssertUnwindSafe(|| -> Result<(), Error> {
        if ctx.is_null() {
            return Err(Error::Verbatim(
                "redisAI.model_execute is not available here".into(),
            ));
        }
        // SAFETY: see the function's contract.
        let host: &dyn ScriptHost = unsafe { *(ctx as *const &dyn ScriptHost) };
        // SAFETY: `key` is a buffer of `key_len` bytes for the call's duration.
        let key = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) };
        let tensors = (0..n_inputs)
            // SAFETY: `inputs` holds `n_inputs` views of valid memory.
            .map(|i| unsafe { from_view(&*inputs.add(i)) })
            .collect::<Result<Vec<_>, _>>()?;
        let outs = host.model_execute(key, tensors, n_outputs.max(0) as usize)?;
        let shapes = shapes(&outs);
        for view in views(&outs, &shapes)? {
            // SAFETY: `outputs` is what `push` takes; the view points into `outs` and
            // `shapes`, alive for the call (`push` copies).
            if unsafe { push(outputs, &view) } != 0 {
                return Err(Error::Verbatim(
                    "ERR a model output could not be taken".into(),
                ));
            }
        }
        Ok(())
    });
    let result = std::panic::catch_unwind(run).unwrap_or_else(|_| {
        Err(Error::Verbatim(
            "the model failed while running (see the server log)".into(),
        ))
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            let text = e.wire_text();
            // SAFETY: `err` is the operator's error text for `set_err`.
            unsafe { set_err(err, text.as_ptr().cast(), text.len()) };
            1
        }
    }
}

/// Compiles `source` for `device` (`CPU`, `GPU`, `GPU:n`). Blocking: a backend call.
pub(super) fn compile(source: &[u8], device_name: &str) -> Result<Arc<dyn CompiledScript>, Error> {
    let api = api().ok_or(Error::CouldNotLoadBackend)?.clone();
    let device = api.device(device_name)?;
    let source = with_final_newline(source);
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `source` is a valid buffer of `source.len()` bytes for the call's duration (the
    // library copies it); `error` is a valid out-pointer.
    let handle = unsafe { (api.script_compile)(source.as_ptr().cast(), source.len(), &mut error) };
    if handle.is_null() {
        // SAFETY: set by the failed call, taken once.
        let text = unsafe { api.take_str(error, "the TorchScript compiler failed") };
        return Err(Error::Verbatim(one_line(&text)));
    }
    Ok(Arc::new(TorchScript {
        api,
        handle,
        device,
    }))
}

/// The source the compiler is given: a last line without a newline (as `SOURCE "$(cat f.py)"`
/// on a shell's command line sends it) gets one, since the TorchScript lexer, unlike
/// Python's, needs it to end an indented block. What is stored stays as it was sent.
fn with_final_newline(source: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match source.last() {
        Some(b'\n') => source.into(),
        _ => [source, b"\n"].concat().into(),
    }
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
        // for `kinds.len()` entries, the most the library writes.
        let n = unsafe {
            (self.api.script_signature)(self.handle, name.as_ptr(), kinds.as_mut_ptr(), kinds.len())
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
        // What the library reads is what the binding says, parameter by parameter.
        binding.check(tensors.len())?;
        let name = CString::new(function)
            .map_err(|_| Error::Verbatim("ERR function name not specified".into()))?;
        let shapes = shapes(tensors);
        let inputs = views(tensors, &shapes)?;
        let kinds: Vec<i32> = binding.kinds.iter().map(|&k| kind_to(k)).collect();
        let str_ptrs: Vec<*const c_char> = binding.strs.iter().map(|s| s.as_ptr().cast()).collect();
        let str_lens: Vec<usize> = binding.strs.iter().map(|s| s.len()).collect();
        let mut out = Collected::default();
        let mut error: *mut c_char = std::ptr::null_mut();
        // The callbacks' context: a pointer to `host` on this stack, for this call only.
        let ctx: *mut c_void = match &host {
            Some(h) => h as *const &dyn ScriptHost as *mut c_void,
            None => std::ptr::null_mut(),
        };
        // SAFETY: `handle` is live; `ctx` points at `host`, which outlives the call (the
        // library uses it only during the call); every array has the length the library
        // reads: `kinds`, `tensor_counts` and `str_counts` have `n` entries, and it reads,
        // per parameter, one tensor for a Tensor, one string for a scalar and the
        // parameter's count for a list, which `Binding::check` matched against the kinds and
        // against the lengths of `inputs` and `str_ptrs`/`str_lens`; the views and strings
        // point into `tensors`, `shapes` and `binding`, which outlive the call; `collect`
        // takes `out`, a live `Collected`; the out-pointer is valid.
        let rc = unsafe {
            (self.api.script_run)(
                self.handle,
                name.as_ptr(),
                self.device,
                kinds.as_ptr(),
                n,
                inputs.as_ptr(),
                binding.tensor_counts.as_ptr(),
                str_ptrs.as_ptr(),
                str_lens.as_ptr(),
                binding.str_counts.as_ptr(),
                i32::from(outputs),
                ctx,
                collect,
                (&mut out as *mut Collected).cast(),
                &mut error,
            )
        };
        match rc {
            0 => Ok(out.tensors),
            2 => Err(Error::Verbatim(format!(
                "Function returned non-tensor values{function}"
            ))),
            3 => Err(out
                .error
                .unwrap_or_else(|| Error::Verbatim("ERR torch error".into()))),
            _ => {
                // SAFETY: set by the failed call, taken once.
                let text = unsafe { self.api.take_str(error, "the script failed") };
                Err(Error::Verbatim(one_line(&text)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_final_newline;

    #[test]
    fn a_last_line_without_a_newline_gets_one_and_nothing_else_changes() {
        assert_eq!(
            &*with_final_newline(b"def f(x):\n    return x"),
            b"def f(x):\n    return x\n"
        );
        assert_eq!(
            &*with_final_newline(b"def f(x):\n    return x\n"),
            b"def f(x):\n    return x\n"
        );
        assert!(matches!(
            with_final_newline(b"x\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(&*with_final_newline(b""), b"\n");
    }
}
