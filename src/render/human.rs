//! Text output: strace's line for each call, then an indented note.
//!
//! ```text
//! [pid 4242] pipe2([3, 4], 0) = 0 <0.000011>
//!            fd 3 is the read end, fd 4 the write end
//! ```

use super::errno::{errno_name, errno_text};
use super::event::{Event, Outcome, Step};

/// Renders events as text; colour only when asked (a tty without NO_COLOR).
pub struct Human {
    color: bool,
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

impl Human {
    pub fn new(color: bool) -> Self {
        Human { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    pub fn render(&self, ev: &Event<'_>) -> String {
        match ev {
            Event::Step(step) => self.step(step),
            Event::Waiting {
                pid,
                syscall,
                lead,
                reason,
            } => {
                let prefix = format!("[pid {pid}] ");
                let call = self.paint(BOLD, syscall);
                let sep = if lead.is_empty() { "" } else { ", " };
                let wait = self.paint(YELLOW, &format!("<{reason}>"));
                format!("{prefix}{call}({lead}{sep}… {wait}\n")
            }
            Event::Message { pid, text } => {
                let prefix = format!("[pid {pid}] ");
                let mut s = String::new();
                for line in text.lines() {
                    s.push_str(&prefix);
                    s.push_str(&self.paint(GREEN, &format!(">> {line}")));
                    s.push('\n');
                }
                s
            }
            Event::Section { name, title } => {
                let rule = "─".repeat(60usize.saturating_sub(name.len() + 4));
                format!(
                    "\n{}\n{}\n",
                    self.paint(CYAN, &format!("── {name} {rule}")),
                    self.paint(BOLD, title)
                )
            }
            Event::Fds {
                pid, entries, maps, ..
            } => {
                let indent = " ".repeat(format!("[pid {pid}] ").len());
                let head = self.paint(DIM, &format!("{indent}fds of pid {pid}:"));
                let mut s = format!("{head}\n");
                for e in entries.iter() {
                    s.push_str(&self.paint(DIM, &format!("{indent}  {:>3}  {}", e.fd, e.desc)));
                    s.push('\n');
                }
                for m in maps.iter() {
                    let line = format!("{indent}  map  {} {} {}", m.range, m.perms, m.path);
                    s.push_str(&self.paint(DIM, &line));
                    s.push('\n');
                }
                s
            }
            Event::Summary { rows } => {
                let w = rows.iter().map(|r| r.lab.len()).max().unwrap_or(3).max(3);
                let mut s = format!("\n{}\n", self.paint(BOLD, "summary"));
                s.push_str(&format!(
                    "  {:<w$}  {:>8}  {:>6}  result\n",
                    "lab", "syscalls", "failed"
                ));
                for r in rows.iter() {
                    let result = if r.result == "ok" {
                        self.paint(GREEN, &r.result)
                    } else if r.result.starts_with("skipped") {
                        self.paint(YELLOW, &r.result)
                    } else {
                        self.paint(RED, &r.result)
                    };
                    s.push_str(&format!(
                        "  {:<w$}  {:>8}  {:>6}  {result}\n",
                        r.lab, r.syscalls, r.failed
                    ));
                }
                s
            }
        }
    }

    fn step(&self, step: &Step) -> String {
        let prefix = format!("[pid {}] ", step.pid);
        let indent = " ".repeat(prefix.len());
        let ret = match step.outcome {
            Outcome::Ret(v) if step.ret_hex => format!("{v:#x}"),
            Outcome::Ret(v) => v.to_string(),
            Outcome::Err(e) => {
                self.paint(RED, &format!("-1 {} ({})", errno_name(e), errno_text(e)))
            }
            Outcome::Unknown => "?".to_string(),
        };
        let ret_note = step
            .ret_note
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let time = match step.outcome {
            Outcome::Unknown => String::new(),
            _ => format!(" <{:.6}>", step.elapsed.as_secs_f64()),
        };
        let mut s = format!(
            "{prefix}{}({}) = {ret}{ret_note}{}\n",
            self.paint(BOLD, step.syscall),
            step.args.join(", "),
            self.paint(DIM, &time)
        );
        if !step.note.is_empty() {
            let libc = if step.libc != step.syscall {
                format!("[{}() in libc] ", step.libc)
            } else {
                String::new()
            };
            s.push_str(&indent);
            s.push_str(&self.paint(DIM, &format!("{libc}{}", step.note)));
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(outcome: Outcome) -> Step {
        Step {
            seq: 1,
            pid: 42,
            syscall: "pipe2",
            libc: "pipe",
            args: vec!["[3, 4]".into(), "0".into()],
            outcome,
            ret_note: None,
            ret_hex: false,
            elapsed: Duration::from_micros(12),
            at: Duration::from_micros(345),
            note: "fd 3 reads, fd 4 writes".into(),
        }
    }

    #[test]
    fn step_line_is_strace_notation_with_note() {
        let text = Human::new(false).render(&Event::Step(&step(Outcome::Ret(0))));
        assert_eq!(
            text,
            "[pid 42] pipe2([3, 4], 0) = 0 <0.000012>\n         [pipe() in libc] fd 3 reads, fd 4 writes\n"
        );
    }

    #[test]
    fn errors_print_name_and_message() {
        let text =
            Human::new(false).render(&Event::Step(&step(Outcome::Err(nix::errno::Errno::EMFILE))));
        assert!(text.contains("= -1 EMFILE (Too many open files)"), "{text}");
    }
}
