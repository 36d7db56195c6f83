//! Data arrows: each write/send with a result > 0 goes to the read/recv
//! that took its bytes, matched by the kernel object behind both steps'
//! descriptors (see the module above).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::super::input::StepRec;
use super::super::model::{Arrow, ArrowKind, Point, Section};

const WRITES: &[&str] = &["write", "writev", "send", "sendto", "sendmsg"];
const READS: &[&str] = &["read", "readv", "recv", "recvfrom", "recvmsg"];

/// Where bytes go or come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Channel {
    /// One byte stream, named the same at both ends.
    Stream(String),
    /// Datagrams: this socket's address, and the other side's when known.
    Dgram { here: Addr, there: Option<Addr> },
}

/// A datagram socket's address: IP and port, or an AF_UNIX name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Addr {
    Inet(SocketAddr),
    /// A path, or `@name` for an abstract (or autobound) one.
    Unix(String),
}

/// One write or read: item, bytes, and its place in time.
#[derive(Debug, Clone)]
struct Xfer {
    item: usize,
    lane: usize,
    bytes: u64,
    /// Writes by when they started, reads by when they returned.
    key: (u64, u64),
}

/// The channel a write or read uses; `peers` knows the other end of each
/// connected AF_UNIX socket seen from either end (a client's first send
/// can come before the server accepts, when the kernel has no inode for
/// that end to name yet).
fn channel(s: &StepRec, sending: bool, peers: &HashMap<String, String>) -> Option<Channel> {
    let o = s.first_object()?;
    match o.proto.as_deref() {
        Some("TCP") => {
            let (l, r) = (o.local.as_ref()?, o.remote.as_ref()?);
            Some(Channel::Stream(if sending {
                format!("tcp {l} > {r}")
            } else {
                format!("tcp {r} > {l}")
            }))
        }
        Some("UNIX") => {
            if let Some(p) = o.peer.as_ref().or_else(|| peers.get(&o.object)) {
                return Some(Channel::Stream(if sending {
                    format!("unix {} > {p}", o.object)
                } else {
                    format!("unix {p} > {}", o.object)
                }));
            }
            let here = Addr::Unix(o.local.clone()?);
            let there = s.args.get(4).and_then(|a| unix_name(a)).map(Addr::Unix);
            Some(Channel::Dgram { here, there })
        }
        Some("UDP") => {
            let here: SocketAddr = o.local.as_ref()?.parse().ok()?;
            let named = s.args.get(4).and_then(|a| sockaddr(a));
            let there = named.or_else(|| o.remote.as_ref().and_then(|r| r.parse().ok()));
            Some(Channel::Dgram {
                here: Addr::Inet(here),
                there: there.map(Addr::Inet),
            })
        }
        Some(_) => None,
        None if o.object.starts_with("pipe:[") => Some(Channel::Stream(o.object.clone())),
        // A FIFO, by its path (a terminal is not a channel between lanes).
        None if o.object.starts_with('/') && !o.object.starts_with("/dev/") => {
            Some(Channel::Stream(o.object.clone()))
        }
        None => None,
    }
}

/// `{sa_family=AF_UNIX, sun_path="/tmp/x/sock"}` → `/tmp/x/sock`;
/// `sun_path=@"93d99"` → `@93d99`, as /proc/net/unix names them.
fn unix_name(arg: &str) -> Option<String> {
    let rest = arg.split("sun_path=").nth(1)?;
    let (at, rest) = match rest.strip_prefix('@') {
        Some(r) => ("@", r),
        None => ("", rest),
    };
    let name = rest.strip_prefix('"')?.split('"').next()?;
    Some(format!("{at}{name}"))
}

/// `{sa_family=AF_INET, sin_port=htons(8989), sin_addr=inet_addr("127.0.0.1")}` → an address.
pub fn sockaddr(arg: &str) -> Option<SocketAddr> {
    let port = arg
        .split("port=htons(")
        .nth(1)?
        .split(')')
        .next()?
        .parse()
        .ok()?;
    let ip: IpAddr = if let Some(r) = arg.split("inet_addr(\"").nth(1) {
        r.split('"').next()?.parse().ok()?
    } else {
        arg.split("inet_pton(AF_INET6, \"")
            .nth(1)?
            .split('"')
            .next()?
            .parse()
            .ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// Two addresses that can be the same socket (either IP may be a wildcard).
fn same(a: &Addr, b: &Addr) -> bool {
    match (a, b) {
        (Addr::Inet(a), Addr::Inet(b)) => {
            a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        }
        (Addr::Unix(a), Addr::Unix(b)) => a == b,
        _ => false,
    }
}

pub(super) fn data(s: &Section, out: &mut Vec<Arrow>) {
    let mut peers: HashMap<String, String> = HashMap::new();
    for st in s.items.iter().filter_map(|it| it.step()) {
        for o in &st.objects {
            if let Some(p) = &o.peer {
                peers.insert(o.object.clone(), p.clone());
                peers.insert(p.clone(), o.object.clone());
            }
        }
    }
    let mut sends: HashMap<Channel, Vec<Xfer>> = HashMap::new();
    let mut recvs: HashMap<Channel, Vec<Xfer>> = HashMap::new();
    let mut dgram_sends: Vec<(Channel, Xfer)> = Vec::new();
    let mut dgram_recvs: Vec<(Channel, Xfer)> = Vec::new();
    for (i, it) in s.items.iter().enumerate() {
        let Some(st) = it.step() else { continue };
        let Some(bytes) = st.ret.filter(|&r| r > 0 && st.errno.is_none()) else {
            continue;
        };
        let sending = WRITES.contains(&st.syscall.as_str());
        if !sending && !READS.contains(&st.syscall.as_str()) {
            continue;
        }
        let Some(ch) = channel(st, sending, &peers) else {
            continue;
        };
        let key = if sending {
            (st.t_us.unwrap_or(u64::MAX), st.seq)
        } else {
            (st.end_us().unwrap_or(u64::MAX), st.seq)
        };
        let x = Xfer {
            item: i,
            lane: it.lane,
            bytes: bytes as u64,
            key,
        };
        match (&ch, sending) {
            (Channel::Stream(_), true) => sends.entry(ch).or_default().push(x),
            (Channel::Stream(_), false) => recvs.entry(ch).or_default().push(x),
            (Channel::Dgram { .. }, true) => dgram_sends.push((ch, x)),
            (Channel::Dgram { .. }, false) => dgram_recvs.push((ch, x)),
        }
    }
    let mut channels: Vec<&Channel> = recvs.keys().collect();
    channels.sort_by_key(|c| format!("{c:?}"));
    for ch in channels {
        let (Some(w), Some(r)) = (sends.get(ch), recvs.get(ch)) else {
            continue;
        };
        stream(w.clone(), r.clone(), out);
    }
    datagrams(dgram_sends, dgram_recvs, out);
}

/// Deals a stream's written bytes out to its reads, in order.
fn stream(mut writes: Vec<Xfer>, mut reads: Vec<Xfer>, out: &mut Vec<Arrow>) {
    writes.sort_by_key(|x| x.key);
    reads.sort_by_key(|x| x.key);
    let mut queue = writes
        .into_iter()
        .map(|w| (w.bytes, w))
        .collect::<std::collections::VecDeque<_>>();
    for r in reads {
        let mut need = r.bytes;
        let mut taken: Vec<(Xfer, u64)> = Vec::new();
        while need > 0 {
            let Some((left, w)) = queue.front_mut() else {
                break;
            };
            let k = (*left).min(need);
            taken.push((w.clone(), k));
            *left -= k;
            need -= k;
            if *left == 0 {
                queue.pop_front();
            }
        }
        let several = taken.len() > 1;
        for (w, k) in taken {
            if w.lane == r.lane {
                // Its own bytes back (one process at both ends): no arrow between lanes.
                continue;
            }
            let piece = several || k < w.bytes;
            out.push(Arrow {
                kind: ArrowKind::Data,
                from: Some(Point {
                    lane: w.lane,
                    item: w.item,
                }),
                to: Point {
                    lane: r.lane,
                    item: r.item,
                },
                label: if k < w.bytes {
                    format!("{k} of {} B", w.bytes)
                } else {
                    format!("{k} B")
                },
                bytes: Some(k),
                piece,
            });
        }
    }
}

/// Each datagram to the first later recv on the socket it was sent to.
fn datagrams(
    mut sends: Vec<(Channel, Xfer)>,
    mut recvs: Vec<(Channel, Xfer)>,
    out: &mut Vec<Arrow>,
) {
    sends.sort_by_key(|(_, x)| x.key);
    recvs.sort_by_key(|(_, x)| x.key);
    let mut used = vec![false; sends.len()];
    for (rch, r) in recvs {
        let Channel::Dgram {
            here: at,
            there: from,
        } = rch
        else {
            continue;
        };
        let found = sends.iter().enumerate().position(|(k, (sch, w))| {
            let Channel::Dgram {
                here: src,
                there: dst,
            } = sch
            else {
                return false;
            };
            !used[k]
                && w.lane != r.lane
                && dst.as_ref().is_some_and(|d| same(d, &at))
                && from.as_ref().is_none_or(|f| same(f, src))
        });
        let Some(k) = found else { continue };
        used[k] = true;
        let w = &sends[k].1;
        out.push(Arrow {
            kind: ArrowKind::Data,
            from: Some(Point {
                lane: w.lane,
                item: w.item,
            }),
            to: Point {
                lane: r.lane,
                item: r.item,
            },
            label: if r.bytes < w.bytes {
                format!("{} of {} B", r.bytes, w.bytes)
            } else {
                format!("{} B", w.bytes)
            },
            bytes: Some(r.bytes.min(w.bytes)),
            piece: r.bytes < w.bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_strace_notation_are_read() {
        assert_eq!(
            sockaddr(
                "{sa_family=AF_INET, sin_port=htons(8989), sin_addr=inet_addr(\"127.0.0.1\")}"
            ),
            Some("127.0.0.1:8989".parse().expect("valid"))
        );
        assert_eq!(
            sockaddr("{sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}"),
            Some("[::1]:53".parse().expect("valid"))
        );
        assert_eq!(sockaddr("NULL"), None);
        assert_eq!(
            unix_name("{sa_family=AF_UNIX, sun_path=\"/tmp/x/sock\"}").as_deref(),
            Some("/tmp/x/sock")
        );
        assert_eq!(
            unix_name("{sa_family=AF_UNIX, sun_path=@\"93d99\"}").as_deref(),
            Some("@93d99")
        );
    }

    #[test]
    fn a_stream_is_dealt_out_in_order() {
        let x = |item, lane, bytes, key| Xfer {
            item,
            lane,
            bytes,
            key: (key, 0),
        };
        let mut out = Vec::new();
        // One write of 5 read as 2 + 3; then writes of 1 and 1 read at once.
        stream(
            vec![x(0, 0, 5, 1), x(3, 0, 1, 5), x(4, 0, 1, 6)],
            vec![x(1, 1, 2, 2), x(2, 1, 3, 3), x(5, 1, 2, 7)],
            &mut out,
        );
        let got: Vec<(usize, usize, &str, bool)> = out
            .iter()
            .map(|a| {
                (
                    a.from.expect("from").item,
                    a.to.item,
                    a.label.as_str(),
                    a.piece,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, 1, "2 of 5 B", true),
                (0, 2, "3 of 5 B", true),
                (3, 5, "1 B", true),
                (4, 5, "1 B", true)
            ]
        );
    }
}
