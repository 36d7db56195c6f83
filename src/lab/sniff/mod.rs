//! `ipclab sniff`, the lowest socket, as tcpdump users expect it:
//! socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)) → ioctl(SIOCGIFINDEX) →
//! [setsockopt(SO_ATTACH_FILTER): the filter expression as classic BPF] →
//! setsockopt(SO_TIMESTAMPNS) → bind(sockaddr_ll) → (under sudo: give root
//! back) → [openat the -w file, write its header] → ppoll + recvmsg per
//! frame, one tcpdump-style line each [+ a write per frame to the file] →
//! getsockopt(PACKET_STATISTICS) for tcpdump's closing counts → close.
//! `-r FILE` reads a pcap file instead: openat → read … → close, the filter
//! run in user space by the same BPF program.
//!
//! On `lo` every packet is seen twice: once leaving (PACKET_OUTGOING), once
//! arriving (PACKET_HOST); libpcap hides the outgoing copy on `lo`, ipclab
//! shows both. The socket receives from every interface from `socket()` on
//! until `bind()` narrows it to one, so a frame queued in between can be
//! from elsewhere, or one the filter would have dropped — the lab says so.
//!
//! - [`live`]: the capture socket and its loop;
//! - [`file`]: the `-w` file and `-r` reading.

pub mod file;
pub mod live;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::packet::filter::{self, Filter};
use crate::packet::frame::dump::Payload;
use crate::packet::frame::Style;
use crate::packet::Proto;
use crate::sys::{file as sysfile, socket};
use crate::trace::Recorder;

pub use live::Capture;

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An interface, through a packet socket.
    Live(String),
    /// A pcap file (`-r`; `-` is standard input).
    File(PathBuf),
}

/// How each frame is shown: tcpdump's `-e`, `-S`, `-X`, `-A`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Show {
    pub style: Style,
    pub payload: Payload,
    /// Seconds east of UTC, for the time of day (taken before any step).
    pub utc_offset: i64,
}

/// A validated `ipclab sniff` invocation.
#[derive(Debug, Clone)]
pub struct SniffConfig {
    pub source: Source,
    /// Stop after this many frames; `None`: until Ctrl-C (or `timeout`).
    pub count: Option<u32>,
    pub filter: Option<Filter>,
    pub timeout: Option<Duration>,
    /// `-w`: also write every frame to this pcap file.
    pub write: Option<PathBuf>,
    pub show: Show,
    pub drop_privileges: bool,
}

/// Checks an interface name; the error names it and what is valid.
pub fn check_iface(iface: &str) -> Result<()> {
    if iface.is_empty()
        || iface.len() >= libc::IFNAMSIZ
        || iface.contains(['/', '\0'])
        || iface.chars().any(char::is_whitespace)
    {
        return Err(Error::usage(format!(
            "-i {iface:?}: give an interface name of 1 to 15 characters, like lo or eth0 (see `ip link`)"
        )));
    }
    Ok(())
}

/// The filter for `--proto` and the trailing expression words together
/// (`--proto tcp port 80` is `tcp and (port 80)`); `None` without either.
pub fn build_filter(proto: Option<Proto>, words: &[String]) -> Result<Option<Filter>> {
    let expr = words.join(" ");
    let text = match (proto, expr.trim().is_empty()) {
        (None, true) => return Ok(None),
        (Some(p), true) => filter::proto_expr(p).to_string(),
        (None, false) => expr,
        (Some(p), false) => format!("({}) and ({expr})", filter::proto_expr(p)),
    };
    Filter::new(&text).map(Some).map_err(|e| Error::usage(e.0))
}

impl SniffConfig {
    /// Checks every value; each error names the value and what is valid.
    pub fn new(
        source: Source,
        count: Option<u32>,
        filter: Option<Filter>,
        timeout: Option<f64>,
        write: Option<PathBuf>,
        show: Show,
    ) -> Result<Self> {
        match &source {
            Source::Live(iface) => check_iface(iface)?,
            Source::File(p) if p.as_os_str().is_empty() => {
                return Err(Error::usage(
                    "-r \"\": give a pcap file to read, or - for standard input",
                ));
            }
            Source::File(_) => {}
        }
        if let Some(c) = count {
            if !(1..=100_000).contains(&c) {
                return Err(Error::usage(format!("-c {c}: give 1 to 100000 frames")));
            }
        }
        if let Some(t) = timeout {
            if !(0.1..=3600.0).contains(&t) {
                return Err(Error::usage(format!(
                    "--timeout {t}: give 0.1 to 3600 seconds"
                )));
            }
        }
        if let Some(w) = &write {
            if w.as_os_str().is_empty() || w.as_os_str() == "-" {
                return Err(Error::usage(format!(
                    "-w {w:?}: give a file name (standard output carries the trace, so - is not taken)"
                )));
            }
            if Source::File(w.clone()) == source {
                return Err(Error::usage(format!(
                    "-r and -w name the same file {w:?}: it would be emptied before it is read"
                )));
            }
        }
        Ok(SniffConfig {
            source,
            count,
            filter,
            timeout: timeout.map(Duration::from_secs_f64),
            write,
            show,
            drop_privileges: true,
        })
    }
}

/// Runs `ipclab sniff`.
pub fn run(rec: &mut Recorder, cfg: &SniffConfig) -> Result<()> {
    match &cfg.source {
        Source::File(path) => file::read(rec, path, cfg),
        Source::Live(iface) => {
            let cap = Capture::open(rec, iface, cfg.filter.clone())?;
            if cfg.drop_privileges {
                if let Err(e) = crate::lab::privs::drop(rec, "the packet socket") {
                    let _ = cap.close(rec);
                    return Err(e);
                }
            }
            let mut out = match &cfg.write {
                Some(p) => match file::PcapFile::create(rec, p) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        let _ = cap.close(rec);
                        return Err(e);
                    }
                },
                None => None,
            };
            let mut got = 0;
            let result = cap.capture(
                rec,
                cfg.count,
                cfg.timeout,
                &cfg.show,
                out.as_mut(),
                &mut got,
            );
            let stats = cap.statistics(rec, got);
            let closed = out.map_or(Ok(()), |f| f.close(rec));
            let closed_cap = cap.close(rec);
            result?;
            stats?;
            closed?;
            closed_cap
        }
    }
}

/// The tour's section: a TCP handshake on loopback, made with traced calls
/// in this one process and captured at the same time through the filter
/// `tcp port P` for the listener's port — SYN, SYN-ACK and ACK appear
/// right after connect and accept, each twice (out, then in).
pub fn handshake(rec: &mut Recorder) -> Result<()> {
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
    let (listener, addr) = crate::lab::set_up(rec, listener, |rec, fd| {
        rec.note("as servers do");
        socket::setsockopt_int(rec, fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        rec.note("127.0.0.1, port 0: the kernel picks a free port");
        socket::bind(rec, fd, &lo)?;
        rec.note("the kernel now answers SYNs for this port by itself");
        socket::listen(rec, fd, 1)?;
        socket::getsockname_explained(rec, fd, |a| format!("listening on {a}"))?
            .ok_or_else(|| Error::Protocol("getsockname gave no IPv4 address".into()))
    })?;
    let filter =
        Filter::new(&format!("tcp port {}", addr.port())).map_err(|e| Error::Protocol(e.0))?;
    let cap = match Capture::open(rec, "lo", Some(filter)) {
        Ok(c) => c,
        Err(e) => {
            let _ = sysfile::close(rec, listener);
            return Err(e);
        }
    };
    let result = connect_and_capture(rec, &cap, listener.as_fd(), &addr);
    let _ = sysfile::close(rec, listener);
    let closed = cap.close(rec);
    result?;
    closed
}

fn connect_and_capture(
    rec: &mut Recorder,
    cap: &Capture,
    listener: std::os::fd::BorrowedFd<'_>,
    addr: &SocketAddr,
) -> Result<()> {
    let client = socket::socket_explained(
        rec,
        libc::AF_INET,
        libc::SOCK_STREAM,
        libc::IPPROTO_TCP,
        |fd| format!("fd {fd}: the client's TCP socket"),
    )?;
    rec.note("SYN out, SYN-ACK back, ACK out — all done in the kernel before connect() returns; the frames below show them");
    if let Err(e) = socket::connect(rec, client.as_fd(), addr) {
        let _ = sysfile::close(rec, client);
        return Err(e.into());
    }
    let conn = socket::accept4_explained(rec, listener, libc::SOCK_CLOEXEC, |fd, _| {
        format!("fd {fd}: the connection the handshake completed, taken off the accept queue — accept() itself sends nothing")
    });
    let conn = match conn {
        Ok((c, _)) => c,
        Err(e) => {
            let _ = sysfile::close(rec, client);
            return Err(e.into());
        }
    };
    let show = Show {
        utc_offset: crate::os::local_offset(),
        ..Show::default()
    };
    let mut got = 0;
    let result = cap.capture(
        rec,
        Some(6),
        Some(Duration::from_secs(2)),
        &show,
        None,
        &mut got,
    );
    let _ = sysfile::close(rec, conn);
    let _ = sysfile::close(rec, client);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(source: Source, count: Option<u32>, timeout: Option<f64>) -> Result<SniffConfig> {
        SniffConfig::new(source, count, None, timeout, None, Show::default())
    }

    #[test]
    fn config_rejects_bad_values() {
        let lo = || Source::Live("lo".into());
        assert!(cfg(lo(), Some(1), Some(1.0)).is_ok());
        assert!(cfg(lo(), None, None).is_ok());
        for bad in ["", "a/b", "sixteen-chars-xx", "a b"] {
            assert!(matches!(
                cfg(Source::Live(bad.into()), Some(1), None),
                Err(Error::Usage(_))
            ));
        }
        assert!(matches!(cfg(lo(), Some(0), None), Err(Error::Usage(_))));
        assert!(matches!(cfg(lo(), None, Some(0.0)), Err(Error::Usage(_))));
        assert!(matches!(
            cfg(Source::File(PathBuf::new()), None, None),
            Err(Error::Usage(_))
        ));
        let w = SniffConfig::new(lo(), None, None, None, Some("-".into()), Show::default());
        assert!(matches!(w, Err(Error::Usage(_))));
    }

    #[test]
    fn proto_and_expression_combine() {
        let f = build_filter(Some(Proto::Icmp), &["host".into(), "::1".into()])
            .expect("valid")
            .expect("a filter");
        assert_eq!(f.text, "(icmp or icmp6) and (host ::1)");
        assert!(build_filter(None, &[]).expect("valid").is_none());
        let e = build_filter(None, &["portx".into()]).expect_err("bad");
        assert!(e.to_string().contains("\"portx\""), "{e}");
    }
}
