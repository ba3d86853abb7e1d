//! Model backends behind one trait: load a serialized model for a device, run a batch of
//! input tensors into output tensors, report the library's version.
//!
//! Each backend is compiled in behind a cargo feature and loads its native library at run
//! time from the backends path (the project venv's `site-packages` by default), so a missing
//! library is an `ERR Could not load backend` for that backend only, with the reason logged.
//! Backend calls run on the run-queue threads (`crate::queue`), never on async workers.

#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "torch")]
mod torch;

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
    fn run(&self, inputs: &[Arc<Tensor>]) -> Result<Vec<Tensor>, Error>;
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

/// The backends of this process, each loaded on first use.
#[derive(Default)]
pub struct Backends {
    path: Mutex<Option<PathBuf>>,
    /// Only a successful load is kept: a failed one (a wrong LOADBACKEND path) can be retried.
    onnx: Mutex<Option<Arc<dyn Backend>>>,
    torch: Mutex<Option<Arc<dyn Backend>>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("path", &*self.path.lock())
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// Backends found under `path` (a `site-packages` folder holding the wheels).
    pub fn new(path: Option<PathBuf>) -> Self {
        Backends {
            path: Mutex::new(path),
            onnx: Mutex::new(None),
            torch: Mutex::new(None),
        }
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
        match kind {
            Kind::Onnx => {
                let mut slot = self.onnx.lock();
                if let Some(b) = slot.as_ref() {
                    return Ok(b.clone());
                }
                let b = self.load_onnx(None)?;
                *slot = Some(b.clone());
                Ok(b)
            }
            Kind::Torch => {
                let mut slot = self.torch.lock();
                if let Some(b) = slot.as_ref() {
                    return Ok(b.clone());
                }
                let b = self.load_torch()?;
                *slot = Some(b.clone());
                Ok(b)
            }
            other => Err(not_built(other)),
        }
    }

    /// Loads `kind` from an explicit library file (AI.CONFIG LOADBACKEND). A backend that is
    /// already loaded stays as it is (one library per process).
    pub fn load_from(&self, kind: Kind, lib: &Path) -> Result<(), String> {
        match kind {
            Kind::Onnx => {
                let mut slot = self.onnx.lock();
                if slot.is_none() {
                    *slot = Some(self.load_onnx(Some(lib.to_path_buf()))?);
                }
                Ok(())
            }
            // libtorch is linked into the binary: there is nothing to load from a path.
            Kind::Torch => self.get(Kind::Torch).map(|_| ()),
            other => Err(not_built(other)),
        }
    }

    /// Versions of the backends loaded so far, for INFO.
    pub fn versions(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(b) = self.onnx.lock().as_ref() {
            out.push(("onnxruntime", b.version()));
        }
        if let Some(b) = self.torch.lock().as_ref() {
            out.push(("Torch", b.version()));
        }
        out
    }

    #[cfg(feature = "onnx")]
    fn load_onnx(&self, lib: Option<PathBuf>) -> Result<Arc<dyn Backend>, String> {
        let lib = match lib {
            Some(l) => l,
            None => onnx::find_library(self.path().as_deref())?,
        };
        Ok(Arc::new(onnx::Onnx::load(&lib)?))
    }

    #[cfg(feature = "torch")]
    fn load_torch(&self) -> Result<Arc<dyn Backend>, String> {
        // The version of the wheel libtorch came from, when it is on the backends path.
        let version = self
            .path()
            .and_then(|p| std::fs::read_to_string(p.join("torch").join("version.py")).ok())
            .and_then(|v| {
                v.lines()
                    .find_map(|l| l.strip_prefix("__version__ = "))
                    .map(|s| s.trim().trim_matches(['\'', '"']).to_string())
            })
            .unwrap_or_else(|| "linked".into());
        Ok(Arc::new(torch::Torch { version }))
    }

    #[cfg(not(feature = "torch"))]
    fn load_torch(&self) -> Result<Arc<dyn Backend>, String> {
        Err(not_built(Kind::Torch))
    }

    #[cfg(not(feature = "onnx"))]
    fn load_onnx(&self, _lib: Option<PathBuf>) -> Result<Arc<dyn Backend>, String> {
        Err("this shardai was built without the `onnx` feature".into())
    }
}

fn not_built(kind: Kind) -> String {
    format!(
        "the {} backend is not built into this shardai yet",
        kind.name()
    )
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
