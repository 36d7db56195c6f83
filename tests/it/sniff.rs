//! `ipclab sniff` as tcpdump: AF_PACKET capture on lo of traffic the test
//! sends, filters, pcap files written and read back (by tcpdump too), the
//! closing counts, Ctrl-C, `-d`, bad input and missing privileges.
//!
//! Other programs talk on lo at the same time, so every live capture here
//! filters on a port of its own. pcap files: `sniff_pcap.rs`.

use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::util::run_in_netns;
use serde_json::Value;

use crate::util::{ipclab, run, run_as_nobody, run_cmd, spawn, strace_crosscheck, Run};

pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// Sends a datagram to 127.0.0.1:`port` every 50 ms until told to stop.
pub(crate) fn udp_sender(port: u16) -> (Arc<AtomicBool>, thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..400 {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let _ = sock.send_to(b"ipclab sniff test", ("127.0.0.1", port));
            thread::sleep(Duration::from_millis(50));
        }
    });
    (stop, h)
}

/// Runs `ipclab ARGS` while `udp_sender(port)` sends.
pub(crate) fn with_udp(port: u16, args: &[&str]) -> Run {
    let child = spawn(args);
    thread::sleep(Duration::from_millis(300));
    let (stop, h) = udp_sender(port);
    let r = child.wait_timeout(LIMIT);
    stop.store(true, Ordering::SeqCst);
    let _ = h.join();
    r
}

/// A message that is a frame's line: it starts with the time of day.
pub(crate) fn is_frame(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() > 16
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == b'.'
        && b[15] == b' '
        && b[..15]
            .iter()
            .enumerate()
            .all(|(i, c)| [2, 5, 8].contains(&i) || c.is_ascii_digit())
}

pub(crate) fn frames(r: &Run) -> Vec<String> {
    r.messages().into_iter().filter(|m| is_frame(m)).collect()
}

pub(crate) fn names(steps: &[Value]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| s["syscall"].as_str().map(str::to_string))
        .collect()
}

pub(crate) fn tcpdump_r(file: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let out = Command::new("tcpdump")
        .env("TZ", "UTC")
        .arg("-n")
        .args(extra)
        .arg("-r")
        .arg(file)
        .output()
        .expect("run tcpdump");
    assert!(
        out.status.success(),
        "tcpdump -r failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub(crate) fn sniff_r(file: &std::path::Path, extra: &[&str]) -> Run {
    let mut cmd = ipclab();
    cmd.env("TZ", "UTC")
        .args(["--format", "json", "sniff", "-r"])
        .arg(file)
        .args(extra);
    run_cmd(&mut cmd, LIMIT)
}

#[test]
fn sniff_sees_a_udp_datagram_leave_and_arrive_on_lo() {
    let test = "sniff_sees_a_udp_datagram_leave_and_arrive_on_lo";
    require_root!(test);
    // In a network namespace of its own, lo carries this test's datagrams
    // only: the other tests (the RPC flood among them) send UDP on the
    // host's lo at the same time, and 8 frames would all be theirs. The
    // sender is ipclab's UDP client, started again every ~50 ms (at most
    // 40 times, so it stops by itself soon after the capture).
    let sender = r#"{ i=0; while [ $i -lt 40 ]; do "$0" --quiet udp client --connect 127.0.0.1:39391 --send 'ipclab sniff test' --timeout 0.05 >/dev/null 2>&1; i=$((i+1)); done & }"#;
    let args = [
        "--format", "json", "sniff", "--iface", "lo", "--proto", "udp", "-c", "4", "-W", "10",
        "port", "39391",
    ];
    let Some(r) = run_in_netns(test, sender, &args, LIMIT) else {
        return;
    };
    r.assert_ok();
    let steps = r.lab_steps();
    assert_eq!(
        names(&steps)[..5],
        ["socket", "ioctl", "setsockopt", "setsockopt", "bind"],
        "{steps:?}"
    );
    assert_eq!(steps[0]["args"][2], "htons(ETH_P_ALL)");
    assert_eq!(steps[2]["args"][2], "SO_ATTACH_FILTER");
    assert_eq!(steps[3]["args"][2], "SO_TIMESTAMPNS_OLD");
    let f = frames(&r);
    assert_eq!(f.len(), 4, "{f:?}");
    // Each datagram leaves, then arrives: Out, In, Out, In.
    for (i, line) in f.iter().enumerate() {
        let dir = if i % 2 == 0 { "Out" } else { "In " };
        assert!(line[16..].starts_with(dir), "{line}");
        assert!(
            line.ends_with("> 127.0.0.1.39391: UDP, length 17"),
            "{line}"
        );
    }
    // The recvmsg carries the kernel's time stamp, which the line shows.
    let rx = steps
        .iter()
        .find(|s| s["syscall"] == "recvmsg")
        .expect("a recvmsg");
    assert_eq!(rx["args"][2], "MSG_TRUNC");
    assert!(
        rx["args"][1]
            .as_str()
            .is_some_and(|a| a.contains("cmsg_type=SO_TIMESTAMPNS_OLD")
                && a.contains("sll_pkttype=PACKET_OUTGOING")),
        "{rx}"
    );
}

#[test]
fn sniff_counts_frames_as_tcpdump_at_the_end() {
    require_root!("sniff_counts_frames_as_tcpdump_at_the_end");
    let r = with_udp(
        39393,
        &[
            "--format", "json", "sniff", "-c", "2", "-W", "10", "udp", "and", "dst", "port",
            "39393",
        ],
    );
    r.assert_ok();
    let steps = r.lab_steps();
    let st = steps
        .iter()
        .find(|s| s["syscall"] == "getsockopt")
        .expect("a getsockopt");
    assert_eq!(st["args"][1], "SOL_PACKET");
    assert_eq!(st["args"][2], "PACKET_STATISTICS");
    let value = st["args"][3].as_str().expect("value");
    assert!(value.starts_with("{tp_packets="), "{value}");
    let m = r.messages();
    assert!(m.contains(&"2 packets captured".to_string()), "{m:?}");
    let by_filter = m
        .iter()
        .find(|l| l.ends_with("packets received by filter"))
        .expect("received by filter");
    let n: u32 = by_filter
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(n >= 2, "{by_filter}");
    assert!(
        value.contains(&format!("tp_packets={n},")),
        "{value} / {by_filter}"
    );
    assert!(m.iter().any(|l| l.ends_with("dropped by kernel")), "{m:?}");
    let last: Vec<String> = names(&steps).into_iter().rev().take(2).collect();
    assert_eq!(last, ["close", "getsockopt"]);
}

#[test]
fn sniff_runs_until_ctrl_c_without_c() {
    require_root!("sniff_runs_until_ctrl_c_without_c");
    let child = spawn(&["--format", "json", "sniff", "udp", "port", "39394"]);
    thread::sleep(Duration::from_millis(300));
    let (stop, h) = udp_sender(39394);
    thread::sleep(Duration::from_millis(400));
    let _ = Command::new("kill")
        .args(["-INT", &child.pid().to_string()])
        .status();
    let r = child.wait_timeout(LIMIT);
    stop.store(true, Ordering::SeqCst);
    let _ = h.join();
    assert_eq!(r.code(), Some(130), "{}", r.stderr);
    let m = r.messages();
    let n = frames(&r).len();
    assert!(n >= 2, "{m:?}");
    assert!(
        m.contains(&format!("{n} frames captured before SIGINT")),
        "{m:?}"
    );
    assert!(m.contains(&format!("{n} packets captured")), "{m:?}");
    // The counts and the close come after the interrupted ppoll.
    let steps = r.lab_steps();
    let tail: Vec<String> = names(&steps).into_iter().rev().take(3).collect();
    assert_eq!(tail, ["close", "getsockopt", "ppoll"], "{steps:?}");
    assert_eq!(steps[steps.len() - 3]["errno"], "EINTR");
    assert_eq!(r.summary()[0]["result"], "stopped by SIGINT");
}

#[test]
fn sniff_d_prints_the_program_like_tcpdump_d_without_privilege() {
    let r = run(&["sniff", "-d", "tcp"], LIMIT);
    r.assert_ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "(000) ldh      [12]");
    assert_eq!(lines[1], "(001) jeq      #0x800           jt 2\tjf 4");
    assert_eq!(*lines.last().expect("lines"), "(013) ret      #0");
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // -ddd reads back as the program ipclab attaches.
    let r = run(&["sniff", "-ddd", "udp", "port", "53"], LIMIT);
    r.assert_ok();
    let prog = ipclab::packet::filter::from_decimal(&r.stdout).expect("decimal program");
    let f = ipclab::packet::filter::Filter::new("udp port 53").expect("compiles");
    assert_eq!(prog, f.program);
    // No expression: accept everything, as tcpdump -d.
    let r = run(&["sniff", "-d"], LIMIT);
    assert_eq!(r.stdout, "(000) ret      #262144\n");
    if let Some(r) = run_as_nobody(
        "sniff_d_prints_the_program_like_tcpdump_d_without_privilege",
        &["sniff", "-dd", "icmp"],
        LIMIT,
    ) {
        r.assert_ok();
        assert!(
            r.stdout.starts_with("{ 0x28, 0, 0, 0x0000000c },"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn sniff_names_the_interfaces_when_one_does_not_exist() {
    require_root!("sniff_names_the_interfaces_when_one_does_not_exist");
    let r = run(
        &["--format", "json", "sniff", "-i", "nosuch0", "-c", "1"],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let steps = r.lab_steps();
    assert_eq!(steps[1]["syscall"], "ioctl");
    assert_eq!(steps[1]["errno"], "ENODEV");
    assert!(
        r.stderr.contains("no interface nosuch0") && r.stderr.contains("lo"),
        "{}",
        r.stderr
    );
}

#[test]
fn sniff_without_cap_net_raw_shows_eperm() {
    let Some(r) = run_as_nobody(
        "sniff_without_cap_net_raw_shows_eperm",
        &["--format", "json", "sniff", "-c", "1"],
        LIMIT,
    ) else {
        return;
    };
    assert_eq!(r.code(), Some(1));
    assert_eq!(r.lab_steps()[0]["errno"], "EPERM");
    assert!(
        r.stderr.contains("needs root or CAP_NET_RAW"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("--dgram"));
}

#[test]
fn sniff_rejects_bad_values_with_exit_2() {
    for (args, says) in [
        (&["sniff", "--iface", ""][..], "interface name"),
        (&["sniff", "-i", "a-name-far-too-long"], "interface name"),
        (&["sniff", "-c", "0"], "1 to 100000"),
        (&["sniff", "--timeout", "0"], "0.1 to 3600"),
        (&["sniff", "--proto", "sctp"], "sctp"),
        (&["sniff", "portx", "3"], "\"portx\""),
        (&["sniff", "port", "99999"], "0 to 65535"),
        (&["sniff", "tcp", "or"], "ends too soon"),
        (&["sniff", "(", "tcp"], "\")\""),
        (
            &["sniff", "-d", "host", "nosuchhost"],
            "IPv4 or IPv6 address",
        ),
        (&["sniff", "-r", "x.pcap", "-i", "lo"], "-r"),
        (&["sniff", "-w", "-"], "standard output"),
        (&["sniff", "-r", "a.pcap", "-w", "a.pcap"], "same file"),
        (&["sniff", "-X", "-A"], "cannot be used with"),
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "no step before bad input is refused");
    }
}

#[test]
fn strace_agrees_with_sniff() {
    require_root!("strace_agrees_with_sniff");
    let (stop, h) = udp_sender(39392);
    let r = strace_crosscheck(
        "strace_agrees_with_sniff",
        &[
            "sniff", "--proto", "udp", "-c", "2", "-W", "10", "port", "39392",
        ],
        LIMIT,
    );
    stop.store(true, Ordering::SeqCst);
    let _ = h.join();
    if let Some(r) = r {
        r.assert_ok();
    }
}
