//! What `ipclab sniff` adds to the `AF_PACKET` calls of [`super::raw`]:
//! `recvmsg` of one frame with the kernel's receive time stamp
//! (`SO_TIMESTAMPNS`) and its length on the wire (`MSG_TRUNC`), and
//! `getsockopt(SOL_PACKET, PACKET_STATISTICS)`, the counts tcpdump prints
//! at the end. See <https://man7.org/linux/man-pages/man7/packet.7.html>.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self as sock, ControlMessageOwned, MsgFlags};

use super::raw::{pkttype, LinkFrom};
use crate::error::SysError;
use crate::trace::names::quote;
use crate::trace::{Call, Recorder, Shown};

/// One frame as [`recvmsg_ll`] received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    /// Bytes placed in the buffer.
    pub len: usize,
    /// The frame's whole length (the return value, thanks to `MSG_TRUNC`):
    /// more than `len` when the buffer was too small.
    pub wire_len: usize,
    pub from: LinkFrom,
    /// The kernel's receive time (`SCM_TIMESTAMPNS`, CLOCK_REALTIME).
    pub stamp: Option<Duration>,
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

fn hatype(t: u16) -> String {
    match t {
        libc::ARPHRD_ETHER => "ARPHRD_ETHER".into(),
        libc::ARPHRD_LOOPBACK => "ARPHRD_LOOPBACK".into(),
        other => other.to_string(),
    }
}

/// Corresponds to `recvmsg(fd, &msg, MSG_TRUNC)` on an `AF_PACKET` socket
/// with `SO_TIMESTAMPNS` on: one frame into `buf`, where it came from
/// (`sockaddr_ll`: interface, direction), when the kernel received it, and
/// — `MSG_TRUNC` on a packet socket — its real length even when `buf` was
/// too short. `bound` names the interface the socket is bound to, for
/// strace's `if_nametoindex("lo")`; `explain` writes the note.
///
/// # Errors
/// `EAGAIN`, `EINTR`, `ENETDOWN`.
pub fn recvmsg_ll(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    bound: (i32, &str),
    explain: impl FnOnce(&Captured, &[u8]) -> String,
) -> Result<Captured, SysError> {
    let raw = fd.as_raw_fd();
    let cap = buf.len();
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let call = Call::new("recvmsg").may_wait(raw.to_string(), "waiting for a frame");
    let pending = rec.begin(call);
    let result = {
        let mut iov = [IoSliceMut::new(buf)];
        sock::recvmsg::<sock::LinkAddr>(raw, &mut iov, Some(&mut cmsg), MsgFlags::MSG_TRUNC).map(
            |m| {
                let from = m.address.as_ref().map_or(
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
                let halen = m.address.as_ref().map_or(0, |a| a.halen());
                let addr = m.address.as_ref().and_then(|a| a.addr()).unwrap_or([0; 6]);
                let mut got = Captured {
                    len: m.bytes.min(cap),
                    wire_len: m.bytes,
                    from,
                    stamp: None,
                };
                let mut cmsgs = Vec::new();
                if let Ok(it) = m.cmsgs() {
                    for c in it {
                        match c {
                            ControlMessageOwned::ScmTimestampns(ts) => {
                                got.stamp = Some(Duration::new(
                                    ts.tv_sec().max(0) as u64,
                                    ts.tv_nsec().clamp(0, 999_999_999) as u32,
                                ));
                                cmsgs.push(format!(
                                    "{{cmsg_len=32, cmsg_level=SOL_SOCKET, cmsg_type=SO_TIMESTAMPNS_OLD, cmsg_data={{tv_sec={}, tv_nsec={}}}}}",
                                    ts.tv_sec(),
                                    ts.tv_nsec()
                                ));
                            }
                            _ => cmsgs.push("{…}".into()),
                        }
                    }
                }
                let truncated = m.flags.contains(MsgFlags::MSG_TRUNC);
                (got, halen, addr, cmsgs, truncated)
            },
        )
    };
    rec.end(pending, result, |r| match r {
        Ok((got, halen, addr, cmsgs, truncated)) => {
            let data = &buf[..got.len];
            let ifindex = if got.from.ifindex == bound.0 {
                format!("if_nametoindex({})", quote(bound.1.as_bytes()))
            } else {
                got.from.ifindex.to_string()
            };
            let sll_addr = addr[..(*halen).min(6)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(", ");
            let name = format!(
                "{{sa_family=AF_PACKET, sll_protocol={}, sll_ifindex={ifindex}, sll_hatype={}, sll_pkttype={}, sll_halen={halen}, sll_addr=[{sll_addr}]}}",
                ethertype(got.from.protocol),
                hatype(got.from.hatype),
                pkttype(got.from.pkttype).0
            );
            let controllen = 32 * cmsgs.len();
            let msg = format!(
                "{{msg_name={name}, msg_namelen=20, msg_iov=[{{iov_base={}, iov_len={cap}}}], msg_iovlen=1, msg_control=[{}], msg_controllen={controllen}, msg_flags={}}}",
                quote(data),
                cmsgs.join(", "),
                if *truncated { "MSG_TRUNC" } else { "0" }
            );
            let note = explain(got, data);
            Shown::new(
                vec![raw.to_string(), msg, "MSG_TRUNC".into()],
                got.wire_len as i64,
                note,
            )
        }
        Err(_) => Shown::new(
            vec![raw.to_string(), "0x…".into(), "MSG_TRUNC".into()],
            -1,
            "",
        ),
    })
    .map(|(got, ..)| got)
}

/// What `PACKET_STATISTICS` reports since the socket was made (or last asked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Frames the filter accepted, queued or not (`tp_packets`; the kernel
    /// adds the drops in before answering).
    pub packets: u32,
    /// Frames dropped because the receive queue was full (`tp_drops`).
    pub drops: u32,
}

/// Corresponds to `getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len)`:
/// the counts libpcap turns into tcpdump's "received by filter" and
/// "dropped by kernel". Reading them resets them to 0.
///
/// # Errors
/// `ENOPROTOOPT` (not a packet socket), `EBADF`.
pub fn getsockopt_packet_statistics(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    note: impl FnOnce(&PacketStats) -> String,
) -> Result<PacketStats, SysError> {
    let raw = fd.as_raw_fd();
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    let pending = rec.begin(Call::new("getsockopt"));
    // SAFETY: `st` and `len` are live locals; `len` is the size of `st`,
    // which the kernel fills (struct tpacket_stats, two unsigned ints).
    let r = unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            std::ptr::from_mut(&mut st).cast(),
            &mut len,
        )
    };
    let r = Errno::result(r).map(|_| PacketStats {
        packets: st.tp_packets,
        drops: st.tp_drops,
    });
    rec.end(pending, r, |r| {
        let (value, text) = match r {
            Ok(s) => (
                format!("{{tp_packets={}, tp_drops={}}}", s.packets, s.drops),
                note(s),
            ),
            Err(_) => ("0x…".to_string(), String::new()),
        };
        Shown::new(
            vec![
                raw.to_string(),
                "SOL_PACKET".into(),
                "PACKET_STATISTICS".into(),
                value,
                format!("[{len}]"),
            ],
            0,
            text,
        )
    })
}
