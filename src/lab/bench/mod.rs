//! `ipclab bench`: what each IPC mechanism costs, measured.
//!
//! The set-up of every measurement is traced like any lab (the pipes,
//! sockets, fork, pinning and the reaping are steps you can check with
//! strace); the measured loops are not — nothing in them formats or records
//! a step, and they go through `sys::fast`, one syscall per call. `bench
//! trace` measures what tracing would have cost.
//!
//! - `ipc`: two processes, one mechanism at a time: round trips (latency)
//!   and a stream (bandwidth).
//! - `echo`: a load generator (one process, epoll) against ipclab's own
//!   servers in each model, or against any echo server (`--target`).
//! - `trace`: one loop untraced, traced by ipclab, and under strace.

mod echo;
mod ipc;
mod loops;
mod report;
mod selftrace;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys;
use crate::trace::Recorder;

pub use echo::{run as echo, EchoConfig, EchoTarget};
pub use ipc::{run as ipc, IpcConfig, Mechanism};
pub use selftrace::{inner as inner_loop, parse_ways, run as trace, TraceConfig, WayName};

/// A comma-separated option value (`pipe,shm,rpc`) as the items it names,
/// in order and without repeats. `lookup` gives what a word names (one word
/// may name several, as `rpc` does); `noun` and `valid` word the refusal.
///
/// # Errors
/// A word `lookup` does not know, or no word at all.
pub fn parse_list<T: PartialEq>(
    list: &str,
    option: &str,
    noun: &str,
    valid: &str,
    example: &str,
    lookup: impl Fn(&str) -> Vec<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let found = lookup(word);
        if found.is_empty() {
            return Err(Error::usage(format!(
                "{option}: no {noun} {word:?}; give a list of {valid}"
            )));
        }
        for item in found {
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::usage(format!(
            "{option} is empty; give e.g. {example}"
        )));
    }
    Ok(out)
}

/// `iterative,fork,poll` → the models, in that order.
///
/// # Errors
/// An unknown model, or none.
pub fn parse_models(list: &str) -> Result<Vec<crate::lab::tcp::Model>> {
    use crate::lab::tcp::Model;
    parse_list(
        list,
        "--models",
        "model",
        "iterative, fork, poll",
        "fork,poll",
        |w| {
            [Model::Iterative, Model::Fork, Model::Poll]
                .into_iter()
                .filter(|m| m.name() == w)
                .collect()
        },
    )
}

/// Where both ends run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Both ends on this CPU (sched_setaffinity before fork): round trips
    /// are then context switches, the same on every run.
    Cpu(usize),
    /// Wherever the scheduler puts them (the figures then depend on it).
    Off,
}

/// Checks `--pin CPU` / `--no-pin` against the CPUs this process may use;
/// without either, the first of them.
///
/// # Errors
/// A CPU this process may not run on.
pub fn check_pin(pin: Option<usize>, no_pin: bool) -> Result<Pin> {
    if no_pin {
        return Ok(Pin::Off);
    }
    let allowed = allowed_cpus();
    match pin {
        Some(c) if allowed.contains(&c) => Ok(Pin::Cpu(c)),
        Some(c) => Err(Error::usage(format!(
            "--pin {c}: this process may run on CPU {} only",
            list(&allowed)
        ))),
        None => Ok(allowed.first().map_or(Pin::Off, |&c| Pin::Cpu(c))),
    }
}

/// The CPUs this process may run on (its affinity mask).
fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect()
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks a count option against its range.
///
/// # Errors
/// A value outside `lo..=hi`.
pub fn check_range(value: f64, lo: f64, hi: f64, option: &str, unit: &str) -> Result<f64> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(Error::usage(format!(
            "{option} {value} is out of range: give {unit} from {lo} to {hi}"
        )))
    }
}

/// The machine the figures belong to, read once before the first step.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub cpu_model: String,
}

impl Machine {
    pub fn read() -> Machine {
        // Online CPUs (`getconf _NPROCESSORS_ONLN`): available_parallelism
        // would count only the ones this process may run on.
        let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
            .ok()
            .flatten()
            .map_or(1, |n| n.max(1) as usize);
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "?".into());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Machine {
            cpus,
            kernel,
            cpu_model,
        }
    }

    /// One line: `2 CPUs, Linux 6.1.0-18-amd64, Intel(R) Xeon(R) …`.
    pub fn line(&self) -> String {
        format!(
            "{} CPU{}, Linux {}, {}",
            self.cpus,
            if self.cpus == 1 { "" } else { "s" },
            self.kernel,
            self.cpu_model
        )
    }
}

/// Pins this process (and the children it forks) to the CPU, as a step.
fn pin(rec: &mut Recorder, pin: Pin) -> Result<()> {
    if let Pin::Cpu(c) = pin {
        rec.note(format!(
            "pinned: both ends run on CPU {c}, so a round trip is two context switches on one CPU — the figure that repeats from run to run (--no-pin lets the scheduler choose)"
        ));
        sys::process::sched_setaffinity(rec, c)?;
    }
    Ok(())
}

/// Where the ends ran, for the notes under a table.
fn placement(pin: Pin, parent: Option<usize>, child: Option<usize>) -> String {
    let at = |c: Option<usize>| c.map_or("?".to_string(), |c| c.to_string());
    match pin {
        Pin::Cpu(c) => format!("both ends pinned to CPU {c} (sched_setaffinity before fork)"),
        Pin::Off => format!(
            "not pinned: at the end the parent ran on CPU {}, the child on CPU {} (the scheduler chose)",
            at(parent),
            at(child)
        ),
    }
}

/// Median, 99th percentile, mean and standard deviation of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub p99: f64,
    pub mean: f64,
    pub stddev: f64,
}

impl Spread {
    /// Sorts `samples` in place; all zero when there are none.
    pub fn of(samples: &mut [f64]) -> Spread {
        if samples.is_empty() {
            return Spread::default();
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64;
        Spread {
            median: percentile(samples, 50.0),
            p99: percentile(samples, 99.0),
            mean,
            stddev: var.sqrt(),
        }
    }
}

/// The `p`th percentile of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How far apart the repeats were: (max − min) / median, in percent.
pub fn repeat_spread(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    let s = Spread::of(&mut v);
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) if s.median > 0.0 => 100.0 * (hi - lo) / s.median,
        _ => 0.0,
    }
}

/// Where `--svg` writes, checked before the first step.
///
/// # Errors
/// An empty path, or a directory that does not exist.
pub fn check_svg(path: Option<PathBuf>) -> Result<Option<PathBuf>> {
    let Some(p) = path else { return Ok(None) };
    if p.as_os_str().is_empty() || p.is_dir() {
        return Err(Error::usage(format!(
            "--svg {}: give a file to write, e.g. --svg bench.svg",
            p.display()
        )));
    }
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
    if parent.is_some_and(|d| !d.is_dir()) {
        return Err(Error::usage(format!(
            "--svg {}: the directory {} does not exist",
            p.display(),
            parent.map(|d| d.display().to_string()).unwrap_or_default()
        )));
    }
    Ok(Some(p))
}

/// How long a whole measurement may take at most, whatever the estimate.
fn hard_limit(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds * 4.0 + 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_known_samples() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        let s = Spread::of(&mut v);
        assert_eq!(s.median, 50.0);
        assert_eq!(s.p99, 99.0);
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert!((s.stddev - 28.866).abs() < 1e-3);
        assert_eq!(Spread::of(&mut []), Spread::default());
        assert!((repeat_spread(&[9.0, 10.0, 11.0]) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn ranges_are_checked() {
        assert!(check_range(f64::NAN, 0.1, 10.0, "--seconds", "seconds").is_err());
        assert!(check_range(0.5, 0.1, 10.0, "--seconds", "seconds").is_ok());
        assert!(check_pin(Some(100_000), false).is_err());
        assert_eq!(check_pin(Some(7), true).ok(), Some(Pin::Off));
    }
}
