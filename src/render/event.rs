//! The record of one executed syscall, and the other events a run produces.
//!
//! Data only: the [`Recorder`](super::Recorder) fills these in, the renderers in
//! `render/` turn them into text or JSON lines.

use std::time::Duration;

use nix::errno::Errno;

/// What a syscall returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call returned this non-negative value.
    Ret(i64),
    /// The call returned -1 and set `errno`.
    Err(Errno),
    /// The call does not return to show a result: `exit_group`, or a write that
    /// the kernel answers with a fatal SIGPIPE. strace prints these as `= ?`.
    Unknown,
}

/// How a return value is written in text, as strace writes it for that call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetFormat {
    #[default]
    Decimal,
    /// `umask(022) = 022`.
    Octal,
    /// `mmap(…) = 0x7f0123456000`.
    Hex,
}

/// One syscall, executed once by `pid`, in the order of `seq`.
#[derive(Debug, Clone)]
pub struct Step {
    /// Position in the whole run, shared by every process of the run.
    pub seq: u64,
    pub pid: i32,
    /// The kernel's name, as strace prints it (`clone`, `pipe2`, `wait4`).
    pub syscall: &'static str,
    /// The libc or nix function that made the call (`fork`, `pipe`, `waitpid`).
    pub libc: &'static str,
    /// Arguments in strace notation; descriptors as plain numbers.
    pub args: Vec<String>,
    pub outcome: Outcome,
    /// strace's annotation after the return value, e.g. `(Timeout)` for poll.
    pub ret_note: Option<String>,
    /// How strace writes the value: decimal, octal (umask) or hex (mmap).
    pub ret_format: RetFormat,
    pub elapsed: Duration,
    /// When the call started, since the recorder was created (the run's start;
    /// forked children inherit it, CLOCK_MONOTONIC being system-wide).
    pub at: Duration,
    /// One line on what happened and why it matters.
    pub note: String,
    /// The failure was provoked on purpose by the lab (the lesson), not a fault.
    pub provoked: bool,
    /// The kernel object behind each descriptor the call used or made, when
    /// the output needs it (JSON, a diagram); empty otherwise.
    pub objects: Vec<ObjectRef>,
}

/// A descriptor of a step and the kernel object behind it: what
/// `readlink("/proc/self/fd/N")` said at the step, and for a socket its
/// addresses from `/proc/net/*` (or its peer, for AF_UNIX).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRef {
    pub fd: i32,
    /// `pipe:[1234]`, `socket:[5678]`, `/tmp/…/fifo`, `anon_inode:[pidfd]`.
    pub object: String,
    /// `TCP`, `UDP`, `UNIX`, `RAW`, `PACKET` for a socket the kernel lists.
    pub proto: Option<String>,
    /// The socket's own address (`127.0.0.1:8989`; a path or `@name` for AF_UNIX).
    pub local: Option<String>,
    /// The address it is connected to, when it is.
    pub remote: Option<String>,
    /// The connected AF_UNIX socket at the other end, `socket:[N]`.
    pub peer: Option<String>,
}

impl Step {
    /// The return value as JSON reports it: the value, -1 on error, none when unknown.
    pub fn ret(&self) -> Option<i64> {
        match self.outcome {
            Outcome::Ret(v) => Some(v),
            Outcome::Err(_) => Some(-1),
            Outcome::Unknown => None,
        }
    }
}

/// One open descriptor of a process, as `--fds` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdEntry {
    pub fd: i32,
    /// The `/proc/PID/fd/N` link target, e.g. `pipe:[1234]`.
    pub target: String,
    /// A human description, e.g. `pipe:[1234] (read end)`.
    pub desc: String,
}

/// One shared-memory mapping of a process, as `--fds` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// `start-end` in hex, as /proc/PID/maps shows it.
    pub range: String,
    /// `rw-s`: the `s` is MAP_SHARED.
    pub perms: String,
    /// `/dev/shm/NAME`, `/memfd:NAME`, with ` (deleted)` once unlinked.
    pub path: String,
}

/// One row of the closing summary table.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub lab: String,
    pub syscalls: u64,
    pub failed: u64,
    /// Failures the lab provoked on purpose (EAGAIN on a full pipe…).
    pub provoked: u64,
    /// `ok`, `skipped: …`, `stopped by SIGINT` or `failed: …`.
    pub result: String,
}

/// One row of the `-c` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    pub syscall: String,
    pub calls: u64,
    pub errors: u64,
    /// Time spent in the calls, in nanoseconds.
    pub nanos: u64,
}

/// A signal delivered to a process, as its siginfo said (strace's
/// `--- SIGINT {si_signo=SIGINT, si_code=SI_USER, …} ---`).
#[derive(Debug, Clone)]
pub struct SignalInfo {
    pub pid: i32,
    pub signo: i32,
    pub code: i32,
    pub si_pid: i32,
    pub si_uid: u32,
    pub status: i32,
}

/// A table of measurements (`ipclab bench`): text draws it aligned, with
/// bars for one column; JSON gives each row as an object keyed by column.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// A stable key for scripts (`ipc-latency`, `echo`…).
    pub name: String,
    /// The heading shown above it.
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    /// The column drawn as a bar chart beside the table, if any.
    pub bars: Option<usize>,
    /// Lines shown under the table: units, how it was measured.
    pub notes: Vec<String>,
}

/// One column of a [`Table`].
#[derive(Debug, Clone)]
pub struct Column {
    /// JSON's key (`median_us`).
    pub key: &'static str,
    /// Text's heading (`median µs`).
    pub title: &'static str,
}

/// One cell of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A measurement, shown with this many decimals.
    Num(f64, u8),
    Int(u64),
    /// Not measured (text shows `—`, JSON `null`), e.g. a datagram
    /// mechanism's streaming rate.
    Missing,
}

impl Cell {
    /// The value as a number, for bars and sorting.
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Num(v, _) => Some(*v),
            Cell::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

/// Everything the renderers can be asked to show.
#[derive(Debug)]
pub enum Event<'a> {
    /// A call that can block is about to be made; `lead` is its first argument(s).
    Waiting {
        pid: i32,
        syscall: &'static str,
        lead: &'a str,
        reason: &'a str,
    },
    Step(&'a Step),
    /// Data or a result worth showing apart from the syscall lines.
    Message {
        pid: i32,
        text: &'a str,
    },
    Section {
        name: &'a str,
        title: &'a str,
    },
    Fds {
        pid: i32,
        seq: u64,
        entries: &'a [FdEntry],
        /// Shared-memory mappings (/dev/shm objects, memfds), if any.
        maps: &'a [MapEntry],
    },
    Summary {
        rows: &'a [SummaryRow],
    },
    /// A signal was delivered (strace's `--- SIG… ---` line).
    Signal(&'a SignalInfo),
    /// A process ended: `+++ exited with N +++` or `+++ killed by SIG… +++`.
    Exit {
        pid: i32,
        code: Option<i32>,
        signal: Option<&'a str>,
    },
    /// The `-c` table.
    Counts {
        rows: &'a [CountRow],
    },
    /// Measurements (`ipclab bench`).
    Table(&'a Table),
}
