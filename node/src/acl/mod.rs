//! Access control, Redis 7's way: users with passwords, command categories and key patterns
//! ([`User`]), the registry of users ([`Acl`]), the per-request check ([`Acl::check`]) and the
//! denial log ([`log`]).
//!
//! Users come from the configuration (`requirepass` sets the default user's password,
//! `aclfile` holds `user name rules...` lines) and from ACL SETUSER/DELUSER. In a cluster they
//! are one cluster-wide setting: SETUSER and DELUSER write the user's description to the
//! metadata Raft group (key `acl:user:<name>`, an empty value for a deleted user) and every
//! node applies those records over its configured users ([`Acl::apply_cluster`]).
//!
//! Connections hold the user they authenticated as; a change to the users bumps
//! [`Acl::generation`], and a connection re-reads its user before its next command (a deleted
//! user's connections are closed, as Redis does).

pub mod catalog;
pub mod log;
pub mod user;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use shardai_protocol::{Error, table::CommandSpec};

pub use self::user::User;
use self::{catalog::Catalog, log::Reason};

/// The metadata key prefix of cluster-wide users.
pub const RECORD_PREFIX: &str = "acl:user:";

/// The users and the denial log.
pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    /// What `users` is built from, changed and rebuilt under this one lock so that no
    /// rebuild from older sources lands after a newer one.
    sources: Mutex<Sources>,
    generation: AtomicU64,
    log: Mutex<log::Book>,
    file: Option<PathBuf>,
    requirepass: Option<String>,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Acl")
            .field("users", &self.users.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What the users are built from.
#[derive(Debug, Default)]
struct Sources {
    /// Users from the configuration and ACL SETUSER in standalone mode.
    base: BTreeMap<String, Arc<User>>,
    /// Cluster-wide records last applied: name to description, empty for deleted.
    cluster: BTreeMap<String, String>,
}

/// A refused request: what the client is told and what the log keeps.
#[derive(Debug)]
pub struct Denial {
    /// The reply.
    pub error: Error,
    reason: Reason,
    object: String,
}

impl Acl {
    /// The users of a server started with `requirepass` and `aclfile` (read now; a file that
    /// cannot be read or parsed is an error, as in Redis).
    pub fn new(requirepass: Option<String>, file: Option<PathBuf>) -> Result<Acl, String> {
        let acl = Acl {
            users: RwLock::new(BTreeMap::new()),
            sources: Mutex::new(Sources::default()),
            generation: AtomicU64::new(0),
            log: Mutex::new(log::Book::default()),
            file,
            requirepass,
        };
        let base = acl.configured_users()?;
        {
            let mut src = acl.sources.lock();
            src.base = base;
            acl.rebuild(&src);
        }
        Ok(acl)
    }

    /// The configured users: the default user (with `requirepass`), then the ACL file's.
    fn configured_users(&self) -> Result<BTreeMap<String, Arc<User>>, String> {
        let mut users = BTreeMap::new();
        users.insert(
            "default".to_string(),
            Arc::new(User::default_user(self.requirepass.as_deref())),
        );
        if let Some(path) = &self.file {
            for u in read_file(path)? {
                users.insert(u.name.clone(), Arc::new(u));
            }
        }
        Ok(users)
    }

    /// Rebuilds `users` from `src` (whose lock the caller holds).
    fn rebuild(&self, src: &Sources) {
        let mut users = src.base.clone();
        for (name, described) in src.cluster.iter() {
            if described.is_empty() {
                if name != "default" {
                    users.remove(name);
                }
                continue;
            }
            match User::parse(name, described) {
                Ok(u) => {
                    users.insert(name.clone(), Arc::new(u));
                }
                Err((rule, why)) => tracing::warn!(
                    user = %name, %rule, why,
                    "the cluster's record of a user cannot be read; keeping this node's"
                ),
            }
        }
        *self.users.write() = users;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Bumped by every change to the users.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// The user a new connection starts as: the default user when it needs no password
    /// (and is enabled), else none (the connection must AUTH); with the generation it was
    /// read at (read first, so that a later change is never missed).
    pub fn initial_user(&self) -> (Option<Arc<User>>, u64) {
        let generation = self.generation();
        let u = self.user("default").filter(|u| u.enabled && u.nopass);
        (u, generation)
    }

    /// True when the default user needs no password (protected mode's condition).
    pub fn default_is_open(&self) -> bool {
        self.user("default").is_some_and(|u| u.nopass)
    }

    /// AUTH: the user that `pass` authenticates (`default` for `AUTH password`), with the
    /// generation it was read at (read first, so that a later change is never missed).
    pub fn authenticate(&self, user: &str, pass: &[u8]) -> Option<(Arc<User>, u64)> {
        let generation = self.generation();
        let u = self.user(user).filter(|u| u.password_ok(pass))?;
        Some((u, generation))
    }

    /// Replaces (or creates) a user in this node's own users (standalone mode).
    pub fn put_local(&self, user: User) {
        let mut src = self.sources.lock();
        src.base.insert(user.name.clone(), Arc::new(user));
        self.rebuild(&src);
    }

    /// Deletes users from this node's own users; returns how many existed.
    pub fn delete_local(&self, names: &[String]) -> usize {
        let mut src = self.sources.lock();
        let n = names
            .iter()
            .filter(|name| src.base.remove(*name).is_some())
            .count();
        self.rebuild(&src);
        n
    }

    /// Applies the cluster's records (name to description, empty for deleted) over the
    /// configured users, if they changed.
    pub fn apply_cluster(&self, records: BTreeMap<String, String>) {
        let mut src = self.sources.lock();
        if src.cluster == records {
            return;
        }
        src.cluster = records;
        self.rebuild(&src);
    }

    /// The ACL file, if one is configured.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// ACL LOAD: re-reads the configuration's users (all or nothing) and returns them.
    pub fn load(&self) -> Result<Vec<Arc<User>>, String> {
        let users = self.configured_users()?;
        let list = users.values().cloned().collect();
        let mut src = self.sources.lock();
        src.base = users;
        self.rebuild(&src);
        Ok(list)
    }

    /// The ACL file's text for ACL SAVE: every user as a `user name rules` line.
    pub fn file_text(&self) -> String {
        self.users()
            .iter()
            .map(|u| format!("user {} {}\n", u.name, u.describe()))
            .collect()
    }

    /// Checks that `user` may run the request (`index` is the command's index in the command
    /// table) and touch each of its keys.
    pub fn check(
        &self,
        user: &User,
        index: usize,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Result<(), Denial> {
        // AUTH, HELLO and QUIT are for everyone, as in Redis.
        if user.unrestricted() || spec.flags.contains(&"no_auth") {
            return Ok(());
        }
        let catalog = Catalog::get();
        let id = catalog.request_id(index, spec, argv);
        if !user.may_run(id) {
            let cmd = catalog.entries[id].name.clone();
            return Err(Denial {
                error: Error::NoPermCommand {
                    user: user.name.clone(),
                    cmd: cmd.clone(),
                },
                reason: Reason::Command,
                object: cmd,
            });
        }
        let keys = spec.keys(argv).map_err(|error| Denial {
            error,
            reason: Reason::Key,
            object: String::new(),
        })?;
        if let Some(k) = keys.into_iter().find(|k| !user.may_access(k)) {
            return Err(Denial {
                error: Error::NoPermKey,
                reason: Reason::Key,
                object: String::from_utf8_lossy(k).into_owned(),
            });
        }
        Ok(())
    }

    /// Logs a denial (`client` is the CLIENT LIST line of the connection).
    pub fn log_denial(&self, d: &Denial, username: &str, client: String) {
        if d.object.is_empty() {
            return;
        }
        self.log.lock().record(
            d.reason,
            d.object.clone(),
            username.to_string(),
            client,
            shardai_engine::now_ms(),
        );
    }

    /// Logs a failed AUTH.
    pub fn log_auth_failure(&self, username: &str, client: String) {
        self.log.lock().record(
            Reason::Auth,
            "AUTH".into(),
            username.to_string(),
            client,
            shardai_engine::now_ms(),
        );
    }

    /// The newest `n` log entries.
    pub fn log_entries(&self, n: usize) -> Vec<log::Entry> {
        self.log.lock().newest(n)
    }

    /// ACL LOG RESET.
    pub fn reset_log(&self) {
        self.log.lock().reset();
    }
}

/// Reads an ACL file: `user <name> <rules...>` lines, `#` comments. Any bad line fails the
/// whole file, naming the line.
pub fn read_file(path: &Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the ACL file {}: {e}", path.display()))?;
    parse_file(&text).map_err(|e| format!("{}:{e}", path.display()))
}

/// Parses an ACL file's text (see [`read_file`]); errors start with the line number.
pub fn parse_file(text: &str) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let (Some("user"), Some(name)) = (words.next(), words.next()) else {
            return Err(format!(
                "{}: should start with user keyword and a user name",
                n + 1
            ));
        };
        if users.iter().any(|u| u.name == name) {
            return Err(format!("{}: duplicate user '{name}' found", n + 1));
        }
        let rules: Vec<&str> = words.collect();
        let user = User::new(name).with_rules(&rules).map_err(|(rule, why)| {
            format!("{}: error in user declaration '{rule}': {why}", n + 1)
        })?;
        users.push(user);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardai_protocol::table;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_string())).collect()
    }

    fn check(acl: &Acl, user: &User, req: &str) -> Result<(), String> {
        let a = argv(req);
        let (i, spec) = table::lookup_indexed(&a[0]).unwrap();
        acl.check(user, i, spec, &a)
            .map_err(|d| d.error.wire_text())
    }

    #[test]
    fn requirepass_closes_the_default_user() {
        let open = Acl::new(None, None).unwrap();
        assert!(open.initial_user().0.is_some() && open.default_is_open());
        let closed = Acl::new(Some("pw".into()), None).unwrap();
        assert!(closed.initial_user().0.is_none() && !closed.default_is_open());
        assert!(closed.authenticate("default", b"pw").is_some());
        assert!(closed.authenticate("default", b"no").is_none());
        assert!(closed.authenticate("nobody", b"pw").is_none());
    }

    #[test]
    fn commands_and_keys_are_checked_dag_keys_included() {
        let acl = Acl::new(None, None).unwrap();
        let u = User::new("alice")
            .with_rules(&["on", ">pw", "~t:*", "+@ai", "-ai.config", "+get"])
            .unwrap();
        assert_eq!(check(&acl, &u, "GET t:1"), Ok(()));
        assert_eq!(
            check(&acl, &u, "SET t:1 v"),
            Err("NOPERM User alice has no permissions to run the 'set' command".into())
        );
        assert_eq!(
            check(&acl, &u, "GET other"),
            Err("NOPERM No permissions to access a key".into())
        );
        assert_eq!(
            check(
                &acl,
                &u,
                "AI.DAGEXECUTE LOAD 1 t:in PERSIST 1 t:out |> AI.MODELEXECUTE t:m INPUTS 1 t:in OUTPUTS 1 t:out"
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &acl,
                &u,
                "AI.DAGEXECUTE LOAD 1 t:in PERSIST 1 secret |> AI.TENSORGET t:in VALUES"
            ),
            Err("NOPERM No permissions to access a key".into())
        );
        assert_eq!(
            check(
                &acl,
                &u,
                "AI.DAGEXECUTE LOAD 1 t:in |> AI.MODELEXECUTE other:m INPUTS 1 t:in OUTPUTS 1 x"
            ),
            Err("NOPERM No permissions to access a key".into())
        );
        assert_eq!(
            check(&acl, &u, "AI.CONFIG LOADBACKEND TORCH x.so"),
            Err("NOPERM User alice has no permissions to run the 'ai.config' command".into())
        );
        let admin_less = User::new("ops")
            .with_rules(&["on", "nopass", "allkeys", "+@all", "-@admin"])
            .unwrap();
        assert_eq!(
            check(&acl, &admin_less, "CLUSTER SHARDAI-SETTOPOLOGY {}"),
            Err(
                "NOPERM User ops has no permissions to run the 'cluster|shardai-settopology' command"
                    .into()
            )
        );
        assert_eq!(check(&acl, &admin_less, "CLUSTER SLOTS"), Ok(()));
        let nothing = User::new("n").with_rules(&["on", "nopass"]).unwrap();
        assert_eq!(check(&acl, &nothing, "AUTH n x"), Ok(()));
        assert_eq!(check(&acl, &nothing, "HELLO 3"), Ok(()));
        assert!(check(&acl, &nothing, "PING").is_err());
    }

    #[test]
    fn cluster_records_override_and_delete() {
        let acl = Acl::new(Some("pw".into()), None).unwrap();
        let g = acl.generation();
        let mut records = BTreeMap::new();
        records.insert("bob".to_string(), "on nopass ~* +@read".to_string());
        acl.apply_cluster(records.clone());
        assert!(acl.generation() > g);
        assert!(acl.authenticate("bob", b"x").is_some());
        let g = acl.generation();
        acl.apply_cluster(records.clone());
        assert_eq!(acl.generation(), g, "no change, no new generation");
        records.insert("bob".to_string(), String::new());
        acl.apply_cluster(records);
        assert!(acl.user("bob").is_none());
        assert!(acl.authenticate("default", b"pw").is_some());
    }

    #[test]
    fn acl_files_are_all_or_nothing() {
        let users = parse_file("# team\nuser alice on >a ~* +@all\n\nuser bob off\n").unwrap();
        assert_eq!(users.len(), 2);
        assert!(users[0].password_ok(b"a"));
        let err = parse_file("user alice on\nuser bob on +nosuch\n").unwrap_err();
        assert!(err.starts_with("2: "), "{err}");
        assert!(parse_file("alice on\n").is_err());
        assert!(parse_file("user a on\nuser a off\n").is_err());
    }
}
