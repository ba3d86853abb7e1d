//! `Mutation`: every change to a shard's keyspace, as a value.
//!
//! Command code never writes to the `Store` directly: it builds a `Mutation` and hands it to
//! the shard's `Proposer`. Applying a mutation is deterministic given the store's state and
//! the timestamp the proposer stamped on it, so every replica that applies the same log in
//! the same order reaches the same state (conditions such as SET NX, INCR's integer check and
//! expiry are decided here, at apply time, not by the command that proposed it).

use std::sync::Arc;

use bytes::Bytes;
use shardai_protocol::{
    Error,
    command::{ExpireCond, SetCond},
    frame::parse_i64,
};

use crate::{
    collections::{Hash, List},
    expiry::Expiry,
    key::Key,
    model::Model,
    script::Script,
    store::{Entry, Store, Value},
    string::Str,
    tensor::Tensor,
};

/// What happens to a key's deadline when SET replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// No deadline (SET without options clears one).
    None,
    /// Keep the current deadline (KEEPTTL).
    Keep,
    /// Absolute Unix time in ms.
    At(u64),
}

/// A change to the keyspace.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// AI.TENSORSET: store (or replace) a tensor.
    SetTensor {
        /// The key.
        key: Bytes,
        /// The tensor, already validated.
        tensor: Tensor,
    },
    /// Several tensors at once: the outputs of one model execution, all or none.
    SetTensors(Vec<(Bytes, Tensor)>),
    /// AI.MODELSTORE: store (or replace) a model, already loaded and checked.
    SetModel {
        /// The key.
        key: Bytes,
        /// The model.
        model: Arc<Model>,
    },
    /// AI.MODELDEL: delete a model (errors if the key holds none).
    DelModel(Bytes),
    /// AI.SCRIPTSTORE / SCRIPTSET: store (or replace) a script, already compiled and checked.
    SetScript {
        /// The key.
        key: Bytes,
        /// The script.
        script: Arc<Script>,
    },
    /// AI.SCRIPTDEL: delete a script (errors if the key holds none).
    DelScript(Bytes),
    /// SET with its options.
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// NX / XX.
        cond: Option<SetCond>,
        /// GET: return the old value (which must be a string).
        get: bool,
        /// The new deadline.
        deadline: Deadline,
    },
    /// MSET.
    MSet(Vec<(Bytes, Bytes)>),
    /// INCRBY (and INCR, DECR, DECRBY).
    IncrBy {
        /// The key.
        key: Bytes,
        /// The increment.
        delta: i64,
    },
    /// DEL / UNLINK.
    Del(Vec<Bytes>),
    /// FLUSHALL / FLUSHDB.
    Flush,
    /// Removes every key whose deadline is at or before the mutation's timestamp.
    ExpireDue,
    /// HSET (and HMSET): set fields of a hash, creating it.
    HSet {
        /// The key.
        key: Bytes,
        /// Fields and values, in the order given.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// HDEL: remove fields (the key goes with its last field).
    HDel {
        /// The key.
        key: Bytes,
        /// The fields.
        fields: Vec<Bytes>,
    },
    /// LPUSH / RPUSH / LPUSHX / RPUSHX.
    Push {
        /// The key.
        key: Bytes,
        /// At the head (LPUSH) rather than the tail.
        left: bool,
        /// The elements, pushed one after the other.
        values: Vec<Bytes>,
        /// The X forms: only push onto an existing list.
        existing_only: bool,
    },
    /// LPOP / RPOP (the key goes with its last element).
    Pop {
        /// The key.
        key: Bytes,
        /// From the head (LPOP) rather than the tail.
        left: bool,
        /// At most this many elements.
        count: usize,
    },
    /// A whole hash, replacing any value (RESTORE).
    SetHash {
        /// The key.
        key: Bytes,
        /// The hash.
        hash: Arc<Hash>,
    },
    /// A whole list, replacing any value (RESTORE).
    SetList {
        /// The key.
        key: Bytes,
        /// The list.
        list: Arc<List>,
    },
    /// EXEC: mutations applied one after the other as one change (one log entry), each
    /// with its own result; one failing does not stop the others (as in Redis).
    Batch(Vec<Mutation>),
    /// EXPIRE and its forms (a deadline), PERSIST (none), GETEX: the key's new deadline.
    Expire {
        /// The key.
        key: Bytes,
        /// Unix ms (at or before the mutation's time: the key is deleted); `None` removes
        /// the deadline.
        at: Option<i64>,
        /// NX / XX / GT / LT.
        cond: ExpireCond,
    },
    /// RENAME / RENAMENX: the value and its deadline move to `to`.
    Rename {
        /// The key renamed.
        from: Bytes,
        /// Its new name.
        to: Bytes,
        /// Only when `to` does not exist.
        nx: bool,
    },
    /// COPY: `to` gets `from`'s value and deadline.
    Copy {
        /// The source.
        from: Bytes,
        /// The destination.
        to: Bytes,
        /// Replace an existing destination.
        replace: bool,
    },
    /// GETDEL: deletes a string key, answering its value.
    GetDel(Bytes),
    /// SETRANGE (at `offset`) and APPEND (`None`).
    WriteRange {
        /// The key.
        key: Bytes,
        /// Where the bytes go; `None` appends.
        offset: Option<u64>,
        /// The bytes.
        value: Bytes,
    },
    /// MSETNX: every pair, or none when one key exists.
    MSetNx(Vec<(Bytes, Bytes)>),
    /// INCRBYFLOAT.
    IncrByFloat {
        /// The key.
        key: Bytes,
        /// The increment.
        delta: f64,
    },
    /// GETEX: a string's value, its deadline changed as asked (`None`: kept; `Some(None)`:
    /// removed; `Some(Some(t))`: Unix ms, at or before the mutation's time deleting it).
    GetEx {
        /// The key.
        key: Bytes,
        /// The deadline change.
        change: Option<Option<i64>>,
    },
}

impl Mutation {
    /// A plain SET, for tests and tools.
    pub fn set(key: Bytes, value: Bytes) -> Mutation {
        Mutation::Set {
            key,
            value,
            cond: None,
            get: false,
            deadline: Deadline::None,
        }
    }
}

impl Mutation {
    /// The mutation with each small tensor it stores copied by the calling thread (see
    /// [`Tensor::relocated`]): for a mutation built by another thread, applied by this one.
    pub fn relocated(self) -> Mutation {
        match self {
            Mutation::SetTensor { key, tensor } => Mutation::SetTensor {
                key,
                tensor: tensor.relocated(),
            },
            Mutation::SetTensors(v) => {
                Mutation::SetTensors(v.into_iter().map(|(k, t)| (k, t.relocated())).collect())
            }
            Mutation::Batch(v) => Mutation::Batch(v.into_iter().map(Mutation::relocated).collect()),
            m => m,
        }
    }

    /// The first key the mutation writes (None for FLUSHALL and expiry sweeps).
    pub fn first_key(&self) -> Option<&Bytes> {
        match self {
            Mutation::SetTensor { key, .. }
            | Mutation::SetModel { key, .. }
            | Mutation::Set { key, .. }
            | Mutation::IncrBy { key, .. }
            | Mutation::DelModel(key)
            | Mutation::SetScript { key, .. }
            | Mutation::DelScript(key)
            | Mutation::HSet { key, .. }
            | Mutation::HDel { key, .. }
            | Mutation::Push { key, .. }
            | Mutation::Pop { key, .. }
            | Mutation::SetHash { key, .. }
            | Mutation::SetList { key, .. }
            | Mutation::Expire { key, .. }
            | Mutation::GetDel(key)
            | Mutation::WriteRange { key, .. }
            | Mutation::IncrByFloat { key, .. }
            | Mutation::GetEx { key, .. } => Some(key),
            Mutation::Rename { from, .. } | Mutation::Copy { from, .. } => Some(from),
            Mutation::MSetNx(v) => v.first().map(|(k, _)| k),
            Mutation::SetTensors(v) => v.first().map(|(k, _)| k),
            Mutation::MSet(v) => v.first().map(|(k, _)| k),
            Mutation::Del(v) => v.first(),
            Mutation::Batch(v) => v.iter().find_map(Mutation::first_key),
            Mutation::Flush | Mutation::ExpireDue => None,
        }
    }
}

/// The result of applying a mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Done; reply `OK`.
    Ok,
    /// A count or a new integer value.
    Int(i64),
    /// SET: whether the value was written and, with GET, the old value.
    Set {
        /// False when NX/XX prevented the write.
        written: bool,
        /// The previous string value (only with GET).
        old: Option<Bytes>,
    },
    /// LPOP / RPOP: the elements taken (None: no such key).
    Values(Option<Vec<Bytes>>),
    /// A batch's results, one per mutation, in order.
    Batch(Vec<Result<Applied, Error>>),
    /// A string value, or nil (GETDEL, INCRBYFLOAT).
    Value(Option<Bytes>),
}

impl Store {
    /// Applies one mutation at time `at_ms` (Unix ms stamped by the proposer).
    pub fn apply(&self, m: Mutation, at_ms: u64) -> Result<Applied, Error> {
        // A batch's mutations count themselves.
        if !matches!(m, Mutation::Batch(_)) {
            self.note_applied();
        }
        match m {
            Mutation::SetTensor { key, tensor } => {
                self.replace_same_type(key, Value::Tensor(tensor), at_ms)
            }
            Mutation::SetTensors(outputs) => {
                for (key, _) in &outputs {
                    let stripe = self.stripe_of(key).read();
                    let cur = stripe.get(&key[..]).filter(|e| e.live(at_ms));
                    if cur.is_some_and(|e| !matches!(e.value, Value::Tensor(_))) {
                        return Err(Error::WrongType);
                    }
                }
                for (key, tensor) in outputs {
                    self.put(key, Value::Tensor(tensor), None);
                }
                Ok(Applied::Ok)
            }
            Mutation::SetModel { key, model } => {
                self.replace_same_type(key, Value::Model(model), at_ms)
            }
            Mutation::DelModel(key) => self.del_typed(&key, at_ms, Error::ModelKeyEmpty, |v| {
                matches!(v, Value::Model(_))
            }),
            Mutation::SetScript { key, script } => {
                self.replace_same_type(key, Value::Script(script), at_ms)
            }
            Mutation::DelScript(key) => self.del_typed(&key, at_ms, Error::ScriptKeyEmpty, |v| {
                matches!(v, Value::Script(_))
            }),
            Mutation::Set {
                key,
                value,
                cond,
                get,
                deadline,
            } => {
                // Copied before the stripe's lock: a value may be large.
                let value = Str::new(&value);
                let mut stripe = self.stripe_of(&key).write();
                let current = stripe.get(&key[..]).filter(|e| e.live(at_ms));
                let old = match (get, current.map(|e| &e.value)) {
                    (true, Some(Value::Str(s))) => Some(s.to_bytes()),
                    (true, Some(_)) => return Err(Error::WrongType),
                    _ => None,
                };
                let exists = current.is_some();
                let allowed = match cond {
                    Some(SetCond::Nx) => !exists,
                    Some(SetCond::Xx) => exists,
                    None => true,
                };
                if allowed {
                    let expire_at = match deadline {
                        Deadline::None => Expiry::NONE,
                        Deadline::Keep => current.map_or(Expiry::NONE, |e| e.expire_at),
                        Deadline::At(t) => Expiry::at(t),
                    };
                    let entry = Entry {
                        value: Value::Str(value),
                        expire_at,
                    };
                    let key = Key::copy(&key);
                    let prev = stripe.insert(key.clone(), entry.clone());
                    self.account(&key, prev.as_ref(), Some(&entry));
                }
                Ok(Applied::Set {
                    written: allowed,
                    old,
                })
            }
            Mutation::MSet(pairs) => {
                for (k, v) in pairs {
                    self.put(k, Value::Str(Str::new(&v)), None);
                }
                Ok(Applied::Ok)
            }
            Mutation::IncrBy { key, delta } => {
                let mut stripe = self.stripe_of(&key).write();
                let current = stripe.get_mut(&key[..]).filter(|e| e.live(at_ms));
                let (old, expire_at) = match &current {
                    None => (0, Expiry::NONE),
                    Some(Entry {
                        value: Value::Str(s),
                        expire_at,
                    }) => (parse_i64(s).ok_or(Error::NotInteger)?, *expire_at),
                    Some(_) => return Err(Error::WrongType),
                };
                let new = old.checked_add(delta).ok_or(Error::Overflow)?;
                let text = Str::from(itoa::Buffer::new().format(new));
                match current {
                    Some(e) => {
                        let before = e.value.size();
                        e.value = Value::Str(text);
                        self.note_resized(before, e.value.size());
                    }
                    None => {
                        let entry = Entry {
                            value: Value::Str(text),
                            expire_at,
                        };
                        let key = Key::copy(&key);
                        let prev = stripe.insert(key.clone(), entry.clone());
                        self.account(&key, prev.as_ref(), Some(&entry));
                    }
                }
                Ok(Applied::Int(new))
            }
            Mutation::Del(keys) => {
                let mut n = 0;
                for k in keys {
                    let mut stripe = self.stripe_of(&k).write();
                    if let Some(prev) = stripe.remove(&k[..]) {
                        self.account(&k, Some(&prev), None);
                        n += prev.live(at_ms) as i64;
                    }
                }
                Ok(Applied::Int(n))
            }
            Mutation::Flush => {
                for s in self.stripes() {
                    let mut s = s.write();
                    for (k, e) in s.drain() {
                        self.account(&k, Some(&e), None);
                    }
                }
                Ok(Applied::Ok)
            }
            Mutation::HSet { key, pairs } => self.apply_hset(&key, pairs, at_ms),
            Mutation::HDel { key, fields } => self.apply_hdel(&key, &fields, at_ms),
            Mutation::Push {
                key,
                left,
                values,
                existing_only,
            } => self.apply_push(&key, left, values, existing_only, at_ms),
            Mutation::Pop { key, left, count } => self.apply_pop(&key, left, count, at_ms),
            Mutation::SetHash { key, hash } => {
                self.put(key, Value::Hash(hash), None);
                Ok(Applied::Ok)
            }
            Mutation::SetList { key, list } => {
                self.put(key, Value::List(list), None);
                Ok(Applied::Ok)
            }
            Mutation::ExpireDue => {
                let mut n = 0;
                if self.volatile_len() > 0 {
                    self.reset_earliest_expiry();
                    for s in self.stripes() {
                        let mut s = s.write();
                        s.retain(|k, e| {
                            let keep = e.live(at_ms);
                            if !keep {
                                self.account(k, Some(e), None);
                                n += 1;
                            } else if let Some(t) = e.expire_at.get() {
                                self.note_deadline(t);
                            }
                            keep
                        });
                    }
                }
                Ok(Applied::Int(n))
            }
            Mutation::Batch(ms) => Ok(Applied::Batch(
                ms.into_iter().map(|m| self.apply(m, at_ms)).collect(),
            )),
            Mutation::Expire { key, at, cond } => self.apply_expire(&key, at, cond, at_ms),
            Mutation::Rename { from, to, nx } => self.apply_rename(&from, to, nx, at_ms),
            Mutation::Copy { from, to, replace } => self.apply_copy(&from, to, replace, at_ms),
            Mutation::GetDel(key) => self.apply_getdel(&key, at_ms),
            Mutation::WriteRange { key, offset, value } => {
                self.apply_write_range(key, offset, &value, at_ms)
            }
            Mutation::MSetNx(pairs) => self.apply_msetnx(pairs, at_ms),
            Mutation::IncrByFloat { key, delta } => self.apply_incr_float(key, delta, at_ms),
            Mutation::GetEx { key, change } => self.apply_getex(&key, change, at_ms),
        }
    }

    /// Deletes `key` if it holds a live value that `is_kind`; else `missing` (no key) or
    /// WRONGTYPE (AI.MODELDEL, AI.SCRIPTDEL).
    fn del_typed(
        &self,
        key: &Bytes,
        at_ms: u64,
        missing: Error,
        is_kind: impl Fn(&Value) -> bool,
    ) -> Result<Applied, Error> {
        let mut stripe = self.stripe_of(key).write();
        match stripe.get(&key[..]).filter(|e| e.live(at_ms)) {
            None => return Err(missing),
            Some(e) if !is_kind(&e.value) => return Err(Error::WrongType),
            Some(_) => {}
        }
        if let Some(prev) = stripe.remove(&key[..]) {
            self.account(key, Some(&prev), None);
        }
        Ok(Applied::Ok)
    }

    /// Stores `value` unless the key holds a live value of another type (RedisAI's
    /// WRONGTYPE for TENSORSET over a model, MODELSTORE over a string, ...).
    fn replace_same_type(&self, key: Bytes, value: Value, at_ms: u64) -> Result<Applied, Error> {
        let mut stripe = self.stripe_of(&key).write();
        let current = stripe.get(&key[..]).filter(|e| e.live(at_ms));
        if current
            .is_some_and(|e| std::mem::discriminant(&e.value) != std::mem::discriminant(&value))
        {
            return Err(Error::WrongType);
        }
        let entry = Entry {
            value,
            expire_at: Expiry::NONE,
        };
        let key = Key::copy(&key);
        let prev = stripe.insert(key.clone(), entry.clone());
        self.account(&key, prev.as_ref(), Some(&entry));
        Ok(Applied::Ok)
    }

    /// Every key with its value and deadline: cheap handles, taken stripe by stripe. Called
    /// by a replica's state machine between two applies, so the result is the state at one
    /// log position (the input of a snapshot).
    pub fn dump(&self) -> Vec<crate::store::KeyRecord> {
        let mut out = Vec::with_capacity(self.len());
        for s in self.stripes() {
            let s = s.read();
            out.extend(
                s.iter()
                    .map(|(k, e)| (k.clone(), e.value.clone(), e.expire_at.get())),
            );
        }
        out
    }

    /// Replaces the whole keyspace with `entries` (installing a snapshot).
    pub fn replace_all(&self, entries: impl IntoIterator<Item = crate::store::KeyRecord>) {
        let _ = self.apply(Mutation::Flush, 0);
        for (k, v, at) in entries {
            self.put(k, v, at);
        }
    }

    pub(crate) fn put(&self, key: impl Into<Key>, value: Value, expire_at: Option<u64>) {
        let key = key.into();
        let entry = Entry {
            value,
            expire_at: expire_at.into(),
        };
        let mut stripe = self.stripe_of(&key).write();
        let prev = stripe.insert(key.clone(), entry.clone());
        self.account(&key, prev.as_ref(), Some(&entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_applies_in_order_and_keeps_going_after_an_error() {
        let s = Store::new();
        let r = s
            .apply(
                Mutation::Batch(vec![
                    Mutation::set(b("k"), b("x")),
                    Mutation::IncrBy {
                        key: b("k"),
                        delta: 1,
                    },
                    Mutation::set(b("k"), b("41")),
                    Mutation::IncrBy {
                        key: b("k"),
                        delta: 1,
                    },
                ]),
                1,
            )
            .unwrap();
        let Applied::Batch(r) = r else {
            panic!("{r:?}")
        };
        assert_eq!(r.len(), 4);
        assert_eq!(r[1], Err(Error::NotInteger));
        assert_eq!(r[3], Ok(Applied::Int(42)));
        assert_eq!(get(&s, "k", 1), Some(b("42")));
        let m = Mutation::Batch(vec![Mutation::Flush, Mutation::Del(vec![b("a")])]);
        assert_eq!(m.first_key(), Some(&b("a")));
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn get(s: &Store, k: &str, now: u64) -> Option<Bytes> {
        match s.get_at(k.as_bytes(), now)? {
            Value::Str(v) => Some(v.into_bytes()),
            _ => panic!("not a string"),
        }
    }

    #[test]
    fn set_conditions_and_get() {
        let s = Store::new();
        let set = |cond, get| Mutation::Set {
            key: b("k"),
            value: b("v2"),
            cond,
            get,
            deadline: Deadline::None,
        };
        assert_eq!(
            s.apply(set(Some(SetCond::Xx), false), 0).unwrap(),
            Applied::Set {
                written: false,
                old: None
            }
        );
        assert_eq!(
            s.apply(Mutation::set(b("k"), b("v1")), 0).unwrap(),
            Applied::Set {
                written: true,
                old: None
            }
        );
        assert_eq!(
            s.apply(set(Some(SetCond::Nx), true), 0).unwrap(),
            Applied::Set {
                written: false,
                old: Some(b("v1"))
            }
        );
        assert_eq!(
            s.apply(set(None, true), 0).unwrap(),
            Applied::Set {
                written: true,
                old: Some(b("v1"))
            }
        );
        assert_eq!(get(&s, "k", 0), Some(b("v2")));
    }

    #[test]
    fn deadlines() {
        let s = Store::new();
        let m = Mutation::Set {
            key: b("k"),
            value: b("v"),
            cond: None,
            get: false,
            deadline: Deadline::At(100),
        };
        s.apply(m, 0).unwrap();
        assert_eq!(s.volatile_len(), 1);
        assert_eq!(get(&s, "k", 99), Some(b("v")));
        assert_eq!(get(&s, "k", 100), None, "expired keys read as missing");
        let keep = Mutation::Set {
            key: b("k"),
            value: b("w"),
            cond: None,
            get: false,
            deadline: Deadline::Keep,
        };
        s.apply(keep, 50).unwrap();
        assert_eq!(s.ttl_ms(b"k", 50), Some(Some(50)));
        let nx = Mutation::Set {
            key: b("k"),
            value: b("x"),
            cond: Some(SetCond::Nx),
            get: false,
            deadline: Deadline::None,
        };
        assert_eq!(
            s.apply(nx, 200).unwrap(),
            Applied::Set {
                written: true,
                old: None
            },
            "an expired key counts as missing"
        );
        s.apply(
            Mutation::Set {
                key: b("e"),
                value: b("v"),
                cond: None,
                get: false,
                deadline: Deadline::At(10),
            },
            0,
        )
        .unwrap();
        assert_eq!(s.apply(Mutation::ExpireDue, 10).unwrap(), Applied::Int(1));
        assert_eq!(s.len(), 1);
        assert_eq!(s.volatile_len(), 0);
    }

    #[test]
    fn expiry_is_due_only_once_a_deadline_passed() {
        let s = Store::new();
        let set = |k: &str, deadline| Mutation::Set {
            key: b(k),
            value: b("v"),
            cond: None,
            get: false,
            deadline,
        };
        assert!(!s.expiry_due(u64::MAX - 1));
        s.apply(set("later", Deadline::At(1000)), 0).unwrap();
        s.apply(set("sooner", Deadline::At(100)), 0).unwrap();
        assert!(!s.expiry_due(99));
        assert!(s.expiry_due(100));
        assert_eq!(s.apply(Mutation::ExpireDue, 100).unwrap(), Applied::Int(1));
        // The scan found the next deadline.
        assert!(!s.expiry_due(999));
        assert!(s.expiry_due(1000));
        // A removed deadline leaves an early guess; the next scan corrects it.
        s.apply(set("x", Deadline::At(200)), 0).unwrap();
        s.apply(Mutation::Del(vec![b("x")]), 0).unwrap();
        assert!(s.expiry_due(300));
        assert_eq!(s.apply(Mutation::ExpireDue, 300).unwrap(), Applied::Int(0));
        assert!(!s.expiry_due(300));
        // No deadline left: never due.
        s.apply(set("later", Deadline::None), 0).unwrap();
        assert!(!s.expiry_due(u64::MAX - 1));
    }

    #[test]
    fn incr_and_types() {
        let s = Store::new();
        assert_eq!(
            s.apply(
                Mutation::IncrBy {
                    key: b("n"),
                    delta: 5
                },
                0
            )
            .unwrap(),
            Applied::Int(5)
        );
        assert_eq!(
            s.apply(
                Mutation::IncrBy {
                    key: b("n"),
                    delta: -7
                },
                0
            )
            .unwrap(),
            Applied::Int(-2)
        );
        s.apply(Mutation::set(b("s"), b("abc")), 0).unwrap();
        assert_eq!(
            s.apply(
                Mutation::IncrBy {
                    key: b("s"),
                    delta: 1
                },
                0
            )
            .unwrap_err(),
            Error::NotInteger
        );
        s.apply(Mutation::set(b("m"), b("9223372036854775807")), 0)
            .unwrap();
        assert_eq!(
            s.apply(
                Mutation::IncrBy {
                    key: b("m"),
                    delta: 1
                },
                0
            )
            .unwrap_err(),
            Error::Overflow
        );
        let t = Tensor::zeros(shardai_protocol::DType::Float, vec![1], 64).unwrap();
        s.apply(
            Mutation::SetTensor {
                key: b("t"),
                tensor: t,
            },
            0,
        )
        .unwrap();
        assert_eq!(
            s.apply(
                Mutation::IncrBy {
                    key: b("t"),
                    delta: 1
                },
                0
            )
            .unwrap_err(),
            Error::WrongType
        );
        let t2 = Tensor::zeros(shardai_protocol::DType::Int8, vec![2], 64).unwrap();
        let over_string = Mutation::SetTensor {
            key: b("s"),
            tensor: t2.clone(),
        };
        assert_eq!(s.apply(over_string, 0).unwrap_err(), Error::WrongType);
        assert_eq!(
            s.apply(
                Mutation::SetTensor {
                    key: b("t"),
                    tensor: t2
                },
                0
            )
            .unwrap(),
            Applied::Ok
        );
        let get = Mutation::Set {
            key: b("t"),
            value: b("x"),
            cond: None,
            get: true,
            deadline: Deadline::None,
        };
        assert_eq!(s.apply(get, 0).unwrap_err(), Error::WrongType);
        assert_eq!(s.get_at(b"t", 0).unwrap().type_name(), "AI_TENSOR");
    }

    #[test]
    fn del_and_flush_keep_counts() {
        let s = Store::new();
        for k in ["a", "b", "c"] {
            s.apply(Mutation::set(b(k), b("1234")), 0).unwrap();
        }
        assert_eq!(
            s.apply(Mutation::Del(vec![b("a"), b("zz"), b("b")]), 0)
                .unwrap(),
            Applied::Int(2)
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.used_bytes(), 5);
        s.apply(Mutation::Flush, 0).unwrap();
        assert_eq!((s.len(), s.used_bytes()), (0, 0));
    }
}
