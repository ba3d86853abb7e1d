//! `Store`: the keyspace of one shard.
//!
//! A fixed array of lock-striped hash maps (the same idea as `dashmap`, kept here so that
//! SCAN can walk the keyspace one stripe at a time with a plain integer cursor). A key's
//! stripe is given by its Redis Cluster hash slot, so the keys of one slot (CLUSTER
//! GETKEYSINSLOT / COUNTKEYSINSLOT, asked once per slot when resharding) are found in one
//! stripe instead of a walk of the whole keyspace. Values are
//! cheap to clone handles (`Str`, `Tensor`, `Arc`s), so readers take a handle under a read
//! lock and encode the reply after releasing it. Writes arrive only through
//! [`Store::apply`], called by whichever `Proposer` owns the write path.

use std::sync::{
    Arc,
    atomic::{AtomicI64, AtomicU64, Ordering},
};

use bytes::Bytes;
use parking_lot::RwLock;
use shardai_protocol::slot::{SLOTS, key_slot};

use crate::{
    collections::{HASH_TYPE, Hash, LIST_TYPE, List},
    expiry::Expiry,
    glob::glob_match,
    key::Key,
    model::{MODEL_TYPE, Model},
    script::{SCRIPT_TYPE, Script},
    string::Str,
    tensor::Tensor,
};

/// Number of lock stripes; also the number of SCAN steps over the keyspace.
pub const STRIPES: usize = 1024;

/// Hash slots per stripe.
const SLOTS_PER_STRIPE: usize = SLOTS as usize / STRIPES;

/// Type name TYPE reports for tensors (RedisAI's module type name).
pub const TENSOR_TYPE: &str = "AI_TENSOR";

/// A stored value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A Redis string.
    Str(Str),
    /// A RedisAI tensor.
    Tensor(Tensor),
    /// A RedisAI model.
    Model(Arc<Model>),
    /// A RedisAI script.
    Script(Arc<Script>),
    /// A Redis hash.
    Hash(Arc<Hash>),
    /// A Redis list.
    List(Arc<List>),
}

impl Value {
    /// The name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Tensor(_) => TENSOR_TYPE,
            Value::Model(_) => MODEL_TYPE,
            Value::Script(_) => SCRIPT_TYPE,
            Value::Hash(_) => HASH_TYPE,
            Value::List(_) => LIST_TYPE,
        }
    }

    /// Approximate bytes held (payload only).
    pub fn size(&self) -> usize {
        match self {
            Value::Str(b) => b.len(),
            Value::Tensor(t) => t.byte_size() + 64,
            Value::Model(m) => m.blob.len() + 256,
            Value::Script(s) => s.source.len() + 256,
            Value::Hash(h) => h.size() + 64,
            Value::List(l) => l.size() + 64,
        }
    }
}

/// One key as [`Store::dump`] lists it: key, value, deadline (Unix ms).
pub type KeyRecord = (Key, Value, Option<u64>);

/// A value and its deadline.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Unix time in ms after which the key no longer exists.
    pub(crate) expire_at: Expiry,
}

// An entry of a stripe's map: the key (24 bytes) and this.
const _: () = assert!(std::mem::size_of::<Entry>() == 24);
const _: () = assert!(std::mem::size_of::<(Key, Entry)>() == 48);

impl Entry {
    pub(crate) fn live(&self, now_ms: u64) -> bool {
        self.expire_at.live(now_ms)
    }
}

pub(crate) use crate::stripe::Stripe;

/// The keyspace of one shard.
#[derive(Debug)]
pub struct Store {
    stripes: Box<[RwLock<Stripe>]>,
    keys: AtomicI64,
    volatile: AtomicI64,
    /// No key expires before this (ms; `u64::MAX`: none known). May be earlier than the
    /// truth after a deadline is removed, never later: ExpireDue recomputes it.
    earliest_expiry: AtomicU64,
    used_bytes: AtomicI64,
    /// Applied mutations, for INFO.
    applied: AtomicU64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// One SCAN step's result.
#[derive(Debug, Default)]
pub struct ScanPage {
    /// Cursor for the next call; 0 when the iteration is complete.
    pub cursor: u64,
    /// Keys found.
    pub keys: Vec<Bytes>,
}

impl Store {
    /// An empty keyspace.
    pub fn new() -> Self {
        Store {
            stripes: (0..STRIPES)
                .map(|_| RwLock::new(Stripe::default()))
                .collect(),
            keys: AtomicI64::new(0),
            volatile: AtomicI64::new(0),
            earliest_expiry: AtomicU64::new(u64::MAX),
            used_bytes: AtomicI64::new(0),
            applied: AtomicU64::new(0),
        }
    }

    pub(crate) fn stripe_of(&self, key: &[u8]) -> &RwLock<Stripe> {
        &self.stripes[self.stripe_index(key)]
    }

    /// The index of `key`'s stripe in [`Store::stripes`].
    pub(crate) fn stripe_index(&self, key: &[u8]) -> usize {
        key_slot(key) as usize / SLOTS_PER_STRIPE
    }

    /// The live keys in hash `slot`, sorted (one stripe is read).
    pub fn keys_in_slot(&self, slot: u16, now_ms: u64) -> Vec<Bytes> {
        let mut keys = self.in_slot(slot, now_ms, |keys| {
            keys.map(Key::to_bytes).collect::<Vec<_>>()
        });
        keys.sort();
        keys
    }

    /// How many live keys hash `slot` holds (one stripe is read).
    pub fn count_in_slot(&self, slot: u16, now_ms: u64) -> usize {
        self.in_slot(slot, now_ms, |keys| keys.count())
    }

    /// `f` over the live keys of hash `slot`, under its stripe's read lock.
    fn in_slot<R>(
        &self,
        slot: u16,
        now_ms: u64,
        f: impl FnOnce(&mut dyn Iterator<Item = &Key>) -> R,
    ) -> R {
        let Some(stripe) = self.stripes.get(slot as usize / SLOTS_PER_STRIPE) else {
            return f(&mut std::iter::empty());
        };
        let stripe = stripe.read();
        f(&mut stripe
            .iter()
            .filter(|(k, e)| e.live(now_ms) && key_slot(k) == slot)
            .map(|(k, _)| k))
    }

    /// The models kept without a loaded backend (see `backend::NotLoaded`).
    pub fn models_not_loaded(&self) -> Vec<(Bytes, Arc<Model>)> {
        self.stripes
            .iter()
            .flat_map(|s| {
                s.read()
                    .iter()
                    .filter_map(|(k, e)| match &e.value {
                        Value::Model(m) if m.loaded.load_error().is_some() => {
                            Some((k.to_bytes(), m.clone()))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every model and script, with its key (a walk over the whole keyspace, for the
    /// metrics endpoint).
    pub fn runnables(&self) -> Vec<(Bytes, Value)> {
        self.stripes
            .iter()
            .flat_map(|s| {
                s.read()
                    .iter()
                    .filter(|(_, e)| matches!(e.value, Value::Model(_) | Value::Script(_)))
                    .map(|(k, e)| (k.to_bytes(), e.value.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Puts `new` in place of the model `old` at `key`, if `key` still holds that very model:
    /// a local change of how a replicated model is loaded, not a write (the bytes are the
    /// same).
    pub fn reload_model(&self, key: &[u8], old: &Arc<Model>, new: Arc<Model>) -> bool {
        let mut stripe = self.stripe_of(key).write();
        match stripe.get_mut(key) {
            Some(Entry {
                value: Value::Model(m),
                ..
            }) if Arc::ptr_eq(m, old) => {
                *m = new;
                true
            }
            _ => false,
        }
    }

    /// The live value of `key`, if any. The clock is read only for keys with a deadline.
    pub fn get(&self, key: &[u8]) -> Option<Value> {
        let stripe = self.stripe_of(key).read();
        stripe
            .get(key)
            .filter(|e| e.expire_at.get().is_none_or(|t| t > crate::now_ms()))
            .map(|e| e.value.clone())
    }

    /// A new store holding this store's live entries for `keys` at `now_ms`, deadlines
    /// included; values are shared (a write to either store replaces its own entry).
    pub fn subset(&self, keys: &[Bytes], now_ms: u64) -> Store {
        let out = Store::new();
        for k in keys {
            let entry = self
                .stripe_of(k)
                .read()
                .get(&k[..])
                .filter(|e| e.live(now_ms))
                .cloned();
            if let Some(e) = entry {
                let mut stripe = out.stripe_of(k).write();
                let prev = stripe.insert(Key::copy(k), e.clone());
                out.account(k, prev.as_ref(), Some(&e));
            }
        }
        out
    }

    /// The value of `key` if it is live at `now_ms`.
    pub fn get_at(&self, key: &[u8], now_ms: u64) -> Option<Value> {
        let stripe = self.stripe_of(key).read();
        stripe
            .get(key)
            .filter(|e| e.live(now_ms))
            .map(|e| e.value.clone())
    }

    /// A live key's value and deadline (Unix ms).
    pub fn entry_at(&self, key: &[u8], now_ms: u64) -> Option<(Value, Option<u64>)> {
        let stripe = self.stripe_of(key).read();
        let e = stripe.get(key).filter(|e| e.live(now_ms))?;
        Some((e.value.clone(), e.expire_at.get()))
    }

    /// The remaining time to live of `key` in ms: `None` when missing, `Some(None)` when it
    /// has no deadline.
    pub fn ttl_ms(&self, key: &[u8], now_ms: u64) -> Option<Option<u64>> {
        let stripe = self.stripe_of(key).read();
        let e = stripe.get(key).filter(|e| e.live(now_ms))?;
        Some(e.expire_at.get().map(|t| t - now_ms))
    }

    /// Number of keys (including expired ones not yet removed, as Redis's DBSIZE does).
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed).max(0) as usize
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys with a deadline.
    pub fn volatile_len(&self) -> usize {
        self.volatile.load(Ordering::Relaxed).max(0) as usize
    }

    /// Whether a key may be due to expire at `now_ms`: false while no deadline has passed,
    /// so that no expiry entry is proposed for keys that are not due.
    pub fn expiry_due(&self, now_ms: u64) -> bool {
        self.volatile_len() > 0 && self.earliest_expiry.load(Ordering::Relaxed) <= now_ms
    }

    /// Forgets the earliest deadline before a scan that notes each remaining one again
    /// ([`Store::note_deadline`]); a deadline set meanwhile is noted by its writer.
    pub(crate) fn reset_earliest_expiry(&self) {
        self.earliest_expiry.store(u64::MAX, Ordering::Relaxed);
    }

    /// Notes a key's deadline.
    pub(crate) fn note_deadline(&self, at_ms: u64) {
        self.earliest_expiry.fetch_min(at_ms, Ordering::Relaxed);
    }

    /// Approximate bytes held by keys and values.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed).max(0) as usize
    }

    /// Number of mutations applied since start.
    pub fn applied_count(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    pub(crate) fn note_applied(&self) {
        self.applied.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts in-place changes of a value's size.
    pub(crate) fn note_resized(&self, old: usize, new: usize) {
        self.used_bytes
            .fetch_add(new as i64 - old as i64, Ordering::Relaxed);
    }

    /// Bookkeeping when an entry is inserted, replaced or removed.
    pub(crate) fn account(&self, key: &[u8], old: Option<&Entry>, new: Option<&Entry>) {
        let size = |e: Option<&Entry>| e.map_or(0, |e| (key.len() + e.value.size()) as i64);
        let vol = |e: Option<&Entry>| e.is_some_and(|e| e.expire_at.get().is_some()) as i64;
        if let Some(t) = new.and_then(|e| e.expire_at.get()) {
            self.note_deadline(t);
        }
        self.keys.fetch_add(
            new.is_some() as i64 - old.is_some() as i64,
            Ordering::Relaxed,
        );
        self.volatile
            .fetch_add(vol(new) - vol(old), Ordering::Relaxed);
        self.used_bytes
            .fetch_add(size(new) - size(old), Ordering::Relaxed);
    }

    /// Every live key matching `pattern`.
    pub fn keys(&self, pattern: &[u8], now_ms: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        for s in self.stripes.iter() {
            let s = s.read();
            out.extend(
                s.iter()
                    .filter(|(k, e)| e.live(now_ms) && glob_match(pattern, k))
                    .map(|(k, _)| k.to_bytes()),
            );
        }
        out
    }

    /// One SCAN step: walks whole stripes from `cursor` until at least `count` keys were
    /// looked at. Every key present for the whole iteration is returned exactly once.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        type_name: Option<&str>,
        now_ms: u64,
    ) -> ScanPage {
        let mut page = ScanPage::default();
        let mut stripe = cursor as usize;
        let mut looked = 0;
        while stripe < STRIPES && looked < count {
            let s = self.stripes[stripe].read();
            looked += s.len();
            page.keys.extend(
                s.iter()
                    .filter(|(k, e)| {
                        e.live(now_ms)
                            && pattern.is_none_or(|p| glob_match(p, k))
                            && type_name.is_none_or(|t| e.value.type_name().eq_ignore_ascii_case(t))
                    })
                    .map(|(k, _)| k.to_bytes()),
            );
            stripe += 1;
        }
        page.cursor = if stripe >= STRIPES { 0 } else { stripe as u64 };
        page
    }

    /// A random live key.
    pub fn random_key(&self, seed: u64, now_ms: u64) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        let start = (seed as usize) % STRIPES;
        for i in 0..STRIPES {
            let s = self.stripes[(start + i) % STRIPES].read();
            let live: Vec<&Key> = s
                .iter()
                .filter(|(_, e)| e.live(now_ms))
                .map(|(k, _)| k)
                .collect();
            if !live.is_empty() {
                return Some(live[(seed as usize / STRIPES) % live.len()].to_bytes());
            }
        }
        None
    }

    pub(crate) fn stripes(&self) -> &[RwLock<Stripe>] {
        &self.stripes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::Mutation;

    fn set(s: &Store, k: &str, v: &str) {
        let m = Mutation::set(
            Bytes::copy_from_slice(k.as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        );
        s.apply(m, 0).unwrap();
    }

    #[test]
    fn a_subset_shares_values_and_keeps_writes_apart() {
        let s = Store::new();
        set(&s, "a", "1");
        set(&s, "b", "2");
        let dead = Mutation::Set {
            key: Bytes::from_static(b"gone"),
            value: Bytes::from_static(b"x"),
            cond: None,
            get: false,
            deadline: crate::mutation::Deadline::At(5),
        };
        s.apply(dead, 0).unwrap();
        let keys = ["a", "gone", "none"].map(|k| Bytes::copy_from_slice(k.as_bytes()));
        let sub = s.subset(&keys, 10);
        assert_eq!(sub.len(), 1);
        assert!(sub.get(b"b").is_none());
        set(&sub, "a", "changed");
        match (s.get(b"a"), sub.get(b"a")) {
            (Some(Value::Str(x)), Some(Value::Str(y))) => {
                assert_eq!((&x[..], &y[..]), (&b"1"[..], &b"changed"[..]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scan_visits_every_key_once() {
        let s = Store::new();
        for i in 0..5000 {
            set(&s, &format!("k{i}"), "v");
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let page = s.scan(cursor, 10, None, None, 0);
            for k in page.keys {
                assert!(seen.insert(k), "duplicate");
            }
            calls += 1;
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 5000);
        assert!(calls > 10);
        let page = s.scan(0, 100_000, Some(b"k1*"), None, 0);
        assert_eq!(page.cursor, 0);
        assert_eq!(page.keys.len(), 1111);
        assert!(
            s.scan(0, 100_000, None, Some("ai_tensor"), 0)
                .keys
                .is_empty()
        );
    }

    #[test]
    fn keys_of_a_slot_are_found_in_its_stripe() {
        let s = Store::new();
        for i in 0..20_000 {
            set(&s, &format!("k:{i}"), "v");
        }
        set(&s, "{user1}.a", "v");
        set(&s, "{user1}.b", "v");
        let mut all = s.keys(b"*", 0);
        all.sort();
        let mut by_slot = vec![Vec::new(); SLOTS as usize];
        for k in &all {
            by_slot[key_slot(k) as usize].push(k.clone());
        }
        for (slot, want) in by_slot.iter().enumerate() {
            assert_eq!(&s.keys_in_slot(slot as u16, 0), want, "slot {slot}");
            assert_eq!(s.count_in_slot(slot as u16, 0), want.len());
        }
        let tagged = s.keys_in_slot(key_slot(b"user1"), 0);
        assert!(tagged.contains(&Bytes::from_static(b"{user1}.a")));
        assert!(tagged.contains(&Bytes::from_static(b"{user1}.b")));
        assert!(s.keys_in_slot(SLOTS, 0).is_empty());
        assert_eq!(s.count_in_slot(SLOTS, 0), 0);
    }

    #[test]
    fn keys_and_random_key() {
        let s = Store::new();
        assert_eq!(s.random_key(1, 0), None);
        set(&s, "a:1", "x");
        set(&s, "b:1", "y");
        let mut k = s.keys(b"a:*", 0);
        k.sort();
        assert_eq!(k, [Bytes::from_static(b"a:1")]);
        assert!(s.random_key(12345, 0).is_some());
        assert_eq!(s.len(), 2);
        assert_eq!(s.used_bytes(), 8);
    }
}
