//! The only code that writes to stdout.
//!
//! Each event becomes one block of whole lines, written with a single
//! `write(2)` on an unbuffered stdout: nothing sits in a buffer across
//! `fork`, and a parent and child printing at once never split a line
//! (a pipe keeps writes of up to PIPE_BUF = 4096 bytes whole).

pub mod human;
pub mod json;

use std::io::Write;

use crate::trace::{Event, TraceOptions};

/// Renderer plus the stdout it writes to.
pub struct Output {
    json: bool,
    human: human::Human,
    broken: bool,
}

impl Output {
    pub fn new(opts: TraceOptions) -> Self {
        Output {
            json: opts.json,
            human: human::Human::new(opts.color),
            broken: false,
        }
    }

    /// True once stdout has been closed under us (EPIPE).
    pub fn broken(&self) -> bool {
        self.broken
    }

    pub fn emit(&mut self, ev: &Event<'_>) {
        if self.broken {
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
        // File is unbuffered: write_all is one write(2) for blocks this size.
        if let Err(e) = crate::sys::stdout_file().write_all(block.as_bytes()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.broken = true;
            }
        }
    }
}
