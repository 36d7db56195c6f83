//! The capture socket: open, bind, the frame loop, the closing counts.
//!
//! pnet_datalink's `channel()` would open its own socket with calls we
//! could not show, so the AF_PACKET calls are made here; pnet lists the
//! interfaces when the one asked for does not exist.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;

use super::file::PcapFile;
use super::Show;
use crate::error::{Error, Result};
use crate::lab::ping::RAW_HINT;
use crate::packet::filter::{self, Filter};
use crate::packet::frame::{dump, Decoder};
use crate::sys::packet::{self as packet, Captured};
use crate::sys::raw::{self, LinkFrom};
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// The receive buffer: tcpdump's snapshot length. `MSG_TRUNC` gives a
/// longer frame's real length.
const SNAP: usize = filter::SNAPLEN as usize;

/// An open, bound capture socket.
pub struct Capture {
    fd: OwnedFd,
    ifindex: i32,
    iface: String,
    filter: Option<Filter>,
}

/// tcpdump's word for a direction (`-i any`): In, Out, B, M, P.
fn direction(pkttype: u8) -> &'static str {
    match pkttype {
        libc::PACKET_HOST => "In",
        libc::PACKET_OUTGOING => "Out",
        libc::PACKET_BROADCAST => "B",
        libc::PACKET_MULTICAST => "M",
        libc::PACKET_OTHERHOST => "P",
        _ => "?",
    }
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

impl Capture {
    /// socket → ioctl(SIOCGIFINDEX) → [SO_ATTACH_FILTER] → SO_TIMESTAMPNS → bind.
    pub fn open(rec: &mut Recorder, iface: &str, filter: Option<Filter>) -> Result<Self> {
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
            if let Some(f) = &filter {
                rec.note(filter::describe(f));
                raw::attach_filter(rec, fd, &f.program)?;
            }
            rec.note("the kernel stamps each frame as it arrives; each line's time is that stamp, read from recvmsg's control message");
            socket::setsockopt_int(rec, fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
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
            filter,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Captures until `count` frames (if given) or `timeout` (if given),
    /// or until a stop signal; shows each frame and writes it to `out`.
    /// `got` counts the frames captured, also when this fails; a stop
    /// signal is [`Error::Interrupted`] after the message tcpdump users expect.
    pub fn capture(
        &self,
        rec: &mut Recorder,
        count: Option<u32>,
        timeout: Option<Duration>,
        show: &Show,
        mut out: Option<&mut PcapFile>,
        got: &mut u64,
    ) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut buf = vec![0u8; SNAP];
        let mut decoder = Decoder::new(show.style);
        while count.is_none_or(|c| *got < u64::from(c)) {
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    rec.waiting(format!(
                        "waiting up to {} ms for a frame on {}",
                        left.as_millis(),
                        self.iface
                    ));
                    Some(left)
                }
                None => {
                    rec.waiting(format!(
                        "waiting for a frame on {} (Ctrl-C stops)",
                        self.iface
                    ));
                    None
                }
            };
            match crate::lab::wait::readable(rec, self.fd(), left) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(Error::Interrupted(sig)) => {
                    // As tcpdump does on Ctrl-C: say what was captured.
                    rec.message(format!(
                        "{} captured before {}",
                        plural(*got, "frame"),
                        crate::lab::signal_name(sig)
                    ));
                    return Err(Error::Interrupted(sig));
                }
                Err(e) => return Err(e),
            }
            let bound = (self.ifindex, self.iface.as_str());
            let filter = self.filter.as_ref();
            let c = packet::recvmsg_ll(rec, self.fd(), &mut buf, bound, |c, data| {
                note(c, data, bound, filter)
            })?;
            let data = &buf[..c.len];
            if filter.is_some_and(|f| !f.accepts(data, c.wire_len)) {
                continue;
            }
            *got += 1;
            let stamp = c.stamp.unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
            });
            let f = decoder.decode(data, c.wire_len);
            rec.message(format!(
                "{} {:<3} {}",
                dump::clock(stamp, show.utc_offset),
                direction(c.from.pkttype),
                f.line
            ));
            for l in dump::payload_lines(show.payload, data, f.net) {
                rec.message(l);
            }
            if let Some(out) = out.as_deref_mut() {
                out.frame(rec, stamp, data, c.wire_len)?;
            }
        }
        if let (Some(c), Some(t)) = (count, timeout) {
            if *got < u64::from(c) {
                rec.message(format!(
                    "stopped after {} s with {got} of {c} frames",
                    t.as_secs_f64()
                ));
            }
        } else if let Some(t) = timeout.filter(|_| count.is_none()) {
            rec.message(format!("stopped after {} s (--timeout)", t.as_secs_f64()));
        }
        Ok(())
    }

    /// The counts tcpdump prints at the end, from the kernel's
    /// PACKET_STATISTICS: `captured` is how many frames this run showed.
    pub fn statistics(&self, rec: &mut Recorder, captured: u64) -> Result<()> {
        let st = packet::getsockopt_packet_statistics(rec, self.fd(), |s| {
            format!(
                "since the socket was made the filter accepted {} (queued or not) and the kernel dropped {} for want of room in the receive queue; reading the counts resets them",
                plural(u64::from(s.packets), "frame"),
                s.drops
            )
        })?;
        rec.message(plural(captured, "packet") + " captured");
        rec.message(plural(u64::from(st.packets), "packet") + " received by filter");
        rec.message(plural(u64::from(st.drops), "packet") + " dropped by kernel");
        Ok(())
    }

    pub fn close(self, rec: &mut Recorder) -> Result<()> {
        file::close(rec, self.fd)?;
        Ok(())
    }
}

/// The note under a recvmsg: size, direction, and why a frame is odd.
fn note(c: &Captured, data: &[u8], bound: (i32, &str), filter: Option<&Filter>) -> String {
    let from: &LinkFrom = &c.from;
    let (ty, dir) = raw::pkttype(from.pkttype);
    let mut s = format!("{} bytes {dir} ({ty})", c.wire_len);
    if c.wire_len > data.len() {
        s.push_str(&format!(
            ", {} of them kept (MSG_TRUNC gave the whole length)",
            data.len()
        ));
    }
    let dropped = filter.is_some_and(|f| !f.accepts(data, c.wire_len));
    if from.ifindex != bound.0 {
        s.push_str(&format!(
            " on interface {}, not {}: queued before bind() narrowed the socket",
            from.ifindex, bound.1
        ));
    } else if dropped {
        s.push_str(": queued before the filter was attached");
    } else if bound.1 == "lo" {
        s.push_str(if from.pkttype == libc::PACKET_OUTGOING {
            ": leaving through lo — it comes back in as the next frame"
        } else {
            ": arriving on lo"
        });
    }
    if dropped {
        s.push_str("; the filter's program, run here, drops it: neither shown nor counted (libpcap avoids such frames by binding to protocol 0 first)");
    }
    s
}
