//! The Rust client (`redis` crate) over RESP2 and RESP3: tensors of every dtype, string and
//! keyspace commands, and the connection commands clients send on their own.

use redis::{Connection, Value, cmd};
use shardai_tests::Server;

fn err_text(r: redis::RedisResult<Value>) -> String {
    let e = r.expect_err("expected an error");
    // "ERR invalid value" arrives as code "ERR" plus detail.
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

fn tensor_roundtrip(con: &mut Connection, resp3: bool) {
    let cases: &[(&str, &[&str])] = &[
        ("FLOAT", &["1.5", "-2", "3.25", "0"]),
        ("DOUBLE", &["1e100", "-2.5", "0.1", "7"]),
        ("INT8", &["-128", "127", "0", "-1"]),
        ("INT16", &["-32768", "32767", "1", "2"]),
        ("INT32", &["-2147483648", "2147483647", "3", "4"]),
        (
            "INT64",
            &["-9223372036854775808", "9223372036854775807", "5", "6"],
        ),
        ("UINT8", &["0", "255", "7", "8"]),
        ("UINT16", &["0", "65535", "9", "10"]),
        ("BOOL", &["0", "1", "1", "0"]),
    ];
    for (dtype, vals) in cases {
        let key = format!("t:{dtype}");
        let ok: String = cmd("AI.TENSORSET")
            .arg(&key)
            .arg(*dtype)
            .arg(2)
            .arg(2)
            .arg("VALUES")
            .arg(*vals)
            .query(con)
            .unwrap();
        assert_eq!(ok, "OK");
        let v: Value = cmd("AI.TENSORGET")
            .arg(&key)
            .arg("VALUES")
            .query(con)
            .unwrap();
        let Value::Array(items) = v else {
            panic!("{v:?}")
        };
        for (item, want) in items.iter().zip(vals.iter()) {
            let want_f: f64 = want.parse().unwrap();
            match item {
                Value::Double(d) => {
                    assert!(resp3, "doubles only in RESP3");
                    let expect = if *dtype == "FLOAT" {
                        want_f as f32 as f64
                    } else {
                        want_f
                    };
                    assert_eq!(*d, expect, "{dtype}");
                }
                Value::BulkString(b) => {
                    assert!(!resp3 && (*dtype == "FLOAT" || *dtype == "DOUBLE"));
                    let got: f64 = std::str::from_utf8(b).unwrap().parse().unwrap();
                    let expect = if *dtype == "FLOAT" {
                        want_f as f32 as f64
                    } else {
                        want_f
                    };
                    assert_eq!(got, expect, "{dtype}");
                }
                Value::Int(i) => assert_eq!(i.to_string(), *want, "{dtype}"),
                other => panic!("{dtype}: {other:?}"),
            }
        }
        // BLOB round trip through a second key gives the same values.
        let blob: Vec<u8> = cmd("AI.TENSORGET")
            .arg(&key)
            .arg("BLOB")
            .query(con)
            .unwrap();
        let _: String = cmd("AI.TENSORSET")
            .arg("copy")
            .arg(*dtype)
            .arg(2)
            .arg(2)
            .arg("BLOB")
            .arg(&blob)
            .query(con)
            .unwrap();
        let again: Vec<u8> = cmd("AI.TENSORGET")
            .arg("copy")
            .arg("BLOB")
            .query(con)
            .unwrap();
        assert_eq!(again, blob, "{dtype}");
        let meta: Value = cmd("AI.TENSORGET")
            .arg(&key)
            .arg("META")
            .query(con)
            .unwrap();
        let Value::Array(m) = meta else { panic!() };
        assert_eq!(m[1], Value::BulkString(dtype.as_bytes().to_vec()));
        assert_eq!(m[3], Value::Array(vec![Value::Int(2), Value::Int(2)]));
    }
    // STRING tensors: VALUES and NUL-separated BLOB.
    let _: String = cmd("AI.TENSORSET")
        .arg("s")
        .arg("STRING")
        .arg(2)
        .arg("VALUES")
        .arg("hello")
        .arg("")
        .query(con)
        .unwrap();
    let v: Vec<Vec<u8>> = cmd("AI.TENSORGET")
        .arg("s")
        .arg("VALUES")
        .query(con)
        .unwrap();
    assert_eq!(v, vec![b"hello".to_vec(), b"".to_vec()]);
    let blob: Vec<u8> = cmd("AI.TENSORGET").arg("s").arg("BLOB").query(con).unwrap();
    assert_eq!(blob, b"hello\0\0");
}

#[test]
fn tensors_over_resp2_and_resp3() {
    let s = Server::start();
    tensor_roundtrip(&mut s.client(), false);
    tensor_roundtrip(&mut s.client_resp3(), true);
}

#[test]
fn tensor_errors() {
    let s = Server::start();
    let mut c = s.client();
    let q = |c: &mut Connection, args: &[&str]| -> redis::RedisResult<Value> {
        cmd(args[0]).arg(&args[1..]).query(c)
    };
    let cases: &[(&[&str], &str)] = &[
        (&["AI.TENSORSET", "t", "QUAD", "1"], "ERR invalid data type"),
        (
            &["AI.TENSORSET", "t", "FLOAT", "0"],
            "ERR invalid or negative value found in tensor shape",
        ),
        (
            &["AI.TENSORSET", "t", "FLOAT", "2", "VALUES", "1"],
            "ERR wrong number of values was given in 'AI.TENSORSET' command",
        ),
        (
            &["AI.TENSORSET", "t", "FLOAT", "2", "BLOB", "123"],
            "ERR data length does not match tensor shape and type",
        ),
        (
            &["AI.TENSORSET", "t", "FLOAT", "1", "VALUES", "abc"],
            "ERR invalid value",
        ),
        (
            &["AI.TENSORSET", "t", "UINT8", "1", "VALUES", "-1"],
            "ERR invalid value",
        ),
        (
            &["AI.TENSORSET", "t", "INT16", "1", "VALUES", "40000"],
            "ERR invalid value",
        ),
        (
            &["AI.TENSORSET", "t", "BOOL", "2", "VALUES", "1", "3"],
            "ERR invalid value",
        ),
        (
            &["AI.TENSORSET", "t", "BOOL", "2", "BLOB", "\x01\x02"],
            "ERR BOOL tensor elements must be 0 or 1",
        ),
        (
            &["AI.TENSORSET", "t", "STRING", "1", "VALUES", "a\0b"],
            "ERR C-string value contains null character",
        ),
        (
            &["AI.TENSORSET", "t", "STRING", "2", "BLOB", "a\0"],
            "ERR Number of string elements in data blob does not match tensor length",
        ),
        (
            &["AI.TENSORSET", "t", "FLOAT", "1", "BLOB"],
            "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
        ),
        (
            &["AI.TENSORSET", "t", "FLOAT", "100000", "100000", "100000"],
            "ERR tensor is too large",
        ),
        (
            &["AI.TENSORGET", "nope"],
            "ERR tensor key is empty or in a different shard",
        ),
        // The key is looked up before the format words (RedisAI's order).
        (
            &["AI.TENSORGET", "t", "JSON"],
            "ERR tensor key is empty or in a different shard",
        ),
        (
            &["AI.TENSORGET", "t", "META", "BLOB", "META", "META"],
            "ERR wrong number of arguments for 'AI.TENSORGET' command",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(err_text(q(&mut c, args)), *want, "{args:?}");
    }
    assert_eq!(
        s.cli(&["DBSIZE"]),
        "0\n",
        "no failed command stored anything"
    );
    assert!(q(&mut c, &["AI.TENSORSET", "u", "FLOAT", "1"]).is_ok());
    let formats: &[(&[&str], &str)] = &[
        (
            &["AI.TENSORGET", "u", "JSON"],
            "ERR unsupported data format",
        ),
        (
            &["AI.TENSORGET", "u", "BLOB", "VALUES"],
            "ERR both BLOB and VALUES specified",
        ),
    ];
    for (args, want) in formats {
        assert_eq!(err_text(q(&mut c, args)), *want, "{args:?}");
    }
}

#[test]
fn strings_and_keyspace() {
    let s = Server::start();
    let mut c = s.client();
    let ok: String = cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    let n: i64 = cmd("INCRBY").arg("a").arg(41).query(&mut c).unwrap();
    assert_eq!(n, 42);
    let n: i64 = cmd("DECR").arg("a").query(&mut c).unwrap();
    assert_eq!(n, 41);
    let v: Option<String> = cmd("SET")
        .arg("a")
        .arg("x")
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, None);
    let old: String = cmd("SET")
        .arg("a")
        .arg("y")
        .arg("GET")
        .query(&mut c)
        .unwrap();
    assert_eq!(old, "41");
    let _: () = cmd("MSET")
        .arg("b")
        .arg("2")
        .arg("c")
        .arg("3")
        .query(&mut c)
        .unwrap();
    let vals: Vec<Option<String>> = cmd("MGET")
        .arg("a")
        .arg("b")
        .arg("zz")
        .query(&mut c)
        .unwrap();
    assert_eq!(vals, vec![Some("y".into()), Some("2".into()), None]);
    assert_eq!(
        err_text(cmd("INCR").arg("a").query(&mut c)),
        "ERR value is not an integer or out of range"
    );
    let _: () = cmd("AI.TENSORSET")
        .arg("t")
        .arg("FLOAT")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        err_text(cmd("GET").arg("t").query(&mut c)),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    let t: String = cmd("TYPE").arg("t").query(&mut c).unwrap();
    assert_eq!(t, "AI_TENSOR");
    let t: String = cmd("TYPE").arg("a").query(&mut c).unwrap();
    assert_eq!(t, "string");
    let t: String = cmd("TYPE").arg("none").query(&mut c).unwrap();
    assert_eq!(t, "none");
    let n: i64 = cmd("EXISTS")
        .arg("a")
        .arg("t")
        .arg("zz")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 4);
    let mut keys: Vec<String> = cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c", "t"]);
    let (cur, found): (String, Vec<String>) = cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("AI_TENSOR")
        .arg("COUNT")
        .arg(1_000_000)
        .query(&mut c)
        .unwrap();
    assert_eq!((cur.as_str(), found), ("0", vec!["t".to_string()]));
    let k: String = cmd("RANDOMKEY").query(&mut c).unwrap();
    assert!(["a", "b", "c", "t"].contains(&k.as_str()));
    let n: i64 = cmd("UNLINK").arg("a").arg("b").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let n: i64 = cmd("DEL").arg("t").arg("t").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let _: () = cmd("FLUSHALL").query(&mut c).unwrap();
    let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 0);
    let k: Option<String> = cmd("RANDOMKEY").query(&mut c).unwrap();
    assert_eq!(k, None);
}

#[test]
fn expiry() {
    let s = Server::start();
    let mut c = s.client();
    let _: () = cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(150)
        .query(&mut c)
        .unwrap();
    let v: Option<String> = cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let v: Option<String> = cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, None, "an expired key reads as missing at once");
    // The sweeper removes it in the background (every 100 ms); poll, do not guess.
    let mut n: i64 = 1;
    for _ in 0..100 {
        n = cmd("DBSIZE").query(&mut c).unwrap();
        if n == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(n, 0, "the sweeper removed the expired key");
    assert_eq!(
        err_text(cmd("SET").arg("k").arg("v").arg("EX").arg(0).query(&mut c)),
        "ERR invalid expire time in 'set' command"
    );
}

#[test]
fn scan_walks_everything_once() {
    let s = Server::start();
    let mut c = s.client();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys): (String, Vec<String>) = cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg("key:*")
            .query(&mut c)
            .unwrap();
        for k in keys {
            assert!(seen.insert(k));
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 3000);
}

#[test]
fn connection_commands() {
    let s = Server::start();
    let mut c = s.client();
    let pong: String = cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let e: String = cmd("ECHO").arg("hi").query(&mut c).unwrap();
    assert_eq!(e, "hi");
    let _: () = cmd("SELECT").arg(0).query(&mut c).unwrap();
    assert_eq!(
        err_text(cmd("SELECT").arg(1).query(&mut c)),
        "ERR DB index is out of range"
    );
    let _: () = cmd("CLIENT")
        .arg("SETNAME")
        .arg("tester")
        .query(&mut c)
        .unwrap();
    let name: String = cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name, "tester");
    let id: i64 = cmd("CLIENT").arg("ID").query(&mut c).unwrap();
    let list: String = cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    assert!(
        list.contains(&format!("id={id} ")) && list.contains("name=tester"),
        "{list}"
    );
    let _: () = cmd("CLIENT")
        .arg("SETINFO")
        .arg("LIB-NAME")
        .arg("redis-rs")
        .query(&mut c)
        .unwrap();
    let me: String = cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(me.contains("lib-name=redis-rs"), "{me}");
    let _: () = cmd("READONLY").query(&mut c).unwrap();
    let _: () = cmd("READWRITE").query(&mut c).unwrap();
    let mut other = s.client();
    let hello: Value = cmd("HELLO").arg(3).query(&mut other).unwrap();
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    assert_eq!(
        err_text(cmd("HELLO").arg(4).query(&mut other)),
        "NOPROTO unsupported protocol version"
    );
    let info: String = cmd("INFO").query(&mut c).unwrap();
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Stats",
        "# Keyspace",
        "# ai_versions",
        "# ai_load_time_configs",
        "# ai_backends_info",
    ] {
        assert!(info.contains(section), "{section} missing");
    }
    let info: String = cmd("INFO").arg("memory").query(&mut c).unwrap();
    assert!(info.contains("used_memory_rss:") && !info.contains("# Server"));
    let cfg: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("proto-max-bulk-len")
        .query(&mut c)
        .unwrap();
    assert_eq!(cfg, ["proto-max-bulk-len", "536870912"]);
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("proto-max-bulk-len")
        .arg("1mb")
        .query(&mut c)
        .unwrap();
    let cfg: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("proto*")
        .query(&mut c)
        .unwrap();
    assert_eq!(cfg, ["proto-max-bulk-len", "1048576"]);
    assert_eq!(
        err_text(cmd("CONFIG").arg("SET").arg("nope").arg("1").query(&mut c)),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nope'"
    );
}

#[test]
fn command_table_replies() {
    let s = Server::start();
    let mut c = s.client();
    let n: i64 = cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    let all: Vec<Value> = cmd("COMMAND").query(&mut c).unwrap();
    assert_eq!(all.len() as i64, n);
    for info in &all {
        let Value::Array(f) = info else { panic!() };
        assert_eq!(f.len(), 10);
    }
    let info: Vec<Value> = cmd("COMMAND")
        .arg("INFO")
        .arg("ai.tensorset")
        .arg("AI.MODELEXECUTE")
        .arg("nope")
        .query(&mut c)
        .unwrap();
    let Value::Array(ts) = &info[0] else { panic!() };
    assert_eq!(ts[0], Value::BulkString(b"ai.tensorset".to_vec()));
    assert_eq!(
        (&ts[3], &ts[4], &ts[5]),
        (&Value::Int(1), &Value::Int(1), &Value::Int(1))
    );
    let Value::Array(me) = &info[1] else { panic!() };
    let Value::Array(flags) = &me[2] else {
        panic!()
    };
    assert!(flags.contains(&Value::SimpleString("movablekeys".into())));
    assert_eq!(info[2], Value::Nil);
    let keys: Vec<String> = cmd("COMMAND")
        .arg("GETKEYS")
        .arg("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(2)
        .arg("a")
        .arg("b")
        .arg("OUTPUTS")
        .arg(1)
        .arg("c")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["m", "a", "b", "c"]);
    let keys: Vec<String> = cmd("COMMAND")
        .arg("GETKEYS")
        .arg("AI.DAGEXECUTE")
        .arg("LOAD")
        .arg(1)
        .arg("x")
        .arg("PERSIST")
        .arg(1)
        .arg("y")
        .arg("|>")
        .arg("AI.MODELEXECUTE")
        .arg("m")
        .arg("INPUTS")
        .arg(1)
        .arg("x")
        .arg("OUTPUTS")
        .arg(1)
        .arg("y")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["x", "y", "m"]);
    assert_eq!(
        err_text(
            cmd("COMMAND")
                .arg("GETKEYS")
                .arg("AI.CONFIG")
                .arg("GET")
                .query(&mut c)
        ),
        "ERR The command has no key arguments"
    );
    let docs: Value = cmd("COMMAND")
        .arg("DOCS")
        .arg("ai.tensorget")
        .query(&mut c)
        .unwrap();
    assert!(
        matches!(docs, Value::Array(ref v) if v.len() == 2),
        "{docs:?}"
    );
    let list: Vec<String> = cmd("COMMAND").arg("LIST").query(&mut c).unwrap();
    assert!(list.contains(&"ai.dagexecute_ro".to_string()));
}

#[test]
fn ai_config() {
    // Backend loading is off unless the operator turns it on.
    let off = Server::start();
    let e = err_text(
        cmd("AI.CONFIG")
            .arg("BACKENDSPATH")
            .arg("/tmp")
            .query(&mut off.client()),
    );
    assert!(e.contains("--enable-backend-loading yes"), "{e}");
    drop(off);
    let s = Server::start_with(&["--enable-backend-loading", "yes"]);
    let mut c = s.client();
    let v: Option<String> = cmd("AI.CONFIG")
        .arg("GET")
        .arg("BACKENDSPATH")
        .query(&mut c)
        .unwrap();
    // Unset unless the project venv (scripts/setup) holds the backend wheels.
    assert!(
        v.as_deref().is_none_or(|p| p.ends_with("site-packages")),
        "{v:?}"
    );
    let n: i64 = cmd("AI.CONFIG")
        .arg("GET")
        .arg("MODEL_CHUNK_SIZE")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 535822336);
    let _: () = cmd("AI.CONFIG")
        .arg("MODEL_CHUNK_SIZE")
        .arg(1048576)
        .query(&mut c)
        .unwrap();
    let n: i64 = cmd("AI.CONFIG")
        .arg("GET")
        .arg("MODEL_CHUNK_SIZE")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1048576);
    let dir = std::env::temp_dir().join(format!("shardai-backends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.canonicalize().unwrap().display().to_string();
    let _: () = cmd("AI.CONFIG")
        .arg("BACKENDSPATH")
        .arg(&base)
        .query(&mut c)
        .unwrap();
    let v: String = cmd("AI.CONFIG")
        .arg("GET")
        .arg("BACKENDSPATH")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, base);
    let e = err_text(
        cmd("AI.CONFIG")
            .arg("LOADBACKEND")
            .arg("TF")
            .arg("x.so")
            .query(&mut c),
    );
    // A relative path is taken under BACKENDSPATH, as RedisAI does.
    assert!(
        e.starts_with(&format!("ERR error loading backend: {base}/x.so")),
        "{e}"
    );
    // Nothing outside the backends path is opened.
    let e = err_text(
        cmd("AI.CONFIG")
            .arg("LOADBACKEND")
            .arg("TF")
            .arg("/bin/sh")
            .query(&mut c),
    );
    assert!(e.contains("outside the backends path"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let e = err_text(
        cmd("AI.CONFIG")
            .arg("LOADBACKEND")
            .arg("ONNX")
            .arg("/nonexistent/libonnxruntime.so")
            .query(&mut c),
    );
    assert!(e.starts_with("ERR error loading backend: "), "{e}");
    assert_eq!(
        err_text(
            cmd("AI.CONFIG")
                .arg("LOADBACKEND")
                .arg("CAFFE")
                .arg("x")
                .query(&mut c)
        ),
        "ERR unsupported backend"
    );
    assert_eq!(
        err_text(cmd("AI.CONFIG").arg("NOPE").query(&mut c)),
        "ERR unsupported subcommand"
    );
    assert_eq!(
        err_text(cmd("AI.SCRIPTGET").arg("s").query(&mut c)),
        "ERR script key is empty"
    );
}

#[test]
fn model_command_errors() {
    let s = Server::start();
    let mut c = s.client();
    // A blob the backend cannot load is an error, and no key.
    assert_eq!(
        err_text(
            cmd("AI.MODELSTORE")
                .arg("m")
                .arg("TFLITE")
                .arg("CPU")
                .arg("BLOB")
                .arg("x")
                .query(&mut c)
        ),
        "ERR Failed to load model from buffer (invalid flatbuffer, LiteRT status 501)"
    );
    let n: i64 = cmd("EXISTS").arg("m").query(&mut c).unwrap();
    assert_eq!(n, 0);
    // Argument errors come first, with RedisAI's texts.
    assert_eq!(
        err_text(
            cmd("AI.MODELSTORE")
                .arg("m")
                .arg("TF")
                .arg("CPU")
                .arg("BLOB")
                .arg("x")
                .query(&mut c)
        ),
        "ERR INPUTS not specified for TF"
    );
    assert_eq!(
        err_text(
            cmd("AI.MODELSTORE")
                .arg("m")
                .arg("ONNX")
                .arg("TPU")
                .arg("BLOB")
                .arg("x")
                .query(&mut c)
        ),
        "ERR Invalid DEVICE"
    );
    assert_eq!(
        err_text(cmd("AI.MODELGET").arg("m").arg("META").query(&mut c)),
        "ERR model key is empty"
    );
    let _: () = cmd("AI.TENSORSET")
        .arg("t")
        .arg("FLOAT")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        err_text(cmd("AI.MODELGET").arg("t").arg("META").query(&mut c)),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        err_text(cmd("AI.MODELDEL").arg("m").query(&mut c)),
        "ERR model key is empty"
    );
    assert_eq!(
        err_text(
            cmd("AI.MODELEXECUTE")
                .arg("m")
                .arg("INPUTS")
                .arg(1)
                .arg("t")
                .arg("OUTPUTS")
                .arg(1)
                .arg("o")
                .query(&mut c)
        ),
        "ERR model key is empty"
    );
    let scan: Vec<Value> = cmd("AI._MODELSCAN").query(&mut c).unwrap();
    assert!(scan.is_empty());
    let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 1, "nothing but the tensor was stored");
}
