//! The C names strace 6.1 gives rtnetlink's numbers: message types and
//! flags, the fixed structs' fields, and each attribute type by family.

/// strace's `{ifi_family=AF_INET, …}`: the families rtnetlink carries.
pub fn family(f: u8) -> String {
    match i32::from(f) {
        libc::AF_UNSPEC => "AF_UNSPEC".into(),
        libc::AF_INET => "AF_INET".into(),
        libc::AF_INET6 => "AF_INET6".into(),
        libc::AF_BRIDGE => "AF_BRIDGE".into(),
        libc::AF_PACKET => "AF_PACKET".into(),
        libc::AF_NETLINK => "AF_NETLINK".into(),
        other => format!("{other} /* AF_??? */"),
    }
}

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWNEIGH: u16 = 28;
pub const RTM_GETNEIGH: u16 = 30;

/// `nlmsg_type` → `RTM_NEWLINK`; an unknown one as strace writes it.
pub fn msg_type(t: u16) -> String {
    let name = match t {
        NLMSG_NOOP => "NLMSG_NOOP",
        NLMSG_ERROR => "NLMSG_ERROR",
        NLMSG_DONE => "NLMSG_DONE",
        4 => "NLMSG_OVERRUN",
        RTM_NEWLINK => "RTM_NEWLINK",
        17 => "RTM_DELLINK",
        RTM_GETLINK => "RTM_GETLINK",
        19 => "RTM_SETLINK",
        RTM_NEWADDR => "RTM_NEWADDR",
        21 => "RTM_DELADDR",
        RTM_GETADDR => "RTM_GETADDR",
        RTM_NEWROUTE => "RTM_NEWROUTE",
        25 => "RTM_DELROUTE",
        RTM_GETROUTE => "RTM_GETROUTE",
        RTM_NEWNEIGH => "RTM_NEWNEIGH",
        29 => "RTM_DELNEIGH",
        RTM_GETNEIGH => "RTM_GETNEIGH",
        _ => return format!("{t:#x} /* NLMSG_??? */"),
    };
    name.into()
}

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

/// `nlmsg_flags` as strace decodes them: the high bits mean different
/// things for a GET request (ROOT, MATCH: DUMP), a NEW request (REPLACE,
/// EXCL, CREATE, APPEND), a DEL request and an error (CAPPED, ACK_TLVS).
pub fn msg_flags(t: u16, f: u16) -> String {
    let mut parts: Vec<String> = Vec::new();
    let low: [(u16, &str); 6] = [
        (0x1, "NLM_F_REQUEST"),
        (0x2, "NLM_F_MULTI"),
        (0x4, "NLM_F_ACK"),
        (0x8, "NLM_F_ECHO"),
        (0x10, "NLM_F_DUMP_INTR"),
        (0x20, "NLM_F_DUMP_FILTERED"),
    ];
    let mut rest = f;
    for (bit, name) in low {
        if f & bit != 0 {
            parts.push(name.into());
            rest &= !bit;
        }
    }
    let high: &[(u16, &str)] = match t {
        NLMSG_ERROR => &[(0x100, "NLM_F_CAPPED"), (0x200, "NLM_F_ACK_TLVS")],
        RTM_GETLINK | RTM_GETADDR | RTM_GETROUTE | RTM_GETNEIGH => &[
            (NLM_F_DUMP, "NLM_F_DUMP"),
            (0x100, "NLM_F_ROOT"),
            (0x200, "NLM_F_MATCH"),
            (0x400, "NLM_F_ATOMIC"),
        ],
        17 | 21 | 25 | 29 => &[(0x100, "NLM_F_NONREC"), (0x200, "NLM_F_BULK")],
        _ => &[
            (0x100, "NLM_F_REPLACE"),
            (0x200, "NLM_F_EXCL"),
            (0x400, "NLM_F_CREATE"),
            (0x800, "NLM_F_APPEND"),
        ],
    };
    for &(bits, name) in high {
        if rest & bits == bits {
            parts.push(name.into());
            rest &= !bits;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// Bits of a flag word by name, strace's `A|B|0x40` (`zero` when none).
pub fn bits(value: u32, table: &[(u32, &str)], zero: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut rest = value;
    for &(bit, name) in table {
        if value & bit != 0 {
            parts.push(name.into());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        zero.into()
    } else {
        parts.join("|")
    }
}

/// `IFF_*`, the interface flags of `ifi_flags`.
pub const IFF: &[(u32, &str)] = &[
    (0x1, "IFF_UP"),
    (0x2, "IFF_BROADCAST"),
    (0x4, "IFF_DEBUG"),
    (0x8, "IFF_LOOPBACK"),
    (0x10, "IFF_POINTOPOINT"),
    (0x20, "IFF_NOTRAILERS"),
    (0x40, "IFF_RUNNING"),
    (0x80, "IFF_NOARP"),
    (0x100, "IFF_PROMISC"),
    (0x200, "IFF_ALLMULTI"),
    (0x400, "IFF_MASTER"),
    (0x800, "IFF_SLAVE"),
    (0x1000, "IFF_MULTICAST"),
    (0x2000, "IFF_PORTSEL"),
    (0x4000, "IFF_AUTOMEDIA"),
    (0x8000, "IFF_DYNAMIC"),
    (0x10000, "IFF_LOWER_UP"),
    (0x20000, "IFF_DORMANT"),
    (0x40000, "IFF_ECHO"),
];

pub const IFF_UP: u32 = 0x1;

/// `IFA_F_*`, the address flags.
pub const IFA_F: &[(u32, &str)] = &[
    (0x1, "IFA_F_SECONDARY"),
    (0x2, "IFA_F_NODAD"),
    (0x4, "IFA_F_OPTIMISTIC"),
    (0x8, "IFA_F_DADFAILED"),
    (0x10, "IFA_F_HOMEADDRESS"),
    (0x20, "IFA_F_DEPRECATED"),
    (0x40, "IFA_F_TENTATIVE"),
    (0x80, "IFA_F_PERMANENT"),
    (0x100, "IFA_F_MANAGETEMPADDR"),
    (0x200, "IFA_F_NOPREFIXROUTE"),
    (0x400, "IFA_F_MCAUTOJOIN"),
    (0x800, "IFA_F_STABLE_PRIVACY"),
];

/// `NUD_*`, a neighbour entry's state.
pub const NUD: &[(u32, &str)] = &[
    (0x1, "NUD_INCOMPLETE"),
    (0x2, "NUD_REACHABLE"),
    (0x4, "NUD_STALE"),
    (0x8, "NUD_DELAY"),
    (0x10, "NUD_PROBE"),
    (0x20, "NUD_FAILED"),
    (0x40, "NUD_NOARP"),
    (0x80, "NUD_PERMANENT"),
];

/// `NTF_*`, a neighbour entry's flags.
pub const NTF: &[(u32, &str)] = &[
    (0x1, "NTF_USE"),
    (0x2, "NTF_SELF"),
    (0x4, "NTF_MASTER"),
    (0x8, "NTF_PROXY"),
    (0x10, "NTF_EXT_LEARNED"),
    (0x20, "NTF_OFFLOADED"),
    (0x40, "NTF_STICKY"),
    (0x80, "NTF_ROUTER"),
];

/// `RTM_F_*`, a route message's flags.
pub const RTM_F: &[(u32, &str)] = &[
    (0x100, "RTM_F_NOTIFY"),
    (0x200, "RTM_F_CLONED"),
    (0x400, "RTM_F_EQUALIZE"),
    (0x800, "RTM_F_PREFIX"),
    (0x1000, "RTM_F_LOOKUP_TABLE"),
    (0x2000, "RTM_F_FIB_MATCH"),
];

/// `ARPHRD_*`: the link type (0 is NET/ROM's number, which is what
/// strace prints for a request that leaves it unset).
pub fn arphrd(t: u16) -> String {
    match t {
        0 => "ARPHRD_NETROM".into(),
        1 => "ARPHRD_ETHER".into(),
        772 => "ARPHRD_LOOPBACK".into(),
        776 => "ARPHRD_SIT".into(),
        65534 => "ARPHRD_NONE".into(),
        other => format!("{other} /* ARPHRD_??? */"),
    }
}

/// `RT_SCOPE_*`.
pub fn scope(s: u8) -> String {
    match s {
        0 => "RT_SCOPE_UNIVERSE".into(),
        200 => "RT_SCOPE_SITE".into(),
        253 => "RT_SCOPE_LINK".into(),
        254 => "RT_SCOPE_HOST".into(),
        255 => "RT_SCOPE_NOWHERE".into(),
        other => other.to_string(),
    }
}

/// `RT_TABLE_*`.
pub fn table(t: u8) -> String {
    match t {
        0 => "RT_TABLE_UNSPEC".into(),
        252 => "RT_TABLE_COMPAT".into(),
        253 => "RT_TABLE_DEFAULT".into(),
        254 => "RT_TABLE_MAIN".into(),
        255 => "RT_TABLE_LOCAL".into(),
        other => other.to_string(),
    }
}

/// `RTPROT_*`.
pub fn protocol(p: u8) -> String {
    match p {
        0 => "RTPROT_UNSPEC".into(),
        1 => "RTPROT_REDIRECT".into(),
        2 => "RTPROT_KERNEL".into(),
        3 => "RTPROT_BOOT".into(),
        4 => "RTPROT_STATIC".into(),
        other => other.to_string(),
    }
}

/// The route types of `rtm_type` and `ndm_type`.
pub const RTN: [&str; 12] = [
    "RTN_UNSPEC",
    "RTN_UNICAST",
    "RTN_LOCAL",
    "RTN_BROADCAST",
    "RTN_ANYCAST",
    "RTN_MULTICAST",
    "RTN_BLACKHOLE",
    "RTN_UNREACHABLE",
    "RTN_PROHIBIT",
    "RTN_THROW",
    "RTN_NAT",
    "RTN_XRESOLVE",
];

/// `RTN_*`.
pub fn route_type(t: u8) -> String {
    RTN.get(usize::from(t))
        .map_or_else(|| format!("{t} /* RTN_??? */"), |n| (*n).to_string())
}

/// How an attribute's value is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A NUL-terminated string (`"eth0"`; `"veth"...` when the NUL is missing).
    Str,
    U8,
    U32,
    /// A link-layer address: `02:00:c0:00:02:01`.
    Mac,
    /// An IPv4 or IPv6 address: `inet_addr("…")`, `inet_pton(AF_INET6, "…")`.
    Ip,
    /// Flag bits from a table.
    Flags(&'static [(u32, &'static str)]),
    /// Attributes inside, of the given table.
    Nested(Table),
    /// A struct ifinfomsg followed by IFLA_* attributes (a veth's peer).
    Link,
    /// `struct nda_cacheinfo`.
    NdaCacheinfo,
    /// `struct ifa_cacheinfo`.
    IfaCacheinfo,
    /// Bytes strace does not decode.
    Raw,
}

/// Which family of attribute types a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Ifla,
    IflaInfo,
    /// IFLA_INFO_DATA of a veth.
    Veth,
    Ifa,
    Rta,
    Nda,
}

impl Table {
    /// The C name strace uses for an unknown type of this table (`IFLA_???`).
    pub fn prefix(self) -> &'static str {
        match self {
            Table::Ifla => "IFLA",
            Table::IflaInfo => "IFLA_INFO",
            Table::Veth => "VETH_INFO",
            Table::Ifa => "IFA",
            Table::Rta => "RTA",
            Table::Nda => "NDA",
        }
    }

    /// An attribute type's name and how its value reads.
    pub fn attr(self, kind: u16) -> Option<(&'static str, Value)> {
        use Value::*;
        Some(match (self, kind) {
            (Table::Ifla, 1) => ("IFLA_ADDRESS", Mac),
            (Table::Ifla, 2) => ("IFLA_BROADCAST", Mac),
            (Table::Ifla, 3) => ("IFLA_IFNAME", Str),
            (Table::Ifla, 4) => ("IFLA_MTU", U32),
            (Table::Ifla, 5) => ("IFLA_LINK", U32),
            (Table::Ifla, 6) => ("IFLA_QDISC", Str),
            (Table::Ifla, 10) => ("IFLA_MASTER", U32),
            (Table::Ifla, 13) => ("IFLA_TXQLEN", U32),
            (Table::Ifla, 16) => ("IFLA_OPERSTATE", U8),
            (Table::Ifla, 17) => ("IFLA_LINKMODE", U8),
            (Table::Ifla, 18) => ("IFLA_LINKINFO", Nested(Table::IflaInfo)),
            (Table::Ifla, 19) => ("IFLA_NET_NS_PID", U32),
            (Table::Ifla, 20) => ("IFLA_IFALIAS", Str),
            (Table::Ifla, 27) => ("IFLA_GROUP", U32),
            (Table::Ifla, 28) => ("IFLA_NET_NS_FD", U32),
            (Table::Ifla, 30) => ("IFLA_PROMISCUITY", U32),
            (Table::Ifla, 31) => ("IFLA_NUM_TX_QUEUES", U32),
            (Table::Ifla, 32) => ("IFLA_NUM_RX_QUEUES", U32),
            (Table::Ifla, 33) => ("IFLA_CARRIER", U8),
            (Table::Ifla, 37) => ("IFLA_LINK_NETNSID", U32),
            (Table::Ifla, 50) => ("IFLA_MIN_MTU", U32),
            (Table::Ifla, 51) => ("IFLA_MAX_MTU", U32),
            (Table::IflaInfo, 1) => ("IFLA_INFO_KIND", Str),
            (Table::IflaInfo, 2) => ("IFLA_INFO_DATA", Nested(Table::Veth)),
            (Table::IflaInfo, 4) => ("IFLA_INFO_SLAVE_KIND", Str),
            (Table::Veth, 1) => ("VETH_INFO_PEER", Link),
            (Table::Ifa, 1) => ("IFA_ADDRESS", Ip),
            (Table::Ifa, 2) => ("IFA_LOCAL", Ip),
            (Table::Ifa, 3) => ("IFA_LABEL", Str),
            (Table::Ifa, 4) => ("IFA_BROADCAST", Ip),
            (Table::Ifa, 5) => ("IFA_ANYCAST", Ip),
            (Table::Ifa, 6) => ("IFA_CACHEINFO", IfaCacheinfo),
            (Table::Ifa, 7) => ("IFA_MULTICAST", Ip),
            (Table::Ifa, 8) => ("IFA_FLAGS", Flags(IFA_F)),
            (Table::Ifa, 9) => ("IFA_RT_PRIORITY", U32),
            (Table::Rta, 1) => ("RTA_DST", Ip),
            (Table::Rta, 2) => ("RTA_SRC", Ip),
            (Table::Rta, 3) => ("RTA_IIF", U32),
            (Table::Rta, 4) => ("RTA_OIF", U32),
            (Table::Rta, 5) => ("RTA_GATEWAY", Ip),
            (Table::Rta, 6) => ("RTA_PRIORITY", U32),
            (Table::Rta, 7) => ("RTA_PREFSRC", Ip),
            (Table::Rta, 8) => ("RTA_METRICS", Raw),
            (Table::Rta, 15) => ("RTA_TABLE", U32),
            (Table::Nda, 1) => ("NDA_DST", Ip),
            (Table::Nda, 2) => ("NDA_LLADDR", Mac),
            (Table::Nda, 3) => ("NDA_CACHEINFO", NdaCacheinfo),
            (Table::Nda, 4) => ("NDA_PROBES", U32),
            (Table::Nda, 8) => ("NDA_IFINDEX", U32),
            (Table::Nda, 9) => ("NDA_MASTER", U32),
            (Table::Nda, 12) => ("NDA_PROTOCOL", U8),
            _ => return None,
        })
    }
}

/// An errno as strace writes a netlink error code: `-EEXIST`, or `0`.
pub fn error_code(code: i32) -> String {
    if code == 0 {
        return "0".into();
    }
    let e = nix::errno::Errno::from_raw(-code);
    if e == nix::errno::Errno::UnknownErrno {
        code.to_string()
    } else {
        format!("-{e:?}")
    }
}
