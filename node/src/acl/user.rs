//! One ACL user: whether it is enabled, its password hashes, the key patterns it may touch and
//! the commands it may run, built by applying Redis's `ACL SETUSER` rules in order and
//! described back in the same rule language (`ACL LIST`, the ACL file, the cluster's record).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use shardai_engine::glob::glob_match;

use super::catalog::{CATEGORIES, Catalog};

/// A user, as ACL SETUSER leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name.
    pub name: String,
    /// `on`: may authenticate.
    pub enabled: bool,
    /// `nopass`: any password authenticates.
    pub nopass: bool,
    /// SHA-256 hashes of the passwords, lower-case hex.
    pub passwords: BTreeSet<String>,
    /// Key patterns (`*` for every key).
    pub keys: Vec<String>,
    /// Channel patterns (kept for the description; there are no channels to guard).
    pub channels: Vec<String>,
    /// The command rules as given, minus those a later rule made moot.
    pub rules: Vec<String>,
    /// One bit per catalog entry: may run it.
    allowed: Vec<bool>,
    /// Every command and every key: the per-request check is skipped.
    unrestricted: bool,
}

/// Why a rule was refused, as Redis words it (after `Error in ACL SETUSER modifier '...': `).
pub type RuleError = &'static str;

const SYNTAX: RuleError = "Syntax error";
const SPACES: RuleError = "Rules can't contain spaces or control characters";
const UNKNOWN: RuleError = "Unknown command or category name in ACL";
const NO_SUCH_PASSWORD: RuleError =
    "The password you are trying to remove from the user does not exist";
const BAD_HASH: RuleError = "The password hash must be exactly 64 characters and contain only \
                             lowercase hexadecimal characters";
const KEY_AFTER_ALL: RuleError = "Adding a pattern after the * pattern (or the 'allkeys' flag) is \
                                  not valid and does not have any effect. Try 'resetkeys' to \
                                  start with an empty list of patterns";
const CHANNEL_AFTER_ALL: RuleError = "Adding a pattern after the * pattern (or the \
                                      'allchannels' flag) is not valid and does not have any \
                                      effect. Try 'resetchannels' to start with an empty list \
                                      of channels";

/// SHA-256 of a password, lower-case hex, as ACL GETUSER shows it.
pub fn hash_password(pass: &[u8]) -> String {
    Sha256::digest(pass)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl User {
    /// A new user as Redis makes one: off, no password, no keys, no commands.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: BTreeSet::new(),
            keys: Vec::new(),
            channels: Vec::new(),
            rules: vec!["-@all".into()],
            allowed: vec![false; Catalog::get().entries.len()],
            unrestricted: false,
        }
    }

    /// The default user of a server without a password: may do everything.
    pub fn default_user(requirepass: Option<&str>) -> User {
        let u = User::new("default");
        let pass = requirepass.map(|p| format!(">{p}"));
        let rules = [
            "on",
            pass.as_deref().unwrap_or("nopass"),
            "~*",
            "&*",
            "+@all",
        ];
        u.with_rules(&rules).expect("valid built-in rules")
    }

    /// Applies rules in order to a copy, so that a bad rule changes nothing: the error names
    /// the rule and why.
    pub fn with_rules(&self, rules: &[impl AsRef<[u8]>]) -> Result<User, (String, RuleError)> {
        let mut u = self.clone();
        for r in rules {
            let r = r.as_ref();
            u.apply(r)
                .map_err(|e| (String::from_utf8_lossy(r).into_owned(), e))?;
        }
        u.unrestricted = u.keys.iter().any(|k| k == "*") && u.allowed.iter().all(|b| *b);
        Ok(u)
    }

    /// Parses a described user (`on #hash ~* +@all`, as [`User::describe`] writes it).
    pub fn parse(name: &str, described: &str) -> Result<User, (String, RuleError)> {
        let rules: Vec<&str> = described.split_ascii_whitespace().collect();
        User::new(name).with_rules(&rules)
    }

    fn apply(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let text = std::str::from_utf8(rule).map_err(|_| SYNTAX)?;
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.keys = vec!["*".into()],
            "resetkeys" => self.keys.clear(),
            "allchannels" => self.channels = vec!["*".into()],
            "resetchannels" => self.channels.clear(),
            "allcommands" => self.command_rule(true, "@all")?,
            "nocommands" => self.command_rule(false, "@all")?,
            "reset" => {
                for r in ["resetpass", "resetkeys", "resetchannels", "off", "-@all"] {
                    self.apply(r.as_bytes())?;
                }
            }
            _ => {
                let Some(first) = text.chars().next() else {
                    return Err(SYNTAX);
                };
                let rest = &text[first.len_utf8()..];
                // A rule other than a password is one word: a pattern with spaces or control
                // characters would read back as several rules from ACL LIST, the ACL file or
                // the cluster's record (passwords are kept as hashes, so any bytes do).
                if !matches!(first, '>' | '<')
                    && rest.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(SPACES);
                }
                match first {
                    '>' => {
                        self.passwords.insert(hash_password(rest.as_bytes()));
                        self.nopass = false;
                    }
                    '<' => {
                        if !self.passwords.remove(&hash_password(rest.as_bytes())) {
                            return Err(NO_SUCH_PASSWORD);
                        }
                    }
                    '#' => {
                        let valid = rest.len() == 64
                            && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                        if !valid {
                            return Err(BAD_HASH);
                        }
                        self.passwords.insert(rest.to_string());
                        self.nopass = false;
                    }
                    '!' => {
                        if !self.passwords.remove(rest) {
                            return Err(NO_SUCH_PASSWORD);
                        }
                    }
                    '~' => {
                        if self.keys.iter().any(|k| k == "*") {
                            return Err(KEY_AFTER_ALL);
                        }
                        if rest == "*" {
                            self.keys = vec!["*".into()];
                        } else if !self.keys.iter().any(|k| k == rest) {
                            self.keys.push(rest.to_string());
                        }
                    }
                    '&' => {
                        if self.channels.iter().any(|k| k == "*") {
                            return Err(CHANNEL_AFTER_ALL);
                        }
                        if rest == "*" {
                            self.channels = vec!["*".into()];
                        } else if !self.channels.iter().any(|k| k == rest) {
                            self.channels.push(rest.to_string());
                        }
                    }
                    '+' => self.command_rule(true, &rest.to_ascii_lowercase())?,
                    '-' => self.command_rule(false, &rest.to_ascii_lowercase())?,
                    _ => return Err(SYNTAX),
                }
            }
        }
        Ok(())
    }

    /// `+target` (allow) or `-target` (deny): `@category`, `command` or `command|sub`.
    fn command_rule(&mut self, allow: bool, target: &str) -> Result<(), RuleError> {
        let catalog = Catalog::get();
        let sign = if allow { '+' } else { '-' };
        if target == "@all" {
            self.allowed.iter_mut().for_each(|b| *b = allow);
            self.rules = vec![format!("{sign}@all")];
            return Ok(());
        }
        if let Some(cat) = target.strip_prefix('@') {
            if !CATEGORIES.contains(&cat) {
                return Err(UNKNOWN);
            }
            for id in catalog.in_category(cat) {
                self.allowed[id] = allow;
            }
        } else {
            let id = catalog.id(target).ok_or(UNKNOWN)?;
            self.allowed[id] = allow;
            for &child in &catalog.entries[id].children {
                self.allowed[child] = allow;
            }
            // A later rule on the same command replaces the earlier one.
            self.rules.retain(|r| {
                r.get(1..) != Some(target) && !r[1..].starts_with(&format!("{target}|"))
            });
        }
        self.rules.push(format!("{sign}{target}"));
        Ok(())
    }

    /// True when the user may run the catalog entry `id`.
    pub fn may_run(&self, id: usize) -> bool {
        self.allowed.get(id).copied().unwrap_or(false)
    }

    /// True when the user may run everything and touch every key (checks can be skipped).
    pub fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// True when the user may touch `key`.
    pub fn may_access(&self, key: &[u8]) -> bool {
        self.keys
            .iter()
            .any(|p| p == "*" || glob_match(p.as_bytes(), key))
    }

    /// True when `pass` authenticates this user.
    pub fn password_ok(&self, pass: &[u8]) -> bool {
        self.enabled && (self.nopass || self.passwords.contains(&hash_password(pass)))
    }

    /// The flags ACL GETUSER shows.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        f
    }

    /// The key patterns as rules (`~*`, `~a* ~b*`).
    pub fn key_rules(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("~{k}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The channel patterns as rules (`&*`, or `resetchannels` for none).
    pub fn channel_rules(&self) -> String {
        self.channels
            .iter()
            .map(|k| format!("&{k}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The user as rules (`on #hash ~* &* +@all`): applied to a new user they rebuild it.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().iter().map(|s| s.to_string()).collect();
        parts.extend(self.passwords.iter().map(|h| format!("#{h}")));
        if !self.keys.is_empty() {
            parts.push(self.key_rules());
        }
        if self.channels.is_empty() {
            parts.push("resetchannels".into());
        } else {
            parts.push(self.channel_rules());
        }
        parts.extend(self.rules.iter().cloned());
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &str) -> User {
        let rules: Vec<&str> = rules.split(' ').collect();
        User::new("u").with_rules(&rules).unwrap()
    }

    fn can(u: &User, name: &str) -> bool {
        u.may_run(Catalog::get().id(name).unwrap())
    }

    #[test]
    fn a_new_user_can_do_nothing() {
        let u = User::new("u");
        assert!(!u.enabled && !u.password_ok(b""));
        assert!(!can(&u, "get") && !u.may_access(b"k"));
        assert_eq!(u.describe(), "off resetchannels -@all");
    }

    #[test]
    fn passwords_are_kept_hashed() {
        let u = user("on >secret");
        assert!(u.password_ok(b"secret") && !u.password_ok(b"other"));
        assert_eq!(
            u.passwords.iter().next().unwrap(),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert!(!u.describe().contains("secret"));
        let u2 = u.with_rules(&["<secret"]).unwrap();
        assert!(!u2.password_ok(b"secret"));
        assert_eq!(u.with_rules(&["<nope"]).unwrap_err().1, NO_SUCH_PASSWORD);
        assert!(user("on nopass").password_ok(b"anything"));
        assert!(!user("off nopass").password_ok(b"anything"));
        assert_eq!(u.with_rules(&["#abc"]).unwrap_err().1, BAD_HASH);
    }

    #[test]
    fn categories_commands_and_subcommands() {
        let u = user("+@read -get");
        assert!(can(&u, "mget") && can(&u, "ai.tensorget") && !can(&u, "get"));
        assert!(!can(&u, "set") && !can(&u, "ai.tensorset"));
        let u = user("+@all -@admin");
        assert!(can(&u, "set") && can(&u, "cluster|slots"));
        assert!(!can(&u, "config|set") && !can(&u, "cluster|shardai-addnode"));
        assert!(!can(&u, "ai.config"));
        let u = user("+config|get");
        assert!(can(&u, "config|get") && !can(&u, "config|set"));
        let u = user("+config");
        assert!(can(&u, "config|set"));
        let u = user("+@ai");
        assert!(can(&u, "ai.modelexecute") && !can(&u, "get"));
        assert_eq!(
            User::new("u").with_rules(&["+nosuch"]).unwrap_err().1,
            UNKNOWN
        );
        assert_eq!(
            User::new("u").with_rules(&["+@nosuch"]).unwrap_err().1,
            UNKNOWN
        );
        assert_eq!(User::new("u").with_rules(&["bogus"]).unwrap_err().1, SYNTAX);
        assert_eq!(User::new("u").with_rules(&[""]).unwrap_err().1, SYNTAX);
        assert_eq!(User::new("u").with_rules(&["é"]).unwrap_err().1, SYNTAX);
        assert_eq!(
            User::new("u").with_rules(&["~a +@all"]).unwrap_err().1,
            SPACES
        );
        assert_eq!(
            User::new("u").with_rules(&["~a\nuser x"]).unwrap_err().1,
            SPACES
        );
        let spaced = User::new("u").with_rules(&["on", ">two words"]).unwrap();
        assert!(spaced.password_ok(b"two words"));
    }

    #[test]
    fn key_patterns() {
        let u = user("~cache:* ~t?");
        assert!(u.may_access(b"cache:1") && u.may_access(b"t1"));
        assert!(!u.may_access(b"other") && !u.may_access(b"t12"));
        assert!(user("allkeys").may_access(b"anything"));
        assert_eq!(
            user("allkeys").with_rules(&["~a"]).unwrap_err().1,
            KEY_AFTER_ALL
        );
        assert!(!user("~a resetkeys").may_access(b"a"));
    }

    #[test]
    fn a_description_rebuilds_the_user() {
        for rules in [
            "on >pw ~k* &c +@read -get +set",
            "on nopass ~* &* +@all",
            "off -@all +config|get",
            "on >a >b allkeys +@all -@dangerous",
        ] {
            let u = user(rules);
            let again = User::parse("u", &u.describe()).unwrap();
            assert_eq!(again, u, "{rules} -> {}", u.describe());
        }
        assert_eq!(User::default_user(None).describe(), "on nopass ~* &* +@all");
        assert!(User::default_user(None).unrestricted());
        assert!(!user("on nopass ~* +@all -get").unrestricted());
        assert!(!user("on nopass ~a* +@all").unrestricted());
    }

    #[test]
    fn rules_on_the_same_command_replace_each_other() {
        let u = user("+get -get +get");
        assert_eq!(u.rules, ["-@all", "+get"]);
        let u = user("+@read +@all");
        assert_eq!(u.rules, ["+@all"]);
    }
}
