//! One client connection's state, shared by the connection loop ([`crate::conn`]) and the
//! command handlers ([`crate::dispatch`]) so that neither imports the other: the protocol
//! version, READONLY, ASKING, the user it authenticated as, a transaction being queued and
//! its WATCHed keys, and the registry entry CLIENT LIST shows.

use std::sync::{
    Arc,
    atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
};
use std::{net::SocketAddr, time::Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use shardai_protocol::Command;

use crate::acl::User;

/// A WATCHed key's value and deadline (Unix ms) when it was watched.
pub type Watched = (shardai_engine::Value, Option<u64>);

/// Per-connection state that commands read and change.
#[derive(Debug)]
pub struct ConnState {
    /// RESP version, 2 or 3.
    pub resp: u8,
    /// The connection sent READONLY.
    pub readonly: bool,
    /// The connection sent ASKING (cleared by the next command).
    pub asking: bool,
    /// This connection's registry entry.
    pub info: Arc<ClientInfo>,
    /// The user it authenticated as (`None` until it does).
    pub user: Option<Arc<User>>,
    /// The ACL generation `user` was read at.
    pub acl_generation: u64,
    /// The connection came through the TLS port (redirects name TLS ports).
    pub tls: bool,
    /// After MULTI: the commands queued for EXEC.
    pub tx: Option<Transaction>,
    /// WATCHed keys and the value and deadline each held when watched (kept, so that a write, which
    /// stores a new value or copies a shared one, is told from no write).
    pub watched: Vec<(Bytes, Option<Watched>)>,
    /// The running command's first arguments, for SLOWLOG (see `ops::Ops::before`).
    pub held: Vec<Bytes>,
    /// The arguments of the command being parsed that RedisAI's order of checks reads,
    /// should the parse fail (see `dispatch::check_order::keep_arguments`).
    pub kept: Vec<Bytes>,
}

/// A transaction being queued (between MULTI and EXEC).
#[derive(Debug, Default)]
pub struct Transaction {
    /// The commands, in order.
    pub queued: Vec<Command>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    pub failed: bool,
    /// The keys the queued commands name.
    pub keys: Vec<Bytes>,
    /// A queued command reads or changes more than the keys it names (DBSIZE, KEYS, INFO,
    /// CONFIG, MIGRATE, ...): EXEC cannot run the transaction on a copy of its keys.
    pub beyond_keys: bool,
    /// A queued command writes.
    pub writes: bool,
    /// ASKING came just before MULTI: it holds until EXEC, as in Redis.
    pub asking: bool,
}

impl Transaction {
    /// Queues `cmd`; `keys`: the keys it names, `None` when it reaches beyond them.
    pub fn queue(&mut self, cmd: Command, keys: Option<Vec<Bytes>>, write: bool) {
        self.queued.push(cmd);
        match keys {
            Some(k) => self.keys.extend(k),
            None => self.beyond_keys = true,
        }
        self.writes |= write;
    }
}

impl ConnState {
    /// A new connection's state: RESP2, read-write, not ASKING, signed in as `user` (the
    /// default user when it needs no password) as of ACL generation `generation`.
    pub fn new(info: Arc<ClientInfo>, user: Option<Arc<User>>, generation: u64) -> Self {
        let mut s = ConnState {
            resp: 2,
            readonly: false,
            asking: false,
            info,
            user: None,
            acl_generation: generation,
            tls: false,
            tx: None,
            watched: Vec::new(),
            held: Vec::new(),
            kept: Vec::new(),
        };
        s.sign_in(user);
        s
    }

    /// Makes `user` the connection's user.
    pub fn sign_in(&mut self, user: Option<Arc<User>>) {
        let name = user.as_ref().map_or("default", |u| u.name.as_str());
        let mut shown = self.info.user.lock();
        if shown.as_str() != name {
            *shown = name.to_string();
        }
        drop(shown);
        self.user = user;
    }

    /// The name of the connection's user (`default` before AUTH).
    pub fn user_name(&self) -> &str {
        self.user.as_ref().map_or("default", |u| u.name.as_str())
    }
}

/// What CLIENT LIST shows about one connection.
#[derive(Debug)]
pub struct ClientInfo {
    /// CLIENT ID.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// The socket's file descriptor (-1 when it has none).
    pub fd: i32,
    /// CLIENT KILL: wakes the connection, which then closes.
    pub kill: tokio::sync::Notify,
    /// The connection sent MONITOR.
    pub monitor: std::sync::atomic::AtomicBool,
    /// When the connection was accepted.
    pub since: Instant,
    /// Milliseconds since `since` of the last command.
    pub last_ms: AtomicU64,
    /// Protocol version (2 or 3).
    pub resp: AtomicU8,
    /// Name, library name and version (CLIENT SETNAME / SETINFO).
    pub names: Mutex<ClientNames>,
    /// Index in the command table of the last command.
    pub last_cmd: AtomicUsize,
    /// The user it is signed in as.
    pub user: Mutex<String>,
}

impl ClientInfo {
    /// Whether the connection is one of those `f` names (CLIENT LIST, CLIENT KILL).
    pub fn matches(&self, f: &shardai_protocol::command::ClientFilter) -> bool {
        (f.ids.is_empty() || f.ids.contains(&self.id))
            && f.kind.as_deref().is_none_or(|k| k == "normal")
            && f.addr.as_ref().is_none_or(|a| *a == self.addr.to_string())
            && f.laddr
                .as_ref()
                .is_none_or(|a| *a == self.laddr.to_string())
            && f.user.as_ref().is_none_or(|u| *u == *self.user.lock())
            && f.max_age
                .is_none_or(|m| self.since.elapsed().as_secs() >= m)
    }

    /// The connection as one CLIENT LIST line, as Redis formats it (the fields clients and
    /// tools read).
    pub fn line(&self) -> String {
        let names = self.names.lock().clone();
        let age = self.since.elapsed();
        let idle = age
            .as_secs()
            .saturating_sub(self.last_ms.load(Ordering::Relaxed) / 1000);
        let cmd = shardai_protocol::table::COMMANDS
            .get(self.last_cmd.load(Ordering::Relaxed))
            .map_or("NULL", |s| s.name);
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub=0 psub=0 \
             ssub=0 multi=-1 watch=0 cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}\n",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&names.name),
            age.as_secs(),
            idle,
            if self.monitor.load(Ordering::Relaxed) {
                "O"
            } else {
                "N"
            },
            cmd,
            self.user.lock(),
            self.resp.load(Ordering::Relaxed),
            String::from_utf8_lossy(&names.lib_name),
            String::from_utf8_lossy(&names.lib_ver),
        )
    }
}

/// Client-chosen names.
#[derive(Debug, Default, Clone)]
pub struct ClientNames {
    /// CLIENT SETNAME.
    pub name: Bytes,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Bytes,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Bytes,
}
