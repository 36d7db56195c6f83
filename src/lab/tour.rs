//! `ipclab tour`: every experiment the current privileges allow, both ends
//! in one command, section by section, then a summary table.

use crate::error::{Error, Result};
use crate::lab::{
    child_exit, errata, fifo, net, ping, pipe, rpc, run_section, shm, sniff, tcp, udp, unix, wait,
};
use crate::sys::process::{self, Forked};
use crate::trace::{Recorder, SummaryRow};

/// One section of the tour.
pub struct Section {
    pub name: &'static str,
    pub title: &'static str,
    /// Why this section cannot run here (a missing privilege), if so.
    pub skip: fn() -> Option<String>,
    pub run: fn(&mut Recorder) -> Result<()>,
}

fn never() -> Option<String> {
    None
}

/// CAP_NET_RAW's bit in the capability sets (linux/capability.h).
const CAP_NET_RAW: u32 = 13;

/// Why raw and packet sockets cannot be opened here, if they cannot: reads
/// the effective capability set from /proc/self/status (not a lab step; no
/// socket is tried).
fn needs_cap_net_raw() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
    if cap_eff & (1 << CAP_NET_RAW) != 0 {
        None
    } else {
        Some("needs CAP_NET_RAW for raw and packet sockets (run `sudo ipclab tour`)".to_string())
    }
}

fn ping_loopback(rec: &mut Recorder) -> Result<()> {
    let mut cfg = ping::PingConfig::tour()?;
    // The tour keeps its privileges for the sections after this one;
    // `sudo ipclab ping` shows the drop back to the invoking user.
    cfg.drop_privileges = false;
    // The tour keeps the raw socket's lesson in view: without ICMP_FILTER it
    // receives its own request on loopback. `ipclab ping` sets the filter.
    cfg.kernel_filter = false;
    rec.message(
        "this section runs `ipclab ping --no-filter`: without the ICMP_FILTER that ping sets by default, the raw socket also receives its own request",
    );
    ping::run(rec, &cfg)
}

fn pipe_mode(rec: &mut Recorder, mode: pipe::PipeMode) -> Result<()> {
    pipe::run(rec, &pipe::PipeConfig::new(mode, "hello")?)
}

/// The sections, in the order they run.
pub fn sections() -> Vec<Section> {
    let mut all = labs();
    all.extend(errata::for_tour().into_iter().map(|e| Section {
        name: e.section,
        title: e.title,
        skip: never,
        run: e.run,
    }));
    all
}

fn labs() -> Vec<Section> {
    vec![
        Section {
            name: "pipe",
            title: "pipe + fork: the child writes \"hello\", the parent reads it (the notes' C++ example)",
            skip: never,
            run: |r| pipe_mode(r, pipe::PipeMode::Basic { reverse: false }),
        },
        Section {
            name: "pipe --reverse",
            title: "either direction works: the parent writes, the child reads",
            skip: never,
            run: |r| pipe_mode(r, pipe::PipeMode::Basic { reverse: true }),
        },
        Section {
            name: "pipe --duplex",
            title: "a pipe is one-way: two-way talk needs two pipes",
            skip: never,
            run: |r| pipe_mode(r, pipe::PipeMode::Duplex),
        },
        Section {
            name: "pipe --fill",
            title: "a pipe holds 64 KiB: EAGAIN when non-blocking, a sleeping write otherwise",
            skip: never,
            run: |r| pipe_mode(r, pipe::PipeMode::Fill),
        },
        Section {
            name: "pipe --sigpipe",
            title: "writing with no reader left: EPIPE, or death by SIGPIPE",
            skip: never,
            run: |r| pipe_mode(r, pipe::PipeMode::Sigpipe),
        },
        Section {
            name: "pipe --forget-close",
            title: "a write end left open means read() never sees EOF",
            skip: never,
            run: |r| pipe_mode(r, pipe::PipeMode::ForgetClose),
        },
        Section {
            name: "fifo",
            title: "a named pipe: open() blocks until both ends are open",
            skip: never,
            run: |r| {
                let message = fifo::check_message("hello through a FIFO")?;
                fifo::run(r, &fifo::FifoConfig::Demo { path: None, message })
            },
        },
        Section {
            name: "shm",
            title: "shared memory + fork: the child stores \"hello\" in a mapped page and wakes the parent with a futex — no syscall carries the bytes",
            skip: never,
            run: |r| shm::run(r, &shm::ShmConfig::new("hello", true, false, None)?),
        },
        Section {
            name: "unix demo",
            title: "the repeater over a Unix socket: a name in the file system, and the stale socket file it leaves behind",
            skip: never,
            run: |r| {
                unix::check_tmpdir()?;
                unix::run(
                    r,
                    &unix::UnixConfig::Demo {
                        dgram: false,
                        abstract_name: false,
                    },
                )
            },
        },
        Section {
            name: "unix pass-fd",
            title: "an open file handed to another process over a Unix socket (SCM_RIGHTS): a new number, the same file",
            skip: never,
            run: |r| unix::run(r, &unix::UnixConfig::PassFd),
        },
        Section {
            name: "unix cred",
            title: "the kernel tells a Unix-socket server who its client is (SO_PEERCRED): pid, uid, gid",
            skip: never,
            run: |r| unix::run(r, &unix::UnixConfig::Cred),
        },
        Section {
            name: "tcp demo --model iterative",
            title: "the notes' TCP repeater on loopback: one client at a time, the second waits in the backlog",
            skip: never,
            run: |r| tcp::demo(r, tcp::Model::Iterative),
        },
        Section {
            name: "tcp demo --model fork",
            title: "a TCP server that forks one child per connection: two clients served at once",
            skip: never,
            run: |r| tcp::demo(r, tcp::Model::Fork),
        },
        Section {
            name: "tcp demo --model poll",
            title: "one process, non-blocking sockets and epoll: two clients served at once",
            skip: never,
            run: |r| tcp::demo(r, tcp::Model::Poll),
        },
        Section {
            name: "udp demo",
            title: "the notes' UDP repeater: no listen, accept or connect; a lost reply ends in a timeout",
            skip: never,
            run: udp::demo,
        },
        Section {
            name: "rpc demo",
            title: "the notes' remoteAdd over ONC RPC with a matchmaker; INCR under loss and a crash: at-least-once, at-most-once, exactly-once",
            skip: never,
            run: |r| {
                // Fewer calls than `ipclab rpc demo`; seed 8 still shows
                // every effect with 4.
                let cfg = rpc::DemoConfig {
                    loss: 0.3,
                    seed: 8,
                    calls: 4,
                };
                rpc::demo::run(r, &cfg)
            },
        },
        Section {
            name: "ping",
            title: "raw ICMP echo to 127.0.0.1: checksums, sequence numbers, TTL, kernel-timestamped RTTs",
            skip: needs_cap_net_raw,
            run: ping_loopback,
        },
        Section {
            name: "sniff",
            title: "an AF_PACKET socket on lo watches a TCP handshake: SYN, SYN-ACK, ACK behind connect and accept",
            skip: needs_cap_net_raw,
            run: sniff::handshake,
        },
    ]
}

/// How a section runs here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// As it is.
    Direct,
    /// In a child, inside a user and network namespace of its own (no
    /// CAP_NET_RAW here, but user namespaces are allowed).
    Userns(net::userns::Ids),
    /// Not at all, for this reason.
    Skip(String),
}

/// Whether this user may make user namespaces, as far as the settings
/// readable before the run tell (user.max_user_namespaces above 0, and
/// kernel.unprivileged_userns_clone not 0 where it exists).
fn userns_refused() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user.max_user_namespaces = 0".into());
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("kernel.unprivileged_userns_clone = 0".into());
    }
    None
}

/// The sections with, for each, how it runs here. Decided before the
/// run's first step, so the probe's reads of /proc (not lab steps) never
/// fall between two steps.
pub fn plan() -> Vec<(Section, Mode)> {
    sections()
        .into_iter()
        .map(|s| {
            let mode = match (s.skip)() {
                None => Mode::Direct,
                Some(why) => match userns_refused() {
                    None => Mode::Userns(net::userns::Ids::current()),
                    Some(setting) => Mode::Skip(format!(
                        "{why}; a user namespace would do, but {setting} refuses them"
                    )),
                },
            };
            (s, mode)
        })
        .collect()
}

/// A Ctrl-C that a section caught (and perhaps reported as its own
/// failure) still means: stop the tour. Counts a failed section.
fn stop_after(result: Result<()>, failed: &mut usize) -> Option<i32> {
    match result {
        Err(Error::Interrupted(sig)) => Some(sig),
        Err(_) => {
            *failed += 1;
            crate::sys::signal::stop_pending()
        }
        Ok(()) => crate::sys::signal::stop_pending(),
    }
}

/// Runs `run` in a child that first makes a user and network namespace
/// of its own (loopback up); the tour's own process stays where it is.
fn in_userns(
    rec: &mut Recorder,
    ids: net::userns::Ids,
    run: fn(&mut Recorder) -> Result<()>,
) -> Result<()> {
    let child = match process::fork(rec)? {
        Forked::Child => child_exit(rec, move |rec| {
            net::userns::private_loopback(
                rec,
                ids,
                "no CAP_NET_RAW here, so this section runs in a user and network namespace of its own",
            )?;
            run(rec)
        }),
        Forked::Parent { child } => child,
    };
    wait::finish(rec, child, Ok(())).and_then(wait::expect_exit_0)
}

/// Runs the tour; fails (exit 1) if any section failed.
pub fn run(rec: &mut Recorder, plan: Vec<(Section, Mode)>) -> Result<()> {
    if plan.iter().any(|(_, mode)| *mode != Mode::Direct) {
        rec.message("privileges read from /proc/self/status (CapEff) before the first section; that read is not a lab step");
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for (s, mode) in plan {
        if let Mode::Userns(ids) = mode {
            let title = format!(
                "{} — in a user and network namespace of its own (ipclab --userns): no CAP_NET_RAW here",
                s.title
            );
            let run = s.run;
            let (row, result) = run_section(rec, s.name, &title, |rec| in_userns(rec, ids, run));
            rows.push(row);
            if let Some(sig) = stop_after(result, &mut failed) {
                rec.summary(&rows);
                return Err(Error::Interrupted(sig));
            }
            continue;
        }
        if let Mode::Skip(why) = mode {
            rec.section(s.name, s.title);
            rec.message(format!("skipped: {why}"));
            rows.push(SummaryRow {
                lab: s.name.into(),
                syscalls: 0,
                failed: 0,
                provoked: 0,
                result: format!("skipped: {why}"),
            });
            continue;
        }
        let (row, result) = run_section(rec, s.name, s.title, s.run);
        rows.push(row);
        if let Some(sig) = stop_after(result, &mut failed) {
            rec.summary(&rows);
            return Err(Error::Interrupted(sig));
        }
    }
    rec.summary(&rows);
    if failed > 0 {
        return Err(Error::protocol(format!(
            "{} failed; see the summary",
            crate::trace::names::count(failed, "tour section", "tour sections")
        )));
    }
    Ok(())
}
