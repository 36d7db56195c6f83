//! `ipclab net rpc`: the RPC lab's matchmaker and server on the `server`
//! host, its client on `client`, as root and as an unprivileged user (who
//! gets a user namespace): the results, GETPORT's answer against the port
//! the server really bound, the frames on the server's link, the
//! registration undone, every process reaped and nothing left behind;
//! strace's view of the same run; a stop signal at any moment.

use std::time::Duration;

use serde_json::Value;

use crate::net::{common, frame_lines, host_links, runs, text, LIMIT};
use crate::signals::{stops_cleanly_after, Load};
use crate::tcp::parse_sockaddr;
use crate::util::{strace_crosscheck, Run};

/// The router's MAC on the server's link, then the server's own.
const FROM_ROUTER: &str = "In  02:00:c6:33:64:01 > 02:00:c6:33:64:02, ethertype IPv4 (0x0800)";
const TO_ROUTER: &str = "Out 02:00:c6:33:64:02 > 02:00:c6:33:64:01, ethertype IPv4 (0x0800)";

/// The port the RPC server's listener got from the kernel (its getsockname
/// step: the only one of the run, on the server's address).
fn bound_port(label: &str, r: &Run) -> u16 {
    let steps = r.steps();
    let got: Vec<&Value> = steps
        .iter()
        .filter(|s| s["syscall"] == "getsockname")
        .collect();
    assert_eq!(got.len(), 1, "{label}: {got:?}");
    let addr = parse_sockaddr(got[0]["args"][1].as_str().unwrap_or(""));
    assert_eq!(addr.ip().to_string(), "198.51.100.2", "{label}");
    addr.port()
}

/// The `P` of each message `…prefix P…`.
fn numbers_after(t: &str, prefix: &str) -> Vec<u16> {
    t.split(prefix)
        .skip(1)
        .filter_map(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

/// The pid in a `server  pid N: the …` line.
fn child_pid(t: &str, what: &str) -> i64 {
    t.lines()
        .find(|l| l.starts_with("server  pid ") && l.contains(what))
        .and_then(|l| l["server  pid ".len()..].split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no line for {what}: {t}"))
}

#[test]
fn net_rpc_calls_across_the_router_as_root_and_unprivileged() {
    let before = host_links();
    for (label, r) in runs("net_rpc", &["rpc"]) {
        common(label, &r);
        let t = text(&r);
        let steps = r.steps();
        // The matchmaker on its well-known port, in the server's namespace:
        // a port below 1024, allowed to the user namespace's root too.
        let on_111 = steps
            .iter()
            .filter(|s| {
                s["syscall"] == "bind" && s["args"][1].as_str().unwrap_or("").contains("htons(111)")
            })
            .collect::<Vec<_>>();
        assert_eq!(on_111.len(), 2, "{label}: TCP and UDP: {on_111:?}");
        assert!(on_111.iter().all(|s| s["ret"] == 0), "{label}: {on_111:?}");
        // The server registered over loopback and unregistered on its way out.
        for reg in [
            "registered: prog 536870913 vers 1 over udp",
            "registered: prog 536870913 vers 1 over tcp",
            "unregistered: prog 536870913 vers 1 over every transport (2 entries)",
        ] {
            assert!(t.contains(reg), "{label}: {reg}: {t}");
        }
        // GETPORT from the client's address; its answer is the bound port.
        let port = bound_port(label, &r);
        assert!(
            t.contains("from 192.0.2.2:")
                && t.contains("PMAPPROC_GETPORT(prog 536870913 vers 1 tcp"),
            "{label}: {t}"
        );
        let told = numbers_after(&t, "version 1 listens on port ");
        assert_eq!(told, vec![port; 3], "{label}: GETPORT tcp, udp, udp");
        let answered = numbers_after(&t, "MSG_ACCEPTED SUCCESS: port ");
        assert!(
            answered.len() >= 3 && answered.iter().all(|&p| p == port),
            "{label}: {answered:?} vs {port}"
        );
        // remoteAdd(10, 20) = 30 over TCP and UDP, the bytes dumped once; INCR.
        assert_eq!(
            t.matches("ADD(10, 20) = 30 — the notes' remoteAdd (sent once)")
                .count(),
            2,
            "{label}: {t}"
        );
        assert_eq!(t.matches("each field labelled").count(), 1, "{label}");
        assert!(
            t.contains(
                "the call serialised into 84 bytes (XDR, RFC 4506, behind a TCP record mark)"
            ),
            "{label}: {t}"
        );
        assert!(t.contains("INCR() = 1 (sent once)"), "{label}: {t}");
        // The server saw the client's own address: no NAT on the router.
        let accept = steps
            .iter()
            .find(|s| s["syscall"] == "accept4")
            .expect("accept4");
        assert!(
            accept["args"][1]
                .as_str()
                .unwrap_or("")
                .contains("192.0.2.2"),
            "{label}: {accept}"
        );
        // On the server's eth0: the GETPORT and the TCP call, from the
        // router's MAC with the client's IP address — they crossed it.
        let frames = frame_lines(&t);
        assert_eq!(frames.len(), 6, "{label}: {frames:?}");
        let to = |p: u16| format!("> 198.51.100.2.{p}: ");
        let want: [(&str, String, &str); 6] = [
            (FROM_ROUTER, to(111), "UDP, length 56"),
            (
                TO_ROUTER,
                "198.51.100.2.111 > 192.0.2.2.".into(),
                "UDP, length 28",
            ),
            (FROM_ROUTER, to(port), "Flags [S],"),
            (
                TO_ROUTER,
                format!("198.51.100.2.{port} > 192.0.2.2."),
                "Flags [S.],",
            ),
            (FROM_ROUTER, to(port), "Flags [.],"),
            (FROM_ROUTER, to(port), "Flags [P.], seq 1:85,"),
        ];
        for (f, (mac, addr, what)) in frames.iter().zip(&want) {
            assert!(
                f.contains(mac) && f.contains(addr.as_str()) && f.contains(what),
                "{label}: want {mac} {addr} {what}: {frames:?}"
            );
        }
        assert!(
            frames
                .iter()
                .filter(|f| f.contains(FROM_ROUTER))
                .all(|f| f.contains(": 192.0.2.2.")),
            "{label}: {frames:?}"
        );
        assert!(
            frames[5].ends_with("length 84"),
            "{label}: the dumped bytes: {frames:?}"
        );
        // The matchmaker and the server were stopped and reaped: SIGTERM, 143.
        for what in ["the matchmaker", "the RPC server"] {
            let pid = child_pid(&t, what);
            let reaped = steps
                .iter()
                .find(|s| s["syscall"] == "wait4" && s["ret"] == pid)
                .unwrap_or_else(|| panic!("{label}: {what} {pid} not reaped"));
            assert!(
                reaped["args"][1]
                    .as_str()
                    .unwrap_or("")
                    .contains("WEXITSTATUS(s) == 143"),
                "{label}: {what}: {reaped}"
            );
        }
        assert_eq!(r.summary()[0]["lab"], "net rpc", "{label}");
    }
    assert_eq!(host_links(), before, "the host's interfaces changed");
}

#[test]
fn strace_agrees_with_net_rpc() {
    // The matchmaker's and the server's epoll loops, the capture worker,
    // the client's calls: every one a step, by the pid strace saw make it.
    if let Some(run) = strace_crosscheck("strace_agrees_with_net_rpc", &["net", "rpc"], LIMIT) {
        run.assert_ok();
    }
}

#[test]
fn net_rpc_stops_cleanly_at_any_moment() {
    // The run is over in tens of milliseconds: each signal is sent as a
    // stage's line comes out — the topology, the matchmaker's start, the
    // server's registration, the calls, the server's UNSET, the
    // matchmaker's stop. Each time: exit 128+N (0 if it had finished),
    // every process gone, the host's interfaces as they were.
    let before = host_links();
    let stages = [
        None,
        Some("the topology is up"),
        Some("the matchmaker (portmapper v2"),
        Some("UNSET first"),
        Some("the RPC server, program"),
        Some("the client asks the matchmaker"),
        Some("each field labelled"),
        Some("the same call over UDP"),
        Some("INCR over UDP"),
        Some("the server stops (SIGTERM)"),
        Some("unregistering"),
        Some("the matchmaker stops too"),
    ];
    for (i, stage) in stages.into_iter().enumerate() {
        let sig = match i % 4 {
            1 => ("TERM", 15),
            3 => ("HUP", 1),
            _ => ("INT", 2),
        };
        stops_cleanly_after(
            &["net", "rpc"],
            sig,
            stage,
            Duration::ZERO,
            Load::None,
            false,
        );
        assert_eq!(host_links(), before, "SIG{} at {stage:?}", sig.0);
    }
}
