//! ICMP echo, as ping(8) does it: socket(SOCK_RAW, IPPROTO_ICMP[V6]) →
//! (under sudo: setgroups → setresgid → setresuid, checked) → setsockopt
//! ICMP_FILTER / ICMP6_FILTER → setsockopt SO_TIMESTAMPNS → sendto every
//! -i seconds, and between sends ppoll → recvmsg … → after the last send,
//! ppoll → recvmsg until every request is answered or -W has passed →
//! statistics → close.
//!
//! The schedule is iputils': a request goes out every -i seconds whatever
//! came back, so a lost reply never delays the next request; replies are
//! matched to their request by id and seq whenever they arrive. Without
//! -c it runs until Ctrl-C (or -w), which ends the wait (EINTR) and prints
//! the statistics. iputils' options keep their meaning: -q, -w, -n, -D, -O,
//! -p, -I, -f.
//!
//! With `--dgram`, the unprivileged "ping socket"
//! socket(SOCK_DGRAM, IPPROTO_ICMP): allowed only to groups in
//! `net.ipv4.ping_group_range`; the kernel writes its own echo id and
//! checksum into each request and delivers replies without the IP header.
//!
//! Exit status: 0 when at least one reply came, 1 when none did (as
//! iputils); 130 after Ctrl-C (ipclab's rule for every command). A failed
//! syscall exits 1; bad arguments and a name that does not resolve exit 2.

mod report;
mod session;

use std::net::{IpAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::packet::icmp::Family;
use crate::sys::{file, socket};
use crate::trace::Recorder;

pub use report::format_rtt;

/// The hint under an EPERM from a raw or packet socket.
pub const RAW_HINT: &str = "needs root or CAP_NET_RAW; try sudo, \
    `sudo setcap cap_net_raw+ep $(command -v ipclab)`, --userns (a user and network \
    namespace of your own, loopback only), or --dgram (ping only)";

/// `--userns`: the namespace has only loopback, so HOST must be a loopback
/// address (or a name, resolved later). Returns the ids to map.
pub fn check_userns(host: &str) -> Result<crate::lab::net::userns::Ids> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !ip.is_loopback() {
            return Err(Error::usage(format!(
                "--userns {host}: the new network namespace has only loopback; give 127.0.0.1 (any 127.x.y.z) or ::1"
            )));
        }
    }
    Ok(crate::lab::net::userns::Ids::current())
}

/// Where to ping: a literal address, or a name for getaddrinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(IpAddr),
    Name(String),
}

/// What the command line asked of ping, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct PingOptions {
    pub family: Option<Family>,
    /// -c: None runs until Ctrl-C (or -w).
    pub count: Option<u32>,
    pub interval: f64,
    pub size: usize,
    pub ttl: Option<u16>,
    pub timeout: f64,
    pub dgram: bool,
    /// -w: stop after this many seconds, whatever was sent or received.
    pub deadline: Option<f64>,
    /// -q: only the PING line and the statistics.
    pub quiet: bool,
    /// -n: addresses only, never the name given.
    pub numeric: bool,
    /// -D: each reply line starts with its time since 1970.
    pub print_time: bool,
    /// -O: say when a request is still unanswered as the next one goes out.
    pub outstanding: bool,
    /// -p: up to 16 bytes (hex) that fill the data.
    pub pattern: Option<String>,
    /// -I: the interface (or source address) to send from.
    pub iface: Option<String>,
    /// -f: flood (root only).
    pub flood: bool,
}

/// A validated `ipclab ping` invocation.
#[derive(Debug, Clone)]
pub struct PingConfig {
    pub target: Target,
    pub family: Option<Family>,
    pub count: Option<u32>,
    pub interval: Duration,
    /// Bytes of echo data after the 8-byte ICMP header.
    pub size: usize,
    pub ttl: Option<u8>,
    /// How long to wait for each reply.
    pub timeout: Duration,
    pub dgram: bool,
    pub deadline: Option<Duration>,
    pub quiet: bool,
    pub numeric: bool,
    pub print_time: bool,
    pub outstanding: bool,
    pub pattern: Option<Vec<u8>>,
    pub iface: Option<Bind>,
    pub flood: bool,
    /// Drop back to SUDO_UID/SUDO_GID after opening the socket.
    pub drop_privileges: bool,
    /// Set ICMP_FILTER / ICMP6_FILTER on a raw socket (off: `--no-filter`).
    pub kernel_filter: bool,
}

/// Where -I binds the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// SO_BINDTODEVICE: this interface.
    Device(String),
    /// bind(): this source address.
    Source(IpAddr),
}

/// The largest echo data over IPv4: 65535 minus the IPv4 (20) and ICMP (8) headers.
pub const MAX_SIZE: usize = 65507;
/// Over IPv6: the payload length field (65535) covers the ICMPv6 header (8)
/// but not the 40-byte IPv6 header.
pub const MAX_SIZE_V6: usize = 65527;

impl PingConfig {
    /// Checks every value; each error names the value and what is valid.
    pub fn new(host: &str, o: &PingOptions) -> Result<Self> {
        if host.is_empty() {
            return Err(Error::usage(
                "HOST is empty: give an address like 127.0.0.1 or ::1, or a name",
            ));
        }
        let target = match host.parse::<IpAddr>() {
            Ok(ip) => {
                let fam = family_of(ip);
                if o.family.is_some_and(|f| f != fam) {
                    return Err(Error::usage(format!(
                        "{host} is an {} address, but {} was given",
                        if fam == Family::V4 { "IPv4" } else { "IPv6" },
                        if fam == Family::V4 { "-6" } else { "-4" }
                    )));
                }
                Target::Addr(ip)
            }
            Err(_) => Target::Name(host.to_string()),
        };
        if let Some(c) = o.count {
            if !(1..=1_000_000).contains(&c) {
                return Err(Error::usage(format!("-c {c}: give 1 to 1000000 requests")));
            }
        }
        // iputils' rule: anyone down to 2 ms, root (or -f) below that.
        // (geteuid only then: the tour builds this config between steps.)
        if !(0.0..=60.0).contains(&o.interval) {
            return Err(Error::usage(format!(
                "-i {}: give an interval from 0.002 to 60 seconds (below 0.002: root only)",
                o.interval
            )));
        }
        if o.interval < 0.002 && !o.flood && !nix::unistd::geteuid().is_root() {
            return Err(Error::usage(format!(
                "-i {}: cannot flood; minimal interval allowed for user is 2ms (iputils' rule: root may go lower)",
                o.interval
            )));
        }
        let v6 = matches!(target, Target::Addr(IpAddr::V6(_))) || o.family == Some(Family::V6);
        check_size(o.size, v6)?;
        let ttl = match o.ttl {
            None => None,
            Some(t @ 1..=255) => Some(t as u8),
            Some(t) => return Err(Error::usage(format!("-t {t}: give a TTL from 1 to 255"))),
        };
        if !(0.001..=60.0).contains(&o.timeout) {
            return Err(Error::usage(format!(
                "-W {}: give a reply timeout from 0.001 to 60 seconds",
                o.timeout
            )));
        }
        let deadline = match o.deadline {
            None => None,
            Some(w) if (0.001..=86_400.0).contains(&w) => Some(Duration::from_secs_f64(w)),
            Some(w) => {
                return Err(Error::usage(format!(
                    "-w {w}: give a deadline from 0.001 to 86400 seconds"
                )))
            }
        };
        let pattern = o.pattern.as_deref().map(parse_pattern).transpose()?;
        let iface = o.iface.as_deref().map(parse_iface).transpose()?;
        if o.flood && !nix::unistd::geteuid().is_root() {
            // iputils' own rule and words.
            return Err(Error::usage(
                "-f: cannot flood; only root may (iputils: minimal interval allowed for user is 2ms)",
            ));
        }
        let interval = if o.flood {
            Duration::from_millis(10)
        } else {
            Duration::from_secs_f64(o.interval)
        };
        Ok(PingConfig {
            target,
            family: o.family,
            count: o.count,
            interval,
            size: o.size,
            ttl,
            timeout: Duration::from_secs_f64(o.timeout),
            dgram: o.dgram,
            deadline,
            quiet: o.quiet || o.flood,
            numeric: o.numeric,
            print_time: o.print_time,
            outstanding: o.outstanding,
            pattern,
            iface,
            flood: o.flood,
            drop_privileges: true,
            kernel_filter: true,
        })
    }

    /// The tour's ping: three requests to 127.0.0.1, 0.2 s apart.
    pub fn tour() -> Result<Self> {
        PingConfig::new(
            "127.0.0.1",
            &PingOptions {
                count: Some(3),
                interval: 0.2,
                size: 56,
                timeout: 2.0,
                ..PingOptions::default()
            },
        )
    }
}

/// -s: at most 65507 bytes over IPv4, 65527 over IPv6, each said in terms
/// of that protocol's headers.
fn check_size(size: usize, v6: bool) -> Result<()> {
    if v6 && size > MAX_SIZE_V6 {
        return Err(Error::usage(format!(
            "-s {size}: at most {MAX_SIZE_V6} bytes of data over IPv6 (its 65535-byte payload holds the 8-byte ICMPv6 header too; the 40-byte IPv6 header is not counted)"
        )));
    }
    if !v6 && size > MAX_SIZE {
        return Err(Error::usage(format!(
            "-s {size}: at most {MAX_SIZE} bytes of data over IPv4 (65535 minus the 20-byte IPv4 and 8-byte ICMP headers)"
        )));
    }
    Ok(())
}

/// -p: 1 to 16 bytes given as hex digits, as iputils takes them.
fn parse_pattern(p: &str) -> Result<Vec<u8>> {
    let bad = || {
        Error::usage(format!(
            "-p {p:?}: give 1 to 16 bytes as hex digits, e.g. -p ff or -p 0102abcd"
        ))
    };
    if p.is_empty() || p.len() > 32 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let padded = if p.len() % 2 == 1 {
        format!("0{p}")
    } else {
        p.to_string()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

/// -I: an address binds the source; anything else names an interface.
fn parse_iface(i: &str) -> Result<Bind> {
    if let Ok(ip) = i.parse::<IpAddr>() {
        return Ok(Bind::Source(ip));
    }
    if i.is_empty()
        || i.len() >= libc::IFNAMSIZ
        || i.contains(['/', '\0'])
        || i.contains(char::is_whitespace)
    {
        return Err(Error::usage(format!(
            "-I {i:?}: give an interface name of 1 to 15 characters (see `ip link`) or a source address"
        )));
    }
    Ok(Bind::Device(i.to_string()))
}

fn family_of(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// Resolves a name with getaddrinfo(3) (through std's `ToSocketAddrs`),
/// taking the first address of the wanted family.
fn resolve(rec: &mut Recorder, cfg: &PingConfig) -> Result<IpAddr> {
    let name = match &cfg.target {
        Target::Addr(ip) => return Ok(*ip),
        Target::Name(n) => n,
    };
    let addrs: Vec<IpAddr> = (name.as_str(), 0)
        .to_socket_addrs()
        .map_err(|e| Error::usage(format!("{name}: cannot resolve this name ({e}); give an address like 127.0.0.1 or ::1, or a name in /etc/hosts or DNS")))?
        .map(|a| a.ip())
        .filter(|ip| cfg.family.is_none_or(|f| f == family_of(*ip)))
        .collect();
    let Some(ip) = addrs.first().copied() else {
        return Err(Error::usage(format!(
            "{name}: no {} address for this name",
            if cfg.family == Some(Family::V6) {
                "IPv6"
            } else {
                "IPv4"
            }
        )));
    };
    check_size(cfg.size, ip.is_ipv6())?;
    rec.message(format!(
        "getaddrinfo(3) resolved {name} to {ip} — libc's own reads of /etc/hosts and any DNS \
         queries are not experiment steps and are not shown"
    ));
    Ok(ip)
}

/// Why opening a raw or ping socket failed, with the fix.
fn socket_error(rec: &mut Recorder, e: crate::error::SysError, dgram: bool) -> Error {
    match (e.errno, dgram) {
        (Errno::EPERM | Errno::EACCES, false) => Error::SysHint(e, RAW_HINT.into()),
        (Errno::EACCES | Errno::EPERM, true) => {
            let range = read_ping_group_range(rec).unwrap_or_else(|| "?".into());
            rec.message(format!(
                "net.ipv4.ping_group_range is \"{range}\": only processes whose group id is in that range may open ping sockets, and ours is not (\"1 0\", the default, allows nobody)"
            ));
            Error::SysHint(
                e,
                "allow your groups with `sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`, or use a raw socket with sudo".into(),
            )
        }
        _ => Error::Sys(e),
    }
}

/// Reads /proc/sys/net/ipv4/ping_group_range with traced calls.
fn read_ping_group_range(rec: &mut Recorder) -> Option<String> {
    let path = std::path::Path::new("/proc/sys/net/ipv4/ping_group_range");
    rec.note("the sysctl that decides who may open a ping socket");
    let fd = file::openat(rec, path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, None).ok()?;
    let mut buf = [0u8; 64];
    let n = file::read(rec, fd.as_fd(), &mut buf).ok();
    let _ = file::close(rec, fd);
    let text = String::from_utf8_lossy(&buf[..n?])
        .trim()
        .replace('\t', " ");
    Some(text)
}

/// Runs the ping lab.
pub fn run(rec: &mut Recorder, cfg: &PingConfig) -> Result<()> {
    let ip = resolve(rec, cfg)?;
    let family = family_of(ip);
    let (domain, proto) = match family {
        Family::V4 => (libc::AF_INET, libc::IPPROTO_ICMP),
        Family::V6 => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
    };
    let ty = if cfg.dgram {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_RAW
    };
    let what = match (cfg.dgram, family) {
        (false, Family::V4) => "a raw ICMP socket: every ICMP packet the host receives is copied here, IPv4 header included",
        (false, Family::V6) => "a raw ICMPv6 socket: ICMPv6 messages arrive without the IPv6 header",
        (true, _) => "an unprivileged ping socket: only echo replies to this socket arrive, without the IP header",
    };
    rec.note_err(if cfg.dgram {
        "ping sockets are allowed only to the groups in net.ipv4.ping_group_range"
    } else {
        "raw sockets need root or CAP_NET_RAW"
    });
    let fd = match socket::socket_explained(rec, domain, ty, proto, |fd| format!("fd {fd}: {what}"))
    {
        Ok(fd) => fd,
        Err(e) => return Err(socket_error(rec, e, cfg.dgram)),
    };
    let fd = if cfg.drop_privileges {
        crate::lab::set_up(rec, fd, |rec, _| {
            crate::lab::privs::drop(rec, "the raw socket")
        })?
        .0
    } else {
        fd
    };
    let mut ping = session::Ping::new(rec, cfg, ip, family, fd);
    let result = ping.setup(rec).and_then(|()| ping.run(rec));
    rec.note("the socket is closed; nothing more arrives for this process");
    let closed = file::close(rec, ping.into_fd());
    result.and(closed.map_err(Error::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PingOptions {
        PingOptions {
            count: Some(1),
            interval: 1.0,
            size: 56,
            timeout: 1.0,
            ..PingOptions::default()
        }
    }

    #[test]
    fn config_rejects_bad_values() {
        assert!(PingConfig::new("127.0.0.1", &opts()).is_ok());
        assert!(matches!(PingConfig::new("", &opts()), Err(Error::Usage(_))));
        let bad = |o: PingOptions| matches!(PingConfig::new("::1", &o), Err(Error::Usage(_)));
        assert!(bad(PingOptions {
            family: Some(Family::V4),
            ..opts()
        }));
        assert!(bad(PingOptions {
            count: Some(0),
            ..opts()
        }));
        assert!(bad(PingOptions {
            size: 70000,
            ..opts()
        }));
        assert!(bad(PingOptions {
            ttl: Some(0),
            ..opts()
        }));
        assert!(bad(PingOptions {
            interval: -1.0,
            ..opts()
        }));
        assert!(bad(PingOptions {
            interval: 61.0,
            ..opts()
        }));
        assert!(bad(PingOptions {
            pattern: Some("xyz".into()),
            ..opts()
        }));
        assert!(bad(PingOptions {
            pattern: Some("0".repeat(34)),
            ..opts()
        }));
        assert!(bad(PingOptions {
            deadline: Some(0.0),
            ..opts()
        }));
        assert!(bad(PingOptions {
            iface: Some("a/b".into()),
            ..opts()
        }));
        assert!(PingConfig::new(
            "::1",
            &PingOptions {
                size: 65527,
                ..opts()
            }
        )
        .is_ok());
        let v6 = PingConfig::new(
            "::1",
            &PingOptions {
                size: 65528,
                ..opts()
            },
        );
        assert!(matches!(v6, Err(Error::Usage(ref m)) if m.contains("IPv6")));
        let v4 = PingConfig::new(
            "127.0.0.1",
            &PingOptions {
                size: 65508,
                ..opts()
            },
        );
        assert!(matches!(v4, Err(Error::Usage(ref m)) if m.contains("IPv4")));
    }

    #[test]
    fn patterns_and_interfaces_parse_as_iputils_takes_them() {
        assert_eq!(parse_pattern("ff").ok(), Some(vec![0xff]));
        assert_eq!(parse_pattern("abc").ok(), Some(vec![0x0a, 0xbc]));
        assert_eq!(parse_iface("lo").ok(), Some(Bind::Device("lo".into())));
        assert_eq!(
            parse_iface("127.0.0.1").ok(),
            Some(Bind::Source("127.0.0.1".parse().expect("valid")))
        );
    }
}
