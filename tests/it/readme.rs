//! The README's samples are real, current output: each block marked
//! `<!-- sample: ARGS -->` is compared with a fresh `ipclab --no-color ARGS`
//! (per process, with pids, times, ports, inodes and temp paths normalised,
//! as in the golden tests), and `UPDATE_README=1 cargo test readme` rewrites
//! the blocks from fresh runs. `<!-- sample: SERVER ARGS | CLIENT ARGS -->`
//! runs a server on port 0 and the client against it. Blocks marked
//! `<!-- excerpt: ARGS -->` are cut by hand (`…`): each of their lines must
//! appear, normalised and in order, in a fresh run (when the run's
//! privileges are there; otherwise the check says why it skipped).

use std::path::PathBuf;
use std::time::Duration;

use crate::util::{ipclab, is_root, run_cmd, skip, spawn_cmd};

const LIMIT: Duration = Duration::from_secs(60);

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

/// One marked block: its marker, and the line range of its text inside the fence.
struct Block {
    kind: Kind,
    args: String,
    /// Index of the first text line and one past the last.
    body: (usize, usize),
}

#[derive(PartialEq)]
enum Kind {
    Sample,
    Excerpt,
    /// An excerpt of a run that needs root (ping, sniff).
    RootExcerpt,
}

fn blocks(lines: &[&str]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        let marker = l
            .strip_prefix("<!-- sample: ")
            .map(|r| (Kind::Sample, r))
            .or_else(|| l.strip_prefix("<!-- excerpt: ").map(|r| (Kind::Excerpt, r)))
            .or_else(|| {
                l.strip_prefix("<!-- excerpt as root: ")
                    .map(|r| (Kind::RootExcerpt, r))
            });
        if let Some((kind, rest)) = marker {
            let args = rest.trim_end_matches("-->").trim().to_string();
            assert!(
                lines.get(i + 1).is_some_and(|f| f.starts_with("```")),
                "README line {}: a sample marker must be followed by a fence",
                i + 1
            );
            let start = i + 2;
            let end = (start..lines.len())
                .find(|&j| lines[j].starts_with("```"))
                .expect("closing fence");
            out.push(Block {
                kind,
                args,
                body: (start, end),
            });
            i = end;
        }
        i += 1;
    }
    out
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// A fresh run of the marker's command(s), text format, no colour.
fn fresh(args: &str) -> String {
    let (server, client) = match args.split_once(" | ") {
        Some((s, c)) => (s, Some(c)),
        None => (args, None),
    };
    let mut cmd = ipclab();
    cmd.arg("--no-color")
        .args(words(server))
        .env("TMPDIR", "/tmp");
    let Some(client) = client else {
        let r = run_cmd(&mut cmd, LIMIT);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        return r.stdout;
    };
    // The server prints its address ("listening on A:P") before it waits.
    let mut srv = spawn_cmd(&mut cmd);
    let out = srv
        .child
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server's address");
        text.push(line.clone());
        if let Some(rest) = line.split(">> listening on ").nth(1) {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    let mut c = ipclab();
    c.arg("--no-color")
        .args(words(client))
        .args(["--connect", &addr]);
    let cr = run_cmd(&mut c, LIMIT);
    assert!(!cr.stderr.contains("panicked"), "{}", cr.stderr);
    let _ = srv.wait_timeout(LIMIT);
    text.extend(rx.try_iter());
    text.push(String::new());
    text.join("\n")
}

/// The golden tests' normalisation, plus ports and ppoll's time left.
fn normalise(text: &str) -> Vec<String> {
    let mut pids: Vec<String> = Vec::new();
    for l in text.lines() {
        let found = l
            .strip_prefix("[pid ")
            .and_then(|r| r.split(']').next())
            .or_else(|| {
                l.split("\"pid\":")
                    .nth(1)
                    .and_then(|r| r.split([',', '}']).next())
            });
        if let Some(p) = found {
            if !pids.contains(&p.to_string()) {
                pids.push(p.to_string());
            }
        }
    }
    // The working directory (getcwd, chdir back) is wherever the run was
    // made: the checkout's folder differs between machines and worktrees.
    let cwd = text
        .split("getcwd(\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .filter(|p| p.len() > 1)
        .map(str::to_string);
    text.lines()
        .map(|line| {
            let line = match &cwd {
                Some(c) => line.replace(c.as_str(), "CWD"),
                None => line.to_string(),
            };
            // Names a run makes for itself (ipclab-PID-NANOS: its temp dir,
            // /dev/shm object, abstract socket name) before the pids go.
            let mut l = run_names(line.trim_end());
            if let Some(c) = &cwd {
                l = l.replace(&format!("\"{c}\""), "\"CWD\"");
                if let Some(i) = l.find("getcwd(\"CWD\", 4096) = ") {
                    let start = i + "getcwd(\"CWD\", 4096) = ".len();
                    let n = l[start..].chars().take_while(char::is_ascii_digit).count();
                    l.replace_range(start..start + n, "N");
                }
            }
            if l.starts_with(' ') {
                l = format!("    {}", l.trim_start());
            }
            for (i, p) in pids.iter().enumerate() {
                l = replace_number(&l, p, &format!("P{}", i + 1));
            }
            l = cut(&l, " <0.", ">", " <T>");
            l = cut(&l, " <1.", ">", " <T>");
            l = cut(&l, "left {", "}", "left {…}");
            l = cut(&l, "/tmp/ipclab-", "/", "/tmp/ipclab-DIR/");
            l = cut(&l, "/tmp/ipclab-", "\"", "/tmp/ipclab-DIR\"");
            l = cut(&l, "pipe:[", "]", "pipe:[N]");
            // A socket path's length in sockaddr_un grows with the pid's digits.
            l = number_after(&l, "sun_path=\"/tmp/ipclab-DIR\"}, ", "LEN");
            // getcwd returns the path's length, which depends on it too.
            l = number_after(&l, "getcwd(\"CWD\", 4096) = ", "LEN");
            l = addresses(&l);
            l = autobind(&l);
            // A socket file's mode is 0777 less the umask of whoever runs.
            l = cut(&l, "S_IFSOCK|0", ",", "S_IFSOCK|0MODE,");
            l = cut(&l, "has mode 0", " ", "has mode 0MODE ");
            l = port_free(&l);
            l = json_number(&l, "\"elapsed_us\":");
            l = json_number(&l, "\"t_us\":");
            l = l.replace("revents=POLLIN|POLLHUP", "revents=POLLIN");
            l.replace(
                "data to read, and the other end has closed",
                "ready to read: the next call returns at once",
            )
        })
        .collect()
}

/// Replaces the number `n` where it stands alone: not inside a longer
/// number, and not an octal escape (`\357`) in a quoted buffer, which a
/// pid of 357 would otherwise turn into `\P1`.
fn replace_number(line: &str, n: &str, with: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(k) = line[from..].find(n) {
        let i = from + k;
        let j = i + n.len();
        let before = i.checked_sub(1).map(|x| b[x]);
        let alone = !before.is_some_and(|c| c.is_ascii_digit() || c == b'\\')
            && !b.get(j).is_some_and(u8::is_ascii_digit);
        if alone {
            out.push_str(&line[last..i]);
            out.push_str(with);
            last = j;
        }
        from = j;
    }
    out.push_str(&line[last..]);
    out
}

/// The number right after each `marker` becomes `with`.
fn number_after(line: &str, marker: &str, with: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let n = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&rest[..i + marker.len()]);
        out.push_str(if n > 0 { with } else { "" });
        rest = &after[n..];
    }
    out.push_str(rest);
    out
}

/// `ipclab-<pid>-<8 hex digits>` → `ipclab-N-X`.
fn run_names(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("ipclab-") {
        let after = &rest[i + "ipclab-".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let tail = &after[digits..];
        let hex = tail
            .strip_prefix('-')
            .map_or(0, |t| t.chars().take_while(char::is_ascii_hexdigit).count());
        out.push_str(&rest[..i + "ipclab-".len()]);
        if digits > 0 && hex == 8 {
            out.push_str("N-X");
            rest = &tail[1 + hex..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Addresses (`0x7f…`, eight hex digits or more: mmap's, a futex word's)
/// become `0xADDR`: they change with every run (ASLR).
fn addresses(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("0x") {
        let after = &rest[i + 2..];
        let n = after.chars().take_while(char::is_ascii_hexdigit).count();
        out.push_str(&rest[..i + 2]);
        if n >= 8 {
            out.push_str("ADDR");
        } else {
            out.push_str(&after[..n]);
        }
        rest = &after[n..];
    }
    out.push_str(rest);
    out
}

/// The abstract name the kernel picks on autobind (`@"3e8f1"`, five hex
/// digits) becomes `@"AUTO"`; so does the `@3e8f1` of a message.
fn autobind(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('@') {
        let after = &rest[i + 1..];
        let quoted = after.starts_with('"');
        let name = if quoted { &after[1..] } else { after };
        let n = name
            .chars()
            .take_while(|c| c.is_ascii_digit() || ('a'..='f').contains(c))
            .count();
        let end_ok = name[n..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-');
        out.push_str(&rest[..=i]);
        if n == 5 && end_ok {
            out.push_str(if quoted { "\"AUTO" } else { "AUTO" });
            rest = &name[n..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces every `start…end` with no space in between by `with`.
fn cut(line: &str, start: &str, end: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(start) {
        let after = &rest[i + start.len()..];
        match after.find(end) {
            Some(j) if !after[..j].contains(' ') || start == "left {" => {
                out.push_str(&rest[..i]);
                out.push_str(with);
                rest = &after[j + end.len()..];
            }
            _ => {
                out.push_str(&rest[..i + start.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An excerpt line with what changes from run to run blurred: numbers (ids,
/// checksums, sequence numbers, RTTs) and the bytes of a hex dump (`3e`,
/// `c0`) become N, byte strings "S", and an RTT with or without decimals.
fn loose(line: &str) -> String {
    let hex_byte = |w: &str| {
        w.len() == 2
            && w.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    // A run of hex bytes is one N: a dump line's length varies too (a
    // machine name with a 5-digit pid is a byte longer than with 4).
    let mut words: Vec<&str> = Vec::new();
    for w in line.split(' ') {
        let w = if hex_byte(w) { "N" } else { w };
        if !(w == "N" && words.last() == Some(&"N")) {
            words.push(w);
        }
    }
    let line = words.join(" ");
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            out.push('N');
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_hexdigit() || *d == 'x')
            {
                chars.next();
            }
        } else if c == '"' && chars.peek() == Some(&'\\') {
            out.push_str("\"S");
            // To the closing quote; an escaped one (\") does not close it.
            let mut escaped = false;
            for d in chars.by_ref() {
                match d {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => break,
                    _ => escaped = false,
                }
            }
            out.push('"');
        } else {
            out.push(c);
        }
    }
    // ping prints an RTT to 3 significant digits: `time=0.158 ms`, but
    // `time=123 ms` on a busy machine.
    out.replace("time=N.N ms", "time=N ms")
}

/// A JSON number after `key` (a time) becomes N.
fn json_number(line: &str, key: &str) -> String {
    match line.find(key) {
        Some(i) => {
            let start = i + key.len();
            let len = line[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .count();
            format!("{}N{}", &line[..start], &line[start + len..])
        }
        None => line.to_string(),
    }
}

/// Kernel-chosen ports (not 0 and not the seed's 8989) become PORT.
fn port_free(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.char_indices().peekable();
    let bytes = line.as_bytes();
    while let Some((i, c)) = chars.next() {
        out.push(c);
        let after_colon = c == ':' && i > 0 && bytes[i - 1].is_ascii_digit();
        let next = i + c.len_utf8();
        let after_htons = line[..next].ends_with("htons(");
        if after_colon || after_htons {
            let digits: String = line[next..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if digits.len() >= 4 && digits != "8989" {
                out.push_str("PORT");
                for _ in 0..digits.len() {
                    chars.next();
                }
            }
        }
    }
    out
}

/// Lines grouped per process (a step line with its note lines), and the
/// rest (summary) in order: parents and children interleave for real.
fn per_process(lines: &[String]) -> Vec<Vec<String>> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut other = Vec::new();
    let mut current: Option<usize> = None;
    for l in lines {
        if let Some(rest) = l.strip_prefix("[pid ") {
            let p = rest.split(']').next().unwrap_or("").to_string();
            let idx = match groups.iter().position(|(q, _)| *q == p) {
                Some(i) => i,
                None => {
                    groups.push((p, Vec::new()));
                    groups.len() - 1
                }
            };
            current = Some(idx);
        } else if !l.starts_with(' ') {
            current = None;
        }
        match current {
            Some(i) => groups[i].1.push(l.clone()),
            None if !l.trim().is_empty() => other.push(l.clone()),
            None => {}
        }
    }
    let mut out: Vec<Vec<String>> = groups.into_iter().map(|(_, g)| g).collect();
    out.push(other);
    out
}

#[test]
fn pids_are_replaced_only_where_they_stand_alone() {
    assert_eq!(
        replace_number(
            "[pid 357] sendto(4, \"\\357\\274\", 2) = 3357 pid=357,",
            "357",
            "P1"
        ),
        "[pid P1] sendto(4, \"\\357\\274\", 2) = 3357 pid=P1,"
    );
}

#[test]
fn run_names_addresses_and_autobind_names_are_normalised() {
    assert_eq!(
        loose("64 bytes from 198.51.100.2: icmp_seq=1 ttl=63 time=0.158 ms"),
        loose("64 bytes from 198.51.100.2: icmp_seq=1 ttl=63 time=123 ms")
    );
    assert_eq!(
        run_names("bind(3, {sun_path=@\"ipclab-1405-19c2bb2d\"}) /tmp/ipclab-7-0000abcd/sock"),
        "bind(3, {sun_path=@\"ipclab-N-X\"}) /tmp/ipclab-N-X/sock"
    );
    assert_eq!(
        run_names("ipclab-demo ipclab-12-xyz"),
        "ipclab-demo ipclab-12-xyz"
    );
    assert_eq!(
        addresses("mmap(…) = 0x7f587f039000, id=0x6952"),
        "mmap(…) = 0xADDR, id=0x6952"
    );
    assert_eq!(
        autobind("sun_path=@\"3e8f1\"}, from @3e8f1: @ipclab-N-X"),
        "sun_path=@\"AUTO\"}, from @AUTO: @ipclab-N-X"
    );
}

#[test]
fn readme_samples_are_current_output() {
    let path = readme_path();
    let text = std::fs::read_to_string(&path).expect("README.md");
    let lines: Vec<&str> = text.lines().collect();
    let found = blocks(&lines);
    assert!(found.len() >= 3, "the README has marked samples");
    let update = std::env::var_os("UPDATE_README").is_some();
    let mut replaced: Vec<(usize, usize, String)> = Vec::new();
    for b in &found {
        let shown: Vec<String> = lines[b.body.0..b.body.1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if b.kind != Kind::Sample {
            if update {
                continue; // excerpts are cut by hand
            }
            if b.kind == Kind::RootExcerpt && !is_root() {
                skip(
                    "readme_samples_are_current_output",
                    &format!("excerpt `{}` needs root to run", b.args),
                );
                continue;
            }
            let got: Vec<String> = normalise(&fresh(&b.args))
                .iter()
                .map(|l| loose(l))
                .collect();
            let mut at = 0;
            for want in normalise(&shown.join("\n")).iter().map(|l| loose(l)) {
                if want.contains('…') || want.trim().is_empty() {
                    continue;
                }
                match got[at..].iter().position(|g| *g == want) {
                    Some(k) => at += k + 1,
                    None => panic!(
                        "README excerpt `{}`: line not in a fresh run (in order):\n{want}\n--- fresh run:\n{}",
                        b.args,
                        got.join("\n")
                    ),
                }
            }
            continue;
        }
        let raw = fresh(&b.args);
        if update {
            replaced.push((b.body.0, b.body.1, raw.trim_end().to_string()));
            continue;
        }
        let want = per_process(&normalise(&shown.join("\n")));
        let got = per_process(&normalise(&raw));
        assert_eq!(
            want, got,
            "README sample `{}` differs from a fresh run; `UPDATE_README=1 cargo test readme` rewrites it",
            b.args
        );
    }
    if update && !replaced.is_empty() {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        for (start, end, body) in replaced {
            out.extend(lines[i..start].iter().map(|s| s.to_string()));
            out.extend(body.lines().map(str::to_string));
            i = end;
        }
        out.extend(lines[i..].iter().map(|s| s.to_string()));
        std::fs::write(&path, out.join("\n") + "\n").expect("write README.md");
    }
}
