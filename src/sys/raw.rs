//! What raw ICMP/ICMPv6 sockets, the unprivileged ICMP "ping" socket and
//! `AF_PACKET` capture add to the generic wrappers of [`super::socket`]
//! (socket, setsockopt, sendto, getsockname, …): the ICMP_FILTER and
//! ICMP6_FILTER options, SO_ATTACH_FILTER, recvmsg with the kernel's receive
//! timestamp and TTL as control messages, ioctl (SIOCGIFINDEX), and bind and
//! recvfrom with a `sockaddr_ll`.
//!
//! Raw and packet sockets need CAP_NET_RAW; without it `socket(2)` fails
//! with EPERM. See <https://man7.org/linux/man-pages/man7/raw.7.html>,
//! <https://man7.org/linux/man-pages/man7/packet.7.html>,
//! <https://man7.org/linux/man-pages/man7/icmp.7.html>.

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self as sock, ControlMessageOwned, MsgFlags, SockaddrStorage};

use super::socket::setsockopt_value;
use crate::error::SysError;
use crate::trace::names::{self, quote};
use crate::trace::{Call, Recorder, Shown};

/// strace's names for the bits of `ICMP_FILTER` (its `icmpfilterflags`).
const ICMP_TYPE_NAMES: [(u8, &str); 13] = [
    (0, "ICMP_ECHOREPLY"),
    (3, "ICMP_DEST_UNREACH"),
    (4, "ICMP_SOURCE_QUENCH"),
    (5, "ICMP_REDIRECT"),
    (8, "ICMP_ECHO"),
    (11, "ICMP_TIME_EXCEEDED"),
    (12, "ICMP_PARAMETERPROB"),
    (13, "ICMP_TIMESTAMP"),
    (14, "ICMP_TIMESTAMPREPLY"),
    (15, "ICMP_INFO_REQUEST"),
    (16, "ICMP_INFO_REPLY"),
    (17, "ICMP_ADDRESS"),
    (18, "ICMP_ADDRESSREPLY"),
];

/// An `ICMP_FILTER` value as strace (6.x) prints it: the complement of the
/// types that pass, `~[ICMP_ECHOREPLY ICMP_DEST_UNREACH]`.
pub fn icmp_filter_notation(data: u32) -> String {
    let pass = !data;
    let mut parts: Vec<String> = Vec::new();
    let mut rest = pass;
    for (t, name) in ICMP_TYPE_NAMES {
        if pass & (1 << t) != 0 {
            parts.push(name.into());
            rest &= !(1 << t);
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    format!("~[{}]", parts.join(" "))
}

/// `ICMP_FILTER`'s option number, from `<linux/icmp.h>` (libc has none).
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER`'s option number, from `<netinet/icmp6.h>`.
const ICMP6_FILTER: libc::c_int = 1;

/// Corresponds to `setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, 4)` on a
/// raw IPv4 ICMP socket: the kernel drops every ICMP type whose bit is set
/// in `data` before queueing it here. See
/// <https://man7.org/linux/man-pages/man7/raw.7.html>.
///
/// # Errors
/// `EOPNOTSUPP` on anything but a raw `IPPROTO_ICMP` socket (a ping socket).
pub fn setsockopt_icmp_filter(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    data: u32,
) -> Result<(), SysError> {
    // `data` is the whole 4-byte `struct icmp_filter`.
    setsockopt_value(
        rec,
        fd,
        libc::SOL_RAW,
        ICMP_FILTER,
        &data,
        icmp_filter_notation(data),
    )
}

/// Corresponds to `setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, 32)`
/// on a raw ICMPv6 socket: the kernel drops every ICMPv6 type whose bit is
/// set. strace 6.1 has no name for this option and prints it as the number
/// 1 with the 32 bytes as a string, so ipclab does the same. See
/// <https://man7.org/linux/man-pages/man7/raw.7.html> and RFC 3542 §3.2.
///
/// # Errors
/// `EINVAL` on a socket that is not raw ICMPv6.
pub fn setsockopt_icmp6_filter(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    words: [u32; 8],
) -> Result<(), SysError> {
    // `words` is the 32-byte `struct icmp6_filter`, eight native-endian words.
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    setsockopt_value(
        rec,
        fd,
        libc::SOL_ICMPV6,
        ICMP6_FILTER,
        &words,
        quote(&bytes),
    )
}

/// Corresponds to `setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, …)`: the
/// kernel runs this classic BPF program on each packet and queues only
/// what it accepts. See <https://man7.org/linux/man-pages/man7/socket.7.html>.
///
/// # Errors
/// `EINVAL` (a program the kernel's checker rejects), `ENOMEM`.
pub fn attach_filter(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    prog: &[crate::packet::filter::Insn],
) -> Result<(), SysError> {
    let mut insns: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    // `fprog` points at `insns`, which lives until this function returns;
    // the kernel copies the program during the call and keeps no pointer.
    let fprog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_mut_ptr(),
    };
    let shown = format!("{{len={}, filter={:p}}}", insns.len(), insns.as_ptr());
    setsockopt_value(
        rec,
        fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &fprog,
        shown,
    )
}

/// A `SockaddrStorage` holding an IPv4 or IPv6 address, as a `SocketAddr`.
fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())));
    }
    s.as_sockaddr_in6().map(|a| {
        SocketAddr::V6(SocketAddrV6::new(
            a.ip(),
            a.port(),
            a.flowinfo(),
            a.scope_id(),
        ))
    })
}

/// What [`recvmsg`] received besides the bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// The kernel's receive time (`SCM_TIMESTAMPNS`, CLOCK_REALTIME) since the epoch.
    pub stamp: Option<Duration>,
    /// `IP_TTL` / `IPV6_HOPLIMIT` control message.
    pub ttl: Option<u8>,
    /// `MSG_TRUNC`: the packet was longer than the buffer.
    pub truncated: bool,
}

/// Corresponds to `recvmsg(2)` with room for a timestamp and a TTL control
/// message. `explain` writes the note from what arrived (called only when
/// the step is shown). See <https://man7.org/linux/man-pages/man2/recvmsg.2.html>.
///
/// # Errors
/// `EAGAIN` (non-blocking or SO_RCVTIMEO), `EINTR`.
pub fn recvmsg(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    explain: impl FnOnce(&Received, &[u8]) -> String,
) -> Result<Received, SysError> {
    let raw = fd.as_raw_fd();
    let cap = buf.len();
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec, libc::c_int);
    let call = Call::new("recvmsg").may_wait(raw.to_string(), "waiting for a packet");
    let pending = rec.begin(call);
    let result = {
        let mut iov = [IoSliceMut::new(buf)];
        sock::recvmsg::<SockaddrStorage>(raw, &mut iov, Some(&mut cmsg), MsgFlags::empty()).map(
            |m| {
                let mut got = Received {
                    len: m.bytes,
                    from: m.address.as_ref().and_then(to_socket_addr),
                    truncated: m.flags.contains(MsgFlags::MSG_TRUNC),
                    ..Received::default()
                };
                let mut cmsgs = Vec::new();
                let mut controllen = 0;
                if let Ok(it) = m.cmsgs() {
                    for c in it {
                        match c {
                            ControlMessageOwned::ScmTimestampns(ts) => {
                                got.stamp = Some(Duration::new(
                                    ts.tv_sec().max(0) as u64,
                                    ts.tv_nsec().clamp(0, 999_999_999) as u32,
                                ));
                                controllen += 32;
                                cmsgs.push(format!(
                                    "{{cmsg_len=32, cmsg_level=SOL_SOCKET, cmsg_type=SO_TIMESTAMPNS_OLD, cmsg_data={{tv_sec={}, tv_nsec={}}}}}",
                                    ts.tv_sec(),
                                    ts.tv_nsec()
                                ));
                            }
                            ControlMessageOwned::Ipv4Ttl(t) => {
                                got.ttl = u8::try_from(t).ok();
                                controllen += 24;
                                cmsgs.push(format!(
                                    "{{cmsg_len=20, cmsg_level=SOL_IP, cmsg_type=IP_TTL, cmsg_data=[{t}]}}"
                                ));
                            }
                            ControlMessageOwned::Ipv6HopLimit(t) => {
                                got.ttl = u8::try_from(t).ok();
                                controllen += 24;
                                cmsgs.push(format!(
                                    "{{cmsg_len=20, cmsg_level=SOL_IPV6, cmsg_type=IPV6_HOPLIMIT, cmsg_data=[{t}]}}"
                                ));
                            }
                            _ => cmsgs.push("{…}".into()),
                        }
                    }
                }
                (got, cmsgs, controllen)
            },
        )
    };
    rec.end(pending, result, |r| match r {
        Ok((got, cmsgs, controllen)) => {
            let name = got.from.map_or("NULL".to_string(), |a| names::sockaddr(&a));
            // The kernel was offered a whole sockaddr_storage and says how
            // much it filled: strace's `128 => 16`.
            let offered = std::mem::size_of::<libc::sockaddr_storage>();
            let namelen = match got.from.map(|a| names::sockaddr_len(&a)) {
                Some(n) if n != offered => format!("{offered} => {n}"),
                _ => offered.to_string(),
            };
            let msg = format!(
                "{{msg_name={name}, msg_namelen={namelen}, msg_iov=[{{iov_base={}, iov_len={cap}}}], msg_iovlen=1, msg_control=[{}], msg_controllen={}, msg_flags={}}}",
                quote(&buf[..got.len.min(cap)]),
                cmsgs.join(", "),
                controllen,
                if got.truncated { "MSG_TRUNC" } else { "0" }
            );
            let note = explain(got, &buf[..got.len.min(cap)]);
            Shown::new(vec![raw.to_string(), msg, "0".into()], got.len as i64, note)
        }
        Err(_) => Shown::new(vec![raw.to_string(), "0x…".into(), "0".into()], -1, ""),
    })
    .map(|(got, _, _)| got)
}

/// Corresponds to `ioctl(fd, SIOCGIFINDEX, &ifr)`: an interface's index by
/// name — what `if_nametoindex(3)` does on a socket of its own.
/// See <https://man7.org/linux/man-pages/man7/netdevice.7.html>.
///
/// # Errors
/// `ENODEV` (no such interface).
pub fn ioctl_siocgifindex(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    ifname: &str,
) -> Result<i32, SysError> {
    let raw = fd.as_raw_fd();
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(SysError {
            call: "ioctl",
            errno: Errno::EINVAL,
        });
    }
    // SAFETY: ifreq is plain old data; all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let name_arg = format!("ifr_name={}", quote(bytes));
    rec.call(
        Call::new("ioctl"),
        || {
            // SAFETY: `ifr` is a valid, NUL-terminated ifreq that outlives
            // the call; SIOCGIFINDEX writes only ifr_ifindex inside it.
            let rc = unsafe { libc::ioctl(raw, libc::SIOCGIFINDEX, &mut ifr) };
            Errno::result(rc)?;
            // SAFETY: on success SIOCGIFINDEX filled the ifru_ifindex member.
            Ok(unsafe { ifr.ifr_ifru.ifru_ifindex })
        },
        |r| {
            let arg = match r {
                Ok(i) => format!("{{{name_arg}, ifr_ifindex={i}}}"),
                Err(_) => format!("{{{name_arg}}}"),
            };
            let note = match r {
                Ok(i) => format!("interface {ifname} has index {i}"),
                Err(_) => String::new(),
            };
            Shown::new(vec![raw.to_string(), "SIOCGIFINDEX".into(), arg], 0, note)
        },
    )
}

fn ethertype(p: u16) -> String {
    match i32::from(p) {
        libc::ETH_P_ALL => "htons(ETH_P_ALL)".into(),
        libc::ETH_P_IP => "htons(ETH_P_IP)".into(),
        libc::ETH_P_IPV6 => "htons(ETH_P_IPV6)".into(),
        libc::ETH_P_ARP => "htons(ETH_P_ARP)".into(),
        other => format!("htons({other:#06x})"),
    }
}

/// `sll_pkttype` → its C name, and the direction it means.
pub fn pkttype(t: u8) -> (&'static str, &'static str) {
    match t {
        libc::PACKET_HOST => ("PACKET_HOST", "in"),
        libc::PACKET_BROADCAST => ("PACKET_BROADCAST", "in (broadcast)"),
        libc::PACKET_MULTICAST => ("PACKET_MULTICAST", "in (multicast)"),
        libc::PACKET_OTHERHOST => ("PACKET_OTHERHOST", "for another host"),
        libc::PACKET_OUTGOING => ("PACKET_OUTGOING", "out"),
        _ => ("?", "?"),
    }
}

fn hatype(t: u16) -> String {
    match t {
        libc::ARPHRD_ETHER => "ARPHRD_ETHER".into(),
        libc::ARPHRD_LOOPBACK => "ARPHRD_LOOPBACK".into(),
        libc::ARPHRD_NETROM => "ARPHRD_NETROM".into(),
        other => other.to_string(),
    }
}

fn ifindex_arg(index: i32, ifname: Option<&str>) -> String {
    match ifname {
        Some(n) => format!("if_nametoindex({})", quote(n.as_bytes())),
        None => index.to_string(),
    }
}

/// Corresponds to `bind(2)` of an `AF_PACKET` socket to one interface:
/// from now on only its frames are queued.
/// See <https://man7.org/linux/man-pages/man7/packet.7.html>.
///
/// # Errors
/// `ENODEV`, `ENETDOWN`.
pub fn bind_ll(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    ifindex: i32,
    ifname: &str,
) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    // SAFETY: sockaddr_ll is plain old data; all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    let len = std::mem::size_of::<libc::sockaddr_ll>();
    rec.call(
        Call::new("bind"),
        || {
            // SAFETY: `sll` is a valid sockaddr_ll of `len` bytes that
            // outlives the call; bind(2) only reads it.
            let rc = unsafe {
                libc::bind(
                    raw,
                    std::ptr::from_ref(&sll).cast(),
                    len as libc::socklen_t,
                )
            };
            Errno::result(rc).map(drop)
        },
        |_| {
            let addr = format!(
                "{{sa_family=AF_PACKET, sll_protocol=htons(ETH_P_ALL), sll_ifindex={}, sll_hatype=ARPHRD_NETROM, sll_pkttype=PACKET_HOST, sll_halen=0}}",
                ifindex_arg(ifindex, Some(ifname))
            );
            let note = format!("fd {raw} now gets only the frames of {ifname}");
            Shown::new(vec![raw.to_string(), addr, len.to_string()], 0, note)
        },
    )
}

/// Where a captured frame came from: `struct sockaddr_ll`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFrom {
    pub protocol: u16,
    pub ifindex: i32,
    pub hatype: u16,
    pub pkttype: u8,
}

/// Corresponds to `recvfrom(2)` on an `AF_PACKET` socket: one frame, and
/// in the `sockaddr_ll` the interface and direction it went.
/// `explain` writes the note from the frame.
///
/// # Errors
/// `EAGAIN`, `EINTR`, `ENETDOWN`.
pub fn recvfrom_ll(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    bound: (i32, &str),
    explain: impl FnOnce(&LinkFrom, &[u8]) -> String,
) -> Result<(usize, LinkFrom), SysError> {
    let raw = fd.as_raw_fd();
    let cap = buf.len();
    let call = Call::new("recvfrom").may_wait(raw.to_string(), "waiting for a frame");
    let pending = rec.begin(call);
    let result = sock::recvfrom::<sock::LinkAddr>(raw, buf).map(|(n, a)| {
        let from = a.map_or(
            LinkFrom {
                protocol: 0,
                ifindex: 0,
                hatype: 0,
                pkttype: 0,
            },
            |a| LinkFrom {
                protocol: u16::from_be(a.protocol()),
                ifindex: a.ifindex() as i32,
                hatype: a.hatype(),
                pkttype: a.pkttype(),
            },
        );
        (n, from)
    });
    rec.end(pending, result, |r| match r {
        Ok((n, from)) => {
            let data = &buf[..(*n).min(cap)];
            let name = (from.ifindex == bound.0).then_some(bound.1);
            let addr = format!(
                "{{sa_family=AF_PACKET, sll_protocol={}, sll_ifindex={}, sll_hatype={}, sll_pkttype={}, sll_halen=6, sll_addr=[…]}}",
                ethertype(from.protocol),
                ifindex_arg(from.ifindex, name),
                hatype(from.hatype),
                pkttype(from.pkttype).0
            );
            let note = explain(from, data);
            Shown::new(
                vec![
                    raw.to_string(),
                    quote(data),
                    cap.to_string(),
                    "0".into(),
                    addr,
                    "[20]".into(),
                ],
                *n as i64,
                note,
            )
        }
        Err(_) => Shown::new(
            vec![
                raw.to_string(),
                "0x…".into(),
                cap.to_string(),
                "0".into(),
                "0x…".into(),
                "0x…".into(),
            ],
            -1,
            "",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_filter_reads_as_strace_prints_it() {
        // strace 6.1 on iputils ping: `~[ICMP_ECHOREPLY ICMP_DEST_UNREACH …]`.
        let data = !((1u32 << 0) | (1 << 3) | (1 << 11));
        assert_eq!(
            icmp_filter_notation(data),
            "~[ICMP_ECHOREPLY ICMP_DEST_UNREACH ICMP_TIME_EXCEEDED]"
        );
        assert_eq!(icmp_filter_notation(!(1u32 << 31)), "~[0x80000000]");
    }
}
