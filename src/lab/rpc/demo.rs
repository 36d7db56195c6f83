//! `ipclab rpc demo`: the whole of §3.6.2 in one command, no second
//! terminal, no privileges. A matchmaker (port 0: the system's rpcbind is
//! never touched) and the servers run as forked children; this process is
//! the client.
//!
//! 1. remoteAdd(10, 20) = 30 over TCP, its bytes on the wire labelled.
//! 2. N INCR calls over UDP through a server that drops requests and
//!    replies on purpose (`--loss`, seeded), once per semantics. The
//!    at-most-once and exactly-once servers are killed with SIGKILL in the
//!    middle (at the first timeout from the middle call on) and started
//!    again on the same port from the same state file.
//! 3. A table: calls, replies, retransmissions, refusals, calls left
//!    without a reply, and the executions on the server (its counter,
//!    which starts at 0 and only INCR changes).
//!
//! Each server tells the demo through a pipe when it is ready (registered
//! and listening) and, when it is stopped, its counter.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::client::{Caller, Identity, Policy};
use super::{matchmaker, now_secs, server, service, utc, DemoConfig, Semantics, ServerConfig};
use crate::error::{Error, Result};
use crate::lab::{child_exit, wait, Made};
use crate::packet::portmap::ipclab::{AddArgs, IpclabCall};
use crate::packet::portmap::{IPPROTO_TCP, IPPROTO_UDP};
use crate::packet::rpc::ReplyBody;
use crate::sys::file;
use crate::sys::process::{self, Forked};
use crate::trace::Recorder;

/// How long the client waits for each reply before sending again.
const TIMEOUT: Duration = Duration::from_millis(100);
/// Retransmissions at most (at-least-once, at-most-once).
const RETRIES: u32 = 4;
/// exactly-once keeps sending for this long at most.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a server may take to say it is ready.
const START: Duration = Duration::from_secs(5);

/// One row of the closing table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub semantics: &'static str,
    pub calls: u32,
    pub replies: u32,
    pub resent: u32,
    pub refused: u32,
    pub unanswered: u32,
    /// The server's counter at the end: how many times INCR ran.
    pub executed: Option<i32>,
    pub crashed: bool,
}

/// A running server child.
pub struct Life {
    pub pid: Pid,
    notify: OwnedFd,
    /// The port it serves on (UDP and TCP alike), as it reported it.
    pub port: u16,
}

impl Life {
    /// Stops the server (SIGTERM: it unregisters and exits; SIGKILL after
    /// the grace time), reaps it, and reads the counter it reported.
    pub fn stop(self, rec: &mut Recorder) -> (Result<WaitStatus>, Option<i32>) {
        let st = wait::stop(rec, self.pid);
        let counter = read_report(rec, &self.notify);
        let _ = file::close(rec, self.notify);
        (st, counter)
    }
}

/// The demo's children, stopped on every way out.
struct Kids {
    matchmaker: Option<Pid>,
    server: Option<Life>,
    /// The new-state files of servers killed with SIGKILL (a kill during
    /// a save would leave one behind).
    killed: Vec<PathBuf>,
}

impl Kids {
    fn stop_server(&mut self, rec: &mut Recorder) -> Option<i32> {
        self.server.take()?.stop(rec).1
    }

    fn stop_all(&mut self, rec: &mut Recorder) {
        self.stop_server(rec);
        if let Some(pid) = self.matchmaker.take() {
            let _ = wait::stop(rec, pid);
        }
    }
}

/// The `counter N executed E` a stopped server wrote into its pipe.
fn read_report(rec: &mut Recorder, notify: &OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 128];
    rec.note("the server has exited: its report (or EOF, if it was killed) is there at once");
    let n = file::read(rec, notify.as_fd(), &mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.split_whitespace()
        .skip_while(|w| *w != "counter")
        .nth(1)
        .and_then(|v| v.parse().ok())
}

/// `ipclab rpc demo`.
pub fn run(rec: &mut Recorder, cfg: &DemoConfig) -> Result<()> {
    let dir = Made::private_dir(rec)?;
    let mut kids = Kids {
        matchmaker: None,
        server: None,
        killed: Vec::new(),
    };
    let result = demo(rec, cfg, &dir.path, &mut kids);
    kids.stop_all(rec);
    for s in [Semantics::AtMostOnce, Semantics::ExactlyOnce] {
        let path = state_path(&dir.path, s);
        remove_file(rec, &path);
    }
    for tmp in std::mem::take(&mut kids.killed) {
        remove_file(rec, &tmp);
    }
    dir.remove(
        rec,
        true,
        "the demo's private directory is removed; nothing is left behind",
    );
    result
}

fn state_path(dir: &Path, s: Semantics) -> PathBuf {
    dir.join(format!("{}.state", s.name()))
}

/// Removes a file the demo's servers wrote in the demo's private (0700)
/// directory, if it is there and a regular file.
fn remove_file(rec: &mut Recorder, path: &Path) {
    rec.note_err("not there: nothing to remove");
    match file::lstat(rec, path) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {
            rec.note("a file the demo's servers wrote, in the demo's private directory");
            let _ = file::unlink(rec, path);
        }
        _ => {}
    }
}

fn demo(rec: &mut Recorder, cfg: &DemoConfig, dir: &Path, kids: &mut Kids) -> Result<()> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    rec.message(format!(
        "the notes' remote procedure call (§3.6.2) on ONC RPC, in one command: a matchmaker and the servers run \
         as children, this process is the client. 1. remoteAdd(10, 20) over TCP, its bytes labelled; 2. {} INCR \
         calls over UDP under {}% loss each way, under at-least-once, at-most-once and exactly-once, the last two \
         servers killed half-way; 3. a table of what ran",
        cfg.calls,
        cfg.loss * 100.0
    ));
    rec.message(
        "the matchmaker: a portmapper on a port the kernel picks (never the system's port 111)",
    );
    let ends = matchmaker::bind(rec, lo, 0)?;
    let mm_port = ends.addr.port();
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| matchmaker::serve(rec, ends)),
        Forked::Parent { child } => {
            kids.matchmaker = Some(child);
            rec.message(
                "the parent closes its copies of the matchmaker's sockets: the child serves them",
            );
            service::close(rec, ends);
        }
    }
    let identity = Identity::ask(rec)?;
    let base = ServerConfig {
        listen: lo,
        port: 0,
        udp: true,
        tcp: true,
        register: Some(mm_port),
        semantics: Semantics::AtLeastOnce,
        state: None,
        drop_requests: cfg.loss,
        drop_replies: cfg.loss,
        seed: cfg.seed,
    };
    rec.message(format!(
        "── 1. remoteAdd(10, 20), as the notes tell it: A connects to B over TCP, sends the procedure and its \
         arguments as bytes, B runs its local add and sends back 30. The server drops {}% of UDP datagrams \
         each way (--loss {}: its --drop-requests and --drop-replies); TCP is not touched",
        cfg.loss * 100.0,
        cfg.loss
    ));
    kids.server = Some(start(rec, &base)?);
    let port = matchmaker::getport(rec, lo, mm_port, IPPROTO_TCP, Duration::from_secs(1))?;
    let mut add = Caller::tcp(SocketAddr::new(lo, port), identity.clone());
    let policy = Policy::for_semantics(Semantics::AtLeastOnce, Duration::from_secs(2), 2, DEADLINE);
    let called = add.call(
        rec,
        &IpclabCall::Add(AddArgs { a: 10, b: 20 }),
        &policy,
        true,
        &mut |_| Ok(()),
    );
    add.close(rec)?;
    match called?.int() {
        Some(v) => rec.message(format!("remoteAdd(10, 20) = {v}, computed by the server")),
        None => return Err(Error::protocol("remoteAdd(10, 20) got no result")),
    }
    let mut rows = Vec::new();
    for (i, s) in Semantics::ALL.into_iter().enumerate() {
        let mut scfg = base.clone();
        scfg.semantics = s;
        scfg.seed = cfg.seed.wrapping_add(i as u64);
        if s != Semantics::AtLeastOnce {
            scfg.tcp = false;
            scfg.state = Some(state_path(dir, s));
        }
        rows.push(incr_run(rec, cfg, &scfg, &identity, kids)?);
    }
    for line in table(&rows).lines() {
        rec.message(line);
    }
    for r in &rows {
        rec.message(verdict(r));
    }
    Ok(())
}

/// Forks a server and waits until it says it is ready (`ready PORT`).
pub fn start(rec: &mut Recorder, cfg: &ServerConfig) -> Result<Life> {
    rec.note("a pipe for the server to say when it is ready (registered and listening), and its counter at the end");
    let (rd, wr) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| {
            file::close(rec, rd)?;
            server::run_with(rec, cfg, Some(wr))
        }),
        Forked::Parent { child } => {
            file::close(rec, wr)?;
            let mut life = Life {
                pid: child,
                notify: rd,
                port: 0,
            };
            let mut buf = [0u8; 64];
            rec.waiting(format!(
                "waiting up to {} s for the server to be ready",
                START.as_secs()
            ));
            let ready = wait::readable(rec, life.notify.as_fd(), Some(START)).and_then(|r| {
                if r {
                    Ok(file::read(rec, life.notify.as_fd(), &mut buf)?)
                } else {
                    Ok(0)
                }
            });
            match ready.map(|n| ready_port(&buf[..n])) {
                Ok(Some(port)) => {
                    life.port = port;
                    Ok(life)
                }
                other => {
                    let _ = wait::stop(rec, life.pid);
                    let _ = file::close(rec, life.notify);
                    other?;
                    Err(Error::protocol(
                        "the server did not start (see its lines above)",
                    ))
                }
            }
        }
    }
}

/// The port in a server's `ready PORT` line.
fn ready_port(line: &[u8]) -> Option<u16> {
    std::str::from_utf8(line)
        .ok()?
        .strip_prefix("ready ")?
        .trim()
        .parse()
        .ok()
}

/// SIGKILL the server, reap it, start it again on `port`.
fn crash(rec: &mut Recorder, kids: &mut Kids, cfg: &ServerConfig, port: u16) -> Result<u32> {
    let Some(life) = kids.server.take() else {
        return Err(Error::protocol("no server to crash"));
    };
    let memory = match cfg.semantics {
        Semantics::AtMostOnce => "the duplicate-request cache",
        _ => "whatever the server held",
    };
    rec.message(format!(
        "the server crashes: SIGKILL, which cannot be caught — no cleanup, no UNSET; its sockets and its memory \
         ({memory}) are gone; what it wrote to its state file stays"
    ));
    if let Some(state) = &cfg.state {
        let mut tmp = state.clone().into_os_string();
        tmp.push(format!(".{}.tmp", life.pid));
        kids.killed.push(PathBuf::from(tmp));
    }
    let reaped = process::kill(rec, life.pid, Signal::SIGKILL)
        .map_err(Error::from)
        .and_then(|()| wait::reap(rec, life.pid));
    if let Err(e) = reaped {
        // Interrupted while waiting: the child must still be reaped.
        let _ = wait::stop(rec, life.pid);
        let _ = file::close(rec, life.notify);
        return Err(e);
    }
    file::close(rec, life.notify)?;
    let mut again = cfg.clone();
    again.port = port;
    again.seed = cfg.seed.wrapping_add(100);
    rec.message(format!(
        "the server starts again on the same port {port}, from the same state file (its UNSET then SET replaces the stale registration)"
    ));
    kids.server = Some(start(rec, &again)?);
    Ok(now_secs())
}

/// N INCR calls under one semantics; returns the row.
fn incr_run(
    rec: &mut Recorder,
    cfg: &DemoConfig,
    scfg: &ServerConfig,
    identity: &Identity,
    kids: &mut Kids,
) -> Result<Row> {
    let s = scfg.semantics;
    let lo = scfg.listen;
    let what = match s {
        Semantics::AtLeastOnce => "no memory: a retransmitted INCR runs again",
        Semantics::AtMostOnce => {
            "a duplicate-request cache keyed by (client, xid, stamp); killed and restarted half-way"
        }
        Semantics::ExactlyOnce => {
            "completion records made durable before each reply; killed and restarted half-way"
        }
    };
    rec.message(format!(
        "── {}: {} INCR calls over UDP — {what}",
        s.name(),
        cfg.calls
    ));
    if s != Semantics::AtLeastOnce {
        kids.server = Some(start(rec, scfg)?);
    }
    let mm = scfg.register.unwrap_or(111);
    let port = matchmaker::getport(rec, lo, mm, IPPROTO_UDP, Duration::from_secs(1))?;
    let mut caller = Caller::udp(rec, SocketAddr::new(lo, port), identity.clone())?;
    let policy = Policy::for_semantics(s, TIMEOUT, RETRIES, DEADLINE);
    let mut row = Row {
        semantics: s.name(),
        calls: cfg.calls,
        ..Row::default()
    };
    let half = cfg.calls / 2;
    let mut restarted: Option<u32> = None;
    let result = (|| -> Result<()> {
        for i in 0..cfg.calls {
            if s == Semantics::AtMostOnce {
                if let Some(t) = restarted.take() {
                    next_second(rec, t)?;
                }
            }
            let armed = s != Semantics::AtLeastOnce && i >= half && !row.crashed;
            let mut crashed_now = None;
            let called = caller.call(rec, &IpclabCall::Incr, &policy, false, &mut |rec| {
                if armed && crashed_now.is_none() {
                    crashed_now = Some(crash(rec, kids, scfg, port)?);
                }
                Ok(())
            })?;
            if crashed_now.is_some() {
                row.crashed = true;
                restarted = crashed_now;
            }
            row.resent += called.sends - 1;
            let line = match (&called.reply, called.int()) {
                (Some(_), Some(v)) => {
                    row.replies += 1;
                    format!("the counter is now {v}")
                }
                (Some(ReplyBody::Denied(_)), _) => {
                    row.refused += 1;
                    "refused (AUTH_REJECTEDCRED): did it run before the crash? The client cannot tell".to_string()
                }
                (Some(other), _) => {
                    row.refused += 1;
                    format!(
                        "an error reply: {}",
                        super::wire::reply_line(called.xid, other, None)
                    )
                }
                (None, _) => {
                    row.unanswered += 1;
                    format!(
                        "no reply after {} sends: given up (it ran zero, one or more times)",
                        called.sends
                    )
                }
            };
            rec.message(format!(
                "INCR #{} (xid {:#010x}, stamp {}): {line}{}",
                i + 1,
                called.xid,
                called.stamp,
                if called.sends > 1 {
                    format!(" — {} sends", called.sends)
                } else {
                    String::new()
                }
            ));
            if s != Semantics::AtLeastOnce && i + 2 == cfg.calls && !row.crashed {
                rec.message(
                    "no call timed out since the middle one: the server crashes between two calls instead",
                );
                restarted = Some(crash(rec, kids, scfg, port)?);
                row.crashed = true;
            }
        }
        Ok(())
    })();
    let closed = caller.close(rec);
    result?;
    closed?;
    row.executed = kids.stop_server(rec);
    Ok(row)
}

/// At-most-once: the restarted server refuses stamps up to its start
/// second; a new call must carry a later one.
fn next_second(rec: &mut Recorder, started: u32) -> Result<()> {
    rec.message(format!(
        "stamps count whole seconds, and the restarted server refuses every stamp up to its start ({}): the client \
         waits for the next second before it sends a new call",
        utc(started)
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if now.as_secs() <= u64::from(started) {
        let left = Duration::from_secs(u64::from(started) + 1 - now.as_secs())
            .saturating_sub(Duration::from_nanos(u64::from(now.subsec_nanos())))
            + Duration::from_millis(5);
        wait::sleep(rec, left)?;
    }
    Ok(())
}

/// The closing table.
pub fn table(rows: &[Row]) -> String {
    let mut t = format!(
        "{:<14} {:>5} {:>7} {:>6} {:>7} {:>8} {:>8}  {}\n",
        "semantics", "calls", "replies", "resent", "refused", "no-reply", "executed", "crash"
    );
    for r in rows {
        t.push_str(&format!(
            "{:<14} {:>5} {:>7} {:>6} {:>7} {:>8} {:>8}  {}\n",
            r.semantics,
            r.calls,
            r.replies,
            r.resent,
            r.refused,
            r.unanswered,
            r.executed
                .map_or_else(|| "?".to_string(), |v| v.to_string()),
            if r.crashed {
                "SIGKILL, restarted"
            } else {
                "none"
            }
        ));
    }
    t.push_str(
        "executed: the server's counter at the end — it starts at 0 and only INCR changes it",
    );
    t
}

/// What a row shows, in words, from its numbers.
pub fn verdict(r: &Row) -> String {
    let n = r.calls as i32;
    let Some(e) = r.executed else {
        return format!("{}: the server's counter is unknown", r.semantics);
    };
    let open = r.refused + r.unanswered;
    match r.semantics {
        "at-least-once" if e > n => format!(
            "at-least-once: INCR ran {e} times for {n} calls — {} retransmitted cop{} ran again after a lost reply",
            e - n,
            if e - n == 1 { "y" } else { "ies" }
        ),
        "at-least-once" => format!(
            "at-least-once: INCR ran {e} times for {n} calls — this time no copy sent after a lost reply got through \
             (another --seed shows it); {} call(s) never answered",
            r.unanswered
        ),
        "at-most-once" => format!(
            "at-most-once: INCR ran {e} times for {n} calls, never more than once each; {open} call(s) refused or \
             unanswered after all — the client cannot tell whether they ran{}",
            if open > 0 {
                format!(" (the counter says {} of them did)", e - r.replies as i32)
            } else {
                String::new()
            }
        ),
        _ if e == n && r.replies == r.calls => format!(
            "exactly-once: INCR ran {e} times for {n} calls, once each, and every call got its reply — across a crash"
        ),
        _ => format!(
            "exactly-once: INCR ran {e} times for {n} calls; {} answered (the deadline cut the rest short)",
            r.replies
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_line_gives_the_port() {
        assert_eq!(ready_port(b"ready 45961\n"), Some(45961));
        assert_eq!(ready_port(b"ready\n"), None);
        assert_eq!(ready_port(b"counter 3 executed 3\n"), None);
    }

    #[test]
    fn the_table_has_one_parseable_row_per_semantics() {
        let rows = [
            Row {
                semantics: "at-least-once",
                calls: 10,
                replies: 10,
                resent: 6,
                executed: Some(13),
                ..Row::default()
            },
            Row {
                semantics: "exactly-once",
                calls: 10,
                replies: 10,
                resent: 8,
                executed: Some(10),
                crashed: true,
                ..Row::default()
            },
        ];
        let t = table(&rows);
        let line = t.lines().nth(1).expect("a row");
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols[..7],
            ["at-least-once", "10", "10", "6", "0", "0", "13"]
        );
        assert!(verdict(&rows[0]).contains("3 retransmitted copies"));
        assert!(verdict(&rows[1]).contains("ran 10 times for 10 calls, once each"));
    }
}
