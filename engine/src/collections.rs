//! Redis hashes and lists: the [`Hash`] and [`List`] values, and how the store applies the
//! mutations that change them (HSET, HDEL, LPUSH/RPUSH and their X forms, LPOP/RPOP).
//!
//! Values are shared handles (`Arc`): a write changes a value in place when no reader holds
//! it and copies it otherwise, so readers never see a half-applied write. A hash or list left
//! empty is removed, as in Redis. Each value keeps its own byte count for memory accounting.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use bytes::Bytes;
use shardai_protocol::Error;

use crate::{
    expiry::Expiry,
    key::Key,
    mutation::Applied,
    small::compact,
    store::{Entry, Store, Value},
};

/// Type name TYPE reports for hashes.
pub const HASH_TYPE: &str = "hash";
/// Type name TYPE reports for lists.
pub const LIST_TYPE: &str = "list";

/// Bytes counted per field or element beyond its own bytes.
const OVERHEAD: usize = 16;

/// A Redis hash: fields and their values.
#[derive(Debug, Clone, Default)]
pub struct Hash {
    fields: HashMap<Bytes, Bytes, foldhash::fast::RandomState>,
    bytes: usize,
}

impl Hash {
    /// A hash of `pairs` (a later pair for the same field wins).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Bytes, Bytes)>) -> Hash {
        let mut h = Hash::default();
        for (f, v) in pairs {
            h.insert(f, v);
        }
        h
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.fields.get(field)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when it has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Fields and values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.fields.iter()
    }

    /// Approximate bytes held.
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Sets `field`; true when the field is new.
    fn insert(&mut self, field: Bytes, value: Bytes) -> bool {
        let (field_len, value_len) = (field.len(), value.len());
        match self.fields.insert(field, value) {
            Some(old) => {
                self.bytes = self.bytes + value_len - old.len();
                false
            }
            None => {
                self.bytes += field_len + value_len + OVERHEAD;
                true
            }
        }
    }

    /// Removes `field`; true when it was there.
    fn remove(&mut self, field: &[u8]) -> bool {
        match self.fields.remove(field) {
            Some(v) => {
                self.bytes -= field.len() + v.len() + OVERHEAD;
                true
            }
            None => false,
        }
    }
}

/// A Redis list.
#[derive(Debug, Clone, Default)]
pub struct List {
    items: VecDeque<Bytes>,
    bytes: usize,
}

impl List {
    /// A list of `items`, head first.
    pub fn from_items(items: impl IntoIterator<Item = Bytes>) -> List {
        let mut l = List::default();
        for v in items {
            l.push(false, v);
        }
        l
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when it has no element.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Elements, head first.
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.items.iter()
    }

    /// Approximate bytes held.
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// LRANGE's elements: `start` and `stop` inclusive, negative counting from the tail.
    pub fn range(&self, start: i64, stop: i64) -> Vec<Bytes> {
        match range_bounds(self.items.len(), start, stop) {
            Some((a, b)) => self.items.range(a..=b).cloned().collect(),
            None => Vec::new(),
        }
    }

    /// LINDEX's element: negative counting from the tail.
    pub fn index(&self, i: i64) -> Option<&Bytes> {
        let len = self.items.len() as i64;
        let i = if i < 0 { len + i } else { i };
        (0..len).contains(&i).then(|| &self.items[i as usize])
    }

    fn push(&mut self, left: bool, v: Bytes) {
        self.bytes += v.len() + OVERHEAD;
        if left {
            self.items.push_front(v);
        } else {
            self.items.push_back(v);
        }
    }

    fn pop(&mut self, left: bool) -> Option<Bytes> {
        let v = if left {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        }?;
        self.bytes -= v.len() + OVERHEAD;
        Some(v)
    }
}

/// The inclusive index range LRANGE selects in a list of `len`, or None when it is empty.
pub fn range_bounds(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

impl Store {
    /// Changes the live hash or list at `key` with `f`, creating it from `new` when the key
    /// is missing (`new` None: leave a missing key alone and return `missing`). The value
    /// is removed when `f` leaves it empty. WRONGTYPE for a value of another type.
    fn change<T>(
        &self,
        key: &Bytes,
        at_ms: u64,
        new: Option<fn() -> Value>,
        missing: T,
        f: impl FnOnce(&mut Value) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut stripe = self.stripe_of(key).write();
        let live = stripe.get(&key[..]).is_some_and(|e| e.live(at_ms));
        if !live {
            let Some(new) = new else {
                return Ok(missing);
            };
            let mut value = new();
            let out = f(&mut value)?;
            if value_len(&value) > 0 {
                let entry = Entry {
                    value,
                    expire_at: Expiry::NONE,
                };
                let key = Key::copy(key);
                let prev = stripe.insert(key.clone(), entry.clone());
                self.account(&key, prev.as_ref(), Some(&entry));
            }
            return Ok(out);
        }
        let entry = stripe.get_mut(&key[..]).expect("checked live above");
        // `f` answers WRONGTYPE for a value of another type before it changes anything.
        let before = entry.value.size();
        let out = f(&mut entry.value)?;
        self.note_resized(before, entry.value.size());
        if value_len(&entry.value) == 0
            && let Some(prev) = stripe.remove(&key[..])
        {
            self.account(key, Some(&prev), None);
        }
        Ok(out)
    }

    /// HSET: the number of fields added.
    pub(crate) fn apply_hset(
        &self,
        key: &Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        self.change(key, at_ms, Some(new_hash), Applied::Int(0), |v| {
            let h = hash_mut(v)?;
            let added = pairs
                .into_iter()
                .map(|(f, x)| h.insert(compact(f), compact(x)) as i64)
                .sum();
            Ok(Applied::Int(added))
        })
    }

    /// HDEL: the number of fields removed.
    pub(crate) fn apply_hdel(
        &self,
        key: &Bytes,
        fields: &[Bytes],
        at_ms: u64,
    ) -> Result<Applied, Error> {
        self.change(key, at_ms, None, Applied::Int(0), |v| {
            let h = hash_mut(v)?;
            Ok(Applied::Int(
                fields.iter().filter(|f| h.remove(f)).count() as i64
            ))
        })
    }

    /// LPUSH / RPUSH (LPUSHX / RPUSHX with `existing_only`): the list's new length.
    pub(crate) fn apply_push(
        &self,
        key: &Bytes,
        left: bool,
        values: Vec<Bytes>,
        existing_only: bool,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        let new = (!existing_only).then_some(new_list as fn() -> Value);
        self.change(key, at_ms, new, Applied::Int(0), |v| {
            let l = list_mut(v)?;
            for x in values {
                l.push(left, compact(x));
            }
            Ok(Applied::Int(l.len() as i64))
        })
    }

    /// LPOP / RPOP: up to `count` elements (None when the key is missing).
    pub(crate) fn apply_pop(
        &self,
        key: &Bytes,
        left: bool,
        count: usize,
        at_ms: u64,
    ) -> Result<Applied, Error> {
        self.change(key, at_ms, None, Applied::Values(None), |v| {
            let l = list_mut(v)?;
            let out = (0..count).map_while(|_| l.pop(left)).collect();
            Ok(Applied::Values(Some(out)))
        })
    }
}

fn new_hash() -> Value {
    Value::Hash(Arc::default())
}

fn new_list() -> Value {
    Value::List(Arc::default())
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Hash(h) => h.len(),
        Value::List(l) => l.len(),
        _ => 1,
    }
}

fn hash_mut(v: &mut Value) -> Result<&mut Hash, Error> {
    match v {
        Value::Hash(h) => Ok(Arc::make_mut(h)),
        _ => Err(Error::WrongType),
    }
}

fn list_mut(v: &mut Value) -> Result<&mut List, Error> {
    match v {
        Value::List(l) => Ok(Arc::make_mut(l)),
        _ => Err(Error::WrongType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::Mutation;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn hset(s: &Store, k: &str, pairs: &[(&str, &str)]) -> Result<Applied, Error> {
        let pairs = pairs.iter().map(|(f, v)| (b(f), b(v))).collect();
        s.apply(Mutation::HSet { key: b(k), pairs }, 0)
    }

    fn push(s: &Store, k: &str, left: bool, vals: &[&str], x: bool) -> Result<Applied, Error> {
        let m = Mutation::Push {
            key: b(k),
            left,
            values: vals.iter().map(|v| b(v)).collect(),
            existing_only: x,
        };
        s.apply(m, 0)
    }

    fn pop(s: &Store, k: &str, left: bool, count: usize) -> Result<Applied, Error> {
        s.apply(
            Mutation::Pop {
                key: b(k),
                left,
                count,
            },
            0,
        )
    }

    #[test]
    fn hashes_count_new_fields_and_go_with_their_last_field() {
        let s = Store::new();
        assert_eq!(
            hset(&s, "h", &[("a", "1"), ("b", "2")]),
            Ok(Applied::Int(2))
        );
        assert_eq!(
            hset(&s, "h", &[("a", "10"), ("c", "3")]),
            Ok(Applied::Int(1))
        );
        let Some(Value::Hash(h)) = s.get(b"h") else {
            panic!()
        };
        assert_eq!((h.len(), h.get(b"a")), (3, Some(&b("10"))));
        let used = s.used_bytes();
        let del = |fields: &[&str]| {
            let fields = fields.iter().map(|f| b(f)).collect();
            s.apply(
                Mutation::HDel {
                    key: b("h"),
                    fields,
                },
                0,
            )
        };
        assert_eq!(del(&["a", "zz"]), Ok(Applied::Int(1)));
        assert!(s.used_bytes() < used);
        // A reader's handle is not changed by a later write.
        assert_eq!(h.len(), 3);
        assert_eq!(del(&["b", "c"]), Ok(Applied::Int(2)));
        assert!(s.get(b"h").is_none());
        assert_eq!((s.len(), s.used_bytes()), (0, 0));
        assert_eq!(del(&["a"]), Ok(Applied::Int(0)));
        s.apply(Mutation::set(b("str"), b("v")), 0).unwrap();
        assert_eq!(hset(&s, "str", &[("a", "1")]), Err(Error::WrongType));
    }

    #[test]
    fn lists_push_pop_and_range() {
        let s = Store::new();
        assert_eq!(push(&s, "l", false, &["a", "b"], true), Ok(Applied::Int(0)));
        assert!(s.get(b"l").is_none());
        assert_eq!(
            push(&s, "l", false, &["a", "b"], false),
            Ok(Applied::Int(2))
        );
        assert_eq!(push(&s, "l", true, &["x", "y"], true), Ok(Applied::Int(4)));
        let Some(Value::List(l)) = s.get(b"l") else {
            panic!()
        };
        assert_eq!(l.range(0, -1), [b("y"), b("x"), b("a"), b("b")]);
        assert_eq!(l.range(-2, 100), [b("a"), b("b")]);
        assert_eq!(l.range(3, 1), Vec::<Bytes>::new());
        assert_eq!(l.range(-100, 0), [b("y")]);
        assert_eq!(l.range(5, 10), Vec::<Bytes>::new());
        assert_eq!((l.index(-1), l.index(4)), (Some(&b("b")), None));
        assert_eq!(
            pop(&s, "l", true, 1),
            Ok(Applied::Values(Some(vec![b("y")])))
        );
        assert_eq!(
            pop(&s, "l", false, 2),
            Ok(Applied::Values(Some(vec![b("b"), b("a")])))
        );
        assert_eq!(
            pop(&s, "l", false, 5),
            Ok(Applied::Values(Some(vec![b("x")])))
        );
        assert!(s.get(b"l").is_none());
        assert_eq!((s.len(), s.used_bytes()), (0, 0));
        assert_eq!(pop(&s, "l", false, 1), Ok(Applied::Values(None)));
        hset(&s, "h", &[("a", "1")]).unwrap();
        assert_eq!(push(&s, "h", true, &["a"], false), Err(Error::WrongType));
        assert_eq!(pop(&s, "h", true, 1), Err(Error::WrongType));
    }

    #[test]
    fn range_bounds_follow_redis() {
        assert_eq!(range_bounds(0, 0, -1), None);
        assert_eq!(range_bounds(3, 0, -1), Some((0, 2)));
        assert_eq!(range_bounds(3, -1, -1), Some((2, 2)));
        assert_eq!(range_bounds(3, 1, 0), None);
        assert_eq!(range_bounds(3, -5, -4), None);
    }
}
