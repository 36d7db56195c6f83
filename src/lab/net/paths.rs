//! What gets through: ARP on the client's link, the seed's TCP and UDP
//! repeaters across the router, ping's TTL one hop down and run out.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::rtnl::Rtnl;
use super::spawn;
use super::topology::{Host, Topology, CLIENT_ETH0, ROUTER_ETH0, ROUTER_ETH1, SERVER_ETH0};
use crate::error::{Error, Result};
use crate::lab::sniff::{Capture, Show};
use crate::lab::{ping, tcp, udp, wait};
use crate::packet::filter::Filter;
use crate::packet::frame::Style;
use crate::packet::netlink::mac_text;
use crate::sys::file;
use crate::sys::process::{self, Forked};
use crate::trace::Recorder;

/// The seed's port.
pub const PORT: u16 = 8989;

/// Starts a capture worker on `iface` of the namespace this process is
/// in: the packet socket is opened (and bound, the `filter` expression
/// attached) here, before any traffic, so no frame is missed; the worker
/// prints up to `count` frames for at most `timeout`. Lines are as
/// `ipclab sniff -e` prints them: with three hosts, the MAC addresses say
/// which hop a frame comes from. The only use of the sniff lab's API in `net`.
pub(super) fn watch(
    rec: &mut Recorder,
    iface: &str,
    filter: &str,
    count: u32,
    timeout: Duration,
) -> Result<nix::unistd::Pid> {
    let filter = Filter::new(filter).map_err(|e| Error::Protocol(e.0))?;
    let cap = Capture::open(rec, iface, Some(filter))?;
    let show = Show {
        style: Style {
            link: true,
            absolute: false,
        },
        // Taken before the run's first step (NetConfig::new): no syscall here.
        utc_offset: crate::os::local_offset(),
        ..Show::default()
    };
    let worker = spawn(rec, |rec| {
        let mut got = 0;
        cap.capture(rec, Some(count), Some(timeout), &show, None, &mut got)
    });
    rec.note(
        "the capture worker has its own copy of the packet socket; this one is not needed here",
    );
    let closed = cap.close(rec);
    let worker = worker?;
    closed?;
    Ok(worker)
}

/// Ping as `ipclab ping` runs it, from the namespace this process is in
/// (the raw socket is made here; no privileges to give back).
pub(super) fn ping(
    rec: &mut Recorder,
    host: IpAddr,
    count: u32,
    ttl: Option<u16>,
    size: usize,
) -> Result<()> {
    let mut cfg = ping::PingConfig::new(
        &host.to_string(),
        &ping::PingOptions {
            count: Some(count),
            interval: 0.2,
            size,
            ttl,
            timeout: 3.0,
            ..ping::PingOptions::default()
        },
    )?;
    cfg.drop_privileges = false;
    ping::run(rec, &cfg)
}

/// A ping that is expected to get no echo reply (ping exits 1 then, as
/// iputils does): that outcome is the lesson, not a failure.
pub(super) fn ping_unanswered(rec: &mut Recorder, r: Result<()>) -> Result<()> {
    match r {
        Err(Error::Protocol(m)) if m.starts_with("no reply") => {
            rec.message("no echo reply, as expected: the ICMP error above is the answer (ping alone would exit 1)");
            Ok(())
        }
        other => other,
    }
}

/// `net arp`.
pub fn arp(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    topo.enter(rec, Host::Client)?;
    let watcher = watch(rec, "eth0", "arp", 2, Duration::from_millis(1500))?;
    rec.message(format!(
        "the client has never talked to {}: before the first IP packet can leave, ARP must find the router's MAC address (broadcast who-has, unicast is-at)",
        ROUTER_ETH0.v4
    ));
    let pinged = ping(rec, IpAddr::V4(ROUTER_ETH0.v4), 1, None, 56);
    let watched = wait::finish(rec, watcher, pinged).and_then(wait::expect_exit_0);
    watched?;
    let mut nl = Rtnl::open(rec, "the client")?;
    let found = nl.neighbours(
        rec,
        "`ip -4 neigh show`: RTM_GETNEIGH with NLM_F_DUMP asks for the whole IPv4 neighbour (ARP) table of the client's namespace",
    );
    let closed = nl.close(rec);
    let found = found?;
    closed?;
    let router = found
        .iter()
        .find(|n| n.ip == Some(IpAddr::V4(ROUTER_ETH0.v4)))
        .ok_or_else(|| Error::protocol("the client has no neighbour entry for the router"))?;
    let mac = router.mac.as_ref().map_or("no address".to_string(), |m| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    });
    let same = mac == mac_text(&ROUTER_ETH0.mac);
    rec.message(format!(
        "neighbour entry: {} lladdr {mac} {} — {} the MAC ipclab gave the router's eth0 ({}); the client's own is {}",
        ROUTER_ETH0.v4,
        router.state,
        if same { "exactly" } else { "NOT" },
        mac_text(&ROUTER_ETH0.mac),
        mac_text(&CLIENT_ETH0.mac)
    ));
    if !same {
        return Err(Error::protocol(
            "the neighbour entry does not hold the router's MAC",
        ));
    }
    Ok(())
}

fn server_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(SERVER_ETH0.v4), PORT)
}

/// `net tcp`.
pub fn tcp(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    topo.enter(rec, Host::Server)?;
    let (lst, addr) = tcp::listener(rec, &server_addr(), 5, false)?;
    let mut cfg = tcp::ServerConfig::new(addr, tcp::Model::Iterative);
    cfg.limit = Some(1);
    cfg.idle = Some(Duration::from_secs(10));
    let server = match process::fork(rec) {
        Ok(Forked::Child) => crate::lab::child_exit(rec, move |rec| tcp::serve(rec, lst, &cfg)),
        Ok(Forked::Parent { child }) => {
            rec.note("the server worker serves on its copy of the listening socket");
            file::close(rec, lst)?;
            child
        }
        Err(e) => {
            let _ = file::close(rec, lst);
            return Err(e.into());
        }
    };
    let watched = watch(
        rec,
        "eth0",
        &format!("tcp port {PORT}"),
        3,
        Duration::from_secs(3),
    );
    let side = watched.and_then(|watcher| {
        let talked = topo.enter(rec, Host::Client).and_then(|()| {
            rec.message(format!(
                "the client connects to {addr}, two networks away: its default route sends the SYN to the router, which forwards it with the TTL one lower. On the server's eth0 the frames come from the router's MAC ({}) yet carry the client's own IP address: a router rewrites the link layer, not the addresses inside (no NAT here)",
                mac_text(&ROUTER_ETH1.mac)
            ));
            tcp::client(
                rec,
                &tcp::ClientConfig {
                    connect: addr,
                    messages: Some(vec![b"hello from the client host".to_vec(), b"q".to_vec()]),
                    timeout: Duration::from_secs(5),
                },
            )
        });
        wait::finish(rec, watcher, talked).and_then(wait::expect_exit_0)
    });
    wait::finish(rec, server, side.map(drop)).and_then(wait::expect_exit_0)
}

/// `net udp`.
pub fn udp(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    udp_exchange(
        rec,
        topo,
        vec![b"hello over UDP".to_vec(), b"q".to_vec()],
        (&format!("udp port {PORT}"), 3, Duration::from_secs(3)),
        &format!(
            "the datagram crosses the router like any IP packet, no handshake first: the capture on the server's eth0 shows it arriving from the router's MAC ({}), still from the client's IP address",
            mac_text(&ROUTER_ETH1.mac)
        ),
    )
}

/// A UDP repeater on the server, a capture on its eth0 (`frames`: the
/// filter expression, count and time), and the UDP client on the client
/// host sending `messages`.
pub(super) fn udp_exchange(
    rec: &mut Recorder,
    topo: &mut Topology,
    messages: Vec<Vec<u8>>,
    frames: (&str, u32, Duration),
    why: &str,
) -> Result<()> {
    topo.enter(rec, Host::Server)?;
    let (sock, addr) = udp::bound_socket(rec, &server_addr())?;
    let cfg = udp::ServerConfig {
        listen: addr,
        drop_every: None,
        prefix: crate::lab::repeater::SEED_PREFIX.as_bytes().to_vec(),
    };
    let server = match process::fork(rec) {
        Ok(Forked::Child) => crate::lab::child_exit(rec, move |rec| udp::serve(rec, sock, &cfg)),
        Ok(Forked::Parent { child }) => {
            rec.note("the server worker answers on its copy of the socket");
            file::close(rec, sock)?;
            child
        }
        Err(e) => {
            let _ = file::close(rec, sock);
            return Err(e.into());
        }
    };
    let watched = watch(rec, "eth0", frames.0, frames.1, frames.2);
    let side = watched.and_then(|watcher| {
        let talked = topo.enter(rec, Host::Client).and_then(|()| {
            rec.message(why);
            udp::client(
                rec,
                &udp::ClientConfig {
                    connect: addr,
                    messages: Some(messages),
                    timeout: Duration::from_secs(3),
                },
            )
        });
        wait::finish(rec, watcher, talked).and_then(wait::expect_exit_0)
    });
    wait::finish(rec, server, side.map(drop)).and_then(wait::expect_exit_0)
}

/// `net ttl`.
pub fn ttl(rec: &mut Recorder, topo: &mut Topology) -> Result<()> {
    topo.enter(rec, Host::Client)?;
    let server = IpAddr::V4(SERVER_ETH0.v4);
    rec.message(format!(
        "ping {server} from the client: the reply was sent with TTL 64 and the router took one off — ttl=63 means one router in between"
    ));
    ping(rec, server, 1, None, 56)?;
    rec.message(format!(
        "ping -t 1 {server}: the request leaves with TTL 1; the router must decrement it to 0, so it drops the packet and answers ICMP Time Exceeded from {} — how traceroute finds each hop",
        ROUTER_ETH0.v4
    ));
    let r = ping(rec, server, 1, Some(1), 56);
    ping_unanswered(rec, r)
}
