//! The part of LiteRT's C API (the `litert/c` headers of the ai-edge-litert 2.3.0 wheel) that
//! the TFLITE backend calls, declared by hand and resolved once from `libLiteRt.so` with
//! `libloading`: the handle and status types, the `#[repr(C)]` structs passed by pointer
//! (with the bit-field encoding of `LiteRtLayout`), the enum values used, and [`Api`], the
//! table of function pointers.
//!
//! No wheel exports the classic TFLite C API and `tflitec` needs bazel, so these were checked
//! against the 2.3.0 headers and the library's own exports (the model constructors take the
//! environment first; the layout is a bit-field word, eight dimensions and eight strides).
//! Pin the wheel: this ABI changes between releases, and a declaration that does not match
//! the C prototype is undefined behaviour at every call site.
//!
//! This module owns only the declarations and the loading. It must not call any of the
//! functions, hold LiteRT objects, or know what a model or a client error is: ownership of
//! the handles, and every `unsafe` call with the reason it is sound, live in the parent
//! module.
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_int, c_void},
    path::Path,
};

use libloading::Library;

/// Any LiteRT object (`LiteRtEnvironment`, `LiteRtModel`, `LiteRtTensorBuffer`, ...).
pub(super) type Handle = *mut c_void;
/// `LiteRtStatus`: 0 is `kLiteRtStatusOk`.
pub(super) type Status = c_int;

/// Most dimensions a `LiteRtLayout` holds.
pub(super) const MAX_RANK: usize = 8;

/// `LiteRtLayout`: `rank : 7` and `has_strides : 1` share one 32-bit word.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Layout {
    bits: u32,
    dims: [i32; MAX_RANK],
    strides: [u32; MAX_RANK],
}

/// `LiteRtRankedTensorType` (72 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct RankedType {
    pub(super) element_type: c_int,
    pub(super) layout: Layout,
}

impl RankedType {
    /// An all-zero value, for LiteRT to fill in.
    pub(super) fn zeroed() -> Self {
        RankedType {
            element_type: 0,
            layout: Layout {
                bits: 0,
                dims: [0; MAX_RANK],
                strides: [0; MAX_RANK],
            },
        }
    }

    /// A type of `element_type` (a `LiteRtElementType`) and `shape` (at most `MAX_RANK`
    /// dimensions are kept), without strides.
    pub(super) fn new(element_type: c_int, shape: &[usize]) -> Self {
        let mut t = RankedType::zeroed();
        t.element_type = element_type;
        t.layout.bits = shape.len() as u32 & 0x7F;
        for (d, &n) in t.layout.dims.iter_mut().zip(shape) {
            *d = n as i32;
        }
        t
    }
}

/// The dimensions of a layout LiteRT filled in (negative ones read as 0).
pub(super) fn layout_shape(l: &Layout) -> Vec<usize> {
    let rank = (l.bits & 0x7F) as usize;
    l.dims[..rank.min(MAX_RANK)]
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect()
}

/// `LiteRtAny` (16 bytes: a type tag, then an 8-byte union).
#[repr(C)]
pub(super) struct Any {
    pub(super) kind: c_int,
    pub(super) value: i64,
}

/// `LiteRtEnvOption`.
#[repr(C)]
pub(super) struct EnvOption {
    pub(super) tag: c_int,
    pub(super) value: Any,
}

/// `kLiteRtEnvOptionTagMinLoggerSeverity`.
pub(super) const ENV_MIN_LOGGER_SEVERITY: c_int = 25;
/// `kLiteRtAnyTypeInt`.
pub(super) const ANY_INT: c_int = 2;
/// `kLiteRtLogSeverityError`.
pub(super) const SEVERITY_ERROR: i64 = 3;
/// `kLiteRtHwAcceleratorCpu`.
pub(super) const HW_CPU: c_int = 1;

/// LiteRT's status names (the library exports no status-string function).
pub(super) fn status_name(s: Status) -> &'static str {
    match s {
        1 => "invalid argument",
        2 => "memory allocation failure",
        3 => "runtime failure",
        4 => "missing input tensor",
        5 => "unsupported",
        6 => "not found",
        501 => "invalid flatbuffer",
        504 => "compilation failed",
        1000 => "index out of bounds",
        _ => "error",
    }
}

/// A payload destructor, as `LiteRtCreateOpaqueOptions` and host-memory buffers take it.
pub(super) type Free = Option<unsafe extern "C" fn(*mut c_void)>;

/// The C functions the backend calls, resolved once from the library. Each pointer is valid
/// for as long as this value lives: it owns the library and unmaps it only when dropped.
///
/// Its field types are the prototypes of LiteRT 2.3.0's litert/c headers (checked against the
/// library's exports and its argument registers); `sym!` (in `backend`) resolves them.
pub(super) struct Api {
    pub(super) create_environment:
        unsafe extern "C" fn(c_int, *const EnvOption, *mut Handle) -> Status,
    pub(super) destroy_environment: unsafe extern "C" fn(Handle),
    pub(super) create_model_from_buffer:
        unsafe extern "C" fn(Handle, *const c_void, usize, *mut Handle) -> Status,
    pub(super) destroy_model: unsafe extern "C" fn(Handle),
    pub(super) get_model_signature: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub(super) num_signature_inputs: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    pub(super) num_signature_outputs: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    pub(super) signature_input: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub(super) signature_output: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub(super) ranked_tensor_type: unsafe extern "C" fn(Handle, *mut RankedType) -> Status,
    pub(super) create_options: unsafe extern "C" fn(*mut Handle) -> Status,
    pub(super) destroy_options: unsafe extern "C" fn(Handle),
    pub(super) set_accelerators: unsafe extern "C" fn(Handle, c_int) -> Status,
    pub(super) create_opaque_options:
        unsafe extern "C" fn(*const c_char, *mut c_void, Free, *mut Handle) -> Status,
    pub(super) add_opaque_options: unsafe extern "C" fn(Handle, Handle) -> Status,
    pub(super) destroy_opaque_options: unsafe extern "C" fn(Handle),
    pub(super) create_compiled_model:
        unsafe extern "C" fn(Handle, Handle, Handle, *mut Handle) -> Status,
    pub(super) destroy_compiled_model: unsafe extern "C" fn(Handle),
    pub(super) input_requirements:
        unsafe extern "C" fn(Handle, usize, usize, *mut Handle) -> Status,
    pub(super) output_requirements:
        unsafe extern "C" fn(Handle, usize, usize, *mut Handle) -> Status,
    pub(super) requirements_size: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    pub(super) resize_input:
        unsafe extern "C" fn(Handle, usize, usize, *const c_int, usize) -> Status,
    pub(super) output_layouts:
        unsafe extern "C" fn(Handle, usize, usize, *mut Layout, bool) -> Status,
    pub(super) buffer_from_host_memory:
        unsafe extern "C" fn(*const RankedType, *mut c_void, usize, Free, *mut Handle) -> Status,
    pub(super) destroy_buffer: unsafe extern "C" fn(Handle),
    pub(super) run:
        unsafe extern "C" fn(Handle, usize, usize, *const Handle, usize, *const Handle) -> Status,
    /// Keeps the library mapped for as long as any model may call into it (the last field,
    /// so it is dropped after the pointers into it).
    _lib: Library,
}

impl Api {
    /// Opens the library at `path` and resolves every function, or says which is missing.
    pub(super) fn open(path: &Path) -> Result<Api, String> {
        // SAFETY: `Library::new` runs the library's initialisers, which set up LiteRT's own
        // registries and touch no state of this process; opening a library already mapped
        // only takes another reference to it.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Api {
            create_environment: sym!(lib, "LiteRtCreateEnvironment"),
            destroy_environment: sym!(lib, "LiteRtDestroyEnvironment"),
            create_model_from_buffer: sym!(lib, "LiteRtCreateModelFromBuffer"),
            destroy_model: sym!(lib, "LiteRtDestroyModel"),
            get_model_signature: sym!(lib, "LiteRtGetModelSignature"),
            num_signature_inputs: sym!(lib, "LiteRtGetNumSignatureInputs"),
            num_signature_outputs: sym!(lib, "LiteRtGetNumSignatureOutputs"),
            signature_input: sym!(lib, "LiteRtGetSignatureInputTensorByIndex"),
            signature_output: sym!(lib, "LiteRtGetSignatureOutputTensorByIndex"),
            ranked_tensor_type: sym!(lib, "LiteRtGetRankedTensorType"),
            create_options: sym!(lib, "LiteRtCreateOptions"),
            destroy_options: sym!(lib, "LiteRtDestroyOptions"),
            set_accelerators: sym!(lib, "LiteRtSetOptionsHardwareAccelerators"),
            create_opaque_options: sym!(lib, "LiteRtCreateOpaqueOptions"),
            add_opaque_options: sym!(lib, "LiteRtAddOpaqueOptions"),
            destroy_opaque_options: sym!(lib, "LiteRtDestroyOpaqueOptions"),
            create_compiled_model: sym!(lib, "LiteRtCreateCompiledModel"),
            destroy_compiled_model: sym!(lib, "LiteRtDestroyCompiledModel"),
            input_requirements: sym!(lib, "LiteRtGetCompiledModelInputBufferRequirements"),
            output_requirements: sym!(lib, "LiteRtGetCompiledModelOutputBufferRequirements"),
            requirements_size: sym!(lib, "LiteRtGetTensorBufferRequirementsBufferSize"),
            resize_input: sym!(lib, "LiteRtCompiledModelResizeInputTensorNonStrict"),
            output_layouts: sym!(lib, "LiteRtGetCompiledModelOutputTensorLayouts"),
            buffer_from_host_memory: sym!(lib, "LiteRtCreateTensorBufferFromHostMemory"),
            destroy_buffer: sym!(lib, "LiteRtDestroyTensorBuffer"),
            run: sym!(lib, "LiteRtRunCompiledModel"),
            _lib: lib,
        })
    }
}
