//! The seed's "repeater" (复读机) protocol, shared by the TCP and UDP labs:
//! each message received is answered with a fixed prefix plus the message;
//! "q" ends the conversation. Also: parsing ADDR:PORT from the command line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::{Error, Result};
use crate::trace::names::printable;

/// The seed's port.
pub const DEFAULT_PORT: u16 = 8989;

/// The seed's reply prefix: "I am a repeater, haha, you just sent: ".
pub const SEED_PREFIX: &str = "我是复读机,哈哈，你刚才发送了：";

/// The seed's `recv(1024)`: one message is at most this many bytes.
pub const RECV_SIZE: usize = 1024;

/// Whether a message is the seed's quit command. `nc` and line-based
/// clients send "q\n" or "q\r\n", which count too.
pub fn is_quit(msg: &[u8]) -> bool {
    matches!(msg, b"q" | b"q\n" | b"q\r\n")
}

/// Fills `out` with the reply to `msg`: the prefix, then the message.
pub fn reply_into(out: &mut Vec<u8>, prefix: &[u8], msg: &[u8]) {
    out.clear();
    out.extend_from_slice(prefix);
    out.extend_from_slice(msg);
}

/// A message for a person: escaped when not UTF-8, cut after 200 bytes.
pub fn shown(data: &[u8]) -> String {
    const MAX: usize = 200;
    if data.len() <= MAX {
        format!("\"{}\"", printable(data))
    } else {
        format!(
            "\"{}\"… ({} bytes in all)",
            printable(&data[..MAX]),
            data.len()
        )
    }
}

/// Parses `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT` given for `option`.
pub fn parse_addr(value: &str, option: &str) -> Result<SocketAddr> {
    let bad = || {
        Error::usage(format!(
            "{option} {value:?} is not ADDR:PORT; use an IP address and a port 0-65535, \
             e.g. 127.0.0.1:{DEFAULT_PORT}, 0.0.0.0:{DEFAULT_PORT}, [::1]:{DEFAULT_PORT} or [::]:0"
        ))
    };
    if let Ok(a) = value.parse::<SocketAddr>() {
        return Ok(a);
    }
    // `8989` or `:8989`, as socat and ncat take a port: every IPv4 address.
    // Only where the address is one to listen on.
    if option == "--listen" {
        if let Ok(port) = value.strip_prefix(':').unwrap_or(value).parse::<u16>() {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
        }
    }
    // No resolver on the traced path: "localhost" is the one name accepted.
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(bad())
}

/// The address family of `addr` as `socket(2)` wants it.
pub fn family(addr: &SocketAddr) -> i32 {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// The largest UDP payload over IPv4: 65535 minus the IPv4 and UDP headers.
pub const MAX_UDP: usize = 65507;

/// Checks a message given with `--send` for the TCP client (1 to 1024
/// bytes, what the seed's server reads per recv()).
pub fn check_message(msg: &str, allow_empty: bool) -> Result<Vec<u8>> {
    if msg.is_empty() && !allow_empty {
        return Err(Error::usage(
            "--send \"\" is empty: a 0-byte send carries nothing over TCP and no reply would come; give 1 to 1024 bytes",
        ));
    }
    if msg.len() > RECV_SIZE {
        return Err(Error::usage(format!(
            "--send message is {} bytes; at most {RECV_SIZE} (the server reads {RECV_SIZE} bytes per recv(), as in the seed)",
            msg.len()
        )));
    }
    Ok(msg.as_bytes().to_vec())
}

/// Checks a datagram given with `--send` for the UDP client: 0 to 65507
/// bytes, the most one UDP datagram over IPv4 carries (a larger one is
/// refused here; 65507 bytes reach the server, whose reply, prefix added,
/// the kernel then refuses with EMSGSIZE — the lesson).
pub fn check_datagram(msg: &str) -> Result<Vec<u8>> {
    if msg.len() > MAX_UDP {
        return Err(Error::usage(format!(
            "--send datagram is {} bytes; at most {MAX_UDP} (65535 minus the IPv4 and UDP headers)",
            msg.len()
        )));
    }
    Ok(msg.as_bytes().to_vec())
}

/// The address a socket bound to `asked` really has: with port 0 the kernel
/// chose the port, and a recorded getsockname() says which.
pub fn local_address(
    rec: &mut crate::trace::Recorder,
    fd: std::os::fd::BorrowedFd<'_>,
    asked: &SocketAddr,
) -> Result<SocketAddr> {
    if asked.port() != 0 {
        return Ok(*asked);
    }
    rec.note("port 0 asked the kernel to choose a free port: getsockname() tells which");
    Ok(crate::sys::socket::getsockname(rec, fd)?.unwrap_or(*asked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_forms() {
        assert!(is_quit(b"q"));
        assert!(is_quit(b"q\n"));
        assert!(is_quit(b"q\r\n"));
        assert!(!is_quit(b"quit"));
        assert!(!is_quit(b""));
    }

    #[test]
    fn addresses_parse_or_name_the_value() {
        assert_eq!(
            parse_addr("127.0.0.1:0", "--listen").expect("valid"),
            "127.0.0.1:0".parse().expect("valid")
        );
        assert!(parse_addr("[::1]:8989", "--listen").is_ok());
        assert!(parse_addr("localhost:7", "--connect").is_ok());
        let e = parse_addr("1.2.3.4:99999", "--connect").expect_err("port too big");
        assert!(e.to_string().contains("\"1.2.3.4:99999\""), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(parse_addr("example.org:80", "--connect").is_err());
        let any: SocketAddr = "0.0.0.0:8989".parse().expect("valid");
        assert_eq!(parse_addr("8989", "--listen").ok(), Some(any));
        assert_eq!(parse_addr(":8989", "--listen").ok(), Some(any));
        assert!(parse_addr("8989", "--connect").is_err());
    }

    #[test]
    fn reply_is_prefix_plus_message() {
        let mut out = Vec::new();
        reply_into(&mut out, b"> ", b"\xffhi");
        assert_eq!(out, b"> \xffhi");
        assert_eq!(shown(b"a\xffb"), r#""a\377b""#);
    }
}
