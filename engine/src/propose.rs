//! The write-path seam: `Proposer::propose(Mutation)` resolves once the mutation is applied.
//!
//! Command code holds an `Arc<dyn Proposer>` and never touches the `Store` for writes, and it
//! is the same in both modes: the node proposes through a Raft group (`shardai-raft`'s
//! `ShardGroup`, a `Proposer`), of one member on a standalone node and of the shard's replicas
//! in cluster mode, whose future resolves after the entry is committed and applied.
//! [`LocalApplier`] applies each mutation at once and keeps nothing: it serves unit tests.

use std::{future::Future, pin::Pin, sync::Arc};

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
}
