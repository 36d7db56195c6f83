//! `ipclab bench trace`: what tracing costs per syscall. One loop (write a
//! byte into a pipe, read it back) runs three ways, each in a fresh ipclab
//! started with execve: untraced; traced by ipclab's own recorder with the
//! trace going to /dev/null (every step formatted and written); and
//! untraced under `strace -f -o /dev/null` (ptrace: two stops per call).
//!
//! The inner run (`ipclab bench loop`, hidden) writes one line,
//! `calls=N ns=T`, to `--result-fd`: the write end of a pipe it inherited
//! across execve (opened without O_CLOEXEC for that), which the outer run
//! reads. Its own trace goes where the options say (-q: nowhere).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use super::Machine;
use crate::error::{Error, Result};
use crate::lab::{self, wait};
use crate::render::event::{Cell, Column, Table};
use crate::sys::process::{self, Forked};
use crate::sys::{fast, file};
use crate::trace::Recorder;

/// A validated `bench trace`.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// Which ways, in order.
    pub ways: Vec<WayName>,
    /// Loop iterations (each is two syscalls).
    pub iterations: u64,
    /// At most this long per way.
    pub seconds: f64,
    pub machine: Machine,
}

/// A way of running the loop, as `--ways` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WayName {
    Untraced,
    Ipclab,
    Strace,
}

/// `untraced,strace` → the ways, in that order.
///
/// # Errors
/// An unknown way, or none.
pub fn parse_ways(list: &str) -> Result<Vec<WayName>> {
    super::parse_list(
        list,
        "--ways",
        "way",
        "untraced, ipclab, strace",
        "untraced,ipclab",
        |w| match w {
            "untraced" => vec![WayName::Untraced],
            "ipclab" => vec![WayName::Ipclab],
            "strace" => vec![WayName::Strace],
            _ => vec![],
        },
    )
}

/// One way of running the loop.
struct Way {
    name: &'static str,
    what: &'static str,
    program: PathBuf,
    /// argv before the inner command (the program, strace's options, ipclab's).
    lead: Vec<String>,
    /// argv after it (`--traced`).
    tail: Vec<String>,
}

/// `ipclab bench trace`.
pub fn run(rec: &mut Recorder, cfg: &TraceConfig) -> Result<()> {
    let me = std::env::current_exe()
        .map_err(|e| Error::protocol(format!("cannot find ipclab's own program: {e}")))?;
    let inner = |fd: i32| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        v.extend([
            "bench".into(),
            "loop".into(),
            "--iterations".into(),
            cfg.iterations.to_string(),
            "--seconds".into(),
            cfg.seconds.to_string(),
            "--result-fd".into(),
            fd.to_string(),
        ]);
        v
    };
    let exe = me.display().to_string();
    let mut ways = Vec::new();
    for name in &cfg.ways {
        match name {
            WayName::Untraced => ways.push(Way {
                name: "untraced",
                what: "the loop alone",
                program: me.clone(),
                lead: vec![exe.clone(), "-q".into()],
                tail: vec![],
            }),
            WayName::Ipclab => ways.push(Way {
                name: "ipclab",
                what: "each call traced by ipclab's recorder, every step formatted and written to /dev/null",
                program: me.clone(),
                lead: vec![exe.clone(), "-o".into(), "/dev/null".into()],
                tail: vec!["--traced".into()],
            }),
            WayName::Strace => match find_in_path("strace") {
                Some(s) => ways.push(Way {
                    name: "strace",
                    what: "the untraced loop under strace -f -o /dev/null (ptrace)",
                    program: s,
                    lead: vec![
                        "strace".into(),
                        "-f".into(),
                        "-o".into(),
                        "/dev/null".into(),
                        exe.clone(),
                        "-q".into(),
                    ],
                    tail: vec![],
                }),
                None => rec.message(
                    "strace is not installed: that row is left out (apt-get install strace)",
                ),
            },
        }
    }
    let mut rows = Vec::new();
    for w in &ways {
        rec.message(format!("{}: {}", w.name, w.what));
        rows.push((w.name, spawn(rec, w, &inner)?));
    }
    let base = rows
        .iter()
        .find(|r| r.0 == "untraced")
        .map_or(0.0, |r| r.1 .1);
    let col = |key, title| Column { key, title };
    let table = Table {
        name: "trace-cost".into(),
        title: "what tracing costs, per syscall".into(),
        columns: vec![
            col("way", "way"),
            col("ns_per_call", "ns per call"),
            col("times_untraced", "× untraced"),
            col("calls", "calls"),
        ],
        rows: rows
            .iter()
            .map(|(name, (calls, ns))| {
                vec![
                    Cell::Text((*name).into()),
                    Cell::Num(*ns, 0),
                    Cell::Num(if base > 0.0 { ns / base } else { f64::NAN }, 1),
                    Cell::Int(*calls),
                ]
            })
            .collect(),
        bars: Some(1),
        notes: vec![
            "the loop: write(2) one byte into a pipe, read(2) it back; ns per call = loop time / calls".into(),
            format!("machine: {}", cfg.machine.line()),
        ],
    };
    rec.table(&table);
    Ok(())
}

/// Looks `name` up in $PATH (before any step: plumbing, like a shell's).
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// pipe2 → fork → (child: dup2 the pipe onto stdout, execve) → read the
/// child's line → reap. Returns (calls, ns per call).
fn spawn(rec: &mut Recorder, w: &Way, inner: &dyn Fn(i32) -> Vec<String>) -> Result<(u64, f64)> {
    rec.note("no O_CLOEXEC: the write end must survive execve, so the new program can write its result there");
    let (r, wr) = file::pipe2(rec, OFlag::empty())?;
    let mut args = w.lead.clone();
    args.extend(inner(wr.as_raw_fd()));
    args.extend(w.tail.iter().cloned());
    match process::fork(rec)? {
        Forked::Child => {
            rec.forked_child();
            lab::child_exit(rec, |rec| {
                file::close(rec, r)?;
                let e = process::execve(rec, &w.program, &args);
                rec.message(format!(
                    "execve {} failed: {}",
                    w.program.display(),
                    e.errno.desc()
                ));
                Err(e.into())
            })
        }
        Forked::Parent { child } => {
            file::close(rec, wr)?;
            rec.waiting(format!("waiting for the {} run's result", w.name));
            let mut buf = [0u8; 256];
            let got = lab::read_to_eof(rec, r.as_fd(), &mut buf, 256);
            file::close(rec, r)?;
            let side = got
                .as_ref()
                .map(drop)
                .map_err(|_| Error::protocol("reading the result failed"));
            let st = wait::finish(rec, child, side);
            let (text, _) = got?;
            wait::expect_exit_0(st?)?;
            parse(&text).ok_or_else(|| {
                Error::protocol(format!(
                    "the {} run said {:?}, not calls=N ns=T",
                    w.name,
                    String::from_utf8_lossy(&text)
                ))
            })
        }
    }
}

/// `calls=40000 ns=1234567\n` → (calls, ns per call).
fn parse(text: &[u8]) -> Option<(u64, f64)> {
    let s = std::str::from_utf8(text).ok()?.trim();
    let mut calls = None;
    let mut ns = None;
    for part in s.split_whitespace() {
        match part.split_once('=')? {
            ("calls", v) => calls = v.parse::<u64>().ok(),
            ("ns", v) => ns = v.parse::<u64>().ok(),
            _ => return None,
        }
    }
    let (calls, ns) = (calls?, ns?);
    (calls > 0).then(|| (calls, ns as f64 / calls as f64))
}

/// The hidden `ipclab bench loop`: the loop itself, traced or not.
pub fn inner(
    rec: &mut Recorder,
    iterations: u64,
    seconds: f64,
    traced: bool,
    out: OwnedFd,
) -> Result<()> {
    let (r, w) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
    let limit = Duration::from_secs_f64(seconds);
    let mut byte = [b'x'];
    let mut done = 0u64;
    let start = Instant::now();
    let result = (|| -> Result<()> {
        while done < iterations {
            if traced {
                file::write(rec, w.as_fd(), b"x")?;
                file::read(rec, r.as_fd(), &mut byte)?;
            } else {
                fast::write(w.as_fd(), b"x").map_err(|e| super::loops::loop_error(e, "pipe"))?;
                fast::read(r.as_fd(), &mut byte)
                    .map_err(|e| super::loops::loop_error(e, "pipe"))?;
            }
            done += 1;
            if done % 1024 == 0 && start.elapsed() > limit {
                break;
            }
        }
        Ok(())
    })();
    let ns = start.elapsed().as_nanos();
    close_both(rec, r, w)?;
    result?;
    let line = format!("calls={} ns={ns}\n", done * 2);
    file::write(rec, out.as_fd(), line.as_bytes())?;
    file::close(rec, out)?;
    Ok(())
}

fn close_both(rec: &mut Recorder, r: OwnedFd, w: OwnedFd) -> Result<()> {
    file::close(rec, r)?;
    file::close(rec, w)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_parse() {
        assert_eq!(parse(b"calls=4 ns=400\n"), Some((4, 100.0)));
        assert_eq!(parse(b"calls=0 ns=400"), None);
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(b"calls=4 ns=400 x=1"), None);
    }
}
