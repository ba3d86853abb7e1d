//! AI.DAGEXECUTE / AI.DAGEXECUTE_RO and the deprecated AI.DAGRUN / AI.DAGRUN_RO: the LOAD,
//! PERSIST, ROUTING and TIMEOUT sections, then ops split by `|>`, each parsed by the same
//! parser as the command on its own. Texts and checks follow RedisAI's dag_parser.c.

use bytes::Bytes;

use super::{Command, Cursor, ModelExecute, ScriptExecute, TensorGet, TensorSet, model::is};
use crate::{error::Error, frame::parse_i64, table};

/// A parsed DAG command.
#[derive(Debug, Clone, PartialEq)]
pub struct Dag {
    /// The read-only variant (no PERSIST, no scripts).
    pub ro: bool,
    /// Keys loaded from the keyspace into the DAG.
    pub load: Vec<Bytes>,
    /// DAG tensors written to the keyspace when every op succeeded.
    pub persist: Vec<Bytes>,
    /// The routing key or tag.
    pub routing: Option<Bytes>,
    /// Longest the whole DAG may take, in ms.
    pub timeout_ms: Option<u64>,
    /// The ops, in order.
    pub ops: Vec<DagOp>,
}

/// One op of a DAG.
#[derive(Debug, Clone, PartialEq)]
pub enum DagOp {
    /// AI.TENSORSET into the DAG's local tensors.
    TensorSet(TensorSet),
    /// AI.TENSORGET of a DAG tensor, replied in the DAG's array.
    TensorGet(TensorGet),
    /// AI.MODELEXECUTE (or AI.MODELRUN in the deprecated commands) on DAG tensors.
    ModelExecute(ModelExecute),
    /// AI.SCRIPTEXECUTE (or AI.SCRIPTRUN in the deprecated commands) on DAG tensors; its
    /// argument error, if any, is answered once the script key is checked.
    ScriptExecute(ScriptExecute),
}

impl DagOp {
    /// The DAG tensors the op reads.
    pub fn inputs(&self) -> &[Bytes] {
        match self {
            DagOp::TensorSet(_) => &[],
            DagOp::TensorGet(g) => std::slice::from_ref(&g.key),
            DagOp::ModelExecute(m) => &m.inputs,
            DagOp::ScriptExecute(s) => s.args.as_ref().map_or(&[], |a| &a.inputs),
        }
    }

    /// The DAG tensors the op writes.
    pub fn outputs(&self) -> &[Bytes] {
        match self {
            DagOp::TensorSet(s) => std::slice::from_ref(&s.key),
            DagOp::TensorGet(_) => &[],
            DagOp::ModelExecute(m) => &m.outputs,
            DagOp::ScriptExecute(s) => s.args.as_ref().map_or(&[], |a| &a.outputs),
        }
    }
}

fn err(text: &str) -> Error {
    Error::Verbatim(text.to_string())
}

/// `n key...` after LOAD or PERSIST.
fn counted(c: &mut Cursor, what: &str, text: &str) -> Result<Vec<Bytes>, Error> {
    if c.remaining() < 2 {
        return Err(err(&format!(
            "ERR missing arguments after {what} keyword in DAG command"
        )));
    }
    let n = c
        .next_opt()
        .and_then(|b| parse_i64(&b))
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            err(&format!(
                "ERR invalid or negative value found in number of keys to {what}"
            ))
        })?;
    let mut keys = Vec::new();
    while (keys.len() as i64) < n {
        match c.peek() {
            Some(k) if k.as_ref() != b"|>" => keys.push(c.next_bytes()?),
            _ => break,
        }
    }
    if keys.len() as i64 != n {
        return Err(err(text));
    }
    Ok(keys)
}

/// The most operations one DAG runs.
pub const MAX_DAG_OPS: usize = 1000;

/// The most keys one DAG LOADs and PERSISTs together.
pub const MAX_DAG_KEYS: usize = 10_000;

/// Parses a DAG command; `name` is the command table's name (`ai.dagexecute`, ...).
pub(super) fn parse(c: &mut Cursor, name: &str) -> Result<Dag, Error> {
    let ro = name.ends_with("_ro");
    let deprecated = name.starts_with("ai.dagrun");
    if !deprecated && c.remaining() < 5 {
        return Err(err(&format!(
            "ERR missing arguments for '{}' command",
            name.to_ascii_uppercase()
        )));
    }
    let mut dag = Dag {
        ro,
        load: Vec::new(),
        persist: Vec::new(),
        routing: None,
        timeout_ms: None,
        ops: Vec::new(),
    };
    let (mut load, mut persist, mut routing, mut timeout) = (false, false, false, false);
    // The sections before the first `|>`.
    while let Some(a) = c.peek().cloned() {
        if a.as_ref() == b"|>" {
            break;
        }
        c.next_bytes()?;
        if is(&a, "LOAD") && !load {
            dag.load = counted(
                c,
                "LOAD",
                "ERR number of keys to LOAD into DAG does not match the number of given arguments",
            )?;
            load = true;
        } else if is(&a, "PERSIST") && !persist {
            if ro {
                return Err(err("ERR PERSIST cannot be specified in a read-only DAG"));
            }
            dag.persist = counted(
                c,
                "PERSIST",
                "ERR number of keys to PERSIST after DAG execution does not match the number of \
                 given arguments",
            )?;
            let unique: std::collections::HashSet<&Bytes> = dag.persist.iter().collect();
            if unique.len() != dag.persist.len() {
                return Err(err("ERR PERSIST keys must be unique"));
            }
            persist = true;
        } else if is(&a, "ROUTING") && !routing && !deprecated {
            dag.routing = Some(
                c.next_opt()
                    .ok_or_else(|| err("ERR Missing ROUTING value"))?,
            );
            routing = true;
        } else if is(&a, "TIMEOUT") && !timeout {
            let v = c
                .next_opt()
                .ok_or_else(|| err("ERR No value provided for TIMEOUT"))?;
            dag.timeout_ms = Some(
                parse_i64(&v)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("ERR Invalid value for TIMEOUT"))? as u64,
            );
            timeout = true;
        } else {
            return Err(err(&format!(
                "ERR Invalid DAG command. Unexpected argument:  {}",
                String::from_utf8_lossy(&a)
            )));
        }
    }
    if !deprecated && !load && !persist && !routing {
        return Err(err(
            "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of \
             ROUTING, LOAD, PERSIST keywords",
        ));
    }
    // The ops: each `|>` starts one, up to the next `|>`.
    let mut op: Vec<Bytes> = Vec::new();
    let mut raw_ops: Vec<Vec<Bytes>> = Vec::new();
    for a in c.rest() {
        if a.as_ref() == b"|>" {
            if !op.is_empty() {
                raw_ops.push(std::mem::take(&mut op));
            }
        } else {
            op.push(a);
        }
    }
    if !op.is_empty() {
        raw_ops.push(op);
    }
    if raw_ops.is_empty() {
        return Err(err("ERR DAG is empty"));
    }
    if raw_ops.len() > MAX_DAG_OPS {
        return Err(err(&format!(
            "ERR DAG has {} operations, more than {MAX_DAG_OPS}",
            raw_ops.len()
        )));
    }
    if dag.load.len() + dag.persist.len() > MAX_DAG_KEYS {
        return Err(err(&format!(
            "ERR DAG LOADs and PERSISTs {} keys, more than {MAX_DAG_KEYS}",
            dag.load.len() + dag.persist.len()
        )));
    }
    for argv in raw_ops {
        dag.ops.push(parse_op(argv, ro, deprecated)?);
    }
    Ok(dag)
}

fn parse_op(argv: Vec<Bytes>, ro: bool, deprecated: bool) -> Result<DagOp, Error> {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_uppercase();
    match name.as_str() {
        "AI.MODELRUN" if !deprecated => {
            return Err(err(
                "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command",
            ));
        }
        "AI.SCRIPTRUN" if !deprecated => {
            return Err(err(
                "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command",
            ));
        }
        "AI.SCRIPTEXECUTE" if deprecated => {
            return Err(err(
                "AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command",
            ));
        }
        // As RedisAI: AI.DAGRUN_RO runs AI.SCRIPTRUN ops; AI.DAGEXECUTE_RO refuses scripts.
        "AI.SCRIPTEXECUTE" if ro => {
            return Err(err(&format!(
                "ERR {name} command cannot be specified in a read-only DAG"
            )));
        }
        "AI.TENSORSET" | "AI.TENSORGET" | "AI.MODELEXECUTE" | "AI.MODELRUN" => {}
        "AI.SCRIPTEXECUTE" | "AI.SCRIPTRUN" => {
            if argv.len() < 3 {
                return Err(err(&format!(
                    "ERR wrong number of arguments for '{name}' command"
                )));
            }
            let spec =
                table::lookup(&argv[0]).ok_or_else(|| err("Unsupported command within DAG"))?;
            let mut c = Cursor::new(argv, spec);
            let _ = c.next_bytes();
            let key = c.next_bytes()?;
            let args = if name == "AI.SCRIPTRUN" {
                super::script::parse_run_args(&mut c, true)
            } else {
                super::script::parse_execute_args(&mut c, true)
            };
            return Ok(DagOp::ScriptExecute(ScriptExecute { key, args }));
        }
        _ => return Err(err("Unsupported command within DAG")),
    }
    let spec = table::lookup(&argv[0]).ok_or_else(|| err("Unsupported command within DAG"))?;
    match Command::parse_for(spec, argv)? {
        Command::TensorSet(s) => Ok(DagOp::TensorSet(s)),
        Command::TensorGet(g) => Ok(DagOp::TensorGet(g)),
        Command::ModelExecute(m) => Ok(DagOp::ModelExecute(m)),
        _ => Err(err("Unsupported command within DAG")),
    }
}

/// The LOAD keys RedisAI reads from the keyspace before it meets an error in `argv` (a whole
/// DAG command, name first): it handles the sections before the first `|>` left to right and
/// looks each LOAD key up as it reads it (before it compares their number with the count),
/// and before anything after LOAD (later sections, the ops) is checked. Empty when a section
/// before LOAD, or LOAD's count, is refused first.
pub fn load_keys_checked_first(argv: &[Bytes]) -> Vec<Bytes> {
    let name = argv
        .first()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default();
    let (ro, deprecated) = (name.ends_with(b"_ro"), name.starts_with(b"ai.dagrun"));
    let positive = |at: usize| {
        argv.get(at)
            .and_then(|b| parse_i64(b))
            .filter(|n| *n > 0)
            .map(|n| n as usize)
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        let section = ["LOAD", "PERSIST", "ROUTING", "TIMEOUT"]
            .into_iter()
            .find(|s| is(a, s));
        let Some(section) = section.filter(|s| !seen.contains(s)) else {
            break;
        };
        seen.push(section);
        match section {
            "LOAD" => {
                let Some(n) = positive(i + 1).filter(|_| argv.len() > i + 2) else {
                    break;
                };
                return argv[i + 2..]
                    .iter()
                    .take(n)
                    .take_while(|k| k.as_ref() != b"|>")
                    .cloned()
                    .collect();
            }
            "PERSIST" => {
                let Some(n) = positive(i + 1).filter(|_| !ro) else {
                    break;
                };
                let keys = argv.get(i + 2..i + 2 + n).unwrap_or_default();
                let unique: std::collections::HashSet<&Bytes> = keys.iter().collect();
                if keys.len() != n || keys.iter().any(|k| k.as_ref() == b"|>") || unique.len() != n
                {
                    break;
                }
                i += 2 + n;
            }
            "ROUTING" if !deprecated && argv.len() > i + 1 => i += 2,
            "TIMEOUT" if positive(i + 1).is_some() => i += 2,
            _ => break,
        }
    }
    Vec::new()
}

/// `AI.DAGEXECUTE`, `AI.DAGEXECUTE_RO`, `AI.DAGRUN`, `AI.DAGRUN_RO` (registry parser, see
/// `crate::table`).
pub(crate) fn dag(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Dag(parse(c, c.name())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::parse as parse_cmd;

    fn dag(s: &str) -> Result<Dag, Error> {
        match parse_cmd(s)? {
            Command::Dag(d) => Ok(d),
            other => panic!("not a DAG: {other:?}"),
        }
    }

    fn text(s: &str) -> String {
        dag(s).unwrap_err().wire_text()
    }

    #[test]
    fn load_keys_are_those_redisai_reads_before_an_error() {
        let keys = |s: &str| {
            let argv: Vec<Bytes> = s.split(' ').map(|a| Bytes::from(a.to_string())).collect();
            load_keys_checked_first(&argv)
        };
        assert_eq!(keys("AI.DAGEXECUTE LOAD 2 a b |> AI.BAD"), ["a", "b"]);
        assert_eq!(
            keys("AI.DAGEXECUTE ROUTING r TIMEOUT 5 PERSIST 1 p load 1 a |>"),
            ["a"]
        );
        assert_eq!(keys("AI.DAGEXECUTE LOAD 3 a b |> x"), ["a", "b"]);
        assert_eq!(
            keys("AI.DAGEXECUTE_RO PERSIST 1 p LOAD 1 a |> x"),
            Vec::<Bytes>::new()
        );
        assert_eq!(
            keys("AI.DAGEXECUTE TIMEOUT x LOAD 1 a |> x"),
            Vec::<Bytes>::new()
        );
        assert_eq!(keys("AI.DAGEXECUTE LOAD 1 a LOAD 1 b |> x"), ["a"]);
        assert_eq!(
            keys("AI.DAGRUN ROUTING r LOAD 1 a |> x"),
            Vec::<Bytes>::new()
        );
        assert_eq!(
            keys("AI.DAGEXECUTE PERSIST 2 p p LOAD 1 a |> x"),
            Vec::<Bytes>::new()
        );
        assert_eq!(keys("AI.DAGEXECUTE LOAD 0 |> x"), Vec::<Bytes>::new());
        assert_eq!(keys("AI.DAGEXECUTE FOO LOAD 1 a |> x"), Vec::<Bytes>::new());
        assert_eq!(keys("AI.DAGEXECUTE PERSIST 1 p |> x"), Vec::<Bytes>::new());
    }

    #[test]
    fn sections_and_ops() {
        let d = dag(
            "AI.DAGEXECUTE PERSIST 1 predictions{tag} |> AI.TENSORSET mytensor FLOAT 1 2 \
             VALUES 5 10 |> AI.MODELEXECUTE mymodel{tag} INPUTS 1 mytensor OUTPUTS 2 classes \
             predictions{tag} |> AI.TENSORGET predictions{tag} VALUES",
        )
        .unwrap();
        assert_eq!(d.persist, vec![Bytes::from_static(b"predictions{tag}")]);
        assert_eq!(d.ops.len(), 3);
        assert_eq!(d.ops[1].inputs(), &[Bytes::from_static(b"mytensor")]);
        assert_eq!(d.ops[1].outputs().len(), 2);
        let d = dag("AI.DAGRUN_RO |> AI.TENSORSET a FLOAT 1 |> AI.MODELRUN m INPUTS a OUTPUTS b")
            .unwrap();
        assert!(d.ro && d.ops.len() == 2);
        let d =
            dag("AI.DAGEXECUTE ROUTING {1} TIMEOUT 50 LOAD 2 a b |> AI.TENSORGET a META").unwrap();
        assert_eq!((d.timeout_ms, d.load.len()), (Some(50), 2));
    }

    #[test]
    fn a_dag_is_bounded() {
        let ops = |n: usize| vec!["|> AI.TENSORGET a META"; n].join(" ");
        assert_eq!(
            dag(&format!("AI.DAGEXECUTE LOAD 1 a {}", ops(1000)))
                .unwrap()
                .ops
                .len(),
            1000
        );
        assert_eq!(
            text(&format!("AI.DAGEXECUTE LOAD 1 a {}", ops(1001))),
            "ERR DAG has 1001 operations, more than 1000"
        );
        let keys: Vec<String> = (0..10_001).map(|i| format!("k{i}")).collect();
        assert_eq!(
            text(&format!(
                "AI.DAGEXECUTE LOAD 10001 {} |> AI.TENSORGET k0 META",
                keys.join(" ")
            )),
            "ERR DAG LOADs and PERSISTs 10001 keys, more than 10000"
        );
    }

    #[test]
    fn redisai_error_texts() {
        let cases = [
            (
                "AI.DAGEXECUTE",
                "ERR missing arguments for 'AI.DAGEXECUTE' command",
            ),
            (
                "AI.DAGEXECUTE_RO",
                "ERR missing arguments for 'AI.DAGEXECUTE_RO' command",
            ),
            (
                "AI.DAGEXECUTE PERSIST 2 x y LOAD 1",
                "ERR missing arguments after LOAD keyword in DAG command",
            ),
            (
                "AI.DAGEXECUTE LOAD notnumber |> AI.TENSORGET x VALUES",
                "ERR invalid or negative value found in number of keys to LOAD",
            ),
            (
                "AI.DAGEXECUTE ROUTING a LOAD 2 a",
                "ERR number of keys to LOAD into DAG does not match the number of given arguments",
            ),
            (
                "AI.DAGEXECUTE ROUTING a LOAD 1 a PERSIST 1",
                "ERR missing arguments after PERSIST keyword in DAG command",
            ),
            (
                "AI.DAGEXECUTE ROUTING a PERSIST not_number a",
                "ERR invalid or negative value found in number of keys to PERSIST",
            ),
            (
                "AI.DAGEXECUTE ROUTING a PERSIST 2 a",
                "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments",
            ),
            (
                "AI.DAGEXECUTE ROUTING a PERSIST 1 a TIMEOUT",
                "ERR No value provided for TIMEOUT",
            ),
            (
                "AI.DAGEXECUTE ROUTING a PERSIST 1 a TIMEOUT not_number",
                "ERR Invalid value for TIMEOUT",
            ),
            (
                "AI.DAGEXECUTE PERSIST 3 a b c ROUTING",
                "ERR Missing ROUTING value",
            ),
            (
                "AI.DAGEXECUTE ROUTING a PERSIST 1 a BAD_ARG",
                "ERR Invalid DAG command. Unexpected argument:  BAD_ARG",
            ),
            (
                "AI.DAGEXECUTE |> AI.TENSORSET a FLOAT 1 2 VALUES 5 10",
                "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, LOAD, PERSIST keywords",
            ),
            (
                "AI.DAGEXECUTE ROUTING a |> AI.NOCOMMAND a FLOAT 1 2 VALUES 5 10",
                "Unsupported command within DAG",
            ),
            ("AI.DAGEXECUTE ROUTING v LOAD 1 v", "ERR DAG is empty"),
            (
                "AI.DAGEXECUTE LOAD 1 v |> AI.MODELRUN m INPUTS v v OUTPUTS o",
                "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command",
            ),
            (
                "AI.DAGEXECUTE LOAD 1 v |> AI.SCRIPTRUN s bar INPUTS v OUTPUTS o",
                "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command",
            ),
            (
                "AI.DAGEXECUTE_RO PERSIST 1 t |> AI.TENSORSET t FLOAT 1 2 VALUES 5 10",
                "ERR PERSIST cannot be specified in a read-only DAG",
            ),
            (
                "AI.DAGEXECUTE_RO LOAD 1 v |> AI.SCRIPTEXECUTE s bar INPUTS 2 v v",
                "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG",
            ),
            (
                "AI.DAGEXECUTE ROUTING a |> AI.TENSORSET a FLOAT 1 |> AI.TENSORGET",
                "ERR wrong number of arguments for 'AI.TENSORGET' command",
            ),
            (
                "AI.DAGEXECUTE ROUTING a |> AI.TENSORSET a FLOAT 1 |> AI.TENSORGET a META BLOB extra",
                "ERR wrong number of arguments for 'AI.TENSORGET' command",
            ),
            (
                "AI.DAGEXECUTE ROUTING a |> AI.TENSORSET a FLOAT 1 |> AI.TENSORSET",
                "ERR wrong number of arguments for 'AI.TENSORSET' command",
            ),
            (
                "AI.DAGEXECUTE PERSIST 2 a a |> AI.TENSORSET a FLOAT 1",
                "ERR PERSIST keys must be unique",
            ),
            (
                "AI.DAGRUN PERSIST 1 a BAD_ARG",
                "ERR Invalid DAG command. Unexpected argument:  BAD_ARG",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(text(cmd), want, "{cmd}");
        }
    }
}
