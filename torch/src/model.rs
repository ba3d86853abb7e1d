//! Saved TorchScript modules (`torch.jit.save`'s files) through `tch`: loading one onto a
//! device, running its `forward`, and reading its parameter names through the shim; and the
//! conversions between the interface's tensor views and libtorch tensors both halves of this
//! library use.
//!
//! CPU inputs are lent to libtorch in place (`from_blob` over the caller's bytes, which the
//! caller keeps alive for the call). Outputs are made contiguous on the CPU and lent to the
//! caller's sink, which copies them.

use std::{
    ffi::{c_char, c_void},
    io::Cursor,
};

use shardai_torch_abi::{self as abi, TensorView, dtype};
use tch::{CModule, Device, IValue, Kind};

use crate::{device, set_err, wire};

/// libtorch's element type for an interface code.
pub(crate) fn kind_of(code: i32) -> Result<Kind, String> {
    Ok(match code {
        dtype::FLOAT => Kind::Float,
        dtype::DOUBLE => Kind::Double,
        dtype::INT8 => Kind::Int8,
        dtype::INT16 => Kind::Int16,
        dtype::INT32 => Kind::Int,
        dtype::INT64 => Kind::Int64,
        dtype::UINT8 => Kind::Uint8,
        dtype::BOOL => Kind::Bool,
        other => return Err(format!("ERR unknown tensor type code {other}")),
    })
}

/// The interface code for libtorch's element type, for the ones a stored tensor can hold.
pub(crate) fn code_of(k: Kind) -> Result<i32, String> {
    Ok(match k {
        Kind::Float => dtype::FLOAT,
        Kind::Double => dtype::DOUBLE,
        Kind::Int8 => dtype::INT8,
        Kind::Int16 => dtype::INT16,
        Kind::Int => dtype::INT32,
        Kind::Int64 => dtype::INT64,
        Kind::Uint8 => dtype::UINT8,
        Kind::Bool => dtype::BOOL,
        other => return Err(format!("ERR unsupported output type {other:?}")),
    })
}

/// The view's shape.
///
/// # Safety
/// `v.shape` holds `v.ndim` dimensions.
unsafe fn shape(v: &TensorView) -> &[i64] {
    if v.ndim == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(v.shape, v.ndim) }
}

/// The view's bytes.
///
/// # Safety
/// `v.data` holds `v.len` bytes.
unsafe fn bytes(v: &TensorView) -> &[u8] {
    if v.len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(v.data, v.len) }
}

/// A libtorch tensor with a copy of the view's elements.
///
/// # Safety
/// `v` describes valid memory (see [`TensorView`]).
pub(crate) unsafe fn copied(v: &TensorView) -> Result<tch::Tensor, String> {
    // SAFETY: the caller's contract.
    let (shape, data) = unsafe { (shape(v), bytes(v)) };
    tch::Tensor::f_from_data_size(data, shape, kind_of(v.dtype)?).map_err(wire)
}

/// A libtorch tensor over the view's bytes (without a copy when they are aligned for the
/// element type, as they usually are), on `dev`.
///
/// # Safety
/// `v` describes valid memory of `product(shape) * element size` bytes, row-major, that
/// outlives the returned tensor and that nothing writes while it lives.
unsafe fn lent(v: &TensorView, dev: Device) -> Result<tch::Tensor, String> {
    let kind = kind_of(v.dtype)?;
    // SAFETY: the caller's contract.
    let shape = unsafe { shape(v) };
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let align = kind.elt_size_in_bytes().max(1);
    let x = if !v.data.is_null() && (v.data as usize).is_multiple_of(align) {
        // SAFETY: the caller's contract says the bytes hold every element `strides` reach
        // and outlive the tensor; their start is aligned for the element type (checked just
        // above). libtorch never frees memory given to `from_blob`. TorchScript models do
        // not write to their inputs (RedisAI gives them its stored tensors the same way).
        unsafe { tch::Tensor::f_from_blob(v.data, shape, &strides, kind, Device::Cpu) }
            .map_err(wire)?
    } else {
        // Bytes kept in place in a request buffer, or decoded from a Raft entry, may start
        // at any byte: libtorch gets an aligned copy.
        // SAFETY: the caller's contract.
        unsafe { copied(v) }?
    };
    if dev == Device::Cpu {
        Ok(x)
    } else {
        x.f_to_device(dev).map_err(wire)
    }
}

/// Lends `t`, on the CPU and contiguous, to `sink`. Returns `Ok(false)` when the sink
/// stopped the call.
///
/// # Safety
/// `sink` may be called with `ctx`.
pub(crate) unsafe fn hand_out(
    t: &tch::Tensor,
    sink: abi::Sink,
    ctx: *mut c_void,
) -> Result<bool, String> {
    let t = t
        .f_to_device(Device::Cpu)
        .and_then(|t| t.f_contiguous())
        .map_err(wire)?;
    let kind = t.f_kind().map_err(wire)?;
    let code = code_of(kind)?;
    let shape = t.size();
    if shape.contains(&0) {
        return Err("ERR model produced an empty tensor".into());
    }
    let len = t.numel() * kind.elt_size_in_bytes();
    let view = TensorView {
        dtype: code,
        ndim: shape.len(),
        shape: shape.as_ptr(),
        data: t.data_ptr().cast::<u8>().cast_const(),
        len,
    };
    // SAFETY: the view points into `t` and `shape`, both alive for the call; the caller's
    // contract covers `sink` and `ctx`.
    Ok(unsafe { sink(ctx, &view) } == 0)
}

/// A module's outputs in order: tensors, and the tensors inside tuples and lists.
fn flatten(v: IValue, out: &mut Vec<tch::Tensor>) -> Result<(), String> {
    match v {
        IValue::Tensor(t) => out.push(t),
        IValue::Tuple(items) | IValue::GenericList(items) => {
            for i in items {
                flatten(i, out)?;
            }
        }
        IValue::TensorList(ts) => out.extend(ts),
        other => {
            return Err(format!(
                "ERR model output of an unsupported kind: {other:?}"
            ));
        }
    }
    Ok(())
}

/// A loaded module and the device it runs on.
struct Model {
    module: CModule,
    device: Device,
}

/// Loads a saved module (see `abi::ModelLoadFn`).
///
/// # Safety
/// `blob` holds `len` bytes; `err` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_model_load(
    blob: *const u8,
    len: usize,
    dev: i32,
    err: *mut *mut c_char,
) -> *mut c_void {
    let blob = if len == 0 {
        &[][..]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(blob, len) }
    };
    let device = device(dev);
    let load = || {
        let mut module =
            CModule::load_data_on_device(&mut Cursor::new(blob), device).map_err(wire)?;
        module.f_set_eval().map_err(wire)?;
        Ok::<_, String>(module)
    };
    match crate::guarded(load) {
        Ok(module) => Box::into_raw(Box::new(Model { module, device })).cast(),
        Err(e) => {
            // SAFETY: the caller's contract.
            unsafe { set_err(err, &e) };
            std::ptr::null_mut()
        }
    }
}
const _: abi::ModelLoadFn = shai_torch_model_load;

/// Runs a module's `forward` (see `abi::ModelRunFn`).
///
/// # Safety
/// `model` came from [`shai_torch_model_load`] and is not freed; `inputs` holds `n` views of
/// valid memory that nothing writes during the call; `sink` may be called with `sink_ctx`;
/// `err` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_model_run(
    model: *const c_void,
    inputs: *const TensorView,
    n: usize,
    sink: abi::Sink,
    sink_ctx: *mut c_void,
    err: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    let model = unsafe { &*model.cast::<Model>() };
    let inputs = if n == 0 {
        &[][..]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(inputs, n) }
    };
    let run = || -> Result<bool, String> {
        let _guard = tch::no_grad_guard();
        let args = inputs
            .iter()
            // SAFETY: the caller's contract: the views outlive this call, which outlives
            // `args`.
            .map(|v| unsafe { lent(v, model.device) }.map(IValue::Tensor))
            .collect::<Result<Vec<_>, _>>()?;
        let out = model.module.forward_is(&args).map_err(wire)?;
        let mut tensors = Vec::new();
        flatten(out, &mut tensors)?;
        for t in &tensors {
            // SAFETY: the caller's contract covers `sink` and `sink_ctx`.
            if !unsafe { hand_out(t, sink, sink_ctx) }? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    match crate::guarded(run) {
        Ok(true) => 0,
        Ok(false) => 2,
        Err(e) => {
            // SAFETY: the caller's contract.
            unsafe { set_err(err, &e) };
            1
        }
    }
}
const _: abi::ModelRunFn = shai_torch_model_run;

/// Frees a loaded module.
///
/// # Safety
/// `model` came from [`shai_torch_model_load`], is freed once, and no run is using it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shai_torch_model_free(model: *mut c_void) {
    if !model.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(model.cast::<Model>()) });
    }
}
const _: abi::FreeFn = shai_torch_model_free;
