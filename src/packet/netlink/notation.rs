//! Netlink messages as strace 6.1 prints them inside `iov_base=`: the
//! header, the family's fixed struct, then the attributes by name,
//! nested ones nested:
//!
//! `[{nlmsg_len=40, nlmsg_type=RTM_NEWLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK, nlmsg_seq=3, nlmsg_pid=0}, {ifi_family=AF_UNSPEC, ifi_type=ARPHRD_NETROM, ifi_index=3, ifi_flags=0, ifi_change=0}, [{nla_len=8, nla_type=IFLA_NET_NS_PID}, 4242]]`
//!
//! strace's own habits are kept: one attribute stands alone, two or more
//! are a list; several messages in one buffer are a list of messages; an
//! error's copy of the request is only its header when the kernel capped
//! it. Where strace prints less, ipclab prints more and says so in the
//! README: `ifi_index` stays a number (strace resolves it with
//! if_indextoname in *its* namespace, which names the wrong interface or
//! none), and a veth's `IFLA_INFO_DATA` is decoded (strace shows bytes).
//!
//! Pure: bytes in, text out, never a panic on any input (fuzzed).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::names::{self, Table, Value};

const HDR: usize = 16;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    b.get(i..i + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// A buffer of one or more netlink messages (what `sendmsg` sends or
/// `recvmsg` received), as strace prints it.
pub fn messages(buf: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let Some(len) = u32_at(rest, 0).map(|l| l as usize) else {
            parts.push(raw(rest));
            break;
        };
        if len < HDR || len > rest.len() {
            // A truncated or bad header: what is there, as bytes.
            if rest.len() >= HDR {
                parts.push(format!("[{}, {}]", header(rest), raw(&rest[HDR..])));
            } else {
                parts.push(raw(rest));
            }
            break;
        }
        parts.push(message(&rest[..len]));
        at += align4(len);
    }
    match parts.len() {
        1 => parts.remove(0),
        _ => format!("[{}]", parts.join(", ")),
    }
}

/// `{nlmsg_len=…, nlmsg_type=…, nlmsg_flags=…, nlmsg_seq=…, nlmsg_pid=…}`.
fn header(m: &[u8]) -> String {
    let len = u32_at(m, 0).unwrap_or(0);
    let ty = u16_at(m, 4).unwrap_or(0);
    let fl = u16_at(m, 6).unwrap_or(0);
    let seq = u32_at(m, 8).unwrap_or(0);
    let pid = u32_at(m, 12).unwrap_or(0) as i32;
    format!(
        "{{nlmsg_len={len}, nlmsg_type={}, nlmsg_flags={}, nlmsg_seq={seq}, nlmsg_pid={pid}}}",
        names::msg_type(ty),
        names::msg_flags(ty, fl)
    )
}

/// One whole message (exactly `nlmsg_len` bytes).
fn message(m: &[u8]) -> String {
    let ty = u16_at(m, 4).unwrap_or(0);
    let fl = u16_at(m, 6).unwrap_or(0);
    let body = &m[HDR.min(m.len())..];
    let mut out = format!("[{}", header(m));
    match ty {
        names::NLMSG_ERROR => {
            out.push_str(", ");
            out.push_str(&error(body, fl & 0x100 != 0));
        }
        names::NLMSG_DONE => {
            let _ = match u32_at(body, 0) {
                Some(v) => write!(out, ", {}", v as i32),
                None if body.is_empty() => Ok(()),
                None => write!(out, ", {}", raw(body)),
            };
        }
        _ => {
            if let Some(s) = family_body(ty, body) {
                out.push_str(", ");
                out.push_str(&s);
            } else if !body.is_empty() {
                out.push_str(", ");
                out.push_str(&raw(body));
            }
        }
    }
    out.push(']');
    out
}

/// The struct and attributes of an rtnetlink message, by its type.
fn family_body(ty: u16, body: &[u8]) -> Option<String> {
    let (size, table): (usize, Table) = match ty {
        16..=19 => (16, Table::Ifla),
        20..=23 => (8, Table::Ifa),
        24..=27 => (12, Table::Rta),
        28..=30 => (12, Table::Nda),
        _ => return None,
    };
    if body.len() < size {
        return Some(raw(body));
    }
    let fixed = match table {
        Table::Ifla => ifinfomsg(body),
        Table::Ifa => ifaddrmsg(body),
        Table::Rta => rtmsg(body),
        _ => ndmsg(body),
    };
    let attrs = &body[size..];
    Some(if attrs.is_empty() {
        fixed
    } else {
        format!("{fixed}, {}", attributes(attrs, table))
    })
}

/// `{error=-EEXIST, msg=…}`: the error and the request it answers, whole
/// or (capped) its header only.
fn error(body: &[u8], capped: bool) -> String {
    let Some(code) = u32_at(body, 0).map(|c| c as i32) else {
        return raw(body);
    };
    let req = &body[4..];
    let msg = if req.len() < HDR {
        raw(req)
    } else if capped {
        header(req)
    } else {
        let len = (u32_at(req, 0).unwrap_or(0) as usize).clamp(HDR, req.len());
        message(&req[..len])
    };
    format!("{{error={}, msg={msg}}}", names::error_code(code))
}

fn ifinfomsg(b: &[u8]) -> String {
    let change = u32_at(b, 12).unwrap_or(0);
    format!(
        "{{ifi_family={}, ifi_type={}, ifi_index={}, ifi_flags={}, ifi_change={}}}",
        names::family(b[0]),
        names::arphrd(u16_at(b, 2).unwrap_or(0)),
        u32_at(b, 4).unwrap_or(0) as i32,
        names::bits(u32_at(b, 8).unwrap_or(0), names::IFF, "0"),
        if change == 0 {
            "0".to_string()
        } else {
            format!("{change:#x}")
        }
    )
}

fn ifaddrmsg(b: &[u8]) -> String {
    format!(
        "{{ifa_family={}, ifa_prefixlen={}, ifa_flags={}, ifa_scope={}, ifa_index={}}}",
        names::family(b[0]),
        b[1],
        names::bits(u32::from(b[2]), names::IFA_F, "0"),
        names::scope(b[3]),
        u32_at(b, 4).unwrap_or(0) as i32
    )
}

fn rtmsg(b: &[u8]) -> String {
    format!(
        "{{rtm_family={}, rtm_dst_len={}, rtm_src_len={}, rtm_tos={}, rtm_table={}, rtm_protocol={}, rtm_scope={}, rtm_type={}, rtm_flags={}}}",
        names::family(b[0]),
        b[1],
        b[2],
        b[3],
        names::table(b[4]),
        names::protocol(b[5]),
        names::scope(b[6]),
        names::route_type(b[7]),
        names::bits(u32_at(b, 8).unwrap_or(0), names::RTM_F, "0")
    )
}

fn ndmsg(b: &[u8]) -> String {
    format!(
        "{{ndm_family={}, ndm_ifindex={}, ndm_state={}, ndm_flags={}, ndm_type={}}}",
        names::family(b[0]),
        u32_at(b, 4).unwrap_or(0) as i32,
        names::bits(u32::from(u16_at(b, 8).unwrap_or(0)), names::NUD, "NUD_NONE"),
        names::bits(u32::from(b[10]), names::NTF, "0"),
        names::route_type(b[11])
    )
}

/// A run of attributes: one alone, several as a list (strace's habit).
fn attributes(b: &[u8], table: Table) -> String {
    let mut parts = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let rest = &b[at..];
        let len = u16_at(rest, 0).map_or(0, usize::from);
        if rest.len() < 4 || len < 4 || len > rest.len() {
            parts.push(raw(rest));
            break;
        }
        parts.push(attribute(&rest[..len], table));
        at += align4(len);
    }
    match parts.len() {
        1 => parts.remove(0),
        _ => format!("[{}]", parts.join(", ")),
    }
}

fn attribute(a: &[u8], table: Table) -> String {
    let len = a.len();
    let raw_kind = u16_at(a, 2).unwrap_or(0);
    let nested = raw_kind & 0x8000 != 0;
    let kind = raw_kind & 0x3fff;
    let value = &a[4..];
    let (name, how) = match table.attr(kind) {
        Some((n, v)) => (n.to_string(), v),
        None => (
            format!("{kind:#x} /* {}_??? */", table.prefix()),
            Value::Raw,
        ),
    };
    let name = if nested {
        format!("NLA_F_NESTED|{name}")
    } else {
        name
    };
    let head = format!("{{nla_len={len}, nla_type={name}}}");
    if value.is_empty() {
        return head;
    }
    let shown = match how {
        Value::Link if value.len() >= 16 => {
            let attrs = &value[16..];
            return if attrs.is_empty() {
                format!("[{head}, {}]", ifinfomsg(value))
            } else {
                format!(
                    "[{head}, {}, {}]",
                    ifinfomsg(value),
                    attributes(attrs, Table::Ifla)
                )
            };
        }
        other => value_text(other, value),
    };
    format!("[{head}, {shown}]")
}

fn value_text(how: Value, v: &[u8]) -> String {
    match how {
        Value::Str => {
            let end = v.iter().position(|&c| c == 0);
            let s = &v[..end.unwrap_or(v.len())];
            let q = crate::trace::names::quote_max(s, usize::MAX);
            if end.is_some() {
                q
            } else {
                format!("{q}...")
            }
        }
        Value::U8 if v.len() == 1 => v[0].to_string(),
        Value::U32 if v.len() == 4 => u32_at(v, 0).unwrap_or(0).to_string(),
        Value::Mac if !v.is_empty() => v
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        Value::Ip if v.len() == 4 => {
            format!("inet_addr(\"{}\")", Ipv4Addr::new(v[0], v[1], v[2], v[3]))
        }
        Value::Ip if v.len() == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(v);
            format!("inet_pton(AF_INET6, \"{}\")", Ipv6Addr::from(a))
        }
        Value::Flags(t) if v.len() == 4 => names::bits(u32_at(v, 0).unwrap_or(0), t, "0"),
        Value::Nested(t) => attributes(v, t),
        Value::NdaCacheinfo if v.len() == 16 => format!(
            "{{ndm_confirmed={}, ndm_used={}, ndm_updated={}, ndm_refcnt={}}}",
            u32_at(v, 0).unwrap_or(0),
            u32_at(v, 4).unwrap_or(0),
            u32_at(v, 8).unwrap_or(0),
            u32_at(v, 12).unwrap_or(0)
        ),
        Value::IfaCacheinfo if v.len() == 16 => format!(
            "{{ifa_prefered={}, ifa_valid={}, cstamp={}, tstamp={}}}",
            u32_at(v, 0).unwrap_or(0),
            u32_at(v, 4).unwrap_or(0),
            u32_at(v, 8).unwrap_or(0),
            u32_at(v, 12).unwrap_or(0)
        ),
        _ => raw(v),
    }
}

/// Bytes strace does not decode: a string, in `\x` form when any byte is
/// not printable (as strace prints such buffers).
fn raw(v: &[u8]) -> String {
    if v.iter().all(|b| (0x20..0x7f).contains(b)) {
        return crate::trace::names::quote_max(v, usize::MAX);
    }
    let mut s = String::with_capacity(v.len() * 4 + 2);
    s.push('"');
    for b in v {
        let _ = write!(s, "\\x{b:02x}");
    }
    s.push('"');
    s
}
