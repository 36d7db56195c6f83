//! The kernel object behind each descriptor a step used or made, for the
//! JSON `objects` field and the diagrams that match a write in one process
//! to the read in another.
//!
//! After the call, `readlink("/proc/self/fd/N")` names the object
//! (`pipe:[1234]`, `socket:[5678]`, a FIFO's path); for a socket, its
//! protocol and addresses come from a NETLINK_SOCK_DIAG dump (TCP, UDP:
//! the table the `socket` step said, without the TIME_WAIT sockets that
//! make /proc/net/tcp slow to read on a busy machine) or /proc/net/*
//! (AF_UNIX, raw, packet, or when the kernel has no inet_diag), and for a
//! connected AF_UNIX socket one dump gives its peer, as for `--fds`. Once
//! a socket's addresses are settled (or it is in no table) they are kept,
//! so a `recvfrom` or `sendto` costs one readlink, not a dump; a `bind`,
//! `connect` or `listen` step looks again.
//!
//! A `close` cannot be looked at after the call, so each process keeps
//! what it last saw of each descriptor (a child inherits its parent's
//! memory, and with it what the parent saw). These reads are the display's
//! business, not the experiment's: they are not steps. Nothing here runs
//! unless a step is shown (not with `--quiet`, `-c`, or in a bench's
//! untraced loops).

use std::collections::HashMap;

use super::fds::{self, Socket};
use crate::render::event::ObjectRef;

/// What this process has seen of its descriptors and sockets.
#[derive(Debug, Default)]
pub struct Objects {
    /// The last object seen behind each descriptor.
    by_fd: HashMap<i32, ObjectRef>,
    /// The /proc/net table each socket inode is in (or will be, once it
    /// has an address): from its `socket` step, or where it was found.
    table: HashMap<u64, &'static str>,
    /// Sockets made by a step here that have no address yet, so are in no
    /// table: no need to read one (/proc/net/tcp can hold thousands of lines).
    unaddressed: std::collections::HashSet<u64>,
    /// Sockets whose addresses cannot change until a `bind`, `connect` or
    /// `listen` step (listening, connected, a UDP socket with its port, a
    /// raw or packet socket): a step on one reads nothing but its link.
    settled: HashMap<u64, ObjectRef>,
    /// Sockets listed in no table read here (netlink, ICMP datagram, or
    /// not found), until a `bind`, `connect` or `listen` step: not looked
    /// for again at each message.
    nowhere: std::collections::HashSet<u64>,
    /// The peers of AF_UNIX sockets, once known.
    unix_peers: HashMap<u64, u64>,
    /// Sockets looked for in a dump or table so far (what the tests count).
    asked: u64,
}

/// Calls that give a socket an address (a `sendto` binds an unbound UDP
/// socket to a free port).
const ADDRESSING: &[&str] = &["bind", "connect", "listen", "sendto", "sendmsg"];

impl Objects {
    /// The objects behind the descriptors of one step.
    pub fn look(&mut self, syscall: &str, args: &[String], ret: Option<i64>) -> Vec<ObjectRef> {
        if syscall == "exit_group" {
            self.by_fd.clear();
            return Vec::new();
        }
        let listener_table = match syscall {
            "accept4" | "accept" => args
                .first()
                .and_then(|a| a.parse::<i32>().ok())
                .and_then(|fd| self.by_fd.get(&fd))
                .and_then(|o| socket_inode(&o.object))
                .and_then(|i| self.table.get(&i).copied()),
            _ => None,
        };
        let mut out = Vec::new();
        for fd in descriptors(syscall, args, ret) {
            if out.iter().any(|o: &ObjectRef| o.fd == fd) {
                continue;
            }
            let seen = if syscall == "close" {
                // Gone after the call: what was seen of it before.
                self.by_fd.remove(&fd)
            } else {
                let new = ret == Some(i64::from(fd)) && RET_FD.contains(&syscall);
                let o = self.read(fd, syscall, args, new, listener_table);
                match &o {
                    Some(o) => self.by_fd.insert(fd, o.clone()),
                    None => self.by_fd.remove(&fd),
                };
                o
            };
            out.extend(seen);
        }
        out
    }

    /// `new`: `fd` is the descriptor this step made.
    fn read(
        &mut self,
        fd: i32,
        syscall: &str,
        args: &[String],
        new: bool,
        listener_table: Option<&'static str>,
    ) -> Option<ObjectRef> {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        let object = target.to_string_lossy().into_owned();
        let mut o = ObjectRef {
            fd,
            object,
            ..ObjectRef::default()
        };
        let Some(inode) = socket_inode(&o.object) else {
            return Some(o);
        };
        if new && syscall == "socket" {
            match table_of(args) {
                Some(t) => {
                    self.table.insert(inode, t);
                    if t != "/proc/net/unix" {
                        self.unaddressed.insert(inode);
                    }
                }
                None => {
                    self.nowhere.insert(inode);
                }
            }
            return Some(o);
        }
        if new {
            if let Some(t) = listener_table {
                self.table.insert(inode, t);
            }
        }
        if ADDRESSING.contains(&syscall) {
            self.unaddressed.remove(&inode);
        }
        if matches!(syscall, "bind" | "connect" | "listen") {
            // Its addresses or its state change now (a UDP socket settled
            // on its port gets a remote address, a raw socket a local one).
            self.settled.remove(&inode);
            self.nowhere.remove(&inode);
        }
        if !self.unaddressed.contains(&inode) {
            self.socket(inode, &mut o);
        }
        Some(o)
    }

    /// Fills in a socket's protocol, addresses and AF_UNIX peer.
    fn socket(&mut self, inode: u64, o: &mut ObjectRef) {
        if let Some(s) = self.settled.get(&inode) {
            *o = ObjectRef {
                fd: o.fd,
                ..s.clone()
            };
            return;
        }
        if self.nowhere.contains(&inode) {
            return;
        }
        self.asked += 1;
        let hint = self.table.get(&inode).copied();
        // TCP and UDP sockets are asked of the kernel by sock_diag, which
        // skips the TIME_WAIT ones /proc/net/tcp lists by the thousand.
        let asked = match hint {
            Some("/proc/net/tcp") => super::diag::inet(inode, libc::AF_INET, true),
            Some("/proc/net/tcp6") => super::diag::inet(inode, libc::AF_INET6, true),
            Some("/proc/net/udp") => super::diag::inet(inode, libc::AF_INET, false),
            Some("/proc/net/udp6") => super::diag::inet(inode, libc::AF_INET6, false),
            _ => None,
        };
        let found = match asked {
            Some(found) => found,
            None => fds::socket_info(inode, hint),
        };
        let Some(sock) = found else {
            self.nowhere.insert(inode);
            return;
        };
        self.table.insert(inode, sock.table());
        o.proto = Some(sock.proto().to_string());
        o.local = sock.local();
        o.remote = sock.remote();
        if sock.unix_connected() {
            if !self.unix_peers.contains_key(&inode) {
                self.unix_peers
                    .extend(fds::unix_peers().into_iter().filter(|&(_, p)| p != 0));
            }
            o.peer = self.unix_peers.get(&inode).map(|p| format!("socket:[{p}]"));
        }
        let settled = match &sock {
            Socket::Inet {
                proto,
                state,
                local,
                ..
            } => match *proto {
                "TCP" => *state == "LISTEN" || (*state == "ESTABLISHED" && o.remote.is_some()),
                "UDP" => local.port() != 0,
                _ => true,
            },
            // Unless connected to a peer not found yet (then asked again).
            Socket::Unix(_) => !sock.unix_connected() || o.peer.is_some(),
            Socket::Packet { .. } => true,
        };
        if settled {
            self.settled.insert(inode, o.clone());
        }
    }
}

/// The /proc/net table a new socket will be listed in, from its `socket`
/// step: `socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)` → tcp6.
fn table_of(args: &[String]) -> Option<&'static str> {
    let family = args.first()?.as_str();
    let ty = args.get(1)?.as_str();
    let six = family == "AF_INET6";
    Some(match family {
        "AF_UNIX" => "/proc/net/unix",
        "AF_PACKET" => "/proc/net/packet",
        "AF_INET" | "AF_INET6" => {
            let base = if ty.starts_with("SOCK_STREAM") {
                "tcp"
            } else if ty.starts_with("SOCK_DGRAM") {
                // ICMP datagram (ping) sockets are listed nowhere under these names.
                if args.get(2).is_some_and(|p| p.contains("ICMP")) {
                    return None;
                }
                "udp"
            } else if ty.starts_with("SOCK_RAW") {
                "raw"
            } else {
                return None;
            };
            match (base, six) {
                ("tcp", false) => "/proc/net/tcp",
                ("tcp", true) => "/proc/net/tcp6",
                ("udp", false) => "/proc/net/udp",
                ("udp", true) => "/proc/net/udp6",
                ("raw", false) => "/proc/net/raw",
                _ => "/proc/net/raw6",
            }
        }
        _ => return None,
    })
}

/// `socket:[5678]` → 5678.
fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Calls whose first argument is a descriptor.
const FIRST_ARG_FD: &[&str] = &[
    "read",
    "write",
    "close",
    "fcntl",
    "ioctl",
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
    "shutdown",
    "ftruncate",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "newfstatat",
];

/// Calls whose return value is a new descriptor.
const RET_FD: &[&str] = &[
    "socket",
    "accept4",
    "accept",
    "openat",
    "pidfd_open",
    "memfd_create",
    "epoll_create1",
];

/// The descriptors a step used or made, read from its arguments in strace
/// notation (descriptors are plain numbers there) and its return value.
pub fn descriptors(syscall: &str, args: &[String], ret: Option<i64>) -> Vec<i32> {
    let num = |s: &str| s.trim().parse::<i32>().ok().filter(|&n| n >= 0);
    let mut fds = Vec::new();
    if FIRST_ARG_FD.contains(&syscall) {
        // newfstatat(AT_FDCWD, …) names a path, newfstatat(3, "", …) a descriptor.
        fds.extend(args.first().and_then(|a| num(a)));
    }
    match syscall {
        "epoll_ctl" => fds.extend(args.get(2).and_then(|a| num(a))),
        "mmap" => fds.extend(args.get(4).and_then(|a| num(a))),
        // pipe2([3, 4], 0) and socketpair(AF_UNIX, SOCK_STREAM, 0, [3, 4]).
        "pipe2" | "socketpair" if ret == Some(0) => {
            let arr = if syscall == "pipe2" {
                args.first()
            } else {
                args.get(3)
            };
            if let Some(a) = arr {
                fds.extend(
                    a.trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .filter_map(num),
                );
            }
        }
        // ppoll([{fd=3, events=POLLIN}, {fd=4, …}], 2, …).
        "ppoll" | "poll" => {
            if let Some(a) = args.first() {
                fds.extend(
                    a.split("fd=")
                        .skip(1)
                        .filter_map(|r| num(r.split([',', '}']).next().unwrap_or(""))),
                );
            }
        }
        _ => {}
    }
    if RET_FD.contains(&syscall) {
        fds.extend(ret.and_then(|r| i32::try_from(r).ok()).filter(|&r| r >= 0));
    }
    fds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn descriptors_come_from_arguments_and_return_values() {
        assert_eq!(
            descriptors("pipe2", &args(&["[3, 4]", "0"]), Some(0)),
            [3, 4]
        );
        assert_eq!(
            descriptors(
                "socketpair",
                &args(&["AF_UNIX", "SOCK_STREAM", "0", "[5, 6]"]),
                Some(0)
            ),
            [5, 6]
        );
        assert_eq!(
            descriptors("write", &args(&["4", "\"hello\"", "5"]), Some(5)),
            [4]
        );
        assert_eq!(
            descriptors(
                "accept4",
                &args(&["3", "{…}", "[16]", "SOCK_CLOEXEC"]),
                Some(5)
            ),
            [3, 5]
        );
        assert_eq!(
            descriptors(
                "socket",
                &args(&["AF_INET", "SOCK_STREAM", "IPPROTO_TCP"]),
                Some(3)
            ),
            [3]
        );
        assert!(descriptors("socket", &args(&["AF_INET"]), Some(-1)).is_empty());
        assert_eq!(
            descriptors(
                "ppoll",
                &args(&["[{fd=3, events=POLLIN}, {fd=7, events=POLLOUT}]", "2"]),
                Some(1)
            ),
            [3, 7]
        );
        assert!(descriptors("newfstatat", &args(&["AT_FDCWD", "\"/tmp\""]), Some(0)).is_empty());
        assert_eq!(
            descriptors("newfstatat", &args(&["3", "\"\""]), Some(0)),
            [3]
        );
        assert_eq!(
            descriptors(
                "mmap",
                &args(&["NULL", "4096", "PROT_READ", "MAP_SHARED", "3", "0"]),
                None
            ),
            [3]
        );
        assert!(descriptors("wait4", &args(&["42"]), Some(42)).is_empty());
    }

    /// A step on a settled socket, or one in no table, reads its link and
    /// nothing else: no dump, no /proc/net table per message.
    #[test]
    fn messages_on_a_settled_socket_ask_nothing_more() {
        use nix::sys::socket::{
            bind, socket, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn,
        };
        use std::os::fd::AsRawFd;
        let mut o = Objects::default();
        let udp = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("udp socket");
        let fd = udp.as_raw_fd();
        let s = fd.to_string();
        o.look(
            "socket",
            &args(&["AF_INET", "SOCK_DGRAM|SOCK_CLOEXEC", "IPPROTO_IP"]),
            Some(fd.into()),
        );
        assert_eq!(o.asked, 0, "no address yet: nothing to ask");
        bind(fd, &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
        let bound = o.look("bind", &args(&[&s, "{…}", "16"]), Some(0));
        assert_eq!(o.asked, 1);
        assert_eq!(bound[0].proto.as_deref(), Some("UDP"), "{bound:?}");
        for _ in 0..3 {
            let sent = o.look("sendto", &args(&[&s, "\"x\"", "1", "0"]), Some(1));
            assert_eq!(sent, bound);
        }
        assert_eq!(o.asked, 1, "each sendto read the link alone");

        let nl = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .expect("netlink socket");
        let fd = nl.as_raw_fd();
        let s = fd.to_string();
        o.look(
            "socket",
            &args(&["AF_NETLINK", "SOCK_RAW|SOCK_CLOEXEC", "NETLINK_ROUTE"]),
            Some(fd.into()),
        );
        for _ in 0..3 {
            let seen = o.look("sendmsg", &args(&[&s, "{…}", "0"]), Some(20));
            assert!(seen[0].object.starts_with("socket:["), "{seen:?}");
        }
        assert_eq!(o.asked, 1, "a netlink socket is in no table: never asked");
    }

    #[test]
    fn a_pipe_is_named_and_a_closed_descriptor_remembered() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        use std::os::fd::AsRawFd;
        let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
        let mut o = Objects::default();
        let seen = o.look("pipe2", &args(&[&format!("[{rfd}, {wfd}]"), "0"]), Some(0));
        assert_eq!(seen.len(), 2);
        assert!(seen[0].object.starts_with("pipe:["), "{seen:?}");
        assert_eq!(seen[0].object, seen[1].object);
        drop(r);
        let closed = o.look("close", &args(&[&rfd.to_string()]), Some(0));
        assert_eq!(closed, [seen[0].clone()]);
    }
}
