//! C names for constants, and strace's notation for buffers and flag sets.
//!
//! nix's `Debug` prints `Inet` or `O_RDONLY | O_CLOEXEC`; strace prints
//! `AF_INET` and `O_RDONLY|O_CLOEXEC`. Everything printed as an argument goes
//! through here so the two agree.

use std::net::SocketAddr;

/// How many bytes of a buffer strace shows before `...` (its `-s` default).
pub const STRACE_STRLEN: usize = 32;

static STRSIZE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(STRACE_STRLEN);

/// `n` with its noun in the right number: "1 byte", "2 bytes".
pub fn count(n: impl std::fmt::Display + PartialEq<usize> + Copy, one: &str, many: &str) -> String {
    if n == 1usize {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `n` bytes: "1 byte", "64 bytes".
pub fn bytes(n: usize) -> String {
    count(n, "byte", "bytes")
}

/// Sets how many bytes of a buffer are shown (`-s N`, as strace's).
pub fn set_strsize(n: usize) {
    STRSIZE.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// A byte buffer as strace prints it: quoted, C escapes, octal for the rest,
/// cut after `-s` bytes (32 by default) with `...`.
pub fn quote(bytes: &[u8]) -> String {
    quote_max(bytes, STRSIZE.load(std::sync::atomic::Ordering::Relaxed))
}

/// [`quote`] with a chosen cut-off.
pub fn quote_max(bytes: &[u8], max: usize) -> String {
    let shown = &bytes[..bytes.len().min(max)];
    let mut s = String::with_capacity(shown.len() + 8);
    s.push('"');
    for (i, &b) in shown.iter().enumerate() {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x0b => s.push_str("\\v"),
            0x0c => s.push_str("\\f"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                // strace uses the shortest octal form unless a digit follows.
                let next_is_digit = shown.get(i + 1).is_some_and(|n| n.is_ascii_digit());
                if next_is_digit {
                    s.push_str(&format!("\\{b:03o}"));
                } else {
                    s.push_str(&format!("\\{b:o}"));
                }
            }
        }
    }
    s.push('"');
    if bytes.len() > max {
        s.push_str("...");
    }
    s
}

/// Data for a human to read: UTF-8 as is when it is valid and printable,
/// otherwise escaped like [`quote`] but not cut.
pub fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => s.to_string(),
        _ => {
            let q = quote_max(bytes, usize::MAX);
            q[1..q.len() - 1].to_string()
        }
    }
}

/// Joins the names of the bits of `value` set in `table`; leftover bits in hex.
pub fn flags(value: i64, table: &[(i64, &str)], zero: &str) -> String {
    if value == 0 {
        return zero.to_string();
    }
    let mut parts = Vec::new();
    let mut rest = value;
    for &(bit, name) in table {
        if bit != 0 && rest & bit == bit {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// `open(2)` flags as strace prints them: the access mode first, then the rest.
pub fn open_flags(value: i32) -> String {
    let acc = match value & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        _ => "O_RDWR",
    };
    let rest = i64::from(value & !libc::O_ACCMODE & !0o100000); // O_LARGEFILE is noise
    if rest == 0 {
        acc.to_string()
    } else {
        format!("{acc}|{}", flags(rest, OPEN_FLAGS, ""))
    }
}

const OPEN_FLAGS: &[(i64, &str)] = &[
    (libc::O_CREAT as i64, "O_CREAT"),
    (libc::O_EXCL as i64, "O_EXCL"),
    (libc::O_NOCTTY as i64, "O_NOCTTY"),
    (libc::O_TRUNC as i64, "O_TRUNC"),
    (libc::O_APPEND as i64, "O_APPEND"),
    (libc::O_NONBLOCK as i64, "O_NONBLOCK"),
    (libc::O_NOFOLLOW as i64, "O_NOFOLLOW"),
    (libc::O_CLOEXEC as i64, "O_CLOEXEC"),
    // strace 6.1 names O_DIRECTORY last: `O_RDONLY|O_CLOEXEC|O_DIRECTORY`.
    (libc::O_DIRECTORY as i64, "O_DIRECTORY"),
];

/// A file mode as strace prints it for mknod: `S_IFIFO|0600`.
pub fn file_mode(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFIFO => "S_IFIFO|",
        libc::S_IFREG => "S_IFREG|",
        libc::S_IFDIR => "S_IFDIR|",
        libc::S_IFLNK => "S_IFLNK|",
        libc::S_IFSOCK => "S_IFSOCK|",
        libc::S_IFCHR => "S_IFCHR|",
        libc::S_IFBLK => "S_IFBLK|",
        _ => "",
    };
    format!("{kind}{:04o}", mode & 0o7777)
}

/// A signal number as its C name (`SIGPIPE`).
pub fn signal(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => sig.to_string(),
    }
}

/// `poll(2)` event bits: `POLLIN|POLLHUP`.
pub fn poll_events(ev: i16) -> String {
    const T: &[(i64, &str)] = &[
        (libc::POLLIN as i64, "POLLIN"),
        (libc::POLLPRI as i64, "POLLPRI"),
        (libc::POLLOUT as i64, "POLLOUT"),
        (libc::POLLERR as i64, "POLLERR"),
        (libc::POLLHUP as i64, "POLLHUP"),
        (libc::POLLNVAL as i64, "POLLNVAL"),
        (libc::POLLRDHUP as i64, "POLLRDHUP"),
    ];
    flags(i64::from(ev), T, "0")
}

/// A socket address as strace prints it.
pub fn sockaddr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{{sa_family=AF_INET, sin_port=htons({}), sin_addr=inet_addr(\"{}\")}}",
            a.port(),
            a.ip()
        ),
        SocketAddr::V6(a) => format!(
            "{{sa_family=AF_INET6, sin6_port=htons({}), sin6_flowinfo=htonl({}), inet_pton(AF_INET6, \"{}\", &sin6_addr), sin6_scope_id={}}}",
            a.port(),
            a.flowinfo(),
            a.ip(),
            a.scope_id()
        ),
    }
}

/// The size strace shows after a sockaddr: 16 for IPv4, 28 for IPv6.
pub fn sockaddr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
        SocketAddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
    }
}

/// Address family constant → C name.
pub fn address_family(af: i32) -> String {
    match af {
        libc::AF_INET => "AF_INET".into(),
        libc::AF_INET6 => "AF_INET6".into(),
        libc::AF_UNIX => "AF_UNIX".into(),
        libc::AF_PACKET => "AF_PACKET".into(),
        libc::AF_NETLINK => "AF_NETLINK".into(),
        other => other.to_string(),
    }
}

/// `setsockopt(2)` level → C name.
pub fn socket_level(level: i32) -> String {
    match level {
        libc::SOL_SOCKET => "SOL_SOCKET".into(),
        libc::IPPROTO_IP => "SOL_IP".into(),
        libc::IPPROTO_IPV6 => "SOL_IPV6".into(),
        libc::IPPROTO_TCP => "SOL_TCP".into(),
        libc::IPPROTO_UDP => "SOL_UDP".into(),
        libc::SOL_ICMPV6 => "SOL_ICMPV6".into(),
        libc::SOL_RAW => "SOL_RAW".into(),
        libc::SOL_PACKET => "SOL_PACKET".into(),
        other => other.to_string(),
    }
}

/// `setsockopt(2)` option name → C name, given its level.
pub fn socket_option(level: i32, name: i32) -> String {
    let known = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => "SO_REUSEADDR",
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => "SO_REUSEPORT",
        (libc::SOL_SOCKET, libc::SO_LINGER) => "SO_LINGER",
        // strace 6 says SO_RCVTIMEO_OLD: the 64-bit-time_t variant got a new number.
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => "SO_RCVTIMEO_OLD",
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => "SO_SNDTIMEO_OLD",
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => "SO_RCVBUF",
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => "SO_SNDBUF",
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => "SO_KEEPALIVE",
        (libc::SOL_SOCKET, libc::SO_BROADCAST) => "SO_BROADCAST",
        (libc::SOL_SOCKET, libc::SO_ERROR) => "SO_ERROR",
        (libc::SOL_SOCKET, libc::SO_BINDTODEVICE) => "SO_BINDTODEVICE",
        (libc::SOL_SOCKET, libc::SO_PEERCRED) => "SO_PEERCRED",
        (libc::IPPROTO_TCP, libc::TCP_SYNCNT) => "TCP_SYNCNT",
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => "TCP_USER_TIMEOUT",
        // strace ≥ 5.x names option 35 on x86-64 SO_TIMESTAMPNS_OLD (the
        // y2038-safe one is SO_TIMESTAMPNS_NEW); glibc's is the old one on 64-bit.
        (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS) => "SO_TIMESTAMPNS_OLD",
        (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER) => "SO_ATTACH_FILTER",
        (libc::SOL_PACKET, libc::PACKET_STATISTICS) => "PACKET_STATISTICS",
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => "TCP_NODELAY",
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) => "IPV6_V6ONLY",
        (libc::IPPROTO_IP, libc::IP_TTL) => "IP_TTL",
        (libc::IPPROTO_IP, libc::IP_RECVERR) => "IP_RECVERR",
        (libc::IPPROTO_IP, libc::IP_RECVTTL) => "IP_RECVTTL",
        (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) => "IPV6_UNICAST_HOPS",
        (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT) => "IPV6_RECVHOPLIMIT",
        // <linux/icmp.h>; libc has no constant for it.
        (libc::SOL_RAW, 1) => "ICMP_FILTER",
        // ICMP6_FILTER (SOL_ICMPV6, 1) stays a number: strace 6.1 has no name for it.
        _ => "",
    };
    if known.is_empty() {
        name.to_string()
    } else {
        known.to_string()
    }
}

/// `send(2)`/`recv(2)` flags: `MSG_NOSIGNAL|MSG_DONTWAIT`, or `0`.
pub fn msg_flags(fl: i32) -> String {
    const T: &[(i64, &str)] = &[
        (libc::MSG_OOB as i64, "MSG_OOB"),
        (libc::MSG_PEEK as i64, "MSG_PEEK"),
        (libc::MSG_DONTROUTE as i64, "MSG_DONTROUTE"),
        (libc::MSG_TRUNC as i64, "MSG_TRUNC"),
        (libc::MSG_DONTWAIT as i64, "MSG_DONTWAIT"),
        (libc::MSG_WAITALL as i64, "MSG_WAITALL"),
        (libc::MSG_NOSIGNAL as i64, "MSG_NOSIGNAL"),
        (libc::MSG_MORE as i64, "MSG_MORE"),
        (libc::MSG_CTRUNC as i64, "MSG_CTRUNC"),
        (libc::MSG_CMSG_CLOEXEC as i64, "MSG_CMSG_CLOEXEC"),
    ];
    flags(i64::from(fl), T, "0")
}

/// `shutdown(2)`'s `how` → C name.
pub fn shutdown_how(how: i32) -> String {
    match how {
        libc::SHUT_RD => "SHUT_RD".into(),
        libc::SHUT_WR => "SHUT_WR".into(),
        libc::SHUT_RDWR => "SHUT_RDWR".into(),
        other => other.to_string(),
    }
}

/// epoll event bits: `EPOLLIN|EPOLLRDHUP`.
pub fn epoll_events(ev: u32) -> String {
    const T: &[(i64, &str)] = &[
        (libc::EPOLLIN as i64, "EPOLLIN"),
        (libc::EPOLLPRI as i64, "EPOLLPRI"),
        (libc::EPOLLOUT as i64, "EPOLLOUT"),
        (libc::EPOLLERR as i64, "EPOLLERR"),
        (libc::EPOLLHUP as i64, "EPOLLHUP"),
        (libc::EPOLLRDHUP as i64, "EPOLLRDHUP"),
        (libc::EPOLLET as i64 & 0xffff_ffff, "EPOLLET"),
    ];
    flags(i64::from(ev), T, "0")
}

/// `epoll_ctl(2)`'s `op` → C name.
pub fn epoll_op(op: i32) -> String {
    match op {
        libc::EPOLL_CTL_ADD => "EPOLL_CTL_ADD".into(),
        libc::EPOLL_CTL_MOD => "EPOLL_CTL_MOD".into(),
        libc::EPOLL_CTL_DEL => "EPOLL_CTL_DEL".into(),
        other => other.to_string(),
    }
}

/// Socket type with its flags → `SOCK_STREAM|SOCK_CLOEXEC`.
pub fn socket_type(ty: i32) -> String {
    let base = match ty & 0xf {
        libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
        libc::SOCK_RAW => "SOCK_RAW".to_string(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".to_string(),
        other => other.to_string(),
    };
    let mut s = base;
    if ty & libc::SOCK_NONBLOCK != 0 {
        s.push_str("|SOCK_NONBLOCK");
    }
    if ty & libc::SOCK_CLOEXEC != 0 {
        s.push_str("|SOCK_CLOEXEC");
    }
    s
}

/// Protocol number → C name, given the family.
pub fn protocol(af: i32, proto: i32) -> String {
    match (af, proto) {
        (libc::AF_NETLINK, libc::NETLINK_ROUTE) => "NETLINK_ROUTE".into(),
        (_, libc::IPPROTO_TCP) if af != libc::AF_PACKET => "IPPROTO_TCP".into(),
        (_, libc::IPPROTO_UDP) if af != libc::AF_PACKET => "IPPROTO_UDP".into(),
        (_, libc::IPPROTO_ICMP) if af != libc::AF_PACKET => "IPPROTO_ICMP".into(),
        (_, libc::IPPROTO_ICMPV6) if af != libc::AF_PACKET => "IPPROTO_ICMPV6".into(),
        (libc::AF_PACKET, p) => {
            let host = u16::from_be(p as u16);
            if i32::from(host) == libc::ETH_P_ALL {
                "htons(ETH_P_ALL)".into()
            } else {
                format!("htons({host:#06x})")
            }
        }
        (_, 0) => "0".into(),
        (_, p) => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_like_strace() {
        assert_eq!(quote(b"hello\n"), r#""hello\n""#);
        assert_eq!(quote(b"\xff\x001"), r#""\377\0001""#);
        assert_eq!(quote(b"a\"b\\"), r#""a\"b\\""#);
        assert_eq!(quote(&[b'x'; 40]), format!("\"{}\"...", "x".repeat(32)));
    }

    #[test]
    fn open_flags_put_access_mode_first() {
        assert_eq!(
            open_flags(libc::O_RDONLY | libc::O_CLOEXEC),
            "O_RDONLY|O_CLOEXEC"
        );
        assert_eq!(open_flags(libc::O_WRONLY), "O_WRONLY");
        assert_eq!(
            open_flags(libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW),
            "O_WRONLY|O_NONBLOCK|O_NOFOLLOW"
        );
    }

    #[test]
    fn modes_signals_and_sockaddrs() {
        assert_eq!(file_mode(libc::S_IFIFO | 0o600), "S_IFIFO|0600");
        assert_eq!(signal(libc::SIGPIPE), "SIGPIPE");
        assert_eq!(poll_events(libc::POLLIN | libc::POLLHUP), "POLLIN|POLLHUP");
        let a: SocketAddr = "127.0.0.1:8989".parse().expect("valid");
        assert_eq!(
            sockaddr(&a),
            r#"{sa_family=AF_INET, sin_port=htons(8989), sin_addr=inet_addr("127.0.0.1")}"#
        );
        assert_eq!(sockaddr_len(&a), 16);
        assert_eq!(
            socket_type(libc::SOCK_STREAM | libc::SOCK_CLOEXEC),
            "SOCK_STREAM|SOCK_CLOEXEC"
        );
    }

    #[test]
    fn socket_options_flags_and_epoll() {
        assert_eq!(socket_level(libc::SOL_SOCKET), "SOL_SOCKET");
        assert_eq!(
            socket_option(libc::SOL_SOCKET, libc::SO_REUSEADDR),
            "SO_REUSEADDR"
        );
        assert_eq!(socket_level(libc::SOL_RAW), "SOL_RAW");
        assert_eq!(socket_option(libc::SOL_RAW, 1), "ICMP_FILTER");
        assert_eq!(socket_option(libc::SOL_ICMPV6, 1), "1");
        assert_eq!(
            socket_option(libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT),
            "IPV6_RECVHOPLIMIT"
        );
        assert_eq!(msg_flags(libc::MSG_NOSIGNAL), "MSG_NOSIGNAL");
        assert_eq!(msg_flags(0), "0");
        assert_eq!(shutdown_how(libc::SHUT_WR), "SHUT_WR");
        assert_eq!(
            epoll_events((libc::EPOLLIN | libc::EPOLLRDHUP) as u32),
            "EPOLLIN|EPOLLRDHUP"
        );
        assert_eq!(epoll_op(libc::EPOLL_CTL_DEL), "EPOLL_CTL_DEL");
    }

    #[test]
    fn printable_keeps_utf8_and_escapes_bytes() {
        assert_eq!(printable("复读机".as_bytes()), "复读机");
        assert_eq!(printable(b"a\xffb"), r"a\377b");
    }
}
