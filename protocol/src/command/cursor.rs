//! A cursor over a request's arguments, in the manner of mini-redis's `Parse`.

use bytes::Bytes;

use crate::{error::Error, frame::parse_i64, table::CommandSpec};

/// Walks a request's arguments; [`Cursor::finish`] refuses leftovers.
#[derive(Debug)]
pub struct Cursor {
    args: std::vec::IntoIter<Bytes>,
    spec: &'static CommandSpec,
    typed: Bytes,
}

impl Cursor {
    /// A cursor over `argv` (name included) for the command `spec`.
    pub fn new(argv: Vec<Bytes>, spec: &'static CommandSpec) -> Self {
        let typed = argv.first().cloned().unwrap_or_default();
        Cursor {
            args: argv.into_iter(),
            spec,
            typed,
        }
    }

    /// The arity error for this command: RedisAI prints the command as the client typed it
    /// (module commands go through `RedisModule_WrongArity`), Redis its own lower-case name.
    pub fn arity_error(&self) -> Error {
        if self.spec.is_module() {
            Error::WrongArity(String::from_utf8_lossy(&self.typed).into_owned())
        } else {
            Error::WrongArity(self.spec.name.to_string())
        }
    }

    /// The command's registered (lower-case) name.
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// Arguments left.
    pub fn remaining(&self) -> usize {
        self.args.len()
    }

    /// The next argument, or an arity error when there is none.
    pub fn next_bytes(&mut self) -> Result<Bytes, Error> {
        match self.args.next() {
            Some(b) => Ok(b),
            None => Err(self.arity_error()),
        }
    }

    /// The next argument if any.
    pub fn next_opt(&mut self) -> Option<Bytes> {
        self.args.next()
    }

    /// The next argument as a strict integer.
    pub fn next_int(&mut self) -> Result<i64, Error> {
        let b = self.next_bytes()?;
        parse_i64(&b).ok_or(Error::NotInteger)
    }

    /// Peeks at the next argument.
    pub fn peek(&self) -> Option<&Bytes> {
        self.args.as_slice().first()
    }

    /// True when the next argument equals `word`, case-insensitively; consumes it then.
    pub fn eat(&mut self, word: &str) -> bool {
        if self
            .peek()
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
        {
            self.args.next();
            true
        } else {
            false
        }
    }

    /// All remaining arguments.
    pub fn rest(&mut self) -> Vec<Bytes> {
        self.args.by_ref().collect()
    }

    /// Errors when arguments are left over.
    pub fn finish(&self) -> Result<(), Error> {
        if self.args.len() == 0 {
            Ok(())
        } else {
            Err(self.arity_error())
        }
    }
}
