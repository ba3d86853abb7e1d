//! What ACL rules name: every command and subcommand (`config|get`), each with its Redis ACL
//! categories, numbered so that a user's permissions are one bit per entry.
//!
//! Commands take their categories from the command table; `AI.*` commands also belong to
//! `@ai`. Subcommands of container commands have their own categories, as in Redis 7: reading
//! cluster state is `@slow`, changing it (`CLUSTER SETSLOT`, the `SHARDAI-*` administration
//! subcommands) is `@admin @dangerous`, and so is every `CONFIG` subcommand but HELP.

use std::{collections::HashMap, sync::OnceLock};

use bytes::Bytes;
use shardai_protocol::table::{COMMANDS, CommandSpec};

/// Every ACL category, as `ACL CAT` lists them.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
    "ai",
];

const ADMIN: &[&str] = &["admin", "slow", "dangerous"];
const SLOW: &[&str] = &["slow"];
const CONN: &[&str] = &["slow", "connection"];
const ADMIN_CONN: &[&str] = &["admin", "slow", "dangerous", "connection"];
const KEY_READ: &[&str] = &["keyspace", "read", "slow"];

/// Subcommands and their categories. A subcommand not listed here is checked as its parent.
const SUBCOMMANDS: &[(&str, &[&str])] = &[
    ("client|setname", CONN),
    ("client|getname", CONN),
    ("client|id", CONN),
    ("client|setinfo", CONN),
    ("client|info", CONN),
    ("client|help", CONN),
    ("client|list", ADMIN_CONN),
    ("client|kill", ADMIN_CONN),
    ("command|count", CONN),
    ("command|info", CONN),
    ("command|docs", CONN),
    ("command|list", CONN),
    ("command|getkeys", CONN),
    ("command|help", CONN),
    ("config|get", ADMIN),
    ("config|set", ADMIN),
    ("config|resetstat", ADMIN),
    ("config|help", SLOW),
    ("cluster|myid", SLOW),
    ("cluster|info", SLOW),
    ("cluster|keyslot", SLOW),
    ("cluster|slots", SLOW),
    ("cluster|shards", SLOW),
    ("cluster|nodes", SLOW),
    ("cluster|countkeysinslot", SLOW),
    ("cluster|getkeysinslot", SLOW),
    ("cluster|help", SLOW),
    ("cluster|setslot", ADMIN),
    ("cluster|shardai-join", ADMIN),
    ("cluster|shardai-init", ADMIN),
    ("cluster|shardai-addnode", ADMIN),
    ("cluster|shardai-delnode", ADMIN),
    ("cluster|shardai-state", ADMIN),
    ("cluster|shardai-topology", ADMIN),
    ("cluster|shardai-settopology", ADMIN),
    ("acl|whoami", SLOW),
    ("acl|cat", SLOW),
    ("acl|genpass", SLOW),
    ("acl|help", SLOW),
    ("acl|setuser", ADMIN),
    ("acl|getuser", ADMIN),
    ("acl|deluser", ADMIN),
    ("acl|list", ADMIN),
    ("acl|users", ADMIN),
    ("acl|log", ADMIN),
    ("acl|load", ADMIN),
    ("acl|save", ADMIN),
    ("object|encoding", KEY_READ),
    ("object|refcount", KEY_READ),
    ("object|freq", KEY_READ),
    ("object|idletime", KEY_READ),
    ("object|help", &["keyspace", "slow"]),
    ("memory|usage", &["read", "slow"]),
    ("memory|help", SLOW),
];

/// One nameable entry: a command or a subcommand.
#[derive(Debug)]
pub struct Entry {
    /// `get`, `config|get`.
    pub name: String,
    /// Its categories, without the `@`.
    pub categories: Vec<&'static str>,
    /// For a command with subcommands: their ids.
    pub children: Vec<usize>,
}

/// Every entry, numbered.
#[derive(Debug)]
pub struct Catalog {
    /// The entries; an entry's id is its index.
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// The catalog of this build's command table.
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(Catalog::build)
    }

    fn build() -> Catalog {
        let mut entries: Vec<Entry> = COMMANDS
            .iter()
            .map(|spec| {
                let mut categories: Vec<&'static str> =
                    spec.acl.iter().map(|c| c.trim_start_matches('@')).collect();
                if spec.is_module() {
                    categories.push("ai");
                }
                Entry {
                    name: spec.name.to_string(),
                    categories,
                    children: Vec::new(),
                }
            })
            .collect();
        let mut by_name: HashMap<String, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        for (name, cats) in SUBCOMMANDS {
            let parent = name.split('|').next().unwrap_or_default();
            let Some(&p) = by_name.get(parent) else {
                continue;
            };
            let id = entries.len();
            entries.push(Entry {
                name: name.to_string(),
                categories: cats.to_vec(),
                children: Vec::new(),
            });
            entries[p].children.push(id);
            by_name.insert(name.to_string(), id);
        }
        Catalog { entries, by_name }
    }

    /// The id of `name` (`get`, `config|get`), case-insensitively.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// Ids of every entry in `category`.
    pub fn in_category<'a>(&'a self, category: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.categories.contains(&category))
            .map(|(i, _)| i)
    }

    /// The entry a request is checked against: its subcommand's when it has a listed one,
    /// else the command's own. `index` is the command's index in the command table.
    pub fn request_id(&self, index: usize, spec: &CommandSpec, argv: &[Bytes]) -> usize {
        if spec.subcommands.is_empty() && self.entries[index].children.is_empty() {
            return index;
        }
        let Some(sub) = argv.get(1) else {
            return index;
        };
        let name = format!("{}|{}", spec.name, String::from_utf8_lossy(sub));
        self.id(&name).unwrap_or(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardai_protocol::table;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_string())).collect()
    }

    fn id_of(s: &str) -> usize {
        let a = argv(s);
        let (i, spec) = table::lookup_indexed(&a[0]).unwrap();
        Catalog::get().request_id(i, spec, &a)
    }

    #[test]
    fn subcommands_are_checked_as_themselves() {
        let c = Catalog::get();
        assert_eq!(c.entries[id_of("CONFIG GET maxclients")].name, "config|get");
        assert_eq!(
            c.entries[id_of("cluster shardai-settopology {}")].name,
            "cluster|shardai-settopology"
        );
        assert_eq!(c.entries[id_of("GET k")].name, "get");
        assert_eq!(c.entries[id_of("CLUSTER NOPE")].name, "cluster");
    }

    #[test]
    fn administration_is_admin_and_reading_is_not() {
        let c = Catalog::get();
        let admin: Vec<&str> = c
            .in_category("admin")
            .map(|i| c.entries[i].name.as_str())
            .collect();
        for name in [
            "config|set",
            "cluster|setslot",
            "cluster|shardai-addnode",
            "cluster|shardai-settopology",
            "ai.config",
            "acl|setuser",
        ] {
            assert!(admin.contains(&name), "{name} is not @admin");
        }
        for name in ["cluster|slots", "get", "ai.tensorget", "acl|whoami"] {
            assert!(!admin.contains(&name), "{name} is @admin");
        }
        let ai: Vec<&str> = c
            .in_category("ai")
            .map(|i| c.entries[i].name.as_str())
            .collect();
        assert!(ai.contains(&"ai.modelexecute") && ai.contains(&"ai.tensorset"));
        assert!(!ai.contains(&"get"));
    }

    #[test]
    fn every_category_named_by_a_command_is_listed() {
        for e in &Catalog::get().entries {
            for c in &e.categories {
                assert!(CATEGORIES.contains(c), "{}: unknown category {c}", e.name);
            }
        }
    }
}
