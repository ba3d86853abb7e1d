//! TensorFlow through its C API, opened at run time from the tensorflow-cpu wheel
//! (`tensorflow/libtensorflow_cc.so.2`, which finds `libtensorflow_framework.so.2` beside it
//! through its own `$ORIGIN` run path): frozen GraphDefs, fed and fetched by the node names
//! given to AI.MODELSTORE's INPUTS and OUTPUTS.
//!
//! The `tensorflow` crate's run-time linking finds the library only through the
//! `TENSORFLOW_DIR` / `LD_LIBRARY_PATH` environment, which a multi-threaded server cannot set
//! safely and which would make users set variables, and its `Tensor<T>` always copies. So
//! [`ffi`] declares the twenty-odd C functions used and opens the library from the backends
//! path with `libloading`. Inputs are lent to TensorFlow in place (`TF_NewTensor` with a
//! deallocator that drops a reference to the stored tensor); outputs become the stored
//! tensors' bytes without a copy (`Bytes::from_owner` over the `TF_Tensor`).
//!
//! This module owns every TF object it creates (status, graph, session, tensors: each wrapped
//! in a value that deletes it once) and every `unsafe` call, each with why it is sound. It
//! must not declare C functions (that is [`ffi`]'s job) nor block an async worker: it runs
//! on the run-queue threads and, for loading, on blocking threads.
#![allow(unsafe_code)]

use std::{
    ffi::{CStr, CString, c_int, c_void},
    path::{Path, PathBuf},
    ptr,
    sync::Arc,
};

use bytes::Bytes;
use shardai_protocol::{DType, Error};

use self::ffi::{Api, Graph, Output, Session, Status, TfTensor};
use super::{Backend, LoadedModel, Settings};
use crate::tensor::Tensor;

mod ffi;

/// Finds `tensorflow/libtensorflow_cc.so.2` under the backends path.
pub(super) fn find_library(path: Option<&Path>) -> Result<PathBuf, String> {
    let base = path.ok_or("no backends path: run scripts/setup or pass --backends-path")?;
    let lib = base.join("tensorflow").join("libtensorflow_cc.so.2");
    if lib.is_file() {
        Ok(lib)
    } else {
        Err(format!("no {} (pip install tensorflow-cpu)", lib.display()))
    }
}

/// A `TF_Status`, deleted on drop.
struct StatusBox<'a> {
    api: &'a Api,
    ptr: *mut Status,
}

impl<'a> StatusBox<'a> {
    fn new(api: &'a Api) -> Self {
        // SAFETY: TF_NewStatus takes no arguments and returns a new status owned by the
        // caller, which `drop` deletes.
        let ptr = unsafe { (api.new_status)() };
        StatusBox { api, ptr }
    }

    /// `Ok` for TF_OK, else TensorFlow's message (its first line), as RedisAI sends it.
    fn check(&self) -> Result<(), Error> {
        // SAFETY: `ptr` is the live status this box owns (deleted only on drop). TF_Message
        // returns a NUL-terminated string owned by the status, valid until the status is next
        // written or deleted; it is copied into an owned `String` before this borrow ends.
        unsafe {
            if (self.api.get_code)(self.ptr) == 0 {
                return Ok(());
            }
            let msg = CStr::from_ptr((self.api.message)(self.ptr)).to_string_lossy();
            let first = msg.lines().next().unwrap_or("TF error").trim();
            Err(Error::Verbatim(first.to_string()))
        }
    }
}

impl Drop for StatusBox<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from TF_NewStatus in `new` and is deleted only here, once; no
        // borrow of its message outlives `check`.
        unsafe { (self.api.delete_status)(self.ptr) }
    }
}

/// The loaded TensorFlow library.
pub(super) struct Tf {
    api: Arc<Api>,
    version: String,
    threads: Settings,
}

impl Tf {
    pub(super) fn load(lib: &Path, threads: Settings) -> Result<Tf, String> {
        let api = Api::open(lib)?;
        // SAFETY: TF_Version takes no arguments and returns a pointer to a NUL-terminated
        // string in the library's static data, valid while the library is mapped; it is
        // copied before `api` can be dropped.
        let version = unsafe { CStr::from_ptr((api.version)()) }
            .to_string_lossy()
            .into_owned();
        Ok(Tf {
            api: Arc::new(api),
            version,
            threads,
        })
    }
}

impl Backend for Tf {
    fn version(&self) -> String {
        self.version.clone()
    }

    fn load(
        &self,
        blob: &[u8],
        device: &str,
        inputs: &[String],
        outputs: &[String],
    ) -> Result<Arc<dyn LoadedModel>, Error> {
        super::cpu_only(device, "TF couldn't find CUDA")?;
        let api = &self.api;
        let status = StatusBox::new(api);
        // SAFETY: every handle passed below is either fresh from the library and not yet
        // deleted, or the live `status`; every data pointer points into `blob`, `config` or a
        // CString, each alive for the call it is passed to (TF_NewBufferFromString and
        // TF_SetConfig copy their bytes). Operations found by name are owned by `graph`, which
        // outlives them in `model`. Each object is deleted exactly once: the import options
        // and buffer right after the import, the session options after TF_NewSession, the
        // graph and session by `TfModel::drop`, also when an error drops `model` early (a null
        // session, when TF_NewSession failed or was not called, is skipped there).
        unsafe {
            let graph = (api.new_graph)();
            let model = TfModel {
                api: self.api.clone(),
                graph,
                session: ptr::null_mut(),
                inputs: Vec::new(),
                outputs: Vec::new(),
            };
            let buf = (api.new_buffer_from_string)(blob.as_ptr().cast(), blob.len());
            let opts = (api.new_import_options)();
            (api.import_graph_def)(graph, buf, opts, status.ptr);
            (api.delete_import_options)(opts);
            (api.delete_buffer)(buf);
            status.check()?;
            let find = |name: &str, what: &str| -> Result<Output, Error> {
                let missing = || {
                    Error::Verbatim(match what {
                        "Input" => {
                            format!("ERR Input node named \"{name}\" not found in TF graph.")
                        }
                        _ => format!("ERR Output node named \"{name}\" not found in TF graph"),
                    })
                };
                let c = CString::new(name).map_err(|_| missing())?;
                let oper = (api.operation_by_name)(graph, c.as_ptr());
                if oper.is_null() || (api.operation_num_outputs)(oper) < 1 {
                    return Err(missing());
                }
                Ok(Output { oper, index: 0 })
            };
            let ins = inputs
                .iter()
                .map(|n| find(n, "Input"))
                .collect::<Result<Vec<_>, _>>()?;
            let outs = outputs
                .iter()
                .map(|n| find(n, "Output"))
                .collect::<Result<Vec<_>, _>>()?;
            let sopts = (api.new_session_options)();
            let config = config_proto(self.threads);
            (api.set_config)(sopts, config.as_ptr().cast(), config.len(), status.ptr);
            let configured = status.check();
            let session = if configured.is_ok() {
                (api.new_session)(graph, sopts, status.ptr)
            } else {
                ptr::null_mut()
            };
            (api.delete_session_options)(sopts);
            configured?;
            let mut model = model;
            model.session = session;
            status.check()?;
            model.inputs = ins;
            model.outputs = outs;
            Ok(Arc::new(model))
        }
    }
}

/// A graph and a session over it. TF sessions may be run from several threads at once.
struct TfModel {
    api: Arc<Api>,
    graph: *mut Graph,
    session: *mut Session,
    inputs: Vec<Output>,
    outputs: Vec<Output>,
}

// SAFETY: the graph, session and operations are heap objects of the library, not tied to the
// thread that made them, so the model may be used and dropped on any thread; the `Arc<Api>`
// is itself `Send + Sync`.
unsafe impl Send for TfModel {}
// SAFETY: through `&TfModel` the pointers are only read, and the only call made with them is
// TF_SessionRun, which TensorFlow allows on one session from several threads at once (the
// C++ `Session::Run` behind it is documented as thread-safe).
// Deletion needs `&mut` (drop).
unsafe impl Sync for TfModel {}

impl Drop for TfModel {
    fn drop(&mut self) {
        let status = StatusBox::new(&self.api);
        // SAFETY: the session (when not null) and the graph were created for this model and
        // are deleted only here, the session first; no run can be in progress, since a run
        // borrows the model.
        unsafe {
            if !self.session.is_null() {
                (self.api.close_session)(self.session, status.ptr);
                (self.api.delete_session)(self.session, status.ptr);
            }
            (self.api.delete_graph)(self.graph);
        }
    }
}

/// A serialized `ConfigProto`: `allow_soft_placement` (field 7: run on CPU whatever device
/// the graph's nodes were pinned to when it was frozen), and the thread counts when set
/// (`intra_op_parallelism_threads`, field 2; `inter_op_parallelism_threads`, field 5).
fn config_proto(threads: Settings) -> Vec<u8> {
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7F) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let mut out = Vec::new();
    for (field, value) in [(2u64, threads.intra_op), (5, threads.inter_op)] {
        if value > 0 {
            varint(field << 3, &mut out);
            varint(value as u64, &mut out);
        }
    }
    out.extend_from_slice(&[0x38, 0x01]);
    out
}

fn tf_type(d: DType) -> Result<c_int, Error> {
    Ok(match d {
        DType::Float => 1,
        DType::Double => 2,
        DType::Int32 => 3,
        DType::Uint8 => 4,
        DType::Int16 => 5,
        DType::Int8 => 6,
        DType::Int64 => 9,
        DType::Bool => 10,
        DType::Uint16 => 17,
        DType::String => {
            return Err(Error::Verbatim(
                "ERR STRING tensors are not supported by the TF backend".into(),
            ));
        }
    })
}

fn dtype_of(t: c_int) -> Result<DType, Error> {
    Ok(match t {
        1 => DType::Float,
        2 => DType::Double,
        3 => DType::Int32,
        4 => DType::Uint8,
        5 => DType::Int16,
        6 => DType::Int8,
        9 => DType::Int64,
        10 => DType::Bool,
        17 => DType::Uint16,
        other => {
            return Err(Error::Verbatim(format!(
                "ERR unsupported TF output data type {other}"
            )));
        }
    })
}

/// Drops the stored tensor TensorFlow borrowed, once TensorFlow is done with its bytes.
unsafe extern "C" fn release(_data: *mut c_void, _len: usize, arg: *mut c_void) {
    // SAFETY: TensorFlow calls this once per tensor made in `lend`, with the `arg` given
    // there: a pointer from `Box::into_raw(Box<Tensor>)`, so it is rebuilt and dropped
    // exactly once.
    drop(unsafe { Box::from_raw(arg.cast::<Tensor>()) });
}

/// An output `TF_Tensor` that owns the bytes of a stored tensor.
struct Owned {
    api: Arc<Api>,
    ptr: *mut TfTensor,
    data: *const u8,
    len: usize,
}

// SAFETY: the TF_Tensor handle is owned by this value alone (TF_SessionRun hands outputs over
// to the caller) and is not tied to a thread; the buffer behind it, which TensorFlow may
// share by reference count with its own tensors, is only ever read, so it may be read and
// deleted on any thread.
unsafe impl Send for Owned {}
// SAFETY: through `&Owned` its buffer is only read (`as_ref`), and nothing writes it once the
// run has returned it.
unsafe impl Sync for Owned {}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `data` and `len` are TF_TensorData and TF_TensorByteSize of `ptr`, which
        // this value owns and deletes only on drop, so the `len` bytes stay allocated and
        // unchanged while `&self` is borrowed; `len > 0` here, so `data` is not null, and `u8`
        // needs no alignment.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: `ptr` is an output of TF_SessionRun whose ownership passed to this value in
        // `take`; it is deleted only here, after the last borrow of its bytes (`Bytes` drops
        // its owner when the last reference goes).
        unsafe { (self.api.delete_tensor)(self.ptr) }
    }
}

impl TfModel {
    /// A `TF_Tensor` over a stored tensor's bytes, holding a reference to it until
    /// TensorFlow releases it (TensorFlow copies instead when the bytes are not aligned).
    fn lend(&self, t: &Tensor) -> Result<*mut TfTensor, Error> {
        let dtype = tf_type(t.dtype())?;
        let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        let blob = t.data();
        let arg = Box::into_raw(Box::new(t.clone()));
        // SAFETY: `dims` holds `dims.len()` values and lives through the call (TensorFlow copies
        // the shape). The data pointer and length are the stored tensor's bytes, which stay
        // valid while `arg` (a leaked handle to that tensor) lives; TensorFlow calls `release`
        // once, when it no longer needs them (at once, if it copied unaligned bytes); it
        // returns null without calling it only for bytes shorter than the shape, which
        // `Tensor` rules out (and that would leak the reference, not free it twice).
        // Casting to `*mut` is sound because the buffer is only ever an input, never written.
        let tensor = unsafe {
            (self.api.new_tensor)(
                dtype,
                dims.as_ptr(),
                dims.len() as c_int,
                blob.as_ptr().cast_mut().cast(),
                blob.len(),
                release,
                arg.cast(),
            )
        };
        if tensor.is_null() {
            return Err(Error::Verbatim(
                "ERR TF could not take the input tensor".into(),
            ));
        }
        Ok(tensor)
    }

    fn take(&self, ptr: *mut TfTensor) -> Result<Tensor, Error> {
        let mut owned = Owned {
            api: self.api.clone(),
            ptr,
            data: ptr::null(),
            len: 0,
        };
        // SAFETY: `ptr` is a non-null output of TF_SessionRun, owned by `owned` and so not yet
        // deleted; TF_Dim is called only with `0 <= i < TF_NumDims`. The accessors only read
        // it.
        let (dtype, shape, data, len) = unsafe {
            let n = (self.api.num_dims)(ptr);
            let shape: Vec<usize> = (0..n)
                .map(|i| (self.api.dim)(ptr, i).max(0) as usize)
                .collect();
            (
                (self.api.tensor_type)(ptr),
                shape,
                (self.api.tensor_data)(ptr).cast::<u8>().cast_const(),
                (self.api.tensor_byte_size)(ptr),
            )
        };
        let dtype = dtype_of(dtype)?;
        if shape.contains(&0) {
            return Err(Error::Verbatim("ERR model produced an empty tensor".into()));
        }
        owned.data = data;
        owned.len = len;
        Tensor::from_blob(dtype, shape, Bytes::from_owner(owned))
    }
}

impl LoadedModel for TfModel {
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
        let mut fed = Vec::with_capacity(inputs.len());
        for t in inputs {
            match self.lend(t) {
                Ok(p) => fed.push(p),
                Err(e) => {
                    for &p in &fed {
                        // SAFETY: `p` was made by `lend` and is deleted only here: the run
                        // that would have used it is not reached. Deleting it calls `release`,
                        // which drops its reference to the stored tensor.
                        unsafe { (self.api.delete_tensor)(p) }
                    }
                    return Err(e);
                }
            }
        }
        let mut out: Vec<*mut TfTensor> = vec![ptr::null_mut(); self.outputs.len()];
        let status = StatusBox::new(&self.api);
        // SAFETY: the session is live (not null once `load` succeeded; deleted only on drop,
        // which cannot run while `&self` is borrowed). `self.inputs`/`fed` and
        // `self.outputs`/`out` are pairs of equal length (checked above, and `out` is sized
        // from `self.outputs`), passed with that count. TF_SessionRun does not take
        // ownership of the inputs, which are deleted right after, once each; it writes an
        // owned tensor or null into each slot of `out`, each taken once below.
        unsafe {
            (self.api.session_run)(
                self.session,
                ptr::null(),
                self.inputs.as_ptr(),
                fed.as_ptr(),
                fed.len() as c_int,
                self.outputs.as_ptr(),
                out.as_mut_ptr(),
                out.len() as c_int,
                ptr::null(),
                0,
                ptr::null_mut(),
                status.ptr,
            );
            for &p in &fed {
                (self.api.delete_tensor)(p);
            }
        }
        let ran = status.check();
        let mut tensors = Vec::with_capacity(out.len());
        let mut first_err = ran.err();
        for p in out {
            if p.is_null() {
                continue;
            }
            match self.take(p) {
                Ok(t) => tensors.push(t),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(tensors),
        }
    }
}
