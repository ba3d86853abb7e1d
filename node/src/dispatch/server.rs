//! PING, HELLO, SELECT, CLIENT and CONFIG.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use shardai_protocol::{
    Error, Reply,
    command::{ClientCmd, ConfigCmd, Hello, SlowlogCmd},
};
use shardai_raft::log_store::Fsync;
use tracing::info;

use crate::{
    client::{ClientInfo, ConnState},
    state::Shared,
};

/// The Redis version shardai answers as, for clients that check it.
pub(super) const REDIS_COMPAT_VERSION: &str = "7.2.0";

pub(super) fn ping(msg: Option<Bytes>, _conn: &ConnState) -> Reply {
    match msg {
        Some(m) => Reply::Bulk(m),
        None => Reply::Status("PONG"),
    }
}

/// HELLO once authentication is settled (see `acl::hello`): the version is 2 or 3.
pub(super) fn hello(h: Hello, conn: &mut ConnState) -> Reply {
    if let Some(v) = h.proto {
        conn.resp = v as u8;
        conn.info.resp.store(v as u8, Ordering::Relaxed);
    }
    if let Some(name) = h.setname {
        if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
            return Reply::Error(Error::BadClientName);
        }
        conn.info.names.lock().name = name;
    }
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_COMPAT_VERSION)),
        (Reply::bulk("proto"), Reply::Int(conn.resp as i64)),
        (Reply::bulk("id"), Reply::Int(conn.info.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (
            Reply::bulk("modules"),
            Reply::Array(vec![Reply::Map(vec![
                (Reply::bulk("name"), Reply::bulk("ai")),
                (Reply::bulk("ver"), Reply::Int(10207)),
                (Reply::bulk("path"), Reply::bulk("built-in")),
                (Reply::bulk("args"), Reply::Array(vec![])),
            ])]),
        ),
    ])
}

/// SAVE: a snapshot of everything this node applied, written before the reply; BGSAVE: the
/// same, answered at once. The snapshot is the node's own (each replica keeps its own); the
/// log before it can then be cut.
pub(super) async fn save(background: bool, shared: &Shared) -> Reply {
    let group = shared.data_group();
    let Some(group) = group else {
        return Reply::Error(Error::Verbatim(
            "ERR this node holds no data to save (it is not part of a shard yet)".into(),
        ));
    };
    match group.save(!background).await {
        Ok(()) if background => Reply::Status("Background saving started"),
        Ok(()) => Reply::OK,
        Err(e) => Reply::Error(e),
    }
}

pub(super) fn select(db: i64) -> Reply {
    if db == 0 {
        Reply::OK
    } else {
        Reply::Error(Error::DbIndexOutOfRange)
    }
}

pub(super) fn client(c: ClientCmd, shared: &Shared, conn: &mut ConnState) -> Reply {
    match c {
        ClientCmd::SetName(name) => {
            conn.info.names.lock().name = name;
            Reply::OK
        }
        ClientCmd::GetName => {
            let name = conn.info.names.lock().name.clone();
            if name.is_empty() {
                Reply::Nil
            } else {
                Reply::Bulk(name)
            }
        }
        ClientCmd::Id => Reply::Int(conn.info.id as i64),
        ClientCmd::SetInfo { attr, value } => {
            let mut n = conn.info.names.lock();
            if attr == "lib-name" {
                n.lib_name = value;
            } else {
                n.lib_ver = value;
            }
            Reply::OK
        }
        ClientCmd::Info => Reply::Verbatim(ClientInfo::line(&conn.info)),
        ClientCmd::List(filter) => {
            let clients: Vec<_> = shared.clients.lock().values().cloned().collect();
            Reply::Verbatim(
                clients
                    .iter()
                    .filter(|c| c.matches(&filter))
                    .map(|c| ClientInfo::line(c))
                    .collect(),
            )
        }
        ClientCmd::Kill {
            filter,
            old_form,
            skip_me,
        } => {
            let clients: Vec<_> = shared.clients.lock().values().cloned().collect();
            let mut killed = 0;
            for c in clients.iter().filter(|c| c.matches(&filter)) {
                if skip_me && c.id == conn.info.id {
                    continue;
                }
                info!(id = c.id, addr = %c.addr, by = conn.info.id, "CLIENT KILL");
                c.kill.notify_one();
                killed += 1;
            }
            match (old_form, killed) {
                (true, 0) => Reply::Error(Error::Verbatim("ERR No such client".into())),
                (true, _) => Reply::OK,
                (false, n) => Reply::Int(n),
            }
        }
        ClientCmd::Help => help(&[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "    * ID <client-id>",
            "      Kill connections by client id.",
            "    * MAXAGE <maxage>",
            "      Kill connections older than the specified age.",
            "INFO",
            "    Return information about the current client connection.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "    * ID <client-id> [<client-id> ...]",
            "      Return clients of specified IDs only.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
        ]),
    }
}

/// `SLOWLOG GET [count] | LEN | RESET | HELP`
pub(super) fn slowlog(c: SlowlogCmd, log: &crate::ops::slowlog::SlowLog) -> Reply {
    match c {
        SlowlogCmd::Get(count) => crate::ops::slowlog::reply(log.newest(count)),
        SlowlogCmd::Len => Reply::Int(log.len() as i64),
        SlowlogCmd::Reset => {
            log.reset();
            Reply::OK
        }
        SlowlogCmd::Help => help(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Print this help.",
        ]),
    }
}

/// `MONITOR`: the connection turns into a stream of every command the node receives
/// (see `conn`), after this OK.
pub(super) fn monitor(conn: &mut ConnState) -> Reply {
    if conn.tx.is_some() {
        return Reply::Error(Error::Verbatim(
            "ERR MONITOR isn't allowed inside MULTI".into(),
        ));
    }
    conn.info.monitor.store(true, Ordering::Relaxed);
    Reply::OK
}

pub(super) fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Status(l)).collect())
}

/// The largest proto-max-bulk-len CONFIG SET accepts.
const MAX_BULK_LIMIT: usize = 4 << 30;
/// The longest timeout CONFIG SET accepts (a year).
const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// The largest maxclients CONFIG SET accepts.
const MAX_CLIENTS_LIMIT: usize = 1_000_000;

/// The options CONFIG GET knows, with their current values.
fn config_values(shared: &Shared) -> Vec<(&'static str, String)> {
    let c = &shared.config;
    let rt = &shared.runtime;
    vec![
        ("port", c.port.to_string()),
        ("tls-port", c.tls_port.unwrap_or(0).to_string()),
        ("bind", c.bind.to_string()),
        ("dir", c.dir.display().to_string()),
        (
            "maxclients",
            rt.maxclients.load(Ordering::Relaxed).to_string(),
        ),
        (
            "proto-max-bulk-len",
            rt.max_bulk.load(Ordering::Relaxed).to_string(),
        ),
        (
            "protected-mode",
            if rt.protected_mode.load(Ordering::Relaxed) {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        ("databases", "1".into()),
        // Every write goes to the log in --dir (see `standalone`), as with Redis's AOF.
        ("appendonly", "yes".into()),
        (
            "appendfsync",
            shared
                .standalone
                .as_ref()
                .map_or(Fsync::Always, |g| g.fsync())
                .name()
                .into(),
        ),
        ("save", String::new()),
        ("cluster-enabled", "no".into()),
        (
            "maxmemory",
            rt.maxmemory.load(Ordering::Relaxed).to_string(),
        ),
        ("maxmemory-policy", "noeviction".into()),
        (
            "timeout",
            rt.idle_timeout.load(Ordering::Relaxed).to_string(),
        ),
        (
            "client-output-buffer-limit",
            rt.output_limit.get().to_redis(),
        ),
        (
            "client-write-timeout",
            rt.write_timeout.load(Ordering::Relaxed).to_string(),
        ),
        ("client-query-buffer-limit", (1u64 << 30).to_string()),
        (
            "slowlog-log-slower-than",
            shared
                .ops
                .slowlog
                .slower_than
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        (
            "slowlog-max-len",
            shared
                .ops
                .slowlog
                .max_len
                .load(Ordering::Relaxed)
                .to_string(),
        ),
    ]
}

pub(super) fn config(c: ConfigCmd, shared: &Shared) -> Reply {
    match c {
        ConfigCmd::Get(patterns) => {
            let values = config_values(shared);
            let mut out = Vec::new();
            for (name, value) in &values {
                if patterns.iter().any(|p| {
                    shardai_engine::glob::glob_match(&p.to_ascii_lowercase(), name.as_bytes())
                }) {
                    out.push((Reply::bulk(*name), Reply::Bulk(Bytes::from(value.clone()))));
                }
            }
            Reply::Map(out)
        }
        ConfigCmd::Set(pairs) => {
            // Validate everything first so that a failing pair changes nothing.
            let mut apply: Vec<Box<dyn FnOnce()>> = Vec::new();
            for (name, value) in pairs {
                let text = String::from_utf8_lossy(&value).into_owned();
                let fail = |reason: &str| {
                    Reply::Error(Error::ConfigSetFailed {
                        name: name.clone(),
                        reason: reason.into(),
                    })
                };
                match name.as_str() {
                    "proto-max-bulk-len" => match crate::config::parse_size(&text) {
                        Ok(n) if (1024..=MAX_BULK_LIMIT).contains(&n) => {
                            let rt = &shared.runtime;
                            apply.push(Box::new(move || rt.max_bulk.store(n, Ordering::Relaxed)))
                        }
                        _ => return fail("argument must be a memory value from 1kb to 4gb"),
                    },
                    "maxmemory" => match crate::config::parse_size(&text) {
                        Ok(n) => {
                            let rt = &shared.runtime;
                            apply.push(Box::new(move || {
                                rt.maxmemory.store(n, Ordering::Relaxed);
                                info!(bytes = n, "CONFIG SET maxmemory");
                            }))
                        }
                        Err(_) => return fail("argument must be a memory value"),
                    },
                    "timeout" | "client-write-timeout" => match text.parse::<u64>() {
                        Ok(n) if n <= MAX_TIMEOUT_SECS => {
                            let rt = &shared.runtime;
                            let to = if name == "timeout" {
                                &rt.idle_timeout
                            } else {
                                &rt.write_timeout
                            };
                            apply.push(Box::new(move || to.store(n, Ordering::Relaxed)))
                        }
                        _ => return fail("argument must be from 0 to 31536000 seconds"),
                    },
                    "client-output-buffer-limit" => {
                        match crate::output_limit::OutputLimit::parse(&text) {
                            Ok(l) => {
                                let rt = &shared.runtime;
                                apply.push(Box::new(move || rt.output_limit.set(l)))
                            }
                            Err(why) => return fail(&why),
                        }
                    }
                    "appendfsync" => match Fsync::parse(&text) {
                        Some(f) if shared.standalone.is_some() => {
                            let group = shared.standalone.clone();
                            apply.push(Box::new(move || {
                                if let Some(g) = group {
                                    g.set_fsync(f);
                                    info!(appendfsync = f.name(), "CONFIG SET appendfsync");
                                }
                            }))
                        }
                        Some(Fsync::Always) => {}
                        Some(_) => {
                            return fail(
                                "a cluster node fsyncs every write before it acknowledges it; \
                                 only always is possible",
                            );
                        }
                        None => {
                            return fail(
                                "argument(s) must be one of the following: always, everysec, no",
                            );
                        }
                    },
                    "maxmemory-policy" => {
                        if !text.eq_ignore_ascii_case("noeviction") {
                            return fail(
                                "only noeviction is supported: stored models and tensors are \
                                 never evicted",
                            );
                        }
                    }
                    "slowlog-log-slower-than" => match text.parse::<i64>() {
                        Ok(n) if n >= -1 => {
                            let log = &shared.ops.slowlog;
                            apply.push(Box::new(move || {
                                log.slower_than.store(n, Ordering::Relaxed)
                            }))
                        }
                        Ok(_) => {
                            return fail(
                                "argument must be between -1 and 9223372036854775807 inclusive",
                            );
                        }
                        _ => return fail("argument couldn't be parsed into an integer"),
                    },
                    "slowlog-max-len" => match text.parse::<usize>() {
                        Ok(n) if n <= i64::MAX as usize => {
                            let log = &shared.ops.slowlog;
                            apply.push(Box::new(move || log.set_max_len(n)))
                        }
                        _ => return fail("argument couldn't be parsed into an integer"),
                    },
                    "maxclients" => match text.parse::<usize>() {
                        Ok(n) if (1..=MAX_CLIENTS_LIMIT).contains(&n) => {
                            let rt = &shared.runtime;
                            apply.push(Box::new(move || rt.maxclients.store(n, Ordering::Relaxed)))
                        }
                        Ok(_) => return fail("argument must be between 1 and 1000000 inclusive"),
                        _ => return fail("argument couldn't be parsed into an integer"),
                    },
                    "protected-mode" => match crate::config::parse_yes_no(&text) {
                        Ok(on) => {
                            let rt = &shared.runtime;
                            apply.push(Box::new(move || {
                                rt.protected_mode.store(on, Ordering::Relaxed)
                            }))
                        }
                        Err(_) => return fail("argument must be 'yes' or 'no'"),
                    },
                    _ => return Reply::Error(Error::UnknownConfig(name)),
                }
            }
            for f in apply {
                f();
            }
            Reply::OK
        }
        ConfigCmd::ResetStat => {
            let s = &shared.stats;
            for c in [
                &s.commands,
                &s.connections,
                &s.rejected,
                &s.net_in,
                &s.net_out,
                &s.hits,
                &s.misses,
                &s.expired,
                &s.protocol_errors,
            ] {
                c.store(0, Ordering::Relaxed);
            }
            Reply::OK
        }
        ConfigCmd::Help => help(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
        ]),
    }
}
