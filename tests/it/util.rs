//! Helpers shared by the integration tests: run the binary with a bounded
//! wait, parse its JSON lines, skip (or, in CI, fail) when a privilege or a
//! tool is missing; the cross-check against `strace -f` lives in
//! `strace_parse` and is re-exported here.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn ipclab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipclab"))
}

/// True when CI demands that privileged tests run instead of skipping.
pub fn privileged_required() -> bool {
    std::env::var("REQUIRE_PRIVILEGED_TESTS").is_ok_and(|v| v == "1")
}

/// Says why a test skips, on the real stderr (past the harness's capture);
/// panics instead when `REQUIRE_PRIVILEGED_TESTS=1`.
pub fn skip(test: &str, why: &str) {
    if privileged_required() {
        panic!("{test}: cannot skip under REQUIRE_PRIVILEGED_TESTS=1: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// Whether `tool` is on PATH.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

pub fn is_root() -> bool {
    // The effective uid, read from /proc so the tests need no unsafe.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Skip the test (return) unless `tool` is installed.
#[macro_export]
macro_rules! require_tool {
    ($test:expr, $tool:expr) => {
        if !$crate::util::have_tool($tool) {
            $crate::util::skip($test, &format!("needs `{}` on PATH", $tool));
            return;
        }
    };
}

/// Skip the test (return) unless running as root.
#[macro_export]
macro_rules! require_root {
    ($test:expr) => {
        if !$crate::util::is_root() {
            $crate::util::skip($test, "needs root (run as root, or sudo cargo test)");
            return;
        }
    };
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Every JSON line of stdout, parsed; panics on a line that is not JSON.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The `syscall` events, in seq order.
    pub fn steps(&self) -> Vec<Value> {
        let mut s: Vec<Value> = self
            .events()
            .into_iter()
            .filter(|e| e["type"] == "syscall")
            .collect();
        s.sort_by_key(|e| e["seq"].as_u64());
        s
    }

    /// The steps after the run's preamble: every command first holds and
    /// catches the stop signals (rt_sigprocmask, then three rt_sigaction).
    pub fn lab_steps(&self) -> Vec<Value> {
        let mut steps = self.steps();
        let preamble = steps
            .iter()
            .take(4)
            .take_while(|s| s["syscall"] == "rt_sigprocmask" || s["syscall"] == "rt_sigaction")
            .count();
        if preamble == 4 {
            steps.drain(..4);
        }
        steps
    }

    /// The text of every `message` event.
    pub fn messages(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == "message")
            .filter_map(|e| e["text"].as_str().map(str::to_string))
            .collect()
    }

    /// The rows of the last `summary` event.
    pub fn summary(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .rev()
            .find(|e| e["type"] == "summary")
            .and_then(|e| e["rows"].as_array().cloned())
            .unwrap_or_default()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit 0 and that no `failed` summary row exists.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code(),
            Some(0),
            "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        self
    }
}

/// A running ipclab that is killed and reaped when dropped.
pub struct Spawned {
    pub child: Option<Child>,
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Waits at most `limit` for it to exit; kills it and panics past that.
    pub fn wait_timeout(mut self, limit: Duration) -> Run {
        let child = self.child.take().expect("not yet waited for");
        finish(child, limit)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }
}

/// Kills `child` and everything it started (it leads its own process
/// group, see [`spawn_cmd`]): strace's tracee, a server's children. Then
/// reaps `child`.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts `ipclab ARGS` in the background with piped stdout/stderr.
pub fn spawn(args: &[&str]) -> Spawned {
    spawn_cmd(ipclab().args(args))
}

pub fn spawn_cmd(cmd: &mut Command) -> Spawned {
    use std::os::unix::process::CommandExt;
    // Whatever descriptors the harness inherited (a CI runner's, a shell's)
    // must not reach the binary: its fd numbers are part of what is checked.
    // CLOSE_RANGE_CLOEXEC marks them close-on-exec rather than closing them,
    // so std's own exec-error pipe keeps working until exec.
    // Likewise the dispositions of SIGINT and SIGTERM, which the binary
    // prints: a job started in the background inherits them ignored, so
    // start from the defaults a terminal gives.
    // SAFETY: close_range and signal (sigaction) are async-signal-safe
    // syscalls, run in the forked child before exec; they touch no memory
    // of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    // Its own process group, so that a test that gives up on it can kill
    // what it started too (see kill_group).
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ipclab");
    Spawned { child: Some(child) }
}

/// Runs `ipclab ARGS` to completion within `limit`.
pub fn run(args: &[&str], limit: Duration) -> Run {
    spawn(args).wait_timeout(limit)
}

/// Runs any command to completion within `limit`.
pub fn run_cmd(cmd: &mut Command, limit: Duration) -> Run {
    spawn_cmd(cmd).wait_timeout(limit)
}

fn finish(mut child: Child, limit: Duration) -> Run {
    // Read the pipes on threads so a chatty child never blocks on a full pipe.
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > limit {
            kill_group(&mut child);
            let (stdout, stderr) = (out.take(), err.take());
            panic!("timed out after {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: out.take(),
        stderr: err.take(),
    }
}

/// A pipe being read to its end on a thread of its own.
struct Reader(std::sync::mpsc::Receiver<String>);

impl Reader {
    /// What was read, once the pipe is at EOF — or after at most 5 s: a
    /// process the child left behind (strace's tracee, after strace was
    /// killed) may hold the pipe open for ever, and no test may hang.
    fn take(&self) -> String {
        self.0
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "(the pipe was still open 5 s after the process ended: something it started still holds it)".into())
    }
}

fn reader<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> Reader {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut pipe = pipe;
        let _ = tx.send(read_all(pipe.as_mut()));
    });
    Reader(rx)
}

fn read_all<R: std::io::Read>(r: Option<&mut R>) -> String {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Waits at most `limit` for `child` to exit (polling every 10 ms); kills
/// it and panics with `what` past that.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms for at most `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A fresh directory for one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p =
            std::env::temp_dir().join(format!("ipclabtest-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pids of the run's processes that were forked (clone steps) but never
/// reaped by a wait4 step: zombies left behind.
pub fn unreaped_children(steps: &[Value]) -> Vec<i64> {
    let forked: Vec<i64> = steps
        .iter()
        .filter(|s| s["syscall"] == "clone")
        .filter_map(|s| s["ret"].as_i64())
        .filter(|&r| r > 0)
        .collect();
    let reaped: Vec<i64> = steps
        .iter()
        .filter(|s| s["syscall"] == "wait4")
        .filter_map(|s| s["ret"].as_i64())
        .collect();
    forked.into_iter().filter(|p| !reaped.contains(p)).collect()
}

/// Descriptors each process opened through a step and never closed. A
/// forked child starts with the parent's open set; `exit_group` closes all.
pub fn leaked_fds(steps: &[Value]) -> HashMap<i64, Vec<i64>> {
    let mut open: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut ended: Vec<i64> = Vec::new();
    for s in steps {
        let pid = s["pid"].as_i64().unwrap_or(0);
        let ret = s["ret"].as_i64().unwrap_or(-1);
        let name = s["syscall"].as_str().unwrap_or("");
        let arg0 = s["args"][0].as_str().unwrap_or("");
        let set = open.entry(pid).or_default();
        match name {
            "pipe2" if ret == 0 => set.extend(fd_array(arg0)),
            "socketpair" if ret == 0 => set.extend(fd_array(s["args"][3].as_str().unwrap_or(""))),
            // Descriptors passed with SCM_RIGHTS arrive as new ones here.
            "recvmsg" if ret >= 0 => {
                let msg = s["args"][1].as_str().unwrap_or("");
                if let Some(rest) = msg.split("cmsg_type=SCM_RIGHTS, cmsg_data=").nth(1) {
                    set.extend(fd_array(rest.split(']').next().unwrap_or("")));
                }
            }
            "openat" | "socket" | "accept4" | "accept" | "epoll_create1" | "pidfd_open"
            | "memfd_create"
                if ret >= 0 =>
            {
                set.push(ret)
            }
            "close" if ret == 0 => {
                let fd: i64 = arg0.parse().unwrap_or(-1);
                set.retain(|&f| f != fd);
            }
            "clone" if ret > 0 => {
                let copy = set.clone();
                open.insert(ret, copy);
            }
            "exit_group" => ended.push(pid),
            // Reaped: whatever it held, the kernel closed (it may have died of a signal).
            "wait4" if ret > 0 => ended.push(ret),
            _ => {}
        }
    }
    open.retain(|pid, fds| !ended.contains(pid) && !fds.is_empty());
    open
}

/// `[3, 4]` (or `[3, 4` cut before its bracket) → the numbers.
fn fd_array(text: &str) -> Vec<i64> {
    text.trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .filter_map(|n| n.parse().ok())
        .collect()
}

pub use crate::strace_parse::{strace_crosscheck, strace_crosscheck_server};

// ------------------------------------------------------------ privileges

/// Runs `ipclab ARGS` as user nobody with no capabilities (setpriv), for
/// checking what an unprivileged user sees. `None` (with a skip) unless
/// root and setpriv are there to make the switch.
pub fn run_as_nobody(test: &str, args: &[&str], limit: Duration) -> Option<Run> {
    run_unprivileged(test, "nobody", "nogroup", args, limit)
}

/// As [`run_as_nobody`], as any user and group (names or numbers): a uid
/// of its own keeps a test's processes out of another test's
/// RLIMIT_NPROC count for nobody.
pub fn run_unprivileged(
    test: &str,
    user: &str,
    group: &str,
    args: &[&str],
    limit: Duration,
) -> Option<Run> {
    if !is_root() || !have_tool("setpriv") {
        skip(test, "needs root and setpriv to switch to user nobody");
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={user}"),
        &format!("--regid={group}"),
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(env!("CARGO_BIN_EXE_ipclab"))
    .args(args)
    .env("TMPDIR", "/tmp");
    Some(run_cmd(&mut cmd, limit))
}

/// Runs `ipclab ARGS` inside a new network namespace (`unshare -n`) whose
/// loopback is up, after the shell commands in `setup` (sysctls of that
/// namespace). `None` (with a skip) without root, unshare or ip.
pub fn run_in_netns(test: &str, setup: &str, args: &[&str], limit: Duration) -> Option<Run> {
    if !is_root() || !have_tool("unshare") || !have_tool("ip") {
        skip(
            test,
            "needs root, unshare and ip to make a network namespace",
        );
        return None;
    }
    // `exec "$0" "$@"` keeps the arguments as given, with no shell quoting.
    let script = format!("ip link set lo up && {setup} && exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", &script, env!("CARGO_BIN_EXE_ipclab")])
        .args(args);
    Some(run_cmd(&mut cmd, limit))
}

// ------------------------------------------------------------ peers

/// Starts `python3 -c SCRIPT` as an independent peer that prints the port it
/// bound on its first line; returns it (killed and reaped when dropped) with
/// that port. The wait for the line is bounded. `None` (with a skip) when
/// python3 is missing.
pub fn python_peer(test: &str, script: &str, limit: Duration) -> Option<(Spawned, u16)> {
    use std::io::BufRead;
    if !have_tool("python3") {
        skip(test, "needs python3 for an independent peer");
        return None;
    }
    let mut peer = spawn_cmd(Command::new("python3").arg("-c").arg(script));
    let out = peer
        .child
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("peer stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{test}: the peer printed no port within {limit:?}"));
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{test}: not a port: {line:?}"));
    Some((peer, port))
}
