//! `ipclab net`: a client, a router and a server, each a process in a
//! network namespace of its own, joined by veth pairs — built by ipclab
//! with traced rtnetlink calls, as `ip` would build it — and the other
//! labs' code run across them: ARP, TTL across a router, Time Exceeded,
//! unreachable hosts, a connect() that times out, fragmentation, and the
//! RPC lab's matchmaker, server and client on different hosts.
//!
//! Sequence: [no CAP_NET_ADMIN: unshare(CLONE_NEWUSER) → uid_map →
//! setgroups → gid_map] → per host: pipe2 → clone → (host: unshare(
//! CLONE_NEWNET) → write → ppoll on the hold pipe) → ppoll → read → per
//! host: openat /proc/PID/ns/net → setns → socket(AF_NETLINK) →
//! sendmsg/recvmsg RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE → write
//! ip_forward → the experiments → close the hold pipe → reap the hosts.
//!
//! - [`topology`]: the hosts and their configuration;
//! - [`rtnl`]: one rtnetlink socket, request by request;
//! - [`userns`]: root without root, and who refuses it;
//! - [`paths`]: what gets through (arp, tcp, udp, ttl);
//! - [`failures`]: what does not (unreachable, timeout, mtu);
//! - [`rpc`]: remoteAdd across the router, the matchmaker on port 111.

mod failures;
mod paths;
mod rpc;
pub mod rtnl;
pub mod topology;
pub mod userns;

use std::io::IsTerminal;
use std::os::fd::AsFd;

use crate::error::{Error, Result};
use crate::lab::{run_section, wait};
use crate::sys::file;
use crate::sys::process::{self, Forked};
use crate::trace::{Recorder, SummaryRow};

use topology::{Host, Topology};

/// One experiment of `ipclab net`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Experiment {
    Arp,
    Tcp,
    Udp,
    Ttl,
    Unreachable,
    Timeout,
    Mtu,
    Rpc,
}

impl Experiment {
    /// `net demo` runs them all, in this order.
    pub const ALL: [Experiment; 8] = [
        Experiment::Arp,
        Experiment::Tcp,
        Experiment::Udp,
        Experiment::Ttl,
        Experiment::Unreachable,
        Experiment::Timeout,
        Experiment::Mtu,
        Experiment::Rpc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Experiment::Arp => "arp",
            Experiment::Tcp => "tcp",
            Experiment::Udp => "udp",
            Experiment::Ttl => "ttl",
            Experiment::Unreachable => "unreachable",
            Experiment::Timeout => "timeout",
            Experiment::Mtu => "mtu",
            Experiment::Rpc => "rpc",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Experiment::Arp => "the client's first packet to the router: ARP who-has / is-at with real MACs, then the neighbour entry",
            Experiment::Tcp => "the seed's TCP repeater, server on `server`, client on `client`: the handshake crosses the router, which rewrites the MAC addresses, not the IP ones",
            Experiment::Udp => "the seed's UDP repeater across the router",
            Experiment::Ttl => "ping across the router (ttl=63), then with TTL 1: Time Exceeded from the router",
            Experiment::Unreachable => "unreachable, prohibited, and nobody home: three ways connect() gets EHOSTUNREACH",
            Experiment::Timeout => "a blackhole route: the SYNs vanish and connect() times out (ETIMEDOUT), in seconds with TCP_SYNCNT",
            Experiment::Mtu => "MTU 1280 behind the router: a 3000-byte datagram in fragments; ping with DF gets \"fragmentation needed\"",
            Experiment::Rpc => "the notes' \"different machines\": the matchmaker (port 111) and the RPC server on `server`, the client on `client`; GETPORT, remoteAdd(10, 20) over TCP and UDP, and INCR cross the router",
        }
    }

    fn run(self, rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
        match self {
            Experiment::Arp => paths::arp(rec, topo),
            Experiment::Tcp => paths::tcp(rec, topo),
            Experiment::Udp => paths::udp(rec, topo),
            Experiment::Ttl => paths::ttl(rec, topo),
            Experiment::Unreachable => failures::unreachable(rec, topo),
            Experiment::Timeout => failures::timeout(rec, topo),
            Experiment::Mtu => failures::mtu(rec, topo),
            Experiment::Rpc => rpc::rpc(rec, topo),
        }
    }
}

/// What `ipclab net` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Demo,
    One(Experiment),
}

/// A validated `ipclab net` invocation.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    pub which: Which,
    /// Hold the topology until Enter or Ctrl-C.
    pub keep: bool,
    /// Make a user namespace first (no CAP_NET_ADMIN here), mapping these ids.
    pub userns: Option<userns::Ids>,
}

impl NetConfig {
    /// Checks the options and decides, from this process's capabilities,
    /// whether a user namespace is needed (read before the first step).
    pub fn new(which: Which, keep: bool) -> Result<NetConfig> {
        if keep && !std::io::stdin().is_terminal() {
            return Err(Error::usage(
                "--keep holds the hosts until you press Enter (or Ctrl-C) at a terminal, and stdin is not one: run it in a terminal, or leave out --keep",
            ));
        }
        let userns = (!userns::privileged()).then(userns::Ids::current);
        // The captures print times of day: load the zone before any step.
        crate::os::local_offset();
        Ok(NetConfig {
            which,
            keep,
            userns,
        })
    }
}

/// Builds the topology (after a user namespace if needed) and runs `body`
/// on it; `--keep` then holds it; the hosts are taken down in any case.
fn with_topology(
    rec: &mut Recorder,
    cfg: &NetConfig,
    body: impl FnOnce(&mut Recorder, &mut Topology) -> Result<()>,
) -> Result<()> {
    if let Some(ids) = cfg.userns {
        userns::become_root(
            rec,
            ids,
            0,
            "no CAP_NET_ADMIN here, so ipclab made a user namespace first",
        )?;
    }
    let mut topo = Topology::start(rec, cfg.userns.is_some())?;
    let mut result = topo.configure(rec).and_then(|()| body(rec, &mut topo));
    if cfg.keep && result.is_ok() {
        result = keep(rec, &topo);
    }
    topo.teardown(rec, result)
}

/// `ipclab net EXPERIMENT`.
pub fn run(rec: &mut Recorder, cfg: &NetConfig) -> Result<()> {
    let Which::One(e) = cfg.which else {
        return Err(Error::protocol("net demo runs through `demo`"));
    };
    with_topology(rec, cfg, |rec, topo| e.run(rec, topo))
}

/// `ipclab net demo`: every experiment on one topology, one section each,
/// then a summary row per section.
pub fn demo(rec: &mut Recorder, cfg: &NetConfig) -> Result<()> {
    let mut rows: Vec<SummaryRow> = Vec::new();
    rec.section(
        "net topology",
        "three hosts in network namespaces, joined by veth pairs, built with rtnetlink",
    );
    let (calls0, failed0, provoked0) = rec.counts();
    let mut failed = 0;
    let result = with_topology(rec, cfg, |rec, topo| {
        let (calls1, failed1, provoked1) = rec.counts();
        rows.push(SummaryRow {
            lab: "net topology".into(),
            syscalls: calls1 - calls0,
            failed: failed1 - failed0,
            provoked: provoked1 - provoked0,
            result: "ok".into(),
        });
        for e in Experiment::ALL {
            let name = format!("net {}", e.name());
            let (row, r) = run_section(rec, &name, e.title(), |rec| e.run(rec, topo));
            rows.push(row);
            match r {
                Err(Error::Interrupted(sig)) => return Err(Error::Interrupted(sig)),
                Err(_) => failed += 1,
                Ok(()) => {}
            }
            if let Some(sig) = crate::sys::signal::stop_pending() {
                return Err(Error::Interrupted(sig));
            }
        }
        rec.section(
            "net teardown",
            "the hosts exit, and their namespaces go with them",
        );
        Ok(())
    });
    rec.summary(&rows);
    result?;
    if failed > 0 {
        return Err(Error::protocol(format!(
            "{} failed; see the summary",
            crate::trace::names::count(failed, "experiment", "experiments")
        )));
    }
    Ok(())
}

/// `--keep`: the command to enter each host, then a wait for Enter.
fn keep(rec: &mut Recorder, topo: &Topology) -> Result<()> {
    for h in &topo.hosts {
        let enter = if topo.userns {
            format!(
                "nsenter --preserve-credentials --user=/proc/{0}/ns/user --net=/proc/{0}/ns/net",
                h.pid
            )
        } else {
            format!("nsenter --net=/proc/{}/ns/net", h.pid)
        };
        rec.message(format!("{:<7} {enter}", h.host.name()));
    }
    rec.message(
        "the hosts stay up: in another terminal, enter one with the command above and run `ip addr`, `ip route`, `ss -tan`, `ping`, `tcpdump -ni eth0` or the seed's Python programs; press Enter here (or Ctrl-C) to take everything down",
    );
    let stdin = std::io::stdin();
    rec.waiting("waiting for Enter (or Ctrl-C) on the terminal");
    wait::readable(rec, stdin.as_fd(), None)?;
    let mut buf = [0u8; 256];
    rec.note("Enter: the topology is taken down");
    file::read(rec, stdin.as_fd(), &mut buf)?;
    Ok(())
}

/// Forks a worker that runs `body` in the namespace this process is in,
/// and ends with `exit_group`; the parent gets its pid.
fn spawn(
    rec: &mut Recorder,
    body: impl FnOnce(&mut Recorder) -> Result<()>,
) -> Result<nix::unistd::Pid> {
    match process::fork(rec)? {
        Forked::Child => crate::lab::child_exit(rec, body),
        Forked::Parent { child } => Ok(child),
    }
}

/// The hosts' names as the tests and --keep print them.
pub fn host_names() -> [&'static str; 3] {
    [
        Host::Client.name(),
        Host::Router.name(),
        Host::Server.name(),
    ]
}
