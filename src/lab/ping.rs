//! ICMP echo, as ping(8) does it: socket(SOCK_RAW, IPPROTO_ICMP[V6]) →
//! (under sudo: setgroups → setresgid → setresuid) → setsockopt
//! ICMP_FILTER / ICMP6_FILTER → setsockopt SO_TIMESTAMPNS → rt_sigaction
//! SIGINT → sendto every -i seconds, and between sends poll → recvmsg … →
//! after the last send, poll → recvmsg until every request is answered or
//! -W has passed → summary → rt_sigaction SIGINT (default again) → close.
//!
//! The schedule is iputils': a request goes out every -i seconds whatever
//! came back, so a lost reply never delays the next request; replies are
//! matched to their request by id and seq whenever they arrive. Ctrl-C
//! interrupts the wait (EINTR), stops sending and prints the statistics.
//!
//! With `--dgram`, the unprivileged "ping socket"
//! socket(SOCK_DGRAM, IPPROTO_ICMP): allowed only to groups in
//! `net.ipv4.ping_group_range`; the kernel writes its own echo id and
//! checksum into each request and delivers replies without the IP header.
//!
//! Exit status, as iputils ping: 0 when at least one reply came, 1 when
//! none did. Unlike iputils (2 for every other error) a failed syscall also
//! exits 1; bad arguments and a name that does not resolve exit 2.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::packet::icmp::{self, Family, Kind};
use crate::sys::{file, raw, socket};
use crate::trace::Recorder;

/// The hint under an EPERM from a raw or packet socket.
pub const RAW_HINT: &str = "needs root or CAP_NET_RAW; try sudo, \
    `sudo setcap cap_net_raw+ep $(command -v ipclab)`, or --dgram (ping only)";

/// Where to ping: a literal address, or a name for getaddrinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(IpAddr),
    Name(String),
}

/// A validated `ipclab ping` invocation.
#[derive(Debug, Clone)]
pub struct PingConfig {
    pub target: Target,
    pub family: Option<Family>,
    pub count: u32,
    pub interval: Duration,
    /// Bytes of echo data after the 8-byte ICMP header.
    pub size: usize,
    pub ttl: Option<u8>,
    /// How long to wait for each reply.
    pub timeout: Duration,
    pub dgram: bool,
    /// Drop back to SUDO_UID/SUDO_GID after opening the socket.
    pub drop_privileges: bool,
    /// Set ICMP_FILTER / ICMP6_FILTER on a raw socket (off: `--no-filter`).
    pub kernel_filter: bool,
}

/// The largest echo data: 65535 minus the IPv4 (20) and ICMP (8) headers.
pub const MAX_SIZE: usize = 65507;

impl PingConfig {
    /// Checks every value; each error names the value and what is valid.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: &str,
        family: Option<Family>,
        count: u32,
        interval: f64,
        size: usize,
        ttl: Option<u16>,
        timeout: f64,
        dgram: bool,
    ) -> Result<Self> {
        if host.is_empty() {
            return Err(Error::usage(
                "HOST is empty: give an address like 127.0.0.1 or ::1, or a name",
            ));
        }
        let target = match host.parse::<IpAddr>() {
            Ok(ip) => {
                let fam = family_of(ip);
                if family.is_some_and(|f| f != fam) {
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
        if !(1..=100_000).contains(&count) {
            return Err(Error::usage(format!(
                "-c {count}: give 1 to 100000 requests"
            )));
        }
        if !(0.01..=60.0).contains(&interval) {
            return Err(Error::usage(format!(
                "-i {interval}: give an interval from 0.01 to 60 seconds"
            )));
        }
        if size > MAX_SIZE {
            return Err(Error::usage(format!(
                "-s {size}: at most {MAX_SIZE} bytes of data (65535 minus the IPv4 and ICMP headers)"
            )));
        }
        let ttl = match ttl {
            None => None,
            Some(t @ 1..=255) => Some(t as u8),
            Some(t) => return Err(Error::usage(format!("-t {t}: give a TTL from 1 to 255"))),
        };
        if !(0.001..=60.0).contains(&timeout) {
            return Err(Error::usage(format!(
                "-W {timeout}: give a reply timeout from 0.001 to 60 seconds"
            )));
        }
        Ok(PingConfig {
            target,
            family,
            count,
            interval: Duration::from_secs_f64(interval),
            size,
            ttl,
            timeout: Duration::from_secs_f64(timeout),
            dgram,
            drop_privileges: true,
            kernel_filter: true,
        })
    }
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
    let mut ping = Ping::new(rec, cfg, ip, family, fd);
    let result = ping.setup(rec).and_then(|()| ping.run(rec));
    rec.note("the socket is closed; nothing more arrives for this process");
    let closed = file::close(rec, ping.fd);
    result.and(closed.map_err(Error::from))
}

/// One echo request's bookkeeping, indexed by its full sequence number.
#[derive(Debug, Clone, Copy, Default)]
struct Request {
    /// Wall-clock send time: the RTT is the kernel's receive stamp minus it.
    sent: Option<SystemTime>,
    /// When its -W runs out.
    deadline: Option<Instant>,
    /// A reply came (later ones are duplicates).
    replied: bool,
    /// A reply or an ICMP error about it came: nothing more to wait for.
    answered: bool,
}

/// One ping run's state.
struct Ping<'c> {
    cfg: &'c PingConfig,
    ip: IpAddr,
    family: Family,
    fd: OwnedFd,
    /// The echo id we put in requests; for a ping socket, the kernel's.
    id: u16,
    /// The id we wrote into requests (a ping socket replaces it).
    our_id: u16,
    requests: Vec<Request>,
    /// The first request whose -W deadline has not been looked at yet.
    unchecked: u32,
    transmitted: u32,
    replies: u32,
    dups: u32,
    errors: u32,
    rtts: Vec<f64>,
}

impl<'c> Ping<'c> {
    fn new(rec: &Recorder, cfg: &'c PingConfig, ip: IpAddr, family: Family, fd: OwnedFd) -> Self {
        let n = cfg.count as usize + 1;
        let id = (rec.pid() as u32 & 0xffff) as u16;
        Ping {
            cfg,
            ip,
            family,
            fd,
            id,
            our_id: id,
            requests: vec![Request::default(); n],
            unchecked: 1,
            transmitted: 0,
            replies: 0,
            dups: 0,
            errors: 0,
            rtts: Vec::new(),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn setup(&mut self, rec: &mut Recorder) -> Result<()> {
        let fd = self.fd.as_fd();
        if self.cfg.kernel_filter && !self.cfg.dgram {
            let pass = icmp::passed_types(self.family);
            match self.family {
                Family::V4 => {
                    rec.note("the kernel now drops every ICMP type but echo reply, destination unreachable and time exceeded before it reaches this socket, as iputils ping's ICMP_FILTER does; without it the raw socket gets a copy of every ICMP message the host receives — on loopback our own requests too (see --no-filter). Other pings' replies still get through: ids are checked here");
                    raw::setsockopt_icmp_filter(rec, fd, icmp::icmp_filter(pass))?;
                }
                Family::V6 => {
                    rec.note("option 1 of SOL_ICMPV6 is ICMP6_FILTER (strace prints the number): one bit per ICMPv6 type, a set bit blocks it; only echo reply (129), destination unreachable (1) and time exceeded (3) get through. Without it the socket gets every ICMPv6 message — on loopback our own requests, neighbour discovery too (see --no-filter). Other pings' replies still get through: ids are checked here");
                    raw::setsockopt_icmp6_filter(rec, fd, icmp::icmp6_filter(pass))?;
                }
            }
        }
        rec.note("the kernel stamps each packet as it arrives; the RTT is taken from that stamp, as iputils ping does, not from when this process wakes up");
        socket::setsockopt_int(rec, fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        if let Some(t) = self.cfg.ttl {
            let (level, name) = match self.family {
                Family::V4 => {
                    rec.note(format!("requests leave with TTL {t}: each router on the way takes one off, and at 0 answers \"Time to live exceeded\""));
                    (libc::SOL_IP, libc::IP_TTL)
                }
                Family::V6 => {
                    rec.note(format!("requests leave with hop limit {t}"));
                    (libc::SOL_IPV6, libc::IPV6_UNICAST_HOPS)
                }
            };
            socket::setsockopt_int(rec, fd, level, name, i32::from(t))?;
        }
        // A raw IPv4 socket sees the TTL in the IP header; the others need it as a control message.
        let recv_ttl = match (self.family, self.cfg.dgram) {
            (Family::V4, true) => Some((libc::SOL_IP, libc::IP_RECVTTL, "no IP header arrives on a ping socket: ask for each reply's TTL as a control message")),
            (Family::V6, _) => Some((libc::SOL_IPV6, libc::IPV6_RECVHOPLIMIT, "ICMPv6 arrives without the IPv6 header: ask for each reply's hop limit as a control message")),
            (Family::V4, false) => None,
        };
        if let Some((level, name, note)) = recv_ttl {
            rec.note(note);
            socket::setsockopt_int(rec, fd, level, name, 1)?;
        }
        Ok(())
    }

    fn run(&mut self, rec: &mut Recorder) -> Result<()> {
        let ip = self.ip;
        let size = self.cfg.size;
        rec.message(match self.family {
            Family::V4 => format!("PING {ip} ({ip}) {size}({}) bytes of data.", size + 28),
            Family::V6 => format!("PING {ip} ({ip}) {size} data bytes"),
        });
        let interval = self.cfg.interval;
        let mut buf = vec![0u8; self.cfg.size + 8 + 60 + 64];
        let start = Instant::now();
        let mut next_send = start;
        let mut stopped = None;
        loop {
            let now = Instant::now();
            let sending = self.transmitted < self.cfg.count;
            if sending && now >= next_send {
                self.send(rec, self.transmitted + 1)?;
                // Kept on the grid start + k·interval, so the gaps average
                // -i exactly; a run that fell behind (--step) starts afresh.
                next_send += interval;
                let after = Instant::now();
                if next_send < after {
                    next_send = after + interval;
                }
                continue;
            }
            let due = self.check_deadlines(rec, now);
            let wake = match (sending, due) {
                (true, Some((_, d))) => next_send.min(d),
                (true, None) => next_send,
                (false, Some((_, d))) => d,
                // Every request is answered or past its -W.
                (false, None) => break,
            };
            let left = wake.saturating_duration_since(now);
            let ms = left.as_micros().div_ceil(1000);
            if rec.tracing() {
                rec.waiting(match due {
                    Some((seq, d)) if d <= wake => {
                        format!("waiting up to {ms} ms for the reply to icmp_seq={seq} (-W)")
                    }
                    _ => format!(
                        "waiting up to {ms} ms for replies, until icmp_seq={} is due",
                        self.transmitted + 1
                    ),
                });
                rec.note_err(
                    "Ctrl-C (SIGINT) interrupted the wait: no more requests; the statistics follow",
                );
            }
            match crate::lab::wait::readable(rec, self.fd(), Some(left)) {
                Ok(false) => {}
                Ok(true) => self.receive(rec, &mut buf)?,
                // Ctrl-C: no more requests; the statistics follow, as iputils prints them.
                Err(Error::Interrupted(sig)) => {
                    stopped = Some(sig);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        self.summary(rec, start.elapsed());
        if let Some(sig) = stopped {
            return Err(Error::Interrupted(sig));
        }
        if self.replies == 0 {
            return Err(Error::protocol(format!("no reply from {ip}")));
        }
        Ok(())
    }

    /// Says which requests went unanswered for -W, once each; returns the
    /// first request still waited for, with its deadline.
    fn check_deadlines(&mut self, rec: &mut Recorder, now: Instant) -> Option<(u32, Instant)> {
        while self.unchecked <= self.transmitted {
            let seq = self.unchecked;
            let r = self.requests[seq as usize];
            match r.deadline {
                Some(d) if !r.answered && d > now => return Some((seq, d)),
                Some(_) if !r.answered => rec.message(format!(
                    "no reply to icmp_seq={seq} within {} s (-W)",
                    self.cfg.timeout.as_secs_f64()
                )),
                _ => {}
            }
            self.unchecked += 1;
        }
        None
    }

    fn send(&mut self, rec: &mut Recorder, seq: u32) -> Result<()> {
        let seq16 = seq as u16; // wraps after 65535, as ping's does
        let (family, dgram, id) = (self.family, self.cfg.dgram, self.id);
        let mut msg = icmp::echo_request(family, id, seq16, &icmp::payload(self.cfg.size, None));
        let dst = SocketAddr::new(self.ip, 0);
        self.requests[seq as usize].deadline = Some(Instant::now() + self.cfg.timeout);
        // The send time goes in last, inside the sendto step, as iputils
        // does: only the clock read and the checksum precede the syscall.
        let sent = socket::sendto_stamped(
            rec,
            self.fd.as_fd(),
            &mut msg,
            0,
            &dst,
            |msg| {
                let now = SystemTime::now();
                let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
                icmp::stamp(
                    family,
                    msg,
                    since.as_secs() as i64,
                    i64::from(since.subsec_micros()),
                );
                now
            },
            |msg| send_note(family, dgram, id, seq, msg),
        )?;
        self.requests[seq as usize].sent = Some(sent);
        self.transmitted += 1;
        if self.cfg.dgram && seq == 1 {
            let a = socket::getsockname_explained(rec, self.fd(), |a| {
                format!(
                    "the first sendto bound the ping socket; its \"port\" {} ({:#06x}) is the echo id the kernel writes into every request, and replies are matched to sockets by it",
                    a.port(),
                    a.port()
                )
            })?;
            if let Some(a) = a {
                self.id = a.port();
            }
        }
        Ok(())
    }

    /// One recvmsg: a reply (on time, late, or a duplicate) or an ICMP
    /// error about one of our requests is counted and printed; the rest is
    /// only explained in the step's note.
    fn receive(&mut self, rec: &mut Recorder, buf: &mut [u8]) -> Result<()> {
        let family = self.family;
        let with_ip = family == Family::V4 && !self.cfg.dgram;
        let id = self.id;
        let ours = self.cfg.dgram.then_some(self.our_id);
        let got = raw::recvmsg(rec, self.fd.as_fd(), buf, |got, bytes| {
            explain(family, with_ip, ours, id, got.len, bytes)
        })?;
        let bytes = &buf[..got.len.min(buf.len())];
        let Ok(reply) = icmp::parse(family, with_ip, bytes) else {
            return Ok(());
        };
        let from = reply
            .ip
            .map(|i| i.src)
            .or(got.from.map(|a| a.ip()))
            .unwrap_or(self.ip);
        let ttl = reply.ip.map(|i| i.ttl).or(got.ttl);
        match reply.kind {
            Kind::EchoReply { id: rid, seq } if rid == id => {
                let seq = self.seq_of(seq);
                let Some(sent) = self.requests.get(seq as usize).and_then(|r| r.sent) else {
                    return Ok(());
                };
                let rtt = rtt_ms(sent, got.stamp);
                let dup = self.requests[seq as usize].replied;
                let mut line = format!(
                    "{} bytes from {from}: icmp_seq={seq}{} time={}",
                    reply.message.len(),
                    ttl.map_or(String::new(), |t| format!(" ttl={t}")),
                    format_rtt(rtt)
                );
                if dup {
                    self.dups += 1;
                    line.push_str(" (DUP!)");
                } else {
                    let r = &mut self.requests[seq as usize];
                    r.replied = true;
                    r.answered = true;
                    self.replies += 1;
                    self.rtts.push(rtt);
                }
                if reply.checksum_ok == Some(false) {
                    line.push_str(" (BAD CHECKSUM!)");
                }
                if !self.cfg.dgram {
                    let expect = icmp::payload(self.cfg.size, None);
                    if reply.data.len() != expect.len()
                        || reply.data.get(icmp::TIMEVAL_LEN..) != expect.get(icmp::TIMEVAL_LEN..)
                    {
                        line.push_str(" (wrong data)");
                    }
                }
                rec.message(line);
                Ok(())
            }
            Kind::Unreachable {
                quoted: Some((qid, qseq)),
                ..
            }
            | Kind::TimeExceeded {
                quoted: Some((qid, qseq)),
                ..
            } if qid == id => {
                let seq = self.seq_of(qseq);
                if let Some(r) = self.requests.get_mut(seq as usize) {
                    r.answered = true;
                }
                self.errors += 1;
                rec.message(format!(
                    "From {from} icmp_seq={seq} {}",
                    icmp::error_text(family, &reply.kind)
                ));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The full sequence number for a 16-bit one (within the last 65536 sent).
    fn seq_of(&self, seq16: u16) -> u32 {
        let t = self.transmitted;
        let base = t & !0xffff;
        let s = base | u32::from(seq16);
        if s > t && s >= 0x10000 {
            s - 0x10000
        } else {
            s
        }
    }

    fn summary(&mut self, rec: &mut Recorder, time: Duration) {
        let tx = self.transmitted;
        let rx = self.replies;
        let loss = if tx == 0 {
            0.0
        } else {
            f64::from(tx - rx) * 100.0 / f64::from(tx)
        };
        let mut line = format!("{tx} packets transmitted, {rx} received");
        if self.dups > 0 {
            line.push_str(&format!(", +{} duplicates", self.dups));
        }
        if self.errors > 0 {
            line.push_str(&format!(", +{} errors", self.errors));
        }
        line.push_str(&format!(
            ", {}% packet loss, time {}ms",
            format_g(loss),
            time.as_millis()
        ));
        // As iputils prints it: a blank line, the heading, the counts, the RTTs.
        rec.message("");
        rec.message(format!("--- {} ping statistics ---", self.ip));
        rec.message(line);
        if !self.rtts.is_empty() {
            let n = self.rtts.len() as f64;
            let min = self.rtts.iter().copied().fold(f64::INFINITY, f64::min);
            let max = self.rtts.iter().copied().fold(0.0, f64::max);
            let avg = self.rtts.iter().sum::<f64>() / n;
            let avg2 = self.rtts.iter().map(|r| r * r).sum::<f64>() / n;
            let mdev = (avg2 - avg * avg).max(0.0).sqrt();
            rec.message(format!(
                "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
            ));
        }
    }
}

/// The note under an echo request's sendto.
fn send_note(family: Family, dgram: bool, id: u16, seq: u32, msg: &[u8]) -> String {
    let sum = icmp::checksum_field(msg);
    match (family, dgram) {
        (Family::V4, false) => format!(
            "echo request id={id:#06x} icmp_seq={seq}, checksum {sum:#06x} (RFC 1071, over the {}-byte message); the kernel adds the IPv4 header",
            msg.len()
        ),
        (Family::V6, false) => format!(
            "ICMPv6 echo request id={id:#06x} icmp_seq={seq}, checksum left 0: the kernel fills it (it covers a pseudo-header with the source address it picks)"
        ),
        (_, true) => format!(
            "echo request with our id {id:#06x} and checksum {sum:#06x} — a ping socket overwrites both: the id becomes the socket's own, the checksum is recomputed"
        ),
    }
}

/// The note under a recvmsg: what arrived and what ping does with it.
/// `rewritten`: on a ping socket, the id we wrote before the kernel replaced it.
fn explain(
    family: Family,
    with_ip: bool,
    rewritten: Option<u16>,
    id: u16,
    len: usize,
    bytes: &[u8],
) -> String {
    let reply = match icmp::parse(family, with_ip, bytes) {
        Ok(r) => r,
        Err(e) => return format!("{len} bytes, ignored: {e}"),
    };
    let head = if reply.ip_header_len > 0 {
        format!(
            "{len} bytes: IPv4 header ({}) + ICMP ({})",
            reply.ip_header_len,
            reply.message.len()
        )
    } else {
        format!(
            "{len} bytes of ICMP, no IP header{}",
            if rewritten.is_some() {
                " (ping socket)"
            } else {
                ""
            }
        )
    };
    let what = match reply.kind {
        Kind::EchoReply { id: rid, seq } if rid == id => {
            let sum = match reply.checksum_ok {
                Some(true) => ", checksum ok",
                Some(false) => ", checksum WRONG",
                None => "",
            };
            let kernel = match rewritten {
                Some(ours) => format!(
                    " — id {rid:#06x} is the one the kernel chose, not the {ours:#06x} we wrote"
                ),
                None => String::new(),
            };
            format!("echo reply id={rid:#06x} seq={seq}{sum}{kernel}")
        }
        Kind::EchoReply { id: rid, .. } => {
            format!("echo reply for id {rid:#06x}: another ping's (a raw socket sees them all); skipped")
        }
        Kind::EchoRequest { id: rid, seq } if rid == id => format!(
            "our own echo request seq={seq}, looped back: on loopback a raw socket also gets a copy of the request it sent (no ICMP_FILTER keeps it out: --no-filter); skipped here, by type and id"
        ),
        Kind::EchoRequest { id: rid, .. } => {
            format!("someone's echo request (id {rid:#06x}); skipped")
        }
        Kind::Unreachable { quoted, .. } | Kind::TimeExceeded { quoted, .. } => {
            let whose = match quoted {
                Some((q, s)) if q == id => format!("about our icmp_seq={s}"),
                Some(_) => "about another program's packet; skipped".into(),
                None => "quoting no echo request of ours; skipped".into(),
            };
            format!("ICMP error \"{}\" {whose}", icmp::error_text(family, &reply.kind))
        }
        Kind::Other { ty, code } => format!("ICMP type {ty} code {code}: not for ping; skipped"),
    };
    format!("{head}: {what}")
}

/// Round-trip time in ms: the kernel's receive stamp minus the send time
/// (taken just before sendto, as iputils ping does).
fn rtt_ms(sent: SystemTime, stamp: Option<Duration>) -> f64 {
    let rx = match stamp {
        Some(s) => UNIX_EPOCH + s,
        None => SystemTime::now(),
    };
    rx.duration_since(sent).unwrap_or_default().as_secs_f64() * 1000.0
}

/// Like iputils: three significant digits, at least one of them decimal below 100 ms.
pub fn format_rtt(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

/// printf's `%g` for a loss percentage: `0`, `50`, `33.3333`.
fn format_g(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_and_loss_format_like_iputils() {
        assert_eq!(format_rtt(0.0451), "0.045 ms");
        assert_eq!(format_rtt(1.234), "1.23 ms");
        assert_eq!(format_rtt(12.34), "12.3 ms");
        assert_eq!(format_rtt(123.4), "123 ms");
        assert_eq!(format_g(0.0), "0");
        assert_eq!(format_g(100.0 / 3.0), "33.3333");
        assert_eq!(format_g(50.0), "50");
    }

    #[test]
    fn config_rejects_bad_values() {
        let ok = |h: &str| PingConfig::new(h, None, 1, 1.0, 56, None, 1.0, false);
        assert!(ok("127.0.0.1").is_ok());
        assert!(matches!(ok(""), Err(Error::Usage(_))));
        assert!(matches!(
            PingConfig::new("::1", Some(Family::V4), 1, 1.0, 56, None, 1.0, false),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            PingConfig::new("::1", None, 0, 1.0, 56, None, 1.0, false),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            PingConfig::new("::1", None, 1, 1.0, 70000, None, 1.0, false),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            PingConfig::new("::1", None, 1, 1.0, 56, Some(0), 1.0, false),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            PingConfig::new("::1", None, 1, 0.0, 56, None, 1.0, false),
            Err(Error::Usage(_))
        ));
    }
}
