//! A run's JSON lines (the README's schema), read back into records.
//!
//! Lines of a type this version does not know are skipped, so that a run
//! saved by a later ipclab still draws; a line that is not JSON, or a
//! `syscall` line without its `seq`, `pid` or `syscall`, is an error.

use serde::Deserialize;

/// One descriptor of a step and the kernel object behind it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Obj {
    pub fd: i32,
    pub object: String,
    #[serde(default)]
    pub proto: Option<String>,
    #[serde(default)]
    pub local: Option<String>,
    #[serde(default)]
    pub remote: Option<String>,
    #[serde(default)]
    pub peer: Option<String>,
}

/// A `syscall` line.
#[derive(Debug, Clone, Deserialize)]
pub struct StepRec {
    pub seq: u64,
    pub pid: i32,
    pub syscall: String,
    #[serde(default)]
    pub libc: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub ret: Option<i64>,
    #[serde(default)]
    pub errno: Option<String>,
    #[serde(default)]
    pub ret_note: Option<String>,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub elapsed_us: u64,
    #[serde(default)]
    pub t_us: Option<u64>,
    #[serde(default)]
    pub provoked: bool,
    #[serde(default)]
    pub objects: Vec<Obj>,
}

impl StepRec {
    /// When the call returned, in µs since the run began (`None` for runs
    /// saved before `t_us` existed).
    pub fn end_us(&self) -> Option<u64> {
        self.t_us.map(|t| t + self.elapsed_us)
    }

    /// The object behind descriptor `fd`, as the step saw it.
    pub fn object(&self, fd: i32) -> Option<&Obj> {
        self.objects.iter().find(|o| o.fd == fd)
    }

    /// The object behind the first argument, when that is a descriptor.
    pub fn first_object(&self) -> Option<&Obj> {
        let fd = self.args.first()?.trim().parse().ok()?;
        self.object(fd)
    }

    /// A return value as strace writes it: an address (mmap's) in hex.
    pub fn ret_text(&self, r: i64) -> String {
        if self.syscall == "mmap" {
            format!("{r:#x}")
        } else {
            r.to_string()
        }
    }

    /// The step's line as strace prints it, without the pid.
    pub fn strace_line(&self) -> String {
        let ret = match (self.ret, &self.errno) {
            (_, Some(e)) => format!("-1 {e}{}", errno_text(e)),
            (Some(r), None) => self.ret_text(r),
            (None, None) => "?".to_string(),
        };
        let note = self
            .ret_note
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let time = if self.ret.is_none() && self.errno.is_none() {
            String::new()
        } else {
            format!(" <{:.6}>", self.elapsed_us as f64 / 1e6)
        };
        format!(
            "{}({}) = {ret}{note}{time}",
            self.syscall,
            self.args.join(", ")
        )
    }
}

/// ` (Broken pipe)` for `EPIPE`, as strace follows the name with the text.
fn errno_text(name: &str) -> String {
    (1..=133)
        .map(nix::errno::Errno::from_raw)
        .find(|e| crate::render::errno::errno_name(*e) == name)
        .map(|e| format!(" ({})", crate::render::errno::errno_text(e)))
        .unwrap_or_default()
}

/// One row of an `fds` line.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FdRow {
    pub fd: i32,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub desc: String,
}

/// One line of a run.
#[derive(Debug, Clone)]
pub enum Record {
    Step(StepRec),
    Waiting {
        pid: i32,
        syscall: String,
        reason: String,
    },
    Message {
        pid: i32,
        text: String,
    },
    Section {
        name: String,
        title: String,
    },
    Fds {
        pid: i32,
        fds: Vec<FdRow>,
    },
    Signal {
        pid: i32,
        signal: String,
        si_code: String,
        si_pid: i32,
    },
    Exit {
        pid: i32,
        status: Option<i32>,
        signal: Option<String>,
    },
    /// The summary: (lab, result) per row.
    Summary(Vec<(String, String)>),
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    pid: i32,
    #[serde(default)]
    syscall: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    fds: Vec<FdRow>,
    #[serde(default)]
    signal: Option<String>,
    #[serde(default)]
    si_code: String,
    #[serde(default)]
    si_pid: i32,
    #[serde(default)]
    status: Option<i32>,
    #[serde(default)]
    rows: Vec<SummaryRow>,
}

#[derive(Deserialize)]
struct SummaryRow {
    #[serde(default)]
    lab: String,
    #[serde(default)]
    result: String,
}

/// The line types drawn or used by the diagram.
const KNOWN: &[&str] = &[
    "syscall", "waiting", "message", "section", "fds", "signal", "exit", "summary",
];

/// Reads a run's JSON lines. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            format!("line {n} is not JSON ({e}); give the output of `ipclab --format json …`")
        })?;
        let ty = value.get("type").and_then(serde_json::Value::as_str);
        // A `table` (bench's measurements), `counts` (-c) or a later
        // version's type is no step and nothing drawn: skipped before its
        // fields are read, whatever they hold.
        if ty.is_some_and(|t| !KNOWN.contains(&t)) {
            continue;
        }
        let head: Line = serde_json::from_value(value.clone())
            .map_err(|e| format!("line {n} is not an ipclab JSON line ({e})"))?;
        let rec = match head.ty.as_str() {
            "syscall" => Record::Step(serde_json::from_value(value).map_err(|e| {
                format!("line {n}: a syscall line needs seq, pid and syscall ({e})")
            })?),
            "waiting" => Record::Waiting {
                pid: head.pid,
                syscall: head.syscall,
                reason: head.reason,
            },
            "message" => Record::Message {
                pid: head.pid,
                text: head.text,
            },
            "section" => Record::Section {
                name: head.name,
                title: head.title,
            },
            "fds" => Record::Fds {
                pid: head.pid,
                fds: head.fds,
            },
            "signal" => Record::Signal {
                pid: head.pid,
                signal: head.signal.unwrap_or_default(),
                si_code: head.si_code,
                si_pid: head.si_pid,
            },
            "exit" => Record::Exit {
                pid: head.pid,
                status: head.status,
                signal: head.signal,
            },
            "summary" => {
                Record::Summary(head.rows.into_iter().map(|r| (r.lab, r.result)).collect())
            }
            _ => continue,
        };
        out.push(rec);
    }
    if !out.iter().any(|r| matches!(r, Record::Step(_))) {
        return Err(
            "no syscall steps in it: record a run with `ipclab --format json LAB > RUN.jsonl` (not --quiet, not -c)"
                .to_string(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_records_and_strangers_are_skipped() {
        let text = concat!(
            r#"{"type":"section","name":"pipe","title":"t"}"#,
            "\n",
            r#"{"type":"syscall","seq":5,"pid":7,"syscall":"write","args":["4","\"hi\"","2"],"ret":2,"errno":null,"elapsed_us":3,"t_us":10,"objects":[{"fd":4,"object":"pipe:[9]"}]}"#,
            "\n\n",
            r#"{"type":"from-the-future","x":1}"#,
            "\n",
            r#"{"type":"table","name":"t","title":"x","rows":[{"lab":1,"result":null,"pid":"p"}],"notes":[]}"#,
            "\n",
            r#"{"type":"syscall","seq":6,"pid":7,"syscall":"write","args":["4"],"ret":-1,"errno":"EPIPE","elapsed_us":1}"#,
            "\n",
        );
        let recs = parse(text).expect("parses");
        assert_eq!(recs.len(), 3);
        let Record::Step(s) = &recs[1] else {
            panic!("{recs:?}")
        };
        assert_eq!(
            s.first_object().map(|o| o.object.as_str()),
            Some("pipe:[9]")
        );
        assert_eq!(s.end_us(), Some(13));
        assert_eq!(s.strace_line(), "write(4, \"hi\", 2) = 2 <0.000003>");
        let Record::Step(e) = &recs[2] else {
            panic!("{recs:?}")
        };
        assert_eq!(
            e.strace_line(),
            "write(4) = -1 EPIPE (Broken pipe) <0.000001>"
        );
    }

    #[test]
    fn bad_input_says_which_line() {
        assert!(parse("not json")
            .unwrap_err()
            .contains("line 1 is not JSON"));
        assert!(parse("{\"type\":\"message\",\"pid\":1,\"text\":\"x\"}")
            .unwrap_err()
            .contains("no syscall steps"));
        assert!(parse("{\"type\":\"syscall\",\"pid\":1}")
            .unwrap_err()
            .contains("line 1: a syscall line needs"));
        assert!(parse("[1, 2]")
            .unwrap_err()
            .contains("line 1 is not an ipclab JSON line"));
    }
}
