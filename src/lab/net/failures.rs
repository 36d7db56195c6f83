//! What does not get through, and how each failure reaches the program:
//! an ICMP error from the router (EHOSTUNREACH at once), silence (ARP
//! gives up: EHOSTUNREACH after seconds; a blackhole: ETIMEDOUT), and a
//! link too small for the packet (fragments, or "fragmentation needed").

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;

use super::paths::{ping, ping_unanswered, udp_exchange, PORT};
use super::topology::{
    Host, Topology, BLACKHOLE_NET, PROHIBIT_NET, ROUTER_ETH0, SERVER_ETH0, SERVER_LINK_MTU,
    UNREACHABLE_NET,
};
use crate::error::{Error, Result};
use crate::sys::{file, signal, socket};
use crate::trace::Recorder;

/// The first address of a /26 from the router's table.
fn first_host(net: (Ipv4Addr, u8)) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(net.0) + 1))
}

/// An address on the client's own subnet that no host has.
const NOBODY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

/// socket → [setsockopt TCP_SYNCNT] → connect, expected to fail with
/// `expect`; `why` explains that failure under the step.
fn connect_fails(
    rec: &mut Recorder,
    dst: SocketAddr,
    syncnt: Option<i32>,
    expect: Errno,
    waiting: &str,
    why: &str,
) -> Result<()> {
    let fd = socket::socket(
        rec,
        libc::AF_INET,
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_TCP,
    )?;
    if let Some(n) = syncnt {
        rec.note(format!(
            "TCP_SYNCNT {n}: one SYN and {n} retransmission (1 s, then 2 s more) before connect() gives up — the default, net.ipv4.tcp_syn_retries = 6, takes about 127 s"
        ));
        if let Err(e) = socket::setsockopt_int(rec, fd.as_fd(), libc::SOL_TCP, libc::TCP_SYNCNT, n)
        {
            let _ = file::close(rec, fd);
            return Err(e.into());
        }
    }
    rec.waiting(waiting);
    rec.note_err(why);
    let started = std::time::Instant::now();
    let r = signal::interruptible(rec, |rec| {
        // Counted as provoked: this failure is the experiment.
        rec.expect_err();
        socket::connect(rec, fd.as_fd(), &dst)
    });
    rec.note("the failed socket is closed; a socket whose connect() failed cannot be reused for another try");
    let closed = file::close(rec, fd);
    let took = started.elapsed();
    let outcome = match r {
        Err(e) if e.errno == expect => {
            if expect == Errno::EHOSTUNREACH
                && dst.ip() != IpAddr::V4(NOBODY)
                && took > Duration::from_millis(500)
            {
                rec.message(format!(
                    "{:.1} s, not an instant: the router's ICMP answer to the first SYN came back so fast (a veth has no delay) that it found the socket still locked by connect() itself, so the kernel only noted a \"soft\" error and kept waiting; the SYN sent again 1 s later drew the ICMP that ended the handshake. On a real network the answer takes longer than the lock is held",
                    took.as_secs_f64()
                ));
            }
            Ok(())
        }
        Err(e) if e.errno == Errno::EINTR => Err(e.into()),
        Err(e) => Err(Error::protocol(format!(
            "connect to {dst} failed with {:?}, not {expect:?} as expected",
            e.errno
        ))),
        Ok(()) => Err(Error::protocol(format!(
            "connect to {dst} succeeded, but nothing should answer there"
        ))),
    };
    outcome?;
    closed?;
    Ok(())
}

/// `net unreachable`.
pub fn unreachable(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    topo.enter(rec, Host::Client)?;
    let router = ROUTER_ETH0.v4;
    let gone = first_host(UNREACHABLE_NET);
    rec.message(format!(
        "{gone} is in {}/{}, which the router holds as `unreachable`: it drops the SYN and answers ICMP destination unreachable, code 1 (host unreachable)",
        UNREACHABLE_NET.0, UNREACHABLE_NET.1
    ));
    connect_fails(
        rec,
        SocketAddr::new(gone, PORT),
        None,
        Errno::EHOSTUNREACH,
        "waiting for the handshake",
        &format!("EHOSTUNREACH: the router's ICMP \"host unreachable\" (from {router}) ended the handshake — the kernel turns that ICMP code into this errno"),
    )?;
    let r = ping(rec, gone, 1, None, 56);
    ping_unanswered(rec, r)?;
    let banned = first_host(PROHIBIT_NET);
    rec.message(format!(
        "{banned} is in {}/{}, which the router holds as `prohibit`: ICMP destination unreachable, code 13 (communication administratively prohibited — ping calls it \"Packet filtered\")",
        PROHIBIT_NET.0, PROHIBIT_NET.1
    ));
    connect_fails(
        rec,
        SocketAddr::new(banned, PORT),
        None,
        Errno::EHOSTUNREACH,
        "waiting for the handshake",
        "EHOSTUNREACH again: Linux maps code 13 (prohibited) to the same errno as code 1; only the ICMP code, which ping shows next, tells them apart",
    )?;
    let r = ping(rec, banned, 1, None, 56);
    ping_unanswered(rec, r)?;
    rec.message(format!(
        "{NOBODY} is on the client's own link, so no router is involved: the client asks ARP who-has {NOBODY} three times, a second apart (net.ipv4.neigh.eth0.mcast_solicit = 3), nobody answers, and the kernel gives up — about 3 s"
    ));
    connect_fails(
        rec,
        SocketAddr::new(IpAddr::V4(NOBODY), PORT),
        None,
        Errno::EHOSTUNREACH,
        "waiting while ARP asks who-has, about 3 s",
        "EHOSTUNREACH after ARP gave up: the neighbour entry failed, and the client's own kernel reported the host unreachable — no ICMP crossed the wire",
    )
}

/// `net timeout`.
pub fn timeout(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    topo.enter(rec, Host::Client)?;
    let hole = first_host(BLACKHOLE_NET);
    rec.message(format!(
        "{hole} is in {}/{}, which the router holds as `blackhole`: every SYN vanishes without an answer, like a firewall that drops — the client cannot tell a dead host from a slow one, and retransmits",
        BLACKHOLE_NET.0, BLACKHOLE_NET.1
    ));
    connect_fails(
        rec,
        SocketAddr::new(hole, PORT),
        Some(1),
        Errno::ETIMEDOUT,
        "waiting for a SYN-ACK that never comes, about 3 s",
        "ETIMEDOUT: no answer to the SYN or its retransmission; the blackhole gave no ICMP that could end it sooner",
    )
}

/// `net mtu`.
pub fn mtu(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    let big = vec![b'x'; 3000];
    udp_exchange(
        rec,
        topo,
        vec![big, b"q".to_vec()],
        // `udp` alone: a later fragment has no UDP header, hence no port,
        // but its IP header still says protocol 17.
        ("udp", 16, Duration::from_millis(1500)),
        &format!(
            "a 3000-byte datagram does not fit the client's 1500-byte link: the client's kernel cuts it into 3 fragments; the router's link to the server takes {SERVER_LINK_MTU}, so the router cuts the two big ones again — the capture on the server's eth0 shows 5 fragments, and recvfrom() still returns 3000 bytes, reassembled"
        ),
    )?;
    topo.enter(rec, Host::Client)?;
    let server = IpAddr::V4(SERVER_ETH0.v4);
    rec.message(format!(
        "ping -s 1400 {server}: 1428-byte packets with DF (don't fragment) set — Linux sets DF on everything it sends, for path MTU discovery. The first reaches the router, which cannot forward it over the {SERVER_LINK_MTU}-byte link nor cut it: ICMP \"fragmentation needed\", with the MTU. The client's kernel remembers that MTU for {server}, so the second request leaves in fragments and is answered"
    ));
    ping(rec, server, 2, None, 1400)
}
