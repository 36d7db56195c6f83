//! rtnetlink messages as bytes: the requests `ip link`, `ip addr`, `ip
//! route` and `ip neigh` send, built with netlink-packet-route (the
//! rust-netlink project's message types), the kernel's answers parsed with
//! it, and every buffer printed in strace's notation ([`notation`]).
//!
//! Pure: no socket here (`sys::netlink` sends and receives), so every
//! function is unit-tested on fixed bytes and fuzzed.

pub mod names;
pub mod notation;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

pub use names::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};

/// A link-layer (MAC) address.
pub type Mac = [u8; 6];

/// `02:00:c0:00:02:01`.
pub fn mac_text(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn serialize(flags: u16, seq: u32, msg: RouteNetlinkMessage) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

const NEW: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;

/// One end of a veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethEnd {
    pub name: String,
    pub mac: Mac,
    pub mtu: Option<u32>,
    /// Create this end in the network namespace of this process.
    pub netns_pid: Option<u32>,
}

fn end_attributes(end: &VethEnd) -> Vec<LinkAttribute> {
    let mut attrs = vec![
        LinkAttribute::IfName(end.name.clone()),
        LinkAttribute::Address(end.mac.to_vec()),
    ];
    if let Some(mtu) = end.mtu {
        attrs.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(pid) = end.netns_pid {
        attrs.push(LinkAttribute::NetNsPid(pid));
    }
    attrs
}

/// RTM_NEWLINK creating a veth pair, `ip link add NAME address MAC type
/// veth peer name PEER address MAC2 netns PID`: the peer's attributes
/// (and the namespace it is born in) travel inside IFLA_INFO_DATA.
pub fn new_veth(seq: u32, end: &VethEnd, peer: &VethEnd) -> Vec<u8> {
    let mut peer_msg = LinkMessage::default();
    peer_msg.attributes = end_attributes(peer);
    let mut msg = LinkMessage::default();
    msg.attributes = end_attributes(end);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
    ]));
    serialize(NEW, seq, RouteNetlinkMessage::NewLink(msg))
}

/// RTM_NEWLINK setting IFF_UP on the interface called `name`, `ip link
/// set NAME up` (the kernel finds it by name when the index is 0).
pub fn link_up(seq: u32, name: &str) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    serialize(
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        RouteNetlinkMessage::NewLink(msg),
    )
}

fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// RTM_NEWADDR, `ip addr add IP/PREFIX dev INDEX`; an IPv6 address with
/// IFA_F_NODAD, usable at once (no duplicate address detection first).
pub fn new_address(seq: u32, index: u32, ip: IpAddr, prefix: u8) -> Vec<u8> {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(&ip);
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    if ip.is_ipv6() {
        msg.header.flags = AddressHeaderFlags::Nodad;
    }
    msg.attributes.push(AddressAttribute::Local(ip));
    msg.attributes.push(AddressAttribute::Address(ip));
    serialize(NEW, seq, RouteNetlinkMessage::NewAddress(msg))
}

/// What a route does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Forward through this gateway.
    Via(IpAddr),
    /// Drop, and answer ICMP "host unreachable".
    Unreachable,
    /// Drop, and answer ICMP "administratively prohibited".
    Prohibit,
    /// Drop silently.
    Blackhole,
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// RTM_NEWROUTE in the main table, as `ip route add` sends it (protocol
/// boot, scope universe): `dst` None is the default route.
pub fn new_route(seq: u32, v6: bool, dst: Option<(IpAddr, u8)>, kind: RouteKind) -> Vec<u8> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = match kind {
        RouteKind::Via(_) => RouteType::Unicast,
        RouteKind::Unreachable => RouteType::Unreachable,
        RouteKind::Prohibit => RouteType::Prohibit,
        RouteKind::Blackhole => RouteType::BlackHole,
    };
    if let Some((ip, len)) = dst {
        msg.header.destination_prefix_length = len;
        msg.attributes
            .push(RouteAttribute::Destination(route_address(ip)));
    }
    if let RouteKind::Via(gw) = kind {
        msg.attributes
            .push(RouteAttribute::Gateway(route_address(gw)));
    }
    serialize(NEW, seq, RouteNetlinkMessage::NewRoute(msg))
}

/// RTM_GETNEIGH with NLM_F_DUMP, `ip -4 neigh show`: every IPv4
/// neighbour (ARP) entry of the namespace.
pub fn dump_neighbours(seq: u32) -> Vec<u8> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    serialize(
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        RouteNetlinkMessage::GetNeighbour(msg),
    )
}

/// A neighbour entry from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ip: Option<IpAddr>,
    pub mac: Option<Vec<u8>>,
    /// `NUD_REACHABLE`, `NUD_FAILED`…
    pub state: String,
}

/// One message of the kernel's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// NLMSG_ERROR with error 0: request `seq` was done.
    Ack {
        seq: u32,
    },
    /// NLMSG_ERROR with an errno: request `seq` failed (`errno` positive).
    Error {
        seq: u32,
        errno: i32,
    },
    /// NLMSG_DONE: the end of a dump.
    Done,
    Neighbour(Neighbour),
    /// Anything else (named by its type).
    Other(String),
}

/// Splits a received buffer into its messages and parses each.
pub fn parse(buf: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len().saturating_sub(at) >= 16 {
        let rest = &buf[at..];
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < 16 || len > rest.len() {
            out.push(Reply::Other("a truncated message".into()));
            break;
        }
        out.push(parse_one(&rest[..len]));
        at += (len + 3) & !3;
    }
    out
}

fn parse_one(m: &[u8]) -> Reply {
    let ty = u16::from_ne_bytes([m[4], m[5]]);
    let seq = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
    let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(m) else {
        return Reply::Other(format!("{} (not parsed)", names::msg_type(ty)));
    };
    match msg.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Reply::Ack { seq },
            Some(code) => Reply::Error {
                seq,
                errno: -code.get(),
            },
        },
        NetlinkPayload::Done(_) => Reply::Done,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => {
            let mut entry = Neighbour {
                ifindex: n.header.ifindex,
                ip: None,
                mac: None,
                state: names::bits(u16::from(n.header.state).into(), names::NUD, "NUD_NONE"),
            };
            for a in n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                        entry.ip = Some(ip.into());
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                        entry.ip = Some(ip.into());
                    }
                    NeighbourAttribute::LinkLayerAddress(mac) => entry.mac = Some(mac),
                    _ => {}
                }
            }
            Reply::Neighbour(entry)
        }
        _ => Reply::Other(names::msg_type(ty)),
    }
}
