//! Model backends behind one trait: load a serialized model for a device, run a batch of
//! input tensors into output tensors, report the library's version.
//!
//! Each backend is compiled in behind a cargo feature and opens its native library on first
//! use: ONNX, TF and TFLITE from the backends path (the project venv's `site-packages` by
//! default), TORCH as `libshardai_torch.so` from beside the server binary (it loads
//! libtorch). A missing library is an `ERR Could not load backend` for that backend only,
//! with the reason logged, and a server maps only the libraries its models use.
//! Backend calls run on the run-queue threads (`crate::queue`), never on async workers.

/// Looks `$name` up in `$lib` (a `libloading::Library`) as the type of the `Api` field it is
/// assigned to, or returns the symbol's name and the loader's error from the enclosing fn.
#[cfg(any(feature = "tf", feature = "tflite", feature = "torch"))]
macro_rules! sym {
    ($lib:expr, $name:literal) => {
        // SAFETY: `Library::get` is unsafe because the symbol's real type must be the one
        // asked for: each backend's `Api` declares its fields with the prototypes of its
        // library's C headers (its `ffi` module says which). The pointer is copied out of the
        // `Symbol` borrow; that is sound because `Api` owns the `Library` and so outlives
        // every use of the pointer.
        *unsafe { $lib.get(concat!($name, "\0").as_bytes()) }
            .map_err(|e| format!("{}: {e}", $name))?
    };
}

#[cfg(feature = "onnx")]
mod onnx;
pub mod onnx_memory;
#[cfg(feature = "tf")]
mod tf;
#[cfg(feature = "tflite")]
mod tflite;
#[cfg(feature = "torch")]
mod torch;
#[cfg(feature = "torch")]
mod torch_script;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::Mutex;
use shardai_protocol::{Error, command::Backend as Kind};

use crate::tensor::Tensor;

/// A model loaded into a backend, ready to run.
pub trait LoadedModel: Send + Sync {
    /// Number of inputs the model takes, when the library can tell before running it.
    fn num_inputs(&self) -> Option<usize>;
    /// Number of outputs it produces, when the library can tell before running it.
    fn num_outputs(&self) -> Option<usize>;
    /// Runs the model once. Called from a run-queue thread.
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error>;
    /// Why the model is not loaded on this node, for a model kept without its backend.
    fn load_error(&self) -> Option<&str> {
        None
    }
    /// The input and output names the model itself declares, when the library tells them
    /// (what AI.MODELGET META lists when none were given at store time).
    fn names(&self) -> Option<(Vec<bytes::Bytes>, Vec<bytes::Bytes>)> {
        None
    }
}

/// Models kept on this node without a loaded backend (see [`NotLoaded`]).
static NOT_LOADED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The models on this node kept without a loaded backend, for INFO.
pub fn models_not_loaded() -> usize {
    NOT_LOADED.load(std::sync::atomic::Ordering::Relaxed)
}

/// A replicated model that this node could not load (its backend library is missing here,
/// say). The model stays stored, since its blob is data the other replicas hold too: it
/// answers every run with the load error until it is loaded again (after AI.CONFIG
/// LOADBACKEND or BACKENDSPATH), instead of vanishing from this replica.
#[derive(Debug)]
pub struct NotLoaded {
    error: String,
}

impl NotLoaded {
    /// A model that failed to load with `error` (its wire text).
    pub fn new(error: String) -> Self {
        NOT_LOADED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        NotLoaded { error }
    }
}

impl Drop for NotLoaded {
    fn drop(&mut self) {
        NOT_LOADED.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl LoadedModel for NotLoaded {
    fn num_inputs(&self) -> Option<usize> {
        None
    }
    fn num_outputs(&self) -> Option<usize> {
        None
    }
    fn run(&self, _: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let why = self.error.strip_prefix("ERR ").unwrap_or(&self.error);
        Err(Error::Verbatim(format!(
            "ERR the model is stored but could not be loaded on this node ({why}): make its \
             backend available here (AI.CONFIG LOADBACKEND or BACKENDSPATH) to run it"
        )))
    }
    fn load_error(&self) -> Option<&str> {
        Some(&self.error)
    }
}

/// A backend library.
pub trait Backend: Send + Sync {
    /// The library's version, for INFO.
    fn version(&self) -> String;
    /// Loads a serialized model for `device`; `inputs`/`outputs` are node names (TF only).
    fn load(
        &self,
        blob: &[u8],
        device: &str,
        inputs: &[String],
        outputs: &[String],
    ) -> Result<Arc<dyn LoadedModel>, Error>;
}

/// Settings every backend gets (RedisAI's INTRA_OP_PARALLELISM, INTER_OP_PARALLELISM and
/// MODEL_EXECUTION_TIMEOUT); 0 leaves the library's own default, or no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Threads one operator may use.
    pub intra_op: usize,
    /// Operators that may run at once.
    pub inter_op: usize,
    /// Longest one run may take, in ms, before the library is told to stop it (ONNX only,
    /// as in RedisAI).
    pub execution_timeout_ms: u64,
    /// ONNX Runtime's operator threads sleep between runs instead of spinning for the next
    /// one (its `session.intra_op.allow_spinning` off).
    pub onnx_no_spinning: bool,
}

/// The backends of this process, each loaded on first use.
#[derive(Default)]
pub struct Backends {
    path: Mutex<Option<PathBuf>>,
    threads: Settings,
    /// One slot per backend, in `Kind::ALL` order. Only a successful load is kept: a failed
    /// one (a wrong LOADBACKEND path, a library not installed yet) can be retried.
    slots: [Mutex<Option<Arc<dyn Backend>>>; 4],
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("path", &*self.path.lock())
            .finish_non_exhaustive()
    }
}

/// For the CPU-only libraries (the wheels are CPU builds): `GPU` and `GPU:n` are refused with
/// `ERR GPU requested but <why> (device <device>)`.
#[allow(dead_code)] // unused when a build leaves every CPU-only backend out
fn cpu_only(device: &str, why: &str) -> Result<(), Error> {
    if device.to_ascii_uppercase().starts_with("CPU") {
        Ok(())
    } else {
        Err(Error::Verbatim(format!(
            "ERR GPU requested but {why} (device {device})"
        )))
    }
}

fn slot(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Backends {
    /// Backends found under `path` (a `site-packages` folder holding the wheels).
    pub fn new(path: Option<PathBuf>) -> Self {
        Self::with_threads(path, Settings::default())
    }

    /// Backends found under `path` whose models use `threads`.
    pub fn with_threads(path: Option<PathBuf>, threads: Settings) -> Self {
        Backends {
            path: Mutex::new(path),
            threads,
            slots: Default::default(),
        }
    }

    /// The thread settings models are loaded with.
    pub fn threads(&self) -> Settings {
        self.threads
    }

    /// Changes where libraries are looked for (AI.CONFIG BACKENDSPATH); backends already
    /// loaded stay loaded.
    pub fn set_path(&self, path: PathBuf) {
        *self.path.lock() = Some(path);
    }

    /// The current backends path.
    pub fn path(&self) -> Option<PathBuf> {
        self.path.lock().clone()
    }

    /// The backend for `kind`, loading its library on first use. The error string says why
    /// it cannot be loaded (for the log); clients get `ERR Could not load backend`.
    pub fn get(&self, kind: Kind) -> Result<Arc<dyn Backend>, String> {
        let mut slot = self.slots[slot(kind)].lock();
        if let Some(b) = slot.as_ref() {
            return Ok(b.clone());
        }
        let b = self.open(kind, None)?;
        *slot = Some(b.clone());
        Ok(b)
    }

    /// Loads a model as AI.MODELSTORE gives it (node names as sent) into `kind`'s library,
    /// loading the library on first use. Blocking: call it on a blocking thread.
    pub fn load_model(
        &self,
        kind: Kind,
        blob: &[u8],
        device: &str,
        inputs: &[bytes::Bytes],
        outputs: &[bytes::Bytes],
    ) -> Result<Arc<dyn LoadedModel>, Error> {
        let names = |v: &[bytes::Bytes]| -> Vec<String> {
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        };
        let backend = self.get(kind).map_err(|why| {
            tracing::warn!(backend = kind.name(), reason = %why, "Could not load backend");
            Error::CouldNotLoadBackend
        })?;
        backend.load(blob, device, &names(inputs), &names(outputs))
    }

    /// Compiles a TorchScript script's `source` for `device` (AI.SCRIPTSTORE). Blocking: call
    /// it on a blocking thread.
    pub fn compile_script(
        &self,
        source: &[u8],
        device: &str,
    ) -> Result<Arc<dyn crate::script::CompiledScript>, Error> {
        self.get(Kind::Torch).map_err(|why| {
            tracing::warn!(backend = "TORCH", reason = %why, "Could not load backend");
            Error::CouldNotLoadBackend
        })?;
        #[cfg(feature = "torch")]
        return torch_script::compile(source, device);
        #[cfg(not(feature = "torch"))]
        {
            let _ = (source, device);
            Err(Error::CouldNotLoadBackend)
        }
    }

    /// Loads `kind` from an explicit library file (AI.CONFIG LOADBACKEND). A backend that is
    /// already loaded stays as it is (one library per process).
    pub fn load_from(&self, kind: Kind, lib: &Path) -> Result<(), String> {
        let mut slot = self.slots[slot(kind)].lock();
        if slot.is_none() {
            *slot = Some(self.open(kind, Some(lib.to_path_buf()))?);
        }
        Ok(())
    }

    /// Versions of the backends loaded so far, for INFO (RedisAI's library names).
    pub fn versions(&self) -> Vec<(&'static str, String)> {
        Kind::ALL
            .iter()
            .filter_map(|&k| {
                let b = self.slots[slot(k)].lock().clone()?;
                let name = match k {
                    Kind::Tf => "TF",
                    Kind::TfLite => "TFLite",
                    Kind::Torch => "Torch",
                    Kind::Onnx => "onnxruntime",
                };
                Some((name, b.version()))
            })
            .collect()
    }

    /// Opens `kind`'s library: `lib` when given, else the one found under the backends path.
    fn open(&self, kind: Kind, lib: Option<PathBuf>) -> Result<Arc<dyn Backend>, String> {
        let base = self.path();
        let base = base.as_deref();
        let threads = self.threads;
        // Unused when a build leaves every path-loaded backend out.
        let _ = (&base, &lib, threads);
        let found: Result<Arc<dyn Backend>, String> = match kind {
            #[cfg(feature = "onnx")]
            Kind::Onnx => {
                let lib = lib.map_or_else(|| onnx::find_library(base), Ok)?;
                Ok(Arc::new(onnx::Onnx::load(&lib, threads)?))
            }
            #[cfg(feature = "torch")]
            Kind::Torch => {
                let lib = lib.map_or_else(torch::find_library, Ok)?;
                Ok(Arc::new(torch::Torch::load(&lib, threads)?))
            }
            #[cfg(feature = "tf")]
            Kind::Tf => {
                let lib = lib.map_or_else(|| tf::find_library(base), Ok)?;
                Ok(Arc::new(tf::Tf::load(&lib, threads)?))
            }
            #[cfg(feature = "tflite")]
            Kind::TfLite => {
                let lib = lib.map_or_else(|| tflite::find_library(base), Ok)?;
                Ok(Arc::new(tflite::TfLite::load(&lib, threads)?))
            }
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "this shardai was built without the {} backend",
                other.name()
            )),
        };
        found
    }
}

/// The default backends path: the project venv's `site-packages` next to the binary's
/// checkout (`target/<profile>/shardai` → `.venv/lib/python3.*/site-packages`), if present.
pub fn default_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let root = exe.parent()?.parent()?.parent()?;
    let lib = root.join(".venv").join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("site-packages")))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found.pop()
}
