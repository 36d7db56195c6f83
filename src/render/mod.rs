//! The only code that writes to stdout.
//!
//! Each event becomes one block of whole lines, written with a single
//! `write(2)` on an unbuffered stdout: nothing sits in a buffer across
//! `fork`, and a parent and child printing at once never split a line
//! (a pipe keeps writes of up to PIPE_BUF = 4096 bytes whole).

pub mod drawing;
pub mod errno;
pub mod event;
pub mod human;
pub mod json;
pub mod lanes;
pub mod table;

pub use event::Event;

/// How events are shown.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    pub json: bool,
    /// ANSI colour (text only; a tty without NO_COLOR).
    pub color: bool,
    /// strace's -t (1: seconds), -tt (2: microseconds), -ttt (3: since 1970).
    pub timestamps: u8,
    /// strace's -r: time since this process's previous step.
    pub relative: bool,
    /// When the run started, on the wall clock (steps carry an offset).
    pub origin_wall: std::time::SystemTime,
    /// Wrap notes at this many columns.
    pub width: Option<usize>,
    /// One column per process (`--lanes`; text only).
    pub lanes: bool,
}

/// Renderer plus the stdout it writes to.
pub struct Output {
    json: bool,
    human: human::Human,
    /// `--lanes`: the text in one column per process.
    lanes: Option<lanes::Lanes>,
    broken: bool,
    /// The first write error other than EPIPE (ENOSPC on /dev/full, say).
    failed: Option<std::io::Error>,
    /// The run's JSON copy for `--diagram` and `--html` (see [`Output::emit_copy`]).
    copy: Option<i32>,
    /// Shows nothing more, nor copies it (see [`Output::mute`]).
    muted: bool,
}

impl Output {
    pub fn new(opts: RenderOptions, copy: Option<i32>) -> Self {
        let lanes = match (opts.lanes, opts.width) {
            (true, Some(w)) if !opts.json => Some(lanes::Lanes::new(human::Human::with(opts), w)),
            _ => None,
        };
        Output {
            json: opts.json,
            human: human::Human::with(opts),
            lanes,
            broken: false,
            failed: None,
            copy,
            muted: false,
        }
    }

    /// Writes `ev`'s JSON line to the run's copy alone: a file every
    /// process of the run appends whole lines to (one `write(2)` each, with
    /// O_APPEND), which the first process reads back at the end to draw
    /// the diagram. ipclab's own output, like `-o FILE`: not a lab step.
    /// Returns the line, which JSON output shows as it is.
    fn emit_copy(&mut self, ev: &Event<'_>) -> Option<String> {
        let fd = self.copy?;
        let line = json::render(ev);
        if !line.is_empty() && crate::os::write_fd(fd, line.as_bytes()).is_err() {
            // A full disk: the diagram will lack these lines, the trace goes on.
            self.copy = None;
        }
        Some(line)
    }

    /// The first error writing stdout other than a closed pipe, if any.
    pub fn failure(&self) -> Option<&std::io::Error> {
        self.failed.as_ref()
    }

    /// True once stdout has been closed under us (EPIPE).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Shows nothing more from this process (a bench's own server), and
    /// copies nothing more to the diagram's run.
    pub fn mute(&mut self) {
        self.muted = true;
    }

    pub fn emit(&mut self, ev: &Event<'_>) {
        if self.muted {
            return;
        }
        let copied = self.emit_copy(ev);
        if self.broken || self.failed.is_some() {
            return;
        }
        let block = if self.json {
            copied.unwrap_or_else(|| json::render(ev))
        } else if let Some(l) = &mut self.lanes {
            l.render(ev)
        } else {
            self.human.render(ev)
        };
        if block.is_empty() {
            return;
        }
        // Unbuffered: write_all is one write(2) for blocks this size.
        if let Err(e) = crate::os::write_stdout(block.as_bytes()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.broken = true;
            } else {
                self.failed = Some(e);
            }
        }
    }
}
