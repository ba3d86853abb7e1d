//! The part of TensorFlow's C API (`c_api.h`, `tf_tensor.h`, `tf_status.h` of TensorFlow 2.x)
//! that the TF backend calls, declared by hand and resolved once from the library with
//! `libloading`: the opaque handle types, the two `#[repr(C)]` structs passed by pointer, and
//! [`Api`], the table of function pointers.
//!
//! This module owns only the declarations and the loading. It must not call any of the
//! functions, hold TF objects, or know what a model or a client error is: ownership of the
//! handles, and every `unsafe` call with the reason it is sound, live in the parent module.
//! A declaration here that does not match the C prototype is undefined behaviour at every
//! call site, so change one only against the headers of the TensorFlow version it runs on.
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_int, c_void},
    path::Path,
};

use libloading::Library;

// Opaque C types: only ever behind pointers the library hands out.
pub(super) type Status = c_void;
pub(super) type Graph = c_void;
pub(super) type Operation = c_void;
pub(super) type Session = c_void;
pub(super) type SessionOptions = c_void;
pub(super) type ImportOptions = c_void;
pub(super) type TfTensor = c_void;

/// `TF_Buffer`.
#[repr(C)]
pub(super) struct TfBuffer {
    data: *const c_void,
    length: usize,
    data_deallocator: Option<unsafe extern "C" fn(*mut c_void, usize)>,
}

/// `TF_Output`: an operation and the index of one of its outputs.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Output {
    pub(super) oper: *mut Operation,
    pub(super) index: c_int,
}

/// The deallocator `TF_NewTensor` calls once it no longer needs the bytes it was given.
pub(super) type Dealloc = unsafe extern "C" fn(*mut c_void, usize, *mut c_void);

/// The C functions the backend calls, resolved once from the library. Each pointer is valid
/// for as long as this value lives: it owns the library and unmaps it only when dropped.
///
/// Its field types are TensorFlow 2.x's prototypes from c_api.h / tf_tensor.h / tf_status.h,
/// with pointers and `int`/`size_t`/`int64_t` mapped to their Rust equivalents; `sym!` (in
/// `backend`) resolves them.
pub(super) struct Api {
    pub(super) version: unsafe extern "C" fn() -> *const c_char,
    pub(super) new_status: unsafe extern "C" fn() -> *mut Status,
    pub(super) delete_status: unsafe extern "C" fn(*mut Status),
    pub(super) get_code: unsafe extern "C" fn(*const Status) -> c_int,
    pub(super) message: unsafe extern "C" fn(*const Status) -> *const c_char,
    pub(super) new_graph: unsafe extern "C" fn() -> *mut Graph,
    pub(super) delete_graph: unsafe extern "C" fn(*mut Graph),
    pub(super) new_buffer_from_string: unsafe extern "C" fn(*const c_void, usize) -> *mut TfBuffer,
    pub(super) delete_buffer: unsafe extern "C" fn(*mut TfBuffer),
    pub(super) new_import_options: unsafe extern "C" fn() -> *mut ImportOptions,
    pub(super) delete_import_options: unsafe extern "C" fn(*mut ImportOptions),
    pub(super) import_graph_def:
        unsafe extern "C" fn(*mut Graph, *const TfBuffer, *const ImportOptions, *mut Status),
    pub(super) operation_by_name: unsafe extern "C" fn(*mut Graph, *const c_char) -> *mut Operation,
    pub(super) operation_num_outputs: unsafe extern "C" fn(*mut Operation) -> c_int,
    pub(super) new_session_options: unsafe extern "C" fn() -> *mut SessionOptions,
    pub(super) delete_session_options: unsafe extern "C" fn(*mut SessionOptions),
    pub(super) set_config:
        unsafe extern "C" fn(*mut SessionOptions, *const c_void, usize, *mut Status),
    pub(super) new_session:
        unsafe extern "C" fn(*mut Graph, *const SessionOptions, *mut Status) -> *mut Session,
    pub(super) close_session: unsafe extern "C" fn(*mut Session, *mut Status),
    pub(super) delete_session: unsafe extern "C" fn(*mut Session, *mut Status),
    #[allow(clippy::type_complexity)]
    pub(super) session_run: unsafe extern "C" fn(
        *mut Session,
        *const TfBuffer,
        *const Output,
        *const *mut TfTensor,
        c_int,
        *const Output,
        *mut *mut TfTensor,
        c_int,
        *const *const Operation,
        c_int,
        *mut TfBuffer,
        *mut Status,
    ),
    pub(super) new_tensor: unsafe extern "C" fn(
        c_int,
        *const i64,
        c_int,
        *mut c_void,
        usize,
        Dealloc,
        *mut c_void,
    ) -> *mut TfTensor,
    pub(super) delete_tensor: unsafe extern "C" fn(*mut TfTensor),
    pub(super) tensor_type: unsafe extern "C" fn(*const TfTensor) -> c_int,
    pub(super) num_dims: unsafe extern "C" fn(*const TfTensor) -> c_int,
    pub(super) dim: unsafe extern "C" fn(*const TfTensor, c_int) -> i64,
    pub(super) tensor_byte_size: unsafe extern "C" fn(*const TfTensor) -> usize,
    pub(super) tensor_data: unsafe extern "C" fn(*const TfTensor) -> *mut c_void,
    /// Keeps the library mapped for as long as any model may call into it (the last field,
    /// so it is dropped after the pointers into it).
    _lib: Library,
}

impl Api {
    /// Opens the library at `path` and resolves every function, or says which is missing.
    pub(super) fn open(path: &Path) -> Result<Api, String> {
        // SAFETY: `Library::new` runs the library's initialisers. TensorFlow's (and those of
        // libtensorflow_framework, which it loads) register ops and kernels in TensorFlow's
        // own registries; they touch no state of this process, and opening a library already
        // mapped only takes another reference to it.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Api {
            version: sym!(lib, "TF_Version"),
            new_status: sym!(lib, "TF_NewStatus"),
            delete_status: sym!(lib, "TF_DeleteStatus"),
            get_code: sym!(lib, "TF_GetCode"),
            message: sym!(lib, "TF_Message"),
            new_graph: sym!(lib, "TF_NewGraph"),
            delete_graph: sym!(lib, "TF_DeleteGraph"),
            new_buffer_from_string: sym!(lib, "TF_NewBufferFromString"),
            delete_buffer: sym!(lib, "TF_DeleteBuffer"),
            new_import_options: sym!(lib, "TF_NewImportGraphDefOptions"),
            delete_import_options: sym!(lib, "TF_DeleteImportGraphDefOptions"),
            import_graph_def: sym!(lib, "TF_GraphImportGraphDef"),
            operation_by_name: sym!(lib, "TF_GraphOperationByName"),
            operation_num_outputs: sym!(lib, "TF_OperationNumOutputs"),
            new_session_options: sym!(lib, "TF_NewSessionOptions"),
            delete_session_options: sym!(lib, "TF_DeleteSessionOptions"),
            set_config: sym!(lib, "TF_SetConfig"),
            new_session: sym!(lib, "TF_NewSession"),
            close_session: sym!(lib, "TF_CloseSession"),
            delete_session: sym!(lib, "TF_DeleteSession"),
            session_run: sym!(lib, "TF_SessionRun"),
            new_tensor: sym!(lib, "TF_NewTensor"),
            delete_tensor: sym!(lib, "TF_DeleteTensor"),
            tensor_type: sym!(lib, "TF_TensorType"),
            num_dims: sym!(lib, "TF_NumDims"),
            dim: sym!(lib, "TF_Dim"),
            tensor_byte_size: sym!(lib, "TF_TensorByteSize"),
            tensor_data: sym!(lib, "TF_TensorData"),
            _lib: lib,
        })
    }
}
