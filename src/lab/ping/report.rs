//! What ping prints: the note under each send and receive, RTTs as
//! iputils rounds them, and the closing statistics.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::packet::icmp::{self, Family, Kind};
use crate::trace::Recorder;

use super::session::Ping;

/// The statistics, as iputils prints them: a blank line, the heading, the
/// counts, the RTTs.
pub(super) fn summary(p: &Ping<'_>, rec: &mut Recorder, time: Duration) {
    let tx = p.transmitted;
    let rx = p.replies;
    let loss = if tx == 0 {
        0.0
    } else {
        f64::from(tx - rx) * 100.0 / f64::from(tx)
    };
    let mut line = format!("{tx} packets transmitted, {rx} received");
    if p.dups > 0 {
        line.push_str(&format!(", +{} duplicates", p.dups));
    }
    if p.errors > 0 {
        line.push_str(&format!(", +{} errors", p.errors));
    }
    line.push_str(&format!(
        ", {}% packet loss, time {}ms",
        format_g(loss),
        time.as_millis()
    ));
    rec.message("");
    rec.message(format!("--- {} ping statistics ---", p.target_name()));
    rec.message(line);
    if !p.rtts.is_empty() {
        let n = p.rtts.len() as f64;
        let min = p.rtts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = p.rtts.iter().copied().fold(0.0, f64::max);
        let avg = p.rtts.iter().sum::<f64>() / n;
        let avg2 = p.rtts.iter().map(|r| r * r).sum::<f64>() / n;
        let mdev = (avg2 - avg * avg).max(0.0).sqrt();
        rec.message(format!(
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
        ));
    }
}

/// The note under an echo request's sendto.
pub(super) fn send_note(family: Family, dgram: bool, id: u16, seq: u32, msg: &[u8]) -> String {
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
pub(super) fn explain(
    family: Family,
    with_ip: bool,
    rewritten: Option<u16>,
    id: u16,
    target: IpAddr,
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
            let to = icmp::quoted_destination(family, reply.data);
            let whose = match quoted {
                Some((q, _)) if q == id && to.is_some_and(|d| d != target) => format!(
                    "about a request of ours to {}, not to {target}: ignored, as iputils does",
                    to.map_or("?".to_string(), |d| d.to_string())
                ),
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
pub(super) fn rtt_ms(sent: SystemTime, stamp: Option<Duration>) -> f64 {
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
    fn errors_about_requests_to_elsewhere_are_ignored_as_iputils_does() {
        // Destination unreachable quoting our request (id 0xbeef) to 10.0.0.2.
        let mut m = vec![3, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[
            0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        m.extend_from_slice(&icmp::echo_request(Family::V4, 0xbeef, 5, &[])[..8]);
        let c = icmp::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let here: IpAddr = "10.0.0.2".parse().expect("valid");
        let there: IpAddr = "192.0.2.7".parse().expect("valid");
        let ours = explain(Family::V4, false, None, 0xbeef, here, m.len(), &m);
        assert!(ours.contains("about our icmp_seq=5"), "{ours}");
        let other = explain(Family::V4, false, None, 0xbeef, there, m.len(), &m);
        assert!(other.contains("ignored, as iputils does"), "{other}");
    }

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
}
