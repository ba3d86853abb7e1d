//! DUMP, RESTORE / RESTORE-ASKING and MIGRATE: moving keys between nodes as Redis Cluster
//! resharding does. MIGRATE connects to the target's client port, sends one RESTORE-ASKING
//! per key (pipelined), and deletes here the keys the target stored. In cluster mode it
//! holds the migration lock exclusively meanwhile, so no command on a migrating slot sees a
//! key half-moved (see `Cluster::migration`).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use shardai_engine::{Applied, Mutation, Proposer, Store, Value, backend::Backends, now_ms};
use shardai_protocol::{
    Error, Reply,
    command::{Migrate, Restore},
};
use shardai_raft::dump;
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tracing::debug;

use super::keyspace::applied;
use crate::{
    cluster::Cluster,
    resp::{RespReader, Val, request},
};

/// Longest MIGRATE waits for one step (connect, write, each reply), whatever its timeout.
const MAX_TIMEOUT_MS: u64 = 60_000;
/// Most bytes one reply from MIGRATE's target may take.
const REPLY_LIMIT: usize = 64 * 1024;
/// Payloads from this size on are checked and decoded on a blocking thread.
const BLOCKING_PAYLOAD: usize = 64 * 1024;

pub(super) fn dump_key(key: &[u8], store: &Store) -> Reply {
    match store.get(key) {
        Some(v) => Reply::Bulk(Bytes::from(dump::dump(&v))),
        None => Reply::Nil,
    }
}

pub(super) async fn restore(
    r: Restore,
    proposer: &dyn Proposer,
    backends: &Arc<Backends>,
) -> Reply {
    if !r.replace && proposer.store().get(&r.key).is_some() {
        return Reply::Error(Error::Verbatim(
            "BUSYKEY Target key name already exists.".into(),
        ));
    }
    let deadline = match (r.ttl, r.absolute) {
        (0, _) => None,
        (t, true) => Some(t),
        (t, false) => Some(now_ms() + t),
    };
    let backends = backends.clone();
    let (payload, key, replace) = (r.payload, r.key, r.replace);
    let target = key.clone();
    let compiler = backends.clone();
    let load = move |w: shardai_raft::types::WireModel| w.load(&backends);
    let compile = move |s: shardai_raft::types::WireScript| s.compile(&compiler);
    // Checking and decoding a large payload (a model) is CPU work: not on a tokio worker.
    let m = if payload.len() >= BLOCKING_PAYLOAD {
        tokio::task::spawn_blocking(move || dump::restore(&payload, key, deadline, load, compile))
            .await
            .unwrap_or_else(|e| Err(Error::Unavailable(format!("restore failed: {e}"))))
    } else {
        match dump::decode(&payload) {
            Ok(d) if d.loads_model() => {
                tokio::task::spawn_blocking(move || d.restore(key, deadline, load, compile))
                    .await
                    .unwrap_or_else(|e| {
                        Err(Error::Unavailable(format!("model loading failed: {e}")))
                    })
            }
            Ok(d) => d.restore(
                key,
                deadline,
                |_| Err(Error::Syntax),
                |_| Err(Error::Syntax),
            ),
            Err(e) => Err(e),
        }
    };
    // REPLACE replaces a value of any type (the key is deleted first, in the same entry);
    // a value with a deadline other than a string's gets it in that entry too.
    let m = m.map(|m| match (replace, m) {
        (false, m) => m,
        (true, Mutation::Batch(v)) => Mutation::Batch(
            std::iter::once(Mutation::Del(vec![target]))
                .chain(v)
                .collect(),
        ),
        (true, m) => Mutation::Batch(vec![Mutation::Del(vec![target]), m]),
    });
    match m {
        Ok(m) => match proposer.propose(m).await {
            Ok(Applied::Batch(v)) => match v.into_iter().find_map(Result::err) {
                Some(e) => Reply::Error(e),
                None => Reply::OK,
            },
            r => applied(r),
        },
        Err(e) => Reply::Error(e),
    }
}

/// Reads one reply to a RESTORE-ASKING or AUTH: `Ok(Err(text))` for an error reply.
async fn read_status(
    sock: &mut TcpStream,
    reader: &mut RespReader,
    timeout: Duration,
) -> Result<Result<(), String>, Error> {
    let io_err = || Error::Verbatim("IOERR error or timeout reading to target instance".into());
    match tokio::time::timeout(timeout, reader.read_async(sock)).await {
        Ok(Ok(Val::Err(e))) => Ok(Err(e)),
        Ok(Ok(Val::Status(_) | Val::Int(_))) => Ok(Ok(())),
        Ok(Ok(other)) => Ok(Err(format!("unexpected reply {other:?}"))),
        _ => Err(io_err()),
    }
}

/// Whether MIGRATE may connect to `host:port`: with `any_host`, anywhere; in a cluster, only
/// to a node's client address (`nodes`); standalone, only to the loopback interface. A
/// client that may run MIGRATE cannot make the server connect elsewhere.
pub(super) fn target_allowed(
    host: &str,
    port: u16,
    nodes: Option<&[String]>,
    any_host: bool,
) -> Result<(), Error> {
    if any_host {
        return Ok(());
    }
    let ip: Option<std::net::IpAddr> = host.trim_matches(['[', ']']).parse().ok();
    let allowed = match nodes {
        Some(nodes) => nodes.iter().any(|addr| {
            let Some((h, p)) = addr.rsplit_once(':') else {
                return false;
            };
            p.parse() == Ok(port)
                && (h.eq_ignore_ascii_case(host)
                    || ip.is_some() && h.trim_matches(['[', ']']).parse().ok() == ip)
        }),
        None => ip.is_some_and(|ip| ip.is_loopback()) || host.eq_ignore_ascii_case("localhost"),
    };
    if allowed {
        Ok(())
    } else {
        let scope = if nodes.is_some() {
            "is not a node of this cluster"
        } else {
            "is not a loopback address"
        };
        Err(Error::Unavailable(format!(
            "MIGRATE target {host}:{port} {scope} (start the server with --migrate-any-host yes \
             to allow any host)"
        )))
    }
}

pub(super) async fn migrate(
    mut m: Migrate,
    proposer: &dyn Proposer,
    cluster: Option<&Cluster>,
    any_host: bool,
) -> Reply {
    let nodes: Option<Vec<String>> = cluster.map(|c| {
        c.view()
            .map(|v| {
                v.topology
                    .nodes
                    .values()
                    .map(|n| n.client_addr.clone())
                    .collect()
            })
            .unwrap_or_default()
    });
    if let Err(e) = target_allowed(&m.host, m.port, nodes.as_deref(), any_host) {
        return Reply::Error(e);
    }
    m.timeout_ms = m.timeout_ms.min(MAX_TIMEOUT_MS);
    // Exclusive against commands on migrating slots, until the moved keys are gone here.
    let _lock = match cluster {
        Some(c) => Some(c.migration.clone().write_owned().await),
        None => None,
    };
    let now = now_ms();
    let store = proposer.store();
    let found: Vec<(Bytes, Value, u64)> = m
        .keys
        .iter()
        .filter_map(|k| {
            let v = store.get(k)?;
            let ttl = store.ttl_ms(k, now).flatten().unwrap_or(0);
            Some((k.clone(), v, ttl))
        })
        .collect();
    if found.is_empty() {
        return Reply::Status("NOKEY");
    }
    match send(&m, &found).await {
        Ok((moved, failure)) => {
            if !m.copy && !moved.is_empty() {
                let n = moved.len();
                if let Err(e) = proposer.propose(Mutation::Del(moved)).await {
                    return Reply::Error(e);
                }
                debug!(keys = n, target = %format!("{}:{}", m.host, m.port), "migrated");
            }
            match failure {
                Some(e) => Reply::Error(Error::Verbatim(format!(
                    "ERR Target instance replied with error: {e}"
                ))),
                None => Reply::OK,
            }
        }
        Err(e) => Reply::Error(e),
    }
}

/// The bytes MIGRATE sends (AUTH if asked, one RESTORE-ASKING per key), and the keys in the
/// order of their replies.
fn restore_requests(m: &Migrate, found: &[(Bytes, Value, u64)]) -> (Vec<u8>, Vec<Bytes>) {
    let mut req = Vec::new();
    if let Some((user, pw)) = &m.auth {
        match user {
            Some(u) => req.extend(request(&[&b"AUTH"[..], &u[..], &pw[..]])),
            None => req.extend(request(&[&b"AUTH"[..], &pw[..]])),
        }
    }
    for (k, v, ttl) in found {
        let (p, ttl) = (dump::dump(v), ttl.to_string());
        let mut args: Vec<&[u8]> = vec![b"RESTORE-ASKING", k, ttl.as_bytes(), &p];
        if m.replace {
            args.push(b"REPLACE");
        }
        req.extend(request(&args));
    }
    (req, found.iter().map(|(k, _, _)| k.clone()).collect())
}

/// Sends the keys; returns those the target stored and the first error it replied.
async fn send(
    m: &Migrate,
    found: &[(Bytes, Value, u64)],
) -> Result<(Vec<Bytes>, Option<String>), Error> {
    let timeout = Duration::from_millis(m.timeout_ms);
    let sock =
        match tokio::time::timeout(timeout, TcpStream::connect((m.host.as_str(), m.port))).await {
            Ok(Ok(s)) => s,
            _ => {
                return Err(Error::Verbatim(
                    "IOERR error or timeout connecting to the client".into(),
                ));
            }
        };
    let _ = sock.set_nodelay(true);
    // Replies to RESTORE-ASKING and AUTH are one short line each.
    let (mut sock, mut reader) = (sock, RespReader::with_limit(REPLY_LIMIT));
    // Serializing large values (models, big tensors) is CPU work: not on a tokio worker.
    let bytes: usize = found.iter().map(|(_, v, _)| v.size()).sum();
    let (req, keys) = if bytes >= BLOCKING_PAYLOAD {
        let (m, found) = (m.clone(), found.to_vec());
        tokio::task::spawn_blocking(move || restore_requests(&m, &found))
            .await
            .map_err(|e| Error::Unavailable(format!("migrate failed: {e}")))?
    } else {
        restore_requests(m, found)
    };
    let write_err = || Error::Verbatim("IOERR error or timeout writing to target instance".into());
    match tokio::time::timeout(timeout, sock.write_all(&req)).await {
        Ok(Ok(())) => {}
        _ => return Err(write_err()),
    }
    if m.auth.is_some()
        && let Err(e) = read_status(&mut sock, &mut reader, timeout).await?
    {
        return Ok((Vec::new(), Some(e)));
    }
    let mut moved = Vec::new();
    let mut failure = None;
    for k in keys {
        match read_status(&mut sock, &mut reader, timeout).await? {
            Ok(()) => moved.push(k),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    Ok((moved, failure))
}

#[cfg(test)]
mod tests {
    use super::target_allowed;

    #[test]
    fn migrate_goes_only_to_cluster_nodes_or_loopback() {
        let nodes = vec!["127.0.0.1:7001".to_string(), "10.0.0.2:7000".to_string()];
        assert!(target_allowed("127.0.0.1", 7001, Some(&nodes), false).is_ok());
        assert!(target_allowed("10.0.0.2", 7000, Some(&nodes), false).is_ok());
        assert!(target_allowed("10.0.0.2", 22, Some(&nodes), false).is_err());
        assert!(target_allowed("169.254.169.254", 80, Some(&nodes), false).is_err());
        assert!(target_allowed("127.0.0.1", 6379, None, false).is_ok());
        assert!(target_allowed("localhost", 6379, None, false).is_ok());
        assert!(target_allowed("10.0.0.9", 6379, None, false).is_err());
        assert!(target_allowed("10.0.0.9", 6379, None, true).is_ok());
        let e = target_allowed("10.0.0.9", 1, Some(&nodes), false).unwrap_err();
        assert!(e.wire_text().contains("not a node of this cluster"), "{e}");
    }
}
