//! The descriptor table of this process, described for `--fds`.
//!
//! Reads `/proc/self/fd` (link targets), `/proc/self/fdinfo` (open flags, to
//! tell a pipe's read end from its write end) and `/proc/net/*` (to turn
//! `socket:[INODE]` into protocol, addresses and state). These reads are the
//! display's own business, not the experiment's, so they are not traced.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::render::event::FdEntry;

/// The current process's open descriptors, in order.
pub fn table() -> Vec<FdEntry> {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut entries: Vec<FdEntry> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?.to_string_lossy().into_owned();
            Some((fd, target))
        })
        // read_dir's own descriptor on /proc/PID/fd is not the experiment's.
        .filter(|(_, t)| !(t.starts_with("/proc/") && t.ends_with("/fd")))
        .map(|(fd, target)| {
            let desc = describe(fd, &target);
            FdEntry { fd, target, desc }
        })
        .collect();
    entries.sort_by_key(|e| e.fd);
    entries
}

fn describe(fd: i32, target: &str) -> String {
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
        if let Some(sock) = inode.parse().ok().and_then(find_socket) {
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
fn find_socket(inode: u64) -> Option<String> {
    const INET: &[(&str, &str)] = &[
        ("/proc/net/tcp", "TCP"),
        ("/proc/net/tcp6", "TCP"),
        ("/proc/net/udp", "UDP"),
        ("/proc/net/udp6", "UDP"),
        ("/proc/net/raw", "RAW"),
        ("/proc/net/raw6", "RAW"),
    ];
    for (path, proto) in INET {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[9].parse::<u64>().ok() != Some(inode) {
                continue;
            }
            let local = parse_addr(f[1])?;
            let remote = parse_addr(f[2])?;
            let state = u8::from_str_radix(f[3], 16).ok()?;
            let state = if *proto == "TCP" {
                tcp_state(state)
            } else {
                ""
            };
            let mut s = format!("{proto} {local}");
            if !remote.ip().is_unspecified() || remote.port() != 0 {
                s.push_str(&format!(" -> {remote}"));
            }
            if !state.is_empty() {
                s.push(' ');
                s.push_str(state);
            }
            return Some(s);
        }
    }
    if let Ok(text) = fs::read_to_string("/proc/net/unix") {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 7 && f[6].parse::<u64>().ok() == Some(inode) {
                let path = f.get(7).copied().unwrap_or("(unnamed)");
                return Some(format!("UNIX {path}"));
            }
        }
    }
    if let Ok(text) = fs::read_to_string("/proc/net/packet") {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 9 && f[8].parse::<u64>().ok() == Some(inode) {
                return Some(format!("PACKET proto={} ifindex={}", f[3], f[4]));
            }
        }
    }
    None
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

fn tcp_state(s: u8) -> &'static str {
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
    fn table_lists_stdin() {
        assert!(table().iter().any(|e| e.fd == 0 || e.fd == 1 || e.fd == 2));
    }
}
