//! `ipclab ping`'s filters (ICMP_FILTER, ICMP6_FILTER, the id filter) and
//! the lesson without them, its send schedule when no reply comes, and
//! Ctrl-C: the statistics, exit 130.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ping::{replies, LIMIT};
use crate::util::{self, ipclab, run, run_cmd, run_in_netns};

/// The setsockopt step that installs the kernel's ICMP filter, if any.
fn icmp_filter_step(steps: &[Value]) -> Option<&Value> {
    steps
        .iter()
        .find(|s| s["syscall"] == "setsockopt" && s["args"][2] == "ICMP_FILTER")
}

fn skipped_own_request(steps: &[Value]) -> bool {
    steps.iter().any(|s| {
        s["syscall"] == "recvmsg"
            && s["note"]
                .as_str()
                .unwrap_or("")
                .contains("our own echo request")
    })
}

#[test]
fn ping_sets_icmp_filter_by_default_and_catches_sigint() {
    require_root!("ping_sets_icmp_filter_by_default_and_catches_sigint");
    let r = run(
        &[
            "--format",
            "json",
            "ping",
            "-c",
            "2",
            "-i",
            "0.1",
            "127.0.0.1",
        ],
        LIMIT,
    );
    r.assert_ok();
    let steps = r.lab_steps();
    let f = icmp_filter_step(&steps).expect("ICMP_FILTER step by default");
    assert_eq!(f["args"][1], "SOL_RAW");
    // strace 6.1 prints the complement of the types that pass, like this.
    assert_eq!(
        f["args"][3],
        "~[ICMP_ECHOREPLY ICMP_DEST_UNREACH ICMP_TIME_EXCEEDED]"
    );
    assert_eq!(f["args"][4], "4");
    assert!(f["note"].as_str().unwrap_or("").contains("--no-filter"));
    let first_send = steps
        .iter()
        .position(|s| s["syscall"] == "sendto")
        .expect("sendto");
    let filter_at = steps
        .iter()
        .position(|s| s["args"][2] == "ICMP_FILTER")
        .expect("filter");
    assert!(
        filter_at < first_send,
        "filter set before the first request"
    );
    let all = r.steps();
    let sigs: Vec<&Value> = all
        .iter()
        .filter(|s| s["syscall"] == "rt_sigaction" && s["args"][0] == "SIGINT")
        .collect();
    assert_eq!(
        sigs.len(),
        1,
        "caught once, by the run's preamble: {sigs:?}"
    );
    assert!(sigs[0]["args"][1]
        .as_str()
        .unwrap_or("")
        .contains("ipclab_on_signal"));
    assert!(
        !skipped_own_request(&steps),
        "the kernel kept our request out"
    );
    assert_eq!(replies(&r, "127.0.0.1").len(), 2);
    assert!(
        steps.iter().all(|s| s["t_us"].is_u64()),
        "every step has t_us"
    );
}

#[test]
fn ping_no_filter_shows_its_own_request_skipped_on_loopback() {
    require_root!("ping_no_filter_shows_its_own_request_skipped_on_loopback");
    let r = run(
        &[
            "--format",
            "json",
            "ping",
            "--no-filter",
            "-c",
            "2",
            "-i",
            "0.1",
            "127.0.0.1",
        ],
        LIMIT,
    );
    r.assert_ok();
    let steps = r.lab_steps();
    assert!(icmp_filter_step(&steps).is_none(), "--no-filter sets none");
    assert!(
        skipped_own_request(&steps),
        "own request arrives and is skipped"
    );
    let lines = replies(&r, "127.0.0.1");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(r
        .messages()
        .iter()
        .any(|m| m.contains("2 packets transmitted, 2 received, 0% packet loss")));
}

#[test]
fn strace_prints_the_icmp_filters_as_ipclab_does() {
    let test = "strace_prints_the_icmp_filters_as_ipclab_does";
    require_root!(test);
    require_tool!(test, "strace");
    let mut hosts = vec!["127.0.0.1"];
    if std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| s.contains(" lo")) {
        hosts.push("::1");
    }
    for host in hosts {
        let dir = util::TempDir::new("strace-filter");
        let log = dir.path().join("strace.log");
        let mut cmd = Command::new("strace");
        cmd.args(["-qq", "-e", "trace=setsockopt", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_ipclab"))
            .args(["--format", "json", "ping", "-c", "1", host]);
        let r = run_cmd(&mut cmd, LIMIT);
        r.assert_ok();
        let steps = r.lab_steps();
        let f = steps
            .iter()
            .find(|s| {
                s["syscall"] == "setsockopt"
                    && (s["args"][2] == "ICMP_FILTER" || s["args"][1] == "SOL_ICMPV6")
            })
            .unwrap_or_else(|| panic!("{host}: no filter step"));
        let args: Vec<&str> = f["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let want = format!("setsockopt({}) = 0", args.join(", "));
        let text = std::fs::read_to_string(&log).expect("strace log");
        assert!(
            text.lines().any(|l| l == want),
            "{host}: strace printed no line\n{want}\nlog:\n{text}"
        );
    }
}

#[test]
fn ping_sends_on_schedule_when_no_reply_comes() {
    // A namespace whose kernel ignores echo requests: nothing answers, and
    // the requests must still leave every -i seconds, not every -W.
    let t0 = Instant::now();
    let Some(r) = run_in_netns(
        "ping_sends_on_schedule_when_no_reply_comes",
        "echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all",
        &[
            "--format",
            "json",
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "127.0.0.1",
        ],
        LIMIT,
    ) else {
        return;
    };
    let took = t0.elapsed();
    assert_eq!(r.code(), Some(1), "no reply at all: exit 1\n{}", r.stderr);
    let steps = r.lab_steps();
    let sends: Vec<u64> = steps
        .iter()
        .filter(|s| s["syscall"] == "sendto")
        .map(|s| s["t_us"].as_u64().expect("t_us"))
        .collect();
    assert_eq!(sends.len(), 3, "{steps:?}");
    for w in sends.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (190_000..=300_000).contains(&gap),
            "requests {gap} µs apart, -i 0.2: {sends:?}"
        );
    }
    let msgs = r.messages().join("\n");
    for seq in 1..=3 {
        assert!(
            msgs.contains(&format!("no reply to icmp_seq={seq} within 1 s (-W)")),
            "{msgs}"
        );
    }
    assert!(
        msgs.contains("3 packets transmitted, 0 received, 100% packet loss"),
        "{msgs}"
    );
    // 0.4 s of sending, then -W for the last one; not 3 × -W.
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?}: the sends waited for replies"
    );
}

#[test]
fn ping_interrupted_by_sigint_prints_statistics_and_exits_130() {
    let test = "ping_interrupted_by_sigint_prints_statistics_and_exits_0";
    require_root!(test);
    require_tool!(test, "kill");
    use std::io::BufRead;
    let mut child = ipclab()
        .args([
            "--format",
            "json",
            "ping",
            // No -c: like iputils, it runs until Ctrl-C.
            "-i",
            "0.2",
            "127.0.0.1",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ipclab");
    let pid = child.id();
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen < 2 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            if l.contains("bytes from 127.0.0.1: icmp_seq=") {
                seen += 1;
            }
            lines.push(l);
        }
    }
    if seen < 2 {
        let _ = child.kill();
        let _ = child.wait();
        panic!("fewer than 2 replies in 10 s:\n{}", lines.join("\n"));
    }
    let killed = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running 5 s after SIGINT:\n{}", lines.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = reader.join();
    lines.extend(rx.try_iter());
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    // Issue 7: every command stopped by a signal exits 128+N, ping too
    // (iputils exits 0 when replies came; ipclab keeps one rule for scripts).
    assert_eq!(status.code(), Some(130), "stopped by SIGINT: 128+2\n{err}");
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let text: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "message")
        .filter_map(|e| e["text"].as_str())
        .collect();
    let at = text
        .iter()
        .position(|t| t.contains("ping statistics"))
        .unwrap_or_else(|| panic!("no statistics after SIGINT: {text:?}"));
    assert_eq!(
        text[at - 1],
        "",
        "a blank line before the statistics, as iputils"
    );
    let summary = text[at..].join("\n");
    assert!(summary.contains("rtt min/avg/max/mdev = "), "{summary}");
    assert!(!summary.contains("100 packets transmitted"), "{summary}");
    // (The signal nearly always lands in poll, shown as `= -1 EINTR`, but it
    // may land between calls too; the loop checks for it either way.)
    let steps: Vec<&Value> = events.iter().filter(|e| e["type"] == "syscall").collect();
    assert_eq!(steps.last().expect("steps")["syscall"], "close");
    assert!(!err.contains("panicked"), "{err}");
}
