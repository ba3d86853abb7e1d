//! The spec's AI.TENSORSET / AI.TENSORGET examples through redis-cli, compared with the
//! exact replies the spec prints (redis-cli --no-raw formats them as a terminal would).

use shardai_tests::Server;

fn cli(s: &Server, cmd: &str) -> String {
    let mut args = vec!["--no-raw"];
    args.extend(cmd.split(' '));
    s.cli(&args)
}

#[test]
fn tensorset_and_tensorget_examples() {
    let s = Server::start();
    assert_eq!(
        cli(&s, "AI.TENSORSET mytensor FLOAT 2 2 VALUES 1 2 3 4"),
        "OK\n"
    );
    assert_eq!(
        cli(&s, "AI.TENSORGET mytensor META"),
        "1) \"dtype\"\n2) \"FLOAT\"\n3) \"shape\"\n4) 1) (integer) 2\n   2) (integer) 2\n"
    );
    assert_eq!(
        cli(&s, "AI.TENSORGET mytensor VALUES"),
        "1) \"1\"\n2) \"2\"\n3) \"3\"\n4) \"4\"\n"
    );
    assert_eq!(
        cli(&s, "AI.TENSORGET mytensor BLOB"),
        "\"\\x00\\x00\\x80?\\x00\\x00\\x00@\\x00\\x00@@\\x00\\x00\\x80@\"\n"
    );
    assert_eq!(
        cli(&s, "AI.TENSORGET mytensor META VALUES"),
        "1) \"dtype\"\n2) \"FLOAT\"\n3) \"shape\"\n4) 1) (integer) 2\n   2) (integer) 2\n\
         5) \"values\"\n6) 1) \"1\"\n   2) \"2\"\n   3) \"3\"\n   4) \"4\"\n"
    );
    let meta_blob = "1) \"dtype\"\n2) \"FLOAT\"\n3) \"shape\"\n4) 1) (integer) 2\n   2) (integer) 2\n\
         5) \"blob\"\n6) \"\\x00\\x00\\x80?\\x00\\x00\\x00@\\x00\\x00@@\\x00\\x00\\x80@\"\n";
    assert_eq!(cli(&s, "AI.TENSORGET mytensor META BLOB"), meta_blob);
    assert_eq!(
        cli(&s, "AI.TENSORGET mytensor"),
        meta_blob,
        "META BLOB is the default"
    );
}

#[test]
fn uninitialized_tensor_and_blob_from_stdin() {
    let s = Server::start();
    assert_eq!(cli(&s, "AI.TENSORSET zeros INT32 2 3"), "OK\n");
    assert_eq!(
        cli(&s, "AI.TENSORGET zeros VALUES"),
        "1) (integer) 0\n2) (integer) 0\n3) (integer) 0\n4) (integer) 0\n5) (integer) 0\n6) (integer) 0\n"
    );
    // redis-cli -x sends standard input as the last argument: a binary BLOB.
    let blob: Vec<u8> = (0u8..=255).collect();
    let out = s.cli_input(
        &["-x", "AI.TENSORSET", "bytes", "UINT8", "256", "BLOB"],
        Some(&blob),
    );
    assert_eq!(out, "OK\n");
    let back = s.cli(&["--no-raw", "AI.TENSORGET", "bytes", "VALUES"]);
    assert_eq!(back.lines().count(), 256);
    assert!(back.ends_with("256) (integer) 255\n"));
}

#[test]
fn errors_as_redis_cli_shows_them() {
    let s = Server::start();
    let cases = [
        (
            "AI.TENSORSET t FLOAT32 2 VALUES 1 2",
            "(error) ERR invalid data type",
        ),
        (
            "AI.TENSORSET t FLOAT -1 VALUES 1",
            "(error) ERR invalid or negative value found in tensor shape",
        ),
        (
            "AI.TENSORSET t FLOAT 2 VALUES 1",
            "(error) ERR wrong number of values was given in 'AI.TENSORSET' command",
        ),
        (
            "AI.TENSORSET t FLOAT 2 BLOB abc",
            "(error) ERR data length does not match tensor shape and type",
        ),
        (
            "AI.TENSORSET t INT8 1 VALUES 300",
            "(error) ERR invalid value",
        ),
        (
            "AI.TENSORSET t BOOL 1 VALUES 2",
            "(error) ERR BOOL tensor elements must be 0 or 1",
        ),
        (
            "AI.TENSORSET t",
            "(error) ERR wrong number of arguments for 'AI.TENSORSET' command",
        ),
        (
            "AI.TENSORGET missing",
            "(error) ERR tensor key is empty or in a different shard",
        ),
    ];
    for (cmd, want) in cases {
        assert_eq!(cli(&s, cmd), format!("{want}\n"), "{cmd}");
    }
    assert_eq!(cli(&s, "SET str x"), "OK\n");
    assert_eq!(
        cli(&s, "AI.TENSORGET str"),
        "(error) WRONGTYPE Operation against a key holding the wrong kind of value\n"
    );
    assert_eq!(
        cli(&s, "AI.TENSORSET str FLOAT 1 VALUES 1"),
        "(error) WRONGTYPE Operation against a key holding the wrong kind of value\n"
    );
}
