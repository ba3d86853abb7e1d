//! RedisAI's order of checks where it reads the keyspace before it parses the rest of a
//! command: AI.TENSORSET and AI.TENSORGET look their key up first, AI.MODELEXECUTE and
//! AI.MODELRUN their model (AI.MODELEXECUTE then compares the INPUTS count with it), and the
//! DAG commands their LOAD keys as they come to them. shardai parses a request whole before
//! running it, so when parsing fails for one of these commands, [`parse_error`] answers what
//! RedisAI would have found first.

use bytes::Bytes;
use shardai_engine::{Store, Value};
use shardai_protocol::{
    Error,
    command::{load_keys_checked_first, modelexecute_input_count},
};

use super::model::{check_inputs, model_of};
use crate::state::Engine;

/// Keeps in `kept` the arguments [`parse_error`] reads for command `name` (a prefix of
/// `argv`: never a tensor's data) until the parse succeeds; false, keeping nothing, for the
/// commands it leaves alone. `kept` is the connection's, reused from request to request.
pub fn keep_arguments(name: &str, argv: &[Bytes], kept: &mut Vec<Bytes>) -> bool {
    let n = match name {
        "ai.tensorset" | "ai.tensorget" => 2,
        "ai.modelexecute" | "ai.modelrun" => 4,
        "ai.dagexecute" | "ai.dagexecute_ro" | "ai.dagrun" | "ai.dagrun_ro" => argv
            .iter()
            .position(|a| a.as_ref() == b"|>")
            .map_or(argv.len(), |i| i + 1)
            // At least six, so that the argument count RedisAI checks first is seen.
            .max(6),
        _ => return false,
    };
    kept.clear();
    kept.extend_from_slice(&argv[..n.min(argv.len())]);
    true
}

/// Arguments a connection keeps past this many (a DAG's long LOAD list) are not worth the
/// memory of a vector that lives as long as the connection.
const KEEP_CAPACITY: usize = 64;

/// `kept` emptied for reuse: its arguments let go (they hold on to the read buffer), and its
/// memory too when a long request grew it.
pub fn emptied(mut kept: Vec<Bytes>) -> Vec<Bytes> {
    kept.clear();
    if kept.capacity() > KEEP_CAPACITY {
        kept = Vec::new();
    }
    kept
}

/// What to answer for a request of the right arity whose parse failed with `e`, given its
/// [`keep_arguments`]: the keyspace error RedisAI meets first, else `e`.
pub fn parse_error(name: &str, argv: &[Bytes], e: Error, store: &Store, engine: &Engine) -> Error {
    // Argument counts are checked before anything else (AI.TENSORGET's at most 4, the DAG
    // commands' at least 6).
    let short_dag = name.starts_with("ai.dagexecute") && argv.len() < 6;
    if argv.len() < 2 {
        return e;
    }
    let own_arity = matches!(&e, Error::WrongArity(n) if n.eq_ignore_ascii_case(name));
    if own_arity || short_dag {
        return e;
    }
    let first = match name {
        "ai.tensorset" => match argv.get(1).and_then(|k| store.get(k)) {
            Some(Value::Tensor(_)) | None => None,
            Some(_) => Some(Error::WrongType),
        },
        "ai.tensorget" => argv.get(1).and_then(|k| tensor_error(k, store)),
        "ai.modelexecute" | "ai.modelrun" => {
            argv.get(1).and_then(|k| match model_of(k, store, engine) {
                Err(e) => Some(e),
                Ok(m) => modelexecute_input_count(argv)
                    .filter(|_| name == "ai.modelexecute")
                    .and_then(|n| check_inputs(&m, n).err()),
            })
        }
        _ => load_keys_checked_first(argv)
            .iter()
            .find_map(|k| tensor_error(k, store)),
    };
    first.unwrap_or(e)
}

/// The error for a tensor key that is missing or holds another type.
fn tensor_error(key: &[u8], store: &Store) -> Option<Error> {
    match store.get(key) {
        Some(Value::Tensor(_)) => None,
        Some(_) => Some(Error::WrongType),
        None => Some(Error::TensorKeyEmpty),
    }
}
