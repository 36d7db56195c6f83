//! Each command's arguments checked into the config its lab takes, and
//! the job that runs it: bad input is refused here, before the first step
//! (exit 2, nothing run).

mod net_rpc_bench;

use ipclab::cli::{Command, FifoAction, ServerModel, SniffProto, TcpAction, UdpAction, UnixAction};
use ipclab::error::{Error, Result};
use ipclab::lab::{self, fifo, ping, pipe, repeater, shm, sniff, tcp, udp, unix};
use ipclab::packet::frame::dump::Payload;
use ipclab::trace::Recorder;
use net_rpc_bench::{plan_bench, plan_net, plan_rpc};

/// A validated command, ready to run.
pub type Job = Box<dyn FnOnce(&mut Recorder) -> Result<()>>;

/// Validates the arguments into a config, and returns the job that runs
/// that lab as one section.
pub fn plan(command: Command) -> Result<Job> {
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
        Command::Completions { .. } | Command::Man { .. } | Command::Diagram { .. } => {
            Ok(Box::new(|_| Ok(())))
        }
    }
}

pub fn sniff_proto(p: SniffProto) -> ipclab::packet::Proto {
    match p {
        SniffProto::Tcp => ipclab::packet::Proto::Tcp,
        SniffProto::Udp => ipclab::packet::Proto::Udp,
        SniffProto::Icmp => ipclab::packet::Proto::Icmp,
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
