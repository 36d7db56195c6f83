//! The step recorder every experiment goes through.
//!
//! A `sys` wrapper hands [`Recorder::call`] the syscall to run and a closure
//! that describes it in strace notation. The recorder runs the call once,
//! times it, numbers it, renders it at once (so a failure is on screen before
//! its error travels up), and counts it for the summary. With `--quiet` the
//! description closure is never called, which keeps the benchmark path cheap.

mod call;
mod diag;
pub mod explain;
pub mod fds;
pub mod filter;
pub mod names;
pub mod objects;
pub mod stats;

use std::time::Instant;

use crate::error::SysError;
pub use crate::os::Counters;
use crate::render::event as step;
pub use crate::render::event::{Event, FdEntry, MapEntry, Outcome, RetFormat, Step, SummaryRow};
use crate::render::{Output, RenderOptions};
pub use call::{Call, Pending, Shown};

/// How a run is shown; built from the global CLI flags.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    pub json: bool,
    /// Results only: no syscall lines, no notes.
    pub quiet: bool,
    /// Descriptor table after each step that opens or closes one.
    pub fds: bool,
    /// Pause before each syscall until Enter.
    pub step: bool,
    pub color: bool,
    /// strace's -t (1), -tt (2), -ttt (3).
    pub timestamps: u8,
    /// strace's -r.
    pub relative: bool,
    /// strace's -e trace=…
    pub filter: filter::Filter,
    /// strace's -c: the table instead of the steps.
    pub count_table: bool,
    /// Wrap notes at this many columns (a terminal), or not at all.
    pub width: Option<usize>,
    /// Name the kernel object behind each step's descriptors (JSON and
    /// diagrams need it; see `objects`).
    pub objects: bool,
    /// A descriptor every process of the run also writes each event to as
    /// a JSON line, whatever the format (for `--diagram` and `--html`).
    pub copy: Option<i32>,
    /// Text in one column per process (`--lanes`).
    pub lanes: bool,
}

/// The notes a lab set for its next call, held aside (see [`Recorder::stash`]).
#[derive(Debug, Default)]
pub struct Stashed {
    note: Option<String>,
    err_note: Option<String>,
    wait: Option<String>,
}

/// Runs, times, numbers and renders every syscall of an experiment.
pub struct Recorder {
    out: Output,
    opts: TraceOptions,
    pid: i32,
    counters: &'static Counters,
    pending_note: Option<String>,
    pending_err_note: Option<String>,
    /// The lab provokes the next call's failure on purpose (EAGAIN on a
    /// full pipe): counted apart from real failures.
    pending_expect: bool,
    /// Whether the call being rendered failed on purpose.
    provoked: bool,
    pending_wait: Option<String>,
    can_pause: bool,
    /// When the run started: steps carry their start time relative to it.
    origin: Instant,
    /// Signals caught and already shown (see `os::take_signals`).
    sig_seen: usize,
    /// What this process has seen behind its descriptors.
    objects: objects::Objects,
}

impl Recorder {
    pub fn new(opts: TraceOptions) -> Self {
        let can_pause = opts.step && crate::os::have_tty();
        if opts.step && !can_pause {
            eprintln!("ipclab: --step needs a terminal (/dev/tty); running without pauses");
        }
        Recorder {
            out: Output::new(
                RenderOptions {
                    json: opts.json,
                    color: opts.color,
                    timestamps: opts.timestamps,
                    relative: opts.relative,
                    origin_wall: std::time::SystemTime::now(),
                    width: opts.width,
                    lanes: opts.lanes,
                },
                opts.copy,
            ),
            opts,
            pid: std::process::id() as i32,
            counters: crate::os::shared_counters(),
            pending_note: None,
            pending_err_note: None,
            pending_expect: false,
            provoked: false,
            pending_wait: None,
            can_pause,
            origin: Instant::now(),
            sig_seen: crate::os::signals_so_far(),
            objects: objects::Objects::default(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn options(&self) -> &TraceOptions {
        &self.opts
    }

    /// This process shows nothing from now on (the bench's own servers,
    /// which run beside the measurement): its calls are still made, counted
    /// in the summary, and in `-c`'s table.
    pub fn silence(&mut self) {
        self.opts.quiet = true;
        self.can_pause = false;
        self.out.mute();
    }

    /// True when steps are being shown (not `--quiet`, not `-c`); labs
    /// skip formatting per-message lines otherwise.
    pub fn tracing(&self) -> bool {
        !self.opts.quiet && !self.opts.count_table
    }

    /// Whether a step of `name` is shown (`-e trace=` may hide it).
    fn shows(&self, name: &str) -> bool {
        self.tracing() && self.opts.filter.shows(name)
    }

    /// Whether stdout went away (EPIPE); the run goes on silently, `main` exits 0.
    pub fn output_broken(&self) -> bool {
        self.out.broken()
    }

    /// The first error writing stdout other than a closed pipe (ENOSPC…).
    pub fn output_failure(&self) -> Option<&std::io::Error> {
        self.out.failure()
    }

    /// Called in a freshly forked child: later steps carry the child's pid.
    pub fn forked_child(&mut self) {
        self.pid = std::process::id() as i32;
    }

    /// The note shown under the next step if it succeeds.
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.pending_note = Some(text.into());
        self
    }

    /// The note shown under the next step if it fails.
    pub fn note_err(&mut self, text: impl Into<String>) -> &mut Self {
        self.pending_err_note = Some(text.into());
        self
    }

    /// The next call's failure is provoked on purpose: the summary counts
    /// it apart from real failures, and its JSON step says `"provoked": true`.
    pub fn expect_err(&mut self) -> &mut Self {
        self.pending_expect = true;
        self
    }

    /// What the next call waits for, shown if it can block.
    pub fn waiting(&mut self, reason: impl Into<String>) -> &mut Self {
        self.pending_wait = Some(reason.into());
        self
    }

    /// Takes the notes and waiting reason a lab set for its next call, so
    /// that steps made on the way to that call (a signal mask changed around
    /// it, say) do not consume them; [`Recorder::unstash`] puts them back.
    pub fn stash(&mut self) -> Stashed {
        Stashed {
            note: self.pending_note.take(),
            err_note: self.pending_err_note.take(),
            wait: self.pending_wait.take(),
        }
    }

    /// Puts back what [`Recorder::stash`] took.
    pub fn unstash(&mut self, s: Stashed) {
        self.pending_note = s.note;
        self.pending_err_note = s.err_note;
        self.pending_wait = s.wait;
    }

    /// Syscalls made, failed, and failed on purpose so far by the whole run.
    pub fn counts(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.counters.calls.load(Relaxed),
            self.counters.failed.load(Relaxed),
            self.counters.expected.load(Relaxed),
        )
    }

    /// Runs `run` once and records it as the syscall described by `call`.
    pub fn call<T>(
        &mut self,
        call: Call,
        run: impl FnOnce() -> nix::Result<T>,
        show: impl FnOnce(&nix::Result<T>) -> Shown,
    ) -> Result<T, SysError> {
        let pending = self.begin(call);
        let result = run();
        self.end(pending, result, show)
    }

    /// The first half of [`call`](Self::call), for wrappers whose description
    /// reads a buffer the call wrote: pause, print the waiting marker, start
    /// the clock. Make the call, then hand its result to [`end`](Self::end).
    pub fn begin(&mut self, call: Call) -> Pending {
        self.before(&call);
        Pending {
            call,
            start: Instant::now(),
        }
    }

    /// The second half of [`call`](Self::call): count, describe, render.
    pub fn end<T>(
        &mut self,
        pending: Pending,
        result: nix::Result<T>,
        show: impl FnOnce(&nix::Result<T>) -> Shown,
    ) -> Result<T, SysError> {
        let elapsed = pending.start.elapsed();
        let call = pending.call;
        let errno = result.as_ref().err().copied();
        self.count(call.name, errno.is_some(), elapsed);
        self.signals();
        if self.shows(call.name) {
            let shown = show(&result);
            let outcome = match errno {
                None => Outcome::Ret(shown.ret),
                Some(e) => Outcome::Err(e),
            };
            self.emit(&call, shown, outcome, pending.start, elapsed);
        } else {
            self.clear_pending();
        }
        result.map_err(|errno| SysError {
            call: call.name,
            errno,
        })
    }

    /// Runs `fork`-like `run` and records it once, in the parent: `show`
    /// returns `None` in the child, whose recorder takes the child's pid. The
    /// step's number is taken before the call, so it precedes the child's steps.
    pub fn call_fork<T>(
        &mut self,
        call: Call,
        run: impl FnOnce() -> nix::Result<T>,
        show: impl FnOnce(&nix::Result<T>) -> Option<Shown>,
    ) -> Result<T, SysError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.before(&call);
        let seq = self.counters.seq.fetch_add(1, Relaxed) + 1;
        let start = Instant::now();
        let result = run();
        let elapsed = start.elapsed();
        match show(&result) {
            None => {
                self.forked_child();
                self.clear_pending();
            }
            Some(shown) => {
                self.count(call.name, result.is_err(), elapsed);
                if self.shows(call.name) {
                    let outcome = match &result {
                        Ok(_) => Outcome::Ret(shown.ret),
                        Err(e) => Outcome::Err(*e),
                    };
                    self.emit_numbered(seq, &call, shown, outcome, start, elapsed);
                } else {
                    self.clear_pending();
                }
            }
        }
        result.map_err(|errno| SysError {
            call: call.name,
            errno,
        })
    }

    /// Records a call that may not return (exit_group, a write that SIGPIPE
    /// kills): the step is printed with `= ?` *before* `run` executes.
    pub fn call_unknown<T>(
        &mut self,
        call: Call,
        args: Vec<String>,
        note: impl Into<String>,
        run: impl FnOnce() -> T,
    ) -> T {
        self.before(&call);
        self.count(call.name, false, std::time::Duration::ZERO);
        if self.shows(call.name) {
            let shown = Shown::new(args, 0, note);
            let now = Instant::now();
            self.emit(
                &call,
                shown,
                Outcome::Unknown,
                now,
                std::time::Duration::ZERO,
            );
        } else {
            self.clear_pending();
        }
        run()
    }

    /// A line of data or result, shown even with `--quiet`.
    pub fn message(&mut self, text: impl AsRef<str>) {
        let ev = Event::Message {
            pid: self.pid,
            text: text.as_ref(),
        };
        self.out.emit(&ev);
    }

    /// A table of measurements; shown even with `--quiet` (it is the result).
    pub fn table(&mut self, t: &crate::render::event::Table) {
        self.out.emit(&Event::Table(t));
    }

    /// A section heading; shown even with `--quiet`, so results stay placed.
    pub fn section(&mut self, name: &str, title: &str) {
        self.out.emit(&Event::Section { name, title });
    }

    /// The closing summary; with `-c`, the per-syscall table first.
    pub fn summary(&mut self, rows: &[SummaryRow]) {
        if self.opts.count_table {
            let counts = stats::rows(self.counters);
            self.out.emit(&Event::Counts { rows: &counts });
        }
        self.out.emit(&Event::Summary { rows });
    }

    /// This process is about to end with `code` (strace's `+++ exited
    /// with N +++`, printed after its exit_group step).
    pub fn exiting(&mut self, code: i32) {
        if self.tracing() {
            let pid = self.pid;
            self.out.emit(&Event::Exit {
                pid,
                code: Some(code),
                signal: None,
            });
        }
    }

    /// A child this process reaped was killed by `signal` (strace's
    /// `+++ killed by SIGPIPE +++`, under the child's pid).
    pub fn killed(&mut self, child: i32, signal: &str) {
        if self.tracing() {
            self.out.emit(&Event::Exit {
                pid: child,
                code: None,
                signal: Some(signal),
            });
        }
    }

    /// Shows the signals delivered since the last look, as strace's
    /// `--- SIGINT {…} ---` lines (before the step of the call they cut short).
    fn signals(&mut self) {
        let caught = crate::os::take_signals(&mut self.sig_seen);
        if !self.tracing() {
            return;
        }
        for c in caught {
            let info = step::SignalInfo {
                pid: self.pid,
                signo: c.signo,
                code: c.code,
                si_pid: c.pid,
                si_uid: c.uid,
                status: c.status,
            };
            self.out.emit(&Event::Signal(&info));
        }
    }

    /// Prints this process's descriptor table, and its shared-memory mappings.
    pub fn show_fds(&mut self) {
        let entries = fds::table();
        let maps = fds::shared_maps();
        let seq = self.counters.seq.load(std::sync::atomic::Ordering::Relaxed);
        self.out.emit(&Event::Fds {
            pid: self.pid,
            seq,
            entries: &entries,
            maps: &maps,
        });
    }

    /// Counts one call; a failure the lab provoked on purpose apart.
    /// Returns whether the failure was provoked.
    fn count(&mut self, name: &str, failed: bool, elapsed: std::time::Duration) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.calls.fetch_add(1, Relaxed);
        if self.opts.count_table {
            stats::count(self.counters, name, failed, elapsed);
        }
        let provoked = failed && std::mem::take(&mut self.pending_expect);
        self.provoked = provoked;
        if provoked {
            self.counters.expected.fetch_add(1, Relaxed);
        } else if failed {
            self.counters.failed.fetch_add(1, Relaxed);
        }
        provoked
    }

    fn clear_pending(&mut self) {
        self.pending_note = None;
        self.pending_err_note = None;
        self.pending_expect = false;
        self.provoked = false;
        self.pending_wait = None;
    }

    fn before(&mut self, call: &Call) {
        if self.can_pause {
            self.pause(call.name);
        }
        if !self.shows(call.name) {
            return;
        }
        if let Some((lead, default_reason)) = &call.waits {
            let pending = self.pending_wait.take();
            if pending.is_none() && !call.waits_always {
                return;
            }
            let reason = pending.as_deref().unwrap_or(default_reason);
            let ev = Event::Waiting {
                pid: self.pid,
                syscall: call.name,
                lead,
                reason,
            };
            self.out.emit(&ev);
        }
    }

    fn pause(&mut self, name: &str) {
        if crate::os::step_prompt(self.counters, self.pid, name) != crate::os::StepAnswer::Run {
            self.can_pause = false;
        }
    }

    fn emit(
        &mut self,
        call: &Call,
        shown: Shown,
        outcome: Outcome,
        start: Instant,
        elapsed: std::time::Duration,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let seq = self.counters.seq.fetch_add(1, Relaxed) + 1;
        self.emit_numbered(seq, call, shown, outcome, start, elapsed);
    }

    fn emit_numbered(
        &mut self,
        seq: u64,
        call: &Call,
        shown: Shown,
        outcome: Outcome,
        start: Instant,
        elapsed: std::time::Duration,
    ) {
        let provoked = std::mem::take(&mut self.provoked);
        let note = match outcome {
            Outcome::Err(e) => self
                .pending_err_note
                .take()
                .or(shown.err_note)
                .unwrap_or_else(|| explain::errno(call.name, e)),
            _ => self.pending_note.take().unwrap_or(shown.note),
        };
        self.clear_pending();
        let mut step = Step {
            seq,
            pid: self.pid,
            syscall: call.name,
            libc: call.libc,
            args: shown.args,
            outcome,
            ret_note: shown.ret_note,
            ret_format: shown.ret_format,
            elapsed,
            at: start.saturating_duration_since(self.origin),
            note,
            provoked,
            objects: Vec::new(),
        };
        if self.opts.objects {
            step.objects = self.objects.look(step.syscall, &step.args, step.ret());
        }
        self.out.emit(&Event::Step(&step));
        if self.opts.fds && call.changes_fds && matches!(outcome, Outcome::Ret(_)) {
            self.show_fds();
        }
    }
}
