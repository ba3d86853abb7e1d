//! PyTorch through `tch`: TorchScript modules as `torch.jit.save` writes them, on libtorch
//! from the torch wheel (linked at build time, found at run time through the rpath).

use std::{io::Cursor, sync::Arc};

use bytes::Bytes;
use shardai_protocol::{DType, Error};
use tch::{CModule, Device, IValue, Kind};

use super::{Backend, LoadedModel};
use crate::tensor::Tensor;

/// The TORCH backend.
pub(super) struct Torch {
    version: String,
}

impl Torch {
    /// The backend; its version is the torch wheel's when that is on the backends path.
    pub(super) fn new(path: Option<&std::path::Path>) -> Torch {
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

fn err(e: impl std::fmt::Display) -> Error {
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

fn device(name: &str) -> Result<Device, Error> {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("CPU") {
        return Ok(Device::Cpu);
    }
    let index = upper
        .strip_prefix("GPU:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
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
        Ok(Arc::new(TorchModel {
            module,
            device: dev,
        }))
    }
}

struct TorchModel {
    module: CModule,
    device: Device,
}

fn kind_of(d: DType) -> Result<Kind, Error> {
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

fn to_torch(t: &Tensor, dev: Device) -> Result<tch::Tensor, Error> {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    let x = tch::Tensor::f_from_data_size(t.blob(), &shape, kind_of(t.dtype())?).map_err(err)?;
    Ok(if dev == Device::Cpu {
        x
    } else {
        x.to_device(dev)
    })
}

fn from_torch(t: &tch::Tensor) -> Result<Tensor, Error> {
    let t = t.to_device(Device::Cpu).contiguous();
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
    fn num_inputs(&self) -> Option<usize> {
        None
    }

    fn num_outputs(&self) -> Option<usize> {
        None
    }

    fn run(&self, inputs: &[Arc<Tensor>]) -> Result<Vec<Tensor>, Error> {
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
