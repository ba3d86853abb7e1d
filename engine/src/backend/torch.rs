//! PyTorch through `tch`: TorchScript modules as `torch.jit.save` writes them, on libtorch
//! from the torch wheel (linked at build time, found at run time through the rpath).
//!
//! CPU inputs are lent to libtorch in place (`from_blob` over the stored tensor's bytes, which
//! the run holds until the outputs are copied out). The linker drops `libtorch_cuda.so`
//! because nothing references it, so the first GPU model opens it from beside
//! `libtorch_cpu.so` (RTLD_GLOBAL, which registers libtorch's CUDA hooks).
//!
//! This module owns the two `unsafe` calls the backend needs (lending a stored tensor's bytes
//! to libtorch, opening libtorch_cuda), each with why it is sound; everything else goes
//! through `tch`'s safe API. It must not block an async worker: it runs on the run-queue
//! threads and, for loading, on blocking threads.
#![allow(unsafe_code)]

use std::{io::Cursor, sync::Arc};

use bytes::Bytes;
use shardai_protocol::{DType, Error};
use tch::{CModule, Device, IValue, Kind};

use super::{Backend, LoadedModel, Settings};
use crate::tensor::Tensor;

/// The TORCH backend.
pub(super) struct Torch {
    version: String,
}

impl Torch {
    /// The backend; its version is the torch wheel's when that is on the backends path.
    pub(super) fn new(path: Option<&std::path::Path>, threads: Settings) -> Torch {
        // libtorch's thread pools are process-wide; the inter-op pool can be sized only
        // before its first use, which is now (the backend is created once).
        if threads.intra_op > 0 {
            tch::set_num_threads(threads.intra_op as i32);
        }
        if threads.inter_op > 0 {
            tch::set_num_interop_threads(threads.inter_op as i32);
        }
        let version = path
            .and_then(|p| std::fs::read_to_string(p.join("torch").join("version.py")).ok())
            .and_then(|v| {
                v.lines()
                    .find_map(|l| l.strip_prefix("__version__ = "))
                    .map(|s| s.trim().trim_matches(['\'', '"']).to_string())
            })
            .unwrap_or_else(|| "linked".into());
        Torch { version }
    }
}

pub(super) fn err(e: impl std::fmt::Display) -> Error {
    // libtorch errors carry a C++ backtrace after the first line.
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("torch error")
        .trim()
        .to_string();
    Error::Verbatim(format!("ERR {first}"))
}

/// The folder of the `libtorch_cpu.so` this process mapped, from /proc/self/maps.
fn torch_lib_dir() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
}

/// Opens `libtorch_cuda.so` once (kept open for the life of the process). The outcome is
/// logged by the caller through the GPU error when CUDA stays unavailable.
fn load_torch_cuda() -> &'static Result<(), String> {
    static CUDA: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    CUDA.get_or_init(|| {
        let dir = torch_lib_dir().ok_or("libtorch_cpu.so is not mapped")?;
        let path = dir.join("libtorch_cuda.so");
        // SAFETY: opening libtorch_cuda runs its static initialisers, which register CUDA
        // hooks with the libtorch_cpu this process already mapped (the one found above, so
        // the two come from the same wheel). The `OnceLock` opens it at most once, and it is
        // never unloaded (`forget` below), so the hooks never point into unmapped code.
        let lib = unsafe {
            libloading::os::unix::Library::open(
                Some(&path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
            )
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        std::mem::forget(lib);
        Ok(())
    })
}

pub(super) fn device(name: &str) -> Result<Device, Error> {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("CPU") {
        return Ok(Device::Cpu);
    }
    let index = upper
        .strip_prefix("GPU:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if let Err(why) = load_torch_cuda() {
        tracing::warn!(reason = %why, "could not open libtorch_cuda.so");
    }
    if !tch::Cuda::is_available() || index >= tch::Cuda::device_count() as usize {
        return Err(Error::Verbatim(
            "ERR GPU requested but Torch couldn't find CUDA".into(),
        ));
    }
    Ok(Device::Cuda(index))
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
        let dev = device(device_name)?;
        let mut module = CModule::load_data_on_device(&mut Cursor::new(blob), dev).map_err(err)?;
        module.set_eval();
        // For AI.MODELGET META only: a module whose names cannot be read still runs.
        let names = super::torch_script::module_names(blob)
            .map_err(|e| tracing::warn!(error = %e, "could not read the module's forward names"))
            .ok();
        Ok(Arc::new(TorchModel {
            module,
            device: dev,
            names,
        }))
    }
}

struct TorchModel {
    module: CModule,
    device: Device,
    /// `forward`'s parameter names and one empty name per declared output tensor.
    names: Option<(Vec<bytes::Bytes>, Vec<bytes::Bytes>)>,
}

pub(super) fn kind_of(d: DType) -> Result<Kind, Error> {
    Ok(match d {
        DType::Float => Kind::Float,
        DType::Double => Kind::Double,
        DType::Int8 => Kind::Int8,
        DType::Int16 => Kind::Int16,
        DType::Int32 => Kind::Int,
        DType::Int64 => Kind::Int64,
        DType::Uint8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
        DType::Uint16 | DType::String => {
            return Err(Error::Verbatim(format!(
                "ERR {} tensors are not supported by the TORCH backend",
                d.name()
            )));
        }
    })
}

fn dtype_of(k: Kind) -> Result<DType, Error> {
    Ok(match k {
        Kind::Float => DType::Float,
        Kind::Double => DType::Double,
        Kind::Int8 => DType::Int8,
        Kind::Int16 => DType::Int16,
        Kind::Int => DType::Int32,
        Kind::Int64 => DType::Int64,
        Kind::Uint8 => DType::Uint8,
        Kind::Bool => DType::Bool,
        other => {
            return Err(Error::Verbatim(format!(
                "ERR unsupported output type {other:?}"
            )));
        }
    })
}

/// A libtorch tensor over the stored tensor's bytes (without a copy when they are aligned for
/// the element type, as they usually are). The caller keeps `t` alive for as long as the
/// returned tensor (the run's inputs outlive the run, and outputs are copied out before it
/// returns).
fn to_torch(t: &Tensor, dev: Device) -> Result<tch::Tensor, Error> {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    let kind = kind_of(t.dtype())?;
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let align = t.dtype().size().unwrap_or(1).max(1);
    let x = if (t.data().as_ptr() as usize).is_multiple_of(align) {
        // SAFETY: the blob holds exactly `product(shape) * element size` bytes (checked when
        // the tensor was built), laid out row-major as `strides` says, so every element
        // libtorch indexes is inside it; its start is aligned for the element type (checked
        // just above); it outlives the tensor (see above). libtorch never frees memory given
        // to `from_blob`. TorchScript models do not write to their inputs (RedisAI gives them
        // its stored tensors the same way); one that did would change the stored tensor.
        unsafe { tch::Tensor::f_from_blob(t.data().as_ptr(), &shape, &strides, kind, Device::Cpu) }
            .map_err(err)?
    } else {
        // A BLOB kept in place in a request buffer, or decoded from a Raft entry, may start
        // at any byte: libtorch gets an aligned copy.
        tch::Tensor::f_from_data_size(t.data(), &shape, kind).map_err(err)?
    };
    if dev == Device::Cpu {
        Ok(x)
    } else {
        x.f_to_device(dev).map_err(err)
    }
}

pub(super) fn from_torch(t: &tch::Tensor) -> Result<Tensor, Error> {
    let t = t.f_to_device(Device::Cpu).map_err(err)?.contiguous();
    let dtype = dtype_of(t.kind())?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d.max(0) as usize).collect();
    if shape.contains(&0) {
        return Err(Error::Verbatim("ERR model produced an empty tensor".into()));
    }
    let numel = t.numel();
    let mut buf = vec![0u8; numel * dtype.size().unwrap_or(1)];
    t.f_copy_data_u8(&mut buf, numel).map_err(err)?;
    Tensor::from_blob(dtype, shape, Bytes::from(buf))
}

fn flatten(v: IValue, out: &mut Vec<Tensor>) -> Result<(), Error> {
    match v {
        IValue::Tensor(t) => out.push(from_torch(&t)?),
        IValue::Tuple(items) | IValue::GenericList(items) => {
            for i in items {
                flatten(i, out)?;
            }
        }
        IValue::TensorList(ts) => {
            for t in ts {
                out.push(from_torch(&t)?);
            }
        }
        other => {
            return Err(Error::Verbatim(format!(
                "ERR model output of an unsupported kind: {other:?}"
            )));
        }
    }
    Ok(())
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
        let _guard = tch::no_grad_guard();
        let args = inputs
            .iter()
            .map(|t| to_torch(t, self.device).map(IValue::Tensor))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self.module.forward_is(&args).map_err(err)?;
        let mut tensors = Vec::new();
        flatten(out, &mut tensors)?;
        Ok(tensors)
    }
}
