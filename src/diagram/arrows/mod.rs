//! The arrows between lanes, found from the steps' kernel objects.
//!
//! - data: each write/send with a result > 0 goes to the read/recv that
//!   took its bytes. A byte stream (a pipe or FIFO, by its object; a TCP
//!   connection, by its two addresses; a connected AF_UNIX socket, by its
//!   inode and its peer's) is read in the order it was written: the bytes
//!   are dealt out in order, so a write read in pieces gives several
//!   arrows, and a read that took several writes gets one from each. A
//!   datagram (UDP, AF_UNIX) goes whole to the first later recv on the
//!   socket whose address it was sent to, from the sender's address.
//! - connect → accept (by the connection's addresses or AF_UNIX peer),
//!   a FIFO's open for writing ↔ its open for reading (each waits for the
//!   other: from the second to the first),
//!   fork → the child's first event, the child's exit → the wait4 that
//!   reaped it, a signal → its delivery (or the death it caused), futex
//!   FUTEX_WAKE → the FUTEX_WAIT it ended, and each frame sniff captured,
//!   between the addresses it names.
//!
//! Indices are of the section's items in the order the run wrote them.

mod data;

pub use data::sockaddr;

use super::input::StepRec;
use super::model::{is_fork, Arrow, ArrowKind, Kind, LaneKey, Point, Section};

/// Every arrow of a section whose items are still in file order.
pub fn find(s: &mut Section) -> Vec<Arrow> {
    let mut out = Vec::new();
    data::data(s, &mut out);
    connects(s, &mut out);
    fifo_opens(s, &mut out);
    forks(s, &mut out);
    signals(s, &mut out);
    wakes(s, &mut out);
    packets(s, &mut out);
    out
}

fn point(s: &Section, item: usize) -> Point {
    Point {
        lane: s.items[item].lane,
        item,
    }
}

fn arrow(kind: ArrowKind, from: Option<Point>, to: Point, label: String) -> Arrow {
    Arrow {
        kind,
        from,
        to,
        label,
        bytes: None,
        piece: false,
    }
}

/// connect → the accept that returned the other end of that connection.
fn connects(s: &Section, out: &mut Vec<Arrow>) {
    let connects: Vec<(usize, &StepRec)> = s
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| it.step().map(|st| (i, st)))
        .filter(|(_, st)| {
            st.syscall == "connect"
                && (st.errno.is_none() || st.errno.as_deref() == Some("EINPROGRESS"))
        })
        .collect();
    for (i, it) in s.items.iter().enumerate() {
        let Some(st) = it.step() else { continue };
        if !matches!(st.syscall.as_str(), "accept4" | "accept") {
            continue;
        }
        let Some(new) = st.ret.filter(|&r| r >= 0).and_then(|r| st.object(r as i32)) else {
            continue;
        };
        let found = connects.iter().find(|(_, c)| {
            let Some(o) = c.first_object() else {
                return false;
            };
            match (&new.peer, &new.local, &new.remote) {
                (Some(peer), _, _) => *peer == o.object,
                (None, Some(l), Some(r)) => {
                    o.local.as_ref() == Some(r) && o.remote.as_ref() == Some(l)
                }
                _ => false,
            }
        });
        if let Some(&(c, _)) = found {
            if s.items[c].lane != it.lane {
                out.push(arrow(
                    ArrowKind::Connect,
                    Some(point(s, c)),
                    point(s, i),
                    "connect".into(),
                ));
            }
        }
    }
}

/// The two opens of one FIFO, for reading and for writing, in two
/// processes: each blocks until the other comes, so an arrow goes from
/// the later one to the earlier one that it set free.
fn fifo_opens(s: &Section, out: &mut Vec<Arrow>) {
    let waited: Vec<usize> = s
        .items
        .iter()
        .filter_map(|it| match &it.kind {
            Kind::Waiting {
                syscall,
                until: Some(u),
                ..
            } if syscall == "openat" => Some(*u),
            _ => None,
        })
        .collect();
    let opens: Vec<(usize, &StepRec, bool)> = s
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| {
            let st = it.step().filter(|st| st.syscall == "openat")?;
            let o = st.object(i32::try_from(st.ret?).ok()?)?;
            if !o.object.starts_with('/') {
                return None;
            }
            let mode = st.args.get(2)?;
            let write = mode.starts_with("O_WRONLY");
            (write || mode.starts_with("O_RDONLY")).then_some((i, st, write))
        })
        .collect();
    let mut used = Vec::new();
    for &(w, ws, _) in opens.iter().filter(|o| o.2) {
        let path = ws.object(ws.ret.unwrap_or(-1) as i32).map(|o| &o.object);
        let found = opens.iter().find(|&&(r, rs, write)| {
            !write
                && !used.contains(&r)
                && s.items[r].lane != s.items[w].lane
                && (waited.contains(&r) || waited.contains(&w))
                && rs.object(rs.ret.unwrap_or(-1) as i32).map(|o| &o.object) == path
        });
        let Some(&(r, rs, _)) = found else { continue };
        used.push(r);
        // The one that came second set the other free.
        let (from, to) = if rs.t_us.unwrap_or(0) >= ws.t_us.unwrap_or(0) {
            (r, w)
        } else {
            (w, r)
        };
        out.push(arrow(
            ArrowKind::Connect,
            Some(point(s, from)),
            point(s, to),
            "both ends open".into(),
        ));
    }
}

/// fork → the child's first event; the child's end → the wait4 that reaped it.
fn forks(s: &Section, out: &mut Vec<Arrow>) {
    let first_of = |pid: i64| {
        let lane = s
            .lanes
            .iter()
            .position(|l| l.key == LaneKey::Pid(pid as i32))?;
        s.items.iter().position(|it| it.lane == lane)
    };
    for (i, it) in s.items.iter().enumerate() {
        let Some(st) = it.step() else { continue };
        let Some(child) = st.ret.filter(|&r| r > 0) else {
            continue;
        };
        if is_fork(st) {
            if let Some(f) = first_of(child) {
                out.push(arrow(
                    ArrowKind::Fork,
                    Some(point(s, i)),
                    point(s, f),
                    "fork".into(),
                ));
            }
        } else if matches!(st.syscall.as_str(), "wait4" | "waitid" | "waitpid") {
            let Some(lane) = s
                .lanes
                .iter()
                .position(|l| l.key == LaneKey::Pid(child as i32))
            else {
                continue;
            };
            let end = s
                .items
                .iter()
                .position(|x| x.lane == lane && matches!(x.kind, Kind::Exit { .. }))
                .or_else(|| s.items.iter().rposition(|x| x.lane == lane));
            if let Some(e) = end {
                let label = match &s.items[e].kind {
                    Kind::Exit {
                        signal: Some(sig), ..
                    } => format!("killed by {sig}"),
                    Kind::Exit {
                        status: Some(c), ..
                    } => format!("exit {c}"),
                    _ => "exit".into(),
                };
                out.push(arrow(
                    ArrowKind::Reap,
                    Some(point(s, e)),
                    point(s, i),
                    label,
                ));
            }
        }
    }
}

/// A signal from its sender (a kill step, a child's exit for SIGCHLD, or
/// the sender's last event) to its delivery; a kill that killed, to the death.
fn signals(s: &Section, out: &mut Vec<Arrow>) {
    let lane_of = |pid: i32| s.lanes.iter().position(|l| l.key == LaneKey::Pid(pid));
    let kill_to = |pid: i32, sig: &str, before: usize| {
        (0..before).rev().find(|&k| {
            s.items[k].step().is_some_and(|st| {
                st.syscall == "kill"
                    && st.ret == Some(0)
                    && st.args.first().and_then(|a| a.parse::<i32>().ok()) == Some(pid)
                    && st.args.get(1).is_some_and(|a| a == sig)
            })
        })
    };
    for (i, it) in s.items.iter().enumerate() {
        let LaneKey::Pid(me) = s.lanes[it.lane].key else {
            continue;
        };
        match &it.kind {
            Kind::Signal { signal, from } => {
                if *from == me {
                    continue;
                }
                let source = kill_to(me, signal, i).or_else(|| {
                    let l = lane_of(*from)?;
                    let exit = (signal == "SIGCHLD")
                        .then(|| {
                            (0..i).rev().find(|&k| {
                                s.items[k].lane == l && matches!(s.items[k].kind, Kind::Exit { .. })
                            })
                        })
                        .flatten();
                    exit.or_else(|| (0..i).rev().find(|&k| s.items[k].lane == l))
                });
                let label = match source {
                    Some(_) => signal.clone(),
                    None if *from > 0 => format!("{signal} from pid {from}"),
                    None => format!("{signal} from the kernel"),
                };
                out.push(arrow(
                    ArrowKind::Signal,
                    source.map(|k| point(s, k)),
                    point(s, i),
                    label,
                ));
            }
            Kind::Exit {
                signal: Some(sig), ..
            } => {
                let delivered = s.items[..i].iter().any(|x| {
                    x.lane == it.lane
                        && matches!(&x.kind, Kind::Signal { signal, .. } if signal == sig)
                });
                if let (false, Some(k)) = (delivered, kill_to(me, sig, s.items.len())) {
                    out.push(arrow(
                        ArrowKind::Signal,
                        Some(point(s, k)),
                        point(s, i),
                        sig.clone(),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// futex FUTEX_WAKE → the FUTEX_WAIT on the same word, in another lane, that it ended.
fn wakes(s: &Section, out: &mut Vec<Arrow>) {
    let futex = |i: usize, op: &str| {
        s.items[i]
            .step()
            .filter(|st| st.syscall == "futex" && st.args.get(1).is_some_and(|a| a.starts_with(op)))
    };
    let mut used = Vec::new();
    for i in 0..s.items.len() {
        let Some(wake) = futex(i, "FUTEX_WAKE").filter(|st| st.ret.is_some_and(|r| r >= 1)) else {
            continue;
        };
        let mut waits: Vec<usize> = (0..s.items.len())
            .filter(|&k| !used.contains(&k) && s.items[k].lane != s.items[i].lane)
            .filter(|&k| {
                futex(k, "FUTEX_WAIT").is_some_and(|w| {
                    w.ret == Some(0)
                        && w.args.first() == wake.args.first()
                        && w.end_us().unwrap_or(u64::MAX) >= wake.t_us.unwrap_or(0)
                })
            })
            .collect();
        waits.sort_by_key(|&k| s.items[k].step().and_then(StepRec::end_us));
        if let Some(&k) = waits.first() {
            used.push(k);
            out.push(arrow(
                ArrowKind::Wake,
                Some(point(s, i)),
                point(s, k),
                "FUTEX_WAKE".into(),
            ));
        }
    }
}

/// `#3 out    74 B  ETH … IPv4 127.0.0.1 > 127.0.0.1 ttl 64 len 60 TCP 41234 > 8989 [SYN] …`
/// → (source, destination, label).
pub fn packet(text: &str) -> Option<(String, String, String)> {
    let (num, rest) = text.strip_prefix('#')?.split_once(' ')?;
    num.parse::<u32>().ok()?;
    let net = rest
        .split(" IPv4 ")
        .nth(1)
        .or_else(|| rest.split(" IPv6 ").nth(1))?;
    let mut w = net.split_whitespace();
    let (a, gt, b) = (w.next()?, w.next()?, w.next()?);
    if gt != ">" {
        return None;
    }
    for proto in ["TCP", "UDP"] {
        if let Some(t) = net.split(&format!(" {proto} ")).nth(1) {
            let mut w = t.split_whitespace();
            let (p, _, q) = (w.next()?, w.next()?, w.next()?);
            let join = |ip: &str, port: &str| {
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            };
            let label = if proto == "TCP" {
                let flags = t.split('[').nth(1)?.split(']').next()?;
                format!("#{num} [{flags}]")
            } else {
                format!("#{num} UDP")
            };
            return Some((join(a, p), join(b, q), label));
        }
    }
    let what = if net.contains("ICMP") { "ICMP" } else { "IP" };
    Some((a.to_string(), b.to_string(), format!("#{num} {what}")))
}

/// Each captured frame, between lanes for the addresses it names.
fn packets(s: &mut Section, out: &mut Vec<Arrow>) {
    for i in 0..s.items.len() {
        let Kind::Message(text) = &s.items[i].kind else {
            continue;
        };
        let Some((src, dst, label)) = packet(text) else {
            continue;
        };
        if src == dst {
            continue;
        }
        let from = s.lane_of(LaneKey::Host(src));
        let to = s.lane_of(LaneKey::Host(dst));
        out.push(arrow(
            ArrowKind::Packet,
            Some(Point {
                lane: from,
                item: i,
            }),
            Point { lane: to, item: i },
            label,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_frames_name_their_ends() {
        let t = "#1 out    74 B  ETH 00:00:00:00:00:00 > 00:00:00:00:00:00 IPv4 127.0.0.1 > 127.0.0.1 ttl 64 len 60 TCP 41234 > 8989 [SYN] seq=1 ack=0 win=65495 len=0";
        assert_eq!(
            packet(t),
            Some((
                "127.0.0.1:41234".into(),
                "127.0.0.1:8989".into(),
                "#1 [SYN]".into()
            ))
        );
        assert_eq!(packet("reply: hello"), None);
        assert_eq!(packet("#2 frames captured"), None);
    }
}
