//! AUTH, HELLO's AUTH and the ACL family. In a cluster, ACL SETUSER/DELUSER/LOAD write the
//! users to the metadata group, so that they hold on every node; standalone, they change
//! this node's users.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use shardai_protocol::{
    Error, Reply,
    command::{AclCmd, AclLog, Hello},
};
use tracing::info;

use crate::{
    acl::{Acl, RECORD_PREFIX, User, catalog::CATEGORIES, catalog::Catalog},
    client::ConnState,
    cluster::Cluster,
};

/// How long a failed AUTH on a cluster node waits for the metadata group to bring a user
/// just made on another node, before it answers WRONGPASS.
const CLUSTER_USER_WAIT: Duration = Duration::from_millis(300);

const NO_ACL_FILE: &str = "This Redis instance is not configured to use an ACL file. You may \
                           want to specify users via the ACL SETUSER command and then issue a \
                           CONFIG REWRITE (assuming you have a Redis configuration file set) in \
                           order to store users in the Redis configuration.";

/// Checks `user`/`pass`; on success the connection is signed in as that user.
async fn sign_in(
    user: &str,
    pass: &[u8],
    acl: &Acl,
    cluster: Option<&Arc<Cluster>>,
    conn: &mut ConnState,
) -> Result<(), Error> {
    let mut found = acl.authenticate(user, pass);
    if found.is_none()
        && let Some(c) = cluster
        && let Some(meta) = c.meta_group()
    {
        // A user made on another node a moment ago may not have been applied here yet.
        meta.changes().next(CLUSTER_USER_WAIT).await;
        c.sync_acl_now();
        found = acl.authenticate(user, pass);
    }
    match found {
        Some((u, generation)) => {
            conn.acl_generation = generation;
            conn.sign_in(Some(u));
            Ok(())
        }
        None => {
            acl.log_auth_failure(user, conn.info.line());
            Err(Error::WrongPass)
        }
    }
}

/// `AUTH [username] password`
pub(super) async fn auth(
    user: Option<Bytes>,
    pass: Bytes,
    acl: &Acl,
    cluster: Option<&Arc<Cluster>>,
    conn: &mut ConnState,
) -> Reply {
    let name = match &user {
        Some(u) => String::from_utf8_lossy(u).into_owned(),
        None if acl.default_is_open() => return Reply::Error(Error::AuthNotConfigured),
        None => "default".to_string(),
    };
    match sign_in(&name, &pass, acl, cluster, conn).await {
        Ok(()) => Reply::OK,
        Err(e) => Reply::Error(e),
    }
}

/// `HELLO`: the protocol version is checked first, then AUTH, then that the connection is
/// authenticated, as Redis does; only then does anything change.
pub(super) async fn hello(
    mut h: Hello,
    acl: &Acl,
    cluster: Option<&Arc<Cluster>>,
    conn: &mut ConnState,
) -> Reply {
    if let Some(v) = h.proto
        && v != 2
        && v != 3
    {
        return Reply::Error(Error::NoProto);
    }
    if let Some((user, pass)) = h.auth.take() {
        let user = String::from_utf8_lossy(&user).into_owned();
        if let Err(e) = sign_in(&user, &pass, acl, cluster, conn).await {
            return Reply::Error(e);
        }
    }
    if conn.user.is_none() {
        return Reply::Error(Error::HelloNoAuth);
    }
    super::server::hello(h, conn)
}

fn err(text: impl Into<String>) -> Reply {
    Reply::Error(Error::Unavailable(text.into()))
}

/// Writes users (`None`: deleted) cluster-wide, or to this node's users when standalone.
async fn store_users(
    users: Vec<(String, Option<User>)>,
    acl: &Acl,
    cluster: Option<&Arc<Cluster>>,
) -> Result<(), Error> {
    match cluster {
        Some(c) => {
            let records = users
                .iter()
                .map(|(name, u)| {
                    let described = u.as_ref().map(User::describe).unwrap_or_default();
                    (format!("{RECORD_PREFIX}{name}"), Some(described))
                })
                .collect();
            c.write_meta(records).await
        }
        None => {
            for (name, u) in users {
                match u {
                    Some(u) => acl.put_local(u),
                    None => {
                        acl.delete_local(&[name]);
                    }
                }
            }
            Ok(())
        }
    }
}

/// `ACL ...`
pub(super) async fn acl_cmd(
    c: AclCmd,
    acl: &Acl,
    cluster: Option<&Arc<Cluster>>,
    conn: &ConnState,
) -> Reply {
    match c {
        AclCmd::SetUser { name, rules } => {
            let name = String::from_utf8_lossy(&name).into_owned();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '\0') {
                return err("Usernames can't contain spaces or null characters");
            }
            let current = acl
                .user(&name)
                .map_or_else(|| User::new(&name), |u| (*u).clone());
            let user = match current.with_rules(&rules) {
                Ok(u) => u,
                Err((rule, why)) => {
                    return err(format!("Error in ACL SETUSER modifier '{rule}': {why}"));
                }
            };
            match store_users(vec![(name.clone(), Some(user))], acl, cluster).await {
                Ok(()) => {
                    info!(user = %name, by = %conn.user_name(), "ACL user set");
                    Reply::OK
                }
                Err(e) => Reply::Error(e),
            }
        }
        AclCmd::GetUser(name) => match acl.user(&String::from_utf8_lossy(&name)) {
            None => Reply::Nil,
            Some(u) => Reply::Map(vec![
                (
                    Reply::bulk("flags"),
                    Reply::Array(u.flags().into_iter().map(Reply::bulk).collect()),
                ),
                (
                    Reply::bulk("passwords"),
                    Reply::Array(u.passwords.iter().map(|p| Reply::bulk(p.clone())).collect()),
                ),
                (Reply::bulk("commands"), Reply::bulk(u.rules.join(" "))),
                (Reply::bulk("keys"), Reply::bulk(u.key_rules())),
                (Reply::bulk("channels"), Reply::bulk(u.channel_rules())),
                (Reply::bulk("selectors"), Reply::Array(Vec::new())),
            ]),
        },
        AclCmd::DelUser(names) => {
            let names: Vec<String> = names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            if names.iter().any(|n| n == "default") {
                return err("The 'default' user cannot be removed");
            }
            let existing: Vec<String> = names
                .into_iter()
                .filter(|n| acl.user(n).is_some())
                .collect();
            let n = existing.len();
            let gone = existing.into_iter().map(|n| (n, None)).collect();
            match store_users(gone, acl, cluster).await {
                Ok(()) => Reply::Int(n as i64),
                Err(e) => Reply::Error(e),
            }
        }
        AclCmd::List => Reply::Array(
            acl.users()
                .iter()
                .map(|u| Reply::bulk(format!("user {} {}", u.name, u.describe())))
                .collect(),
        ),
        AclCmd::Users => Reply::Array(
            acl.users()
                .iter()
                .map(|u| Reply::bulk(u.name.clone()))
                .collect(),
        ),
        AclCmd::WhoAmI => Reply::bulk(conn.user_name().to_string()),
        AclCmd::Cat(None) => Reply::Array(CATEGORIES.iter().map(|c| Reply::bulk(*c)).collect()),
        AclCmd::Cat(Some(cat)) => {
            let cat = String::from_utf8_lossy(&cat).to_ascii_lowercase();
            let catalog = Catalog::get();
            let Some(&cat) = CATEGORIES.iter().find(|c| **c == cat) else {
                return err(format!("Unknown category '{cat}'"));
            };
            Reply::Array(
                catalog
                    .in_category(cat)
                    .map(|i| Reply::bulk(catalog.entries[i].name.clone()))
                    .collect(),
            )
        }
        AclCmd::Log(AclLog::Reset) => {
            acl.reset_log();
            Reply::OK
        }
        AclCmd::Log(AclLog::Show(n)) => {
            let now = shardai_engine::now_ms();
            Reply::Array(
                acl.log_entries(n)
                    .into_iter()
                    .map(|e| {
                        Reply::Map(vec![
                            (Reply::bulk("count"), Reply::Int(e.count as i64)),
                            (Reply::bulk("reason"), Reply::bulk(e.reason.as_str())),
                            (Reply::bulk("context"), Reply::bulk("toplevel")),
                            (Reply::bulk("object"), Reply::bulk(e.object)),
                            (Reply::bulk("username"), Reply::bulk(e.username)),
                            (
                                Reply::bulk("age-seconds"),
                                Reply::Double(now.saturating_sub(e.created_ms) as f64 / 1000.0),
                            ),
                            (
                                Reply::bulk("client-info"),
                                Reply::bulk(e.client_info.trim_end().to_string()),
                            ),
                            (Reply::bulk("entry-id"), Reply::Int(e.entry_id as i64)),
                            (
                                Reply::bulk("timestamp-created"),
                                Reply::Int(e.created_ms as i64),
                            ),
                            (
                                Reply::bulk("timestamp-last-updated"),
                                Reply::Int(e.updated_ms as i64),
                            ),
                        ])
                    })
                    .collect(),
            )
        }
        AclCmd::Load => {
            if acl.file().is_none() {
                return err(NO_ACL_FILE);
            }
            let before: Vec<String> = acl.users().iter().map(|u| u.name.clone()).collect();
            let users = match acl.load() {
                Ok(u) => u,
                Err(e) => return err(e),
            };
            if cluster.is_some() {
                // The file's users, and the end of every other user, cluster-wide.
                let mut all: Vec<(String, Option<User>)> = users
                    .iter()
                    .map(|u| (u.name.clone(), Some((**u).clone())))
                    .collect();
                for name in before {
                    if name != "default" && !users.iter().any(|u| u.name == name) {
                        all.push((name, None));
                    }
                }
                if let Err(e) = store_users(all, acl, cluster).await {
                    return Reply::Error(e);
                }
            }
            info!(users = users.len(), "ACL file loaded");
            Reply::OK
        }
        AclCmd::Save => {
            let Some(path) = acl.file().map(|p| p.to_path_buf()) else {
                return err(NO_ACL_FILE);
            };
            let text = acl.file_text();
            let saved = tokio::task::spawn_blocking(move || write_synced(&path, &text)).await;
            match saved {
                Ok(Ok(())) => Reply::OK,
                Ok(Err(e)) => err(format!("There was an error trying to save the ACLs: {e}")),
                Err(_) => err("There was an error trying to save the ACLs"),
            }
        }
        AclCmd::GenPass(bits) => {
            let bits = bits.unwrap_or(256);
            if !(1..=4096).contains(&bits) {
                return err(
                    "ACL GENPASS argument must be the number of bits for the output password, \
                     a positive number up to 4096",
                );
            }
            match random_hex((bits as usize).div_ceil(4)) {
                Ok(s) => Reply::bulk(s),
                Err(e) => err(format!("cannot read random bytes: {e}")),
            }
        }
        AclCmd::Help => Reply::Array(
            [
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "DELUSER <username> [<username> ...]",
                "    Delete a list of users.",
                "GETUSER <username>",
                "    Get the user's details.",
                "GENPASS [<bits>]",
                "    Generate a secure 256-bit user password. The optional `bits` argument can",
                "    be used to specify a different size.",
                "LIST",
                "    Show users details in config file format.",
                "LOAD",
                "    Reload users from the ACL file.",
                "LOG [<count> | RESET]",
                "    Show the ACL log entries.",
                "SAVE",
                "    Save the current config to the ACL file.",
                "SETUSER <username> <attribute> [<attribute> ...]",
                "    Create or modify a user with the specified attributes.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::StatusOwned(l.to_string()))
            .collect(),
        ),
    }
}

/// Writes `text` to `path` through a synced temporary file and a rename, so that the file is
/// either the old one or the whole new one.
fn write_synced(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    // Password hashes: readable by the server's user only.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `n` lower-case hex digits from the operating system's random source.
fn random_hex(n: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n.div_ceil(2)];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(n);
    Ok(s)
}
