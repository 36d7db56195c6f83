//! The lowest socket: socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)) →
//! ioctl(SIOCGIFINDEX) → [setsockopt(SO_ATTACH_FILTER)] → bind(sockaddr_ll)
//! → (under sudo: give root back) → poll + recvfrom per frame, each decoded
//! on one line: Ethernet, IPv4/IPv6, TCP/UDP/ICMP.
//!
//! On `lo` every packet is seen twice: once leaving (PACKET_OUTGOING), once
//! arriving (PACKET_HOST). The socket receives from every interface from
//! `socket()` on until `bind()` narrows it to one, so a frame queued in
//! between can be from elsewhere — the lab says so when it sees one.
//!
//! pnet_datalink's `channel()` would open its own socket with calls we
//! could not show, so the AF_PACKET calls are made here; pnet lists the
//! interfaces when the one asked for does not exist.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::lab::ping::RAW_HINT;
use crate::packet::{filter, frame, Proto};
use crate::sys::raw::{self, LinkFrom};
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// A validated `ipclab sniff` invocation.
#[derive(Debug, Clone)]
pub struct SniffConfig {
    pub iface: String,
    pub count: u32,
    pub proto: Option<Proto>,
    pub timeout: Duration,
    pub drop_privileges: bool,
}

impl SniffConfig {
    /// Checks every value; each error names the value and what is valid.
    pub fn new(iface: &str, count: u32, proto: Option<Proto>, timeout: f64) -> Result<Self> {
        if iface.is_empty()
            || iface.len() >= libc::IFNAMSIZ
            || iface.contains(['/', '\0'])
            || iface.chars().any(char::is_whitespace)
        {
            return Err(Error::usage(format!(
                "--iface {iface:?}: give an interface name of 1 to 15 characters, like lo or eth0 (see `ip link`)"
            )));
        }
        if !(1..=100_000).contains(&count) {
            return Err(Error::usage(format!("-c {count}: give 1 to 100000 frames")));
        }
        if !(0.1..=3600.0).contains(&timeout) {
            return Err(Error::usage(format!(
                "--timeout {timeout}: give 0.1 to 3600 seconds"
            )));
        }
        Ok(SniffConfig {
            iface: iface.to_string(),
            count,
            proto,
            timeout: Duration::from_secs_f64(timeout),
            drop_privileges: true,
        })
    }
}

/// An open, bound capture socket.
pub struct Capture {
    fd: OwnedFd,
    ifindex: i32,
    iface: String,
    proto: Option<Proto>,
}

impl Capture {
    /// socket → ioctl(SIOCGIFINDEX) → [filter] → bind.
    pub fn open(rec: &mut Recorder, iface: &str, proto: Option<Proto>) -> Result<Self> {
        let eth_p_all = (libc::ETH_P_ALL as u16).to_be();
        rec.note_err("packet sockets need root or CAP_NET_RAW");
        let fd = socket::socket_explained(
            rec,
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from(eth_p_all),
            |fd| format!("fd {fd}: a packet socket: whole frames from the link layer, Ethernet header included, from every interface until bind() picks one"),
        )
        .map_err(|e| match e.errno {
            Errno::EPERM | Errno::EACCES => Error::SysHint(
                e,
                RAW_HINT.replace(", or --dgram (ping only)", "").to_string(),
            ),
            _ => Error::Sys(e),
        })?;
        let (fd, ifindex) = crate::lab::set_up(rec, fd, |rec, fd| {
            let ifindex = match raw::ioctl_siocgifindex(rec, fd, iface) {
                Ok(i) => i,
                Err(e) if e.errno == Errno::ENODEV => {
                    let names: Vec<String> = pnet_datalink::interfaces()
                        .into_iter()
                        .map(|i| i.name)
                        .collect();
                    return Err(Error::SysHint(
                        e,
                        format!(
                            "no interface {iface}; this machine has: {} (listed by pnet_datalink through getifaddrs(3), whose netlink calls are not experiment steps)",
                            names.join(", ")
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(p) = proto {
                let prog = filter::Filter::new(filter::proto_expr(p)).map_err(|e| Error::Protocol(e.0))?.program;
                rec.note(format!(
                    "a {}-instruction classic BPF program: the kernel now queues only {} over IPv4/IPv6 (what tcpdump's `{}` compiles to, roughly)",
                    prog.len(),
                    p.name().to_uppercase(),
                    p.name()
                ));
                raw::attach_filter(rec, fd, &prog)?;
            }
            rec.note(format!(
                "only frames of {iface} from now on, in both directions"
            ));
            raw::bind_ll(rec, fd, ifindex, iface)?;
            Ok(ifindex)
        })?;
        Ok(Capture {
            fd,
            ifindex,
            iface: iface.to_string(),
            proto,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Captures up to `count` frames, for at most `timeout`. Returns how
    /// many arrived.
    pub fn capture(&self, rec: &mut Recorder, count: u32, timeout: Duration) -> Result<u32> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        let mut got = 0;
        while got < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = left.as_millis();
            rec.waiting(format!(
                "waiting up to {ms} ms for a frame on {}",
                self.iface
            ));
            match crate::lab::wait::readable(rec, self.fd(), Some(left)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(Error::Interrupted(sig)) => {
                    // As tcpdump does on Ctrl-C: say what was captured.
                    rec.message(format!(
                        "{got} frame{} captured before {}",
                        if got == 1 { "" } else { "s" },
                        crate::lab::signal_name(sig)
                    ));
                    return Err(Error::Interrupted(sig));
                }
                Err(e) => return Err(e),
            }
            let bound = (self.ifindex, self.iface.as_str());
            let proto = self.proto;
            let (n, from) = raw::recvfrom_ll(rec, self.fd(), &mut buf, bound, |from, data| {
                note(from, data, bound, proto)
            })?;
            got += 1;
            let f = frame::decode(&buf[..n.min(buf.len())]);
            let dir = raw::pkttype(from.pkttype).1;
            rec.message(format!("#{got} {dir:<3} {n:>5} B  {}", f.line));
        }
        if got < count {
            rec.message(format!(
                "stopped after {} s with {got} of {count} frames",
                timeout.as_secs_f64()
            ));
        }
        Ok(got)
    }

    pub fn close(self, rec: &mut Recorder) -> Result<()> {
        file::close(rec, self.fd)?;
        Ok(())
    }
}

fn note(from: &LinkFrom, data: &[u8], bound: (i32, &str), proto: Option<Proto>) -> String {
    let (ty, dir) = raw::pkttype(from.pkttype);
    let f = frame::decode(data);
    let mut s = format!("{} bytes {dir} ({ty})", data.len());
    if from.ifindex != bound.0 {
        s.push_str(&format!(
            " on interface {}, not {}: queued before bind() narrowed the socket",
            from.ifindex, bound.1
        ));
    } else if proto.is_some() && f.proto != proto {
        s.push_str(": queued before the filter was attached");
    } else if bound.1 == "lo" {
        s.push_str(if from.pkttype == libc::PACKET_OUTGOING {
            ": leaving through lo — it comes back in as the next frame"
        } else {
            ": arriving on lo"
        });
    }
    s
}

/// Runs `ipclab sniff`.
pub fn run(rec: &mut Recorder, cfg: &SniffConfig) -> Result<()> {
    let cap = Capture::open(rec, &cfg.iface, cfg.proto)?;
    if cfg.drop_privileges {
        crate::lab::privs::drop(rec, "the packet socket")?;
    }
    cap.capture(rec, cfg.count, cfg.timeout)?;
    cap.close(rec)
}

/// The tour's section: a TCP handshake on loopback, made with traced calls
/// in this one process and captured at the same time — SYN, SYN-ACK and ACK
/// appear right after connect and accept, each twice (out, then in).
pub fn handshake(rec: &mut Recorder) -> Result<()> {
    let cap = Capture::open(rec, "lo", Some(Proto::Tcp))?;
    let lo = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let tcp = |rec: &mut Recorder, what: &str| {
        socket::socket_explained(
            rec,
            libc::AF_INET,
            libc::SOCK_STREAM,
            libc::IPPROTO_TCP,
            |fd| format!("fd {fd}: {what}"),
        )
    };
    let listener = tcp(rec, "the server's TCP socket")?;
    rec.note("as servers do");
    socket::setsockopt_int(
        rec,
        listener.as_fd(),
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        1,
    )?;
    rec.note("127.0.0.1, port 0: the kernel picks a free port");
    socket::bind(rec, listener.as_fd(), &lo)?;
    rec.note("the kernel now answers SYNs for this port by itself");
    socket::listen(rec, listener.as_fd(), 1)?;
    let addr =
        socket::getsockname_explained(rec, listener.as_fd(), |a| format!("listening on {a}"))?
            .ok_or_else(|| Error::Protocol("getsockname gave no IPv4 address".into()))?;
    let client = tcp(rec, "the client's TCP socket")?;
    rec.note("SYN out, SYN-ACK back, ACK out — all done in the kernel before connect() returns; the frames below show them");
    socket::connect(rec, client.as_fd(), &addr)?;
    let (conn, _) = socket::accept4_explained(
        rec,
        listener.as_fd(),
        libc::SOCK_CLOEXEC,
        |fd, _| {
            format!("fd {fd}: the connection the handshake completed, taken off the accept queue — accept() itself sends nothing")
        },
    )?;
    cap.capture(rec, 6, Duration::from_secs(2))?;
    file::close(rec, conn)?;
    file::close(rec, client)?;
    file::close(rec, listener)?;
    cap.close(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_bad_values() {
        assert!(SniffConfig::new("lo", 1, None, 1.0).is_ok());
        for bad in ["", "a/b", "sixteen-chars-xx", "a b"] {
            assert!(matches!(
                SniffConfig::new(bad, 1, None, 1.0),
                Err(Error::Usage(_))
            ));
        }
        assert!(matches!(
            SniffConfig::new("lo", 0, None, 1.0),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            SniffConfig::new("lo", 1, None, 0.0),
            Err(Error::Usage(_))
        ));
    }
}
