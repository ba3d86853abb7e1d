//! AI.SCRIPTSTORE / AI.SCRIPTSET, AI.SCRIPTGET, AI.SCRIPTDEL, AI.SCRIPTEXECUTE /
//! AI.SCRIPTRUN and AI._SCRIPTSCAN arguments, checked in RedisAI 1.2's order with its texts
//! (see `docs/redisai-script-commands.md`).
//!
//! RedisAI looks the script key up before it parses the rest of AI.SCRIPTGET and
//! AI.SCRIPTEXECUTE, so those parsers keep an argument error in the command
//! ([`ScriptExecute::args`]) for the handler to answer after its key checks.

use bytes::Bytes;

use super::{Command, Cursor, model::is};
use crate::{error::Error, frame::parse_i64};

fn err(text: &str) -> Error {
    Error::Verbatim(text.to_string())
}

/// `AI.SCRIPTSTORE key device [TAG tag] ENTRY_POINTS n fn... SOURCE script` and the
/// deprecated `AI.SCRIPTSET key device [TAG tag] SOURCE script`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStore {
    /// The key.
    pub key: Bytes,
    /// The device as given (`CPU`, `GPU`, `GPU:1`).
    pub device: String,
    /// TAG, empty when absent.
    pub tag: Bytes,
    /// ENTRY_POINTS; empty for AI.SCRIPTSET (every function callable).
    pub entry_points: Vec<Bytes>,
    /// The TorchScript source.
    pub source: Bytes,
}

fn parse_store(c: &mut Cursor, deprecated: bool) -> Result<ScriptStore, Error> {
    // AI.SCRIPTSET takes exactly `key device SOURCE src`, with or without `TAG tag`.
    if deprecated && c.remaining() != 4 && c.remaining() != 6 {
        return Err(c.arity_error());
    }
    let key = c.next_bytes()?;
    let device = String::from_utf8_lossy(&c.next_bytes()?).into_owned();
    let mut s = ScriptStore {
        key,
        device,
        tag: Bytes::new(),
        entry_points: Vec::new(),
        source: Bytes::new(),
    };
    if c.eat("TAG") {
        s.tag = c.next_opt().unwrap_or_default();
    }
    if !deprecated {
        let missing = || err("ERR Insufficient arguments, missing script entry points");
        if !c.eat("ENTRY_POINTS") {
            return Err(missing());
        }
        let n = c.next_opt().and_then(|b| parse_i64(&b)).ok_or_else(|| {
            err("ERR Non numeric entry points number provided to AI.SCRIPTSTORE command")
        })?;
        if n < 0 {
            return Err(missing());
        }
        for _ in 0..n {
            s.entry_points.push(c.next_opt().ok_or_else(missing)?);
        }
    }
    let source = if c.eat("SOURCE") { c.next_opt() } else { None };
    s.source = source.ok_or_else(|| err("ERR Insufficient arguments, missing script SOURCE"))?;
    // Anything after the source is ignored, as RedisAI does.
    c.rest();
    Ok(s)
}

/// `AI.SCRIPTGET key [META] [SOURCE]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptGet {
    /// The key.
    pub key: Bytes,
    /// META given.
    pub meta: bool,
    /// SOURCE given.
    pub source: bool,
}

/// `AI.SCRIPTEXECUTE key function [KEYS n key...] [INPUTS n key...] [ARGS n arg...]
/// [OUTPUTS n key...] [TIMEOUT ms]` and the deprecated `AI.SCRIPTRUN key function [TIMEOUT
/// ms] INPUTS key... [$ key...] OUTPUTS key...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptExecute {
    /// The script's key.
    pub key: Bytes,
    /// Everything after the key, or the first error in it (answered after the key checks).
    pub args: Result<ScriptArgs, Error>,
}

/// AI.SCRIPTEXECUTE's arguments after the script key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScriptArgs {
    /// The function to call.
    pub function: String,
    /// KEYS: the keys the script may touch.
    pub keys: Vec<Bytes>,
    /// Input tensor keys.
    pub inputs: Vec<Bytes>,
    /// ARGS: strings passed to the function.
    pub args: Vec<Bytes>,
    /// Output tensor keys.
    pub outputs: Vec<Bytes>,
    /// Longest wait in the run queue, in ms.
    pub timeout_ms: Option<u64>,
    /// AI.SCRIPTRUN's `$`: where the variadic inputs start (validated, not used to bind).
    pub variadic: Option<usize>,
}

/// The function name: the argument after the key, taken literally (its existence is checked
/// when the script runs).
fn function_name(c: &mut Cursor) -> String {
    String::from_utf8_lossy(&c.next_opt().unwrap_or_default()).into_owned()
}

fn timeout(v: Bytes) -> Result<u64, Error> {
    parse_i64(&v)
        .filter(|n| *n > 0)
        .map(|n| n as u64)
        .ok_or_else(|| err("ERR Invalid value for TIMEOUT"))
}

/// `n item...` of one AI.SCRIPTEXECUTE scope (`what` as RedisAI names it in its texts).
fn scope(c: &mut Cursor, what: &str) -> Result<Vec<Bytes>, Error> {
    let n = c
        .next_opt()
        .ok_or_else(|| err("ERR Invalid arguments provided to AI.SCRIPTEXECUTE"))?;
    let count_word = if what == "args" { "keys" } else { what };
    let n = parse_i64(&n).ok_or_else(|| {
        err(&format!(
            "ERR Invalid argument for {count_word} count in AI.SCRIPTEXECUTE"
        ))
    })?;
    if n < 0 || n as usize > c.remaining() {
        return Err(err(&format!(
            "ERR number of {what} to AI.SCRIPTEXECUTE command does not match the number of \
             given arguments"
        )));
    }
    Ok((0..n).filter_map(|_| c.next_opt()).collect())
}

/// KEYS as RedisAI validates it: at least a count and one key, a positive count, then that
/// many keys.
fn keys_scope(c: &mut Cursor) -> Result<Vec<Bytes>, Error> {
    if c.remaining() < 2 {
        return Err(err("ERR Missing arguments after KEYS keyword"));
    }
    let n = c
        .next_opt()
        .and_then(|n| parse_i64(&n))
        .filter(|n| *n > 0)
        .ok_or_else(|| err("ERR Invalid or negative value found in number of KEYS"))?;
    if n as usize > c.remaining() {
        return Err(err(
            "ERR Number of pre declared KEYS to be used in the command does not match the \
             number of given arguments",
        ));
    }
    Ok((0..n).filter_map(|_| c.next_opt()).collect())
}

/// Parses AI.SCRIPTEXECUTE's arguments after the key. `in_dag`: inside a DAG, where no
/// scope has to come first and TIMEOUT is refused.
pub(crate) fn parse_execute_args(c: &mut Cursor, in_dag: bool) -> Result<ScriptArgs, Error> {
    let mut a = ScriptArgs {
        function: function_name(c),
        ..Default::default()
    };
    let (mut keys, mut inputs, mut args, mut outputs) = (false, false, false, false);
    if !in_dag {
        match c.peek() {
            Some(w) if is(w, "KEYS") || is(w, "INPUTS") => {}
            _ => {
                return Err(err(
                    "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
                ));
            }
        }
    }
    while let Some(w) = c.next_opt() {
        if is(&w, "TIMEOUT") {
            let v = c
                .next_opt()
                .ok_or_else(|| err("ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE"))?;
            a.timeout_ms = Some(timeout(v)?);
            if c.remaining() > 0 {
                return Err(err("ERR Encountered problem parsing AI.SCRIPTEXECUTE"));
            }
            if in_dag {
                return Err(err("ERR TIMEOUT not allowed within a DAG command"));
            }
            break;
        }
        let seen = if is(&w, "KEYS") {
            &mut keys
        } else if is(&w, "INPUTS") {
            &mut inputs
        } else if is(&w, "ARGS") {
            &mut args
        } else if is(&w, "OUTPUTS") {
            &mut outputs
        } else {
            return Err(err(&format!(
                "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: {}",
                String::from_utf8_lossy(&w)
            )));
        };
        let word = String::from_utf8_lossy(&w).to_ascii_uppercase();
        if std::mem::replace(seen, true) {
            return Err(err(&format!(
                "ERR Already Encountered {word} scope in AI.SCRIPTEXECUTE command"
            )));
        }
        match word.as_str() {
            "KEYS" => a.keys = keys_scope(c)?,
            "INPUTS" => a.inputs = scope(c, "inputs")?,
            "ARGS" => a.args = scope(c, "args")?,
            _ => a.outputs = scope(c, "outputs")?,
        }
    }
    Ok(a)
}

/// Parses AI.SCRIPTRUN's arguments after the key: `function [TIMEOUT ms] INPUTS key...
/// [$ key...] OUTPUTS key...`, with RedisAI's texts. `$` is validated and dropped: it does
/// not change how the inputs are passed.
pub(crate) fn parse_run_args(c: &mut Cursor, in_dag: bool) -> Result<ScriptArgs, Error> {
    #[derive(PartialEq)]
    enum Section {
        None,
        Inputs,
        Outputs,
    }
    let mut a = ScriptArgs {
        function: function_name(c),
        ..Default::default()
    };
    let (mut section, mut inputs_seen, mut dollar) = (Section::None, false, false);
    while let Some(w) = c.next_opt() {
        if is(&w, "TIMEOUT") {
            if a.timeout_ms.is_some() {
                return Err(err(
                    "ERR Already encountered an TIMEOUT section in SCRIPTRUN",
                ));
            }
            a.timeout_ms = Some(timeout(c.next_opt().unwrap_or_default())?);
        } else if is(&w, "INPUTS") {
            if section == Section::Outputs {
                return Err(err(
                    "ERR Already encountered an INPUTS section in SCRIPTRUN",
                ));
            }
            if inputs_seen {
                return Err(err(
                    "ERR Already encountered an INPUTS keyword in SCRIPTRUN",
                ));
            }
            (section, inputs_seen) = (Section::Inputs, true);
        } else if is(&w, "OUTPUTS") {
            if section == Section::Outputs {
                return Err(err(
                    "ERR Already encountered an OUTPUTS keyword in SCRIPTRUN",
                ));
            }
            section = Section::Outputs;
        } else if w.as_ref() == b"$" {
            if section != Section::Inputs {
                return Err(err(
                    "ERR Encountered a variable size list of tensors outside of input section",
                ));
            }
            if std::mem::replace(&mut dollar, true) {
                return Err(err(
                    "ERR Already encountered a variable size list of tensors",
                ));
            }
            a.variadic = Some(a.inputs.len());
        } else {
            match section {
                Section::Inputs => a.inputs.push(w),
                Section::Outputs => a.outputs.push(w),
                Section::None => return Err(err("ERR Unrecongnized parameter to SCRIPTRUN")),
            }
        }
    }
    if in_dag && a.timeout_ms.is_some() {
        return Err(err("ERR TIMEOUT not allowed within a DAG command"));
    }
    Ok(a)
}

/// `AI.SCRIPTSTORE ...`
pub(crate) fn scriptstore(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ScriptStore(parse_store(c, false)?))
}

/// `AI.SCRIPTSET ...` (deprecated)
pub(crate) fn scriptset(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ScriptStore(parse_store(c, true)?))
}

/// `AI.SCRIPTGET key [META] [SOURCE]`; other words are ignored, as RedisAI does.
pub(crate) fn scriptget(c: &mut Cursor) -> Result<Command, Error> {
    if c.remaining() > 3 {
        return Err(c.arity_error());
    }
    let key = c.next_bytes()?;
    let (mut meta, mut source) = (false, false);
    for a in c.rest() {
        meta |= is(&a, "META");
        source |= is(&a, "SOURCE");
    }
    Ok(Command::ScriptGet(ScriptGet { key, meta, source }))
}

/// `AI.SCRIPTDEL key`
pub(crate) fn scriptdel(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ScriptDel(c.next_bytes()?))
}

/// RedisAI's arity check of AI.SCRIPTEXECUTE and AI.SCRIPTRUN: a key and a function at
/// least, named in upper case whatever the client typed.
fn at_least_key_and_function(c: &Cursor, name: &str) -> Result<(), Error> {
    if c.remaining() < 2 {
        return Err(Error::WrongArity(name.to_string()));
    }
    Ok(())
}

/// `AI.SCRIPTEXECUTE ...`
pub(crate) fn scriptexecute(c: &mut Cursor) -> Result<Command, Error> {
    at_least_key_and_function(c, "AI.SCRIPTEXECUTE")?;
    let key = c.next_bytes()?;
    let args = parse_execute_args(c, false);
    c.rest();
    Ok(Command::ScriptExecute(ScriptExecute { key, args }))
}

/// `AI.SCRIPTRUN ...` (deprecated)
pub(crate) fn scriptrun(c: &mut Cursor) -> Result<Command, Error> {
    at_least_key_and_function(c, "AI.SCRIPTRUN")?;
    let key = c.next_bytes()?;
    let args = parse_run_args(c, false);
    c.rest();
    Ok(Command::ScriptExecute(ScriptExecute { key, args }))
}

/// `AI._SCRIPTSCAN`
pub(crate) fn scriptscan(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ScriptScan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::parse;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn store(s: &str) -> Result<ScriptStore, Error> {
        match parse(s)? {
            Command::ScriptStore(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    fn exec(s: &str) -> Result<ScriptArgs, Error> {
        match parse(s)? {
            Command::ScriptExecute(e) => e.args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scriptstore_forms_and_errors_in_redisai_order() {
        let s = store("AI.SCRIPTSTORE s CPU TAG v1 ENTRY_POINTS 2 bar baz SOURCE src").unwrap();
        assert_eq!((s.device.as_str(), &s.tag[..]), ("CPU", &b"v1"[..]));
        assert_eq!(s.entry_points, [b("bar"), b("baz")]);
        assert_eq!(s.source, b("src"));
        let s = store("AI.SCRIPTSET s GPU:1 SOURCE src").unwrap();
        assert!(matches!(
            parse("AI.SCRIPTSET s CPU SOURCE src x"),
            Err(Error::WrongArity(_))
        ));
        assert!(s.entry_points.is_empty() && s.device == "GPU:1");
        let cases = [
            (
                "AI.SCRIPTSTORE k CPU SOURCE x",
                "ERR wrong number of arguments for 'AI.SCRIPTSTORE' command",
            ),
            (
                "AI.SCRIPTSTORE k CPU NO_ENTRY_POINTS 2 bar baz SOURCE x",
                "ERR Insufficient arguments, missing script entry points",
            ),
            (
                "AI.SCRIPTSTORE k CPU ENTRY_POINTS ENTRY_POINTS bar baz SOURCE x",
                "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command",
            ),
            (
                "AI.SCRIPTSTORE k CPU ENTRY_POINTS 2 bar baz SOURCE",
                "ERR Insufficient arguments, missing script SOURCE",
            ),
            (
                "AI.SCRIPTSTORE k CPU ENTRY_POINTS 5 bar baz SOURCE x",
                "ERR Insufficient arguments, missing script entry points",
            ),
            (
                "AI.SCRIPTSET k CPU TAG t",
                "ERR Insufficient arguments, missing script SOURCE",
            ),
            (
                "AI.SCRIPTSTORE k CPU ENTRY_POINTS -1 bar SOURCE x",
                "ERR Insufficient arguments, missing script entry points",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(store(cmd).unwrap_err().wire_text(), want, "{cmd}");
        }
    }

    #[test]
    fn scriptexecute_scopes() {
        let a = exec("AI.SCRIPTEXECUTE s f KEYS 1 k INPUTS 2 a b ARGS 2 x y OUTPUTS 1 o TIMEOUT 5")
            .unwrap();
        assert_eq!(a.function, "f");
        assert_eq!((a.keys.len(), a.inputs.len(), a.args.len()), (1, 2, 2));
        assert_eq!((a.outputs, a.timeout_ms), (vec![b("o")], Some(5)));
        let a = exec("AI.SCRIPTEXECUTE s f INPUTS 1 a OUTPUTS 1 o ARGS 1 3").unwrap();
        assert_eq!(a.args, [b("3")]);
    }

    #[test]
    fn scriptexecute_errors_in_redisai_order() {
        let cases = [
            (
                "AI.SCRIPTEXECUTE s bar KEYS 1",
                "ERR Missing arguments after KEYS keyword",
            ),
            (
                "AI.SCRIPTEXECUTE s bar KEYS not_number key",
                "ERR Invalid or negative value found in number of KEYS",
            ),
            (
                "AI.SCRIPTEXECUTE s bar KEYS 2 key",
                "ERR Number of pre declared KEYS to be used in the command does not match the number of given arguments",
            ),
            (
                "AI.SCRIPTEXECUTE s bar OUTPUTS 2 a a",
                "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
            ),
            (
                "AI.SCRIPTEXECUTE s bar KEYS 1 k ARGS",
                "ERR Invalid arguments provided to AI.SCRIPTEXECUTE",
            ),
            (
                "AI.SCRIPTEXECUTE s bar INPUTS OUTPUTS",
                "ERR Invalid argument for inputs count in AI.SCRIPTEXECUTE",
            ),
            (
                "AI.SCRIPTEXECUTE s bar INPUTS 3 a b",
                "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given arguments",
            ),
            (
                "AI.SCRIPTEXECUTE s bar INPUTS 1 a INPUTS 1 b",
                "ERR Already Encountered INPUTS scope in AI.SCRIPTEXECUTE command",
            ),
            (
                "AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c TIMEOUT TIMEOUT",
                "ERR Invalid value for TIMEOUT",
            ),
            (
                "AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c TIMEOUT",
                "ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE",
            ),
            (
                "AI.SCRIPTEXECUTE s bar INPUTS 1 a FOO",
                "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: FOO",
            ),
            (
                "AI.SCRIPTEXECUTE s INPUTS 1 a",
                "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
            ),
            (
                "AI.SCRIPTEXECUTE s bar",
                "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
            ),
            (
                "AI.SCRIPTEXECUTE s bar KEYS x",
                "ERR Missing arguments after KEYS keyword",
            ),
            (
                "AI.SCRIPTEXECUTE s bar KEYS 0 k",
                "ERR Invalid or negative value found in number of KEYS",
            ),
            (
                "AI.SCRIPTEXECUTE s bar KEYS 1 k ARGS x",
                "ERR Invalid argument for keys count in AI.SCRIPTEXECUTE",
            ),
            (
                "AI.SCRIPTEXECUTE s bar KEYS 1 k KEYS 1 k",
                "ERR Already Encountered KEYS scope in AI.SCRIPTEXECUTE command",
            ),
            (
                "AI.SCRIPTEXECUTE s bar INPUTS 1 a TIMEOUT 5 OUTPUTS",
                "ERR Encountered problem parsing AI.SCRIPTEXECUTE",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(exec(cmd).unwrap_err().wire_text(), want, "{cmd}");
        }
    }

    #[test]
    fn scriptrun_with_variadic_inputs() {
        let a = exec("AI.SCRIPTRUN s addn INPUTS a $ b c OUTPUTS r").unwrap();
        assert_eq!(a.inputs, [b("a"), b("b"), b("c")]);
        assert_eq!((a.variadic, a.outputs.len()), (Some(1), 1));
        let a = exec("AI.SCRIPTRUN s f TIMEOUT 9 INPUTS a b OUTPUTS r").unwrap();
        assert_eq!((a.variadic, a.timeout_ms), (None, Some(9)));
        let cases = [
            (
                "AI.SCRIPTRUN s f x INPUTS a OUTPUTS b",
                "ERR Unrecongnized parameter to SCRIPTRUN",
            ),
            (
                "AI.SCRIPTRUN s f INPUTS a INPUTS b OUTPUTS c",
                "ERR Already encountered an INPUTS keyword in SCRIPTRUN",
            ),
            (
                "AI.SCRIPTRUN s f INPUTS a OUTPUTS b INPUTS c",
                "ERR Already encountered an INPUTS section in SCRIPTRUN",
            ),
            (
                "AI.SCRIPTRUN s f INPUTS a OUTPUTS b OUTPUTS c",
                "ERR Already encountered an OUTPUTS keyword in SCRIPTRUN",
            ),
            (
                "AI.SCRIPTRUN s f INPUTS a OUTPUTS $ b",
                "ERR Encountered a variable size list of tensors outside of input section",
            ),
            (
                "AI.SCRIPTRUN s f INPUTS a $ b $ c OUTPUTS d",
                "ERR Already encountered a variable size list of tensors",
            ),
            (
                "AI.SCRIPTRUN s f TIMEOUT 1 INPUTS a TIMEOUT 2 OUTPUTS b",
                "ERR Already encountered an TIMEOUT section in SCRIPTRUN",
            ),
            (
                "AI.SCRIPTRUN s f INPUTS a OUTPUTS b TIMEOUT",
                "ERR Invalid value for TIMEOUT",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(exec(cmd).unwrap_err().wire_text(), want, "{cmd}");
        }
    }
}
