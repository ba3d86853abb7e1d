//! PyTorch: TorchScript modules as `torch.jit.save` writes them, run by
//! `libshardai_torch.so` (crate `shardai-torch`: libtorch through `tch`), which this module
//! opens on the first TORCH model or script and keeps for the life of the process. A server
//! that never runs TORCH does not map libtorch (over 100 MB of its resident memory).
//!
//! The library is looked for beside the server binary (see [`find_library`]); AI.CONFIG
//! LOADBACKEND TORCH opens another. Tensors cross its C interface (`shardai-torch-abi`) as
//! views: inputs lent for the run, outputs copied once into stored tensors by a sink.
//!
//! This module owns the `unsafe` calls into the library for models (its scripts are in
//! `torch_script`), each with why it is sound. It must not block an async worker: it runs on
//! the run-queue threads and, for loading, on blocking threads.
#![allow(unsafe_code)]

use std::{
    ffi::{CStr, c_char, c_void},
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use libloading::Library;
use shardai_protocol::{DType, Error};
use shardai_torch_abi::{self as abi, TensorView, dtype};

use super::{Backend, LoadedModel, Settings};
use crate::tensor::Tensor;

/// The library's file name.
pub(super) const LIBRARY: &str = "libshardai_torch.so";

/// Where the TORCH library is by default: beside the server binary (`target/<profile>/` in a
/// checkout), or in `../lib/shardai/` (an install under a prefix, `/usr/local/bin/shardai`
/// with `/usr/local/lib/shardai/`); for a test binary in `target/<profile>/deps/`, one folder
/// up.
pub(super) fn find_library() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the server's own path: {e}"))?;
    let dir = exe.parent().ok_or("the server binary has no folder")?;
    let mut candidates = vec![dir.join(LIBRARY), dir.join("../lib/shardai").join(LIBRARY)];
    if dir.file_name().is_some_and(|n| n == "deps") {
        candidates.push(dir.join("..").join(LIBRARY));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            let looked: Vec<String> = candidates
                .iter()
                .filter_map(|p| p.parent().map(|d| d.display().to_string()))
                .collect();
            format!(
                "no {LIBRARY} in {} (build it with cargo build --release -p shardai-torch, or \
             name it with AI.CONFIG LOADBACKEND TORCH)",
                looked.join(" or ")
            )
        })
}

/// Why the TORCH library was not taken.
enum Refusal {
    /// It could not be opened: another file may be tried.
    NotOpened(String),
    /// It was opened (and stays mapped) but is not one this server can use.
    Mapped(String),
}

/// The TORCH library's functions (`shardai-torch-abi` gives their types and meanings).
pub(super) struct Api {
    /// Keeps the library mapped: it is never unloaded (libtorch's static state and thread
    /// pools live in it), since the one `Api` of the process is kept in [`API`].
    _lib: Option<Library>,
    pub(super) cuda_devices: abi::CudaDevicesFn,
    pub(super) model_load: abi::ModelLoadFn,
    pub(super) model_run: abi::ModelRunFn,
    pub(super) model_free: abi::FreeFn,
    pub(super) module_names: abi::ModuleNamesFn,
    pub(super) script_compile: abi::ScriptCompileFn,
    pub(super) script_signature: abi::ScriptSignatureFn,
    pub(super) script_run: abi::ScriptRunFn,
    pub(super) script_free: abi::FreeFn,
    pub(super) free_str: abi::FreeStrFn,
}

/// The process's TORCH library, once opened. Opening it is serialised by [`OPENING`] (a
/// process may hold several `Backends`), so the library is initialised once.
static API: OnceLock<Arc<Api>> = OnceLock::new();

/// Held while the library is opened; holds why it was refused, when it was: a refused
/// library stays mapped (libtorch cannot be unloaded), so the server must restart to take
/// another.
static OPENING: parking_lot::Mutex<Option<String>> = parking_lot::Mutex::new(None);

/// The opened TORCH library (scripts reach it through here).
pub(super) fn api() -> Option<&'static Arc<Api>> {
    API.get()
}

impl Api {
    /// Opens the library at `path`, checks its interface version and initialises it.
    fn open(path: &Path, threads: Settings) -> Result<Api, Refusal> {
        // SAFETY: `Library::open` runs the library's initialisers and those of libtorch,
        // which it loads: they fill libtorch's own registries and touch no state of this
        // process. RTLD_GLOBAL puts libtorch in the global scope, as a linked library would
        // be, for libtorch_cuda (opened later by the library) to bind to. Opening a library
        // already mapped only takes another reference to it.
        let lib: Library = unsafe {
            libloading::os::unix::Library::open(
                Some(path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
            )
        }
        .map_err(|e| Refusal::NotOpened(format!("{}: {e}", path.display())))?
        .into();
        // Once opened, the library stays mapped even when it is refused: its initialisers
        // registered libtorch operators, which unloading would leave pointing into unmapped
        // code (and a second library would register again).
        let lib = std::mem::ManuallyDrop::new(lib);
        let bind = || -> Result<Api, String> {
            let version: abi::VersionFn = sym!(lib, "shai_torch_version");
            // SAFETY: the function takes nothing and returns a number (its type is the
            // interface's, whatever the library's version).
            let found = unsafe { version() };
            if found != abi::VERSION {
                return Err(format!(
                    "{} implements interface version {found}, this server version {}",
                    path.display(),
                    abi::VERSION
                ));
            }
            let init: abi::InitFn = sym!(lib, "shai_torch_init");
            let api = Api {
                cuda_devices: sym!(lib, "shai_torch_cuda_devices"),
                model_load: sym!(lib, "shai_torch_model_load"),
                model_run: sym!(lib, "shai_torch_model_run"),
                model_free: sym!(lib, "shai_torch_model_free"),
                module_names: sym!(lib, "shai_torch_module_names"),
                script_compile: sym!(lib, "shai_torch_script_compile"),
                script_signature: sym!(lib, "shai_torch_script_signature"),
                script_run: sym!(lib, "shai_torch_script_run"),
                script_free: sym!(lib, "shai_torch_script_free"),
                free_str: sym!(lib, "shai_torch_free_str"),
                _lib: None,
            };
            // SAFETY: called once per process (`API` is set once, under `OPENING`), before
            // any other call; the callbacks are functions of this binary.
            unsafe {
                init(
                    i32::try_from(threads.intra_op).unwrap_or(i32::MAX),
                    i32::try_from(threads.inter_op).unwrap_or(i32::MAX),
                    super::torch_script::execute_cb,
                    super::torch_script::model_cb,
                )
            };
            Ok(api)
        };
        match bind() {
            Ok(api) => Ok(Api {
                _lib: Some(std::mem::ManuallyDrop::into_inner(lib)),
                ..api
            }),
            Err(why) => Err(Refusal::Mapped(format!(
                "{why}: install the library built with this server, then restart it"
            ))),
        }
    }

    /// Takes a string the library returned (null: `default`).
    ///
    /// # Safety
    /// `p` is null or a string the library set in an out-pointer, not taken before.
    pub(super) unsafe fn take_str(&self, p: *mut c_char, default: &str) -> String {
        if p.is_null() {
            return default.into();
        }
        // SAFETY: the caller's contract: a NUL-terminated string the library allocated, read
        // once here and freed with its own free.
        let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        // SAFETY: as above; `p` is not used again.
        unsafe { (self.free_str)(p) };
        text
    }

    /// The interface's device number for `name` (`CPU`: -1; `GPU`, `GPU:n`: n), once
    /// libtorch sees that CUDA device.
    pub(super) fn device(&self, name: &str) -> Result<i32, Error> {
        let upper = name.to_ascii_uppercase();
        if upper.starts_with("CPU") {
            return Ok(-1);
        }
        let index: i64 = upper
            .strip_prefix("GPU:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let no_cuda = || Error::Verbatim("ERR GPU requested but Torch couldn't find CUDA".into());
        if index < 0 {
            return Err(no_cuda());
        }
        let mut why = std::ptr::null_mut();
        // SAFETY: `why` is a valid out-pointer.
        let count = unsafe { (self.cuda_devices)(&mut why) };
        if !why.is_null() {
            // SAFETY: set by the call above, taken once.
            let why = unsafe { self.take_str(why, "") };
            tracing::warn!(reason = %why, "could not open libtorch_cuda.so");
        }
        if index >= count || index > i64::from(i32::MAX) {
            return Err(no_cuda());
        }
        Ok(index as i32)
    }
}

/// The TORCH backend.
pub(super) struct Torch {
    api: Arc<Api>,
    version: String,
}

impl Torch {
    /// Opens the TORCH library at `lib` (once per process: later calls share the first);
    /// the version is that of the torch wheel whose libtorch the library mapped.
    pub(super) fn load(lib: &Path, threads: Settings) -> Result<Torch, String> {
        let api = {
            let mut refused = OPENING.lock();
            match (API.get(), refused.as_ref()) {
                (Some(api), _) => api.clone(),
                (None, Some(why)) => return Err(why.clone()),
                (None, None) => {
                    let api = match Api::open(lib, threads) {
                        Ok(api) => Arc::new(api),
                        Err(Refusal::NotOpened(why)) => return Err(why),
                        Err(Refusal::Mapped(why)) => {
                            *refused = Some(why.clone());
                            return Err(why);
                        }
                    };
                    let _ = API.set(api.clone());
                    tracing::info!(library = %lib.display(), "TORCH backend loaded");
                    api
                }
            }
        };
        Ok(Torch {
            api,
            version: torch_version().unwrap_or_else(|| "unknown".into()),
        })
    }
}

/// The version of the torch wheel whose `libtorch_cpu.so` this process mapped (its
/// `version.py`, beside `lib/`).
fn torch_version() -> Option<String> {
    let torch = abi::mapped_libtorch_dir()?.parent()?.to_path_buf();
    let text = std::fs::read_to_string(torch.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|s| s.trim().trim_matches(['\'', '"']).to_string())
}

impl Backend for Torch {
    fn version(&self) -> String {
        self.version.clone()
    }

    fn load(
        &self,
        blob: &[u8],
        device_name: &str,
        _inputs: &[String],
        _outputs: &[String],
    ) -> Result<Arc<dyn LoadedModel>, Error> {
        let dev = self.api.device(device_name)?;
        let mut error = std::ptr::null_mut();
        // SAFETY: `blob` is valid for its length for the call (the library copies what it
        // keeps); `error` is a valid out-pointer.
        let handle = unsafe { (self.api.model_load)(blob.as_ptr(), blob.len(), dev, &mut error) };
        if handle.is_null() {
            return Err(Error::Verbatim(
                // SAFETY: set by the failed call, taken once.
                unsafe { self.api.take_str(error, "ERR torch error") },
            ));
        }
        // For AI.MODELGET META only: a module whose names cannot be read still runs.
        let names = super::torch_script::module_names(&self.api, blob)
            .map_err(|e| tracing::warn!(error = %e, "could not read the module's forward names"))
            .ok();
        Ok(Arc::new(TorchModel {
            api: self.api.clone(),
            handle,
            names,
        }))
    }
}

/// A module loaded by the TORCH library.
struct TorchModel {
    api: Arc<Api>,
    handle: *mut c_void,
    /// `forward`'s parameter names and one empty name per declared output tensor.
    names: Option<(Vec<bytes::Bytes>, Vec<bytes::Bytes>)>,
}

// SAFETY: the handle is a `tch::CModule` that runs never change (it is set to eval mode
// once, at load); libtorch allows running a module's `forward` from several threads at once,
// and the handle is freed only in `drop`, when no run can be using it (runs borrow `self`).
unsafe impl Send for TorchModel {}
// SAFETY: see `Send`: runs only read the module.
unsafe impl Sync for TorchModel {}

impl Drop for TorchModel {
    fn drop(&mut self) {
        // SAFETY: `handle` came from `model_load`, is non-null and is freed once.
        unsafe { (self.api.model_free)(self.handle) };
    }
}

/// The interface's code for a stored tensor's type, for the types libtorch takes.
pub(super) fn code_of(d: DType) -> Result<i32, Error> {
    Ok(match d {
        DType::Float => dtype::FLOAT,
        DType::Double => dtype::DOUBLE,
        DType::Int8 => dtype::INT8,
        DType::Int16 => dtype::INT16,
        DType::Int32 => dtype::INT32,
        DType::Int64 => dtype::INT64,
        DType::Uint8 => dtype::UINT8,
        DType::Bool => dtype::BOOL,
        DType::Uint16 | DType::String => {
            return Err(Error::Verbatim(format!(
                "ERR {} tensors are not supported by the TORCH backend",
                d.name()
            )));
        }
    })
}

fn dtype_of(code: i32) -> Option<DType> {
    Some(match code {
        dtype::FLOAT => DType::Float,
        dtype::DOUBLE => DType::Double,
        dtype::INT8 => DType::Int8,
        dtype::INT16 => DType::Int16,
        dtype::INT32 => DType::Int32,
        dtype::INT64 => DType::Int64,
        dtype::UINT8 => DType::Uint8,
        dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

/// Shapes of `tensors` as the interface takes them (kept alive while their views are lent).
pub(super) fn shapes(tensors: &[Tensor]) -> Vec<Vec<i64>> {
    tensors
        .iter()
        .map(|t| t.shape().iter().map(|&d| d as i64).collect())
        .collect()
}

/// Views of `tensors` (with their `shapes`), valid while both are.
pub(super) fn views(tensors: &[Tensor], shapes: &[Vec<i64>]) -> Result<Vec<TensorView>, Error> {
    tensors
        .iter()
        .zip(shapes)
        .map(|(t, shape)| {
            Ok(TensorView {
                dtype: code_of(t.dtype())?,
                ndim: shape.len(),
                shape: shape.as_ptr(),
                data: t.data().as_ptr(),
                len: t.data().len(),
            })
        })
        .collect()
}

/// A stored tensor with a copy of a view's elements.
///
/// # Safety
/// `v` describes valid memory (see [`TensorView`]).
pub(super) unsafe fn from_view(v: &TensorView) -> Result<Tensor, Error> {
    let dtype = dtype_of(v.dtype)
        .ok_or_else(|| Error::Verbatim(format!("ERR unsupported output type code {}", v.dtype)))?;
    let shape: &[i64] = if v.ndim == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(v.shape, v.ndim) }
    };
    let data: &[u8] = if v.len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(v.data, v.len) }
    };
    let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    Tensor::from_blob(dtype, shape, Bytes::copy_from_slice(data))
}

/// What a [`collect`] sink gathers: the outputs in order, or the first error.
#[derive(Default)]
pub(super) struct Collected {
    pub(super) tensors: Vec<Tensor>,
    pub(super) error: Option<Error>,
}

/// The sink the library hands outputs to: copies each into a stored tensor.
///
/// # Safety
/// Called only by the library during a call whose sink context is a live `*mut Collected`.
pub(super) unsafe extern "C" fn collect(ctx: *mut c_void, view: *const TensorView) -> i32 {
    // SAFETY: the function's contract; the view is valid for the call.
    let (out, view) = unsafe { (&mut *ctx.cast::<Collected>(), &*view) };
    // SAFETY: the view is the library's, valid for this call.
    match unsafe { from_view(view) } {
        Ok(t) => {
            out.tensors.push(t);
            0
        }
        Err(e) => {
            out.error = Some(e);
            1
        }
    }
}

impl LoadedModel for TorchModel {
    /// `forward`'s parameters (as RedisAI counts them), when they could be read.
    fn num_inputs(&self) -> Option<usize> {
        self.names.as_ref().map(|(inputs, _)| inputs.len())
    }

    /// Not checked before a run: a module may return a list of any length.
    fn num_outputs(&self) -> Option<usize> {
        None
    }

    fn names(&self) -> Option<(Vec<bytes::Bytes>, Vec<bytes::Bytes>)> {
        self.names.clone()
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let shapes = shapes(inputs);
        let views = views(inputs, &shapes)?;
        let mut out = Collected::default();
        let mut error = std::ptr::null_mut();
        // SAFETY: `handle` is live (owned by self); the views point into `inputs` and
        // `shapes`, which outlive the call, and stored tensors are not written while shared;
        // `collect` takes `out`, a live `Collected`; `error` is a valid out-pointer.
        let rc = unsafe {
            (self.api.model_run)(
                self.handle,
                views.as_ptr(),
                views.len(),
                collect,
                (&mut out as *mut Collected).cast(),
                &mut error,
            )
        };
        match rc {
            0 => Ok(out.tensors),
            2 => Err(out
                .error
                .unwrap_or_else(|| Error::Verbatim("ERR torch error".into()))),
            _ => Err(Error::Verbatim(
                // SAFETY: set by the failed call, taken once.
                unsafe { self.api.take_str(error, "ERR torch error") },
            )),
        }
    }
}
