//! `/readyz`: whether a node should get traffic. Ready when each Raft group it takes part
//! in has a leader it hears from and this node has applied what the leader reported
//! committed when the node (re)found it ([`group_ready`]), and every model it holds has its
//! backend loaded.
//! A node that is not in a cluster yet (before `shardai cluster create`) is not ready.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use shardai_raft::RoleInfo;

use crate::state::Shared;

/// The commit index each group had when this node first saw its leader.
#[derive(Debug, Default)]
pub struct Readiness {
    targets: Mutex<BTreeMap<&'static str, u64>>,
}

impl Readiness {
    /// `Ok` when ready, else why not.
    pub fn check(&self, shared: &Shared) -> Result<(), String> {
        if let Some(c) = &shared.cluster
            && c.group().is_none()
        {
            return Err("not in a cluster yet (shardai cluster create or add-node)".into());
        }
        for (name, group) in super::raft_metrics::groups(shared) {
            let role = group.role();
            let mut targets = self.targets.lock();
            let mut target = targets.get(name).copied();
            let r = group_ready(name, &role, &mut target);
            match target {
                Some(t) => targets.insert(name, t),
                None => targets.remove(name),
            };
            r?;
        }
        // The keyspace is walked only when some model on this node lacks its backend.
        if shardai_engine::backend::models_not_loaded() == 0 {
            return Ok(());
        }
        let mut waiting = shared.store().models_not_loaded();
        if let Some(o) = shared.engine.objects.get() {
            waiting.extend(o.models_not_loaded());
        }
        if let Some((key, model)) = waiting.first() {
            return Err(format!(
                "{} model(s) wait for their backend, {} among them: {}",
                waiting.len(),
                String::from_utf8_lossy(key),
                model.loaded.load_error().unwrap_or("not loaded")
            ));
        }
        Ok(())
    }
}

/// One group's part of readiness. `target` is the commit index to reach: the group's
/// commit index as its leader last reported it, taken when a leader is first known, and
/// again whenever the node finds a leader after a spell without one (so a node cut off
/// from its shard is ready again only once it has caught up with what was committed
/// meanwhile).
pub fn group_ready(name: &str, role: &RoleInfo, target: &mut Option<u64>) -> Result<(), String> {
    if let Some(f) = &role.fatal {
        return Err(format!("the {name} group stopped: {f}"));
    }
    if role.leader.is_none() {
        *target = None;
        return Err(format!("the {name} group has no leader"));
    }
    if role.leader_cut_off {
        return Err(format!(
            "this node leads the {name} group but has not heard from a majority of it"
        ));
    }
    let t = *target.get_or_insert(role.committed);
    if role.applied < t {
        return Err(format!(
            "catching up the {name} group: applied {} of {t}",
            role.applied
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shardai_raft::{ServerState, ShardNode};

    use super::*;

    fn role(leader: bool, committed: u64, applied: u64) -> RoleInfo {
        RoleInfo {
            me: 1,
            state: ServerState::Follower,
            term: 3,
            leader: leader.then(|| (2, ShardNode::default())),
            last_log: committed,
            committed,
            applied,
            snapshot: 0,
            first_log: 0,
            members: Vec::new(),
            matched: Default::default(),
            fatal: None,
            leader_cut_off: false,
        }
    }

    #[test]
    fn ready_once_caught_up_with_what_was_committed_at_start() {
        let mut target = None;
        assert!(group_ready("data", &role(false, 0, 0), &mut target).is_err());
        assert_eq!(target, None);
        let e = group_ready("data", &role(true, 10, 4), &mut target).unwrap_err();
        assert!(e.contains("applied 4 of 10"), "{e}");
        // Later commits do not move the goal.
        assert!(group_ready("data", &role(true, 50, 10), &mut target).is_ok());
        // Losing the leader makes it unready again, and sets a new goal once one is back.
        assert!(group_ready("data", &role(false, 50, 50), &mut target).is_err());
        assert_eq!(target, None);
        assert!(group_ready("data", &role(true, 80, 60), &mut target).is_err());
        assert!(group_ready("data", &role(true, 90, 80), &mut target).is_ok());
        let mut stopped = role(true, 10, 10);
        stopped.fatal = Some("disk full".into());
        assert!(group_ready("data", &stopped, &mut target).is_err());
        let mut alone = role(true, 10, 10);
        alone.leader_cut_off = true;
        assert!(group_ready("data", &alone, &mut target).is_err());
    }
}
