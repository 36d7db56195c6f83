//! Text output: strace's line for each call, then an indented note.
//!
//! ```text
//! [pid 4242] pipe2([3, 4], 0) = 0 <0.000011>
//!            fd 3 is the read end, fd 4 the write end
//! ```

use super::errno::{errno_name, errno_text};
use super::event::{Event, Outcome, RetFormat, Step};

/// Renders events as text; colour only when asked (a tty without NO_COLOR).
pub struct Human {
    color: bool,
    opts: Option<super::RenderOptions>,
    /// When this process's previous step started (for -r).
    last_at: Option<std::time::Duration>,
    /// The run of identical steps being shown (one process's renderer sees
    /// only that process's steps).
    run: Option<Repeat>,
}

/// Identical consecutive steps: the first [`SHOWN_REPEATS`] are printed,
/// the rest counted and summed up in one line when the run ends. JSON
/// still has every step.
struct Repeat {
    key: String,
    pid: i32,
    count: u64,
    hidden_time: std::time::Duration,
    call: String,
}

const SHOWN_REPEATS: u64 = 3;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

impl Human {
    pub fn new(color: bool) -> Self {
        Human {
            color,
            opts: None,
            last_at: None,
            run: None,
        }
    }

    pub fn with(opts: super::RenderOptions) -> Self {
        Human {
            color: opts.color,
            opts: Some(opts),
            last_at: None,
            run: None,
        }
    }

    /// strace's -t/-tt/-ttt or -r column for a step that started `at`
    /// after the run began; empty without those options.
    fn stamp(&mut self, at: std::time::Duration) -> String {
        let Some(o) = self.opts else {
            return String::new();
        };
        if o.relative {
            let prev = self.last_at.replace(at).unwrap_or(at);
            return format!("{:>13.6} ", at.saturating_sub(prev).as_secs_f64());
        }
        if o.timestamps == 0 {
            return String::new();
        }
        let wall = o.origin_wall + at;
        let since = wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs() as i64;
        if o.timestamps >= 3 {
            return format!("{secs}.{:06} ", since.subsec_micros());
        }
        let (h, m, sec) = crate::os::local_time_of_day(secs);
        if o.timestamps == 2 {
            format!("{h:02}:{m:02}:{sec:02}.{:06} ", since.subsec_micros())
        } else {
            format!("{h:02}:{m:02}:{sec:02} ")
        }
    }

    /// The time of a line that is not a step (waiting marker, signal): now.
    fn stamp_now(&mut self) -> String {
        let Some(o) = self.opts else {
            return String::new();
        };
        if o.timestamps == 0 && !o.relative {
            return String::new();
        }
        let at = std::time::SystemTime::now()
            .duration_since(o.origin_wall)
            .unwrap_or_default();
        if o.relative {
            // A waiting marker does not move the -r clock: its step will.
            let prev = self.last_at.unwrap_or(at);
            return format!("{:>13.6} ", at.saturating_sub(prev).as_secs_f64());
        }
        self.stamp(at)
    }

    /// `note` folded to the terminal's width, each line indented.
    fn wrap(&self, indent: &str, note: &str) -> Vec<String> {
        let width = self.opts.and_then(|o| o.width).unwrap_or(0);
        let room = width.saturating_sub(indent.chars().count());
        if room < 30 || note.chars().count() <= room {
            return vec![note.to_string()];
        }
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in note.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > room {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }

    /// Text for `ev`, after the summary line of a run of repeats it ends.
    pub fn render(&mut self, ev: &Event<'_>) -> String {
        if let Event::Step(step) = ev {
            let key = format!(
                "{}({}) {:?} {}",
                step.syscall,
                step.args.join(", "),
                step.outcome,
                step.note
            );
            if let Some(r) = self
                .run
                .as_mut()
                .filter(|r| r.key == key && r.pid == step.pid)
            {
                r.count += 1;
                if r.count > SHOWN_REPEATS {
                    r.hidden_time += step.elapsed;
                    return String::new();
                }
                return self.step(step);
            }
            let mut out = self.flush();
            let text = self.step(step);
            let call = text.lines().next().unwrap_or("").to_string();
            let call = call
                .rsplit_once(" <")
                .map_or(call.clone(), |(c, _)| c.to_string());
            self.run = Some(Repeat {
                key,
                pid: step.pid,
                count: 1,
                hidden_time: std::time::Duration::ZERO,
                call,
            });
            out.push_str(&text);
            return out;
        }
        let mut out = self.flush();
        out.push_str(&self.render_other(ev));
        out
    }

    /// The line that stands for the hidden repeats, if any.
    fn flush(&mut self) -> String {
        match self.run.take() {
            Some(r) if r.count > SHOWN_REPEATS => {
                let more = r.count - SHOWN_REPEATS;
                let call = r.call.split_once("] ").map_or(r.call.as_str(), |(_, c)| c);
                let line = format!(
                    "[pid {}] … {more} more time{}: {call} ({:.6} s in all; --format json lists each)",
                    r.pid,
                    if more == 1 { "" } else { "s" },
                    r.hidden_time.as_secs_f64()
                );
                let mut out = self.paint(DIM, &line);
                out.push('\n');
                out
            }
            _ => String::new(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn render_other(&mut self, ev: &Event<'_>) -> String {
        match ev {
            Event::Step(step) => self.step(step),
            Event::Waiting {
                pid,
                syscall,
                lead,
                reason,
            } => {
                let prefix = format!("[pid {pid}] {}", self.stamp_now());
                let call = self.paint(BOLD, syscall);
                let sep = if lead.is_empty() { "" } else { ", " };
                let wait = self.paint(YELLOW, &format!("<{reason}>"));
                format!("{prefix}{call}({lead}{sep}… {wait}\n")
            }
            Event::Message { pid, text } => {
                // One line, always: a newline inside is shown escaped.
                let one = text.replace('\r', "\\r").replace('\n', "\\n");
                format!("[pid {pid}] {}\n", self.paint(GREEN, &format!(">> {one}")))
            }
            Event::Signal(info) => {
                let line = format!(
                    "[pid {}] {}--- {} {} ---\n",
                    info.pid,
                    self.stamp_now(),
                    signal_name(info.signo),
                    siginfo_notation(info)
                );
                self.paint(YELLOW, &line)
            }
            Event::Exit { pid, code, signal } => {
                let what = match (code, signal) {
                    (_, Some(sig)) => format!("killed by {sig}"),
                    (Some(c), None) => format!("exited with {c}"),
                    (None, None) => "exited".to_string(),
                };
                format!("[pid {pid}] +++ {what} +++\n")
            }
            Event::Counts { rows } => counts_table(rows),
            Event::Table(t) => super::table::text(t, self.color),
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
                    "  {:<w$}  {:>8}  {:>6}  {:>8}  result\n",
                    "lab", "syscalls", "failed", "provoked"
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
                        "  {:<w$}  {:>8}  {:>6}  {:>8}  {result}\n",
                        r.lab, r.syscalls, r.failed, r.provoked
                    ));
                }
                s
            }
        }
    }

    fn step(&mut self, step: &Step) -> String {
        let indent = " ".repeat(format!("[pid {}] ", step.pid).len());
        let prefix = format!("[pid {}] {}", step.pid, self.stamp(step.at));
        let ret = match step.outcome {
            Outcome::Ret(v) => match step.ret_format {
                RetFormat::Decimal => v.to_string(),
                RetFormat::Octal => format!("{v:03o}"),
                RetFormat::Hex => format!("{v:#x}"),
            },
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
            for line in self.wrap(&indent, &format!("{libc}{}", step.note)) {
                s.push_str(&indent);
                s.push_str(&self.paint(DIM, &line));
                s.push('\n');
            }
        }
        s
    }
}

fn signal_name(signo: i32) -> String {
    nix::sys::signal::Signal::try_from(signo)
        .map_or_else(|_| signo.to_string(), |s| s.as_str().to_string())
}

/// strace's name for a siginfo's si_code.
pub fn si_code_name(signo: i32, code: i32) -> String {
    let known = match code {
        libc::SI_USER => "SI_USER",
        0x80 => "SI_KERNEL",
        libc::SI_QUEUE => "SI_QUEUE",
        libc::SI_TIMER => "SI_TIMER",
        libc::SI_TKILL => "SI_TKILL",
        _ if signo == libc::SIGCHLD => match code {
            1 => "CLD_EXITED",
            2 => "CLD_KILLED",
            3 => "CLD_DUMPED",
            4 => "CLD_TRAPPED",
            5 => "CLD_STOPPED",
            6 => "CLD_CONTINUED",
            _ => "",
        },
        _ => "",
    };
    if known.is_empty() {
        code.to_string()
    } else {
        known.to_string()
    }
}

/// The braces of strace's `--- SIGINT {si_signo=SIGINT, si_code=SI_USER, si_pid=1, si_uid=0} ---`.
pub fn siginfo_notation(i: &super::event::SignalInfo) -> String {
    let name = signal_name(i.signo);
    let code = si_code_name(i.signo, i.code);
    if i.signo == libc::SIGCHLD {
        return format!(
            "{{si_signo={name}, si_code={code}, si_pid={}, si_uid={}, si_status={}, si_utime=…, si_stime=…}}",
            i.si_pid,
            i.si_uid,
            if i.code == 1 { i.status.to_string() } else { signal_name(i.status) }
        );
    }
    if i.code == libc::SI_USER || i.code == libc::SI_TKILL || i.code == libc::SI_QUEUE {
        return format!(
            "{{si_signo={name}, si_code={code}, si_pid={}, si_uid={}}}",
            i.si_pid, i.si_uid
        );
    }
    format!("{{si_signo={name}, si_code={code}}}")
}

/// strace -c's table.
fn counts_table(rows: &[super::event::CountRow]) -> String {
    let total_ns: u64 = rows.iter().map(|r| r.nanos).sum();
    let calls: u64 = rows.iter().map(|r| r.calls).sum();
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    let rule = "------ ----------- ----------- --------- --------- ----------------";
    let mut s = String::from("% time     seconds  usecs/call     calls    errors syscall\n");
    s.push_str(rule);
    s.push('\n');
    let line = |pct: f64, ns: u64, per: Option<u64>, calls: u64, errors: u64, name: &str| {
        let errs = if errors == 0 {
            String::new()
        } else {
            errors.to_string()
        };
        let per = per.map_or(String::new(), |p| p.to_string());
        format!(
            "{pct:6.2} {:11.6} {per:>11} {calls:>9} {errs:>9} {name}\n",
            ns as f64 / 1e9
        )
    };
    for r in rows {
        let pct = if total_ns == 0 {
            0.0
        } else {
            100.0 * r.nanos as f64 / total_ns as f64
        };
        s.push_str(&line(
            pct,
            r.nanos,
            Some(r.nanos / 1000 / r.calls.max(1)),
            r.calls,
            r.errors,
            &r.syscall,
        ));
    }
    s.push_str(rule);
    s.push('\n');
    s.push_str(&line(
        100.0,
        total_ns,
        Some(total_ns / 1000 / calls.max(1)),
        calls,
        errors,
        "total",
    ));
    s
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
            ret_format: RetFormat::Decimal,
            elapsed: Duration::from_micros(12),
            at: Duration::from_micros(345),
            note: "fd 3 reads, fd 4 writes".into(),
            provoked: false,
            objects: Vec::new(),
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
    fn identical_steps_after_the_third_are_summed_up_in_one_line() {
        let mut h = Human::new(false);
        let s = step(Outcome::Ret(0));
        let shown: Vec<String> = (0..10).map(|_| h.render(&Event::Step(&s))).collect();
        assert_eq!(shown.iter().filter(|t| !t.is_empty()).count(), 3);
        let end = h.render(&Event::Message {
            pid: 42,
            text: "done",
        });
        assert!(
            end.starts_with("[pid 42] … 7 more times: pipe2([3, 4], 0) = 0 ("),
            "{end}"
        );
        assert!(end.ends_with("[pid 42] >> done\n"), "{end}");
    }

    #[test]
    fn errors_print_name_and_message() {
        let text =
            Human::new(false).render(&Event::Step(&step(Outcome::Err(nix::errno::Errno::EMFILE))));
        assert!(text.contains("= -1 EMFILE (Too many open files)"), "{text}");
    }
}
