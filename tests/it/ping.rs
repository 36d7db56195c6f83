//! `ipclab ping`: raw ICMP/ICMPv6 on loopback (root), the EPERM hint
//! (unprivileged), the drop to SUDO_UID/SUDO_GID, the ping socket refused
//! by the default ping_group_range and working in a namespace that allows it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, ipclab, run, run_as_nobody, run_in_netns, spawn_cmd, strace_crosscheck};

pub(crate) const LIMIT: Duration = Duration::from_secs(30);

pub(crate) fn replies(r: &util::Run, from: &str) -> Vec<String> {
    r.messages()
        .into_iter()
        .filter(|m| m.contains(&format!("bytes from {from}: icmp_seq=")))
        .collect()
}

pub(crate) fn step<'a>(r: &'a [Value], name: &str) -> Option<&'a Value> {
    r.iter().find(|s| s["syscall"] == name)
}

#[test]
fn ping_ipv4_loopback_counts_size_interval_and_ttl() {
    require_root!("ping_ipv4_loopback_counts_size_interval_and_ttl");
    let t0 = Instant::now();
    let r = run(
        &[
            "--format",
            "json",
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-s",
            "100",
            "-t",
            "7",
            "127.0.0.1",
        ],
        LIMIT,
    );
    let took = t0.elapsed();
    r.assert_ok();
    let lines = replies(&r, "127.0.0.1");
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (i, l) in lines.iter().enumerate() {
        // 100 data bytes + 8 ICMP header; the reply's TTL is the replier's (64).
        assert!(
            l.starts_with(&format!(
                "108 bytes from 127.0.0.1: icmp_seq={} ttl=64 time=",
                i + 1
            )),
            "{l}"
        );
        assert!(l.ends_with(" ms"), "{l}");
    }
    assert!(
        took >= Duration::from_millis(380),
        "two 0.2 s intervals, took {took:?}"
    );
    let steps = r.lab_steps();
    assert_eq!(steps[0]["args"][1], "SOCK_RAW");
    let ttl = steps
        .iter()
        .find(|s| s["syscall"] == "setsockopt" && s["args"][2] == "IP_TTL")
        .expect("IP_TTL set");
    assert_eq!(ttl["args"][3], "[7]");
    let sends: Vec<&Value> = steps.iter().filter(|s| s["syscall"] == "sendto").collect();
    assert_eq!(sends.len(), 3);
    assert!(sends.iter().all(|s| s["ret"] == 108));
    // The kernel filter keeps our own looped-back request out.
    assert!(!steps.iter().any(|s| s["syscall"] == "recvmsg"
        && s["note"]
            .as_str()
            .unwrap_or("")
            .contains("our own echo request")));
    let summary = r.messages().join("\n");
    assert!(
        summary.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{summary}"
    );
    assert!(summary.contains("rtt min/avg/max/mdev = "), "{summary}");
    assert_eq!(steps.last().expect("steps")["syscall"], "close");
}

#[test]
fn ping_ipv6_loopback_gets_hop_limit_from_a_control_message() {
    require_root!("ping_ipv6_loopback_gets_hop_limit_from_a_control_message");
    if !std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| s.contains(" lo")) {
        util::skip(
            "ping_ipv6_loopback_gets_hop_limit_from_a_control_message",
            "no IPv6 on lo",
        );
        return;
    }
    let r = run(
        &[
            "--format", "json", "ping", "-6", "-c", "2", "-i", "0.2", "-s", "24", "::1",
        ],
        LIMIT,
    );
    r.assert_ok();
    let lines = replies(&r, "::1");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("32 bytes from ::1: icmp_seq=1 ttl=64 time="),
        "{}",
        lines[0]
    );
    let steps = r.lab_steps();
    assert_eq!(steps[0]["args"][0], "AF_INET6");
    assert_eq!(steps[0]["args"][2], "IPPROTO_ICMPV6");
    assert!(steps.iter().any(|s| s["args"][2] == "IPV6_RECVHOPLIMIT"));
    // ICMP6_FILTER, as strace 6.1 prints it: level named, option 1, 32 bytes.
    let filter = steps
        .iter()
        .find(|s| s["syscall"] == "setsockopt" && s["args"][1] == "SOL_ICMPV6")
        .expect("ICMP6_FILTER step");
    assert_eq!(filter["args"][2], "1");
    assert_eq!(filter["args"][4], "32");
    assert!(filter["note"]
        .as_str()
        .unwrap_or("")
        .contains("ICMP6_FILTER"));
    assert!(!steps.iter().any(|s| s["note"]
        .as_str()
        .unwrap_or("")
        .contains("our own echo request")));
}

#[test]
fn ping_without_cap_net_raw_shows_eperm_and_the_fix() {
    let Some(r) = run_as_nobody(
        "ping_without_cap_net_raw_shows_eperm_and_the_fix",
        &["--format", "json", "ping", "-c", "1", "127.0.0.1"],
        LIMIT,
    ) else {
        return;
    };
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let steps = r.lab_steps();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["syscall"], "socket");
    assert_eq!(steps[0]["errno"], "EPERM");
    assert!(
        r.stderr.contains("needs root or CAP_NET_RAW"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("setcap cap_net_raw+ep") && r.stderr.contains("--dgram"));
    assert!(!r.stderr.contains("panicked"));
}

fn proc_ids(pid: u32, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key)).map(|l| {
        l[key.len()..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

#[test]
fn ping_under_sudo_drops_to_the_invoking_user() {
    require_root!("ping_under_sudo_drops_to_the_invoking_user");
    let mut cmd = ipclab();
    cmd.env("SUDO_UID", "65534").env("SUDO_GID", "65534").args([
        "--format",
        "json",
        "ping",
        "-c",
        "3",
        "-i",
        "0.3",
        "127.0.0.1",
    ]);
    let child = spawn_cmd(&mut cmd);
    let pid = child.pid();
    let dropped = util::wait_until(Duration::from_secs(5), || {
        proc_ids(pid, "Uid:").as_deref() == Some("65534 65534 65534 65534")
    });
    let gid = proc_ids(pid, "Gid:");
    let groups = proc_ids(pid, "Groups:");
    let r = child.wait_timeout(LIMIT);
    assert!(dropped, "Uid line never showed 65534 four times");
    assert_eq!(gid.as_deref(), Some("65534 65534 65534 65534"));
    assert_eq!(groups.as_deref(), Some(""));
    r.assert_ok();
    let steps = r.lab_steps();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["syscall"].as_str()).collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap_or(usize::MAX);
    assert!(pos("socket") < pos("setgroups"));
    assert!(pos("setgroups") < pos("setresgid"));
    assert!(pos("setresgid") < pos("setresuid"));
    assert!(
        pos("setresuid") < pos("sendto"),
        "dropped before the first packet: {names:?}"
    );
    assert_eq!(
        step(&steps, "getresuid").expect("getresuid")["args"][0],
        "[65534]"
    );
    assert_eq!(replies(&r, "127.0.0.1").len(), 3);
}

fn ping_group_range_allows_root() -> bool {
    let Ok(s) = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range") else {
        return false;
    };
    let v: Vec<i64> = s
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    v.len() == 2 && v[0] <= 0 && 0 <= v[1]
}

#[test]
fn ping_dgram_is_refused_by_the_default_group_range() {
    let test = "ping_dgram_is_refused_by_the_default_group_range";
    if ping_group_range_allows_root() {
        util::skip(
            test,
            "net.ipv4.ping_group_range on this machine allows gid 0",
        );
        return;
    }
    let r = run(
        &[
            "--format",
            "json",
            "ping",
            "--dgram",
            "-c",
            "1",
            "127.0.0.1",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let steps = r.lab_steps();
    assert_eq!(steps[0]["args"][1], "SOCK_DGRAM");
    assert_eq!(steps[0]["errno"], "EACCES");
    assert!(step(&steps, "openat")
        .is_some_and(|s| s["args"][1] == "\"/proc/sys/net/ipv4/ping_group_range\""));
    assert!(r
        .messages()
        .iter()
        .any(|m| m.contains("net.ipv4.ping_group_range is")));
    assert!(
        r.stderr.contains("sysctl -w net.ipv4.ping_group_range"),
        "{}",
        r.stderr
    );
}

#[test]
fn ping_dgram_works_in_a_namespace_that_allows_it() {
    let Some(r) = run_in_netns(
        "ping_dgram_works_in_a_namespace_that_allows_it",
        "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range",
        &[
            "--format",
            "json",
            "ping",
            "--dgram",
            "-c",
            "2",
            "-i",
            "0.2",
            "127.0.0.1",
        ],
        LIMIT,
    ) else {
        return;
    };
    r.assert_ok();
    let steps = r.lab_steps();
    assert_eq!(steps[0]["args"][1], "SOCK_DGRAM");
    assert_eq!(steps[0]["ret"], 3);
    let name = step(&steps, "getsockname").expect("getsockname shows the kernel's id");
    assert!(name["note"]
        .as_str()
        .unwrap_or("")
        .contains("echo id the kernel writes"));
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "recvmsg"
            && s["note"].as_str().unwrap_or("").contains("no IP header")));
    assert_eq!(replies(&r, "127.0.0.1").len(), 2);
}

#[test]
fn ping_resolves_a_name_without_showing_libc_internals_as_steps() {
    require_root!("ping_resolves_a_name_without_showing_libc_internals_as_steps");
    let r = run(
        &["--format", "json", "ping", "-4", "-c", "1", "localhost"],
        LIMIT,
    );
    r.assert_ok();
    assert!(r
        .messages()
        .iter()
        .any(|m| m.contains("getaddrinfo(3) resolved localhost to 127.0.0.1")));
    assert_eq!(r.lab_steps()[0]["syscall"], "socket");
}

#[test]
fn ping_rejects_bad_values_with_exit_2() {
    for args in [
        &["ping", "-c", "0", "127.0.0.1"][..],
        &["ping", "-s", "70000", "127.0.0.1"],
        &["ping", "-t", "0", "127.0.0.1"],
        &["ping", "-i", "61", "127.0.0.1"],
        &["ping", "-W", "0", "127.0.0.1"],
        &["ping", "-4", "::1"],
        &["ping", "no-such-host.invalid"],
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
    // Below 2 ms is iputils' flood rule: refused for users, allowed for root.
    if let Some(r) = crate::util::run_as_nobody(
        "ping_rejects_bad_values_with_exit_2",
        &["ping", "-c", "1", "-i", "0.001", "127.0.0.1"],
        LIMIT,
    ) {
        assert_eq!(r.code(), Some(2), "{}", r.stderr);
        assert!(
            r.stderr
                .contains("minimal interval allowed for user is 2ms"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn strace_agrees_with_ping() {
    require_root!("strace_agrees_with_ping");
    if let Some(r) = strace_crosscheck(
        "strace_agrees_with_ping",
        &["ping", "-c", "2", "-i", "0.2", "127.0.0.1"],
        LIMIT,
    ) {
        r.assert_ok();
    }
}
