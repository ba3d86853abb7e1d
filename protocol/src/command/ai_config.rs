//! AI.CONFIG: run-time configuration and backend loading, as RedisAI 1.2 parses it.

use bytes::Bytes;

use super::{Command, Cursor, lower};
use crate::{error::Error, frame::parse_i64};

/// The smallest MODEL_CHUNK_SIZE: smaller chunks would make a model's MODELGET reply many
/// times its size (each chunk is a reply of its own).
pub const MIN_MODEL_CHUNK_SIZE: u64 = 1024;

/// The longest BATCH_QUEUE_DELAY_US: one second.
pub const MAX_BATCH_QUEUE_DELAY_US: u64 = 1_000_000;

/// The four backends RedisAI names.
pub const BACKENDS: [&str; 4] = ["TF", "TFLITE", "TORCH", "ONNX"];

/// `AI.CONFIG <BACKENDSPATH path | LOADBACKEND backend path | MODEL_CHUNK_SIZE n |
/// BACKEND_MEMORY_LIMIT mb | BATCH_QUEUE_DELAY_US us | GET name>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiConfig {
    /// Sets the base folder for relative backend paths.
    BackendsPath(Bytes),
    /// Loads a backend library (`backend` is one of [`BACKENDS`]).
    LoadBackend {
        /// Upper-case backend name.
        backend: &'static str,
        /// Library path, absolute or relative to BACKENDSPATH.
        path: Bytes,
    },
    /// Sets MODEL_CHUNK_SIZE in bytes.
    ModelChunkSize(u64),
    /// Sets BACKEND_MEMORY_LIMIT in MB (0: none).
    BackendMemoryLimit(u64),
    /// Sets BATCH_QUEUE_DELAY_US: how long a batch that is not full waits for more requests,
    /// in µs (0: none).
    BatchQueueDelay(u64),
    /// Reads an option (`BACKENDSPATH`, `MODEL_CHUNK_SIZE`, `BACKEND_MEMORY_LIMIT` or
    /// `BATCH_QUEUE_DELAY_US`), lower-cased.
    Get(String),
}

pub(super) fn parse(c: &mut Cursor) -> Result<AiConfig, Error> {
    let sub = lower(&c.next_bytes()?);
    Ok(match sub.as_str() {
        "backendspath" => AiConfig::BackendsPath(c.next_opt().ok_or(Error::BackendsPathMissing)?),
        "loadbackend" => {
            if c.remaining() < 2 {
                return Err(c.arity_error());
            }
            let name = c.next_bytes()?;
            let backend = BACKENDS
                .into_iter()
                .find(|b| b.as_bytes().eq_ignore_ascii_case(&name))
                .ok_or(Error::UnsupportedBackend)?;
            AiConfig::LoadBackend {
                backend,
                path: c.next_bytes()?,
            }
        }
        "model_chunk_size" => {
            let n = c.next_opt().ok_or(Error::ChunkSizeMissing)?;
            let n = parse_i64(&n)
                .filter(|n| *n > 0)
                .ok_or(Error::InvalidChunkSize)? as u64;
            if n < MIN_MODEL_CHUNK_SIZE {
                return Err(Error::ChunkSizeTooSmall(MIN_MODEL_CHUNK_SIZE));
            }
            AiConfig::ModelChunkSize(n)
        }
        "backend_memory_limit" => {
            let n = c.next_opt().ok_or_else(|| c.arity_error())?;
            let n = parse_i64(&n)
                .filter(|n| *n >= 0)
                .ok_or(Error::InvalidMemoryLimit)?;
            AiConfig::BackendMemoryLimit(n as u64)
        }
        "batch_queue_delay_us" => {
            let n = c.next_opt().ok_or_else(|| c.arity_error())?;
            let n = parse_i64(&n)
                .filter(|n| (0..=MAX_BATCH_QUEUE_DELAY_US as i64).contains(n))
                .ok_or_else(|| {
                    Error::Verbatim(format!(
                        "ERR BATCH_QUEUE_DELAY_US: the delay must be a whole number of \
                         microseconds from 0 (none) to {MAX_BATCH_QUEUE_DELAY_US}"
                    ))
                })?;
            AiConfig::BatchQueueDelay(n as u64)
        }
        "get" => AiConfig::Get(lower(&c.next_opt().ok_or_else(|| c.arity_error())?)),
        _ => return Err(Error::UnsupportedSubcommand),
    })
}

/// `AI.CONFIG ...` (registry parser, see `crate::table`).
pub(crate) fn ai_config(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::AiConfig(parse(c)?))
}

#[cfg(test)]
mod tests {
    use super::super::{Command, tests::parse};
    use super::*;

    #[test]
    fn subcommands_and_errors() {
        assert_eq!(
            parse("AI.CONFIG LOADBACKEND torch x.so").unwrap(),
            Command::AiConfig(AiConfig::LoadBackend {
                backend: "TORCH",
                path: Bytes::from_static(b"x.so")
            })
        );
        assert_eq!(
            parse("AI.CONFIG MODEL_CHUNK_SIZE 1")
                .unwrap_err()
                .to_string(),
            "ERR MODEL_CHUNK_SIZE: the chunk size must be at least 1024 bytes"
        );
        assert_eq!(
            parse("AI.CONFIG MODEL_CHUNK_SIZE 1048576").unwrap(),
            Command::AiConfig(AiConfig::ModelChunkSize(1048576))
        );
        assert_eq!(
            parse("AI.CONFIG backend_memory_limit 0").unwrap(),
            Command::AiConfig(AiConfig::BackendMemoryLimit(0))
        );
        let err = |s| parse(s).unwrap_err().wire_text();
        assert!(err("AI.CONFIG BACKEND_MEMORY_LIMIT -1").contains("whole number of MB"));
        assert_eq!(
            parse("AI.CONFIG batch_queue_delay_us 2000").unwrap(),
            Command::AiConfig(AiConfig::BatchQueueDelay(2000))
        );
        assert_eq!(
            err("AI.CONFIG BATCH_QUEUE_DELAY_US"),
            "ERR wrong number of arguments for 'AI.CONFIG' command"
        );
        for bad in [
            "AI.CONFIG BATCH_QUEUE_DELAY_US -1",
            "AI.CONFIG BATCH_QUEUE_DELAY_US 1000001",
            "AI.CONFIG BATCH_QUEUE_DELAY_US 2ms",
        ] {
            assert!(
                err(bad).starts_with("ERR BATCH_QUEUE_DELAY_US: the delay must be a whole number")
            );
        }
        assert_eq!(
            err("AI.CONFIG BACKENDSPATH"),
            "ERR BACKENDSPATH: missing path argument"
        );
        assert_eq!(
            err("AI.CONFIG LOADBACKEND PYTHON x"),
            "ERR unsupported backend"
        );
        assert_eq!(
            err("AI.CONFIG MODEL_CHUNK_SIZE"),
            "ERR MODEL_CHUNK_SIZE: missing chunk size"
        );
        assert_eq!(
            err("AI.CONFIG MODEL_CHUNK_SIZE -1"),
            "ERR MODEL_CHUNK_SIZE: invalid chunk size"
        );
        assert_eq!(err("AI.CONFIG BOGUS"), "ERR unsupported subcommand");
        assert_eq!(
            err("AI.CONFIG LOADBACKEND TF"),
            "ERR wrong number of arguments for 'AI.CONFIG' command"
        );
    }
}
