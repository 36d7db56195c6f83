//! The descriptor table of this process, described for `--fds`.
//!
//! Reads `/proc/self/fd` (link targets), `/proc/self/fdinfo` (open flags, to
//! tell a pipe's read end from its write end), `/proc/net/*` (to turn
//! `socket:[INODE]` into protocol, addresses and state) and
//! `/proc/self/maps` (shared-memory mappings: /dev/shm objects and memfds).
//! The peer of an AF_UNIX socket is in no file under /proc: when the table
//! holds one, a single NETLINK_SOCK_DIAG dump (what `ss -x` asks) says
//! which socket each is connected to. These reads are the display's own
//! business, not the experiment's, so they are not traced.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::collections::HashMap;

use crate::render::event::{FdEntry, MapEntry};

/// The current process's open descriptors, in order.
pub fn table() -> Vec<FdEntry> {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut peers = Peers::NotAsked;
    let mut entries: Vec<FdEntry> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?.to_string_lossy().into_owned();
            Some((fd, target))
        })
        // read_dir's own descriptor on /proc/PID/fd is not the experiment's,
        // nor are ipclab's output descriptors (-o, --diagram, --html).
        .filter(|(fd, t)| {
            let listing = t.starts_with("/proc/") && t.ends_with("/fd");
            !(listing || crate::os::is_own_fd(*fd))
        })
        .collect::<Vec<(i32, String)>>()
        .into_iter()
        .map(|(fd, target)| {
            let desc = describe(fd, &target, &mut peers);
            FdEntry { fd, target, desc }
        })
        .collect();
    entries.sort_by_key(|e| e.fd);
    entries
}

/// The peers of AF_UNIX sockets, asked for once per table when needed.
enum Peers {
    NotAsked,
    Known(HashMap<u64, u64>),
}

fn describe(fd: i32, target: &str, peers: &mut Peers) -> String {
    if target.starts_with("pipe:") {
        let end = match open_flags(fd) {
            Some(f) if f & libc::O_ACCMODE == libc::O_WRONLY => "write end",
            Some(_) => "read end",
            None => "pipe",
        };
        // A FIFO opened by path shows its path instead, so this is anonymous.
        return format!("{target} ({end})");
    }
    if let Some(inode) = target
        .strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
    {
        if let Some(sock) = inode.parse().ok().and_then(|i| find_socket(i, peers)) {
            return format!("{target} {sock}");
        }
        return target.to_string();
    }
    if let Ok(meta) = fs::metadata(target) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_fifo() {
            let dir = match open_flags(fd) {
                Some(f) if f & libc::O_ACCMODE == libc::O_WRONLY => "write end",
                Some(f) if f & libc::O_ACCMODE == libc::O_RDWR => "read+write",
                _ => "read end",
            };
            return format!("{target} (FIFO, {dir})");
        }
    }
    target.to_string()
}

fn open_flags(fd: i32) -> Option<i32> {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let line = info.lines().find(|l| l.starts_with("flags:"))?;
    i32::from_str_radix(line.trim_start_matches("flags:").trim(), 8).ok()
}

/// Looks a socket inode up in the kernel's tables.
fn find_socket(inode: u64, peers: &mut Peers) -> Option<String> {
    let sock = socket_info(inode, None)?;
    let peer = match &sock {
        Socket::Unix(_) => {
            if matches!(peers, Peers::NotAsked) {
                *peers = Peers::Known(unix_peers());
            }
            match peers {
                Peers::Known(m) => m.get(&inode).copied(),
                Peers::NotAsked => None,
            }
        }
        _ => None,
    };
    Some(sock.describe(peer))
}

/// The /proc/net tables that list sockets, and the protocol each shows.
const TABLES: &[(&str, &str)] = &[
    ("/proc/net/tcp", "TCP"),
    ("/proc/net/tcp6", "TCP"),
    ("/proc/net/udp", "UDP"),
    ("/proc/net/udp6", "UDP"),
    ("/proc/net/raw", "RAW"),
    ("/proc/net/raw6", "RAW"),
    ("/proc/net/unix", "UNIX"),
    ("/proc/net/packet", "PACKET"),
];

/// What the kernel's tables say about one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    Inet {
        /// `/proc/net/tcp6`…: where it was found (a hint for the next look).
        table: &'static str,
        proto: &'static str,
        local: SocketAddr,
        remote: SocketAddr,
        /// TCP's state (`LISTEN`, `ESTABLISHED`…); empty for UDP and raw.
        state: &'static str,
    },
    Unix(UnixLine),
    Packet {
        proto: String,
        ifindex: String,
    },
}

impl Socket {
    /// The table it was found in.
    pub fn table(&self) -> &'static str {
        match self {
            Socket::Inet { table, .. } => table,
            Socket::Unix(_) => "/proc/net/unix",
            Socket::Packet { .. } => "/proc/net/packet",
        }
    }

    /// `TCP`, `UDP`, `RAW`, `UNIX` or `PACKET`.
    pub fn proto(&self) -> &'static str {
        match self {
            Socket::Inet { proto, .. } => proto,
            Socket::Unix(_) => "UNIX",
            Socket::Packet { .. } => "PACKET",
        }
    }

    /// Its own address, when it has one.
    pub fn local(&self) -> Option<String> {
        match self {
            Socket::Inet { local, .. } => Some(local.to_string()),
            Socket::Unix(u) => (!u.name.is_empty()).then(|| u.name.clone()),
            Socket::Packet { .. } => None,
        }
    }

    /// The address it is connected to, when it is.
    pub fn remote(&self) -> Option<String> {
        match self {
            Socket::Inet { remote, .. } if !remote.ip().is_unspecified() || remote.port() != 0 => {
                Some(remote.to_string())
            }
            _ => None,
        }
    }

    /// An AF_UNIX socket that is connected (its peer can be asked for).
    pub fn unix_connected(&self) -> bool {
        matches!(self, Socket::Unix(u) if !u.listening && u.state == 3)
    }

    /// As `--fds` shows it: `TCP 127.0.0.1:8989 -> 127.0.0.1:4242 ESTABLISHED`.
    fn describe(&self, peer: Option<u64>) -> String {
        match self {
            Socket::Inet {
                proto,
                local,
                state,
                ..
            } => {
                let mut s = format!("{proto} {local}");
                if let Some(r) = self.remote() {
                    s.push_str(&format!(" -> {r}"));
                }
                if !state.is_empty() {
                    s.push(' ');
                    s.push_str(state);
                }
                s
            }
            Socket::Unix(u) => u.describe(peer),
            Socket::Packet { proto, ifindex } => format!("PACKET proto={proto} ifindex={ifindex}"),
        }
    }
}

/// Looks a socket inode up in /proc/net: in `only` (a table where it was
/// found before), or in each table in turn.
pub fn socket_info(inode: u64, only: Option<&str>) -> Option<Socket> {
    for (path, proto) in TABLES {
        if only.is_some_and(|o| o != *path) {
            continue;
        }
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        let found = match *proto {
            "UNIX" => text
                .lines()
                .skip(1)
                .filter_map(UnixLine::parse)
                .find(|u| u.inode == inode)
                .map(Socket::Unix),
            "PACKET" => text.lines().skip(1).find_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f.len() >= 9 && f[8].parse::<u64>().ok() == Some(inode)).then(|| Socket::Packet {
                    proto: f[3].to_string(),
                    ifindex: f[4].to_string(),
                })
            }),
            _ => text
                .lines()
                .skip(1)
                .find_map(|line| inet_line(line, inode, path, proto)),
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// One line of /proc/net/{tcp,udp,raw}[6], if it is socket `inode`'s.
fn inet_line(line: &str, inode: u64, table: &'static str, proto: &'static str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[9].parse::<u64>().ok() != Some(inode) {
        return None;
    }
    let state = u8::from_str_radix(f[3], 16).ok()?;
    Some(Socket::Inet {
        table,
        proto,
        local: parse_addr(f[1])?,
        remote: parse_addr(f[2])?,
        state: if proto == "TCP" { tcp_state(state) } else { "" },
    })
}

/// One line of /proc/net/unix:
/// `Num RefCount Protocol Flags Type St Inode [Path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixLine {
    listening: bool,
    ty: u16,
    state: u8,
    inode: u64,
    /// A path, `@name` (abstract), or empty (unnamed).
    name: String,
}

impl UnixLine {
    fn parse(line: &str) -> Option<UnixLine> {
        let mut it = line.split_whitespace();
        let f: Vec<&str> = it.by_ref().take(7).collect();
        if f.len() < 7 {
            return None;
        }
        let flags = u32::from_str_radix(f[3], 16).ok()?;
        Some(UnixLine {
            // __SO_ACCEPTCON: the socket listens.
            listening: flags & 0x1_0000 != 0,
            ty: u16::from_str_radix(f[4], 16).ok()?,
            state: u8::from_str_radix(f[5], 16).ok()?,
            inode: f[6].parse().ok()?,
            name: it.collect::<Vec<_>>().join(" "),
        })
    }

    /// `UNIX STREAM /tmp/x/sock LISTEN`, `UNIX STREAM CONNECTED peer=socket:[N]`.
    fn describe(&self, peer: Option<u64>) -> String {
        let ty = match i32::from(self.ty) {
            libc::SOCK_STREAM => "STREAM".to_string(),
            libc::SOCK_DGRAM => "DGRAM".to_string(),
            libc::SOCK_SEQPACKET => "SEQPACKET".to_string(),
            t => t.to_string(),
        };
        let state = match (self.listening, self.state) {
            (true, _) => "LISTEN",
            (_, 1) => "UNCONNECTED",
            (_, 2) => "CONNECTING",
            (_, 3) => "CONNECTED",
            (_, 4) => "DISCONNECTING",
            _ => "?",
        };
        let mut s = format!("UNIX {ty}");
        if !self.name.is_empty() {
            s.push(' ');
            s.push_str(&self.name);
        }
        s.push(' ');
        s.push_str(state);
        if let Some(p) = peer.filter(|&p| p != 0) {
            s.push_str(&format!(" peer=socket:[{p}]"));
        }
        s
    }
}

pub use super::diag::unix_peers;

/// The shared-memory mappings of this process (POSIX shm objects under
/// /dev/shm and memfds), from /proc/self/maps.
pub fn shared_maps() -> Vec<MapEntry> {
    let Ok(text) = fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    text.lines().filter_map(map_line).collect()
}

/// `7f…-7f… rw-s 00000000 00:1a 42 /dev/shm/x (deleted)` → its range,
/// permissions and path, when the path is a shared-memory object.
fn map_line(line: &str) -> Option<MapEntry> {
    let mut it = line.split_whitespace();
    let range = it.next()?;
    let perms = it.next()?;
    let _offset = it.next()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.collect::<Vec<_>>().join(" ");
    if !(path.starts_with("/dev/shm/") || path.starts_with("/memfd:")) {
        return None;
    }
    Some(MapEntry {
        range: range.to_string(),
        perms: perms.to_string(),
        path,
    })
}

/// `0100007F:231D` or the 32-hex-digit IPv6 form → a socket address.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.swap_bytes(),
        )),
        32 => {
            // Four 32-bit words, each in host (little-endian) byte order.
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.swap_bytes().to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

pub(super) fn tcp_state(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_addresses() {
        assert_eq!(
            parse_addr("0100007F:231D"),
            Some("127.0.0.1:8989".parse().expect("valid"))
        );
        assert_eq!(
            parse_addr("00000000000000000000000001000000:0016"),
            Some("[::1]:22".parse().expect("valid"))
        );
    }

    #[test]
    fn unix_lines_read_as_ss_shows_them() {
        let l = UnixLine::parse(
            "0000000078fba37f: 00000002 00000000 00010000 0001 01 1172 /tmp/x/sock",
        )
        .expect("parses");
        assert_eq!(l.describe(None), "UNIX STREAM /tmp/x/sock LISTEN");
        let c = UnixLine::parse("0000000071080b4c: 00000003 00000000 00000000 0001 03  1173")
            .expect("parses");
        assert_eq!(
            c.describe(Some(1174)),
            "UNIX STREAM CONNECTED peer=socket:[1174]"
        );
        let d =
            UnixLine::parse("0: 00000002 00000000 00000000 0002 01 9 @ipclab-1").expect("parses");
        assert_eq!(d.describe(Some(0)), "UNIX DGRAM @ipclab-1 UNCONNECTED");
    }

    #[test]
    fn only_shared_memory_mappings_are_kept() {
        let m = map_line(
            "7f6f817b7000-7f6f817b8000 rw-s 00000000 00:1a 42 /dev/shm/ipclab-1 (deleted)",
        )
        .expect("a shm mapping");
        assert_eq!(m.path, "/dev/shm/ipclab-1 (deleted)");
        assert_eq!(m.perms, "rw-s");
        assert!(
            map_line("7f6f817b7000-7f6f817b8000 rw-s 00000000 00:01 5 /dev/zero (deleted)")
                .is_none()
        );
        assert!(
            map_line("7f6f817b7000-7f6f817b8000 r-xp 00000000 08:01 9 /usr/lib/libc.so.6")
                .is_none()
        );
        assert!(map_line(
            "7f6f817b7000-7f6f817b8000 rw-s 00000000 00:01 7 /memfd:ipclab (deleted)"
        )
        .is_some());
    }

    #[test]
    fn table_lists_stdin() {
        assert!(table().iter().any(|e| e.fd == 0 || e.fd == 1 || e.fd == 2));
    }
}
