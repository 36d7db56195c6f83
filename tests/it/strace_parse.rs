//! Cross-checking a run against `strace -f`: the log parsed per process
//! (`<unfinished ...>` halves joined), the syscalls that must each be a
//! step, and the comparison both ways. Split out of `util`, which
//! re-exports what the tests call.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{have_tool, run_cmd, skip, spawn_cmd, wait_exit, Run, TempDir};

/// One completed syscall line of an `strace -f` log.
#[derive(Debug, Clone)]
pub struct StraceCall {
    pub pid: i64,
    pub name: String,
    pub args: String,
    /// `None` for `= ?`.
    pub ret: Option<i64>,
    pub errno: Option<String>,
    pub line: String,
    /// The process was killed by a signal right after this call (its last).
    pub fatal: bool,
}

impl StraceCall {
    pub fn first_arg(&self) -> &str {
        let a = self.args.trim_start();
        let end = a.find([',', ')']).unwrap_or(a.len());
        a[..end].trim()
    }
}

/// Parses an `strace -f -o LOG` file, joining `<unfinished ...>` halves with
/// their `<... resumed>` rest. Returns each pid's calls in order.
pub fn parse_strace(log: &str) -> HashMap<i64, Vec<StraceCall>> {
    let mut by_pid: HashMap<i64, Vec<StraceCall>> = HashMap::new();
    let mut pending: HashMap<i64, String> = HashMap::new();
    for raw in log.lines() {
        let Some((pid, rest)) = raw.split_once(char::is_whitespace) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i64>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("+++ killed by") {
            if let Some(last) = by_pid.get_mut(&pid).and_then(|v| v.last_mut()) {
                last.fatal = true;
            }
            continue;
        }
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        let full = if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            let Some(idx) = tail.find(" resumed>") else {
                continue;
            };
            let head = pending.remove(&pid).unwrap_or_default();
            format!("{head}{}", &tail[idx + " resumed>".len()..])
        } else {
            rest.to_string()
        };
        let Some(open) = full.find('(') else { continue };
        let name = full[..open].to_string();
        let Some(eq) = full
            .rfind(") = ")
            .map(|i| i + 4)
            .or_else(|| full.rfind("= ").map(|i| i + 2))
        else {
            continue;
        };
        let args_end = full[..eq].rfind(')').unwrap_or(open + 1);
        let args = full[open + 1..args_end.max(open + 1)].to_string();
        let retpart = full[eq..].trim();
        // A call a caught signal interrupted: strace shows the kernel's
        // ERESTART* code; with no SA_RESTART the process sees -1 EINTR.
        let retpart = if retpart.starts_with("? ERESTART") {
            "-1 EINTR"
        } else {
            retpart
        };
        let mut toks = retpart.split_whitespace();
        let (ret, errno) = match toks.next() {
            Some("?") | None => (None, None),
            Some(v) => {
                let n = if let Some(hex) = v.strip_prefix("0x") {
                    i64::from_str_radix(hex, 16).ok()
                } else if v.len() > 1 && v.starts_with('0') {
                    // strace writes umask's value in octal: 022.
                    i64::from_str_radix(v, 8).ok()
                } else {
                    v.parse().ok()
                };
                let errno = if n == Some(-1) {
                    toks.next().map(str::to_string)
                } else {
                    None
                };
                (n, errno)
            }
        };
        by_pid.entry(pid).or_default().push(StraceCall {
            pid,
            name,
            args,
            ret,
            errno,
            line: raw.to_string(),
            fatal: false,
        });
    }
    // A call cut short by a signal the process has no handler for (under
    // ptrace even an ignored SIGCHLD interrupts) is restarted by the kernel
    // without the process ever seeing it: strace prints `= ? ERESTARTNOHAND`
    // and then the same call again. Only when a handler ran (strace then
    // shows its rt_sigreturn next) did the process see EINTR.
    for calls in by_pid.values_mut() {
        let mut keep = Vec::with_capacity(calls.len());
        for i in 0..calls.len() {
            let restarted = calls[i].line.contains("= ? ERESTART")
                && calls.get(i + 1).is_some_and(|n| n.name != "rt_sigreturn");
            keep.push(!restarted);
        }
        let mut it = keep.into_iter();
        calls.retain(|_| it.next().unwrap_or(true));
    }
    by_pid
}

/// Syscalls a lab makes on purpose: each one strace sees between a process's
/// first and last step must be a step. (Writes to stdout/stderr are output.)
pub const INTERESTING: &[&str] = &[
    "pipe2",
    "clone",
    "read",
    "write",
    "close",
    "wait4",
    "mknodat",
    "openat",
    "unlink",
    "rmdir",
    "mkdir",
    "fcntl",
    "poll",
    "kill",
    "socket",
    "bind",
    "listen",
    "accept4",
    "accept",
    "connect",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "getpeername",
    "getsockopt",
    "shutdown",
    "socketpair",
    "memfd_create",
    "ftruncate",
    "mmap",
    "munmap",
    "futex",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "ppoll",
    "pidfd_open",
    "rt_sigprocmask",
    "rt_sigaction",
    "setitimer",
    "setresuid",
    "setresgid",
    "setgroups",
    "setns",
    "unshare",
    "ftruncate",
    "exit_group",
    "fsync",
    "rename",
    "renameat",
    "renameat2",
    "geteuid",
    "getegid",
];

/// Whether an `INTERESTING` call strace saw is the experiment's and not the
/// runtime's: the allocator maps and unmaps private memory, and glibc's
/// locks use private futexes, neither of which is a lab step. A lab's own
/// are a MAP_SHARED mapping of a descriptor, its munmap (by address), and
/// the shared (not `_PRIVATE`) FUTEX_WAIT and FUTEX_WAKE.
fn experiment_call(c: &StraceCall, shared_maps: &[i64]) -> bool {
    let arg = |i: usize| c.args.split(", ").nth(i).unwrap_or("").trim();
    match c.name.as_str() {
        "mmap" => c.args.contains("MAP_SHARED") && arg(4) != "-1",
        "munmap" => {
            let addr = i64::from_str_radix(c.first_arg().trim_start_matches("0x"), 16).ok();
            addr.is_some_and(|a| shared_maps.contains(&a))
        }
        "futex" => matches!(arg(1), "FUTEX_WAIT" | "FUTEX_WAKE"),
        _ => true,
    }
}

/// Whether an unprinted call is ipclab's display work, which the README
/// says is not printed: reading a /proc file (the `objects` of each JSON
/// step, `--fds`), the NETLINK_SOCK_DIAG socket that asks for a socket's
/// addresses or an AF_UNIX peer, and writing its own output descriptors,
/// which it keeps at 900 and above (`-o`, the run's copy for `--diagram`
/// and `--html`). `open` holds the descriptors of the first two while they
/// are open.
fn display_call(c: &StraceCall, open: &mut Vec<String>) -> bool {
    let fd = c.first_arg().to_string();
    let made = match c.name.as_str() {
        "openat" => c.args.contains("\"/proc/"),
        "socket" => c.args.contains("NETLINK_SOCK_DIAG"),
        _ => false,
    };
    if made {
        open.extend(c.ret.filter(|&r| r >= 0).map(|r| r.to_string()));
        return true;
    }
    if open.contains(&fd) {
        if c.name == "close" {
            open.retain(|f| *f != fd);
        }
        return true;
    }
    c.name == "write" && fd.parse::<i64>().is_ok_and(|n| n >= 900)
}

/// Runs `ipclab --format json ARGS` under `strace -f` and checks, process
/// by process, that every JSON step has its strace line in the same order
/// with the same name, first descriptor argument, return value and errno;
/// and that no interesting syscall between a process's first and last step
/// went unprinted. Skips when strace is missing (fails in CI).
pub fn strace_crosscheck(test: &str, args: &[&str], limit: Duration) -> Option<Run> {
    if !have_tool("strace") {
        skip(test, "needs strace (apt-get install strace)");
        return None;
    }
    let dir = TempDir::new("strace");
    let log = dir.path().join("strace.log");
    let run = run_cmd(&mut strace_cmd(&log, args), limit);
    let text = std::fs::read_to_string(&log).expect("strace log");
    // With `-e trace=…` steps are hidden on purpose, and `bench` runs its
    // measured loops untraced on purpose: no reverse check for either.
    let reverse = !args.contains(&"-e") && !args.contains(&"bench");
    check_against_strace(test, &run, &text, reverse);
    Some(run)
}

/// `strace -f -qq -o LOG ipclab --format json ARGS`.
fn strace_cmd(log: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("strace");
    cmd.arg("-f")
        .arg("-qq")
        .arg("-o")
        .arg(log)
        .arg(env!("CARGO_BIN_EXE_ipclab"))
        .arg("--format")
        .arg("json")
        .args(args);
    cmd
}

/// As [`strace_crosscheck`], for a server: once it has printed its
/// getsockname step and then a line containing `ready` (it serves),
/// `during` runs with that address; then the server is sent SIGTERM (it
/// is expected to exit 143) and the run is checked.
pub fn strace_crosscheck_server(
    test: &str,
    args: &[&str],
    limit: Duration,
    ready: &str,
    during: impl FnOnce(std::net::SocketAddr),
) -> Option<Run> {
    use std::io::BufRead;
    if !have_tool("strace") {
        skip(test, "needs strace (apt-get install strace)");
        return None;
    }
    let dir = TempDir::new("strace");
    let log = dir.path().join("strace.log");
    let mut spawned = spawn_cmd(&mut strace_cmd(&log, args));
    let child = spawned.child.as_mut().expect("running");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (pid, addr) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{test}: no getsockname step: {lines:?}"));
        lines.push(line.clone());
        let v: Value = serde_json::from_str(&line).expect("JSON");
        if v["syscall"] == "getsockname" {
            let sa = v["args"][1].as_str().expect("sockaddr");
            let port: u16 = sa
                .split("htons(")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(|p| p.parse().ok())
                .expect("port");
            let ip = sa.split('"').nth(1).expect("ip").parse().expect("ip");
            break (
                v["pid"].as_i64().expect("pid"),
                std::net::SocketAddr::new(ip, port),
            );
        }
    };
    /// SIGKILLs the traced ipclab unless the check got to stop it: killing
    /// strace alone (as dropping `spawned` does) would leave it running.
    struct Tracee(i64, bool);
    impl Drop for Tracee {
        fn drop(&mut self) {
            if !self.1 {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.0.to_string()])
                    .status();
            }
        }
    }
    let mut tracee = Tracee(pid, false);
    while !lines.last().is_some_and(|l| l.contains(ready)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{test}: never printed {ready:?}: {lines:?}"));
        lines.push(line);
    }
    during(addr);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    tracee.1 = true;
    let mut child = spawned.child.take().expect("running");
    let status = wait_exit(&mut child, limit, test);
    let _ = reader.join();
    lines.extend(rx.try_iter());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let mut stdout = lines.join("\n");
    stdout.push('\n');
    let run = Run {
        status,
        stdout,
        stderr,
    };
    let text = std::fs::read_to_string(&log).expect("strace log");
    check_against_strace(test, &run, &text, true);
    Some(run)
}

/// Checks a finished run's JSON steps against the strace log of it; with
/// `reverse`, also that nothing interesting between steps went unprinted.
fn check_against_strace(test: &str, run: &Run, text: &str, reverse: bool) {
    let traced = parse_strace(text);
    let shared_maps: Vec<i64> = traced
        .values()
        .flatten()
        .filter(|c| c.name == "mmap" && experiment_call(c, &[]))
        .filter_map(|c| c.ret)
        .collect();
    let steps = run.steps();
    assert!(
        !steps.is_empty(),
        "{test}: no steps\n{}\n{}",
        run.stdout,
        run.stderr
    );
    let mut by_pid: HashMap<i64, Vec<&Value>> = HashMap::new();
    for s in &steps {
        by_pid
            .entry(s["pid"].as_i64().expect("pid"))
            .or_default()
            .push(s);
    }
    for (pid, psteps) in &by_pid {
        let calls = traced
            .get(pid)
            .unwrap_or_else(|| panic!("{test}: strace saw no pid {pid}"));
        // Match from the end: the runtime's own start-up calls (an
        // rt_sigaction for SIGPIPE, say) come before the first step, never
        // after the last, so the latest candidate is the step's own call.
        let mut cursor = calls.len();
        let mut matched_idx = Vec::new();
        for s in psteps.iter().rev() {
            let name = s["syscall"].as_str().expect("syscall");
            let arg0 = s["args"][0].as_str().unwrap_or("");
            let ret = s["ret"].as_i64();
            let errno = s["errno"].as_str();
            let comparable = !arg0.contains([',', '{', '"']);
            let found = calls[..cursor].iter().rposition(|c| {
                c.name == name
                    && (!comparable || c.first_arg() == arg0)
                    // `= ?` is a call that never returned to the process:
                    // exit_group, or the call a fatal signal followed.
                    // (A successful execve is one too, to the process
                    // that made it; strace, outside, sees it return 0.)
                    && (if ret.is_none() {
                        c.ret.is_none() || c.fatal || (name == "execve" && c.ret == Some(0))
                    } else {
                        c.ret == ret
                    })
                    && (errno.is_none() || c.errno.as_deref() == errno)
            });
            match found {
                Some(i) => {
                    matched_idx.push(i);
                    cursor = i;
                }
                None => panic!(
                    "{test}: step #{} of pid {pid} has no strace line before position {cursor}: {s}\nstrace for pid {pid}:\n{}",
                    s["seq"],
                    calls.iter().map(|c| c.line.as_str()).collect::<Vec<_>>().join("\n")
                ),
            }
        }
        matched_idx.reverse();
        if !reverse {
            continue;
        }
        // Reverse direction: nothing interesting in between went unprinted.
        let (first, last) = (matched_idx[0], *matched_idx.last().expect("non-empty"));
        let mut display = Vec::new();
        for (i, c) in calls.iter().enumerate().take(last + 1).skip(first) {
            if matched_idx.contains(&i)
                || !INTERESTING.contains(&c.name.as_str())
                || !experiment_call(c, &shared_maps)
                || display_call(c, &mut display)
            {
                continue;
            }
            let fd = c.first_arg();
            if (c.name == "write" || c.name == "read") && (fd == "0" || fd == "1" || fd == "2") {
                continue;
            }
            panic!(
                "{test}: pid {pid} made `{}` without printing a step",
                c.line
            );
        }
    }
}
