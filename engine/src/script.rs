//! `Script`: a stored TorchScript script — its source, device, tag and entry points, and the
//! compiled functions that run it — and how one call's INPUTS, KEYS and ARGS are bound to a
//! function's parameters (a pure function, [`bind`]).
//!
//! A script call goes through the device queues like a model run: [`ScriptCall`] is a
//! `LoadedModel` for one function with its keys and args, wrapped in a one-off `Model` (it
//! never batches), so MODEL_EXECUTION_TIMEOUT, the queue's TIMEOUT and AI.INFO apply to it
//! as they do to models.

use std::sync::Arc;

use bytes::Bytes;
use shardai_protocol::{Error, command::Backend as Kind};

use crate::{backend::LoadedModel, model::Model, stats::RunStats, tensor::Tensor};

/// Type name TYPE reports for scripts (RedisAI's module type name).
pub const SCRIPT_TYPE: &str = "AI_SCRIPT";

/// The type of one parameter of a script function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `Tensor`.
    Tensor,
    /// `List[Tensor]`.
    TensorList,
    /// `List[str]`.
    StrList,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `str`.
    Str,
    /// `List[int]`.
    IntList,
    /// `List[float]`.
    FloatList,
    /// Anything else (cannot be passed from a command).
    Other,
}

/// The entry-point signature: `(tensors: List[Tensor], keys: List[str], args: List[str])`.
pub const ENTRY_POINT: [ArgKind; 3] = [ArgKind::TensorList, ArgKind::StrList, ArgKind::StrList];

/// What a running script reaches the server through: `redis.execute` and
/// `redisAI.model_execute`. Called on the run-queue thread running the script.
pub trait ScriptHost: Send + Sync {
    /// The command that runs the script has answered: every later command or model raises.
    fn finish(&self);
    /// Runs a command (`argv[0]` is its name) against this shard, as the client that called
    /// the script; the reply, RESP2-encoded (an error reply for a refused command).
    fn execute(&self, argv: Vec<Bytes>) -> Vec<u8>;
    /// Runs the model stored at `key` on `inputs`, expecting `outputs` outputs.
    fn model_execute(
        &self,
        key: &[u8],
        inputs: Vec<Tensor>,
        outputs: usize,
    ) -> Result<Vec<Tensor>, Error>;
}

/// A compiled script, ready to call.
pub trait CompiledScript: Send + Sync {
    /// The parameter types of `function`, or `None` when the script has no such function.
    fn signature(&self, function: &str) -> Option<Vec<ArgKind>>;
    /// Calls `function` as `binding` says, its commands and models run through `host`
    /// (none: they fail); with `outputs` false the result is ignored (no OUTPUTS), else it
    /// must be tensors. Blocking: a backend call.
    fn call(
        &self,
        function: &str,
        binding: &Binding,
        tensors: &[Tensor],
        outputs: bool,
        host: Option<&dyn ScriptHost>,
    ) -> Result<Vec<Tensor>, Error>;
    /// Why the script is not compiled on this node, for one kept without its backend.
    fn load_error(&self) -> Option<&str> {
        None
    }
}

/// A stored script.
#[derive(Clone)]
pub struct Script {
    /// The device as given.
    pub device: String,
    /// TAG.
    pub tag: Bytes,
    /// ENTRY_POINTS as given; empty for a script stored by the deprecated AI.SCRIPTSET
    /// (whose functions are all callable).
    pub entry_points: Vec<Bytes>,
    /// The TorchScript source.
    pub source: Bytes,
    /// The compiled functions.
    pub compiled: Arc<dyn CompiledScript>,
    /// Its AI.INFO statistics on this node, zero when stored.
    pub stats: Arc<RunStats>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("device", &self.device)
            .field("entry_points", &self.entry_points)
            .field("source_len", &self.source.len())
            .finish_non_exhaustive()
    }
}

/// Checks AI.SCRIPTSTORE's entry points against the compiled script, with RedisAI's texts.
pub fn check_entry_points(
    compiled: &dyn CompiledScript,
    entry_points: &[Bytes],
) -> Result<(), Error> {
    for ep in entry_points {
        let name = String::from_utf8_lossy(ep);
        let Some(sig) = compiled.signature(&name) else {
            return Err(Error::Verbatim(format!(
                "Function {name} does not exist in the given script."
            )));
        };
        if sig.len() != ENTRY_POINT.len() {
            return Err(Error::Verbatim(format!(
                "Wrong number of inputs in function {name}. Expected {} but was {}",
                ENTRY_POINT.len(),
                sig.len()
            )));
        }
        if sig != ENTRY_POINT {
            return Err(Error::Verbatim(format!(
                "Wrong inputs type in function {name}. Expected signature similar to: def \
                 {name}(tensors: List[Tensor], keys: List[str], args: List[str])"
            )));
        }
    }
    Ok(())
}

/// How one call's values fill a function's parameters: per parameter its type, how many
/// input tensors it takes (in turn) and how many strings (keys, then args, in turn).
/// [`Binding::check`] says whether it fits a call; [`bind`] only makes bindings that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The parameters' types.
    pub kinds: Vec<ArgKind>,
    /// Tensors each parameter takes.
    pub tensor_counts: Vec<usize>,
    /// Strings each parameter takes.
    pub str_counts: Vec<usize>,
    /// The strings, in the order they are taken.
    pub strs: Vec<Bytes>,
}

impl Binding {
    /// Checks that the binding fits a call with `tensors` input tensors: every parameter
    /// takes what its type needs (a `Tensor` one tensor, a scalar one string, a list of
    /// tensors only tensors, a list of scalars only strings), and the counts add up to the
    /// tensors and strings given.
    pub fn check(&self, tensors: usize) -> Result<(), Error> {
        let n = self.kinds.len();
        let fits = self.tensor_counts.len() == n
            && self.str_counts.len() == n
            && self.tensor_counts.iter().sum::<usize>() == tensors
            && self.str_counts.iter().sum::<usize>() == self.strs.len()
            && self
                .kinds
                .iter()
                .zip(self.tensor_counts.iter().zip(&self.str_counts))
                .all(|(k, (&t, &s))| match k {
                    ArgKind::Tensor => (t, s) == (1, 0),
                    ArgKind::TensorList => s == 0,
                    ArgKind::StrList | ArgKind::IntList | ArgKind::FloatList => t == 0,
                    ArgKind::Int | ArgKind::Float | ArgKind::Str => (t, s) == (0, 1),
                    ArgKind::Other => false,
                });
        if fits {
            Ok(())
        } else {
            Err(Error::Verbatim(
                "Wrong number of inputs provided to AI.SCRIPTEXECUTE command".into(),
            ))
        }
    }
}

/// Binds a call of `function` (of parameter types `kinds`, `None` when the script has no
/// such function). An entry point (`entry`: named in ENTRY_POINTS) gets every input tensor,
/// the keys and the args as its three lists. Any other function (all those of a script stored
/// by the deprecated AI.SCRIPTSET) gets RedisAI's "best effort" mapping: its parameters, left
/// to right, take the input tensors in order, a `List[Tensor]` taking all that remain; KEYS
/// and ARGS are not passed, and extra inputs are ignored.
pub fn bind(
    function: &str,
    kinds: Option<&[ArgKind]>,
    entry: bool,
    inputs: usize,
    keys: &[Bytes],
    args: &[Bytes],
) -> Result<Binding, Error> {
    let Some(kinds) = kinds else {
        return Err(Error::Verbatim(format!(
            "Function does not exist: {function}"
        )));
    };
    if entry && kinds == ENTRY_POINT {
        return Ok(Binding {
            kinds: kinds.to_vec(),
            tensor_counts: vec![inputs, 0, 0],
            str_counts: vec![0, keys.len(), args.len()],
            strs: keys.iter().chain(args).cloned().collect(),
        });
    }
    if kinds.len() > inputs {
        return Err(Error::Verbatim(format!(
            "Wrong number of inputs provided to function: {function}"
        )));
    }
    let mut b = Binding {
        kinds: Vec::with_capacity(kinds.len()),
        tensor_counts: Vec::with_capacity(kinds.len()),
        str_counts: Vec::with_capacity(kinds.len()),
        strs: Vec::new(),
    };
    let mut left = inputs;
    for &k in kinds {
        let n = match k {
            ArgKind::Tensor => 1,
            ArgKind::TensorList => left,
            _ => {
                return Err(Error::Verbatim(format!(
                    "Unsupported input type in function definition: {function}"
                )));
            }
        };
        b.kinds.push(k);
        b.tensor_counts.push(n);
        b.str_counts.push(0);
        left -= n;
        if k == ArgKind::TensorList {
            // The list takes the rest and ends the mapping (RedisAI's rule).
            break;
        }
    }
    Ok(b)
}

/// One call of a script function, run on a device queue as a one-off model.
pub struct ScriptCall {
    script: Arc<Script>,
    function: String,
    /// How the call binds, or why it cannot (answered when the call runs, as RedisAI does:
    /// the function is looked up at run time, and the failure counts in AI.INFO).
    binding: Result<Binding, Error>,
    outputs: usize,
    host: Option<Arc<dyn ScriptHost>>,
}

impl ScriptCall {
    /// A call of `function` of `script`, bound by `binding` (or failing with its error when
    /// it runs), whose result fills `outputs` keys and whose commands and models run through
    /// `host`, as a model for the run queues (TORCH, on the script's device, never batched).
    pub fn model(
        script: Arc<Script>,
        function: String,
        binding: Result<Binding, Error>,
        outputs: usize,
        host: Option<Arc<dyn ScriptHost>>,
    ) -> Arc<Model> {
        let device = script.device.clone();
        let tag = script.tag.clone();
        let stats = script.stats.clone();
        Arc::new(Model {
            backend: Kind::Torch,
            device,
            tag,
            batch: Default::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            blob: Bytes::new(),
            loaded: Arc::new(ScriptCall {
                script,
                function,
                binding,
                outputs,
                host,
            }),
            stats,
        })
    }
}

impl LoadedModel for ScriptCall {
    fn num_inputs(&self) -> Option<usize> {
        None
    }
    fn num_outputs(&self) -> Option<usize> {
        None
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let binding = self.binding.as_ref().map_err(Clone::clone)?;
        // Inputs past what the binding takes are ignored (best-effort mapping).
        let used: usize = binding.tensor_counts.iter().sum();
        let inputs = &inputs[..used.min(inputs.len())];
        let out = self.script.compiled.call(
            &self.function,
            binding,
            inputs,
            self.outputs > 0,
            self.host.as_deref(),
        )?;
        if out.len() != self.outputs {
            return Err(Error::Verbatim(format!(
                "Function returned unexpected number of outputs - {}",
                self.function
            )));
        }
        Ok(out)
    }
}

/// A replicated script this node could not compile (its backend is missing here): kept with
/// its source, answering every call with the error, so that replicas never silently differ.
#[derive(Debug)]
pub struct NotCompiled {
    error: String,
}

impl NotCompiled {
    /// A script that failed to compile here with `error` (its wire text).
    pub fn new(error: String) -> Self {
        NotCompiled { error }
    }
}

impl CompiledScript for NotCompiled {
    fn signature(&self, _: &str) -> Option<Vec<ArgKind>> {
        None
    }
    fn call(
        &self,
        _: &str,
        _: &Binding,
        _: &[Tensor],
        _: bool,
        _: Option<&dyn ScriptHost>,
    ) -> Result<Vec<Tensor>, Error> {
        let why = self.error.strip_prefix("ERR ").unwrap_or(&self.error);
        Err(Error::Verbatim(format!(
            "ERR the script is stored but could not be compiled on this node ({why})"
        )))
    }
    fn load_error(&self) -> Option<&str> {
        Some(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ArgKind::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn an_entry_point_gets_its_three_lists() {
        let bnd = bind(
            "f",
            Some(&ENTRY_POINT),
            true,
            2,
            &[b("k")],
            &[b("1"), b("2")],
        )
        .unwrap();
        assert_eq!(bnd.tensor_counts, [2, 0, 0]);
        assert_eq!(bnd.str_counts, [0, 1, 2]);
        assert_eq!(bnd.strs, [b("k"), b("1"), b("2")]);
    }

    #[test]
    fn other_functions_get_the_best_effort_mapping() {
        let text = |r: Result<Binding, Error>| r.unwrap_err().wire_text();
        assert_eq!(
            text(bind("nope", None, false, 1, &[], &[])),
            "Function does not exist: nope"
        );
        let bnd = bind("f", Some(&[Tensor, Tensor]), false, 3, &[], &[]).unwrap();
        assert_eq!(bnd.tensor_counts, [1, 1], "extra inputs are ignored");
        assert_eq!(
            text(bind("f", Some(&[Tensor, Tensor]), false, 1, &[], &[])),
            "Wrong number of inputs provided to function: f"
        );
        // A list takes every remaining input and ends the mapping.
        let bnd = bind("f", Some(&[Tensor, TensorList]), false, 3, &[], &[]).unwrap();
        assert_eq!(bnd.tensor_counts, [1, 2]);
        assert!(bnd.check(3).is_ok());
        // A binding that gives a parameter less than its type needs is refused.
        let bad = Binding {
            kinds: vec![Tensor],
            tensor_counts: vec![0],
            str_counts: vec![0],
            strs: vec![],
        };
        assert!(bad.check(0).is_err());
        let bad = Binding {
            kinds: vec![Int, Tensor],
            tensor_counts: vec![1, 0],
            str_counts: vec![0, 1],
            strs: vec![b("3")],
        };
        assert!(bad.check(1).is_err());
        assert_eq!(
            text(bind("f", Some(&[Tensor, Int]), false, 2, &[], &[b("3")])),
            "Unsupported input type in function definition: f"
        );
        // An entry-point signature called as a non-entry point is best effort too: its list
        // takes every input and ends the mapping (libtorch then refuses the missing lists).
        let bnd = bind("f", Some(&ENTRY_POINT), false, 3, &[], &[]).unwrap();
        assert_eq!(bnd.kinds, [TensorList]);
    }

    struct Sigs(Vec<(&'static str, Vec<ArgKind>)>);

    impl CompiledScript for Sigs {
        fn signature(&self, function: &str) -> Option<Vec<ArgKind>> {
            self.0
                .iter()
                .find(|(n, _)| *n == function)
                .map(|(_, s)| s.clone())
        }
        fn call(
            &self,
            _: &str,
            _: &Binding,
            _: &[crate::Tensor],
            _: bool,
            _: Option<&dyn ScriptHost>,
        ) -> Result<Vec<crate::Tensor>, Error> {
            Ok(vec![])
        }
    }

    #[test]
    fn entry_points_are_checked_with_redisai_texts() {
        let s = Sigs(vec![
            ("bar", ENTRY_POINT.to_vec()),
            ("two", vec![TensorList, StrList]),
            ("typed", vec![Tensor, StrList, StrList]),
        ]);
        assert!(check_entry_points(&s, &[b("bar")]).is_ok());
        let text = |ep: &str| check_entry_points(&s, &[b(ep)]).unwrap_err().wire_text();
        assert_eq!(
            text("bar1"),
            "Function bar1 does not exist in the given script."
        );
        assert_eq!(
            text("two"),
            "Wrong number of inputs in function two. Expected 3 but was 2"
        );
        assert_eq!(
            text("typed"),
            "Wrong inputs type in function typed. Expected signature similar to: def \
             typed(tensors: List[Tensor], keys: List[str], args: List[str])"
        );
    }
}
