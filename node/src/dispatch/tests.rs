//! Handlers run against the local applier, without a socket: every registered command
//! reaches a handler, and the families behave as their clients expect.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use bytes::Bytes;
use clap::Parser;
use shardai_engine::{LocalApplier, Store};
use shardai_protocol::{Command, Error, Reply, table};

use super::{Flow, execute, keyspace, strings, tensor, writes};
use crate::{client::ConnState, config::Config, state::Shared};

fn shared() -> Arc<Shared> {
    let config = Config::try_parse_from(["shardai"]).unwrap();
    Arc::new(Shared::new(
        config,
        Arc::new(LocalApplier::new(Arc::new(Store::new()))),
        None,
        Arc::new(crate::acl::Acl::new(None, None).unwrap()),
    ))
}

fn conn(shared: &Shared) -> ConnState {
    let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let (user, generation) = shared.acl.initial_user();
    ConnState::new(
        shared.register(addr, "127.0.0.1:6379".parse().unwrap(), -1),
        user,
        generation,
    )
}

fn args(s: &str) -> Vec<Bytes> {
    s.split(' ')
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

async fn run(shared: &Arc<Shared>, c: &mut ConnState, s: &str) -> (Reply, Flow) {
    execute(Command::parse(args(s)).unwrap(), shared, c).await
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_registered_command_reaches_its_handler() {
    rt().block_on(async {
        let s = shared();
        let mut c = conn(&s);
        for ex in table::EXAMPLES {
            let (reply, flow) = run(&s, &mut c, ex).await;
            if let Reply::Error(e) = &reply {
                let text = e.wire_text();
                assert!(
                    !text.contains("unknown command") && !text.contains("unknown subcommand"),
                    "{ex}: {text}"
                );
            }
            assert_eq!(flow == Flow::Close, *ex == "QUIT", "{ex}");
        }
    });
}

/// Builds the write `line` makes and proposes it, as `execute` does.
async fn write(s: &Shared, line: &str) -> Reply {
    match writes::of(Command::parse(args(line)).unwrap(), 1 << 20) {
        writes::Built::Write(w) => writes::propose(w, &*s.proposer).await,
        writes::Built::Other(other) => panic!("not a write: {other:?}"),
    }
}

#[test]
fn strings_through_the_local_applier() {
    rt().block_on(async {
        let s = shared();
        let store = &**s.store();
        assert_eq!(write(&s, "SET k v").await, Reply::OK);
        assert_eq!(write(&s, "SET k w NX").await, Reply::Nil);
        assert_eq!(write(&s, "SETNX k w").await, Reply::Int(0));
        assert_eq!(
            write(&s, "SET k v GET").await,
            Reply::Bulk(Bytes::from_static(b"v"))
        );
        assert_eq!(
            strings::get(b"k", store, &s.stats),
            Reply::Bulk(Bytes::from_static(b"v"))
        );
        assert_eq!(strings::get(b"nope", store, &s.stats), Reply::Nil);
        assert_eq!(s.stats.hits.load(Ordering::Relaxed), 1);
        assert_eq!(s.stats.misses.load(Ordering::Relaxed), 1);
        assert_eq!(write(&s, "INCRBY n 5").await, Reply::Int(5));
        assert_eq!(write(&s, "INCR k").await, Reply::Error(Error::NotInteger));
    });
}

#[test]
fn hashes_and_lists_through_the_local_applier() {
    rt().block_on(async {
        let s = shared();
        assert_eq!(write(&s, "HSET h a 1 b 2").await, Reply::Int(2));
        assert_eq!(write(&s, "HMSET h c 3").await, Reply::OK);
        assert_eq!(write(&s, "HDEL h a zz").await, Reply::Int(1));
        assert_eq!(write(&s, "RPUSH l x y z").await, Reply::Int(3));
        assert_eq!(
            write(&s, "LPOP l").await,
            Reply::Bulk(Bytes::from_static(b"x"))
        );
        assert_eq!(
            write(&s, "RPOP l 5").await,
            Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"z")),
                Reply::Bulk(Bytes::from_static(b"y"))
            ])
        );
        assert_eq!(write(&s, "LPOP l").await, Reply::Nil);
        assert_eq!(write(&s, "LPOP l 2").await, Reply::NilArray);
        assert_eq!(write(&s, "LPOP h").await, Reply::Error(Error::WrongType));
    });
}

#[test]
fn tensors_through_the_local_applier() {
    rt().block_on(async {
        let s = shared();
        let store = &**s.store();
        assert_eq!(
            write(&s, "AI.TENSORSET t INT8 2 VALUES 1 -2").await,
            Reply::OK
        );
        let Command::TensorGet(g) = Command::parse(args("AI.TENSORGET t VALUES")).unwrap() else {
            panic!()
        };
        assert_eq!(
            tensor::tensorget(g, store, &s.stats),
            Reply::Array(vec![Reply::Int(1), Reply::Int(-2)])
        );
        assert_eq!(keyspace::type_of(b"t", store), Reply::Status("AI_TENSOR"));
        let Command::TensorGet(missing) = Command::parse(args("AI.TENSORGET none META")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            tensor::tensorget(missing, store, &s.stats),
            Reply::Error(Error::TensorKeyEmpty)
        );
        // A string where a tensor is expected.
        write(&s, "SET s v").await;
        assert_eq!(
            tensor::tensors_of(&[Bytes::from_static(b"s")], store).unwrap_err(),
            Error::WrongType
        );
    });
}

#[test]
fn keyspace_through_the_local_applier() {
    rt().block_on(async {
        let s = shared();
        let mut c = conn(&s);
        run(&s, &mut c, "MSET a 1 b 2 c 3").await;
        let store = &**s.store();
        assert_eq!(keyspace::exists(&args("a b zz"), store), Reply::Int(2));
        assert_eq!(write(&s, "DEL a zz").await, Reply::Int(1));
        assert_eq!(keyspace::type_of(b"a", store), Reply::Status("none"));
        assert_eq!(keyspace::type_of(b"b", store), Reply::Status("string"));
        assert!(matches!(keyspace::random_key(store, 7), Reply::Bulk(_)));
        assert_eq!(keyspace::flush(&*s.proposer).await, Reply::OK);
        assert_eq!(keyspace::random_key(store, 7), Reply::Nil);
    });
}

#[test]
fn connection_state_commands() {
    rt().block_on(async {
        let s = shared();
        let mut c = conn(&s);
        run(&s, &mut c, "READONLY").await;
        assert!(c.readonly);
        run(&s, &mut c, "READWRITE").await;
        assert!(!c.readonly);
        run(&s, &mut c, "ASKING").await;
        assert!(c.asking);
        run(&s, &mut c, "HELLO 3").await;
        assert_eq!(c.resp, 3);
        assert_eq!(
            run(&s, &mut c, "HELLO 4").await.0,
            Reply::Error(Error::NoProto)
        );
    });
}

#[test]
fn handlers_never_import_the_connection_loop() {
    let files = [
        ("mod.rs", include_str!("mod.rs")),
        ("ai_config.rs", include_str!("ai_config.rs")),
        ("cluster.rs", include_str!("cluster.rs")),
        ("cluster_admin.rs", include_str!("cluster_admin.rs")),
        ("command.rs", include_str!("command.rs")),
        ("dag.rs", include_str!("dag.rs")),
        ("info.rs", include_str!("info.rs")),
        ("keyspace.rs", include_str!("keyspace.rs")),
        ("migrate.rs", include_str!("migrate.rs")),
        ("model.rs", include_str!("model.rs")),
        ("server.rs", include_str!("server.rs")),
        ("setslot.rs", include_str!("setslot.rs")),
        ("strings.rs", include_str!("strings.rs")),
        ("tensor.rs", include_str!("tensor.rs")),
    ];
    for (name, src) in files {
        for line in src.lines().filter(|l| !l.trim_start().starts_with("//")) {
            assert!(
                !line.contains("crate::conn") && !line.contains("conn::"),
                "dispatch/{name} imports the connection loop: {line}"
            );
        }
    }
}
