//! NETLINK_SOCK_DIAG dumps, what `ss` asks the kernel (see sock_diag(7)):
//! the peers of AF_UNIX sockets, which no file under /proc shows, and one
//! TCP or UDP socket's addresses. `/proc/net/tcp` lists every socket of
//! the machine, TIME_WAIT ones included (thousands on a busy host, some
//! milliseconds to read each time); a dump can leave out the states no
//! descriptor owns (TIME_WAIT, SYN_RECV), and costs a fraction of that.
//! These are the display's reads, not the experiment's: not steps.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::fds::{tcp_state, Socket};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Sends one dump request (`req`, the body after the netlink header) and
/// hands each message's body to `each`, which returns false to stop.
/// `false` when the kernel refused (no such diag module) or the socket
/// could not be made.
fn dump(req: &[u8], mut each: impl FnMut(&[u8]) -> bool) -> bool {
    use nix::sys::socket::{
        self as sock, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
    };
    use std::os::fd::AsRawFd;
    let Ok(fd) = sock::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    ) else {
        return false;
    };
    // struct nlmsghdr, native byte order.
    let mut msg = Vec::with_capacity(16 + req.len());
    msg.extend_from_slice(&(16 + req.len() as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    msg.extend_from_slice(req);
    if sock::send(fd.as_raw_fd(), &msg, MsgFlags::empty()).is_err() {
        return false;
    }
    let mut buf = vec![0u8; 32 * 1024];
    // The kernel queues each part of the dump as the previous one is read,
    // so a non-blocking recv always finds the next; bounded all the same.
    for _ in 0..4096 {
        let Ok(n) = sock::recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) else {
            return false;
        };
        let mut off = 0;
        while off + 16 <= n {
            let len = u32_at(&buf, off) as usize;
            let ty = u16_at(&buf, off + 4);
            if len < 16 || off + len > n || ty == NLMSG_ERROR {
                return false;
            }
            if ty == NLMSG_DONE || !each(&buf[off + 16..off + len]) {
                return true;
            }
            off += (len + 3) & !3;
        }
    }
    true
}

/// inode → peer inode for every AF_UNIX socket, from one dump with
/// UDIAG_SHOW_PEER. Empty when the kernel refuses (no unix_diag module):
/// the table then shows no peers.
pub fn unix_peers() -> HashMap<u64, u64> {
    const UDIAG_SHOW_PEER: u32 = 4;
    const UNIX_DIAG_PEER: u16 = 2;
    // struct unix_diag_req: family, protocol, pad, states, ino, show, cookie.
    let mut req = Vec::with_capacity(24);
    req.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&0u32.to_ne_bytes()); // ino: all
    req.extend_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    req.extend_from_slice(&[0u8; 8]); // cookie
    let mut peers = HashMap::new();
    dump(&req, |body| {
        // struct unix_diag_msg: family, type, state, pad, ino, cookie[2].
        if body.len() >= 16 {
            let ino = u64::from(u32_at(body, 4));
            let mut a = 16;
            while a + 4 <= body.len() {
                let alen = usize::from(u16_at(body, a));
                if alen < 4 || a + alen > body.len() {
                    break;
                }
                if u16_at(body, a + 2) == UNIX_DIAG_PEER && alen >= 8 {
                    peers.insert(ino, u64::from(u32_at(body, a + 4)));
                }
                a += (alen + 3) & !3;
            }
        }
        true
    });
    peers
}

/// The TCP or UDP socket `inode` of `family` (AF_INET, AF_INET6): `None`
/// when the kernel refused the dump (read /proc/net then), `Some(None)`
/// when no live socket has that inode.
pub fn inet(inode: u64, family: i32, tcp: bool) -> Option<Option<Socket>> {
    // Every state but TIME_WAIT (6) and NEW_SYN_RECV (12): those belong
    // to no descriptor.
    let states: u32 = 0xFFE & !(1 << 6);
    let proto = if tcp {
        libc::IPPROTO_TCP
    } else {
        libc::IPPROTO_UDP
    };
    // struct inet_diag_req_v2: family, protocol, ext, pad, states, then
    // inet_diag_sockid (48 bytes, all zero: any socket).
    let mut req = Vec::with_capacity(56);
    req.extend_from_slice(&[family as u8, proto as u8, 0, 0]);
    req.extend_from_slice(&states.to_ne_bytes());
    req.extend_from_slice(&[0u8; 48]);
    let mut found = None;
    let ok = dump(&req, |m| {
        // struct inet_diag_msg: family, state, timer, retrans, sockid
        // (sport, dport big-endian, src[16], dst[16], if, cookie[2]),
        // expires, rqueue, wqueue, uid, inode.
        if m.len() < 72 || u64::from(u32_at(m, 68)) != inode {
            return true;
        }
        let port = |i: usize| u16::from_be_bytes([m[i], m[i + 1]]);
        let ip = |i: usize| -> IpAddr {
            if i32::from(m[0]) == libc::AF_INET6 {
                let mut b = [0u8; 16];
                b.copy_from_slice(&m[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            } else {
                IpAddr::V4(Ipv4Addr::new(m[i], m[i + 1], m[i + 2], m[i + 3]))
            }
        };
        let six = family == libc::AF_INET6;
        found = Some(Socket::Inet {
            table: match (tcp, six) {
                (true, false) => "/proc/net/tcp",
                (true, true) => "/proc/net/tcp6",
                (false, false) => "/proc/net/udp",
                (false, true) => "/proc/net/udp6",
            },
            proto: if tcp { "TCP" } else { "UDP" },
            local: SocketAddr::new(ip(8), port(4)),
            remote: SocketAddr::new(ip(24), port(6)),
            state: if tcp { tcp_state(m[1]) } else { "" },
        });
        false
    });
    ok.then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_its_inode() {
        use std::os::unix::fs::MetadataExt;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        use std::os::fd::AsRawFd;
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", l.as_raw_fd()))
            .expect("the socket")
            .ino();
        match inet(ino, libc::AF_INET, true) {
            // A kernel without inet_diag: nothing to check here.
            None => {}
            Some(found) => {
                let Some(Socket::Inet { local, state, .. }) = found else {
                    panic!("not found: {found:?}")
                };
                assert_eq!(local.port(), port);
                assert_eq!(state, "LISTEN");
            }
        }
    }
}
