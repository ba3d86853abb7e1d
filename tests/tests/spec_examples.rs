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
            "(error) ERR invalid value",
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

/// The spec's AI.MODELSTORE / AI.MODELGET / AI.MODELEXECUTE examples through redis-cli: the
/// TF store command exactly as the spec writes it (an MNIST-sized CNN with the spec's node
/// names `images` and `output` standing in for resnet50.pb), the META reply as a terminal
/// shows it (a TF graph with the spec's nodes a, b and c), `--raw ... BLOB > model.ext`, and
/// a model with two outputs.
#[test]
fn model_examples_through_redis_cli() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("shardai-spec-models-{}", std::process::id()));
    let python = root.join("../.venv/bin/python");
    for script in ["make_tf.py", "make_onnx.py"] {
        let made = std::process::Command::new(&python)
            .arg(root.join("models").join(script))
            .arg(&dir)
            .status()
            .expect("the project venv (scripts/setup) has python with numpy and onnx");
        assert!(made.success(), "{script}");
    }
    let s = Server::start();
    let cnn = std::fs::read(dir.join("mnist_cnn.pb")).unwrap();
    let store =
        "AI.MODELSTORE mymodel TF CPU TAG imagenet:5.0 INPUTS 1 images OUTPUTS 1 output BLOB";
    let mut args = vec!["-x"];
    args.extend(store.split(' '));
    assert_eq!(s.cli_input(&args, Some(&cnn)), "OK\n");

    let mul = std::fs::read(dir.join("mul_c.pb")).unwrap();
    let store = "AI.MODELSTORE mymodel TF CPU TAG imagenet:5.0 INPUTS 2 a b OUTPUTS 1 c BLOB";
    let mut args = vec!["-x"];
    args.extend(store.split(' '));
    assert_eq!(s.cli_input(&args, Some(&mul)), "OK\n");
    assert_eq!(
        cli(&s, "AI.MODELGET mymodel META"),
        concat!(
            " 1) \"backend\"\n 2) \"TF\"\n 3) \"device\"\n 4) \"CPU\"\n",
            " 5) \"tag\"\n 6) \"imagenet:5.0\"\n 7) \"batchsize\"\n 8) (integer) 0\n",
            " 9) \"minbatchsize\"\n10) (integer) 0\n11) \"inputs\"\n12) 1) \"a\"\n    2) \"b\"\n",
            "13) \"outputs\"\n14) 1) \"c\"\n15) \"minbatchtimeout\"\n16) (integer) 0\n",
        )
    );
    // `redis-cli --raw AI.MODELGET mymodel BLOB > model.ext` saves the model (plus the
    // newline redis-cli prints after a reply).
    let mut saved = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &s.port.to_string(),
            "--raw",
            "AI.MODELGET",
            "mymodel",
            "BLOB",
        ])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(saved.pop(), Some(b'\n'));
    assert!(saved == mul, "the saved model differs from the stored one");

    // Two outputs, as in the spec's AI.MODELEXECUTE example.
    let two = std::fs::read(dir.join("two_outputs.onnx")).unwrap();
    let out = s.cli_input(
        &["-x", "AI.MODELSTORE", "mymodel", "ONNX", "CPU", "BLOB"],
        Some(&two),
    );
    assert_eq!(out, "OK\n");
    assert_eq!(
        cli(&s, "AI.TENSORSET mytensor FLOAT 1 2 VALUES 5 10"),
        "OK\n"
    );
    assert_eq!(
        cli(
            &s,
            "AI.MODELEXECUTE mymodel INPUTS 1 mytensor OUTPUTS 2 classes predictions"
        ),
        "OK\n"
    );
    assert_eq!(
        cli(&s, "AI.TENSORGET classes VALUES"),
        "1) \"6\"\n2) \"11\"\n"
    );
    assert_eq!(
        cli(&s, "AI.TENSORGET predictions VALUES"),
        "1) \"10\"\n2) \"20\"\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
