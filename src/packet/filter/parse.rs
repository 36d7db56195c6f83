//! tcpdump's filter expressions (pcap-filter(7)), the part ipclab
//! compiles: protocols, ports, hosts, `and`/`or`/`not` (`&&`, `||`, `!`)
//! and parentheses. As in tcpdump, `not` binds tighter than `and` and `or`,
//! which have the same precedence and group from the left, and a bare value
//! repeats the qualifiers before it: `port 80 or 443` is
//! `port 80 or port 443`.

use std::net::IpAddr;

use crate::packet::ParseError;

/// What a filter may contain, for error messages.
pub const VALID: &str = "port N, src|dst port N, host ADDR, src|dst host ADDR, \
    tcp|udp|sctp [src|dst] port N, ip|ip6 [src|dst] host ADDR, \
    tcp, udp, icmp, icmp6, sctp, ip, ip6, arp, and/or/not (&&, ||, !), ( )";

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Prim(Prim),
}

/// A protocol named on its own (`tcp`) or before a port or host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoName {
    Ip,
    Ip6,
    Arp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmp6,
}

impl ProtoName {
    fn from_word(w: &str) -> Option<ProtoName> {
        Some(match w {
            "ip" => ProtoName::Ip,
            "ip6" => ProtoName::Ip6,
            "arp" => ProtoName::Arp,
            "tcp" => ProtoName::Tcp,
            "udp" => ProtoName::Udp,
            "sctp" => ProtoName::Sctp,
            "icmp" => ProtoName::Icmp,
            "icmp6" => ProtoName::Icmp6,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ProtoName::Ip => "ip",
            ProtoName::Ip6 => "ip6",
            ProtoName::Arp => "arp",
            ProtoName::Tcp => "tcp",
            ProtoName::Udp => "udp",
            ProtoName::Sctp => "sctp",
            ProtoName::Icmp => "icmp",
            ProtoName::Icmp6 => "icmp6",
        }
    }
}

/// Which address or port a primitive looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    /// `src or dst`, the default.
    Either,
    /// `src and dst`.
    Both,
}

/// One test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prim {
    Proto(ProtoName),
    /// `[tcp|udp|sctp] [dir] port N`; no protocol means any of the three.
    Port {
        proto: Option<ProtoName>,
        dir: Dir,
        port: u16,
    },
    /// `[ip|ip6] [dir] host A`.
    Host {
        proto: Option<ProtoName>,
        dir: Dir,
        addr: IpAddr,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Port,
    Host,
}

/// The qualifiers of the last primitive, which a bare value repeats.
#[derive(Debug, Clone, Copy)]
struct Quals {
    proto: Option<ProtoName>,
    dir: Dir,
    kind: Kind,
}

/// Splits on spaces and around `(`, `)`, `!`, `&&`, `||`.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => flush(&mut word, &mut out),
            '(' | ')' | '!' => {
                flush(&mut word, &mut out);
                out.push(c.to_string());
            }
            '&' | '|' if chars.peek() == Some(&c) => {
                flush(&mut word, &mut out);
                chars.next();
                out.push(format!("{c}{c}"));
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
    last: Option<Quals>,
}

fn err(msg: String) -> ParseError {
    ParseError(msg)
}

/// Parses a tcpdump filter expression.
///
/// # Errors
/// The first token that does not fit, and what would.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let toks = tokens(text);
    if toks.is_empty() {
        return Err(err(format!(
            "filter is empty: give an expression of {VALID}"
        )));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        last: None,
    };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(")") => Err(err(format!(
            "filter: unmatched \")\" at word {}",
            p.pos + 1
        ))),
        Some(t) => Err(err(format!(
            "filter: \"{t}\" at word {} follows a complete expression: join with and/or",
            p.pos + 1
        ))),
    }
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }

    fn peek_at(&self, ahead: usize) -> Option<&str> {
        self.toks.get(self.pos + ahead).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        match self.peek() {
            Some(t) => err(format!(
                "filter: unexpected \"{t}\" at word {}: expected {wanted}",
                self.pos + 1
            )),
            None => err(format!("filter ends too soon: expected {wanted}")),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.pos += 1;
            let r = self.and()?;
            e = Expr::Or(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    // pcap's grammar gives `and` and `or` one precedence, left to right:
    // `a or b and c` is `(a or b) and c`. Kept as tcpdump reads it.
    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        loop {
            match self.peek() {
                Some("and" | "&&") => {
                    self.pos += 1;
                    let r = self.unary()?;
                    e = Expr::And(Box::new(e), Box::new(r));
                }
                Some("or" | "||") => {
                    self.pos += 1;
                    let r = self.unary()?;
                    e = Expr::Or(Box::new(e), Box::new(r));
                }
                _ => return Ok(e),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some("not" | "!") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.pos += 1;
                let e = self.or()?;
                if self.peek() != Some(")") {
                    return Err(self.unexpected("\")\" to close the \"(\""));
                }
                self.pos += 1;
                Ok(e)
            }
            _ => self.primitive().map(Expr::Prim),
        }
    }

    fn dir(&mut self) -> Option<Dir> {
        let d = match self.peek()? {
            "src" => Dir::Src,
            "dst" => Dir::Dst,
            _ => return None,
        };
        self.pos += 1;
        // `src or dst`, `src and dst` (either order) are directions too.
        if let (Some(conj @ ("or" | "and")), Some(other @ ("src" | "dst"))) =
            (self.peek(), self.peek_at(1))
        {
            if (other == "dst") == (d == Dir::Src) {
                let both = conj == "and";
                self.pos += 2;
                return Some(if both { Dir::Both } else { Dir::Either });
            }
        }
        Some(d)
    }

    fn primitive(&mut self) -> Result<Prim, ParseError> {
        let start = self.pos;
        let proto = self.peek().and_then(ProtoName::from_word);
        if proto.is_some() {
            self.pos += 1;
        }
        let dir = self.dir();
        let kind = match self.peek() {
            Some("port") => Some(Kind::Port),
            Some("host") => Some(Kind::Host),
            _ => None,
        };
        if kind.is_some() {
            self.pos += 1;
        }
        match (proto, dir, kind) {
            // A protocol alone: `tcp`.
            (Some(p), None, None) => {
                self.last = None;
                Ok(Prim::Proto(p))
            }
            // Nothing: a bare value repeats the last qualifiers.
            (None, None, None) => {
                let Some(q) = self.last else {
                    return Err(self.unexpected(&format!("a primitive ({VALID})")));
                };
                self.value(q, start)
            }
            _ => {
                let q = Quals {
                    proto,
                    dir: dir.unwrap_or(Dir::Either),
                    kind: kind.unwrap_or(Kind::Host),
                };
                self.value(q, start)
            }
        }
    }

    fn value(&mut self, q: Quals, start: usize) -> Result<Prim, ParseError> {
        let at = self.pos + 1;
        let word = match self.peek() {
            Some(w) if !matches!(w, "(" | ")" | "!" | "&&" | "||" | "and" | "or" | "not") => {
                w.to_string()
            }
            _ => {
                let what = match q.kind {
                    Kind::Port => "a port number",
                    Kind::Host => "an IPv4 or IPv6 address",
                };
                return Err(self.unexpected(what));
            }
        };
        self.next();
        let prim = match q.kind {
            Kind::Port => {
                if let Some(p) = q
                    .proto
                    .filter(|p| !matches!(p, ProtoName::Tcp | ProtoName::Udp | ProtoName::Sctp))
                {
                    return Err(err(format!(
                        "filter: \"{} port\" at word {}: only tcp, udp or sctp may qualify a port",
                        p.name(),
                        start + 1
                    )));
                }
                let port = word
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p <= 65535)
                    .ok_or_else(|| {
                        err(format!(
                            "filter: port \"{word}\" at word {at}: give a number from 0 to 65535 (service names are not looked up)"
                        ))
                    })?;
                Prim::Port {
                    proto: q.proto,
                    dir: q.dir,
                    port: port as u16,
                }
            }
            Kind::Host => {
                let addr: IpAddr = word.parse().map_err(|_| {
                    err(format!(
                        "filter: host \"{word}\" at word {at}: give an IPv4 or IPv6 address, whole (names and networks are not looked up)"
                    ))
                })?;
                match (q.proto, addr) {
                    (None, _) | (Some(ProtoName::Ip), IpAddr::V4(_)) => {}
                    (Some(ProtoName::Ip6), IpAddr::V6(_)) => {}
                    (Some(p), _) => {
                        return Err(err(format!(
                            "filter: \"{} host {word}\" at word {}: a host takes ip (IPv4 address) or ip6 (IPv6 address) before it",
                            p.name(),
                            start + 1
                        )))
                    }
                }
                Prim::Host {
                    proto: q.proto,
                    dir: q.dir,
                    addr,
                }
            }
        };
        self.last = Some(q);
        Ok(prim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(proto: Option<ProtoName>, dir: Dir, port: u16) -> Expr {
        Expr::Prim(Prim::Port { proto, dir, port })
    }

    #[test]
    fn tokens_split_around_operators() {
        assert_eq!(
            tokens("!tcp&&(port 1||port 2)"),
            ["!", "tcp", "&&", "(", "port", "1", "||", "port", "2", ")"]
        );
    }

    #[test]
    fn parses_the_issue_example_and_qualifiers() {
        assert_eq!(
            parse("tcp and port 8989").expect("parses"),
            Expr::And(
                Box::new(Expr::Prim(Prim::Proto(ProtoName::Tcp))),
                Box::new(port(None, Dir::Either, 8989))
            )
        );
        assert_eq!(
            parse("tcp src port 80").expect("parses"),
            port(Some(ProtoName::Tcp), Dir::Src, 80)
        );
        assert_eq!(
            parse("src or dst port 1").expect("parses"),
            port(None, Dir::Either, 1)
        );
        assert_eq!(
            parse("src and dst port 1").expect("parses"),
            port(None, Dir::Both, 1)
        );
        // A bare value inherits the qualifiers before it.
        assert_eq!(
            parse("udp dst port 53 or 5353").expect("parses"),
            Expr::Or(
                Box::new(port(Some(ProtoName::Udp), Dir::Dst, 53)),
                Box::new(port(Some(ProtoName::Udp), Dir::Dst, 5353))
            )
        );
        // `src ADDR` is a host.
        assert!(matches!(
            parse("src 127.0.0.1").expect("parses"),
            Expr::Prim(Prim::Host { dir: Dir::Src, .. })
        ));
        assert!(matches!(
            parse("ip6 dst host ::1").expect("parses"),
            Expr::Prim(Prim::Host {
                proto: Some(ProtoName::Ip6),
                dir: Dir::Dst,
                ..
            })
        ));
    }

    #[test]
    fn and_and_or_group_from_the_left_not_binds_tighter() {
        let e = parse("not tcp or udp and icmp").expect("parses");
        let tcp = Expr::Prim(Prim::Proto(ProtoName::Tcp));
        let udp = Expr::Prim(Prim::Proto(ProtoName::Udp));
        let icmp = Expr::Prim(Prim::Proto(ProtoName::Icmp));
        assert_eq!(
            e,
            Expr::And(
                Box::new(Expr::Or(Box::new(Expr::Not(Box::new(tcp))), Box::new(udp))),
                Box::new(icmp)
            )
        );
    }

    #[test]
    fn errors_name_the_token_and_what_is_valid() {
        for (text, says) in [
            ("", "empty"),
            ("portx 3", "\"portx\" at word 1"),
            ("tcp or", "ends too soon"),
            ("port 99999", "0 to 65535"),
            ("port http", "service names"),
            ("host localhost", "IPv4 or IPv6 address"),
            ("host 1.2.3", "whole"),
            ("icmp port 3", "only tcp, udp or sctp"),
            ("ip6 host 1.2.3.4", "ip (IPv4 address) or ip6"),
            ("(tcp", "\")\" to close"),
            ("tcp)", "unmatched"),
            ("tcp udp", "join with and/or"),
            ("80", "a primitive"),
            ("port", "a port number"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.0.contains(says), "{text:?}: {}", e.0);
        }
    }
}
