//! `ACL LOG`: the recent denials (a command or key refused, a failed AUTH), newest first.
//! A denial like one logged in the last minute (same reason, object and user) counts on that
//! entry instead of adding one, as Redis does.

use std::collections::VecDeque;

/// Entries kept (Redis's acllog-max-len default).
pub const MAX_ENTRIES: usize = 128;
/// Window in which a repeated denial is counted on its earlier entry, ms.
const GROUP_MS: u64 = 60_000;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The user may not run the command.
    Command,
    /// The user may not touch a key.
    Key,
    /// AUTH failed.
    Auth,
}

impl Reason {
    /// As ACL LOG prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Auth => "auth",
        }
    }
}

/// One logged denial.
#[derive(Debug, Clone)]
pub struct Entry {
    /// How many times it happened.
    pub count: u64,
    /// Why.
    pub reason: Reason,
    /// The command, key or `AUTH`.
    pub object: String,
    /// The user (for AUTH, the name tried).
    pub username: String,
    /// The client, as CLIENT LIST shows it.
    pub client_info: String,
    /// Unique, increasing.
    pub entry_id: u64,
    /// First seen, ms since the epoch.
    pub created_ms: u64,
    /// Last seen, ms since the epoch.
    pub updated_ms: u64,
}

/// The denials, newest first.
#[derive(Debug, Default)]
pub struct Book {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl Book {
    /// Records a denial at `now_ms`.
    pub fn record(
        &mut self,
        reason: Reason,
        object: String,
        username: String,
        client_info: String,
        now_ms: u64,
    ) {
        if let Some(e) = self.entries.iter_mut().find(|e| {
            e.reason == reason
                && e.object == object
                && e.username == username
                && now_ms.saturating_sub(e.updated_ms) < GROUP_MS
        }) {
            e.count += 1;
            e.updated_ms = now_ms;
            e.client_info = client_info;
            return;
        }
        self.entries.push_front(Entry {
            count: 1,
            reason,
            object,
            username,
            client_info,
            entry_id: self.next_id,
            created_ms: now_ms,
            updated_ms: now_ms,
        });
        self.next_id += 1;
        self.entries.truncate(MAX_ENTRIES);
    }

    /// The newest `n` entries.
    pub fn newest(&self, n: usize) -> Vec<Entry> {
        self.entries.iter().take(n).cloned().collect()
    }

    /// Forgets every entry.
    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_and_the_book_is_bounded() {
        let mut b = Book::default();
        b.record(
            Reason::Command,
            "get".into(),
            "u".into(),
            String::new(),
            1000,
        );
        b.record(
            Reason::Command,
            "get".into(),
            "u".into(),
            String::new(),
            2000,
        );
        b.record(Reason::Key, "k".into(), "u".into(), String::new(), 3000);
        let e = b.newest(10);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].reason, e[1].count), (Reason::Key, 2));
        b.record(
            Reason::Command,
            "get".into(),
            "u".into(),
            String::new(),
            100_000,
        );
        assert_eq!(b.newest(10).len(), 3, "a minute later it is a new entry");
        for i in 0..300 {
            b.record(Reason::Auth, format!("{i}"), "u".into(), String::new(), 0);
        }
        assert_eq!(b.newest(1000).len(), MAX_ENTRIES);
        b.reset();
        assert!(b.newest(10).is_empty());
    }
}
