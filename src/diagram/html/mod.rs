//! The self-contained HTML report: one file with the CSS, the script, each
//! section's SVG (from `picture`) and the run's data as JSON, so it works
//! from a `file://` URL and fetches nothing. The script builds each
//! section (collapsible) with its diagram and step list; hovering over or
//! clicking a box shows its strace line, note, kernel objects and the
//! process's descriptor table.

use serde_json::{json, Value};

use super::model::{Diagram, Kind, LaneKey, Section};
use super::picture;

const TEMPLATE: &str = include_str!("template.html");
const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// The report for `d`.
pub fn report(d: &Diagram) -> String {
    let data = json!({
        "title": d.title,
        "legend": picture::legend_document(900.0).to_string(),
        "sections": d.sections.iter().enumerate().map(|(i, s)| section(s, i)).collect::<Vec<_>>(),
    });
    // Inside <script>, "</script>" or "<!--" in a string would end or
    // bend the element: every "<" is written as the JSON escape \u003c.
    let data = data.to_string().replace('<', "\\u003c");
    fill(
        TEMPLATE,
        &[
            ("TITLE", &escape(&d.title)),
            ("CSS", CSS),
            ("JS", JS),
            ("DATA", &data),
        ],
    )
}

fn section(s: &Section, index: usize) -> Value {
    let pid = |lane: usize| match s.lanes[lane].key {
        LaneKey::Pid(p) => p,
        LaneKey::Host(_) => 0,
    };
    let waits: std::collections::HashMap<usize, &str> = s
        .items
        .iter()
        .filter_map(|w| match &w.kind {
            Kind::Waiting {
                reason,
                until: Some(u),
                ..
            } => Some((*u, reason.as_str())),
            _ => None,
        })
        .collect();
    let entries: Vec<Value> = s
        .items
        .iter()
        .enumerate()
        .map(|(row, it)| {
            let p = pid(it.lane);
            match &it.kind {
                Kind::Step(st) => {
                    let wait = waits.get(&row);
                    json!({
                        "kind": "step",
                        "seq": st.seq,
                        "pid": p,
                        "name": st.syscall,
                        "libc": st.libc,
                        "line": st.strace_line(),
                        "note": st.note,
                        "failed": st.errno.is_some(),
                        "wait": wait,
                        "objects": st.objects.iter().map(|o| json!({
                            "fd": o.fd, "object": o.object, "proto": o.proto,
                            "local": o.local, "remote": o.remote, "peer": o.peer,
                        })).collect::<Vec<_>>(),
                        "table": it.table,
                    })
                }
                Kind::Waiting {
                    syscall, reason, ..
                } => json!({"kind": "waiting", "pid": p, "text": format!("{syscall}(… <{reason}>")}),
                Kind::Message(t) => json!({"kind": "message", "pid": p, "text": format!(">> {t}")}),
                Kind::Signal { signal, from } => {
                    json!({"kind": "signal", "pid": p, "text": format!("--- {signal} (from pid {from}) ---")})
                }
                Kind::Exit { status, signal } => {
                    let what = match (status, signal) {
                        (_, Some(sig)) => format!("+++ killed by {sig} +++"),
                        (Some(c), None) => format!("+++ exited with {c} +++"),
                        _ => "+++ exited +++".to_string(),
                    };
                    json!({"kind": "exit", "pid": p, "text": what})
                }
            }
        })
        .collect();
    json!({
        "name": s.name,
        "title": s.title,
        "result": s.result,
        "recorded": s.recorded_tables,
        "svg": picture::section_document(s, index).to_string(),
        "entries": entries,
        "tables": s.tables.iter().map(|t| t.iter().map(|r| json!({
            "fd": r.fd, "target": r.target, "desc": r.desc,
        })).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}

/// `&`, `<`, `>`, `"` and `'` as HTML character references.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Replaces each `{{NAME}}` of `template` once, in one pass, so that no
/// value is ever read as a placeholder itself.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}").and_then(|j| {
            let name = &after[..j];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (j, *v))
        }) {
            Some((j, v)) => {
                out.push_str(v);
                rest = &after[j + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once() {
        assert_eq!(
            fill("<t>{{A}}</t>{{B}}{{C", &[("A", "{{B}}"), ("B", "b")]),
            "<t>{{B}}</t>b{{C"
        );
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
