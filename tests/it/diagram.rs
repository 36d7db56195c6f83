//! Diagrams (issue 13): `--diagram`, `--html`, `ipclab diagram` and
//! `--lanes`. The SVG is parsed as XML and its lanes and data arrows are
//! compared with what the run's own JSON implies; real renderers draw it
//! (rsvg-convert for the SVG, headless Chromium for the HTML report) and
//! the pictures must not be blank.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{have_tool, ipclab, run_cmd, skip, strace_crosscheck, Run, TempDir};

pub const LIMIT: Duration = Duration::from_secs(60);

/// `ipclab --format json --diagram DIR/run.svg ARGS`: the run and the SVG.
pub fn drawn(dir: &TempDir, args: &[&str]) -> (Run, String) {
    let svg = dir.path().join("run.svg");
    let mut cmd = ipclab();
    cmd.args(["--format", "json", "--diagram"])
        .arg(&svg)
        .args(args)
        .env("TMPDIR", "/tmp");
    let run = run_cmd(&mut cmd, LIMIT);
    run.assert_ok();
    let text = std::fs::read_to_string(&svg).expect("the SVG was written");
    (run, text)
}

fn classes<'a>(n: &roxmltree::Node<'a, 'a>) -> Vec<&'a str> {
    n.attribute("class")
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

/// The pids of the SVG's lanes (`g.lane[data-pid]`).
pub fn svg_lanes(svg: &str) -> BTreeSet<i64> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("g") && classes(n).contains(&"lane"))
        .filter_map(|n| n.attribute("data-pid")?.parse().ok())
        .collect()
}

/// The SVG's data arrows: (step written, step read, bytes).
pub fn svg_data_arrows(svg: &str) -> BTreeSet<(u64, u64, u64)> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    doc.descendants()
        .filter(|n| {
            let c = classes(n);
            n.has_tag_name("g") && c.contains(&"arrow") && c.contains(&"data")
        })
        .map(|n| {
            let num = |a: &str| {
                n.attribute(a)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| {
                        panic!(
                            "data arrow without {a}: {:?}",
                            n.attributes().collect::<Vec<_>>()
                        )
                    })
            };
            (num("data-from"), num("data-to"), num("data-bytes"))
        })
        .collect()
}

fn object(step: &Value) -> Option<&Value> {
    let fd: i64 = step["args"][0].as_str()?.parse().ok()?;
    step["objects"].as_array()?.iter().find(|o| o["fd"] == fd)
}

fn addr(v: &Value) -> Option<SocketAddr> {
    v.as_str()?.parse().ok()
}

/// `{sa_family=AF_INET, sin_port=htons(8989), sin_addr=inet_addr("127.0.0.1")}` → 127.0.0.1:8989.
fn strace_addr(arg: &str) -> Option<SocketAddr> {
    let port = arg.split("sin_port=htons(").nth(1)?.split(')').next()?;
    let ip = arg.split("inet_addr(\"").nth(1)?.split('"').next()?;
    format!("{ip}:{port}").parse().ok()
}

/// The data arrows the JSON implies, worked out here on their own: every
/// write/send of N > 0 bytes and every read/recv that took bytes from
/// another process. A byte stream (pipe, FIFO: the same object; TCP: the
/// sender's local → remote is the reader's remote → local) is read in the
/// order it was written, writes by their start, reads by their return; a
/// UDP datagram goes to the first later recvfrom on the socket whose port
/// it was sent to, from the sender's port.
fn expected_data_arrows(steps: &[Value]) -> BTreeSet<(u64, u64, u64)> {
    let mut writes: BTreeMap<String, Vec<(u64, i64, u64, u64)>> = BTreeMap::new();
    let mut reads: BTreeMap<String, Vec<(u64, i64, u64, u64)>> = BTreeMap::new();
    let mut dgrams_out = Vec::new();
    let mut dgrams_in = Vec::new();
    for s in steps {
        let name = s["syscall"].as_str().unwrap_or("");
        let sending = ["write", "sendto", "sendmsg"].contains(&name);
        if !sending && !["read", "recvfrom", "recvmsg"].contains(&name) {
            continue;
        }
        let Some(n) = s["ret"].as_u64().filter(|&n| n > 0) else {
            continue;
        };
        let Some(o) = object(s) else { continue };
        let seq = s["seq"].as_u64().expect("seq");
        let pid = s["pid"].as_i64().expect("pid");
        let start = s["t_us"].as_u64().expect("t_us");
        let end = start + s["elapsed_us"].as_u64().expect("elapsed_us");
        let key = match o["proto"].as_str() {
            Some("TCP") => {
                let (l, r) = (
                    o["local"].as_str().expect("local"),
                    o["remote"].as_str().expect("remote"),
                );
                if sending {
                    format!("{l}>{r}")
                } else {
                    format!("{r}>{l}")
                }
            }
            Some("UDP") => {
                let here = addr(&o["local"]).expect("a UDP socket's address");
                if sending {
                    let to =
                        strace_addr(s["args"][4].as_str().unwrap_or("")).expect("sendto's address");
                    dgrams_out.push((seq, pid, n, start, here, to));
                } else {
                    let from = strace_addr(s["args"][4].as_str().unwrap_or(""))
                        .expect("recvfrom's address");
                    dgrams_in.push((seq, pid, n, end, here, from));
                }
                continue;
            }
            Some(_) => continue,
            None => o["object"].as_str().expect("object").to_string(),
        };
        if sending {
            writes.entry(key).or_default().push((seq, pid, n, start));
        } else {
            reads.entry(key).or_default().push((seq, pid, n, end));
        }
    }
    let mut out = BTreeSet::new();
    for (key, mut rs) in reads {
        let mut ws = writes.remove(&key).unwrap_or_default();
        ws.sort_by_key(|w| (w.3, w.0));
        rs.sort_by_key(|r| (r.3, r.0));
        let mut left: Vec<u64> = ws.iter().map(|w| w.2).collect();
        let mut at = 0;
        for (rseq, rpid, n, _) in rs {
            let mut need = n;
            while need > 0 && at < ws.len() {
                let k = left[at].min(need);
                if ws[at].1 != rpid {
                    out.insert((ws[at].0, rseq, k));
                }
                left[at] -= k;
                need -= k;
                if left[at] == 0 {
                    at += 1;
                }
            }
        }
    }
    dgrams_out.sort_by_key(|d| (d.3, d.0));
    dgrams_in.sort_by_key(|d| (d.3, d.0));
    let mut used = vec![false; dgrams_out.len()];
    for (rseq, rpid, n, _, here, from) in dgrams_in {
        if let Some(k) = (0..dgrams_out.len()).find(|&k| {
            let (_, wpid, _, _, src, to) = dgrams_out[k];
            !used[k] && wpid != rpid && to.port() == here.port() && src.port() == from.port()
        }) {
            used[k] = true;
            out.insert((dgrams_out[k].0, rseq, n.min(dgrams_out[k].2)));
        }
    }
    out
}

pub fn check_lanes_and_arrows(args: &[&str], min_arrows: usize) {
    let dir = TempDir::new("diagram");
    let (run, svg) = drawn(&dir, args);
    let steps = run.steps();
    let pids: BTreeSet<i64> = steps.iter().filter_map(|s| s["pid"].as_i64()).collect();
    assert_eq!(
        svg_lanes(&svg),
        pids,
        "{args:?}: one lane per process of the run"
    );
    let want = expected_data_arrows(&steps);
    let got = svg_data_arrows(&svg);
    assert_eq!(got, want, "{args:?}: the data arrows the JSON implies");
    assert!(
        want.len() >= min_arrows,
        "{args:?}: only {} data arrows: {want:?}",
        want.len()
    );
    // Every byte a process read from another arrived on an arrow.
    let mut into: HashMap<u64, u64> = HashMap::new();
    for (_, to, b) in &got {
        *into.entry(*to).or_default() += b;
    }
    for (to, bytes) in into {
        let read = steps
            .iter()
            .find(|s| s["seq"] == to)
            .expect("the read's step");
        assert_eq!(
            read["ret"].as_u64(),
            Some(bytes),
            "{args:?}: bytes into step #{to}"
        );
    }
}

#[test]
fn pipe_diagram_has_the_lanes_and_data_arrows_of_its_json() {
    check_lanes_and_arrows(&["pipe"], 1);
}

#[test]
fn fifo_diagram_has_the_lanes_and_data_arrows_of_its_json() {
    check_lanes_and_arrows(&["fifo"], 1);
}

#[test]
fn tcp_demo_diagram_has_the_lanes_and_data_arrows_of_its_json() {
    // Client A sends two messages, B one and "q"; each but "q" is echoed.
    check_lanes_and_arrows(&["tcp", "demo"], 7);
}

#[test]
fn udp_demo_diagram_has_the_lanes_and_data_arrows_of_its_json() {
    // Five datagrams out, three replies back (one dropped on purpose, none to "q").
    check_lanes_and_arrows(&["udp", "demo"], 8);
}

/// The PNG's pixels that differ from its first (the background), and how
/// many colours it has.
fn ink(png_path: &Path) -> (usize, usize, (u32, u32)) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("the PNG"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let px = info.color_type.samples() * (info.bit_depth as usize / 8).max(1);
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let bg = pixels[0];
    let inked = pixels.iter().filter(|p| **p != bg).count();
    let colours: BTreeSet<&[u8]> = pixels.iter().copied().collect();
    (inked, colours.len(), (info.width, info.height))
}

/// Whether some pixel has this RGB colour.
fn has_colour(png_path: &Path, rgb: [u8; 3]) -> bool {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("the PNG"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let px = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(px)
        .any(|p| p.len() >= 3 && p[..3] == rgb)
}

#[test]
fn the_svg_renders_with_rsvg_convert_and_is_not_blank() {
    if !have_tool("rsvg-convert") {
        skip(
            "the_svg_renders_with_rsvg_convert_and_is_not_blank",
            "needs rsvg-convert (apt-get install librsvg2-bin)",
        );
        return;
    }
    let dir = TempDir::new("diagram-png");
    let (_, svg) = drawn(&dir, &["tcp", "demo"]);
    let png_path = dir.path().join("run.png");
    let out = Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png_path)
        .arg(dir.path().join("run.svg"))
        .output()
        .expect("rsvg-convert runs");
    assert!(
        out.status.success(),
        "rsvg-convert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (inked, colours, (w, h)) = ink(&png_path);
    assert!(w >= 700 && h >= 700, "{w}x{h}");
    assert!(
        inked > (w * h / 50) as usize,
        "only {inked} of {} pixels drawn",
        w * h
    );
    assert!(colours > 8, "only {colours} colours");
    // The lane headers' fill: the lanes themselves were drawn.
    assert!(
        has_colour(&png_path, [0xdd, 0xf4, 0xff]),
        "no lane header in the picture"
    );
    assert!(svg.contains("class=\"legend\""));
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| have_tool(c))
}

/// Chromium, headless, on a `file://` URL: a screenshot or the DOM after
/// the page's script ran.
fn headless(browser: &str, dir: &TempDir, what: &[&str], url: &str) -> Run {
    let profile = dir.path().join("chromium-profile");
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(what)
    .arg(url);
    run_cmd(&mut cmd, Duration::from_secs(90))
}

#[test]
fn the_tour_report_opens_in_headless_chromium_and_shows_the_diagram() {
    let test = "the_tour_report_opens_in_headless_chromium_and_shows_the_diagram";
    let Some(browser) = chromium() else {
        skip(test, "needs Debian's chromium (apt-get install chromium)");
        return;
    };
    let dir = TempDir::new("diagram-html");
    let html = dir.path().join("tour.html");
    let svg = dir.path().join("tour.svg");
    let mut cmd = ipclab();
    cmd.arg("--html")
        .arg(&html)
        .arg("--diagram")
        .arg(&svg)
        .arg("tour")
        .env("TMPDIR", "/tmp");
    let run = run_cmd(&mut cmd, Duration::from_secs(120));
    run.assert_ok();
    // One section of the SVG per section of the run (and the set-up before them).
    let sections = run.stdout.lines().filter(|l| l.starts_with("── ")).count();
    let text = std::fs::read_to_string(&svg).expect("tour.svg");
    let doc = roxmltree::Document::parse(&text).expect("well-formed");
    let drawn = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && classes(n).contains(&"section"))
        .count();
    assert_eq!(drawn, sections + 1, "sections drawn");
    let page = std::fs::read_to_string(&html).expect("tour.html");
    for needle in ["<script src", "<link ", "@import", "url(http"] {
        assert!(
            !page.contains(needle),
            "the report must be self-contained: {needle}"
        );
    }
    let url = format!("file://{}", html.display());
    let shot = dir.path().join("shot.png");
    let r = headless(
        browser,
        &dir,
        &[&format!("--screenshot={}", shot.display())],
        &url,
    );
    assert!(shot.exists(), "no screenshot: {}", r.stderr);
    let (inked, colours, (w, h)) = ink(&shot);
    assert_eq!((w, h), (1200, 900));
    assert!(inked > 20_000, "the page is nearly blank: {inked} pixels");
    assert!(colours > 16, "only {colours} colours");
    assert!(
        has_colour(&shot, [0xdd, 0xf4, 0xff]),
        "the screenshot shows no diagram (no lane header)"
    );
    // A link to a step opens its panel: strace line, note, objects, descriptors.
    let first = run_first_write_seq(&page);
    let dom = headless(
        browser,
        &dir,
        &["--dump-dom"],
        &format!("{url}#step-1-{first}"),
    );
    let panel = dom
        .stdout
        .split("id=\"panel-body\"")
        .nth(1)
        .unwrap_or_else(|| {
            panic!(
                "no panel in the DOM:\n{}",
                &dom.stdout[..dom.stdout.len().min(2000)]
            )
        });
    assert!(panel.contains("strace line"), "{panel}");
    assert!(panel.contains("write(4, \"hello\", 5) = 5"), "{panel}");
    assert!(panel.contains("pipe:["), "{panel}");
    assert!(
        panel.contains("(write end)"),
        "the descriptor table: {panel}"
    );
    assert!(
        dom.stdout.contains("<details class=\"section\""),
        "collapsible sections"
    );
}

/// The step number of the child's `write(4, "hello", 5)` in the tour's
/// pipe section (section 1: 0 is the set-up before the first section).
fn run_first_write_seq(page: &str) -> u64 {
    let data = page
        .split("<script id=\"run-data\" type=\"application/json\">")
        .nth(1)
        .and_then(|r| r.split("</script>").next())
        .expect("the report's data");
    let v: Value = serde_json::from_str(data).expect("JSON");
    v["sections"][1]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["kind"] == "step" && e["name"] == "write")
        .and_then(|e| e["seq"].as_u64())
        .expect("the pipe section's write")
}

#[test]
fn a_saved_run_draws_the_same_lanes_and_arrows() {
    let dir = TempDir::new("diagram-saved");
    let (run, live) = drawn(&dir, &["tcp", "demo"]);
    let saved = dir.path().join("run.jsonl");
    std::fs::write(&saved, &run.stdout).expect("save the run");
    let svg = dir.path().join("saved.svg");
    let html = dir.path().join("saved.html");
    let mut cmd = ipclab();
    cmd.arg("diagram")
        .arg(&saved)
        .arg("-o")
        .arg(&svg)
        .arg("--html")
        .arg(&html);
    let r = run_cmd(&mut cmd, LIMIT);
    r.assert_ok();
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
    let again = std::fs::read_to_string(&svg).expect("saved.svg");
    assert_eq!(svg_lanes(&again), svg_lanes(&live));
    assert_eq!(svg_data_arrows(&again), svg_data_arrows(&live));
    assert!(std::fs::read_to_string(&html)
        .expect("saved.html")
        .starts_with("<!DOCTYPE html>"));
}

#[test]
fn bad_input_to_ipclab_diagram_is_one_line_and_exit_2() {
    let dir = TempDir::new("diagram-bad");
    let out = dir.path().join("x.svg");
    let not_json = dir.path().join("not.jsonl");
    std::fs::write(&not_json, "[pid 1] read(3) = 0\n").expect("write");
    let no_steps = dir.path().join("empty.jsonl");
    std::fs::write(
        &no_steps,
        "{\"type\":\"message\",\"pid\":1,\"text\":\"hi\"}\n",
    )
    .expect("write");
    let missing = dir.path().join("missing.jsonl");
    for (input, says, with_out) in [
        (&missing, "cannot read it", true),
        (&not_json, "line 1 is not JSON", true),
        (&no_steps, "no syscall steps", true),
        (&no_steps, "-o FILE.svg, --html FILE", false),
    ] {
        let mut cmd = ipclab();
        cmd.arg("diagram").arg(input);
        if with_out {
            cmd.arg("-o").arg(&out);
        }
        let r = run_cmd(&mut cmd, LIMIT);
        assert_eq!(r.code(), Some(2), "{input:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
        assert!(r.stderr.contains(says), "{input:?}: {}", r.stderr);
        assert!(!out.exists(), "nothing drawn from bad input");
    }
    let r = run_cmd(
        ipclab()
            .args(["--quiet", "--diagram"])
            .arg(&out)
            .arg("pipe"),
        LIMIT,
    );
    assert_eq!(r.code(), Some(2), "--quiet shows no steps to draw: {r:?}");
    let r = run_cmd(
        ipclab()
            .arg("--diagram")
            .arg(dir.path().join("no/such/dir/x.svg"))
            .arg("pipe"),
        LIMIT,
    );
    assert_eq!(r.code(), Some(2), "{r:?}");
    assert!(
        r.stdout.is_empty(),
        "refused before the first step: {}",
        r.stdout
    );
}

#[test]
fn strace_agrees_with_a_run_that_draws() {
    // The copy every process writes and the files drawn at the end are
    // ipclab's output, not lab steps: the cross-check still holds.
    let dir = TempDir::new("diagram-strace");
    let svg = dir.path().join("x.svg");
    let html = dir.path().join("x.html");
    let (svg, html) = (svg.to_string_lossy(), html.to_string_lossy());
    for lab in [&["pipe"][..], &["tcp", "demo"]] {
        let mut args = vec!["--diagram", &*svg, "--html", &*html];
        args.extend_from_slice(lab);
        if let Some(run) = strace_crosscheck("strace_agrees_with_a_run_that_draws", &args, LIMIT) {
            run.assert_ok();
            assert!(std::fs::metadata(&*svg).is_ok_and(|m| m.len() > 1000));
        }
    }
}

#[test]
fn lanes_put_each_process_in_its_column() {
    let r = run_cmd(
        ipclab().arg("--lanes").arg("pipe").env("COLUMNS", "140"),
        LIMIT,
    );
    r.assert_ok();
    let write = r
        .stdout
        .lines()
        .find(|l| l.contains("write(4, \"hello\", 5) = 5"))
        .unwrap_or_else(|| panic!("no write line:\n{}", r.stdout));
    let read = r
        .stdout
        .lines()
        .find(|l| l.contains("read(3, \"hello\", 100) = 5"))
        .expect("the read line");
    let col = |l: &str, what: &str| l.find(what).expect("found");
    // Parent (reader) in the first column, child (writer) in the second.
    assert!(col(read, "read(") < 20, "{read}");
    assert!(col(write, "write(") > 40, "{write}");
    assert!(
        write.contains('│') || write.contains('┊'),
        "the parent's lane beside it: {write}"
    );
    assert!(
        r.stdout.lines().all(|l| l.chars().count() <= 140),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("┌ pid "), "{}", r.stdout);
    // Too narrow: it says so and prints the usual text.
    let narrow = run_cmd(
        ipclab().arg("--lanes").arg("pipe").env("COLUMNS", "100"),
        LIMIT,
    );
    narrow.assert_ok();
    assert!(
        narrow.stderr.contains("needs 120 columns"),
        "{}",
        narrow.stderr
    );
    assert!(narrow.stdout.contains("[pid "), "{}", narrow.stdout);
    let json = run_cmd(
        ipclab().args(["--lanes", "--format", "json", "pipe"]),
        LIMIT,
    );
    assert_eq!(json.code(), Some(2));
}
