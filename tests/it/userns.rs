//! `ping --userns` and `sniff --userns`: a user and network namespace of
//! the run's own, its loopback brought up over rtnetlink, where raw and
//! packet sockets need no privilege; run as an unprivileged uid (when the
//! tests are root) or as the user running them. Bad combinations are
//! refused before any step.

use std::time::Duration;

use serde_json::Value;

use crate::util::{is_root, leaked_fds, run, run_unprivileged, Run};

const LIMIT: Duration = Duration::from_secs(30);

/// `ipclab --format json ARGS` as uid 65531 when root, else as this user.
fn unprivileged(test: &str, args: &[&str]) -> Option<Run> {
    let mut full = vec!["--format", "json"];
    full.extend_from_slice(args);
    if is_root() {
        run_unprivileged(test, "65531", "65531", &full, LIMIT)
    } else {
        Some(run(&full, LIMIT))
    }
}

/// Where user namespaces are refused, there is nothing to check.
fn userns_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces").is_ok_and(|v| v.trim() != "0")
}

/// The namespace was made and configured: unshare, the maps, lo up (ACKed).
fn private_loopback(r: &Run) {
    let steps = r.steps();
    assert!(
        steps.iter().any(|s| s["syscall"] == "unshare"
            && s["args"][0] == "CLONE_NEWUSER|CLONE_NEWNET"
            && s["ret"] == 0),
        "{}",
        r.stdout
    );
    let maps = steps
        .iter()
        .filter(|s| s["syscall"] == "openat")
        .filter_map(|s| s["args"][1].as_str())
        .filter(|p| p.contains("/proc/self/"))
        .count();
    assert_eq!(maps, 3, "uid_map, setgroups, gid_map");
    assert!(
        steps.iter().any(|s: &Value| s["syscall"] == "recvmsg"
            && s["args"][1].as_str().unwrap_or("").contains("{error=0,")),
        "lo up was acknowledged"
    );
    assert!(leaked_fds(&steps).is_empty(), "{:?}", leaked_fds(&steps));
}

#[test]
fn ping_userns_answers_on_its_own_loopback() {
    if !userns_allowed() {
        crate::util::skip(
            "ping_userns_answers_on_its_own_loopback",
            "user namespaces are refused here",
        );
        return;
    }
    let args = ["ping", "--userns", "-c", "2", "-i", "0.2", "127.0.0.1"];
    let Some(r) = unprivileged("ping_userns_answers_on_its_own_loopback", &args) else {
        return;
    };
    r.assert_ok();
    private_loopback(&r);
    assert!(
        r.steps().iter().any(|s| s["syscall"] == "socket"
            && s["args"][1] == "SOCK_RAW"
            && s["ret"].as_i64().unwrap_or(-1) >= 0),
        "a raw socket, no privilege: {}",
        r.stdout
    );
    let t = r.messages().join("\n");
    assert!(
        t.contains("64 bytes from 127.0.0.1: icmp_seq=2 ttl=64"),
        "{t}"
    );
    assert!(
        t.contains("2 packets transmitted, 2 received, 0% packet loss"),
        "{t}"
    );
}

#[test]
fn sniff_userns_captures_on_its_own_loopback() {
    if !userns_allowed() {
        crate::util::skip(
            "sniff_userns_captures_on_its_own_loopback",
            "user namespaces are refused here",
        );
        return;
    }
    // Nothing else lives in that namespace: the capture times out, empty.
    let args = ["sniff", "--userns", "-c", "1", "-W", "0.5", "-e", "icmp"];
    let Some(r) = unprivileged("sniff_userns_captures_on_its_own_loopback", &args) else {
        return;
    };
    r.assert_ok();
    private_loopback(&r);
    let steps = r.steps();
    assert!(
        steps.iter().any(|s| s["syscall"] == "socket"
            && s["args"][0] == "AF_PACKET"
            && s["ret"].as_i64().unwrap_or(-1) >= 0),
        "a packet socket, no privilege: {}",
        r.stdout
    );
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "setsockopt" && s["args"][2] == "SO_ATTACH_FILTER"));
    let t = r.messages().join("\n");
    assert!(t.contains("stopped after 0.5 s with 0 of 1 frames"), "{t}");
    assert!(t.contains("0 packets captured"), "{t}");
}

#[test]
fn userns_bad_combinations_are_refused_before_any_step() {
    for (args, needle) in [
        (&["sniff", "--userns", "-i", "eth0"][..], "has only lo"),
        (
            &["sniff", "--userns", "-r", "x.pcap"][..],
            "--userns and -r",
        ),
        (&["ping", "--userns", "192.0.2.1"][..], "only loopback"),
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: nothing runs: {}", r.stdout);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}
