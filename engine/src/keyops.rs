//! Applying the mutations of Redis's expiry, key and string commands beside SET: EXPIRE and
//! PERSIST, RENAME and COPY (two keys, maybe in two stripes), GETDEL, SETRANGE and APPEND,
//! MSETNX, INCRBYFLOAT. Like every apply, each decides from the store and the mutation's
//! timestamp only, so every replica reaches the same state.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLockWriteGuard;
use shardai_protocol::{
    Error,
    command::{ExpireCond, format_float, parse_float},
};

use crate::{
    expiry::Expiry,
    key::Key,
    mutation::Applied,
    stats::RunStats,
    store::{Entry, Store, Stripe, Value},
    string::Str,
};

/// The largest string SETRANGE and APPEND make (Redis's proto-max-bulk-len default).
pub(crate) const MAX_STRING: u64 = 512 * 1024 * 1024;

fn too_long() -> Error {
    Error::Verbatim("ERR string exceeds maximum allowed size (proto-max-bulk-len)".into())
}

/// The stripes of a source and a destination key, locked in stripe order.
enum Pair<'a> {
    One(RwLockWriteGuard<'a, Stripe>),
    Two(RwLockWriteGuard<'a, Stripe>, RwLockWriteGuard<'a, Stripe>),
}

impl Pair<'_> {
    fn src(&mut self) -> &mut Stripe {
        match self {
            Pair::One(s) | Pair::Two(s, _) => s,
        }
    }

    fn dst(&mut self) -> &mut Stripe {
        match self {
            Pair::One(s) | Pair::Two(_, s) => s,
        }
    }
}

impl Value {
    /// The value a COPY stores: the same data; a model or script gets statistics of its own.
    fn copied(&self) -> Value {
        match self {
            Value::Model(m) => Value::Model(Arc::new(crate::model::Model {
                stats: Arc::new(RunStats::default()),
                ..(**m).clone()
            })),
            Value::Script(s) => Value::Script(Arc::new(crate::script::Script {
                stats: Arc::new(RunStats::default()),
                ..(**s).clone()
            })),
            v => v.clone(),
        }
    }
}

impl Store {
    fn pair(&self, src: &[u8], dst: &[u8]) -> Pair<'_> {
        let (i, j) = (self.stripe_index(src), self.stripe_index(dst));
        let s = self.stripes();
        if i == j {
            Pair::One(s[i].write())
        } else if i < j {
            let a = s[i].write();
            Pair::Two(a, s[j].write())
        } else {
            let b = s[j].write();
            Pair::Two(s[i].write(), b)
        }
    }

    /// Stores `entry` under `key` in `stripe` (its stripe), keeping the books.
    fn insert(&self, stripe: &mut Stripe, key: Bytes, entry: Entry) {
        let key = Key::copy(&key);
        let prev = stripe.insert(key.clone(), entry.clone());
        self.account(&key, prev.as_ref(), Some(&entry));
    }

    /// Replaces `key`'s live entry by `f` of it, keeping the books.
    fn update(stripe: &mut Stripe, store: &Store, key: &[u8], f: impl FnOnce(&mut Entry)) {
        if let Some(e) = stripe.get_mut(key) {
            let old = e.clone();
            f(e);
            store.account(key, Some(&old), Some(e));
        }
    }

    pub(crate) fn apply_expire(
        &self,
        key: &Bytes,
        at: Option<i64>,
        cond: ExpireCond,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        let mut stripe = self.stripe_of(key).write();
        let Some(e) = stripe.get(&key[..]).filter(|e| e.live(at_ms)) else {
            return Ok(Applied::Int(0));
        };
        let current = e.expire_at.get().map(|t| t as i64);
        let Some(at) = at else {
            // PERSIST
            if current.is_none() {
                return Ok(Applied::Int(0));
            }
            Self::update(&mut stripe, self, key, |e| e.expire_at = Expiry::NONE);
            return Ok(Applied::Int(1));
        };
        if !cond.allows(current, at) {
            return Ok(Applied::Int(0));
        }
        if at <= at_ms as i64 {
            if let Some(prev) = stripe.remove(&key[..]) {
                self.account(key, Some(&prev), None);
            }
        } else {
            Self::update(&mut stripe, self, key, |e| {
                e.expire_at = Expiry::at(at as u64)
            });
        }
        Ok(Applied::Int(1))
    }

    pub(crate) fn apply_getex(
        &self,
        key: &Bytes,
        change: Option<Option<i64>>,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        let value = match self.get_at(key, at_ms) {
            None => return Ok(Applied::Value(None)),
            Some(Value::Str(s)) => s.to_bytes(),
            Some(_) => return Err(Error::WrongType),
        };
        if let Some(at) = change {
            self.apply_expire(key, at, ExpireCond::default(), at_ms)?;
        }
        Ok(Applied::Value(Some(value)))
    }

    pub(crate) fn apply_rename(
        &self,
        from: &Bytes,
        to: Bytes,
        nx: bool,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        let done = |moved: bool| match (nx, moved) {
            (true, m) => Applied::Int(m as i64),
            (false, _) => Applied::Ok,
        };
        let mut p = self.pair(from, &to);
        let Some(entry) = p.src().get(&from[..]).filter(|e| e.live(at_ms)).cloned() else {
            return Err(Error::Verbatim("ERR no such key".into()));
        };
        if *from == to {
            return Ok(done(!nx));
        }
        if nx && p.dst().get(&to[..]).is_some_and(|e| e.live(at_ms)) {
            return Ok(done(false));
        }
        if let Some(prev) = p.src().remove(&from[..]) {
            self.account(from, Some(&prev), None);
        }
        self.insert(p.dst(), to, entry);
        Ok(done(true))
    }

    pub(crate) fn apply_copy(
        &self,
        from: &Bytes,
        to: Bytes,
        replace: bool,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        let mut p = self.pair(from, &to);
        let Some(src) = p.src().get(&from[..]).filter(|e| e.live(at_ms)) else {
            return Ok(Applied::Int(0));
        };
        let entry = Entry {
            value: src.value.copied(),
            expire_at: src.expire_at,
        };
        if !replace && p.dst().get(&to[..]).is_some_and(|e| e.live(at_ms)) {
            return Ok(Applied::Int(0));
        }
        self.insert(p.dst(), to, entry);
        Ok(Applied::Int(1))
    }

    pub(crate) fn apply_getdel(&self, key: &Bytes, at_ms: u64) -> Result<Applied, Error> {
        let mut stripe = self.stripe_of(key).write();
        let value = match stripe.get(&key[..]).filter(|e| e.live(at_ms)) {
            None => return Ok(Applied::Value(None)),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => s.to_bytes(),
            Some(_) => return Err(Error::WrongType),
        };
        if let Some(prev) = stripe.remove(&key[..]) {
            self.account(key, Some(&prev), None);
        }
        Ok(Applied::Value(Some(value)))
    }

    /// SETRANGE (`offset`) and APPEND: the string's new length.
    pub(crate) fn apply_write_range(
        &self,
        key: Bytes,
        offset: Option<u64>,
        value: &[u8],
        at_ms: u64,
    ) -> Result<Applied, Error> {
        let mut stripe = self.stripe_of(&key).write();
        let current = match stripe.get(&key[..]).filter(|e| e.live(at_ms)) {
            None => None,
            Some(Entry {
                value: Value::Str(s),
                expire_at,
            }) => Some((s.clone(), *expire_at)),
            Some(_) => return Err(Error::WrongType),
        };
        let old_len = current.as_ref().map_or(0, |(s, _)| s.len()) as u64;
        // SETRANGE of nothing: the length, no key made (APPEND of nothing makes one).
        if offset.is_some() && value.is_empty() {
            return Ok(Applied::Int(old_len as i64));
        }
        let offset = offset.unwrap_or(old_len);
        let end = offset
            .checked_add(value.len() as u64)
            .filter(|e| *e <= MAX_STRING)
            .ok_or_else(too_long)?;
        let (old, expire_at) = match &current {
            Some((s, at)) => (&s[..], *at),
            None => (&[][..], Expiry::NONE),
        };
        let s = Str::build(end.max(old_len) as usize, |s| {
            s[..old.len()].copy_from_slice(old);
            s[offset as usize..end as usize].copy_from_slice(value);
        });
        let len = s.len() as i64;
        let entry = Entry {
            value: Value::Str(s),
            expire_at,
        };
        self.insert(&mut stripe, key, entry);
        Ok(Applied::Int(len))
    }

    pub(crate) fn apply_msetnx(
        &self,
        pairs: Vec<(Bytes, Bytes)>,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        // Applies run one at a time: nothing writes between this check and the writes.
        if pairs.iter().any(|(k, _)| self.get_at(k, at_ms).is_some()) {
            return Ok(Applied::Int(0));
        }
        for (k, v) in pairs {
            self.put(k, Value::Str(Str::new(&v)), None);
        }
        Ok(Applied::Int(1))
    }

    pub(crate) fn apply_incr_float(
        &self,
        key: Bytes,
        delta: f64,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        let mut stripe = self.stripe_of(&key).write();
        let (old, expire_at) = match stripe.get(&key[..]).filter(|e| e.live(at_ms)) {
            None => (0.0, Expiry::NONE),
            Some(Entry {
                value: Value::Str(s),
                expire_at,
            }) => (parse_float(s).ok_or(Error::NotFloat)?, *expire_at),
            Some(_) => return Err(Error::WrongType),
        };
        let new = old + delta;
        if !new.is_finite() {
            return Err(Error::Verbatim(
                "ERR increment would produce NaN or Infinity".into(),
            ));
        }
        let text = Bytes::from(format_float(new));
        let entry = Entry {
            value: Value::Str(Str::new(&text)),
            expire_at,
        };
        self.insert(&mut stripe, key, entry);
        Ok(Applied::Value(Some(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::{Deadline, Mutation};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn set(s: &Store, k: &str, v: &str, deadline: Option<u64>) {
        let m = Mutation::Set {
            key: b(k),
            value: b(v),
            cond: None,
            get: false,
            deadline: deadline.map_or(Deadline::None, Deadline::At),
        };
        s.apply(m, 0).unwrap();
    }

    fn expire(s: &Store, k: &str, at: Option<i64>, bits: u8, now: u64) -> Applied {
        let m = Mutation::Expire {
            key: b(k),
            at,
            cond: ExpireCond::from_bits(bits),
        };
        s.apply(m, now).unwrap()
    }

    #[test]
    fn expire_persist_and_past_deadlines() {
        let s = Store::new();
        set(&s, "k", "v", None);
        assert_eq!(expire(&s, "nope", Some(50), 0, 10), Applied::Int(0));
        assert_eq!(
            expire(&s, "k", None, 0, 10),
            Applied::Int(0),
            "PERSIST: none"
        );
        assert_eq!(
            expire(&s, "k", Some(50), 4, 10),
            Applied::Int(0),
            "GT: none is infinite"
        );
        assert_eq!(expire(&s, "k", Some(50), 1, 10), Applied::Int(1), "NX");
        assert_eq!((s.volatile_len(), s.ttl_ms(b"k", 10)), (1, Some(Some(40))));
        assert_eq!(
            expire(&s, "k", Some(60), 8, 10),
            Applied::Int(0),
            "LT: later"
        );
        assert_eq!(
            expire(&s, "k", Some(40), 8, 10),
            Applied::Int(1),
            "LT: earlier"
        );
        assert!(s.expiry_due(40) && !s.expiry_due(39));
        assert_eq!(expire(&s, "k", None, 0, 10), Applied::Int(1), "PERSIST");
        assert_eq!((s.volatile_len(), s.ttl_ms(b"k", 10)), (0, Some(None)));
        // A deadline at or before the mutation's time deletes the key.
        assert_eq!(expire(&s, "k", Some(10), 0, 10), Applied::Int(1));
        assert_eq!((s.len(), s.get_at(b"k", 10).is_none()), (0, true));
        // GETEX: the value, whatever its deadline becomes.
        set(&s, "g", "v", None);
        let getex = |change| Mutation::GetEx {
            key: b("g"),
            change,
        };
        let v = Ok(Applied::Value(Some(b("v"))));
        assert_eq!(s.apply(getex(Some(Some(50))), 10), v);
        assert_eq!(s.ttl_ms(b"g", 10), Some(Some(40)));
        assert_eq!(s.apply(getex(None), 10), v);
        assert_eq!(s.apply(getex(Some(None)), 10), v);
        assert_eq!(s.ttl_ms(b"g", 10), Some(None));
        assert_eq!(s.apply(getex(Some(Some(5))), 10), v);
        assert_eq!(s.apply(getex(None), 10), Ok(Applied::Value(None)));
    }

    #[test]
    fn rename_and_copy_move_values_and_deadlines() {
        let s = Store::new();
        set(&s, "a", "1", Some(100));
        set(&s, "b", "2", None);
        let rename = |from: &str, to: &str, nx| Mutation::Rename {
            from: b(from),
            to: b(to),
            nx,
        };
        assert_eq!(
            s.apply(rename("zz", "y", false), 0)
                .unwrap_err()
                .wire_text(),
            "ERR no such key"
        );
        assert_eq!(s.apply(rename("a", "b", true), 0), Ok(Applied::Int(0)));
        assert_eq!(s.apply(rename("a", "a", true), 0), Ok(Applied::Int(0)));
        assert_eq!(s.apply(rename("a", "a", false), 0), Ok(Applied::Ok));
        // "a" and "{x}c" are in other stripes; "b" is replaced.
        assert_eq!(s.apply(rename("a", "b", false), 0), Ok(Applied::Ok));
        assert_eq!((s.len(), s.ttl_ms(b"b", 0)), (1, Some(Some(100))));
        assert_eq!(s.apply(rename("b", "{x}c", true), 0), Ok(Applied::Int(1)));
        let copy = |replace| Mutation::Copy {
            from: b("{x}c"),
            to: b("d"),
            replace,
        };
        assert_eq!(s.apply(copy(false), 0), Ok(Applied::Int(1)));
        assert_eq!(s.apply(copy(false), 0), Ok(Applied::Int(0)));
        assert_eq!(s.apply(copy(true), 0), Ok(Applied::Int(1)));
        assert_eq!((s.len(), s.volatile_len()), (2, 2));
        assert!(matches!(s.get_at(b"d", 0), Some(Value::Str(v)) if v == "1"));
        // Expired keys are not there to move.
        assert!(s.apply(rename("d", "e", false), 100).is_err());
    }

    #[test]
    fn string_edits() {
        let s = Store::new();
        let range = |k: &str, offset, v: &str| Mutation::WriteRange {
            key: b(k),
            offset,
            value: b(v),
        };
        assert_eq!(s.apply(range("k", Some(3), ""), 0), Ok(Applied::Int(0)));
        assert_eq!(s.len(), 0, "an empty SETRANGE makes no key");
        assert_eq!(s.apply(range("k", Some(2), "ab"), 0), Ok(Applied::Int(4)));
        assert!(matches!(s.get_at(b"k", 0), Some(Value::Str(v)) if v == b"\0\0ab"[..]));
        assert_eq!(s.apply(range("k", None, "cd"), 0), Ok(Applied::Int(6)));
        assert_eq!(s.apply(range("k", Some(1), "X"), 0), Ok(Applied::Int(6)));
        assert_eq!(s.apply(range("k", Some(9), ""), 0), Ok(Applied::Int(6)));
        assert!(matches!(s.get_at(b"k", 0), Some(Value::Str(v)) if v == b"\0Xabcd"[..]));
        assert_eq!(
            s.apply(range("k", Some(MAX_STRING), "x"), 0)
                .unwrap_err()
                .wire_text(),
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
        );
        assert_eq!(s.apply(Mutation::GetDel(b("k")), 0).map(|_| ()), Ok(()));
        assert_eq!(
            s.apply(Mutation::GetDel(b("k")), 0),
            Ok(Applied::Value(None))
        );
        let incr = |d| Mutation::IncrByFloat {
            key: b("f"),
            delta: d,
        };
        assert_eq!(s.apply(incr(10.5), 0), Ok(Applied::Value(Some(b("10.5")))));
        assert_eq!(s.apply(incr(0.1), 0), Ok(Applied::Value(Some(b("10.6")))));
        assert_eq!(
            s.apply(incr(f64::INFINITY), 0).unwrap_err().wire_text(),
            "ERR increment would produce NaN or Infinity"
        );
        let msetnx = |k: &str| Mutation::MSetNx(vec![(b(k), b("1")), (b("n"), b("2"))]);
        assert_eq!(s.apply(msetnx("f"), 0), Ok(Applied::Int(0)));
        assert_eq!(s.apply(msetnx("g"), 0), Ok(Applied::Int(1)));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn appends_keep_the_deadline_make_empty_keys_and_see_expired_keys_as_missing() {
        let s = Store::new();
        let append = |k: &str, v: &str, now| {
            s.apply(
                Mutation::WriteRange {
                    key: b(k),
                    offset: None,
                    value: b(v),
                },
                now,
            )
        };
        assert_eq!(append("e", "", 0), Ok(Applied::Int(0)));
        assert!(matches!(s.get_at(b"e", 0), Some(Value::Str(v)) if v.is_empty()));
        set(&s, "t", "ab", Some(1_000));
        assert_eq!(append("t", "cd", 10), Ok(Applied::Int(4)));
        assert_eq!(
            s.ttl_ms(b"t", 10),
            Some(Some(990)),
            "APPEND keeps the deadline"
        );
        assert!(matches!(s.get_at(b"t", 10), Some(Value::Str(v)) if v == "abcd"));
        assert_eq!(
            append("t", "x", 1_000),
            Ok(Applied::Int(1)),
            "an expired key is gone"
        );
        assert_eq!(s.ttl_ms(b"t", 1_000), Some(None));
    }
}
