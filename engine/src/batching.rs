//! The auto-batching policy: which queued requests a device worker runs next, as one backend
//! call. Pure: it looks at a snapshot of the queue and the time, and decides.
//!
//! RedisAI's rules (spec: BATCHSIZE, MINBATCHSIZE, MINBATCHTIMEOUT):
//! - A model with BATCHSIZE 0 runs each request alone, as soon as it is picked.
//! - Otherwise the first queued request of a model heads a batch; later requests for the same
//!   model whose inputs agree with the head's in dtype and in every dimension but 0 join it
//!   while the total batch stays within BATCHSIZE. A head larger than BATCHSIZE runs alone.
//! - With MINBATCHSIZE, a batch smaller than it waits for more requests: indefinitely, or
//!   until the head has waited MINBATCHTIMEOUT ms. A waiting model does not hold up the
//!   requests of other models behind it.
//! - A request whose TIMEOUT passed while it waited is taken off the queue (`+TIMEDOUT`).
//!
//! One addition, off by default: a queue delay (`AI.CONFIG BATCH_QUEUE_DELAY_US`, as
//! Triton's `max_queue_delay_microseconds`). A batch that met MINBATCHSIZE but is not full
//! waits for more requests until its head has waited that long, or runs at once when the
//! wait would pass the TIMEOUT of a request in it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use shardai_protocol::{DType, Error, command::BatchOpts};

use crate::tensor::{Dims, Tensor};

/// What the policy needs to know of one queued request.
#[derive(Debug, Clone)]
pub struct Queued<'a> {
    /// Identifies the model (requests batch only with requests for the same model).
    pub model: usize,
    /// The model's batching options.
    pub opts: BatchOpts,
    /// Each input's dtype and shape.
    pub inputs: Vec<(DType, Dims<'a>)>,
    /// When it was queued.
    pub enqueued: Instant,
    /// When it stops being worth running (its TIMEOUT), if it has one.
    pub deadline: Option<Instant>,
}

impl Queued<'_> {
    /// The request's batch: dimension 0 of its first input (1 for a scalar).
    pub fn batch(&self) -> usize {
        self.inputs
            .first()
            .and_then(|(_, s)| s.first().copied())
            .unwrap_or(1)
    }

    /// Whether the request can take part in a batch at all: it has inputs, none of them a
    /// STRING or a scalar, all with the same dimension 0.
    fn batchable(&self) -> bool {
        let batch = self.batch();
        !self.inputs.is_empty()
            && self
                .inputs
                .iter()
                .all(|(d, s)| *d != DType::String && s.first() == Some(&batch))
    }

    /// Whether `other` can be concatenated with this (batchable) request along dimension 0.
    fn compatible(&self, other: &Queued<'_>) -> bool {
        self.model == other.model
            && other.batchable()
            && self.inputs.len() == other.inputs.len()
            && self
                .inputs
                .iter()
                .zip(&other.inputs)
                .all(|(a, b)| a.0 == b.0 && a.1.len() == b.1.len() && a.1[1..] == b.1[1..])
    }
}

/// How close to a request's TIMEOUT the queue delay stops waiting for more requests.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

/// The worker's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Answer these requests `+TIMEDOUT` (queue positions, ascending).
    TimedOut(Vec<usize>),
    /// Run these requests as one backend call, in this order (queue positions, ascending).
    Run(Vec<usize>),
    /// Nothing can run now: wait for a new request, or until this instant if given.
    Wait(Option<Instant>),
}

/// Decides the next step for a queue (oldest request first) at `now`; `delay` is the queue
/// delay (zero: none).
pub fn pick(queue: &[Queued<'_>], now: Instant, delay: Duration) -> Pick {
    let expired: Vec<usize> = queue
        .iter()
        .enumerate()
        .filter(|(_, q)| q.deadline.is_some_and(|d| d <= now))
        .map(|(i, _)| i)
        .collect();
    if !expired.is_empty() {
        return Pick::TimedOut(expired);
    }
    let mut wake: Option<Instant> = queue.iter().filter_map(|q| q.deadline).min();
    let mut taken = vec![false; queue.len()];
    for (i, head) in queue.iter().enumerate() {
        if taken[i] {
            continue;
        }
        let opts = head.opts;
        let limit = opts.batchsize as usize;
        // Alone: no batching, a head at least BATCHSIZE, or a request that cannot be
        // concatenated (it would otherwise wait for a MINBATCHSIZE it can never reach).
        if limit == 0 || head.batch() >= limit || !head.batchable() {
            return Pick::Run(vec![i]);
        }
        let mut group = vec![i];
        let mut total = head.batch();
        taken[i] = true;
        for (j, q) in queue.iter().enumerate().skip(i + 1) {
            if taken[j] || !head.compatible(q) || total + q.batch() > limit {
                continue;
            }
            total += q.batch();
            group.push(j);
            taken[j] = true;
        }
        // A MINBATCHSIZE above BATCHSIZE could never be met: BATCHSIZE is the most it waits for.
        let min = (opts.minbatchsize as usize).min(limit);
        if min == 0 || total >= min {
            if total >= limit || delay.is_zero() {
                return Pick::Run(group);
            }
            let until = head.enqueued + delay;
            // Never waits a request up to its TIMEOUT: such a batch runs now (with a margin
            // for the worker's wake-up, which comes a little after the instant asked for).
            let first_deadline = group.iter().filter_map(|&g| queue[g].deadline).min();
            if until <= now || first_deadline.is_some_and(|d| d <= until + DEADLINE_MARGIN) {
                return Pick::Run(group);
            }
            wake = Some(wake.map_or(until, |w| w.min(until)));
            continue;
        }
        if opts.minbatchtimeout > 0 {
            let until = head.enqueued + Duration::from_millis(opts.minbatchtimeout);
            if until <= now {
                return Pick::Run(group);
            }
            wake = Some(wake.map_or(until, |w| w.min(until)));
        }
    }
    Pick::Wait(wake)
}

/// Concatenates tensors along dimension 0 (the policy only groups tensors that agree in
/// dtype and every other dimension, and never STRING tensors).
pub fn concat(parts: &[&Tensor]) -> Result<Tensor, Error> {
    let Some(first) = parts.first() else {
        return Err(Error::Verbatim("ERR empty batch".into()));
    };
    let mut shape = first.shape().to_vec();
    shape[0] = parts.iter().map(|t| t.shape()[0]).sum();
    let mut buf = Vec::with_capacity(parts.iter().map(|t| t.byte_size()).sum());
    for t in parts {
        buf.extend_from_slice(t.data());
    }
    Tensor::from_blob(first.dtype(), shape, Bytes::from(buf))
}

/// Splits a batched run's outputs back per request (`sizes`: each request's batch), without
/// copying: each piece is a slice of the output's bytes. Every output must have the batch's
/// total as its dimension 0.
pub fn split(outputs: Vec<Tensor>, sizes: &[usize]) -> Result<Vec<Vec<Tensor>>, Error> {
    let total: usize = sizes.iter().sum();
    let mut per: Vec<Vec<Tensor>> = vec![Vec::with_capacity(outputs.len()); sizes.len()];
    for out in outputs {
        if out.shape().first() != Some(&total) || out.dtype() == DType::String {
            return Err(Error::Verbatim(
                "ERR Model did not generate the expected batch size".into(),
            ));
        }
        let row = out.byte_size() / total;
        let all = out.blob();
        let mut offset = 0;
        for (piece, &n) in per.iter_mut().zip(sizes) {
            let mut shape = out.shape().to_vec();
            shape[0] = n;
            let bytes = all.slice(offset..offset + n * row);
            piece.push(Tensor::from_blob(out.dtype(), shape, bytes)?);
            offset += n * row;
        }
    }
    Ok(per)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(shape: Vec<usize>, v: &[f32]) -> Tensor {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor::from_blob(DType::Float, shape, Bytes::from(b)).unwrap()
    }

    #[test]
    fn concat_then_split_round_trips() {
        let a = floats(vec![1, 2], &[1.0, 2.0]);
        let b = floats(vec![2, 2], &[3.0, 4.0, 5.0, 6.0]);
        let c = concat(&[&a, &b]).unwrap();
        assert_eq!(&c.shape()[..], &[3, 2]);
        let back = split(vec![c.clone(), c], &[1, 2]).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0][0], a);
        assert_eq!(back[1][1], b);
    }

    #[test]
    fn an_output_without_the_batch_is_an_error() {
        let summed = floats(vec![1, 2], &[9.0, 12.0]);
        assert_eq!(
            split(vec![summed], &[1, 2]).unwrap_err(),
            Error::Verbatim("ERR Model did not generate the expected batch size".into())
        );
    }

    /// The policy without a queue delay (RedisAI's rules).
    fn pick(queue: &[Queued<'_>], now: Instant) -> Pick {
        super::pick(queue, now, Duration::ZERO)
    }

    #[test]
    fn a_queue_delay_waits_to_fill_the_batch_but_not_past_a_timeout() {
        let t = Instant::now();
        let d = Duration::from_millis(2);
        let o = opts(4, 0, 0);
        let queue = [q(1, o, S1, t), q(1, o, S1, t)];
        // Not full: waits until the head has waited the delay, then runs what is there.
        assert_eq!(super::pick(&queue, t, d), Pick::Wait(Some(t + d)));
        assert_eq!(super::pick(&queue, t + d, d), Pick::Run(vec![0, 1]));
        // Full: runs at once.
        let full = [q(1, o, S2, t), q(1, o, S2, t)];
        assert_eq!(super::pick(&full, t, d), Pick::Run(vec![0, 1]));
        // A member whose TIMEOUT comes before the delay ends: the batch runs now.
        let mut soon = q(1, o, S1, t);
        soon.deadline = Some(t + Duration::from_millis(1));
        assert_eq!(
            super::pick(&[q(1, o, S1, t), soon], t, d),
            Pick::Run(vec![0, 1])
        );
        // MINBATCHSIZE still comes first; the delay applies once it is met.
        let m = opts(4, 3, 0);
        let two = [q(1, m, S1, t), q(1, m, S1, t)];
        assert_eq!(super::pick(&two, t + d, d), Pick::Wait(None));
        // Without BATCHSIZE there is nothing to fill.
        let alone = [q(1, opts(0, 0, 0), S1, t)];
        assert_eq!(super::pick(&alone, t, d), Pick::Run(vec![0]));
        // A waiting batch does not hold up another model's full one.
        let other = [q(1, o, S1, t), q(2, opts(1, 0, 0), S1, t)];
        assert_eq!(super::pick(&other, t, d), Pick::Run(vec![1]));
    }

    const S1: &[usize] = &[1, 4];
    const S2: &[usize] = &[2, 4];
    const S5: &[usize] = &[5, 4];
    const OTHER: &[usize] = &[1, 3];

    fn opts(batchsize: u64, minbatchsize: u64, minbatchtimeout: u64) -> BatchOpts {
        BatchOpts {
            batchsize,
            minbatchsize,
            minbatchtimeout,
        }
    }

    fn q(model: usize, o: BatchOpts, shape: &'static [usize], at: Instant) -> Queued<'static> {
        Queued {
            model,
            opts: o,
            inputs: vec![(DType::Float, Dims::from(shape))],
            enqueued: at,
            deadline: None,
        }
    }

    #[test]
    fn without_batchsize_each_request_runs_alone() {
        let t = Instant::now();
        let o = opts(0, 0, 0);
        let queue = [q(1, o, S1, t), q(1, o, S1, t)];
        assert_eq!(pick(&queue, t), Pick::Run(vec![0]));
        assert_eq!(pick(&[], t), Pick::Wait(None));
    }

    #[test]
    fn compatible_requests_join_up_to_batchsize() {
        let t = Instant::now();
        let o = opts(4, 0, 0);
        let queue = [
            q(1, o, S1, t),
            q(1, o, OTHER, t), // other trailing dims: not batched with the head
            q(2, o, S1, t),    // another model
            q(1, o, S2, t),
            q(1, o, S2, t), // would make 5 > 4
            q(1, o, S1, t),
        ];
        assert_eq!(pick(&queue, t), Pick::Run(vec![0, 3, 5]));
    }

    #[test]
    fn dtype_and_strings_prevent_batching() {
        let t = Instant::now();
        let o = opts(8, 0, 0);
        let mut other_dtype = q(1, o, S1, t);
        other_dtype.inputs[0].0 = DType::Double;
        let queue = [q(1, o, S1, t), other_dtype];
        assert_eq!(pick(&queue, t), Pick::Run(vec![0]));
        let mut s1 = q(1, o, S1, t);
        s1.inputs[0].0 = DType::String;
        let queue = [s1.clone(), s1];
        assert_eq!(pick(&queue, t), Pick::Run(vec![0]));
    }

    #[test]
    fn requests_that_cannot_batch_never_wait_for_minbatchsize() {
        let t = Instant::now();
        let o = opts(8, 4, 0);
        let mut s = q(1, o, S1, t);
        s.inputs[0].0 = DType::String;
        assert_eq!(pick(&[s], t), Pick::Run(vec![0]));
        let scalar = q(1, o, &[], t);
        assert_eq!(pick(&[scalar], t), Pick::Run(vec![0]));
        let mut uneven = q(1, o, S1, t);
        uneven.inputs.push((DType::Float, Dims::from(S2)));
        assert_eq!(pick(&[uneven], t), Pick::Run(vec![0]));
        // MINBATCHSIZE above BATCHSIZE waits for BATCHSIZE only.
        let o = opts(2, 4, 0);
        let queue = [q(1, o, S1, t), q(1, o, S1, t)];
        assert_eq!(pick(&queue, t), Pick::Run(vec![0, 1]));
    }

    #[test]
    fn a_head_larger_than_batchsize_runs_alone() {
        let t = Instant::now();
        let o = opts(4, 2, 0);
        let queue = [q(1, o, S5, t), q(1, o, S1, t)];
        assert_eq!(pick(&queue, t), Pick::Run(vec![0]));
    }

    #[test]
    fn minbatchsize_without_timeout_waits_indefinitely() {
        let t = Instant::now();
        let o = opts(8, 3, 0);
        let queue = [q(1, o, S1, t), q(1, o, S1, t)];
        assert_eq!(
            pick(&queue, t + Duration::from_secs(3600)),
            Pick::Wait(None)
        );
        let queue = [q(1, o, S1, t), q(1, o, S1, t), q(1, o, S1, t)];
        assert_eq!(pick(&queue, t), Pick::Run(vec![0, 1, 2]));
    }

    #[test]
    fn minbatchtimeout_runs_what_is_there_once_the_head_waited_long_enough() {
        let t = Instant::now();
        let o = opts(8, 4, 100);
        let queue = [q(1, o, S1, t), q(1, o, S2, t + Duration::from_millis(50))];
        let due = t + Duration::from_millis(100);
        assert_eq!(pick(&queue, t), Pick::Wait(Some(due)));
        assert_eq!(pick(&queue, due), Pick::Run(vec![0, 1]));
    }

    #[test]
    fn a_waiting_model_does_not_hold_up_others() {
        let t = Instant::now();
        let waiting = opts(8, 4, 0);
        let queue = [q(1, waiting, S1, t), q(2, opts(0, 0, 0), S1, t)];
        assert_eq!(pick(&queue, t), Pick::Run(vec![1]));
    }

    #[test]
    fn expired_requests_are_answered_first() {
        let t = Instant::now();
        let o = opts(0, 0, 0);
        let mut late = q(2, o, S1, t);
        late.deadline = Some(t + Duration::from_millis(10));
        let queue = [q(1, opts(8, 4, 0), S1, t), late];
        assert_eq!(
            pick(&queue, t),
            Pick::Run(vec![1]),
            "not expired yet: it runs"
        );
        let queue = [queue[0].clone(), queue[1].clone()];
        assert_eq!(
            pick(&queue, t + Duration::from_millis(10)),
            Pick::TimedOut(vec![1])
        );
        // A waiting request's own deadline is when the worker must look again.
        let mut waiting = q(1, opts(8, 4, 0), S1, t);
        waiting.deadline = Some(t + Duration::from_millis(30));
        assert_eq!(
            pick(&[waiting], t),
            Pick::Wait(Some(t + Duration::from_millis(30)))
        );
    }
}
