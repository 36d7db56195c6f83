//! One ping run: the socket's options, iputils' send schedule, and each
//! reply or ICMP error matched to its request.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::packet::icmp::{self, Family, Kind};
use crate::sys::{raw, socket};
use crate::trace::Recorder;

use super::report::{explain, format_rtt, rtt_ms, send_note};
use super::{Bind, PingConfig, Target};

/// How many requests are remembered: sequence numbers are 16 bits on the
/// wire, so older ones could not be told apart anyway. Memory stays bounded
/// however long a ping without -c runs.
const RING: usize = 65536;

/// One echo request's bookkeeping.
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
pub struct Ping<'c> {
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
    pub(super) transmitted: u32,
    pub(super) replies: u32,
    pub(super) dups: u32,
    pub(super) errors: u32,
    pub(super) rtts: Vec<f64>,
    /// -f: a dot per request out, one taken back per reply, as iputils prints.
    dots: String,
}

impl<'c> Ping<'c> {
    pub fn new(
        rec: &Recorder,
        cfg: &'c PingConfig,
        ip: IpAddr,
        family: Family,
        fd: OwnedFd,
    ) -> Self {
        let n = cfg.count.map_or(RING, |c| (c as usize + 1).min(RING));
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
            dots: String::new(),
        }
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn slot(&mut self, seq: u32) -> &mut Request {
        let n = self.requests.len();
        &mut self.requests[seq as usize % n]
    }

    fn get(&self, seq: u32) -> Request {
        self.requests[seq as usize % self.requests.len()]
    }

    /// The name the statistics' heading uses: the name given, else the address.
    pub(super) fn target_name(&self) -> String {
        match &self.cfg.target {
            Target::Name(n) => n.clone(),
            Target::Addr(ip) => ip.to_string(),
        }
    }

    /// The target as iputils names it: `NAME (ADDR)` when a name was given
    /// (and not -n), else the address.
    pub(super) fn shown(&self, ip: IpAddr) -> String {
        match &self.cfg.target {
            Target::Name(n) if !self.cfg.numeric && ip == self.ip => format!("{n} ({ip})"),
            _ => ip.to_string(),
        }
    }

    pub fn setup(&mut self, rec: &mut Recorder) -> Result<()> {
        let fd = self.fd.as_fd();
        if self.cfg.kernel_filter && !self.cfg.dgram {
            let pass = icmp::passed_types(self.family);
            match self.family {
                Family::V4 => {
                    rec.note("the kernel now drops every ICMP type but echo reply, destination unreachable and time exceeded before it reaches this socket, as iputils ping's ICMP_FILTER does; without it the raw socket gets a copy of every ICMP message the host receives — on loopback our own requests too (see --no-filter). Other pings' replies are dropped by the socket filter next");
                    raw::setsockopt_icmp_filter(rec, fd, icmp::icmp_filter(pass))?;
                }
                Family::V6 => {
                    rec.note("option 1 of SOL_ICMPV6 is ICMP6_FILTER (strace prints the number): one bit per ICMPv6 type, a set bit blocks it; only echo reply (129), destination unreachable (1) and time exceeded (3) get through. Without it the socket gets every ICMPv6 message — on loopback our own requests, neighbour discovery too (see --no-filter). Other pings' replies are dropped by the socket filter next");
                    raw::setsockopt_icmp6_filter(rec, fd, icmp::icmp6_filter(pass))?;
                }
            }
            rec.note(format!(
                "iputils' socket filter: a BPF program of {} instructions drops, in the kernel, echo replies with another id than ours ({:#06x}) — other pings' — so a busy host's pings cannot crowd ours out of the socket's queue",
                crate::packet::icmp_bpf::id_filter(self.family, self.id).len(),
                self.id
            ));
            raw::attach_filter(
                rec,
                fd,
                &crate::packet::icmp_bpf::id_filter(self.family, self.id),
            )?;
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
        match &self.cfg.iface {
            Some(Bind::Device(dev)) => {
                rec.note(format!("-I {dev}: requests leave through {dev} only, whatever the routing table says (needs CAP_NET_RAW)"));
                socket::setsockopt_device(rec, fd, dev)?;
            }
            Some(Bind::Source(src)) => {
                rec.note(format!("-I {src}: requests leave from this source address"));
                socket::bind(rec, fd, &SocketAddr::new(*src, 0))?;
            }
            None => {}
        }
        Ok(())
    }

    pub fn run(&mut self, rec: &mut Recorder) -> Result<()> {
        let ip = self.ip;
        let size = self.cfg.size;
        let head = match &self.cfg.target {
            Target::Name(n) => format!("{n} ({ip})"),
            Target::Addr(_) => format!("{ip} ({ip})"),
        };
        rec.message(match self.family {
            Family::V4 => format!("PING {head} {size}({}) bytes of data.", size + 28),
            Family::V6 => format!("PING {head} {size} data bytes"),
        });
        let interval = self.cfg.interval;
        let mut buf = vec![0u8; self.cfg.size + 8 + 60 + 64];
        let start = Instant::now();
        let end = self.cfg.deadline.map(|d| start + d);
        let mut next_send = start;
        let mut stopped = None;
        loop {
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) {
                break; // -w: the deadline ends the run whatever is pending
            }
            let sending = self.cfg.count.is_none_or(|c| self.transmitted < c);
            if sending && now >= next_send {
                self.outstanding(rec);
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
            let wake = end.map_or(wake, |e| wake.min(e));
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
                Ok(true) => {
                    let answered_latest = self.receive(rec, &mut buf)?;
                    // -f sends the next request as soon as the last is answered.
                    if self.cfg.flood && answered_latest {
                        next_send = Instant::now();
                    }
                }
                // Ctrl-C: no more requests; the statistics follow, as iputils prints them.
                Err(Error::Interrupted(sig)) => {
                    stopped = Some(sig);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if self.cfg.flood && !self.dots.is_empty() {
            rec.message(format!(
                "flood: {} (one dot per request still unanswered)",
                self.dots
            ));
        }
        super::report::summary(self, rec, start.elapsed());
        if let Some(sig) = stopped {
            return Err(Error::Interrupted(sig));
        }
        if self.replies == 0 {
            return Err(Error::protocol(format!("no reply from {ip}")));
        }
        Ok(())
    }

    /// -O: the previous request still has no answer as the next goes out.
    fn outstanding(&mut self, rec: &mut Recorder) {
        let last = self.transmitted;
        if self.cfg.outstanding && last > 0 && !self.get(last).answered && !self.cfg.quiet {
            rec.message(format!("no answer yet for icmp_seq={last}"));
        }
    }

    /// Says which requests went unanswered for -W, once each; returns the
    /// first request still waited for, with its deadline.
    fn check_deadlines(&mut self, rec: &mut Recorder, now: Instant) -> Option<(u32, Instant)> {
        while self.unchecked <= self.transmitted {
            let seq = self.unchecked;
            let r = self.get(seq);
            match r.deadline {
                Some(d) if !r.answered && d > now => return Some((seq, d)),
                Some(_) if !r.answered && !self.cfg.quiet => rec.message(format!(
                    "no reply to icmp_seq={seq} within {} s (-W)",
                    self.cfg.timeout.as_secs_f64()
                )),
                _ => {}
            }
            self.unchecked += 1;
        }
        None
    }

    fn payload(&self) -> Vec<u8> {
        let mut p = icmp::payload(self.cfg.size, None);
        if let Some(pat) = &self.cfg.pattern {
            // iputils fills the data after the time stamp with the pattern.
            let from = icmp::TIMEVAL_LEN.min(p.len());
            for (i, b) in p[from..].iter_mut().enumerate() {
                *b = pat[i % pat.len()];
            }
        }
        p
    }

    fn send(&mut self, rec: &mut Recorder, seq: u32) -> Result<()> {
        let seq16 = seq as u16; // wraps after 65535, as ping's does
        let (family, dgram, id) = (self.family, self.cfg.dgram, self.id);
        let mut msg = icmp::echo_request(family, id, seq16, &self.payload());
        let dst = SocketAddr::new(self.ip, 0);
        let timeout = self.cfg.timeout;
        *self.slot(seq) = Request {
            deadline: Some(Instant::now() + timeout),
            ..Request::default()
        };
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
        self.slot(seq).sent = Some(sent);
        self.transmitted += 1;
        if self.cfg.flood {
            self.dots.push('.');
        }
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
    /// only explained in the step's note. Returns whether the latest
    /// request was answered (for -f).
    fn receive(&mut self, rec: &mut Recorder, buf: &mut [u8]) -> Result<bool> {
        let family = self.family;
        let with_ip = family == Family::V4 && !self.cfg.dgram;
        let (id, target) = (self.id, self.ip);
        let ours = self.cfg.dgram.then_some(self.our_id);
        let got = raw::recvmsg(rec, self.fd.as_fd(), buf, |got, bytes| {
            explain(family, with_ip, ours, id, target, got.len, bytes)
        })?;
        let bytes = &buf[..got.len.min(buf.len())];
        let Ok(reply) = icmp::parse(family, with_ip, bytes) else {
            return Ok(false);
        };
        let from = reply
            .ip
            .map(|i| i.src)
            .or(got.from.map(|a| a.ip()))
            .unwrap_or(self.ip);
        let ttl = reply.ip.map(|i| i.ttl).or(got.ttl);
        let stamp = got.stamp;
        match reply.kind {
            Kind::EchoReply { id: rid, seq } if rid == id => {
                let seq = self.seq_of(seq);
                let Some(sent) = self.get(seq).sent else {
                    return Ok(false);
                };
                let rtt = rtt_ms(sent, stamp);
                let dup = self.get(seq).replied;
                let mut line = format!(
                    "{} bytes from {}: icmp_seq={seq}{} time={}",
                    reply.message.len(),
                    self.shown(from),
                    ttl.map_or(String::new(), |t| format!(" ttl={t}")),
                    format_rtt(rtt)
                );
                if dup {
                    self.dups += 1;
                    line.push_str(" (DUP!)");
                } else {
                    let r = self.slot(seq);
                    r.replied = true;
                    r.answered = true;
                    self.replies += 1;
                    self.rtts.push(rtt);
                    if self.cfg.flood {
                        self.dots.pop();
                    }
                }
                if reply.checksum_ok == Some(false) {
                    line.push_str(" (BAD CHECKSUM!)");
                }
                if !self.cfg.dgram {
                    let expect = self.payload();
                    if reply.data.len() != expect.len()
                        || reply.data.get(icmp::TIMEVAL_LEN..) != expect.get(icmp::TIMEVAL_LEN..)
                    {
                        line.push_str(" (wrong data)");
                    }
                }
                if !self.cfg.quiet {
                    rec.message(time_prefix(self.cfg.print_time, stamp) + &line);
                }
                Ok(seq == self.transmitted)
            }
            Kind::Unreachable {
                quoted: Some((qid, qseq)),
                ..
            }
            | Kind::TimeExceeded {
                quoted: Some((qid, qseq)),
                ..
            } if qid == id && icmp::quoted_destination(family, reply.data) == Some(self.ip) => {
                // An error quoting a request of ours to *this* target: as
                // iputils, errors about requests to elsewhere are ignored.
                let seq = self.seq_of(qseq);
                self.slot(seq).answered = true;
                self.errors += 1;
                if !self.cfg.quiet {
                    let line = format!(
                        "From {from} icmp_seq={seq} {}",
                        icmp::error_text(family, &reply.kind)
                    );
                    rec.message(time_prefix(self.cfg.print_time, stamp) + &line);
                }
                Ok(seq == self.transmitted)
            }
            _ => Ok(false),
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
}

/// -D: `[1700000000.123456] ` before a reply line, from the kernel's stamp.
fn time_prefix(on: bool, stamp: Option<Duration>) -> String {
    if !on {
        return String::new();
    }
    let t = stamp.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    });
    format!("[{}.{:06}] ", t.as_secs(), t.subsec_micros())
}
