//! Parse the CLI → build the Recorder → run the experiment → exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use ipclab::cli::{
    BenchAction, Cli, Command, FifoAction, Format, NetExperiment, RpcAction, SemanticsArg,
    ServerModel, SniffProto, TcpAction, UdpAction, UnixAction,
};
use ipclab::error::{Error, Result};
use ipclab::lab::{self, fifo, ping, pipe, repeater, rpc, shm, sniff, tcp, udp, unix};
use ipclab::packet::frame::dump::Payload;
use ipclab::sys::signal;
use ipclab::trace::{Recorder, TraceOptions};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let g = &cli.global;
    let is_tool = matches!(
        cli.command,
        Command::Completions { .. } | Command::Man { .. }
    );
    if is_tool
        && (g.fds
            || g.step
            || g.count
            || g.timestamps > 0
            || g.relative
            || !g.expr.is_empty()
            || g.output.is_some())
    {
        eprintln!("ipclab: the trace options (--fds, --step, -t, -r, -e, -o, -c) do not apply to `man` and `completions`, which make no syscall steps");
        return ExitCode::from(2);
    }
    let filter = match ipclab::trace::filter::Filter::parse(&g.expr) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            return ExitCode::from(2);
        }
    };
    let json = g.format == Format::Json;
    let to_tty = g.output.is_none() && std::io::stdout().is_terminal();
    let opts = TraceOptions {
        json,
        quiet: g.quiet,
        fds: g.fds,
        step: g.step,
        color: !json
            && !g.no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && to_tty,
        timestamps: g.timestamps,
        relative: g.relative,
        filter,
        count_table: g.count,
        width: if to_tty && !json {
            ipclab::os::terminal_width()
        } else {
            None
        },
    };
    ipclab::trace::names::set_strsize(g.strsize as usize);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ipclab", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { install, command } => return man_command(install.as_deref(), &command),
        Command::Sniff(a) if a.dump > 0 => return dump_filter(&a, opts),
        _ => {}
    }
    // Bad input is refused before the first syscall step.
    let job = match plan(cli.command) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    if let Some(path) = &cli.global.output {
        if let Err(e) = ipclab::os::open_output(path) {
            eprintln!(
                "{}",
                one_line(&format!("ipclab: -o {}: {e}", path.display()))
            );
            return ExitCode::from(2);
        }
    }
    let mut rec = Recorder::new(opts);
    // Held and caught before the lab makes anything it would have to clean up.
    let result = match signal::hold_stops(&mut rec) {
        Ok(()) => job(&mut rec),
        Err(e) => Err(e.into()),
    };
    exit_code(&rec, result)
}

/// A validated command, ready to run.
type Job = Box<dyn FnOnce(&mut Recorder) -> Result<()>>;

/// `ipclab man [--install DIR] [COMMAND…]`.
fn man_command(install: Option<&std::path::Path>, command: &[String]) -> ExitCode {
    use std::io::Write;
    if let Some(dir) = install {
        return match ipclab::man::install(dir) {
            Ok(paths) => {
                println!(
                    "{} pages written to {}; read them with: MANPATH={}: man ipclab",
                    paths.len(),
                    dir.join("man1").display(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "{}",
                    one_line(&format!("ipclab: man --install {}: {e}", dir.display()))
                );
                ExitCode::FAILURE
            }
        };
    }
    let Some(page) = ipclab::man::page(command) else {
        eprintln!(
            "{}",
            one_line(&format!(
                "ipclab: no man page for `ipclab {}`; try `ipclab man` or `ipclab man tcp server`",
                command.join(" ")
            ))
        );
        return ExitCode::from(2);
    };
    match std::io::stdout().write_all(&page) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            ExitCode::FAILURE
        }
    }
}

/// The exit status: 0, 1 (the experiment failed, or stdout could not be
/// written), 2 (bad usage), 128+N (a stop signal ended the run after its
/// cleanup). A closed stdout (`| head`) is not a failure.
fn exit_code(rec: &Recorder, result: Result<()>) -> ExitCode {
    if let Some(e) = rec.output_failure() {
        eprintln!("ipclab: cannot write the trace to stdout: {e}");
        return ExitCode::FAILURE;
    }
    let stopped = signal::stop_pending();
    if rec.output_broken() && stopped.is_none() {
        return ExitCode::SUCCESS;
    }
    match (result, stopped) {
        (Err(e @ Error::Usage(_)), _) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            ExitCode::from(2)
        }
        (_, Some(sig)) => {
            eprintln!("ipclab: {}", Error::Interrupted(sig));
            ExitCode::from((128 + sig) as u8)
        }
        (Ok(()), None) => ExitCode::SUCCESS,
        (Err(e), None) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Validates the arguments into a config, and returns the job that runs
/// that lab as one section.
fn plan(command: Command) -> Result<Job> {
    match command {
        Command::Tour => {
            // The sniff section prints times of day: load the zone before any step.
            ipclab::os::local_offset();
            let plan = lab::tour::plan();
            Ok(Box::new(move |r| lab::tour::run(r, plan)))
        }
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
            single("pipe", move |r| pipe::run(r, &cfg))
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
            single("fifo", move |r| fifo::run(r, &cfg))
        }
        Command::Shm(a) => {
            let cfg = shm::ShmConfig::new(&a.message, !a.no_sync, a.memfd, a.name.as_deref())?;
            single("shm", move |r| shm::run(r, &cfg))
        }
        Command::Unix(a) => plan_unix(a.action),
        Command::Tcp(a) => plan_tcp(a.action),
        Command::Udp(a) => plan_udp(a.action),
        Command::Ping(a) => {
            // A SUDO environment that names nobody clearly is bad input.
            lab::privs::sudo_user()?;
            let family = match (a.ipv4, a.ipv6) {
                (true, _) => Some(ipclab::packet::icmp::Family::V4),
                (_, true) => Some(ipclab::packet::icmp::Family::V6),
                _ => None,
            };
            let mut cfg = ping::PingConfig::new(
                &a.host,
                &ping::PingOptions {
                    family,
                    count: a.count,
                    interval: a.interval,
                    size: a.size,
                    ttl: a.ttl,
                    timeout: a.timeout,
                    dgram: a.dgram,
                    deadline: a.deadline,
                    quiet: a.quiet,
                    numeric: a.numeric,
                    print_time: a.print_time,
                    outstanding: a.outstanding,
                    pattern: a.pattern.clone(),
                    iface: a.iface.clone(),
                    flood: a.flood,
                },
            )?;
            cfg.kernel_filter = !a.no_filter;
            if a.userns {
                let ids = ping::check_userns(&a.host)?;
                // Root inside the namespace is this user outside: nothing to give back.
                cfg.drop_privileges = false;
                return single("ping", move |r| {
                    lab::net::userns::private_loopback(r, ids, "--userns")?;
                    ping::run(r, &cfg)
                });
            }
            single("ping", move |r| ping::run(r, &cfg))
        }
        Command::Sniff(a) => {
            let proto = a.proto.map(sniff_proto);
            let filter = sniff::build_filter(proto, &a.filter)?;
            if a.userns {
                if a.read.is_some() {
                    return Err(Error::usage(
                        "--userns and -r: reading a file captures nothing, so it needs no namespace; give one of the two",
                    ));
                }
                if let Some(i) = a.iface.as_deref().filter(|i| *i != "lo") {
                    return Err(Error::usage(format!(
                        "--userns -i {i}: the new network namespace has only lo"
                    )));
                }
            }
            let source = match (a.read, a.iface) {
                (Some(_), Some(i)) => {
                    return Err(Error::usage(format!(
                        "-i {i} and -r: a file is read, not an interface; give one of the two"
                    )))
                }
                (Some(r), None) => sniff::Source::File(r),
                (None, i) => {
                    // A SUDO environment that names nobody clearly is bad input.
                    lab::privs::sudo_user()?;
                    sniff::Source::Live(i.unwrap_or_else(|| "lo".into()))
                }
            };
            let show = sniff::Show {
                style: ipclab::packet::frame::Style {
                    link: a.link,
                    absolute: a.absolute,
                },
                payload: match (a.hex, a.ascii) {
                    (true, _) => Payload::Hex,
                    (_, true) => Payload::Ascii,
                    _ => Payload::None,
                },
                // Loads the time zone now, before the first step.
                utc_offset: ipclab::os::local_offset(),
            };
            let mut cfg =
                sniff::SniffConfig::new(source, a.count, filter, a.timeout, a.write, show)?;
            if a.userns {
                // Root inside the namespace is this user outside: nothing to give back.
                cfg.drop_privileges = false;
                let ids = lab::net::userns::Ids::current();
                return single("sniff", move |r| {
                    lab::net::userns::private_loopback(r, ids, "--userns")?;
                    sniff::run(r, &cfg)
                });
            }
            single("sniff", move |r| sniff::run(r, &cfg))
        }
        Command::Net(a) => plan_net(a.experiment, a.keep),
        Command::Rpc(a) => plan_rpc(a.action),
        Command::Bench(a) => plan_bench(a.action),
        Command::Errata { name } => {
            if let Some(n) = &name {
                lab::errata::check_name(n)?;
            }
            Ok(Box::new(move |r| lab::errata::run(r, name.as_deref())))
        }
        Command::Completions { .. } | Command::Man { .. } => Ok(Box::new(|_| Ok(()))),
    }
}

fn sniff_proto(p: SniffProto) -> ipclab::packet::Proto {
    match p {
        SniffProto::Tcp => ipclab::packet::Proto::Tcp,
        SniffProto::Udp => ipclab::packet::Proto::Udp,
        SniffProto::Icmp => ipclab::packet::Proto::Icmp,
    }
}

/// `sniff -d`: the filter's program as `tcpdump -d` (`-dd`, `-ddd`) prints
/// it, on stdout and nothing else, so the two can be diffed; no capture, no
/// syscall step. With `--format json`, one message line per instruction.
fn dump_filter(a: &ipclab::cli::SniffArgs, opts: TraceOptions) -> ExitCode {
    use ipclab::packet::filter;
    let prog = match sniff::build_filter(a.proto.map(sniff_proto), &a.filter) {
        Ok(Some(f)) => f.program,
        // No expression: tcpdump's accept-everything program.
        Ok(None) => vec![filter::Insn::new(0x06, 0, 0, filter::SNAPLEN)],
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            return ExitCode::from(2);
        }
    };
    let lines = filter::dump(&prog, a.dump);
    if opts.json {
        let mut rec = Recorder::new(opts);
        for l in &lines {
            rec.message(l);
        }
        return exit_code(&rec, Ok(()));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    match std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("ipclab: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

fn model(m: ServerModel) -> tcp::Model {
    match m {
        ServerModel::Iterative => tcp::Model::Iterative,
        ServerModel::Fork => tcp::Model::Fork,
        ServerModel::Poll => tcp::Model::Poll,
    }
}

fn messages(send: &[String], udp: bool) -> Result<Option<Vec<Vec<u8>>>> {
    if send.is_empty() {
        return Ok(None);
    }
    let list = send
        .iter()
        .map(|m| {
            if udp {
                repeater::check_datagram(m)
            } else {
                repeater::check_message(m, false)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(list))
}

fn prefix(p: Option<String>) -> Vec<u8> {
    p.unwrap_or_else(|| repeater::SEED_PREFIX.to_string())
        .into_bytes()
}

fn plan_tcp(action: TcpAction) -> Result<Job> {
    match action {
        TcpAction::Server {
            listen,
            backlog,
            model: m,
            once,
            reply_prefix,
            idle_timeout,
            max_children,
        } => {
            let cfg = tcp::ServerConfig {
                listen: repeater::parse_addr(&listen, "--listen")?,
                backlog,
                model: model(m),
                limit: once.then_some(1),
                prefix: prefix(reply_prefix),
                idle: if idle_timeout == 0.0 {
                    None
                } else {
                    Some(udp::check_timeout(idle_timeout, "--idle-timeout")?)
                },
                max_children: max_children as usize,
            };
            single("tcp server", move |r| tcp::server(r, &cfg))
        }
        TcpAction::Client {
            connect,
            send,
            timeout,
        } => {
            let cfg = tcp::ClientConfig {
                connect: repeater::parse_addr(&connect, "--connect")?,
                messages: messages(&send, false)?,
                timeout: udp::check_timeout(timeout, "--timeout")?,
            };
            single("tcp client", move |r| tcp::client(r, &cfg))
        }
        TcpAction::Demo { model: m } => single("tcp demo", move |r| tcp::demo(r, model(m))),
    }
}

fn plan_udp(action: UdpAction) -> Result<Job> {
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
            single("udp server", move |r| udp::server(r, &cfg))
        }
        UdpAction::Client {
            connect,
            send,
            timeout,
        } => {
            let cfg = udp::ClientConfig {
                connect: repeater::parse_addr(&connect, "--connect")?,
                messages: messages(&send, true)?,
                timeout: udp::check_timeout(timeout, "--timeout")?,
            };
            single("udp client", move |r| udp::client(r, &cfg))
        }
        UdpAction::Demo => single("udp demo", udp::demo),
    }
}

fn plan_net(experiment: NetExperiment, keep: bool) -> Result<Job> {
    use lab::net::{Experiment as E, NetConfig, Which};
    let (which, name) = match experiment {
        NetExperiment::Demo => (Which::Demo, "net demo"),
        NetExperiment::Arp => (Which::One(E::Arp), "net arp"),
        NetExperiment::Tcp => (Which::One(E::Tcp), "net tcp"),
        NetExperiment::Udp => (Which::One(E::Udp), "net udp"),
        NetExperiment::Ttl => (Which::One(E::Ttl), "net ttl"),
        NetExperiment::Unreachable => (Which::One(E::Unreachable), "net unreachable"),
        NetExperiment::Timeout => (Which::One(E::Timeout), "net timeout"),
        NetExperiment::Mtu => (Which::One(E::Mtu), "net mtu"),
        NetExperiment::Rpc => (Which::One(E::Rpc), "net rpc"),
    };
    let cfg = NetConfig::new(which, keep)?;
    match which {
        Which::Demo => Ok(Box::new(move |r| lab::net::demo(r, &cfg))),
        Which::One(_) => single(name, move |r| lab::net::run(r, &cfg)),
    }
}

fn plan_bench(action: BenchAction) -> Result<Job> {
    use ipclab::lab::bench::{self, check_range};
    let machine = bench::Machine::read;
    match action {
        BenchAction::Ipc {
            mechanisms,
            size,
            round_trips,
            seconds,
            repeats,
            chunk,
            pin,
            svg,
        } => {
            let cfg = bench::IpcConfig {
                mechanisms: bench::Mechanism::parse_list(&mechanisms)?,
                size: size as usize,
                round_trips,
                seconds: check_range(seconds, 0.05, 60.0, "--seconds", "seconds")?,
                repeats,
                chunk: chunk as usize,
                pin: bench::check_pin(pin.pin, pin.no_pin)?,
                svg: bench::check_svg(svg)?,
                machine: machine(),
            }
            .check()?;
            single("bench ipc", move |r| bench::ipc(r, &cfg))
        }
        BenchAction::Echo {
            target,
            connections,
            requests,
            size,
            seconds,
            udp,
            models,
            pin,
            svg,
        } => {
            let target = match target {
                Some(t) => bench::EchoTarget::Address(repeater::parse_addr(&t, "--target")?),
                None => bench::EchoTarget::Own(bench::parse_models(&models)?),
            };
            let cfg = bench::EchoConfig {
                target,
                connections: connections as usize,
                requests,
                size: size as usize,
                seconds: check_range(seconds, 0.05, 60.0, "--seconds", "seconds")?,
                udp,
                pin: bench::check_pin(pin.pin, pin.no_pin)?,
                svg: bench::check_svg(svg)?,
                machine: machine(),
            };
            single("bench echo", move |r| bench::echo(r, &cfg))
        }
        BenchAction::Trace {
            iterations,
            seconds,
            ways,
        } => {
            let cfg = bench::TraceConfig {
                ways: bench::parse_ways(&ways)?,
                iterations,
                seconds: check_range(seconds, 0.05, 60.0, "--seconds", "seconds")?,
                machine: machine(),
            };
            single("bench trace", move |r| bench::trace(r, &cfg))
        }
        BenchAction::Loop {
            iterations,
            seconds,
            traced,
            result_fd,
        } => {
            let seconds = check_range(seconds, 0.05, 60.0, "--seconds", "seconds")?;
            let out = ipclab::sys::file::adopt_pipe(result_fd).ok_or_else(|| {
                Error::usage(format!("--result-fd {result_fd} is not an open pipe"))
            })?;
            Ok(Box::new(move |r| {
                bench::inner_loop(r, iterations, seconds, traced, out)
            }))
        }
    }
}

fn semantics(s: SemanticsArg) -> rpc::Semantics {
    match s {
        SemanticsArg::AtLeastOnce => rpc::Semantics::AtLeastOnce,
        SemanticsArg::AtMostOnce => rpc::Semantics::AtMostOnce,
        SemanticsArg::ExactlyOnce => rpc::Semantics::ExactlyOnce,
    }
}

fn plan_rpc(action: RpcAction) -> Result<Job> {
    match action {
        RpcAction::Matchmaker { listen, port } => {
            let cfg = rpc::MatchmakerConfig {
                listen: rpc::parse_host(&listen, "--listen")?,
                port,
            };
            single("rpc matchmaker", move |r| rpc::matchmaker::run(r, &cfg))
        }
        RpcAction::Server {
            listen,
            port,
            udp,
            tcp,
            both: _,
            register,
            matchmaker_port,
            semantics: sem,
            state,
            drop_requests,
            drop_replies,
            seed,
        } => {
            let sem = semantics(sem);
            if sem == rpc::Semantics::ExactlyOnce && state.is_none() {
                return Err(Error::usage(
                    "--semantics exactly-once needs --state FILE: its completion records must survive a crash",
                ));
            }
            if let Some(p) = &state {
                if p.as_os_str().is_empty() || p.file_name().is_none() {
                    return Err(Error::usage(format!(
                        "--state {:?} names no file; give a path such as /tmp/ipclab.state",
                        p
                    )));
                }
            }
            let (udp, tcp) = match (udp, tcp) {
                (true, _) => (true, false),
                (_, true) => (false, true),
                _ => (true, true),
            };
            let drop_requests = rpc::check_probability(drop_requests, "--drop-requests")?;
            let drop_replies = rpc::check_probability(drop_replies, "--drop-replies")?;
            if !udp && (drop_requests > 0.0 || drop_replies > 0.0) {
                return Err(Error::usage(
                    "--drop-requests and --drop-replies drop UDP datagrams; with --tcp there are none (TCP retransmits by itself)",
                ));
            }
            let cfg = rpc::ServerConfig {
                listen: rpc::parse_host(&listen, "--listen")?,
                port,
                udp,
                tcp,
                register: register.then_some(matchmaker_port),
                semantics: sem,
                state,
                drop_requests,
                drop_replies,
                seed,
            };
            single("rpc server", move |r| rpc::server::run(r, &cfg))
        }
        RpcAction::Call {
            proc,
            args,
            server,
            port,
            tcp: _,
            udp,
            timeout,
            retries,
            semantics: sem,
            deadline,
            matchmaker_port,
        } => {
            let cfg = rpc::CallConfig {
                call: rpc::parse_proc(&proc, &args)?,
                server: rpc::parse_host(&server, "--server")?,
                port,
                tcp: !udp,
                timeout: rpc::check_secs(timeout, "--timeout", 0.01, 60.0)?,
                retries,
                semantics: semantics(sem),
                matchmaker_port,
                deadline: rpc::check_secs(deadline, "--deadline", 0.1, 600.0)?,
            };
            single("rpc call", move |r| rpc::client::run(r, &cfg))
        }
        RpcAction::Demo { loss, seed, calls } => {
            let cfg = rpc::DemoConfig {
                loss: rpc::check_probability(loss, "--loss")?,
                seed,
                calls,
            };
            single("rpc demo", move |r| rpc::demo::run(r, &cfg))
        }
    }
}

fn plan_unix(action: UnixAction) -> Result<Job> {
    let (name, cfg) = match action {
        UnixAction::Demo {
            dgram,
            abstract_name,
        } => {
            if !abstract_name {
                unix::check_tmpdir()?;
            }
            (
                "unix demo",
                unix::UnixConfig::Demo {
                    dgram,
                    abstract_name,
                },
            )
        }
        UnixAction::Server { path } => (
            "unix server",
            unix::UnixConfig::Server {
                addr: unix::check_address(&path)?,
            },
        ),
        UnixAction::Client {
            path,
            send,
            timeout,
        } => (
            "unix client",
            unix::UnixConfig::Client {
                addr: unix::check_address(&path)?,
                messages: messages(&send, false)?,
                timeout: udp::check_timeout(timeout, "--timeout")?,
            },
        ),
        UnixAction::Pair { message } => (
            "unix pair",
            unix::UnixConfig::Pair {
                message: unix::check_message(&message)?,
            },
        ),
        UnixAction::PassFd => ("unix pass-fd", unix::UnixConfig::PassFd),
        UnixAction::Cred => ("unix cred", unix::UnixConfig::Cred),
    };
    single(name, move |r| unix::run(r, &cfg))
}

/// One lab, then a one-row summary (so JSON readers always get a `summary`).
fn single(
    name: &'static str,
    lab: impl FnOnce(&mut Recorder) -> Result<()> + 'static,
) -> Result<Job> {
    Ok(Box::new(move |rec| {
        let (row, result) = lab::measure(rec, name, lab);
        if !matches!(result, Err(Error::Usage(_))) {
            rec.summary(&[row]);
        }
        result
    }))
}

/// Prints clap's verdict on bad arguments as one line (what was wrong, what
/// is valid) and exits 2; help and version go out as clap formats them.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // Nothing asked for: one line, not the whole help on stderr.
        let words: Vec<String> = std::env::args().skip(1).collect();
        let cmd = std::iter::once("ipclab".to_string())
            .chain(words)
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!(
            "{}",
            one_line(&format!(
                "ipclab: `{cmd}` needs a command; try `ipclab tour`, or see `{cmd} --help`"
            ))
        );
        return ExitCode::from(2);
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
    eprintln!("{}", one_line(&format!("ipclab: {joined} (see --help)")));
    ExitCode::from(2)
}

/// An error line as one line of plain text: control characters from the
/// user's own input (a newline in a path, an escape sequence in a host name)
/// are escaped as strace escapes them, never sent to the terminal raw.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:o}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn error_lines_escape_control_characters() {
        assert_eq!(one_line("no\ndir/x\x1b[31m"), "no\\ndir/x\\33[31m");
        assert_eq!(one_line("复读机"), "复读机");
    }
}
