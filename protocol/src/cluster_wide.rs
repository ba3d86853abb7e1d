//! The naming rule of cluster-wide models and scripts: a model or script whose name starts
//! with `@` (and has more after it) belongs to the whole cluster rather than to a hash slot.
//!
//! The rule is in the name, so every node (and every client asking `COMMAND GETKEYS`) tells
//! from the request alone which names are cluster-wide, without looking anything up: the
//! model or script a command *runs* under such a name is left out of the keys that pick the
//! slot, and the command goes where its tensors are. In a cluster such names are never keys
//! of a slot; on a node outside a cluster they are ordinary keys.

use bytes::Bytes;

/// The first byte of a cluster-wide model's or script's name.
pub const PREFIX: u8 = b'@';

/// True when `name` names a cluster-wide model or script.
pub fn is_cluster_wide(name: &[u8]) -> bool {
    name.len() > 1 && name[0] == PREFIX
}

/// The model and script names a command runs: the model of AI.MODELEXECUTE / AI.MODELRUN,
/// the script of AI.SCRIPTEXECUTE / AI.SCRIPTRUN, and those of a DAG's ops. Each is a
/// reference into `argv`, so callers can tell it apart from another argument with the
/// same bytes.
pub fn run_objects<'a>(name: &str, argv: &'a [Bytes]) -> Vec<&'a Bytes> {
    match name {
        "ai.modelexecute" | "ai.modelrun" | "ai.scriptexecute" | "ai.scriptrun" => {
            argv.get(1).into_iter().collect()
        }
        "ai.dagexecute" | "ai.dagexecute_ro" | "ai.dagrun" | "ai.dagrun_ro" => argv
            .windows(3)
            .filter(|w| w[0].as_ref() == b"|>" && crate::table::is_keyed_op(&w[1]))
            .map(|w| &w[2])
            .collect(),
        _ => Vec::new(),
    }
}

/// `keys` without the cluster-wide models and scripts the command runs (`argv`'s own
/// arguments, compared by position, not by bytes).
pub fn without_run_objects<'a>(
    name: &str,
    argv: &'a [Bytes],
    mut keys: Vec<&'a Bytes>,
) -> Vec<&'a Bytes> {
    let run: Vec<&Bytes> = run_objects(name, argv)
        .into_iter()
        .filter(|k| is_cluster_wide(k))
        .collect();
    if !run.is_empty() {
        keys.retain(|k| !run.iter().any(|r| std::ptr::eq(*r, *k)));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::lookup;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn slot_keys(s: &str) -> Vec<String> {
        let a = argv(s);
        lookup(&a[0])
            .unwrap()
            .slot_keys(&a)
            .unwrap()
            .into_iter()
            .map(|k| String::from_utf8(k.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn the_rule_is_a_leading_at_sign() {
        assert!(is_cluster_wide(b"@resnet"));
        assert!(!is_cluster_wide(b"@"));
        assert!(!is_cluster_wide(b"resnet@"));
        assert!(!is_cluster_wide(b""));
    }

    #[test]
    fn a_cluster_wide_model_or_script_that_runs_does_not_pick_the_slot() {
        assert_eq!(
            slot_keys("AI.MODELEXECUTE @m INPUTS 1 {u}a OUTPUTS 1 {u}b"),
            ["{u}a", "{u}b"]
        );
        assert_eq!(
            slot_keys("AI.MODELEXECUTE m INPUTS 1 {u}a OUTPUTS 1 {u}b"),
            ["m", "{u}a", "{u}b"]
        );
        assert_eq!(
            slot_keys("AI.SCRIPTEXECUTE @s f KEYS 1 {u}k INPUTS 1 {u}a OUTPUTS 1 {u}b"),
            ["{u}k", "{u}a", "{u}b"]
        );
        assert_eq!(slot_keys("AI.MODELRUN @m INPUTS a OUTPUTS b"), ["a", "b"]);
        assert_eq!(
            slot_keys(
                "AI.DAGEXECUTE_RO LOAD 1 x |> AI.MODELEXECUTE @m INPUTS 1 x OUTPUTS 1 y \
                 |> AI.SCRIPTEXECUTE @s f INPUTS 1 y OUTPUTS 1 z |> AI.TENSORGET z VALUES"
            ),
            ["x"]
        );
    }

    #[test]
    fn only_the_run_position_is_left_out() {
        // An output named like the model stays a key: the node refuses it.
        assert_eq!(
            slot_keys("AI.MODELEXECUTE @m INPUTS 1 a OUTPUTS 1 @m"),
            ["a", "@m"]
        );
        // Storing, reading and deleting one names it as the key, as RedisAI's clients send.
        assert_eq!(slot_keys("AI.MODELSTORE @m ONNX CPU BLOB x"), ["@m"]);
        assert_eq!(slot_keys("AI.SCRIPTGET @s"), ["@s"]);
        assert_eq!(slot_keys("GET @m"), ["@m"]);
    }
}
