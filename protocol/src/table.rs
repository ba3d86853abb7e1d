//! The one command registry: each entry holds a command's name, its parser, arity, flags, key
//! positions, ACL categories and docs.
//!
//! Parsing checks arity against it and calls the entry's parser; `COMMAND`/`COMMAND INFO`/
//! `COMMAND DOCS` print it; `COMMAND GETKEYS`, cluster routing and replica read permission
//! read its key positions and flags. Commands flagged `movablekeys` find their keys with
//! [`movable_keys`]. A name that is not here is an unknown command.

use std::{collections::HashMap, sync::OnceLock};

use bytes::Bytes;

use crate::{
    command::{
        Command, Cursor, acl, ai_config, cluster, collections, dag, expiry, introspect, keyspace,
        lifecycle, migrate, model, script, server, string_ops, strings, tensor, transaction,
    },
    error::Error,
    frame::parse_i64,
};

/// Turns a request's arguments (after the name; arity already checked) into a [`Command`].
/// The caller refuses arguments the parser left over.
pub type Parser = fn(&mut Cursor) -> Result<Command, Error>;

/// One command's static description, as Redis 7's `COMMAND INFO` shows it.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Lower-case name, as Redis prints it.
    pub name: &'static str,
    /// Its parser.
    pub parse: Parser,
    /// Redis arity: positive means exactly that many arguments (name included), negative
    /// means at least that many.
    pub arity: i32,
    /// Redis command flags (`write`, `readonly`, `denyoom`, `fast`, `movablekeys`, ...).
    pub flags: &'static [&'static str],
    /// Position of the first key, 0 for none.
    pub first_key: i32,
    /// Position of the last key, negative counts from the end.
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// ACL categories (`@read`, `@write`, ...).
    pub acl: &'static [&'static str],
    /// `COMMAND DOCS` group.
    pub group: &'static str,
    /// `COMMAND DOCS` summary.
    pub summary: &'static str,
    /// Subcommands, for container commands (`CLIENT`, `COMMAND`, `CONFIG`).
    pub subcommands: &'static [&'static str],
}

impl CommandSpec {
    /// True when the command changes the keyspace.
    pub fn is_write(&self) -> bool {
        self.flags.contains(&"write")
    }

    /// True when keys must be discovered by parsing the arguments.
    pub fn has_movable_keys(&self) -> bool {
        self.flags.contains(&"movablekeys")
    }

    /// True for the RedisAI module's commands (`ai.*`).
    pub fn is_module(&self) -> bool {
        self.flags.contains(&"module")
    }

    /// Checks the number of arguments (name included) against the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let a = self.arity as i64;
        if a >= 0 { argc == a } else { argc >= -a }
    }

    /// The keys that pick a request's slot: [`CommandSpec::keys`] without the cluster-wide
    /// models and scripts it runs ([`crate::cluster_wide`]). `COMMAND GETKEYS` answers these,
    /// and cluster routing decides by them.
    pub fn slot_keys<'a>(&self, argv: &'a [Bytes]) -> Result<Vec<&'a Bytes>, Error> {
        let keys = self.keys(argv)?;
        if !self.has_movable_keys() {
            return Ok(keys);
        }
        Ok(crate::cluster_wide::without_run_objects(
            self.name, argv, keys,
        ))
    }

    /// The keys of a request to this command (argv includes the command name).
    pub fn keys<'a>(&self, argv: &'a [Bytes]) -> Result<Vec<&'a Bytes>, Error> {
        if self.has_movable_keys() {
            return movable_keys(self.name, argv);
        }
        if self.first_key <= 0 {
            return Ok(introspect::subcommand_key(self.name, argv)
                .into_iter()
                .collect());
        }
        let last = if self.last_key < 0 {
            argv.len() as i32 + self.last_key
        } else {
            self.last_key.min(argv.len() as i32 - 1)
        };
        let mut keys = Vec::new();
        let mut i = self.first_key;
        while i <= last {
            keys.push(&argv[i as usize]);
            i += self.step.max(1);
        }
        Ok(keys)
    }
}

macro_rules! spec {
    ($name:literal, $parse:path, $arity:expr, [$($flag:literal),*], $first:expr, $last:expr, $step:expr,
     [$($acl:literal),*], $group:literal, $summary:literal $(, [$($sub:literal),*])?) => {
        CommandSpec {
            name: $name,
            parse: $parse,
            arity: $arity,
            flags: &[$($flag),*],
            first_key: $first,
            last_key: $last,
            step: $step,
            acl: &[$($acl),*],
            group: $group,
            summary: $summary,
            subcommands: &[$($($sub),*)?],
        }
    };
}

/// Every command shardai knows, Redis's and RedisAI's.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    spec!("ping", server::ping, -1, ["fast", "stale"], 0, 0, 0, ["@fast", "@connection"], "connection",
          "Returns the server's liveliness response."),
    spec!("echo", server::echo, 2, ["fast"], 0, 0, 0, ["@fast", "@connection"], "connection",
          "Returns the given string."),
    spec!("hello", server::hello, -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0,
          ["@fast", "@connection"], "connection", "Handshakes with the server."),
    spec!("quit", server::quit, -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0,
          ["@fast", "@connection"], "connection", "Closes the connection."),
    spec!("auth", acl::auth, -2, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0,
          ["@fast", "@connection"], "connection", "Authenticates the connection."),
    spec!("select", server::select, 2, ["loading", "stale", "fast"], 0, 0, 0, ["@fast", "@connection"],
          "connection", "Changes the selected database."),
    spec!("client", server::client, -2, [], 0, 0, 0, ["@slow", "@connection"], "connection",
          "A container for client connection commands.",
          ["client|setname", "client|getname", "client|id", "client|setinfo", "client|info",
           "client|list", "client|kill", "client|help"]),
    spec!("readonly", cluster::readonly, 1, ["loading", "stale", "fast"], 0, 0, 0, ["@fast", "@connection"],
          "cluster", "Enables read-only queries for a connection to a Redis Cluster replica node."),
    spec!("readwrite", cluster::readwrite, 1, ["loading", "stale", "fast"], 0, 0, 0, ["@fast", "@connection"],
          "cluster", "Enables read-write queries for a connection to a Redis Cluster replica node."),
    spec!("asking", cluster::asking, 1, ["fast"], 0, 0, 0, ["@fast", "@connection"], "cluster",
          "Signals that a cluster client is following an -ASK redirect."),
    spec!("cluster", cluster::parse, -2, [], 0, 0, 0, ["@slow"], "cluster",
          "A container for Redis Cluster commands.",
          ["cluster|myid", "cluster|info", "cluster|keyslot", "cluster|slots", "cluster|shards",
           "cluster|nodes", "cluster|countkeysinslot", "cluster|getkeysinslot",
           "cluster|setslot", "cluster|help"]),
    spec!("role", server::role, 1, ["noscript", "loading", "stale", "fast"], 0, 0, 0,
          ["@admin", "@fast", "@dangerous"], "server",
          "Returns the replication role."),
    // server
    spec!("acl", acl::acl, -2, [], 0, 0, 0, ["@slow"], "server",
          "A container for Access List Control commands.",
          ["acl|setuser", "acl|getuser", "acl|deluser", "acl|list", "acl|users", "acl|whoami",
           "acl|cat", "acl|log", "acl|load", "acl|save", "acl|genpass", "acl|help"]),
    spec!("command", server::command, -1, ["loading", "stale"], 0, 0, 0, ["@slow", "@connection"], "server",
          "Returns detailed information about all commands.",
          ["command|count", "command|info", "command|docs", "command|list", "command|getkeys",
           "command|help"]),
    spec!("info", server::info, -1, ["loading", "stale"], 0, 0, 0, ["@slow", "@dangerous"], "server",
          "Returns information and statistics about the server."),
    spec!("config", server::config, -2, [], 0, 0, 0, ["@slow"], "server",
          "A container for server configuration commands.",
          ["config|get", "config|set", "config|resetstat", "config|help"]),
    spec!("slowlog", server::slowlog, -2, ["admin", "loading", "stale"], 0, 0, 0,
          ["@admin", "@slow", "@dangerous"], "server",
          "A container for slow log commands.",
          ["slowlog|get", "slowlog|len", "slowlog|reset", "slowlog|help"]),
    spec!("monitor", server::monitor, 1, ["admin", "noscript", "loading", "stale"], 0, 0, 0,
          ["@admin", "@slow", "@dangerous"], "server",
          "Listens for all requests received by the server in real-time."),
    // transactions
    spec!("multi", transaction::bare, 1, ["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0,
          ["@fast", "@transaction"], "transactions", "Starts a transaction."),
    spec!("exec", transaction::bare, 1, ["noscript", "loading", "stale", "skip_slowlog"], 0, 0, 0,
          ["@slow", "@transaction"], "transactions", "Executes all commands in a transaction."),
    spec!("discard", transaction::bare, 1, ["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0,
          ["@fast", "@transaction"], "transactions", "Discards a transaction."),
    spec!("watch", transaction::watch, -2, ["noscript", "loading", "stale", "fast", "allow_busy"], 1, -1, 1,
          ["@fast", "@transaction"], "transactions",
          "Monitors changes to keys to determine the execution of a transaction."),
    spec!("unwatch", transaction::bare, 1, ["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0,
          ["@fast", "@transaction"], "transactions",
          "Forgets about watched keys of a transaction."),
    spec!("save", server::save, 1, ["admin", "noscript"], 0, 0, 0, ["@admin", "@slow", "@dangerous"], "server",
          "Synchronously saves the database(s) to disk."),
    spec!("bgsave", server::save, -1, ["admin", "noscript"], 0, 0, 0, ["@admin", "@slow", "@dangerous"], "server",
          "Asynchronously saves the database(s) to disk."),
    spec!("dbsize", keyspace::dbsize, 1, ["readonly", "fast"], 0, 0, 0, ["@keyspace", "@read", "@fast"], "server",
          "Returns the number of keys in the database."),
    spec!("flushall", keyspace::flush, -1, ["write"], 0, 0, 0, ["@keyspace", "@write", "@slow", "@dangerous"],
          "server", "Removes all keys from all databases."),
    spec!("flushdb", keyspace::flush, -1, ["write"], 0, 0, 0, ["@keyspace", "@write", "@slow", "@dangerous"],
          "server", "Remove all keys from the current database."),
    spec!("time", lifecycle::time, 1, ["loading", "stale", "fast"], 0, 0, 0, ["@fast"], "server",
          "Returns the server time."),
    spec!("lastsave", lifecycle::lastsave, 1, ["loading", "stale", "fast"], 0, 0, 0, ["@admin", "@fast", "@dangerous"],
          "server", "Returns the Unix timestamp of the last successful save to disk."),
    spec!("shutdown", lifecycle::shutdown, -1, ["admin", "noscript", "loading", "stale", "no_multi",
          "allow_busy"], 0, 0, 0, ["@admin", "@slow", "@dangerous"], "server",
          "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    spec!("debug", lifecycle::debug, -2, ["admin", "noscript", "loading", "stale"], 0, 0, 0,
          ["@admin", "@slow", "@dangerous"], "server", "A container for debugging commands."),
    spec!("wait", introspect::wait, 3, ["noscript"], 0, 0, 0, ["@slow", "@connection"], "generic",
          "Blocks until the asynchronous replication of all preceding write commands sent by the connection is \
          completed."),
    spec!("waitaof", introspect::waitaof, 4, ["noscript"], 0, 0, 0, ["@slow", "@connection"], "generic",
          "Blocks until all of the preceding write commands sent by the connection are written to the append-only \
          file of the master and/or replicas."),
    spec!("object", introspect::object, -2, [], 0, 0, 0, ["@slow"], "generic",
          "A container for object introspection commands.", ["encoding", "freq", "help", "idletime", "refcount"]),
    spec!("memory", introspect::memory, -2, [], 0, 0, 0, ["@slow"], "server",
          "A container for memory diagnostics commands.", ["help", "usage"]),
    // keyspace
    spec!("expire", expiry::expire, -3, ["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"], "generic",
          "Sets the expiration time of a key in seconds."),
    spec!("pexpire", expiry::expire, -3, ["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"], "generic",
          "Sets the expiration time of a key in milliseconds."),
    spec!("expireat", expiry::expire, -3, ["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"], "generic",
          "Sets the expiration time of a key to a Unix timestamp."),
    spec!("pexpireat", expiry::expire, -3, ["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"],
          "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("persist", expiry::persist, 2, ["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"], "generic",
          "Removes the expiration time of a key."),
    spec!("ttl", expiry::ttl, 2, ["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"], "generic",
          "Returns the expiration time in seconds of a key."),
    spec!("pttl", expiry::ttl, 2, ["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"], "generic",
          "Returns the expiration time in milliseconds of a key."),
    spec!("expiretime", expiry::ttl, 2, ["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"],
          "generic", "Returns the expiration time of a key as a Unix timestamp."),
    spec!("pexpiretime", expiry::ttl, 2, ["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"],
          "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec!("rename", keyspace::rename, 3, ["write"], 1, 2, 1, ["@keyspace", "@write", "@slow"], "generic",
          "Renames a key and overwrites the destination."),
    spec!("renamenx", keyspace::rename, 3, ["write", "fast"], 1, 2, 1, ["@keyspace", "@write", "@fast"], "generic",
          "Renames a key only when the target key name doesn't exist."),
    spec!("copy", keyspace::copy, -3, ["write", "denyoom"], 1, 2, 1, ["@keyspace", "@write", "@slow"], "generic",
          "Copies the value of a key to a new key."),
    spec!("touch", keyspace::touch, -2, ["readonly", "fast"], 1, -1, 1, ["@keyspace", "@read", "@fast"], "generic",
          "Returns the number of existing keys out of those specified after updating the time they were last \
          accessed."),
    spec!("del", keyspace::del, -2, ["write"], 1, -1, 1, ["@keyspace", "@write", "@slow"], "generic",
          "Deletes one or more keys."),
    spec!("unlink", keyspace::del, -2, ["write", "fast"], 1, -1, 1, ["@keyspace", "@write", "@fast"], "generic",
          "Asynchronously deletes one or more keys."),
    spec!("exists", keyspace::exists, -2, ["readonly", "fast"], 1, -1, 1, ["@keyspace", "@read", "@fast"],
          "generic", "Determines whether one or more keys exist."),
    spec!("type", keyspace::type_of, 2, ["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"], "generic",
          "Determines the type of value stored at a key."),
    spec!("keys", keyspace::keys, 2, ["readonly"], 0, 0, 0, ["@keyspace", "@read", "@slow", "@dangerous"],
          "generic", "Returns all key names that match a pattern."),
    spec!("scan", keyspace::scan, -2, ["readonly"], 0, 0, 0, ["@keyspace", "@read", "@slow"], "generic",
          "Iterates over the key names in the database."),
    spec!("randomkey", keyspace::randomkey, 1, ["readonly"], 0, 0, 0, ["@keyspace", "@read", "@slow"], "generic",
          "Returns a random key name from the database."),
    // strings
    spec!("dump", migrate::dump, 2, ["readonly"], 1, 1, 1, ["@keyspace", "@read", "@slow"], "generic",
          "Returns a serialized representation of the value stored at a key."),
    spec!("restore", migrate::restore, -4, ["write", "denyoom"], 1, 1, 1, ["@keyspace", "@write", "@slow",
          "@dangerous"], "generic", "Creates a key from the serialized representation of a value."),
    spec!("restore-asking", migrate::restore, -4, ["write", "denyoom", "asking"], 1, 1, 1, ["@keyspace", "@write",
          "@slow", "@dangerous"], "server",
          "An internal command for migrating keys in a cluster."),
    spec!("migrate", migrate::migrate, -6, ["write", "movablekeys"], 3, 3, 1, ["@keyspace", "@write", "@slow",
          "@dangerous"], "generic", "Atomically transfers a key from one Redis instance to another."),
    spec!("get", strings::get, 2, ["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"], "string",
          "Returns the string value of a key."),
    spec!("set", strings::set, -3, ["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"], "string",
          "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    spec!("getex", expiry::getex, -2, ["write", "fast"], 1, 1, 1, ["@write", "@string", "@fast"], "string",
          "Returns the string value of a key after setting its expiration time."),
    spec!("getdel", string_ops::getdel, 2, ["write", "fast"], 1, 1, 1, ["@write", "@string", "@fast"], "string",
          "Returns the string value of a key after deleting the key."),
    spec!("getset", string_ops::getset, 3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"],
          "string", "Returns the previous string value of a key after setting it to a new value."),
    spec!("setnx", string_ops::setnx, 3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"],
          "string", "Set the string value of a key only when the key doesn't exist."),
    spec!("setex", string_ops::setex, 4, ["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"], "string",
          "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    spec!("psetex", string_ops::setex, 4, ["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"], "string",
          "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't \
          exist."),
    spec!("getrange", string_ops::getrange, 4, ["readonly"], 1, 1, 1, ["@read", "@string", "@slow"], "string",
          "Returns a substring of the string stored at a key."),
    spec!("setrange", string_ops::setrange, 4, ["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"],
          "string", "Overwrites a part of a string value with another by an offset. Creates the key if it \
          doesn't exist."),
    spec!("append", string_ops::append, 3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"],
          "string", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec!("strlen", string_ops::strlen, 2, ["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"], "string",
          "Returns the length of a string value."),
    spec!("msetnx", string_ops::msetnx, -3, ["write", "denyoom"], 1, -1, 2, ["@write", "@string", "@slow"],
          "string", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    spec!("incrbyfloat", string_ops::incrbyfloat, 3, ["write", "denyoom", "fast"], 1, 1, 1,
          ["@write", "@string", "@fast"], "string",
          "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't \
          exist."),
    spec!("mget", strings::mget, -2, ["readonly", "fast"], 1, -1, 1, ["@read", "@string", "@fast"], "string",
          "Atomically returns the string values of one or more keys."),
    spec!("mset", strings::mset, -3, ["write", "denyoom"], 1, -1, 2, ["@write", "@string", "@slow"], "string",
          "Atomically creates or modifies the string values of one or more keys."),
    spec!("incr", strings::incr, 2, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"],
          "string", "Increments the integer value of a key by one."),
    spec!("incrby", strings::incr, 3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"],
          "string", "Increments the integer value of a key by a number."),
    spec!("decr", strings::incr, 2, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"],
          "string", "Decrements the integer value of a key by one."),
    spec!("decrby", strings::incr, 3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"],
          "string", "Decrements a number from the integer value of a key."),
    // hashes
    spec!("hset", collections::hset, -4, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@hash", "@fast"], "hash",
          "Creates or modifies the value of a field in a hash."),
    spec!("hmset", collections::hset, -4, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@hash", "@fast"], "hash",
          "Sets the values of multiple fields."),
    spec!("hget", collections::hget, 3, ["readonly", "fast"], 1, 1, 1, ["@read", "@hash", "@fast"], "hash",
          "Returns the value of a field in a hash."),
    spec!("hmget", collections::hmget, -3, ["readonly", "fast"], 1, 1, 1, ["@read", "@hash", "@fast"], "hash",
          "Returns the values of all fields in a hash."),
    spec!("hexists", collections::hexists, 3, ["readonly", "fast"], 1, 1, 1, ["@read", "@hash", "@fast"], "hash",
          "Determines whether a field exists in a hash."),
    spec!("hgetall", collections::hread, 2, ["readonly"], 1, 1, 1, ["@read", "@hash", "@slow"], "hash",
          "Returns all fields and values in a hash."),
    spec!("hkeys", collections::hread, 2, ["readonly"], 1, 1, 1, ["@read", "@hash", "@slow"], "hash",
          "Returns all fields in a hash."),
    spec!("hvals", collections::hread, 2, ["readonly"], 1, 1, 1, ["@read", "@hash", "@slow"], "hash",
          "Returns all values in a hash."),
    spec!("hlen", collections::hread, 2, ["readonly", "fast"], 1, 1, 1, ["@read", "@hash", "@fast"], "hash",
          "Returns the number of fields in a hash."),
    spec!("hdel", collections::hdel, -3, ["write", "fast"], 1, 1, 1, ["@write", "@hash", "@fast"], "hash",
          "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    // lists
    spec!("lpush", collections::push, -3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@list", "@fast"], "list",
          "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("rpush", collections::push, -3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@list", "@fast"], "list",
          "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("lpushx", collections::push, -3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@list", "@fast"], "list",
          "Prepends one or more elements to a list only when the list exists."),
    spec!("rpushx", collections::push, -3, ["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@list", "@fast"], "list",
          "Appends an element to a list only when the list exists."),
    spec!("lpop", collections::pop, -2, ["write", "fast"], 1, 1, 1, ["@write", "@list", "@fast"], "list",
          "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    spec!("rpop", collections::pop, -2, ["write", "fast"], 1, 1, 1, ["@write", "@list", "@fast"], "list",
          "Returns and removes the last elements of the list. Deletes the list if the last element was popped."),
    spec!("lrange", collections::lrange, 4, ["readonly"], 1, 1, 1, ["@read", "@list", "@slow"], "list",
          "Returns a range of elements from a list."),
    spec!("llen", collections::llen, 2, ["readonly", "fast"], 1, 1, 1, ["@read", "@list", "@fast"], "list",
          "Returns the length of a list."),
    spec!("lindex", collections::lindex, 3, ["readonly"], 1, 1, 1, ["@read", "@list", "@slow"], "list",
          "Returns an element from a list by its index."),
    // RedisAI
    spec!("ai.tensorset", tensor::tensorset, -4, ["write", "denyoom", "module"], 1, 1, 1, ["@write"], "module",
          "Stores a tensor as the value of a key."),
    spec!("ai.tensorget", tensor::tensorget, -2, ["readonly", "module"], 1, 1, 1, ["@read"], "module",
          "Returns a tensor stored as a key's value."),
    spec!("ai.modelstore", model::modelstore, -6, ["write", "denyoom", "module"], 1, 1, 1, ["@write"], "module",
          "Stores a model as the value of a key."),
    spec!("ai.modelset", model::modelset, -4, ["write", "denyoom", "module"], 1, 1, 1, ["@write"], "module",
          "Stores a model as the value of a key (deprecated)."),
    spec!("ai.modelget", model::modelget, -2, ["readonly", "module"], 1, 1, 1, ["@read"], "module",
          "Returns a model's metadata and blob."),
    spec!("ai.modeldel", model::modeldel, 2, ["write", "module"], 1, 1, 1, ["@write"], "module",
          "Deletes a model."),
    spec!("ai.modelexecute", model::modelexecute, -8, ["write", "denyoom", "module", "movablekeys"], 0, 0, 0,
          ["@write"], "module", "Runs a model."),
    spec!("ai.modelrun", model::modelrun, -6, ["write", "denyoom", "module", "movablekeys"], 0, 0, 0, ["@write"],
          "module", "Runs a model (deprecated)."),
    spec!("ai._modelscan", model::modelscan, 1, ["readonly", "module"], 0, 0, 0, ["@read"], "module",
          "Lists stored models."),
    spec!("ai.dagexecute", dag::dag, -1, ["write", "denyoom", "module", "movablekeys"], 0, 0, 0,
          ["@write"], "module", "Runs a directed acyclic graph of AI commands."),
    spec!("ai.dagexecute_ro", dag::dag, -1, ["readonly", "module", "movablekeys"], 0, 0, 0, ["@read"],
          "module", "Runs a read-only directed acyclic graph of AI commands."),
    spec!("ai.dagrun", dag::dag, -4, ["write", "denyoom", "module", "movablekeys"], 0, 0, 0, ["@write"],
          "module", "Runs a directed acyclic graph of AI commands (deprecated)."),
    spec!("ai.dagrun_ro", dag::dag, -4, ["readonly", "module", "movablekeys"], 0, 0, 0, ["@read"],
          "module", "Runs a read-only directed acyclic graph of AI commands (deprecated)."),
    spec!("ai.scriptstore", script::scriptstore, -8, ["write", "denyoom", "module"], 1, 1, 1, ["@write"], "module",
          "Stores a TorchScript script as the value of a key."),
    spec!("ai.scriptset", script::scriptset, -5, ["write", "denyoom", "module"], 1, 1, 1, ["@write"], "module",
          "Stores a TorchScript script as the value of a key (deprecated)."),
    spec!("ai.scriptget", script::scriptget, -2, ["readonly", "module"], 1, 1, 1, ["@read"], "module",
          "Returns a script's metadata and source."),
    spec!("ai.scriptdel", script::scriptdel, 2, ["write", "module"], 1, 1, 1, ["@write"], "module",
          "Deletes a script."),
    spec!("ai.scriptexecute", script::scriptexecute, -1, ["write", "denyoom", "module", "movablekeys"], 0, 0, 0,
          ["@write"], "module", "Runs a function of a script."),
    spec!("ai.scriptrun", script::scriptrun, -1, ["write", "denyoom", "module", "movablekeys"], 0, 0, 0, ["@write"],
          "module", "Runs a function of a script (deprecated)."),
    spec!("ai._scriptscan", script::scriptscan, 1, ["readonly", "module"], 0, 0, 0, ["@read"], "module",
          "Lists stored scripts."),
    spec!("ai.info", model::ai_info, -2, ["readonly", "module"], 1, 1, 1, ["@read"], "module",
          "Returns execution statistics of a model or a script."),
    spec!("ai.config", ai_config::ai_config, -2, ["write", "module"], 0, 0, 0, ["@admin", "@slow", "@dangerous"], "module",
          "Sets configuration directives and loads backends at run time."),
];

/// One valid request for every registered command, as a user would type it: the registry's
/// tests parse each, and the server's tests run each through its handler. A new entry in
/// [`COMMANDS`] needs one here (a test fails until it has).
pub const EXAMPLES: &[&str] = &[
    "PING",
    "SAVE",
    "BGSAVE",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH k",
    "UNWATCH",
    "HSET h f v",
    "HMSET h f v g w",
    "HGET h f",
    "HMGET h f g",
    "HEXISTS h f",
    "HGETALL h",
    "HKEYS h",
    "HVALS h",
    "HLEN h",
    "HDEL h f",
    "LPUSH l a",
    "RPUSH l a b",
    "LPUSHX l a",
    "RPUSHX l a",
    "LPOP l",
    "RPOP l 2",
    "LRANGE l 0 -1",
    "LLEN l",
    "LINDEX l 0",
    "ECHO hi",
    "HELLO 3",
    "QUIT",
    "AUTH pw",
    "SELECT 0",
    "CLIENT ID",
    "READONLY",
    "READWRITE",
    "ASKING",
    "CLUSTER KEYSLOT k",
    "ROLE",
    "ACL WHOAMI",
    "COMMAND COUNT",
    "INFO server",
    "CONFIG GET maxclients",
    "SLOWLOG GET 5",
    "MONITOR",
    "DBSIZE",
    "FLUSHALL",
    "FLUSHDB ASYNC",
    "DEL k",
    "UNLINK k",
    "EXISTS k",
    "TYPE k",
    "KEYS *",
    "SCAN 0",
    "RANDOMKEY",
    "DUMP k",
    "RESTORE k 0 x",
    "RESTORE-ASKING k 0 x",
    "MIGRATE 127.0.0.1 1 nokey 0 100",
    "GET k",
    "SET k v",
    "MGET k",
    "MSET k v",
    "INCR n",
    "INCRBY n 2",
    "EXPIRE k 10 NX",
    "PEXPIRE k 100",
    "EXPIREAT k 1700000000",
    "PEXPIREAT k 1700000000000 GT",
    "PERSIST k",
    "TTL k",
    "PTTL k",
    "EXPIRETIME k",
    "PEXPIRETIME k",
    "GETEX k EX 10",
    "RENAME a b",
    "RENAMENX a b",
    "COPY a b REPLACE",
    "TOUCH a b",
    "GETDEL k",
    "GETSET k v",
    "SETNX k v",
    "SETEX k 10 v",
    "PSETEX k 100 v",
    "GETRANGE k 0 -1",
    "SETRANGE k 2 v",
    "APPEND k v",
    "STRLEN k",
    "MSETNX a 1 b 2",
    "INCRBYFLOAT k 1.5",
    "TIME",
    "LASTSAVE",
    "SHUTDOWN NOSAVE",
    "DEBUG SLEEP 0",
    "WAIT 0 0",
    "WAITAOF 0 0 0",
    "OBJECT ENCODING k",
    "MEMORY USAGE k",
    "DECR n",
    "DECRBY n 2",
    "AI.TENSORSET t FLOAT 2 VALUES 1 2",
    "AI.TENSORGET t META",
    "AI.MODELSTORE m TORCH CPU BLOB x",
    "AI.MODELSET m TORCH CPU BLOB x",
    "AI.MODELGET m META",
    "AI.MODELDEL m",
    "AI.MODELEXECUTE m INPUTS 1 t OUTPUTS 1 o",
    "AI.MODELRUN m INPUTS t OUTPUTS o",
    "AI._MODELSCAN",
    "AI.DAGEXECUTE LOAD 1 t |> AI.TENSORGET t VALUES",
    "AI.DAGEXECUTE_RO LOAD 1 t |> AI.TENSORGET t VALUES",
    "AI.DAGRUN LOAD 1 t |> AI.TENSORGET t VALUES",
    "AI.DAGRUN_RO LOAD 1 t |> AI.TENSORGET t VALUES",
    "AI.SCRIPTSTORE s CPU ENTRY_POINTS 1 f SOURCE x",
    "AI.SCRIPTSET s CPU SOURCE x",
    "AI.SCRIPTGET s META",
    "AI.SCRIPTDEL s",
    "AI.SCRIPTEXECUTE s f INPUTS 1 t OUTPUTS 1 o",
    "AI.SCRIPTRUN s f INPUTS t OUTPUTS o",
    "AI._SCRIPTSCAN",
    "AI.INFO m",
    "AI.CONFIG GET BACKENDSPATH",
];

/// Looks up a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    lookup_indexed(name).map(|(_, spec)| spec)
}

/// Looks up a command by name, case-insensitively, with its index in [`COMMANDS`].
pub fn lookup_indexed(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    static INDEX: OnceLock<HashMap<&'static [u8], usize, foldhash::fast::FixedState>> =
        OnceLock::new();
    let index = INDEX.get_or_init(|| {
        COMMANDS
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_bytes(), i))
            .collect()
    });
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (l, c) in lower.iter_mut().zip(name) {
        *l = c.to_ascii_lowercase();
    }
    index.get(&lower[..]).map(|&i| (i, &COMMANDS[i]))
}

/// Reads `n` keys after a count argument at `argv[i]`; returns the keys and the next index.
fn counted(argv: &[Bytes], i: usize) -> Result<(&[Bytes], usize), Error> {
    let n = argv
        .get(i)
        .and_then(|c| parse_i64(c))
        .filter(|n| *n >= 0)
        .ok_or(Error::Syntax)? as usize;
    let end = i + 1 + n;
    if end > argv.len() {
        return Err(Error::Syntax);
    }
    Ok((&argv[i + 1..end], end))
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// The KEYS names and the INPUTS / OUTPUTS names of AI.MODELEXECUTE / AI.SCRIPTEXECUTE's
/// scopes, read from `argv[start..]` (ARGS values are not keys).
fn scriptexecute_scopes(argv: &[Bytes], start: usize) -> Result<(Vec<&Bytes>, Vec<&Bytes>), Error> {
    let (mut declared, mut tensors) = (Vec::new(), Vec::new());
    let mut i = start;
    while i < argv.len() {
        let a = &argv[i];
        if eq(a, "INPUTS") || eq(a, "OUTPUTS") || eq(a, "KEYS") {
            let (ks, next) = counted(argv, i + 1)?;
            if eq(a, "KEYS") {
                declared.extend(ks);
            } else {
                tensors.extend(ks);
            }
            i = next;
        } else if eq(a, "ARGS") {
            let (_, next) = counted(argv, i + 1)?;
            i = next;
        } else if eq(a, "TIMEOUT") {
            i += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    Ok((declared, tensors))
}

/// AI.SCRIPTRUN's input and output keys after the function, as its parser reads them:
/// `INPUTS` and `OUTPUTS` open their section, `$` marks the variadic inputs (not a key), and
/// `TIMEOUT` takes the next argument as its value wherever it stands.
fn scriptrun_keys(args: &[Bytes]) -> Vec<&Bytes> {
    let mut keys = Vec::new();
    let mut in_section = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if eq(a, "INPUTS") || eq(a, "OUTPUTS") {
            in_section = true;
        } else if eq(a, "TIMEOUT") {
            it.next();
        } else if in_section && a.as_ref() != b"$" {
            keys.push(a);
        }
    }
    keys
}

/// True for a DAG op that names a model or script key: AI.MODELEXECUTE, AI.MODELRUN,
/// AI.SCRIPTEXECUTE, AI.SCRIPTRUN.
pub fn is_keyed_op(op: &[u8]) -> bool {
    [
        "AI.MODELEXECUTE",
        "AI.MODELRUN",
        "AI.SCRIPTEXECUTE",
        "AI.SCRIPTRUN",
    ]
    .iter()
    .any(|p| op.eq_ignore_ascii_case(p.as_bytes()))
}

/// Finds the keys of a `movablekeys` command: model/script keys and the tensor keys named by
/// INPUTS, OUTPUTS, KEYS, LOAD, PERSIST and ROUTING, including those inside a DAG's ops.
pub fn movable_keys<'a>(name: &str, argv: &'a [Bytes]) -> Result<Vec<&'a Bytes>, Error> {
    let mut keys = Vec::new();
    // Too short to name a script and a function: no keys, and the parser answers the arity.
    if matches!(name, "ai.scriptexecute" | "ai.scriptrun") && argv.len() < 3 {
        return Ok(keys);
    }
    match name {
        "migrate" => {
            // The key argument, or (when it is empty) everything after KEYS.
            match argv.get(3) {
                Some(k) if !k.is_empty() => keys.push(k),
                _ => {
                    if let Some(at) = argv.iter().skip(6).position(|a| eq(a, "KEYS")) {
                        keys.extend(argv[6 + at + 1..].iter());
                    }
                }
            }
        }
        "ai.modelexecute" | "ai.scriptexecute" => {
            let key = argv.get(1).ok_or(Error::Syntax)?;
            keys.push(key);
            let start = if name == "ai.modelexecute" { 2 } else { 3 };
            let (declared, tensors) = scriptexecute_scopes(argv, start)?;
            keys.extend(declared);
            keys.extend(tensors);
        }
        "ai.modelrun" => {
            // As `parse_modelrun` reads it: key [TIMEOUT t] INPUTS in... [OUTPUTS out...],
            // every argument after INPUTS but the first OUTPUTS being a key.
            keys.push(argv.get(1).ok_or(Error::Syntax)?);
            let mut i = 2;
            if argv.get(i).is_some_and(|a| eq(a, "TIMEOUT")) {
                i += 2;
            }
            if !argv.get(i).is_some_and(|a| eq(a, "INPUTS")) {
                return Err(Error::Syntax);
            }
            let mut outputs_seen = false;
            for a in argv.iter().skip(i + 1) {
                if !outputs_seen && eq(a, "OUTPUTS") {
                    outputs_seen = true;
                } else {
                    keys.push(a);
                }
            }
        }
        "ai.scriptrun" => {
            keys.push(argv.get(1).ok_or(Error::Syntax)?);
            keys.extend(scriptrun_keys(&argv[3..]));
        }
        "ai.dagexecute" | "ai.dagexecute_ro" | "ai.dagrun" | "ai.dagrun_ro" => {
            let mut i = 1;
            while i < argv.len() && argv[i].as_ref() != b"|>" {
                let a = &argv[i];
                if eq(a, "LOAD") || eq(a, "PERSIST") || eq(a, "KEYS") {
                    let (ks, next) = counted(argv, i + 1)?;
                    keys.extend(ks);
                    i = next;
                } else if eq(a, "ROUTING") {
                    keys.push(argv.get(i + 1).ok_or(Error::Syntax)?);
                    i += 2;
                } else if eq(a, "TIMEOUT") {
                    i += 2;
                } else {
                    return Err(Error::Syntax);
                }
            }
            // Model and script keys of the ops (TIMEOUT as the last argument steps past the
            // end).
            for w in argv[i.min(argv.len())..].windows(3) {
                if w[0].as_ref() == b"|>" && is_keyed_op(&w[1]) {
                    keys.push(&w[2]);
                }
            }
            // The KEYS a script op declares (the keys its script may touch); its INPUTS and
            // OUTPUTS name DAG tensors, not keys.
            let ops = argv[i.min(argv.len())..].split(|a| a.as_ref() == b"|>");
            for op in ops.filter(|op| op.first().is_some_and(|n| eq(n, "AI.SCRIPTEXECUTE"))) {
                keys.extend(scriptexecute_scopes(op, 3)?.0);
            }
        }
        _ => return Err(Error::Syntax),
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn keys(s: &str) -> Vec<String> {
        let a = argv(s);
        let spec = lookup(&a[0]).unwrap();
        spec.keys(&a)
            .unwrap()
            .into_iter()
            .map(|k| String::from_utf8(k.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_dag_ending_in_timeout_has_its_keys_found_without_panicking() {
        // Found by the `command` fuzz target: TIMEOUT as the last argument.
        assert_eq!(keys("AI.DAGEXECUTE LOAD 1 x TIMEOUT"), vec!["x"]);
        assert_eq!(keys("AI.DAGEXECUTE_RO KEYS 1 y TIMEOUT"), vec!["y"]);
    }

    #[test]
    fn names_are_unique_lowercase_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert_eq!(c.name, c.name.to_lowercase());
            assert!(!c.summary.is_empty());
            assert!(c.arity != 0);
            assert!(
                !(c.is_write() && c.flags.contains(&"readonly")),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn every_registered_command_has_an_example_that_parses() {
        let mut covered = std::collections::HashSet::new();
        for ex in EXAMPLES {
            let a = argv(ex);
            let spec = lookup(&a[0]).unwrap_or_else(|| panic!("{ex}: not registered"));
            covered.insert(spec.name);
            if let Err(e) = crate::Command::parse(a) {
                panic!("{ex}: {}", e.wire_text());
            }
        }
        for c in COMMANDS {
            assert!(
                covered.contains(c.name),
                "{} has no example in EXAMPLES",
                c.name
            );
        }
    }

    #[test]
    fn redisai_key_positions() {
        for n in [
            "ai.tensorset",
            "ai.tensorget",
            "ai.modelstore",
            "ai.modelget",
            "ai.modeldel",
            "ai.info",
        ] {
            let c = lookup(n.as_bytes()).unwrap();
            assert_eq!((c.first_key, c.last_key, c.step), (1, 1, 1), "{n}");
        }
        for n in ["ai.modelexecute", "ai.dagexecute", "ai.dagexecute_ro"] {
            assert!(lookup(n.as_bytes()).unwrap().has_movable_keys(), "{n}");
        }
        let c = lookup(b"AI.CONFIG").unwrap();
        assert_eq!(c.first_key, 0);
    }

    #[test]
    fn arity() {
        let get = lookup(b"GET").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
    }

    #[test]
    fn fixed_key_positions() {
        assert_eq!(keys("MSET a 1 b 2"), ["a", "b"]);
        assert_eq!(keys("DEL a b c"), ["a", "b", "c"]);
        assert_eq!(keys("AI.TENSORSET t FLOAT 1 VALUES 1"), ["t"]);
        assert!(keys("PING").is_empty());
    }

    #[test]
    fn movable_keys_of_ai_commands() {
        assert_eq!(
            keys("AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c TIMEOUT 5"),
            ["m", "a", "b", "c"]
        );
        assert_eq!(
            keys("AI.SCRIPTRUN s f INPUTS a $ b c OUTPUTS o TIMEOUT 5 p"),
            ["s", "a", "b", "c", "o", "p"],
            "`$` is no key; TIMEOUT takes its value and keeps the section"
        );
        assert_eq!(
            keys("AI.SCRIPTRUN s f TIMEOUT 5 INPUTS a OUTPUTS o"),
            ["s", "a", "o"]
        );
        assert_eq!(
            keys(
                "AI.DAGEXECUTE ROUTING r |> AI.SCRIPTEXECUTE s f KEYS 2 k1 k2 INPUTS 1 t OUTPUTS 1 u |> AI.TENSORGET u META"
            ),
            ["r", "s", "k1", "k2"],
            "a DAG script op's KEYS are keys, its tensors are not"
        );
        let a = argv("AI.SCRIPTEXECUTE s fn KEYS 1 k INPUTS 1 a ARGS 2 x y OUTPUTS 1 o");
        let ks: Vec<&[u8]> = movable_keys("ai.scriptexecute", &a)
            .unwrap()
            .into_iter()
            .map(|k| &k[..])
            .collect();
        assert_eq!(ks, [&b"s"[..], b"k", b"a", b"o"]);
        assert_eq!(
            keys("AI.MODELRUN m INPUTS a b OUTPUTS c"),
            ["m", "a", "b", "c"]
        );
        // Every argument the parser takes as an input or output is a key, whatever it says.
        assert_eq!(
            keys("AI.MODELRUN m INPUTS a TIMEOUT s OUTPUTS o"),
            ["m", "a", "TIMEOUT", "s", "o"]
        );
        assert_eq!(
            keys("AI.MODELRUN m TIMEOUT 5 INPUTS a OUTPUTS ARGS v $"),
            ["m", "a", "ARGS", "v", "$"]
        );
        assert_eq!(
            keys("AI.DAGEXECUTE LOAD 1 a PERSIST 1 b |> AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b"),
            ["a", "b", "m"]
        );
        assert_eq!(
            keys("AI.DAGEXECUTE_RO ROUTING r |> AI.TENSORSET t FLOAT 1 VALUES 1"),
            ["r"]
        );
        let a = argv("AI.MODELEXECUTE m INPUTS 5 a");
        assert!(lookup(&a[0]).unwrap().keys(&a).is_err());
    }
}
