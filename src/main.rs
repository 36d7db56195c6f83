//! Parse the CLI → build the Recorder → run the experiment → exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use ipclab::cli::{
    Cli, Command, FifoAction, Format, ServerModel, SniffProto, TcpAction, UdpAction,
};
use ipclab::error::{Error, Result};
use ipclab::lab::{self, fifo, ping, pipe, repeater, sniff, tcp, udp};
use ipclab::trace::{Recorder, TraceOptions};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let opts = TraceOptions {
        json: cli.global.format == Format::Json,
        quiet: cli.global.quiet,
        fds: cli.global.fds,
        step: cli.global.step,
        color: cli.global.format == Format::Text
            && !cli.global.no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal(),
    };
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ipclab", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipclab: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let mut rec = Recorder::new(opts);
    let result = run(&mut rec, cli.command);
    if rec.output_broken() {
        return ExitCode::SUCCESS;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipclab: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Validates the arguments into a config, then runs that lab as one section.
fn run(rec: &mut Recorder, command: Command) -> Result<()> {
    match command {
        Command::Tour => lab::tour::run(rec),
        Command::Pipe(a) => {
            let mode = if a.fill {
                pipe::PipeMode::Fill
            } else if a.sigpipe {
                pipe::PipeMode::Sigpipe
            } else if a.forget_close {
                pipe::PipeMode::ForgetClose
            } else if a.duplex {
                pipe::PipeMode::Duplex
            } else {
                pipe::PipeMode::Basic { reverse: a.reverse }
            };
            let cfg = pipe::PipeConfig::new(mode, &a.message)?;
            single(rec, "pipe", |r| pipe::run(r, &cfg))
        }
        Command::Fifo(a) => {
            let cfg = match a.action {
                None => fifo::FifoConfig::Demo {
                    path: a.path.as_deref().map(fifo::check_path).transpose()?,
                    message: fifo::check_message(&a.message)?,
                },
                Some(FifoAction::Read { path }) => fifo::FifoConfig::Read {
                    path: fifo::check_path(&path)?,
                },
                Some(FifoAction::Write { path, msg }) => fifo::FifoConfig::Write {
                    path: fifo::check_path(&path)?,
                    message: fifo::check_message(&msg)?,
                },
            };
            single(rec, "fifo", |r| fifo::run(r, &cfg))
        }
        Command::Tcp(a) => run_tcp(rec, a.action),
        Command::Udp(a) => run_udp(rec, a.action),
        Command::Ping(a) => {
            let family = match (a.ipv4, a.ipv6) {
                (true, _) => Some(ipclab::packet::icmp::Family::V4),
                (_, true) => Some(ipclab::packet::icmp::Family::V6),
                _ => None,
            };
            let mut cfg = ping::PingConfig::new(
                &a.host, family, a.count, a.interval, a.size, a.ttl, a.timeout, a.dgram,
            )?;
            cfg.kernel_filter = !a.no_filter;
            single(rec, "ping", |r| ping::run(r, &cfg))
        }
        Command::Sniff(a) => {
            let proto = a.proto.map(|p| match p {
                SniffProto::Tcp => ipclab::packet::Proto::Tcp,
                SniffProto::Udp => ipclab::packet::Proto::Udp,
                SniffProto::Icmp => ipclab::packet::Proto::Icmp,
            });
            let cfg = sniff::SniffConfig::new(&a.iface, a.count, proto, a.timeout)?;
            single(rec, "sniff", |r| sniff::run(r, &cfg))
        }
        Command::Completions { .. } | Command::Man => Ok(()),
    }
}

fn model(m: ServerModel) -> tcp::Model {
    match m {
        ServerModel::Iterative => tcp::Model::Iterative,
        ServerModel::Fork => tcp::Model::Fork,
        ServerModel::Poll => tcp::Model::Poll,
    }
}

fn messages(send: &[String], allow_empty: bool) -> Result<Option<Vec<Vec<u8>>>> {
    if send.is_empty() {
        return Ok(None);
    }
    let list = send
        .iter()
        .map(|m| repeater::check_message(m, allow_empty))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(list))
}

fn prefix(p: Option<String>) -> Vec<u8> {
    p.unwrap_or_else(|| repeater::SEED_PREFIX.to_string())
        .into_bytes()
}

fn run_tcp(rec: &mut Recorder, action: TcpAction) -> Result<()> {
    match action {
        TcpAction::Server {
            listen,
            backlog,
            model: m,
            once,
            reply_prefix,
        } => {
            let cfg = tcp::ServerConfig {
                listen: repeater::parse_addr(&listen, "--listen")?,
                backlog,
                model: model(m),
                limit: once.then_some(1),
                prefix: prefix(reply_prefix),
            };
            single(rec, "tcp server", |r| tcp::server(r, &cfg))
        }
        TcpAction::Client { connect, send } => {
            let cfg = tcp::ClientConfig {
                connect: repeater::parse_addr(&connect, "--connect")?,
                messages: messages(&send, false)?,
            };
            single(rec, "tcp client", |r| tcp::client(r, &cfg))
        }
        TcpAction::Demo { model: m } => single(rec, "tcp demo", |r| tcp::demo(r, model(m))),
    }
}

fn run_udp(rec: &mut Recorder, action: UdpAction) -> Result<()> {
    match action {
        UdpAction::Server {
            listen,
            drop_every,
            reply_prefix,
        } => {
            let cfg = udp::ServerConfig {
                listen: repeater::parse_addr(&listen, "--listen")?,
                drop_every,
                prefix: prefix(reply_prefix),
            };
            single(rec, "udp server", |r| udp::server(r, &cfg))
        }
        UdpAction::Client {
            connect,
            send,
            timeout,
        } => {
            let cfg = udp::ClientConfig {
                connect: repeater::parse_addr(&connect, "--connect")?,
                messages: messages(&send, true)?,
                timeout: udp::check_timeout(timeout)?,
            };
            single(rec, "udp client", |r| udp::client(r, &cfg))
        }
        UdpAction::Demo => single(rec, "udp demo", udp::demo),
    }
}

/// One lab, then a one-row summary (so JSON readers always get a `summary`).
fn single(
    rec: &mut Recorder,
    name: &str,
    lab: impl FnOnce(&mut Recorder) -> Result<()>,
) -> Result<()> {
    let (row, result) = lab::measure(rec, name, lab);
    if !matches!(result, Err(Error::Usage(_))) {
        rec.summary(&[row]);
    }
    result
}

/// Prints clap's verdict on bad arguments as one line (what was wrong, what
/// is valid) and exits 2; help and version go out as clap formats them.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let line: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    let mut joined = String::new();
    for part in line {
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(part);
    }
    eprintln!("ipclab: {joined} (see --help)");
    ExitCode::from(2)
}
