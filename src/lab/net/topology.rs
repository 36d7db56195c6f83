//! The three hosts and the wires between them.
//!
//! ```text
//!  client                      router                        server
//!  eth0 192.0.2.2/24  ──veth── eth0 192.0.2.1/24
//!       2001:db8:1::2/64            2001:db8:1::1/64
//!                              eth1 198.51.100.1/24 ──veth── eth0 198.51.100.2/24
//!                                   2001:db8:2::1/64  MTU 1280    2001:db8:2::2/64
//! ```
//!
//! Each host is a process that calls `unshare(CLONE_NEWNET)`, reports on
//! a pipe, then waits for the hold pipe to close. The controller (the
//! process that runs the lab) opens each host's `/proc/PID/ns/net`, and
//! configures each namespace from inside it (`setns`) over rtnetlink.
//! Nothing is made in the namespace ipclab started in: the veth pairs are
//! born in the router's namespace with their peer ends in the others', and
//! a namespace (with its veths) goes when its last process does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::unistd::Pid;

use super::rtnl::Rtnl;
use super::userns::write_file;
use crate::error::{Error, Result};
use crate::lab::{child_exit, wait};
use crate::packet::netlink::{self as nl, Mac, RouteKind, VethEnd};
use crate::sys::process::{self, Forked};
use crate::sys::{file, ns};
use crate::trace::Recorder;

/// The three hosts, in the order they are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Client,
    Router,
    Server,
}

impl Host {
    pub const ALL: [Host; 3] = [Host::Client, Host::Router, Host::Server];

    pub fn name(self) -> &'static str {
        match self {
            Host::Client => "client",
            Host::Router => "router",
            Host::Server => "server",
        }
    }
}

/// One interface's addresses.
#[derive(Debug, Clone, Copy)]
pub struct Iface {
    pub name: &'static str,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    /// Chosen by ipclab (locally administered: 02 first), so a student can
    /// tell them apart: the last four bytes are the IPv4 address.
    pub mac: Mac,
}

pub const CLIENT_ETH0: Iface = Iface {
    name: "eth0",
    v4: Ipv4Addr::new(192, 0, 2, 2),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
    mac: [0x02, 0x00, 0xc0, 0x00, 0x02, 0x02],
};
pub const ROUTER_ETH0: Iface = Iface {
    name: "eth0",
    v4: Ipv4Addr::new(192, 0, 2, 1),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
    mac: [0x02, 0x00, 0xc0, 0x00, 0x02, 0x01],
};
pub const ROUTER_ETH1: Iface = Iface {
    name: "eth1",
    v4: Ipv4Addr::new(198, 51, 100, 1),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1),
    mac: [0x02, 0x00, 0xc6, 0x33, 0x64, 0x01],
};
pub const SERVER_ETH0: Iface = Iface {
    name: "eth0",
    v4: Ipv4Addr::new(198, 51, 100, 2),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2),
    mac: [0x02, 0x00, 0xc6, 0x33, 0x64, 0x02],
};

/// The router–server link's MTU: IPv6's minimum, below Ethernet's 1500.
pub const SERVER_LINK_MTU: u32 = 1280;

/// The router's routes that drop: each a /26 of TEST-NET-3 (RFC 5737).
pub const UNREACHABLE_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(203, 0, 113, 0), 26);
pub const PROHIBIT_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(203, 0, 113, 64), 26);
pub const BLACKHOLE_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(203, 0, 113, 128), 26);

/// How long a host may take to report that its namespace exists.
const READY: Duration = Duration::from_secs(5);

/// A running host: its pid and its namespace, held open.
pub struct Running {
    pub host: Host,
    pub pid: Pid,
    ns: Option<OwnedFd>,
}

/// The hosts, the hold pipe that keeps them, and where the controller is.
pub struct Topology {
    pub hosts: Vec<Running>,
    hold: Option<OwnedFd>,
    /// Made inside a user namespace (no root): nsenter needs --user too.
    pub userns: bool,
    /// The host whose namespace the controller is in, if any.
    inside: Option<Host>,
}

/// The host process: unshare(CLONE_NEWNET), say so on `ready`, wait
/// until the hold pipe closes (or a stop signal), exit.
fn host_main(
    rec: &mut Recorder,
    host: Host,
    ready: OwnedFd,
    hold_r: &OwnedFd,
    hold_w: OwnedFd,
) -> Result<()> {
    rec.note("the hold pipe's write end stays with the controller alone: when it closes, this host sees end-of-file");
    file::close(rec, hold_w)?;
    let name = host.name();
    ns::unshare(
        rec,
        libc::CLONE_NEWNET,
        &format!("the {name} host now has a network stack of its own: only lo, down — no address, no route, nothing shared with the machine it runs on"),
    )?;
    rec.note(format!(
        "tells the controller that the {name} namespace exists: only now may it open /proc/{}/ns/net",
        rec.pid()
    ));
    file::write(rec, ready.as_fd(), name.as_bytes())?;
    file::close(rec, ready)?;
    rec.waiting(format!(
        "the {name} host holds its namespace until the lab ends"
    ));
    rec.note("the controller closed the hold pipe: the lab is over; this process, and with it the namespace, goes");
    wait::readable(rec, hold_r.as_fd(), None)?;
    Ok(())
}

impl Topology {
    /// Forks the three hosts, each in a new network namespace, and opens
    /// their namespaces. On failure, whatever was started is taken down.
    pub fn start(rec: &mut Recorder, userns: bool) -> Result<Topology> {
        let (hold_r, hold_w) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
        let mut topo = Topology {
            hosts: Vec::new(),
            hold: Some(hold_w),
            userns,
            inside: None,
        };
        let started = topo.fork_hosts(rec, &hold_r);
        rec.note("the hold pipe's read end belongs to the hosts now");
        let closed = file::close(rec, hold_r);
        let opened = started.and_then(|()| {
            closed?;
            topo.open_namespaces(rec)
        });
        match opened {
            Ok(()) => Ok(topo),
            Err(e) => Err(topo
                .teardown(rec, Err(e))
                .err()
                .unwrap_or_else(|| Error::protocol("the topology could not be started"))),
        }
    }

    fn fork_hosts(&mut self, rec: &mut Recorder, hold_r: &OwnedFd) -> Result<()> {
        for host in Host::ALL {
            let (ready_r, ready_w) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
            let forked = process::fork(rec);
            let child = match forked {
                Ok(Forked::Child) => {
                    let hold_w = self
                        .hold
                        .take()
                        .expect("the hold pipe is open until teardown");
                    child_exit(rec, move |rec| {
                        file::close(rec, ready_r)?;
                        host_main(rec, host, ready_w, hold_r, hold_w)
                    })
                }
                Ok(Forked::Parent { child }) => child,
                Err(e) => {
                    let _ = file::close(rec, ready_r);
                    let _ = file::close(rec, ready_w);
                    return Err(e.into());
                }
            };
            self.hosts.push(Running {
                host,
                pid: child,
                ns: None,
            });
            rec.note("only the host writes to its ready pipe: if it dies first, the read sees end-of-file");
            file::close(rec, ready_w)?;
            let got = self.await_ready(rec, host, &ready_r);
            file::close(rec, ready_r)?;
            got?;
        }
        Ok(())
    }

    fn await_ready(&mut self, rec: &mut Recorder, host: Host, ready: &OwnedFd) -> Result<()> {
        let name = host.name();
        rec.waiting(format!(
            "waiting up to {} s for the {name} host to make its namespace",
            READY.as_secs()
        ));
        if !wait::readable(rec, ready.as_fd(), Some(READY))? {
            return Err(Error::protocol(format!(
                "the {name} host did not report within {} s",
                READY.as_secs()
            )));
        }
        let mut buf = [0u8; 16];
        rec.note(format!("the {name} host is in its own network namespace"));
        let n = file::read(rec, ready.as_fd(), &mut buf)?;
        if &buf[..n] != name.as_bytes() {
            return Err(Error::protocol(format!(
                "the {name} host ended before it made its namespace (see its steps)"
            )));
        }
        Ok(())
    }

    fn open_namespaces(&mut self, rec: &mut Recorder) -> Result<()> {
        for h in &mut self.hosts {
            let path = format!("/proc/{}/ns/net", h.pid);
            rec.note(format!(
                "a handle on the {} host's network namespace: setns() with it moves a process in",
                h.host.name()
            ));
            let fd = file::openat(
                rec,
                Path::new(&path),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                None,
            )?;
            h.ns = Some(fd);
        }
        Ok(())
    }

    pub fn pid(&self, host: Host) -> Option<Pid> {
        self.hosts.iter().find(|h| h.host == host).map(|h| h.pid)
    }

    /// Moves this process into `host`'s network namespace (`setns`), unless
    /// it is there already.
    pub fn enter(&mut self, rec: &mut Recorder, host: Host) -> Result<()> {
        if self.inside == Some(host) {
            return Ok(());
        }
        let name = host.name();
        let Some(fd) = self
            .hosts
            .iter()
            .find(|h| h.host == host)
            .and_then(|h| h.ns.as_ref())
        else {
            return Err(Error::protocol(format!("no {name} host")));
        };
        ns::setns(
            rec,
            fd.as_fd(),
            libc::CLONE_NEWNET,
            &format!("this process now works in the {name}'s network namespace: sockets it makes from here on belong to the {name}, and /proc/sys/net shows the {name}'s settings (sockets already open stay where they were made)"),
        )?;
        self.inside = Some(host);
        Ok(())
    }

    /// Configures the three namespaces: links, addresses, routes, forwarding.
    pub fn configure(&mut self, rec: &mut Recorder) -> Result<()> {
        let (client, server) = match (self.pid(Host::Client), self.pid(Host::Server)) {
            (Some(c), Some(s)) => (c, s),
            _ => return Err(Error::protocol("the hosts are not running")),
        };
        self.enter(rec, Host::Router)?;
        // The router's socket stays open while the others are configured:
        // it keeps talking to the router's namespace wherever this process is.
        let mut router_nl = Rtnl::open(rec, "the router")?;
        let r = router(rec, &mut router_nl, client, server)
            .and_then(|()| forwarding(rec))
            .and_then(|()| self.end_hosts(rec))
            .and_then(|()| router_nl.await_running(rec, ROUTER_ETH0.name))
            .and_then(|()| router_nl.await_running(rec, ROUTER_ETH1.name));
        let closed = router_nl.close(rec);
        r?;
        closed?;
        rec.message(format!(
            "the topology is up: client {} — {} router {} — {} server (MTU {SERVER_LINK_MTU} on the router–server link)",
            CLIENT_ETH0.v4, ROUTER_ETH0.v4, ROUTER_ETH1.v4, SERVER_ETH0.v4
        ));
        Ok(())
    }

    fn end_hosts(&mut self, rec: &mut Recorder) -> Result<()> {
        for (host, iface, gw) in [
            (Host::Client, CLIENT_ETH0, ROUTER_ETH0),
            (Host::Server, SERVER_ETH0, ROUTER_ETH1),
        ] {
            self.enter(rec, host)?;
            let mut nl = Rtnl::open(rec, &format!("the {}", host.name()))?;
            let r = end_host(rec, &mut nl, host, &iface, &gw)
                .and_then(|()| nl.await_running(rec, iface.name));
            let closed = nl.close(rec);
            r?;
            closed?;
        }
        Ok(())
    }

    /// Closes the namespace handles and the hold pipe, then reaps every
    /// host. Returns `result`, or the first teardown error after an Ok.
    pub fn teardown(mut self, rec: &mut Recorder, result: Result<()>) -> Result<()> {
        let mut first_err: Option<Error> = None;
        for h in &mut self.hosts {
            if let Some(fd) = h.ns.take() {
                rec.note(format!(
                    "the handle on the {} namespace goes: only the host process keeps it now",
                    h.host.name()
                ));
                if let Err(e) = file::close(rec, fd) {
                    first_err.get_or_insert(e.into());
                }
            }
        }
        if let Some(fd) = self.hold.take() {
            rec.note("the hold pipe closes: each host sees end-of-file and exits, and its network namespace — veth ends, addresses, routes — goes with it");
            if let Err(e) = file::close(rec, fd) {
                first_err.get_or_insert(e.into());
            }
        }
        let ok = result.is_ok();
        for h in &self.hosts {
            // A host exits at once on end-of-file (a stop signal from the
            // terminal may have ended it already); a wait that a stop
            // signal cuts short stops it with SIGTERM, then SIGKILL.
            let reaped = wait::finish(rec, h.pid, Ok(()));
            let checked = if ok {
                reaped.and_then(wait::expect_exit_0)
            } else {
                reaped.map(drop)
            };
            if let Err(e) = checked {
                first_err.get_or_insert(e);
            }
        }
        match (result, first_err) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        }
    }
}

/// The router's half: lo up, the two veth pairs (peers born in the
/// client's and the server's namespaces), addresses, links up, the routes
/// that drop.
fn router(rec: &mut Recorder, nl: &mut Rtnl, client: Pid, server: Pid) -> Result<()> {
    nl.request(
        rec,
        |s| nl::link_up(s, "lo"),
        "`ip link set lo up` in the router: a new namespace's loopback starts down",
    )?;
    for (mine, peer, pid, mtu, who) in [
        (ROUTER_ETH0, CLIENT_ETH0, client, None, "client"),
        (
            ROUTER_ETH1,
            SERVER_ETH0,
            server,
            Some(SERVER_LINK_MTU),
            "server",
        ),
    ] {
        let end = VethEnd {
            name: mine.name.into(),
            mac: mine.mac,
            mtu,
            netns_pid: None,
        };
        let other = VethEnd {
            name: peer.name.into(),
            mac: peer.mac,
            mtu,
            netns_pid: Some(pid.as_raw() as u32),
        };
        let mtu_text = mtu.map_or(String::new(), |m| format!(" mtu {m}"));
        nl.request(
            rec,
            |s| nl::new_veth(s, &end, &other),
            &format!(
                "`ip link add {} address {}{mtu_text} type veth peer name {} address {}{mtu_text} netns {pid}`: a virtual cable; {} stays in the router, its peer is born in the {who}'s namespace (IFLA_NET_NS_PID {pid}, inside VETH_INFO_PEER)",
                mine.name,
                nl::mac_text(&mine.mac),
                peer.name,
                nl::mac_text(&peer.mac),
                mine.name
            ),
        )?;
    }
    for iface in [ROUTER_ETH0, ROUTER_ETH1] {
        configure_iface(rec, nl, &iface, "router")?;
    }
    for (net, kind, what) in [
        (UNREACHABLE_NET, RouteKind::Unreachable, "unreachable: the router drops what matches and answers ICMP \"host unreachable\""),
        (PROHIBIT_NET, RouteKind::Prohibit, "prohibit: the router drops what matches and answers ICMP \"administratively prohibited\""),
        (BLACKHOLE_NET, RouteKind::Blackhole, "blackhole: the router drops what matches and says nothing at all"),
    ] {
        let dst = (IpAddr::V4(net.0), net.1);
        let word = what.split(':').next().unwrap_or("");
        nl.request(
            rec,
            |s| nl::new_route(s, false, Some(dst), kind),
            &format!("`ip route add {word} {}/{}` in the router: {what}", net.0, net.1),
        )?;
    }
    Ok(())
}

/// Index, addresses and up, for one interface of `host`.
fn configure_iface(rec: &mut Recorder, nl: &mut Rtnl, iface: &Iface, host: &str) -> Result<()> {
    let index = nl.ifindex(rec, iface.name)?;
    let name = iface.name;
    nl.request(
        rec,
        |s| nl::link_up(s, name),
        &format!("`ip link set {name} up` in the {host}"),
    )?;
    for (ip, len) in [(IpAddr::V4(iface.v4), 24), (IpAddr::V6(iface.v6), 64)] {
        let extra = if ip.is_ipv6() {
            " nodad: IFA_F_NODAD makes it usable at once, without a second of duplicate address detection"
        } else {
            ": the kernel adds the route to the /24 on that link by itself"
        };
        nl.request(
            rec,
            |s| nl::new_address(s, index, ip, len),
            &format!("`ip addr add {ip}/{len} dev {name}` in the {host}{extra}"),
        )?;
    }
    Ok(())
}

/// ip_forward and IPv6 forwarding, written in the router's namespace.
fn forwarding(rec: &mut Recorder) -> Result<()> {
    write_file(
        rec,
        "/proc/sys/net/ipv4/ip_forward",
        "1",
        "/proc/sys/net belongs to the namespace of whoever opens it: this is the router's ip_forward, not the machine's",
    )?;
    write_file(
        rec,
        "/proc/sys/net/ipv6/conf/all/forwarding",
        "1",
        "the router's IPv6 forwarding, likewise its own",
    )?;
    write_file(
        rec,
        "/proc/sys/net/ipv4/icmp_ratelimit",
        "0",
        "routers limit the ICMP errors they send to each host (by default one per second, in bursts): this router sends every one, so each experiment gets its answer",
    )?;
    rec.message("the router forwards now: a packet for another network is passed on, with its TTL one lower");
    Ok(())
}

/// A client or server: lo up, its one interface, default routes via the router.
fn end_host(
    rec: &mut Recorder,
    nl: &mut Rtnl,
    host: Host,
    iface: &Iface,
    gw: &Iface,
) -> Result<()> {
    let name = host.name();
    nl.request(
        rec,
        |s| nl::link_up(s, "lo"),
        &format!("`ip link set lo up` in the {name}"),
    )?;
    configure_iface(rec, nl, iface, name)?;
    for gw_ip in [IpAddr::V4(gw.v4), IpAddr::V6(gw.v6)] {
        nl.request(
            rec,
            |s| nl::new_route(s, gw_ip.is_ipv6(), None, RouteKind::Via(gw_ip)),
            &format!(
                "`ip {}route add default via {gw_ip}` in the {name}: everything not on its own link goes to the router",
                if gw_ip.is_ipv6() { "-6 " } else { "" }
            ),
        )?;
    }
    Ok(())
}
