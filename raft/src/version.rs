//! Format versions: what every encoding this crate writes to disk or sends to another node
//! starts with, and the one wording of a refusal.
//!
//! | Encoding | Current | Reads | Recognised by |
//! |---|---|---|---|
//! | Raft log segment (`log-*.seg`) | 2 | 1, 2 | `shardai-log\n` + u32 version; a file without it is version 1 |
//! | `meta`, `committed` files | 2 | 1, 2 | `shardai-meta` + u32 version; a file without it is version 1 |
//! | Snapshot file | 1 | 1 | its first line, `shardai-snapshot-v<N>\n` |
//! | DUMP / RESTORE payload | 1 | 1 | `SHARDAI` + one version byte |
//! | Cluster bus connection | 3 | 3 (1, 2 on an unsecured bus only) | the client's preamble `shardai-bus\n` + its highest u32 version, answered by the server's naming the version both speak; a connection without it is version 1. Version 3 adds the proofs of the cluster secret before the Hello (`network::security`) |
//!
//! The rules (also in `docs/formats.md`):
//!
//! - The types inside these encodings are bincode 1.3, positional: a struct's fields are its
//!   order, an enum's variant is its index. So enum variants are only ever appended at the
//!   end, and changing, adding or removing a field, or reordering anything, is a new format
//!   version, with the old one still read. That includes openraft's types carried inside
//!   (entries, log ids, votes, memberships, RPCs): an openraft upgrade that changes their
//!   serde shape is a new version too.
//! - Data of a version this build does not know is refused with [`refused`]'s message,
//!   never guessed at: a newer build's data is not misread by an older one.
//! - The golden-bytes tests (`golden.rs`, fixtures in `raft/tests/golden/`) keep every
//!   version ever written readable, and fail when a writer's bytes change.

use std::{fmt::Display, ops::RangeInclusive};

/// "`what` has format version `found`; this build reads versions `known`".
pub(crate) fn refused(what: impl Display, found: u64, known: &RangeInclusive<u32>) -> String {
    let (lo, hi) = (known.start(), known.end());
    if lo == hi {
        format!("{what} has format version {found}; this build reads version {lo}")
    } else {
        format!("{what} has format version {found}; this build reads versions {lo} to {hi}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_version_and_what_is_read() {
        assert_eq!(
            refused("log segment log-1.seg", 7, &(1..=2)),
            "log segment log-1.seg has format version 7; this build reads versions 1 to 2"
        );
        assert_eq!(
            refused("snapshot s", 3, &(1..=1)),
            "snapshot s has format version 3; this build reads version 1"
        );
    }
}
