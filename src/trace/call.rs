//! What a `sys` wrapper tells the recorder about a call: its name and
//! whether it can block ([`Call`]), and once it has run, its arguments in
//! strace notation, its value and its note ([`Shown`]).

use std::time::Instant;

use super::RetFormat;

/// The description of a call that a `sys` wrapper gives the recorder.
pub struct Call {
    pub name: &'static str,
    pub libc: &'static str,
    /// For calls that can block: the leading arguments and what it waits for.
    pub waits: Option<(String, &'static str)>,
    /// Whether the waiting marker is always shown, or only when the lab said
    /// (with [`Recorder::waiting`](super::Recorder::waiting)) that this call is expected to wait.
    pub waits_always: bool,
    /// Whether a successful call opens or closes a descriptor, or maps or
    /// unmaps shared memory (`--fds` then shows the table).
    pub changes_fds: bool,
}

impl Call {
    /// A call made through the libc function of the same name.
    pub fn new(name: &'static str) -> Self {
        Call {
            name,
            libc: name,
            waits: None,
            waits_always: false,
            changes_fds: false,
        }
    }

    /// The libc or nix function that issues this syscall, when its name differs.
    pub fn libc(mut self, libc: &'static str) -> Self {
        self.libc = libc;
        self
    }

    /// The call blocks by nature (wait4, open of a FIFO): print `lead` and
    /// `reason` before it runs, the way strace prints `<unfinished ...>`.
    pub fn waits(mut self, lead: String, reason: &'static str) -> Self {
        self.waits = Some((lead, reason));
        self.waits_always = true;
        self
    }

    /// The call can block (read, write): print the marker only when the lab
    /// expects it to wait and said so with [`Recorder::waiting`](super::Recorder::waiting).
    pub fn may_wait(mut self, lead: String, reason: &'static str) -> Self {
        self.waits = Some((lead, reason));
        self
    }

    pub fn changes_fds(mut self) -> Self {
        self.changes_fds = true;
        self
    }
}

/// A call that [`Recorder::begin`](super::Recorder::begin) has announced and that is now running.
#[must_use = "hand the call's result to Recorder::end"]
pub struct Pending {
    pub(super) call: Call,
    pub(super) start: Instant,
}

/// What a `sys` wrapper says about a call once it has run.
pub struct Shown {
    pub args: Vec<String>,
    /// The return value on success (ignored on error, which is -1).
    pub ret: i64,
    /// strace's annotation after the value, like `(Timeout)`.
    pub ret_note: Option<String>,
    /// How strace writes the value (octal for umask, hex for mmap).
    pub ret_format: RetFormat,
    /// The default note; a lab's [`Recorder::note`](super::Recorder::note) replaces it on success.
    pub note: String,
    /// The note on failure, when the wrapper knows this errno better than
    /// the generic table (`trace::explain`); a lab's [`Recorder::note_err`](super::Recorder::note_err)
    /// still comes first.
    pub err_note: Option<String>,
}

impl Shown {
    pub fn new(args: Vec<String>, ret: i64, note: impl Into<String>) -> Self {
        Shown {
            args,
            ret,
            ret_note: None,
            ret_format: RetFormat::Decimal,
            note: note.into(),
            err_note: None,
        }
    }

    /// Writes the value as strace does for this call.
    pub fn ret_format(mut self, f: RetFormat) -> Self {
        self.ret_format = f;
        self
    }

    /// The note shown if the call failed (the wrapper's, for this errno).
    pub fn err_note(mut self, n: impl Into<String>) -> Self {
        self.err_note = Some(n.into());
        self
    }

    /// The return value is an address: shown in hex, as strace shows it.
    pub fn hex(mut self) -> Self {
        self.ret_format = RetFormat::Hex;
        self
    }

    pub fn ret_note(mut self, n: impl Into<String>) -> Self {
        self.ret_note = Some(n.into());
        self
    }
}
