//! openraft's own storage test suite (`openraft::testing::log::Suite`, 40-odd cases) run on
//! the segment log store and the state machine, each build in a fresh folder.

use std::sync::Arc;

use openraft::{StorageError, testing::log::StoreBuilder};
use shardai_engine::{Store, backend::Backends};
use shardai_raft::{
    TypeConfig,
    log_store::LogStore,
    state_machine::{Pending, StateMachine},
};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let d = tempfile::tempdir().unwrap();
        let log = LogStore::open(&d.path().join("log")).unwrap();
        let sm = StateMachine::open(
            &d.path().join("snapshots"),
            Arc::new(Store::new()),
            Arc::new(Backends::new(None)),
            1,
            Arc::new(Pending::default()),
        )
        .unwrap();
        Ok((d, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    openraft::testing::log::Suite::test_all(Builder)
        .await
        .unwrap();
}
