//! `net rpc`: the notes' remote procedure call between "different
//! machines" (§3.6.2) — the RPC lab's matchmaker and server on the
//! `server` host, its client on `client`, the router in between.
//!
//! In the server's namespace: the matchmaker's sockets bound on
//! 0.0.0.0:111 (a port below 1024: allowed to root, and to the root of the
//! user namespace that owns this network namespace) and served by a forked
//! child (`matchmaker::serve`); the RPC server forked as `rpc demo` forks
//! it (`demo::start`), bound on 198.51.100.2 and registered at
//! 127.0.0.1:111 — only local servers may register; a capture on eth0.
//! In the client's namespace: `rpc call`'s code (`client::run_with`) for
//! remoteAdd(10, 20) over TCP (its bytes labelled) and over UDP, then an
//! INCR, each after a GETPORT across the router. Then the server is
//! stopped (SIGTERM: it UNSETs its registration on the way out), then the
//! matchmaker; both are reaped on every way out, Ctrl-C included.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::paths::watch;
use super::topology::{Host, Topology, CLIENT_ETH0, ROUTER_ETH1, SERVER_ETH0};
use crate::error::{Error, Result};
use crate::lab::rpc::{client, demo, matchmaker, service, CallConfig, Semantics, ServerConfig};
use crate::lab::{child_exit, wait};
use crate::packet::netlink::mac_text;
use crate::packet::portmap::ipclab::{AddArgs, IpclabCall, IPCLAB_PROG};
use crate::packet::portmap::PMAP_PORT;
use crate::sys::process::{self, wait_status_text, Forked};
use crate::trace::Recorder;

/// Frames the capture on the server's eth0 shows: the GETPORT and its
/// answer, the TCP handshake, and the call's one segment — in this order
/// whatever the timing, since each follows from the one before.
const FRAMES: u32 = 6;

/// How long the capture waits for them at most.
const CAPTURE: Duration = Duration::from_secs(3);

/// `net rpc`.
pub fn rpc(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    topo.enter(rec, Host::Server)?;
    rec.message(format!(
        "the notes' \"different machines\": the matchmaker and the RPC server run on the server host ({}), the client on the client host ({}); all the client needs to know is the matchmaker's well-known port, {PMAP_PORT}",
        SERVER_ETH0.v4, CLIENT_ETH0.v4
    ));
    let who = if topo.userns {
        "the root of the user namespace that owns the server's network namespace has it there (and nowhere else)"
    } else {
        "root has it"
    };
    rec.message(format!(
        "port {PMAP_PORT} is below 1024: binding it takes CAP_NET_BIND_SERVICE over the network namespace, and {who}"
    ));
    let ends = matchmaker::bind(rec, IpAddr::V4(Ipv4Addr::UNSPECIFIED), PMAP_PORT)?;
    let addr = ends.addr;
    let mm = match process::fork(rec) {
        Ok(Forked::Child) => child_exit(rec, |rec| matchmaker::serve(rec, ends)),
        Ok(Forked::Parent { child }) => {
            rec.note("the matchmaker child serves these sockets; the controller closes its copies");
            service::close(rec, ends);
            child
        }
        Err(e) => {
            service::close(rec, ends);
            return Err(e.into());
        }
    };
    rec.message(format!(
        "server  pid {mm}: the matchmaker (portmapper v2, rpcbind v3 and v4) on {addr} over UDP and TCP"
    ));
    let served = with_matchmaker(rec, topo);
    rec.message("the matchmaker stops too: the RPC processes are gone before the hosts are");
    let stopped = stopped(wait::stop(rec, mm), "the matchmaker");
    served.and(stopped)
}

/// The RPC server, registered; the capture and the calls; the server's stop.
fn with_matchmaker(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    let cfg = ServerConfig {
        listen: IpAddr::V4(SERVER_ETH0.v4),
        port: 0,
        udp: true,
        tcp: true,
        register: Some(PMAP_PORT),
        semantics: Semantics::AtLeastOnce,
        state: None,
        drop_requests: 0.0,
        drop_replies: 0.0,
        seed: 0,
    };
    let server = demo::start(rec, &cfg)?;
    rec.message(format!(
        "server  pid {}: the RPC server, program {IPCLAB_PROG:#x} version 1 on {}:{} over UDP and TCP (a port the kernel picked), registered with the matchmaker over loopback",
        server.pid, SERVER_ETH0.v4, server.port
    ));
    let called = capture_and_call(rec, topo, server.port);
    rec.message("the server stops (SIGTERM): on its way out it UNSETs its registration, so the matchmaker sends no client to a port nobody serves");
    let (st, _) = server.stop(rec);
    called.and(stopped(st, "the RPC server"))
}

/// A child that serves until a stop signal ends with 128 + SIGTERM.
fn stopped(st: Result<WaitStatus>, what: &str) -> Result<()> {
    match st? {
        WaitStatus::Exited(_, 143) => Ok(()),
        other => Err(Error::protocol(format!(
            "{what} did not stop as asked: {}",
            wait_status_text(&other)
        ))),
    }
}

/// The capture on the server's eth0 (opened before any traffic), then the
/// calls from the client.
fn capture_and_call(rec: &mut Recorder, topo: &mut Topology, port: u16) -> Result<()> {
    let watcher: Pid = watch(
        rec,
        "eth0",
        &format!("port {PMAP_PORT} or port {port}"),
        FRAMES,
        CAPTURE,
    )?;
    let talked = topo.enter(rec, Host::Client).and_then(|()| calls(rec));
    wait::finish(rec, watcher, talked).and_then(wait::expect_exit_0)
}

/// `rpc call remoteAdd 10 20` over TCP and over UDP, and `rpc call INCR`,
/// as the client host makes them.
fn calls(rec: &mut Recorder) -> Result<()> {
    let tcp = CallConfig {
        call: IpclabCall::Add(AddArgs { a: 10, b: 20 }),
        server: IpAddr::V4(SERVER_ETH0.v4),
        port: None,
        tcp: true,
        timeout: Duration::from_secs(1),
        retries: 3,
        semantics: Semantics::AtLeastOnce,
        matchmaker_port: PMAP_PORT,
        deadline: Duration::from_secs(10),
    };
    rec.message(format!(
        "the client asks the matchmaker at {}:{PMAP_PORT}, two networks away, where the program listens over TCP (GETPORT, one UDP datagram each way), then connects there: on the server's eth0 the capture shows every frame of it coming from the router's MAC ({}) with the client's own IP address — the call crossed the router",
        SERVER_ETH0.v4,
        mac_text(&ROUTER_ETH1.mac)
    ));
    expect(
        client::run_with(rec, &tcp, true)?,
        30,
        "remoteAdd(10, 20) over TCP",
    )?;
    rec.message("the same call over UDP: a GETPORT for UDP (the same port serves both), then one datagram each way — no connection and no record mark; the bytes from the xid on are laid out as above");
    let udp = CallConfig {
        tcp: false,
        ..tcp.clone()
    };
    expect(
        client::run_with(rec, &udp, false)?,
        30,
        "remoteAdd(10, 20) over UDP",
    )?;
    rec.message("INCR over UDP: the server's counter, which only INCR changes, goes from 0 to 1");
    let incr = CallConfig {
        call: IpclabCall::Incr,
        ..udp
    };
    expect(client::run_with(rec, &incr, false)?, 1, "INCR")
}

fn expect(got: Option<i32>, want: i32, what: &str) -> Result<()> {
    match got {
        Some(v) if v == want => Ok(()),
        other => Err(Error::protocol(format!(
            "{what} gave {other:?}, not {want}"
        ))),
    }
}
