//! `ipclab sniff`: AF_PACKET capture on lo sees a UDP datagram the test
//! sends, both directions; bad interfaces and missing privileges explained.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::util::{run, run_as_nobody, run_in_netns, strace_crosscheck};

const LIMIT: Duration = Duration::from_secs(30);

/// Sends a datagram to 127.0.0.1:`port` every 50 ms until told to stop.
fn udp_sender(port: u16) -> (Arc<AtomicBool>, thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..200 {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let _ = sock.send_to(b"ipclab sniff test", ("127.0.0.1", port));
            thread::sleep(Duration::from_millis(50));
        }
    });
    (stop, h)
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
        "--format", "json", "sniff", "--iface", "lo", "--proto", "udp", "-c", "8", "-W", "10",
    ];
    let Some(r) = run_in_netns(test, sender, &args, LIMIT) else {
        return;
    };
    r.assert_ok();
    let steps = r.lab_steps();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["syscall"].as_str()).collect();
    assert_eq!(
        &names[..4],
        ["socket", "ioctl", "setsockopt", "bind"],
        "{names:?}"
    );
    assert_eq!(steps[0]["args"][2], "htons(ETH_P_ALL)");
    let frames: Vec<String> = r
        .messages()
        .into_iter()
        .filter(|m| m.starts_with('#'))
        .collect();
    assert_eq!(frames.len(), 8, "{frames:?}");
    // With the filter on, only UDP arrives. Other tests may send UDP on lo
    // at the same time, so look for ours: each seen leaving, then arriving.
    assert!(frames.iter().all(|f| f.contains(" UDP ")), "{frames:?}");
    let ours: Vec<&String> = frames
        .iter()
        .filter(|f| f.contains("> 39391 len=25"))
        .collect();
    assert!(ours.len() >= 2, "{frames:?}");
    let out = ours
        .iter()
        .position(|f| f.contains(" out "))
        .expect("an outgoing copy");
    assert!(
        ours[out + 1..].iter().any(|f| f.contains(" in ")),
        "{ours:?}"
    );
}

#[test]
fn sniff_names_the_interfaces_when_one_does_not_exist() {
    require_root!("sniff_names_the_interfaces_when_one_does_not_exist");
    let r = run(
        &["--format", "json", "sniff", "--iface", "nosuch0", "-c", "1"],
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
    for args in [
        &["sniff", "--iface", ""][..],
        &["sniff", "--iface", "a-name-far-too-long"],
        &["sniff", "-c", "0"],
        &["sniff", "--timeout", "0"],
        &["sniff", "--proto", "sctp"],
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
}

#[test]
fn strace_agrees_with_sniff() {
    require_root!("strace_agrees_with_sniff");
    let (stop, h) = udp_sender(39392);
    let r = strace_crosscheck(
        "strace_agrees_with_sniff",
        &["sniff", "--proto", "udp", "-c", "2", "-W", "10"],
        LIMIT,
    );
    stop.store(true, Ordering::SeqCst);
    let _ = h.join();
    if let Some(r) = r {
        r.assert_ok();
    }
}
