//! ONNX Runtime through `ort` (load-dynamic): `libonnxruntime` from the onnxruntime wheel.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, Weak},
    time::{Duration, Instant},
};

use bytes::Bytes;
use ort::{
    session::{RunOptions, Session, SessionInputValue},
    value::{
        DynMapValueType, DynSequenceValueType, DynValue, Tensor as OrtTensor, TensorElementType,
        TensorRef, ValueType,
    },
};
use parking_lot::{Condvar, Mutex};
use shardai_protocol::{DType, Error};

use super::{Backend, LoadedModel, Settings};
use crate::tensor::Tensor;

/// Finds `onnxruntime/capi/libonnxruntime.so*` under the backends path.
pub(super) fn find_library(path: Option<&Path>) -> Result<PathBuf, String> {
    let base = path.ok_or("no backends path: run scripts/setup or pass --backends-path")?;
    let capi = base.join("onnxruntime").join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&capi)
        .map_err(|e| format!("{}: {e}", capi.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    libs.sort();
    libs.pop()
        .ok_or_else(|| format!("no libonnxruntime.so in {}", capi.display()))
}

/// Starts ONNX Runtime's operator threads under the name `shardai-onnx-op`. Without it they take
/// the name of the thread that loaded the model, an I/O thread's, and a pool thread spinning
/// between runs showed in `top -H` as a busy `shardai-io`.
struct Named;

impl ort::environment::ThreadManager for Named {
    type Thread = std::thread::JoinHandle<()>;

    fn create(&self, work: impl FnOnce() + Send + 'static) -> ort::Result<Self::Thread> {
        // The stack ONNX Runtime's own threads would get (the pthread default, 8 MiB under
        // the usual `ulimit -s`), where Rust's default is 2 MiB.
        std::thread::Builder::new()
            .name("shardai-onnx-op".into())
            .stack_size(8 << 20)
            .spawn(work)
            .map_err(|e| ort::Error::new(format!("cannot start an operator thread: {e}")))
    }

    fn join(thread: Self::Thread) -> ort::Result<()> {
        thread
            .join()
            .map_err(|_| ort::Error::new("an operator thread panicked"))
    }
}

/// The loaded ONNX Runtime library and its environment.
pub(super) struct Onnx {
    env: ort::environment::Environment,
    version: String,
    threads: Settings,
}

impl Onnx {
    pub(super) fn load(lib: &Path, threads: Settings) -> Result<Onnx, String> {
        let env = ort::init_from(lib)
            .map_err(|e| format!("{}: {e}", lib.display()))?
            .with_name("shardai")
            .build()
            .map_err(|e| e.to_string())?;
        // Without it ONNX still runs, without BACKEND_MEMORY_LIMIT.
        if let Err(e) = super::onnx_memory::register(&env) {
            tracing::warn!(error = %e, "ONNX Runtime runs without BACKEND_MEMORY_LIMIT");
        }
        let version = lib
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("libonnxruntime.so."))
            .map_or_else(|| ort::info().to_string(), str::to_string);
        Ok(Onnx {
            env,
            version,
            threads,
        })
    }
}

impl Backend for Onnx {
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
        super::cpu_only(device, "ONNX Runtime was not built with CUDA")?;
        let verbatim =
            |e: &dyn std::fmt::Display| Error::Verbatim(e.to_string().replace(['\r', '\n'], " "));
        // CPU memory from the environment's allocator: counted, and held to
        // BACKEND_MEMORY_LIMIT (`onnx_memory`).
        let mut builder = Session::builder(&self.env)
            .map_err(|e| verbatim(&e))?
            .with_env_allocators()
            .map_err(|e| verbatim(&e))?;
        if self.threads.onnx_no_spinning {
            builder = builder
                .with_intra_op_spinning(false)
                .map_err(|e| verbatim(&e))?;
        }
        builder = builder
            .with_thread_manager(Named)
            .map_err(|e| verbatim(&e))?;
        if self.threads.intra_op > 0 {
            builder = builder
                .with_intra_threads(self.threads.intra_op)
                .map_err(|e| verbatim(&e))?;
        }
        if self.threads.inter_op > 0 {
            builder = builder
                .with_inter_threads(self.threads.inter_op)
                .map_err(|e| verbatim(&e))?;
        }
        let session = builder.commit_from_memory(blob).map_err(|e| verbatim(&e))?;
        let names = |o: &[ort::value::Outlet]| {
            o.iter()
                .map(|o| Bytes::copy_from_slice(o.name().as_bytes()))
                .collect::<Vec<_>>()
        };
        let (inputs, outputs) = (names(session.inputs()), names(session.outputs()));
        Ok(Arc::new(OnnxModel {
            session: Mutex::new(session),
            inputs,
            outputs,
            timeout: (self.threads.execution_timeout_ms > 0)
                .then(|| Duration::from_millis(self.threads.execution_timeout_ms)),
        }))
    }
}

struct OnnxModel {
    session: Mutex<Session>,
    /// The graph's input names, in order.
    inputs: Vec<Bytes>,
    /// The graph's output names, in order.
    outputs: Vec<Bytes>,
    /// MODEL_EXECUTION_TIMEOUT: a run still going after this is terminated.
    timeout: Option<Duration>,
}

/// Runs in progress with a time limit, and the thread that terminates those that overrun
/// (ONNX Runtime stops a run whose `RunOptions` are set to terminate).
/// Entries are in start order, which is deadline order (one timeout for every run); finished
/// runs (dead `Weak`s) are dropped when they reach the front.
struct Watchdog {
    runs: Mutex<VecDeque<(Instant, Weak<RunOptions>)>>,
    changed: Condvar,
}

impl Watchdog {
    fn get() -> &'static Watchdog {
        static DOG: OnceLock<&'static Watchdog> = OnceLock::new();
        DOG.get_or_init(|| {
            let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
                runs: Mutex::new(VecDeque::new()),
                changed: Condvar::new(),
            }));
            if let Err(e) = std::thread::Builder::new()
                .name("shardai-onnx-watchdog".into())
                .spawn(move || dog.watch())
            {
                tracing::warn!(error = %e, "no MODEL_EXECUTION_TIMEOUT watchdog thread");
            }
            dog
        })
    }

    fn watch(&self) {
        let mut runs = self.runs.lock();
        loop {
            let now = Instant::now();
            while let Some((deadline, opts)) = runs.front() {
                match opts.upgrade() {
                    None => {}
                    Some(o) if *deadline <= now => {
                        let _ = o.terminate();
                    }
                    Some(_) => break,
                }
                runs.pop_front();
            }
            match runs.front().map(|(d, _)| *d) {
                Some(next) => {
                    self.changed.wait_until(&mut runs, next);
                }
                None => self.changed.wait(&mut runs),
            }
        }
    }

    fn add(&self, deadline: Instant, opts: &Arc<RunOptions>) {
        let mut runs = self.runs.lock();
        runs.push_back((deadline, Arc::downgrade(opts)));
        // The watchdog only needs waking when it was sleeping with nothing to watch.
        if runs.len() == 1 {
            self.changed.notify_one();
        }
    }
}

fn ort_err(e: impl std::fmt::Display) -> Error {
    Error::Verbatim(format!("ERR {e}").replace(['\r', '\n'], " "))
}

/// A numeric input: borrowed in place when the stored bytes are aligned for the element type
/// (big BLOBs are: the connection reads them to a 64-byte boundary), else copied.
macro_rules! numeric {
    ($t:ty, $n:expr, $shape:expr, $data:expr) => {{
        match bytemuck::try_cast_slice::<u8, $t>($data) {
            Ok(elems) => TensorRef::from_array_view(($shape, elems))
                .map(SessionInputValue::from)
                .map_err(ort_err),
            Err(_) => {
                let v: Vec<$t> = $data
                    .chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n])))
                    .collect();
                OrtTensor::from_array(($shape, v))
                    .map(|t| SessionInputValue::from(t.into_dyn()))
                    .map_err(ort_err)
            }
        }
    }};
}

/// An ONNX Runtime input for a stored tensor, valid while the tensor is borrowed.
fn to_ort(t: &Tensor) -> Result<SessionInputValue<'_>, Error> {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    let d = t.data();
    match t.dtype() {
        DType::Float => numeric!(f32, 4, shape, d),
        DType::Double => numeric!(f64, 8, shape, d),
        DType::Int8 => numeric!(i8, 1, shape, d),
        DType::Int16 => numeric!(i16, 2, shape, d),
        DType::Int32 => numeric!(i32, 4, shape, d),
        DType::Int64 => numeric!(i64, 8, shape, d),
        DType::Uint8 => numeric!(u8, 1, shape, d),
        DType::Uint16 => numeric!(u16, 2, shape, d),
        DType::Bool => {
            let v: Vec<bool> = d.iter().map(|&b| b != 0).collect();
            OrtTensor::from_array((shape, v))
                .map(|t| SessionInputValue::from(t.into_dyn()))
                .map_err(ort_err)
        }
        DType::String => {
            let strings: Vec<String> = match t.values() {
                crate::tensor::Values::Strings(s) => s
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect(),
                _ => Vec::new(),
            };
            OrtTensor::from_string_array((shape, strings.as_slice()))
                .map(|t| SessionInputValue::from(t.into_dyn()))
                .map_err(ort_err)
        }
    }
}

macro_rules! extract {
    ($v:expr, $t:ty, $dtype:expr) => {{
        let (shape, data) = $v.try_extract_tensor::<$t>().map_err(ort_err)?;
        let mut bytes = Vec::with_capacity(data.len() * std::mem::size_of::<$t>());
        for x in data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        (
            shape.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>(),
            $dtype,
            bytes,
        )
    }};
}

/// A sequence of maps from class to score, as scikit-learn classifiers exported with ZipMap
/// produce, as a FLOAT tensor of one row per map and one column per class, the classes in
/// their sorted order (integer classes by value, string classes by their bytes).
fn from_ort_zipmap(v: &DynValue) -> Result<Tensor, Error> {
    let unsupported = || {
        Error::Verbatim(format!(
            "ERR unsupported output type {:?}: only tensors and sequences of maps from \
             INT64 or STRING to FLOAT are supported",
            v.dtype()
        ))
    };
    let seq = v
        .view()
        .downcast::<DynSequenceValueType>()
        .map_err(|_| unsupported())?;
    let maps = seq
        .try_extract_sequence::<DynMapValueType>()
        .map_err(ort_err)?;
    /// A map's classes, sorted.
    #[derive(PartialEq)]
    enum Classes {
        Int(Vec<i64>),
        Str(Vec<String>),
    }
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(maps.len());
    let mut first: Option<Classes> = None;
    for m in &maps {
        let (keys, row) = match m.try_extract_key_values::<i64, f32>() {
            Ok(mut kv) => {
                kv.sort_by_key(|(k, _)| *k);
                let (k, v) = kv.into_iter().unzip();
                (Classes::Int(k), v)
            }
            Err(_) => {
                let mut kv = m
                    .try_extract_key_values::<String, f32>()
                    .map_err(|_| unsupported())?;
                kv.sort_by(|a, b| a.0.cmp(&b.0));
                let (k, v) = kv.into_iter().unzip();
                (Classes::Str(k), v)
            }
        };
        match &first {
            None => first = Some(keys),
            Some(f) if *f != keys => {
                return Err(Error::Verbatim(
                    "ERR the model's maps of class scores differ in their classes".into(),
                ));
            }
            Some(_) => {}
        }
        rows.push(row);
    }
    let classes = rows.first().map(Vec::len);
    let shape = vec![rows.len(), classes.unwrap_or(0)];
    if shape.contains(&0) {
        return Err(Error::Verbatim("ERR model produced an empty tensor".into()));
    }
    let bytes: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    Tensor::from_blob(DType::Float, shape, Bytes::from(bytes))
}

/// Copies an ONNX Runtime output into a tensor.
fn from_ort(v: &DynValue) -> Result<Tensor, Error> {
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        ValueType::Sequence(_) => return from_ort_zipmap(v),
        other => {
            return Err(Error::Verbatim(format!(
                "ERR unsupported output type {other:?}"
            )));
        }
    };
    let (shape, dtype, bytes) = match ty {
        TensorElementType::Float32 => extract!(v, f32, DType::Float),
        TensorElementType::Float64 => extract!(v, f64, DType::Double),
        TensorElementType::Int8 => extract!(v, i8, DType::Int8),
        TensorElementType::Int16 => extract!(v, i16, DType::Int16),
        TensorElementType::Int32 => extract!(v, i32, DType::Int32),
        TensorElementType::Int64 => extract!(v, i64, DType::Int64),
        TensorElementType::Uint8 => extract!(v, u8, DType::Uint8),
        TensorElementType::Uint16 => extract!(v, u16, DType::Uint16),
        TensorElementType::Bool => {
            let (shape, data) = v.try_extract_tensor::<bool>().map_err(ort_err)?;
            let bytes = data.iter().map(|&b| b as u8).collect();
            (
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                DType::Bool,
                bytes,
            )
        }
        TensorElementType::String => {
            let (shape, strings) = v.try_extract_strings().map_err(ort_err)?;
            let mut bytes = Vec::new();
            for s in strings {
                bytes.extend_from_slice(s.as_bytes());
                bytes.push(0);
            }
            (
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                DType::String,
                bytes,
            )
        }
        other => {
            return Err(Error::Verbatim(format!(
                "ERR unsupported output data type {other:?}"
            )));
        }
    };
    // A zero-sized dimension cannot be stored as a RedisAI tensor.
    if shape.contains(&0) {
        return Err(Error::Verbatim("ERR model produced an empty tensor".into()));
    }
    Tensor::from_blob(dtype, shape, Bytes::from(bytes))
}

impl LoadedModel for OnnxModel {
    fn num_inputs(&self) -> Option<usize> {
        Some(self.inputs.len())
    }

    fn num_outputs(&self) -> Option<usize> {
        Some(self.outputs.len())
    }

    fn names(&self) -> Option<(Vec<Bytes>, Vec<Bytes>)> {
        Some((self.inputs.clone(), self.outputs.clone()))
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let values = inputs.iter().map(to_ort).collect::<Result<Vec<_>, _>>()?;
        let mut session = self.session.lock();
        let names: Vec<String> = session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let feed: Vec<(String, SessionInputValue<'_>)> = names.into_iter().zip(values).collect();
        let opts = match self.timeout {
            None => None,
            Some(limit) => {
                let opts = Arc::new(RunOptions::new().map_err(ort_err)?);
                Watchdog::get().add(Instant::now() + limit, &opts);
                Some(opts)
            }
        };
        let outputs = match &opts {
            None => session.run(feed).map_err(ort_err)?,
            Some(opts) => session.run_with_options(feed, &**opts).map_err(ort_err)?,
        };
        let mut out = Vec::with_capacity(outputs.len());
        for (_, v) in outputs.iter() {
            out.push(from_ort(&v)?);
        }
        Ok(out)
    }
}
