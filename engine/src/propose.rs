//! The write-path seam: `Proposer::propose(Mutation)` resolves once the mutation is applied.
//!
//! Command code holds an `Arc<dyn Proposer>` and never touches the `Store` for writes, and it
//! is the same in both modes: the node proposes through a Raft group (`shardai-raft`'s
//! `ShardGroup`, a `Proposer`), of one member on a standalone node and of the shard's replicas
//! in cluster mode, whose future resolves after the entry is committed and applied.
//! [`LocalApplier`] applies each mutation at once and keeps nothing: it serves unit tests.
//! [`Staging`] applies mutations to a scratch store and records them: a transaction runs
//! against it, and its writes are then proposed together as one `Mutation::Batch`.

use std::{future::Future, pin::Pin, sync::Arc};

use parking_lot::Mutex;

use shardai_protocol::Error;

use crate::{
    mutation::{Applied, Mutation},
    now_ms,
    store::Store,
};

/// The future a proposal returns.
pub type Proposal<'a> = Pin<Box<dyn Future<Output = Result<Applied, Error>> + Send + 'a>>;

/// Accepts mutations for one shard and applies them in one total order.
pub trait Proposer: Send + Sync {
    /// Proposes `m`; the future resolves with the apply result once it is applied.
    fn propose(&self, m: Mutation) -> Proposal<'_>;

    /// The store the mutations are applied to (for reads).
    fn store(&self) -> &Arc<Store>;
}

/// Applies mutations straight to the local store: a single node with no replication.
#[derive(Debug, Clone)]
pub struct LocalApplier {
    store: Arc<Store>,
}

impl LocalApplier {
    /// An applier for `store`.
    pub fn new(store: Arc<Store>) -> Self {
        LocalApplier { store }
    }
}

impl Proposer for LocalApplier {
    fn propose(&self, m: Mutation) -> Proposal<'_> {
        // Applying is an O(1) map update for everything but FLUSHALL and expiry sweeps; none
        // of it blocks on I/O, so it runs inline.
        let r = self.store.apply(m, now_ms());
        Box::pin(std::future::ready(r))
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// A write staged by [`Staging`]: the mutation and its result on the scratch store.
pub type Staged = (Mutation, Result<Applied, Error>);

/// Applies mutations to a scratch store (a [`Store::subset`] of the keys a transaction
/// names) and records each with its result, so that the transaction's reads see its own
/// earlier writes before any of them is proposed.
#[derive(Debug)]
pub struct Staging {
    store: Arc<Store>,
    writes: Mutex<Vec<Staged>>,
}

impl Staging {
    /// Stages writes on `scratch`.
    pub fn new(scratch: Store) -> Self {
        Staging {
            store: Arc::new(scratch),
            writes: Mutex::new(Vec::new()),
        }
    }

    /// The writes staged so far, in order.
    pub fn into_writes(self) -> Vec<Staged> {
        self.writes.into_inner()
    }
}

impl Proposer for Staging {
    fn propose(&self, m: Mutation) -> Proposal<'_> {
        let r = self.store.apply(m.clone(), now_ms());
        self.writes.lock().push((m, r.clone()));
        Box::pin(std::future::ready(r))
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[tokio::test]
    async fn local_applier_applies_before_resolving() {
        let p: Arc<dyn Proposer> = Arc::new(LocalApplier::new(Arc::new(Store::new())));
        let r = p
            .propose(Mutation::set(
                Bytes::from_static(b"k"),
                Bytes::from_static(b"v"),
            ))
            .await;
        assert_eq!(
            r.unwrap(),
            Applied::Set {
                written: true,
                old: None
            }
        );
        assert!(p.store().get(b"k").is_some());
    }

    #[tokio::test]
    async fn staging_applies_to_its_scratch_store_and_records() {
        let real = Store::new();
        let s = Staging::new(real.subset(&[], 0));
        let k = Bytes::from_static(b"k");
        let r = s
            .propose(Mutation::IncrBy {
                key: k.clone(),
                delta: 2,
            })
            .await;
        assert_eq!(r, Ok(Applied::Int(2)));
        assert!(s.store().get(b"k").is_some() && real.get(b"k").is_none());
        let w = s.into_writes();
        assert_eq!(w.len(), 1);
        assert!(matches!(
            &w[0],
            (Mutation::IncrBy { delta: 2, .. }, Ok(Applied::Int(2)))
        ));
    }
}
