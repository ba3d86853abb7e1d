//! Writes decided where they apply: the commands whose reply depends only on what their
//! mutation answers when it applies (AI.TENSORSET, SET and its forms, MSET, MSETNX, the
//! INCR family, DEL, HSET, HDEL, the PUSH and POP forms, EXPIRE and its forms, PERSIST,
//! RENAME, COPY, GETDEL, SETRANGE, APPEND). Each one's mutation is built here, and its
//! outcome turned into its reply here, whether the command waits for its commit
//! ([`super::execute`]) or is put in flight with others of its connection
//! ([`crate::pipeline`]).

use bytes::Bytes;
use shardai_engine::{Applied, Deadline, Mutation, Proposer, Tensor, now_ms};
use shardai_protocol::{
    Command, Error, Reply,
    command::{ExpireArgs, ExpireCond, Expiry, SetArgs, TensorSet},
};

use super::keyspace::applied;

/// How a write's outcome becomes its reply.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish {
    /// As [`applied`] says.
    Applied,
    /// SET: SETNX answers whether it wrote, GET and GETSET the old value.
    Set { int_reply: bool, get: bool },
    /// HSET answers the count of new fields, HMSET `OK`.
    HSet { ok_reply: bool },
    /// LPOP and RPOP: one element without a count, an array with one.
    Pop { counted: bool },
}

impl Finish {
    /// The reply to an outcome.
    pub(crate) fn reply(self, r: Result<Applied, Error>) -> Reply {
        match (self, r) {
            (
                Finish::Set {
                    int_reply: true, ..
                },
                Ok(Applied::Set { written, .. }),
            ) => Reply::Int(written as i64),
            (Finish::Set { get: true, .. }, Ok(Applied::Set { old, .. })) => {
                old.map_or(Reply::Nil, Reply::Bulk)
            }
            (Finish::HSet { ok_reply: true }, r) => match applied(r) {
                Reply::Int(_) => Reply::OK,
                r => r,
            },
            (Finish::Pop { counted }, Ok(Applied::Values(v))) => match (v, counted) {
                (None, false) => Reply::Nil,
                (None, true) => Reply::NilArray,
                (Some(v), false) => v.into_iter().next().map_or(Reply::Nil, Reply::Bulk),
                (Some(v), true) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
            },
            (_, r) => applied(r),
        }
    }
}

/// A write: its mutation and how its outcome becomes the reply.
pub(crate) struct Write {
    pub(crate) mutation: Mutation,
    pub(crate) finish: Finish,
}

impl Write {
    fn applied(mutation: Mutation) -> Result<Write, Error> {
        Ok(Write {
            mutation,
            finish: Finish::Applied,
        })
    }
}

/// Proposes `w` through `proposer` and answers its reply (or the error that built it).
pub(super) async fn propose(w: Result<Write, Error>, proposer: &dyn Proposer) -> Reply {
    match w {
        Ok(w) => w.finish.reply(proposer.propose(w.mutation).await),
        Err(e) => Reply::Error(e),
    }
}

/// What [`of`] makes of a command.
pub(crate) enum Built {
    /// One of this module's writes (or the error its arguments give, e.g. a BLOB that does
    /// not match its shape).
    Write(Result<Write, Error>),
    /// Another command, given back.
    Other(Command),
}

/// The write `cmd` makes, or `cmd` back when it is not one of this module's writes.
pub(crate) fn of(cmd: Command, max_bulk: usize) -> Built {
    Built::Write(match cmd {
        Command::TensorSet(t) => tensorset(t, max_bulk),
        Command::Set(a) => set(a),
        Command::MSet(pairs) => Write::applied(Mutation::MSet(pairs)),
        Command::MSetNx(pairs) => Write::applied(Mutation::MSetNx(pairs)),
        Command::IncrBy { key, delta } => Write::applied(Mutation::IncrBy { key, delta }),
        Command::IncrByFloat { key, delta } => Write::applied(Mutation::IncrByFloat { key, delta }),
        Command::Del(keys) => Write::applied(Mutation::Del(keys)),
        Command::HSet {
            key,
            pairs,
            ok_reply,
        } => hset(key, pairs, ok_reply),
        Command::HDel { key, fields } => Write::applied(Mutation::HDel { key, fields }),
        Command::Push {
            key,
            left,
            values,
            existing_only,
        } => Write::applied(Mutation::Push {
            key,
            left,
            values,
            existing_only,
        }),
        Command::Pop { key, left, count } => pop(key, left, count),
        Command::Expire(a) => expire(a),
        Command::Persist(key) => persist(key),
        Command::Rename { from, to, nx } => Write::applied(Mutation::Rename { from, to, nx }),
        Command::Copy { from, to, replace } => Write::applied(Mutation::Copy { from, to, replace }),
        Command::GetDel(key) => Write::applied(Mutation::GetDel(key)),
        Command::WriteRange { key, offset, value } => {
            Write::applied(Mutation::WriteRange { key, offset, value })
        }
        other => return Built::Other(other),
    })
}

/// AI.TENSORSET: its tensor built and checked.
pub(super) fn tensorset(t: TensorSet, max_bulk: usize) -> Result<Write, Error> {
    let tensor = Tensor::build(t.dtype, t.shape, t.data, max_bulk)?;
    Write::applied(Mutation::SetTensor { key: t.key, tensor })
}

/// SET and its forms. Relative deadlines become absolute here, on the node that accepted
/// the write, so that every replica expires the key at the same moment.
pub(super) fn set(a: SetArgs) -> Result<Write, Error> {
    let deadline = match a.expiry {
        None => Deadline::None,
        Some(Expiry::Keep) => Deadline::Keep,
        Some(Expiry::AtMillis(t)) => Deadline::At(t as u64),
        Some(Expiry::InMillis(ms)) => match now_ms().checked_add(ms as u64) {
            Some(t) if t < i64::MAX as u64 => Deadline::At(t),
            _ => return Err(Error::InvalidExpire(a.name)),
        },
    };
    Ok(Write {
        mutation: Mutation::Set {
            key: a.key,
            value: a.value,
            cond: a.cond,
            get: a.get,
            deadline,
        },
        finish: Finish::Set {
            int_reply: a.int_reply,
            get: a.get,
        },
    })
}

/// HSET and HMSET.
pub(super) fn hset(key: Bytes, pairs: Vec<(Bytes, Bytes)>, ok_reply: bool) -> Result<Write, Error> {
    Ok(Write {
        mutation: Mutation::HSet { key, pairs },
        finish: Finish::HSet { ok_reply },
    })
}

/// LPOP and RPOP, with or without a count.
pub(super) fn pop(key: Bytes, left: bool, count: Option<usize>) -> Result<Write, Error> {
    Ok(Write {
        mutation: Mutation::Pop {
            key,
            left,
            count: count.unwrap_or(1),
        },
        finish: Finish::Pop {
            counted: count.is_some(),
        },
    })
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: a relative time becomes a Unix time here (see
/// [`super::expiry`]).
pub(super) fn expire(a: ExpireArgs) -> Result<Write, Error> {
    let at = if a.absolute {
        a.ms
    } else {
        (now_ms() as i64)
            .checked_add(a.ms)
            .ok_or(Error::InvalidExpire(a.name))?
    };
    Write::applied(Mutation::Expire {
        key: a.key,
        at: Some(at),
        cond: a.cond,
    })
}

/// PERSIST.
pub(super) fn persist(key: Bytes) -> Result<Write, Error> {
    Write::applied(Mutation::Expire {
        key,
        at: None,
        cond: ExpireCond::default(),
    })
}
