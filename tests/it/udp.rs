//! `ipclab udp`: the demo's loss, the server against an independent Python
//! client (0-byte and 65507-byte datagrams too), the client against a Python
//! server that drops a reply, IPv6, and the strace cross-check.

use std::time::Duration;

use crate::tcp::{have_ipv6, python, Server, PREFIX};
use crate::util::{leaked_fds, run, skip, strace_crosscheck, unreaped_children};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn udp_demo_shows_a_lost_reply_and_cleans_up() {
    let r = run(&["--format", "json", "udp", "demo"], LIMIT);
    r.assert_ok();
    let steps = r.lab_steps();
    assert!(unreaped_children(&steps).is_empty());
    assert!(leaked_fds(&steps).is_empty(), "{:?}", leaked_fds(&steps));
    for n in ["listen", "accept4", "connect"] {
        assert!(!steps.iter().any(|s| s["syscall"] == n), "UDP made {n}");
    }
    let timeout = steps
        .iter()
        .find(|s| s["syscall"] == "ppoll" && s["ret"] == 0)
        .expect("a wait for the reply that timed out");
    assert!(timeout["note"].as_str().unwrap_or("").contains("lost"));
    assert_eq!(timeout["args"][2], "{tv_sec=0, tv_nsec=500000000}");
    let msgs = r.messages().join("\n");
    assert!(msgs.contains("dropped on purpose"), "{msgs}");
    assert!(
        msgs.contains("5 datagrams sent, 3 replies received, 1 lost"),
        "{msgs}"
    );
}

#[test]
fn strace_agrees_with_udp_demo() {
    if let Some(r) = strace_crosscheck("strace_agrees_with_udp_demo", &["udp", "demo"], LIMIT) {
        r.assert_ok();
    }
}

/// An independent client: normal, empty and maximal datagrams, then "q".
const CLIENT: &str = r#"
import socket, sys
host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
c = socket.socket(fam, socket.SOCK_DGRAM)
c.settimeout(5)
def ask(msg):
    c.sendto(msg, (host, port))
    data, _ = c.recvfrom(70000)
    return data
if ask(b"hello") != prefix + b"hello":
    sys.exit("bad reply to hello")
if ask(b"") != prefix:
    sys.exit("an empty datagram is a message: its reply is the prefix alone")
if ask(b"\xff\x00bin") != prefix + b"\xff\x00bin":
    sys.exit("bad reply to binary")
if fam == socket.AF_INET:
    c.sendto(b"y" * 65507, (host, port))   # the largest IPv4 UDP payload
    c.settimeout(0.5)
    try:
        c.recvfrom(70000)
        sys.exit("a reply longer than 65507 bytes cannot exist")
    except socket.timeout:
        pass
    c.settimeout(5)
if ask(b"still there?") != prefix + b"still there?":
    sys.exit("not served after the big datagram")
c.sendto(b"q", (host, port))
print("ok")
"#;

fn serve_python_client(test: &str, listen: &str) {
    let srv = Server::start(&["udp", "server", "--listen", listen]);
    let args = vec![
        srv.addr.ip().to_string(),
        srv.addr.port().to_string(),
        PREFIX.into(),
    ];
    let Some(c) = python(test, CLIENT, &args) else {
        return;
    };
    assert_eq!(c.code(), Some(0), "{}\n{}", c.stdout, c.stderr);
    let r = srv.finish(LIMIT);
    r.assert_ok();
    let steps = r.lab_steps();
    assert!(leaked_fds(&steps).is_empty());
    if srv_is_v4(listen) {
        let big = steps
            .iter()
            .find(|s| s["syscall"] == "recvfrom" && s["ret"] == 65507)
            .expect("the 65507-byte datagram arrived whole");
        assert_eq!(big["args"][2], "65535");
        assert!(steps
            .iter()
            .any(|s| s["syscall"] == "sendto" && s["errno"] == "EMSGSIZE"));
    }
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "recvfrom" && s["ret"] == 0));
    let msgs = r.messages().join("\n");
    assert!(
        msgs.contains("0 bytes is a real message, not EOF"),
        "{msgs}"
    );
    assert!(msgs.contains(r"\377\0bin"), "{msgs}");
}

fn srv_is_v4(listen: &str) -> bool {
    !listen.starts_with('[')
}

#[test]
fn udp_server_serves_an_independent_python_client_with_empty_and_maximal_datagrams() {
    serve_python_client(
        "udp_server_serves_an_independent_python_client_with_empty_and_maximal_datagrams",
        "127.0.0.1:0",
    );
}

#[test]
fn udp_server_on_ipv6_loopback() {
    if !have_ipv6() {
        skip("udp_server_on_ipv6_loopback", "no IPv6 loopback (::1) here");
        return;
    }
    serve_python_client("udp_server_on_ipv6_loopback", "[::1]:0");
}

/// An independent server that answers the first datagram and ignores the second.
const PY_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0)); s.settimeout(10)
print(s.getsockname()[1], flush=True)
n = 0
while True:
    d, a = s.recvfrom(65535)
    n += 1
    if d == b"q":
        break
    if n != 2:
        s.sendto(b"echo:" + d, a)
"#;

#[test]
fn udp_client_reports_a_lost_reply_from_an_independent_server() {
    let test = "udp_client_reports_a_lost_reply_from_an_independent_server";
    let Some((py, port)) = crate::util::python_peer(test, PY_SERVER, LIMIT) else {
        return;
    };
    let target = format!("127.0.0.1:{port}");
    let c = run(
        &[
            "--format",
            "json",
            "udp",
            "client",
            "--connect",
            &target,
            "--send",
            "one",
            "--send",
            "two",
            "--send",
            "three",
            "--send",
            "q",
            "--timeout",
            "0.3",
        ],
        LIMIT,
    );
    let _ = py.wait_timeout(LIMIT); // bounded, even if the peer hangs
    c.assert_ok();
    let msgs = c.messages().join("\n");
    assert!(msgs.contains("reply from 127.0.0.1"), "{msgs}");
    assert!(msgs.contains("lost: no reply to \"two\""), "{msgs}");
    assert!(
        msgs.contains("reply from 127.0.0.1:") && msgs.contains("echo:three"),
        "{msgs}"
    );
    let wait = c
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "ppoll")
        .expect("a bounded wait for the reply");
    assert_eq!(wait["args"][2], "{tv_sec=0, tv_nsec=300000000}");
}

#[test]
fn udp_client_without_a_server_fails_clearly_instead_of_hanging() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let target = format!("127.0.0.1:{port}");
    let c = run(
        &[
            "--format",
            "json",
            "udp",
            "client",
            "--connect",
            &target,
            "--send",
            "anyone?",
            "--timeout",
            "0.3",
        ],
        LIMIT,
    );
    assert_eq!(c.code(), Some(1), "{}", c.stderr);
    assert!(c.stderr.contains("no reply at all"), "{}", c.stderr);
}
