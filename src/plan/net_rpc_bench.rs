//! The `net`, `rpc` and `bench` commands' plans (see [`super`]).

use ipclab::cli::{BenchAction, NetExperiment, RpcAction, SemanticsArg};
use ipclab::error::{Error, Result};
use ipclab::lab::{self, repeater, rpc};

use super::{single, Job};

pub(super) fn plan_net(experiment: NetExperiment, keep: bool) -> Result<Job> {
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

pub(super) fn plan_bench(action: BenchAction) -> Result<Job> {
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

pub(super) fn plan_rpc(action: RpcAction) -> Result<Job> {
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
