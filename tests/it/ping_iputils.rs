//! Issue 8 §3: `ipclab ping` as iputils ping — the name kept, -q, -w, -n,
//! -D, -O, -p, -I, -f (root only), an unreachable host, and errors about
//! other destinations ignored.

use std::time::{Duration, Instant};

use crate::util::{run, run_as_nobody, run_in_netns};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn ping_keeps_the_name_and_n_drops_it() {
    require_root!("ping_keeps_the_name_and_n_drops_it");
    let r = run(&["--format", "json", "ping", "-c", "1", "localhost"], LIMIT);
    r.assert_ok();
    let m = r.messages();
    assert!(
        m.iter()
            .any(|l| l == "PING localhost (127.0.0.1) 56(84) bytes of data."),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|l| l.starts_with("64 bytes from localhost (127.0.0.1): icmp_seq=1")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|l| l == "--- localhost ping statistics ---"),
        "{m:?}"
    );
    let r = run(
        &["--format", "json", "ping", "-n", "-c", "1", "localhost"],
        LIMIT,
    );
    assert!(r
        .messages()
        .iter()
        .any(|l| l.starts_with("64 bytes from 127.0.0.1: ")));
}

#[test]
fn ping_q_prints_only_the_first_line_and_the_statistics() {
    require_root!("ping_q_prints_only_the_first_line_and_the_statistics");
    let r = run(
        &[
            "--format",
            "json",
            "ping",
            "-q",
            "-c",
            "2",
            "-i",
            "0.2",
            "127.0.0.1",
        ],
        LIMIT,
    );
    r.assert_ok();
    let m = r.messages();
    assert!(!m.iter().any(|l| l.contains("bytes from")), "{m:?}");
    assert!(
        m.iter()
            .any(|l| l.starts_with("2 packets transmitted, 2 received")),
        "{m:?}"
    );
}

#[test]
fn ping_w_deadline_ends_a_run_without_count() {
    require_root!("ping_w_deadline_ends_a_run_without_count");
    let t0 = Instant::now();
    let r = run(
        &[
            "--format",
            "json",
            "ping",
            "-w",
            "1",
            "-i",
            "0.2",
            "127.0.0.1",
        ],
        LIMIT,
    );
    r.assert_ok();
    assert!(t0.elapsed() < Duration::from_secs(3));
    let sent = r
        .lab_steps()
        .iter()
        .filter(|s| s["syscall"] == "sendto")
        .count();
    assert!(
        (4..=6).contains(&sent),
        "about 1 s / 0.2 s requests: {sent}"
    );
}

#[test]
fn ping_d_and_p_stamp_lines_and_fill_the_data() {
    require_root!("ping_d_and_p_stamp_lines_and_fill_the_data");
    let r = run(
        &[
            "--format",
            "json",
            "-s",
            "64",
            "ping",
            "-D",
            "-p",
            "ab",
            "-s",
            "24",
            "-c",
            "1",
            "127.0.0.1",
        ],
        LIMIT,
    );
    r.assert_ok();
    let send = r
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "sendto")
        .expect("sendto");
    // 8 header bytes, 16 of time stamp, then the pattern: \253 is 0xab.
    assert!(
        send["args"][1]
            .as_str()
            .unwrap_or("")
            .ends_with("\\253\\253\\253\\253\\253\\253\\253\\253\""),
        "{send}"
    );
    let line = r
        .messages()
        .into_iter()
        .find(|l| l.contains("bytes from"))
        .expect("a reply line");
    assert!(
        line.starts_with('[') && line.contains("] 32 bytes from 127.0.0.1"),
        "{line}"
    );
}

#[test]
fn ping_i_binds_to_an_interface() {
    require_root!("ping_i_binds_to_an_interface");
    let r = run(
        &[
            "--format",
            "json",
            "ping",
            "-I",
            "lo",
            "-c",
            "1",
            "127.0.0.1",
        ],
        LIMIT,
    );
    r.assert_ok();
    let opt = r
        .lab_steps()
        .into_iter()
        .find(|s| s["args"][2] == "SO_BINDTODEVICE")
        .expect("SO_BINDTODEVICE");
    assert_eq!(opt["args"][3], "\"lo\\0\"");
    assert_eq!(opt["args"][4], "3");
}

/// An address on a link where nobody answers: the requests stay
/// unanswered (-O says so) until the kernel gives up on ARP and reports the
/// host unreachable, which ping shows as iputils does.
#[test]
fn ping_o_and_an_unreachable_host_on_a_silent_link() {
    let setup = "ip link add v0 type veth peer name v1 && ip addr add 192.0.2.2/24 dev v0 \
                 && ip link set v0 up && ip link set v1 up";
    let Some(r) = run_in_netns(
        "ping_o_and_an_unreachable_host_on_a_silent_link",
        setup,
        &[
            "--format",
            "json",
            "ping",
            "-O",
            "-c",
            "5",
            "-i",
            "0.5",
            "-W",
            "1",
            "192.0.2.1",
        ],
        LIMIT,
    ) else {
        return;
    };
    assert_eq!(r.code(), Some(1), "no reply at all: {}", r.stderr);
    let m = r.messages();
    assert!(
        m.iter().any(|l| l == "no answer yet for icmp_seq=1"),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|l| l.contains("5 packets transmitted, 0 received")),
        "{m:?}"
    );
}

#[test]
fn ping_f_is_for_root_only() {
    let Some(r) = run_as_nobody(
        "ping_f_is_for_root_only",
        &["ping", "-f", "-c", "1", "127.0.0.1"],
        LIMIT,
    ) else {
        return;
    };
    assert_eq!(r.code(), Some(2));
    assert!(r.stderr.contains("cannot flood"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn ping_f_floods_as_root() {
    require_root!("ping_f_floods_as_root");
    let r = run(
        &["--format", "json", "ping", "-f", "-c", "100", "127.0.0.1"],
        LIMIT,
    );
    r.assert_ok();
    let m = r.messages();
    assert!(
        !m.iter().any(|l| l.contains("bytes from")),
        "no line per reply under -f"
    );
    assert!(
        m.iter()
            .any(|l| l.starts_with("100 packets transmitted, 100 received")),
        "{m:?}"
    );
}
