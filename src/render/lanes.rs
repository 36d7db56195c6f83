//! `--lanes`: the text format with one column per process, time downward,
//! so a parent and its child stand side by side.
//!
//! ```text
//!    #9 │                                     │ write(4, "hello", 5) = 5
//!   #12 │ ppoll([{fd=3, events=POLLIN}], 1…   │ +++ exited with 0 +++
//! ```
//!
//! Each process writes its own lines, as in the usual text format, so the
//! columns are kept in the run's shared page (`os::Counters`): a process
//! takes the first free column at its first line and frees it when it
//! exits; a column whose process waits in a call shows `┊` instead of `│`.
//! Notes are left out (`--html` shows them beside the diagram); section
//! headings, the summary and bench's tables span the whole width.

use std::sync::atomic::Ordering::SeqCst;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::errno::errno_name;
use super::event::{Event, Outcome, RetFormat, Step};
use super::human::Human;
use crate::os::{Counters, LANE_SLOTS};

/// The width of the step-number column.
const SEQ_W: usize = 6;

pub struct Lanes {
    human: Human,
    counters: &'static Counters,
    cols: usize,
    col_w: usize,
}

impl Lanes {
    /// Lanes for a terminal `width` columns wide (at least 120).
    pub fn new(human: Human, width: usize) -> Self {
        let cols = ((width.saturating_sub(SEQ_W)) / 38).clamp(2, LANE_SLOTS);
        Lanes {
            human,
            counters: crate::os::shared_counters(),
            cols,
            col_w: (width.saturating_sub(SEQ_W)) / cols,
        }
    }

    pub fn render(&mut self, ev: &Event<'_>) -> String {
        match ev {
            Event::Step(s) => {
                let col = self.column(s.pid);
                let mut out = self.header(s.pid, col);
                self.counters.lane_waits[col].fetch_and(!1, SeqCst);
                out.push_str(&self.line(&format!("#{}", s.seq), col, &call(s)));
                out
            }
            Event::Waiting {
                pid,
                syscall,
                lead,
                reason,
            } => {
                let col = self.column(*pid);
                let mut out = self.header(*pid, col);
                // The reason matters more than the arguments the step repeats.
                let _ = lead;
                out.push_str(&self.line("", col, &format!("{syscall}(… <{reason}>")));
                self.counters.lane_waits[col].fetch_or(1, SeqCst);
                out
            }
            Event::Message { pid, text } => {
                let col = self.column(*pid);
                let mut out = self.header(*pid, col);
                out.push_str(&self.line("", col, &format!(">> {}", text.replace('\n', "\\n"))));
                out
            }
            Event::Signal(i) => {
                let col = self.column(i.pid);
                let mut out = self.header(i.pid, col);
                let name = nix::sys::signal::Signal::try_from(i.signo)
                    .map_or_else(|_| i.signo.to_string(), |s| s.as_str().to_string());
                out.push_str(&self.line("", col, &format!("--- {name} from pid {} ---", i.si_pid)));
                out
            }
            Event::Exit { pid, code, signal } => {
                let col = self.column(*pid);
                let mut out = self.header(*pid, col);
                let what = match (code, signal) {
                    (_, Some(sig)) => format!("+++ killed by {sig} +++"),
                    (Some(c), None) => format!("+++ exited with {c} +++"),
                    (None, None) => "+++ exited +++".to_string(),
                };
                out.push_str(&self.line("", col, &what));
                // The column is free for the next process.
                self.counters.lane_waits[col].store(0, SeqCst);
                let _ = self.counters.lane_pids[col].compare_exchange(*pid, 0, SeqCst, SeqCst);
                out
            }
            // Descriptor tables would not fit in a column.
            Event::Fds { .. } => String::new(),
            // Headings and tables of results span the whole width.
            Event::Section { .. }
            | Event::Summary { .. }
            | Event::Counts { .. }
            | Event::Table(_) => self.human.render(ev),
        }
    }

    /// The column of `pid`, taken at its first line: the first free one,
    /// or (more processes than columns) the last, shared.
    fn column(&self, pid: i32) -> usize {
        let slots = &self.counters.lane_pids[..self.cols];
        if let Some(c) = slots.iter().position(|p| p.load(SeqCst) == pid) {
            return c;
        }
        for (c, p) in slots.iter().enumerate() {
            if p.compare_exchange(0, pid, SeqCst, SeqCst).is_ok() {
                return c;
            }
        }
        self.cols - 1
    }

    /// `┌ pid 4243` the first time `pid` writes in its column.
    fn header(&self, pid: i32, col: usize) -> String {
        let key = &self.counters.lane_pids[col];
        if key.load(SeqCst) == pid && !self.seen(pid) {
            self.mark_seen(pid);
            return self.line("", col, &format!("┌ pid {pid}"));
        }
        String::new()
    }

    /// Whether `pid` has shown its header (kept in the shared page, so
    /// every process knows; the sign bit of its wait flag marks it).
    fn seen(&self, pid: i32) -> bool {
        let col = self.counters.lane_pids[..self.cols]
            .iter()
            .position(|p| p.load(SeqCst) == pid);
        col.is_some_and(|c| self.counters.lane_waits[c].load(SeqCst) & 2 != 0)
    }

    fn mark_seen(&self, pid: i32) {
        if let Some(c) = self.counters.lane_pids[..self.cols]
            .iter()
            .position(|p| p.load(SeqCst) == pid)
        {
            self.counters.lane_waits[c].fetch_or(2, SeqCst);
        }
    }

    /// One line: the step number, then each column — `text` in `col`, a
    /// lane line in the columns of live processes.
    fn line(&self, seq: &str, col: usize, text: &str) -> String {
        let mut out = format!("{seq:>w$} ", w = SEQ_W - 1);
        for c in 0..self.cols {
            let cell = if c == col {
                fit(text, self.col_w - 2)
            } else if self.counters.lane_pids[c].load(SeqCst) != 0 {
                if self.counters.lane_waits[c].load(SeqCst) & 1 != 0 {
                    "┊".to_string()
                } else {
                    "│".to_string()
                }
            } else {
                String::new()
            };
            let last = c + 1 == self.cols;
            if last {
                out.push_str(cell.trim_end());
            } else {
                // Columns on a terminal: a CJK character takes two.
                let pad = (self.col_w - 1).saturating_sub(cell.width());
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad));
                out.push(' ');
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }
}

/// `read(3, "hello", 100) = 5`, `write(4) = -1 EPIPE`.
fn call(s: &Step) -> String {
    let ret = match s.outcome {
        Outcome::Ret(v) => match s.ret_format {
            RetFormat::Decimal => v.to_string(),
            RetFormat::Octal => format!("{v:03o}"),
            RetFormat::Hex => format!("{v:#x}"),
        },
        Outcome::Err(e) => format!("-1 {}", errno_name(e)),
        Outcome::Unknown => "?".to_string(),
    };
    format!("{}({}) = {ret}", s.syscall, s.args.join(", "))
}

/// `text` in at most `w` terminal columns: a long call keeps its result.
fn fit(text: &str, w: usize) -> String {
    if text.width() <= w {
        return text.to_string();
    }
    let take = |s: &str, room: usize| {
        let mut out = String::new();
        let mut used = 0;
        for c in s.chars() {
            let cw = c.width().unwrap_or(0);
            if used + cw > room {
                break;
            }
            used += cw;
            out.push(c);
        }
        out
    };
    if let Some(i) = text.rfind(") = ") {
        let tail = &text[i..];
        let keep = w.saturating_sub(tail.width() + 1);
        if keep >= 8 {
            return format!("{}…{tail}", take(&text[..i], keep));
        }
    }
    format!("{}…", take(text, w.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn a_long_call_keeps_its_result() {
        assert_eq!(
            fit("read(3, \"hello\", 100) = 5", 40),
            "read(3, \"hello\", 100) = 5"
        );
        assert_eq!(
            fit("read(3, \"hello world again\", 100) = 5", 24),
            "read(3, \"hello wor…) = 5"
        );
        assert_eq!(fit(">> a long message here", 10), ">> a long…");
        assert_eq!(fit(">> 我是复读机", 8), ">> 我是…");
    }
}
