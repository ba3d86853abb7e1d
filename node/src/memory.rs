//! `maxmemory`: which writes may start. The dataset's size (the store's accounting) plus the
//! bytes of writes already admitted but not finished, plus what this write adds, must stay
//! within the limit; otherwise the write answers Redis's `-OOM`. The policy is noeviction:
//! nothing is ever evicted (a model is not a cache entry), reads and deletes keep working.
//! The decision is a plain function; [`Admitted`] holds a write's bytes until it finishes.

use std::sync::atomic::{AtomicUsize, Ordering};

use shardai_protocol::{
    Command, Error,
    command::{DagOp, TensorData, TensorSet},
};

/// What a write may add to the dataset: its request's bytes, or more where the request
/// is smaller than what it makes (a zero-filled tensor of 40 bytes on the wire can hold
/// 512 MiB).
pub fn growth(cmd: &Command, request_bytes: usize) -> usize {
    let made = match cmd {
        Command::TensorSet(t) => tensor_bytes(t),
        // A DAG's own TENSORSETs may be PERSISTed (and all are held while it runs).
        Command::Dag(d) => d
            .ops
            .iter()
            .map(|op| match op {
                DagOp::TensorSet(t) => tensor_bytes(t),
                _ => 0,
            })
            .fold(0, usize::saturating_add),
        // A SETRANGE far into a string makes a string that long (one past the largest
        // string is refused by its own error).
        Command::WriteRange {
            offset: Some(o),
            value,
            ..
        } if !value.is_empty() => usize::try_from(*o)
            .ok()
            .and_then(|o| o.checked_add(value.len()))
            .filter(|n| *n <= 512 * 1024 * 1024)
            .unwrap_or(0),
        _ => 0,
    };
    request_bytes.max(made)
}

/// The bytes a TENSORSET's tensor holds: elements × element size (a zero-filled STRING
/// element takes a byte).
fn tensor_bytes(t: &TensorSet) -> usize {
    let size = t.dtype.size().unwrap_or(1);
    match &t.data {
        TensorData::Blob(b) => b.len(),
        TensorData::Zeros | TensorData::Values(_) => t
            .shape
            .iter()
            .try_fold(size, |acc, d| acc.checked_mul(*d))
            .unwrap_or(usize::MAX),
    }
}

/// Whether a write adding `growth` bytes may start with `used` bytes in the dataset and
/// `in_flight` bytes admitted before it, under a limit of `max` bytes (0: none).
pub fn fits(used: usize, in_flight: usize, growth: usize, max: usize) -> bool {
    max == 0
        || used
            .saturating_add(in_flight)
            .saturating_add(growth)
            .le(&max)
}

/// A write's bytes, counted as in flight until it is dropped.
pub struct Admitted<'a> {
    in_flight: &'a AtomicUsize,
    bytes: usize,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Admits a write of `growth` bytes, or answers `-OOM`. Two writes admitted at once both
/// count, so concurrent writes cannot pass the limit together.
pub fn admit<'a>(
    used: usize,
    in_flight: &'a AtomicUsize,
    growth: usize,
    max: usize,
) -> Result<Option<Admitted<'a>>, Error> {
    if max == 0 {
        return Ok(None);
    }
    // Reserved only when it fits: a refused write never moves the counter others see.
    in_flight
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
            fits(used, cur, growth, max).then(|| cur + growth)
        })
        .map_err(|_| Error::Oom)?;
    Ok(Some(Admitted {
        in_flight,
        bytes: growth,
    }))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use shardai_protocol::dtype::DType;

    use super::*;

    fn tensorset(dtype: DType, shape: &[usize], data: TensorData) -> Command {
        Command::TensorSet(TensorSet {
            key: Bytes::from_static(b"k"),
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    #[test]
    fn a_zero_filled_tensor_counts_its_elements_not_its_request() {
        let big = tensorset(DType::Int8, &[536_870_912], TensorData::Zeros);
        assert_eq!(growth(&big, 40), 512 << 20);
        let floats = tensorset(DType::Float, &[2, 3], TensorData::Zeros);
        assert_eq!(growth(&floats, 30), 30);
        let floats = tensorset(DType::Double, &[100, 100], TensorData::Zeros);
        assert_eq!(growth(&floats, 30), 80_000);
        let huge = tensorset(DType::Int64, &[usize::MAX / 2, 4], TensorData::Zeros);
        assert_eq!(growth(&huge, 30), usize::MAX);
        let strings = tensorset(DType::String, &[1000], TensorData::Zeros);
        assert_eq!(growth(&strings, 30), 1000);
        assert_eq!(growth(&Command::Flush, 8), 8);
        let argv = "AI.DAGEXECUTE PERSIST 1 x |> AI.TENSORSET x INT8 1000 |> AI.TENSORSET y \
                    INT16 10"
            .split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let dag = Command::parse(argv).unwrap();
        assert_eq!(growth(&dag, 80), 1020);
    }

    #[test]
    fn the_limit_counts_the_dataset_and_the_writes_in_flight() {
        assert!(fits(usize::MAX, usize::MAX, usize::MAX, 0));
        assert!(fits(60, 30, 10, 100));
        assert!(!fits(60, 30, 11, 100));
        assert!(!fits(101, 0, 0, 100));
        assert!(!fits(usize::MAX, 1, 1, 100));
    }

    #[test]
    fn admitted_bytes_are_returned_when_the_write_ends() {
        let in_flight = AtomicUsize::new(0);
        let a = admit(50, &in_flight, 30, 100).unwrap();
        assert!(a.is_some());
        assert_eq!(in_flight.load(Ordering::Relaxed), 30);
        // A second write that would pass the limit with the first still running.
        assert_eq!(admit(50, &in_flight, 30, 100).err(), Some(Error::Oom));
        assert_eq!(in_flight.load(Ordering::Relaxed), 30);
        drop(a);
        assert_eq!(in_flight.load(Ordering::Relaxed), 0);
        assert!(admit(50, &in_flight, 30, 100).unwrap().is_some());
        assert!(admit(500, &in_flight, 30, 0).unwrap().is_none());
    }
}
