//! The only code that writes to stdout.
//!
//! Each event becomes one block of whole lines, written with a single
//! `write(2)` on an unbuffered stdout: nothing sits in a buffer across
//! `fork`, and a parent and child printing at once never split a line
//! (a pipe keeps writes of up to PIPE_BUF = 4096 bytes whole).

pub mod errno;
pub mod event;
pub mod human;
pub mod json;
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
}

/// Renderer plus the stdout it writes to.
pub struct Output {
    json: bool,
    human: human::Human,
    broken: bool,
    /// The first write error other than EPIPE (ENOSPC on /dev/full, say).
    failed: Option<std::io::Error>,
    muted: bool,
}

impl Output {
    pub fn new(opts: RenderOptions) -> Self {
        Output {
            json: opts.json,
            human: human::Human::with(opts),
            broken: false,
            failed: None,
            muted: false,
        }
    }

    /// The first error writing stdout other than a closed pipe, if any.
    pub fn failure(&self) -> Option<&std::io::Error> {
        self.failed.as_ref()
    }

    /// True once stdout has been closed under us (EPIPE).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Shows nothing more from this process (a bench's own server).
    pub fn mute(&mut self) {
        self.muted = true;
    }

    pub fn emit(&mut self, ev: &Event<'_>) {
        if self.muted || self.broken || self.failed.is_some() {
            return;
        }
        let block = if self.json {
            json::render(ev)
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
