//! One client connection's state, shared by the connection loop ([`crate::conn`]) and the
//! command handlers ([`crate::dispatch`]) so that neither imports the other: the protocol
//! version, READONLY, ASKING, and the registry entry CLIENT LIST shows.

use std::sync::{
    Arc,
    atomic::{AtomicU8, AtomicU64, AtomicUsize},
};
use std::{net::SocketAddr, time::Instant};

use bytes::Bytes;
use parking_lot::Mutex;

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
}

impl ConnState {
    /// A new connection's state: RESP2, read-write, not ASKING.
    pub fn new(info: Arc<ClientInfo>) -> Self {
        ConnState {
            resp: 2,
            readonly: false,
            asking: false,
            info,
        }
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
