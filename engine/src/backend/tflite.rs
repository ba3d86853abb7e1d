//! TensorFlow Lite through the LiteRT C API of `libLiteRt.so` from the ai-edge-litert 2.3.0
//! wheel, opened at run time from the backends path; the functions are declared by hand in
//! [`ffi`] (no wheel exports the classic TFLite C API).
//!
//! A model's flatbuffer must outlive it (LiteRT does not copy), so each model keeps its own
//! 64-byte-aligned copy. Inputs are lent in place when their bytes are 64-byte aligned (big
//! BLOBs are) and copied into an aligned buffer otherwise; outputs are written straight into
//! aligned buffers that become the stored tensors' bytes.
//!
//! This module owns every LiteRT object it creates (environment, models, options, tensor
//! buffers: each destroyed once by the value holding it) and every `unsafe` call, each with
//! why it is sound. It must not declare C functions (that is [`ffi`]'s job) nor block an
//! async worker: it runs on the run-queue threads and, for loading, on blocking threads.
#![allow(unsafe_code)]

use std::{
    ffi::{c_int, c_void},
    path::{Path, PathBuf},
    ptr,
    sync::Arc,
};

use bytes::Bytes;
use parking_lot::Mutex;
use shardai_protocol::{DType, Error};

use self::ffi::{
    ANY_INT, Any, Api, ENV_MIN_LOGGER_SEVERITY, EnvOption, HW_CPU, Handle, MAX_RANK, RankedType,
    SEVERITY_ERROR, Status, layout_shape, status_name,
};
use super::{Backend, LoadedModel, Settings};
use crate::tensor::Tensor;

mod ffi;

/// Finds `ai_edge_litert/libLiteRt.so` under the backends path.
pub(super) fn find_library(path: Option<&Path>) -> Result<PathBuf, String> {
    let base = path.ok_or("no backends path: run scripts/setup or pass --backends-path")?;
    let lib = base.join("ai_edge_litert").join("libLiteRt.so");
    if lib.is_file() {
        Ok(lib)
    } else {
        Err(format!("no {} (pip install ai-edge-litert)", lib.display()))
    }
}

/// The alignment LiteRT wants of host memory it wraps in a tensor buffer.
const ALIGN: usize = 64;

/// `Ok` for a zero status, else `ERR <what> (<status name>, LiteRT status <n>)`.
fn check(status: Status, what: &str) -> Result<(), Error> {
    if status == 0 {
        Ok(())
    } else {
        Err(Error::Verbatim(format!(
            "ERR {what} ({}, LiteRT status {status})",
            status_name(status)
        )))
    }
}

/// A 64-byte-aligned byte buffer, as LiteRT wants host memory.
struct Aligned {
    blocks: Vec<Block>,
    len: usize,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block([u8; ALIGN]);

impl Aligned {
    fn zeroed(len: usize) -> Aligned {
        Aligned {
            blocks: vec![Block([0; ALIGN]); len.div_ceil(ALIGN).max(1)],
            len,
        }
    }

    fn copy_of(data: &[u8], capacity: usize) -> Aligned {
        let mut a = Aligned::zeroed(capacity.max(data.len()));
        a.as_mut()[..data.len()].copy_from_slice(data);
        a
    }

    /// For memory LiteRT only reads (inputs, the model).
    fn ptr(&self) -> *mut c_void {
        self.blocks.as_ptr().cast_mut().cast()
    }

    /// For memory LiteRT writes (outputs).
    fn mut_ptr(&mut self) -> *mut c_void {
        self.blocks.as_mut_ptr().cast()
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `blocks` is `len.div_ceil(ALIGN).max(1)` blocks of `ALIGN` initialised
        // bytes with no padding (`Block` is a `[u8; ALIGN]`), so at least `len` bytes from
        // its start are one allocation; `&mut self` makes the borrow exclusive, and `len` only
        // ever shrinks after construction.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast(), self.len) }
    }
}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: as in `as_mut`, at least `len` initialised bytes from the start of `blocks`;
        // nothing writes them while `&self` is borrowed (LiteRT writes outputs only during a
        // run, before the buffer is handed out as `Bytes`).
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast(), self.len) }
    }
}

/// The loaded LiteRT library and its environment.
pub(super) struct TfLite {
    api: Arc<Api>,
    env: Arc<Env>,
    version: String,
    threads: Settings,
}

/// A LiteRT environment, shared by every model of the process.
struct Env {
    api: Arc<Api>,
    ptr: Handle,
    /// Held while a model is made in the environment: LiteRT's headers do not say that
    /// models may be made in one environment from several threads at once.
    loading: Mutex<()>,
}

// SAFETY: the environment is a heap object of the library, not tied to the thread that made
// it, and it is destroyed (on drop) only once no model made in it remains.
unsafe impl Send for Env {}
// SAFETY: through `&Env` the handle is only passed to LiteRtCreateModelFromBuffer and
// LiteRtCreateCompiledModel, and only while `loading` is held, so no two threads use the
// environment at once; models made in it run on their own handles.
unsafe impl Sync for Env {}

impl Drop for Env {
    fn drop(&mut self) {
        // SAFETY: created by LiteRtCreateEnvironment in `TfLite::load` and destroyed only
        // here, once; every model made in it holds an `Arc<Env>`, so none is left.
        unsafe { (self.api.destroy_environment)(self.ptr) }
    }
}

impl TfLite {
    pub(super) fn load(lib: &Path, threads: Settings) -> Result<TfLite, String> {
        let api = Arc::new(Api::open(lib)?);
        // Only errors from LiteRT's own logger: it logs every compilation at INFO.
        let quiet = EnvOption {
            tag: ENV_MIN_LOGGER_SEVERITY,
            value: Any {
                kind: ANY_INT,
                value: SEVERITY_ERROR,
            },
        };
        let mut env = ptr::null_mut();
        // SAFETY: the option array is `quiet`, one `#[repr(C)]` LiteRtEnvOption that lives
        // through the call, counted as 1 (LiteRT stores option values in the environment by
        // value, and an int value holds no pointer); `env` is a valid out pointer. The
        // environment made is owned by `Env` below.
        let status = unsafe { (api.create_environment)(1, &quiet, &mut env) };
        if status != 0 || env.is_null() {
            return Err(format!("LiteRtCreateEnvironment failed (status {status})"));
        }
        // The wheel's version, from its dist-info folder beside the package.
        let version = lib
            .parent()
            .and_then(Path::parent)
            .and_then(|site| std::fs::read_dir(site).ok())
            .and_then(|entries| {
                entries.filter_map(|e| e.ok()).find_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("ai_edge_litert-")
                        .and_then(|v| v.strip_suffix(".dist-info"))
                        .map(str::to_string)
                })
            })
            .unwrap_or_else(|| "unknown".into());
        Ok(TfLite {
            env: Arc::new(Env {
                api: api.clone(),
                ptr: env,
                loading: Mutex::new(()),
            }),
            api,
            version,
            threads,
        })
    }

    /// Adds XNNPACK's `num_threads` (a TOML payload under the "xnnpack" identifier, which is
    /// how LiteRT 2.3 takes CPU options) to `options`.
    fn set_threads(&self, options: Handle, n: usize) -> Result<(), Error> {
        let api = &self.api;
        let id = c"xnnpack";
        let payload = std::ffi::CString::new(format!("num_threads = {n}\n"))
            .map_err(|_| Error::Verbatim("ERR bad thread count".into()))?
            .into_raw();
        let mut opaque = ptr::null_mut();
        // SAFETY: `id` is a static C string; the payload is a NUL-terminated string from
        // `CString::into_raw`. When LiteRtCreateOpaqueOptions succeeds, the new options item
        // owns the payload and frees it once with `free_payload` when destroyed; when it
        // fails, it has taken nothing and the payload is freed here, once. `options` is the
        // live handle of the caller. When adding succeeds `options` owns `opaque` (destroyed
        // with it); when it fails `opaque` is destroyed here, freeing the payload.
        unsafe {
            let status = (api.create_opaque_options)(
                id.as_ptr(),
                payload.cast(),
                Some(free_payload),
                &mut opaque,
            );
            if status != 0 {
                free_payload(payload.cast());
                return check(status, "LiteRT CPU options");
            }
            let status = (api.add_opaque_options)(options, opaque);
            if status != 0 {
                (api.destroy_opaque_options)(opaque);
                return check(status, "LiteRT CPU options");
            }
        }
        Ok(())
    }
}

/// Frees an options payload made by `CString::into_raw`.
unsafe extern "C" fn free_payload(p: *mut c_void) {
    // SAFETY: LiteRT calls this once, with the payload given in `set_threads` (or that
    // function does, when LiteRT did not take it): a pointer from `CString::into_raw`,
    // so it is rebuilt and freed exactly once.
    drop(unsafe { std::ffi::CString::from_raw(p.cast()) });
}

impl Backend for TfLite {
    fn version(&self) -> String {
        self.version.clone()
    }

    fn load(
        &self,
        blob: &[u8],
        device: &str,
        _inputs: &[String],
        _outputs: &[String],
    ) -> Result<Arc<dyn LoadedModel>, Error> {
        super::cpu_only(device, "the TFLITE backend runs on CPU only")?;
        let api = &self.api;
        let flatbuffer = Aligned::copy_of(blob, blob.len());
        let mut model = TfLiteModel {
            api: api.clone(),
            _env: self.env.clone(),
            flatbuffer,
            model: ptr::null_mut(),
            compiled: Mutex::new(ptr::null_mut()),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        let _loading = self.env.loading.lock();
        // SAFETY: the flatbuffer's heap blocks live in `model` as long as the LiteRT model that
        // reads them (moving `model` into the `Arc` moves the `Vec`, not its blocks), and LiteRT
        // only reads them. `self.env.ptr` is live while `self` is, and used by this thread only
        // (`_loading`). Every out pointer is a local or a field of `model`. The signature and its tensors belong to `model.model`
        // and are only read here. `options` is destroyed once on every path after it is
        // made; the model and the compiled model are destroyed once by `TfLiteModel::drop`
        // (also when an error drops `model` early: null handles are skipped there).
        unsafe {
            check(
                (api.create_model_from_buffer)(
                    self.env.ptr,
                    model.flatbuffer.ptr(),
                    model.flatbuffer.len,
                    &mut model.model,
                ),
                "Failed to load model from buffer",
            )?;
            let mut sig = ptr::null_mut();
            check(
                (api.get_model_signature)(model.model, 0, &mut sig),
                "TFLITE model has no signature or subgraph",
            )?;
            let (mut n_in, mut n_out) = (0usize, 0usize);
            check((api.num_signature_inputs)(sig, &mut n_in), "model inputs")?;
            check(
                (api.num_signature_outputs)(sig, &mut n_out),
                "model outputs",
            )?;
            for (n, get, list) in [
                (n_in, api.signature_input, &mut model.inputs),
                (n_out, api.signature_output, &mut model.outputs),
            ] {
                for i in 0..n {
                    let mut tensor = ptr::null_mut();
                    check(get(sig, i, &mut tensor), "model tensor")?;
                    let mut ty = RankedType::zeroed();
                    check(
                        (api.ranked_tensor_type)(tensor, &mut ty),
                        "TFLITE tensors must have a known rank",
                    )?;
                    list.push(ty);
                }
            }
            let mut options = ptr::null_mut();
            check((api.create_options)(&mut options), "LiteRT options")?;
            if self.threads.intra_op > 0
                && let Err(e) = self.set_threads(options, self.threads.intra_op)
            {
                (api.destroy_options)(options);
                return Err(e);
            }
            let mut compiled = ptr::null_mut();
            let status = match (api.set_accelerators)(options, HW_CPU) {
                0 => (api.create_compiled_model)(self.env.ptr, model.model, options, &mut compiled),
                s => s,
            };
            (api.destroy_options)(options);
            check(status, "Failed to compile the TFLITE model")?;
            *model.compiled.get_mut() = compiled;
        }
        Ok(Arc::new(model))
    }
}

/// A model, its flatbuffer and its compiled form. LiteRT's compiled model keeps per-run
/// state (input shapes, buffers), so runs of one model are serialised by the mutex.
struct TfLiteModel {
    api: Arc<Api>,
    /// The environment the model was made in, kept alive as long as the model.
    _env: Arc<Env>,
    flatbuffer: Aligned,
    model: Handle,
    compiled: Mutex<Handle>,
    /// The signature's input and output types as compiled (shapes change on resize).
    inputs: Vec<RankedType>,
    outputs: Vec<RankedType>,
}

// SAFETY: the model and compiled model are heap objects of the library, not tied to the thread
// that made them, so they may be used and destroyed on any thread; the rest is owned data
// and `Arc`s of `Send + Sync` values.
unsafe impl Send for TfLiteModel {}
// SAFETY: through `&TfLiteModel` the compiled model is used only while holding `compiled`'s
// mutex (LiteRT's compiled model keeps per-run state), and `model` is not used at all (only
// by `load` and `drop`, which own the value).
unsafe impl Sync for TfLiteModel {}

impl Drop for TfLiteModel {
    fn drop(&mut self) {
        // SAFETY: each non-null handle was created for this model and is destroyed only here,
        // once, the compiled model before the model it came from; the environment both were
        // made in is still alive (`_env` is dropped after this).
        unsafe {
            let compiled = *self.compiled.get_mut();
            if !compiled.is_null() {
                (self.api.destroy_compiled_model)(compiled);
            }
            if !self.model.is_null() {
                (self.api.destroy_model)(self.model);
            }
        }
    }
}

fn element_type(d: DType) -> Result<c_int, Error> {
    Ok(match d {
        DType::Float => 1,
        DType::Int32 => 2,
        DType::Uint8 => 3,
        DType::Int64 => 4,
        DType::Bool => 6,
        DType::Int16 => 7,
        DType::Int8 => 9,
        DType::Double => 11,
        DType::Uint16 => 17,
        DType::String => {
            return Err(Error::Verbatim(
                "ERR STRING tensors are not supported by the TFLITE backend".into(),
            ));
        }
    })
}

fn dtype_of(t: c_int) -> Result<DType, Error> {
    Ok(match t {
        1 => DType::Float,
        2 => DType::Int32,
        3 => DType::Uint8,
        4 => DType::Int64,
        6 => DType::Bool,
        7 => DType::Int16,
        9 => DType::Int8,
        11 => DType::Double,
        17 => DType::Uint16,
        other => {
            return Err(Error::Verbatim(format!(
                "ERR unsupported TFLITE output element type {other}"
            )));
        }
    })
}

/// Tensor buffers made for one run, destroyed when it ends.
struct Buffers<'a> {
    api: &'a Api,
    handles: Vec<Handle>,
}

impl Drop for Buffers<'_> {
    fn drop(&mut self) {
        for &h in &self.handles {
            // SAFETY: `h` was created by LiteRtCreateTensorBufferFromHostMemory for this run
            // and is destroyed only here, once, while the host memory it wraps (owned by the
            // caller of `run`, `copies` or `outs`, all dropped after `bufs`) is still alive.
            unsafe { (self.api.destroy_buffer)(h) }
        }
    }
}

impl LoadedModel for TfLiteModel {
    fn num_inputs(&self) -> Option<usize> {
        Some(self.inputs.len())
    }

    fn num_outputs(&self) -> Option<usize> {
        Some(self.outputs.len())
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::Verbatim(
                "Number of keys given as INPUTS here does not match model definition".into(),
            ));
        }
        let api = &*self.api;
        let compiled = self.compiled.lock();
        let cm = *compiled;
        // Host memory the tensor buffers wrap; declared before `bufs` so that it outlives
        // them on every path (buffers are dropped first).
        let mut copies = Vec::new();
        let mut outs = Vec::with_capacity(self.outputs.len());
        let mut bufs = Buffers {
            api,
            handles: Vec::with_capacity(inputs.len() + self.outputs.len()),
        };
        // Inputs: resize the model to each input's shape (a no-op when it already has it),
        // then lend the bytes in place or an aligned copy of them.
        for (i, t) in inputs.iter().enumerate() {
            let et = element_type(t.dtype())?;
            if et != self.inputs[i].element_type {
                return Err(Error::Verbatim(format!(
                    "ERR Input tensor {i} type doesn't match the type expected by the model"
                )));
            }
            if t.shape().len() > MAX_RANK {
                return Err(Error::Verbatim("ERR tensor rank above 8".into()));
            }
            let dims: Vec<c_int> = t.shape().iter().map(|&d| d as c_int).collect();
            let mut reqs = ptr::null_mut();
            let mut size = 0usize;
            // SAFETY: `cm` is the compiled model, alive while `self` is and used by this thread
            // alone while `compiled` is locked; input `i` exists (`inputs.len()` equals the
            // signature's inputs, checked above); `dims` holds `dims.len()` values and lives
            // through the call. `reqs` is owned by the compiled model and read (for its size)
            // before the next resize could change it; `size` is a valid out pointer.
            unsafe {
                check(
                    (api.resize_input)(cm, 0, i, dims.as_ptr(), dims.len()),
                    "Could not resize the TFLITE model's input to the tensor's shape",
                )?;
                check(
                    (api.input_requirements)(cm, 0, i, &mut reqs),
                    "TFLITE input buffer requirements",
                )?;
                check(
                    (api.requirements_size)(reqs, &mut size),
                    "TFLITE input buffer size",
                )?;
            }
            let blob = t.data();
            if size < blob.len() {
                return Err(Error::Verbatim(format!(
                    "ERR Input tensor {i} is larger than the model expects"
                )));
            }
            let ptr = if (blob.as_ptr() as usize).is_multiple_of(ALIGN) && size == blob.len() {
                blob.as_ptr().cast_mut().cast()
            } else {
                copies.push(Aligned::copy_of(blob, size));
                copies.last().map_or(ptr::null_mut(), Aligned::ptr)
            };
            let ty = RankedType::new(et, &t.shape());
            let mut h = ptr::null_mut();
            // SAFETY: `ptr` is 64-byte aligned and has `size` readable bytes: either the stored
            // tensor's bytes (aligned and exactly `size` long; held by `inputs` for the whole
            // call) or an aligned copy of at least `size` bytes in `copies` (its heap blocks
            // do not move when `copies` grows). Both outlive the buffer, which `bufs`
            // destroys first; no deallocator is passed, so LiteRT frees nothing. The
            // `*mut` cast is sound because LiteRT only reads input buffers.
            let made = unsafe { (api.buffer_from_host_memory)(&ty, ptr, size, None, &mut h) };
            check(made, "TFLITE input buffer")?;
            bufs.handles.push(h);
        }
        // Outputs: their shapes after the resizes, and aligned buffers to receive them.
        let mut layouts = vec![RankedType::zeroed().layout; self.outputs.len()];
        // SAFETY: `cm` is live and locked, as above; `layouts` has one entry per output of
        // signature 0, and its length is passed as the count LiteRT writes.
        let laid_out =
            unsafe { (api.output_layouts)(cm, 0, layouts.len(), layouts.as_mut_ptr(), true) };
        check(laid_out, "TFLITE model cannot run inputs of these shapes")?;
        for (i, layout) in layouts.iter().enumerate() {
            let mut reqs = ptr::null_mut();
            let mut size = 0usize;
            // SAFETY: `cm` is live and locked, as above; output `i` exists (`layouts` has one
            // entry per output); `reqs` is owned by the compiled model and read at once;
            // `reqs` and `size` are valid out pointers.
            unsafe {
                check(
                    (api.output_requirements)(cm, 0, i, &mut reqs),
                    "TFLITE output buffer requirements",
                )?;
                check(
                    (api.requirements_size)(reqs, &mut size),
                    "TFLITE output buffer size",
                )?;
            }
            let shape = layout_shape(layout);
            let dtype = dtype_of(self.outputs[i].element_type)?;
            let mut buf = Aligned::zeroed(size);
            let ty = RankedType::new(self.outputs[i].element_type, &shape);
            let mut h = ptr::null_mut();
            // SAFETY: `buf` is 64-byte aligned with at least `size` writable bytes, and nothing
            // else borrows it; its heap blocks stay put when `buf` moves into `outs`, which
            // outlives the buffer (`bufs` is dropped first). No deallocator is passed, so
            // LiteRT frees nothing.
            let made =
                unsafe { (api.buffer_from_host_memory)(&ty, buf.mut_ptr(), size, None, &mut h) };
            check(made, "TFLITE output buffer")?;
            bufs.handles.push(h);
            outs.push((dtype, shape, buf));
        }
        let (ins, outh) = bufs.handles.split_at(inputs.len());
        // SAFETY: `cm` is live and locked, as above. `ins` and `outh` are the live buffers made
        // above, one per input and one per output of signature 0 in order, passed with their
        // lengths; the memory they wrap outlives the run (see above), and LiteRT writes only
        // the output buffers' memory, which nothing else borrows until the run returns.
        let ran = unsafe { (api.run)(cm, 0, ins.len(), ins.as_ptr(), outh.len(), outh.as_ptr()) };
        check(ran, "TFLITE model run failed")?;
        drop(bufs);
        drop(compiled);
        outs.into_iter()
            .map(|(dtype, shape, mut buf)| {
                if shape.contains(&0) {
                    return Err(Error::Verbatim("ERR model produced an empty tensor".into()));
                }
                let bytes = shape.iter().product::<usize>() * dtype.size().unwrap_or(1);
                buf.len = bytes.min(buf.len);
                Tensor::from_blob(dtype, shape, Bytes::from_owner(buf))
            })
            .collect()
    }
}
