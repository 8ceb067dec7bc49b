//! Kernel errors with their extended-ack text, shared by rtnetlink, devlink and ethtool.

use std::{fmt, io};

use netlink_packet_core::{ErrorMessage, NLM_F_ACK_TLVS, NLM_F_CAPPED, NlasIterator, parse_string};

use crate::netns::NetnsError;

/// `NLMSGERR_ATTR_MSG` (include/uapi/linux/netlink.h): the extack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

/// An error the kernel answered to a netlink request: the errno and, when the kernel gave one, the
/// extended-ack message (the text iproute2 prints after `Error:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    /// Positive errno (`EOPNOTSUPP` = 95, ...).
    pub errno: i32,
    /// The extack message, e.g. "Port doesn't support function attributes".
    pub message: Option<String>,
}

impl KernelError {
    /// A kernel error without extack text.
    pub fn new(errno: i32) -> Self {
        Self {
            errno: errno.abs(),
            message: None,
        }
    }

    /// A kernel error with extack text.
    pub fn with_message(errno: i32, message: impl Into<String>) -> Self {
        Self {
            errno: errno.abs(),
            message: Some(message.into()),
        }
    }

    /// The errno as an [`io::Error`].
    pub fn to_io(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }

    /// Reads the errno and the extack message out of an `NLMSG_ERROR` reply.
    ///
    /// `flags` are the flags of the reply's own netlink header: `NLM_F_CAPPED` says the echoed
    /// request was cut to its header, `NLM_F_ACK_TLVS` says attributes follow it. Returns `None` for
    /// an ACK (code 0).
    pub fn from_error_message(flags: u16, msg: &ErrorMessage) -> Option<Self> {
        let code = msg.code?.get();
        Some(Self {
            errno: code.abs(),
            message: extack_message(flags, &msg.header),
        })
    }
}

/// Finds `NLMSGERR_ATTR_MSG` in the payload of an `NLMSG_ERROR` after its error code.
fn extack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < NLMSG_HDRLEN {
        return None;
    }
    // The payload starts with the echoed request: only its header when the reply is capped
    // (NETLINK_CAP_ACK), the whole request otherwise; its own nlmsg_len says how long that is.
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
        len.max(NLMSG_HDRLEN).next_multiple_of(4)
    };
    let tlvs = payload.get(echoed..)?;
    NlasIterator::new(tlvs)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .and_then(|nla| parse_string(nla.value()).ok())
        .map(|s| s.trim().trim_end_matches('.').to_string())
        .filter(|s| !s.is_empty())
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{m}: {}", self.to_io()),
            None => write!(f, "{}", self.to_io()),
        }
    }
}

impl std::error::Error for KernelError {}

/// Errors of the rtnetlink layer ([`super::Netlink`]). Every variant names the interface it is
/// about; kernel answers carry the errno and the extack text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// The rtnetlink socket could not be opened (or its options set).
    #[error("cannot open an rtnetlink socket: {0}")]
    Connect(io::Error),
    /// The kernel refused a request about one link, e.g. "set mtu 9000 on veth0: Invalid argument".
    #[error("{op}: {kernel}")]
    Link {
        /// What was asked, naming the link: "get link veth0", "set mtu 9000 on veth0".
        op: String,
        /// The interface name, or `ifindex N`.
        link: String,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The kernel refused a link dump.
    #[error("list links: {kernel}")]
    List {
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The kernel refused an address or route dump.
    #[error("list {what}: {kernel}")]
    Dump {
        /// "addresses", "routes".
        what: &'static str,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The kernel refused one VF setting (`ip link set $PF vf N ...`).
    #[error("set vf {vf} {setting} on {pf}: {kernel}")]
    Vf {
        /// The PF interface name (or `ifindex N`).
        pf: String,
        /// VF index.
        vf: u32,
        /// The setting, named as on the command line: `mac`, `vlan`, `spoofchk`, `trust`,
        /// `min-tx-rate`, `max-tx-rate`, `link-state`.
        setting: &'static str,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The PF does not report the VF that was asked for.
    #[error("vf {vf} not found on {pf} (it reports {count} VFs)")]
    NoSuchVf {
        /// The PF interface name.
        pf: String,
        /// VF index asked for.
        vf: u32,
        /// Number of VFs the PF reports.
        count: usize,
    },
    /// The network namespace to move a link into could not be opened.
    #[error("move {link} to another network namespace: {error}")]
    Netns {
        /// The interface name.
        link: String,
        /// Why the namespace could not be used.
        error: NetnsError,
    },
    /// A link to create names a parent that does not exist (`ENODEV`), e.g.
    /// "create macvlan mv0 on eth9: parent eth9 not found (ENODEV)".
    #[error("{op}: parent {parent} not found (ENODEV)")]
    NoParent {
        /// What was asked: "create macvlan mv0 on eth9".
        op: String,
        /// The parent as given.
        parent: String,
    },
    /// The kernel has no driver for a link kind (`EOPNOTSUPP`, "Unknown device type"), e.g.
    /// "create ipvlan ipv0 on eth0: the kernel has no ipvlan support (module ipvlan not
    /// available)".
    #[error("{op}: the kernel has no {kind} support (module {module} not available)")]
    KindUnsupported {
        /// What was asked.
        op: String,
        /// `IFLA_INFO_KIND`: "ipvlan".
        kind: &'static str,
        /// The module that would provide it: "ipvlan", "8021q".
        module: &'static str,
    },
    /// The kernel refused a route request (`ip route add|del ...`), e.g.
    /// "add route 10.1.0.0/16 via 10.9.0.1: Nexthop has invalid gateway: Network is unreachable".
    #[error("{op}: {kernel}")]
    Route {
        /// What was asked, in `ip route` words.
        op: String,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The thread serving a network namespace is gone (it panicked or could not start).
    #[error("netlink in network namespace {netns}: {detail}")]
    Worker {
        /// The namespace.
        netns: String,
        /// What happened.
        detail: String,
    },
    /// The link/address event socket could not be opened, or failed while reading.
    #[error("link and address events: {0}")]
    Events(io::Error),
    /// The kernel answered something this code did not expect, or the connection went away.
    #[error("{op}: unexpected netlink reply: {detail}")]
    Unexpected {
        /// What was asked, naming the link.
        op: String,
        /// The interface name (or `ifindex N`).
        link: String,
        /// What went wrong.
        detail: String,
    },
}

impl NetlinkError {
    /// The kernel's answer, when this error is one.
    pub fn kernel(&self) -> Option<&KernelError> {
        match self {
            Self::Link { kernel, .. }
            | Self::List { kernel }
            | Self::Vf { kernel, .. }
            | Self::Route { kernel, .. }
            | Self::Dump { kernel, .. } => Some(kernel),
            _ => None,
        }
    }

    /// The interface (or VF) does not exist: `ENODEV` from the kernel, or a VF index the PF does
    /// not report.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NoSuchVf { .. } | Self::NoParent { .. })
            || self.errno() == Some(nix::libc::ENODEV)
    }

    /// The driver does not implement the operation (`EOPNOTSUPP`), or the kernel lacks the link
    /// kind.
    pub fn is_not_supported(&self) -> bool {
        matches!(self, Self::KindUnsupported { .. }) || self.errno() == Some(nix::libc::EOPNOTSUPP)
    }
}

/// Adds `errno()`, `extack()` and `is_exists()` to an error type that has
/// `fn kernel(&self) -> Option<&KernelError>`: the rtnetlink, devlink and ethtool errors, all
/// here so the helpers exist once.
macro_rules! kernel_error_helpers {
    ($t:ty) => {
        impl $t {
            /// The kernel errno, when this error is a kernel answer.
            pub fn errno(&self) -> Option<i32> {
                self.kernel().map(|k| k.errno)
            }

            /// The extack message, when the kernel gave one.
            pub fn extack(&self) -> Option<&str> {
                self.kernel().and_then(|k| k.message.as_deref())
            }

            /// The name (or object) already exists: `EEXIST`.
            pub fn is_exists(&self) -> bool {
                self.errno() == Some(nix::libc::EEXIST)
            }
        }
    };
}

kernel_error_helpers!(NetlinkError);
kernel_error_helpers!(crate::devlink::DevlinkError);
kernel_error_helpers!(crate::ethtool::EthtoolError);

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use super::*;

    /// An NLMSG_ERROR payload after the code: echoed header, then one NLMSGERR_ATTR_MSG.
    fn capped_payload_with_msg(text: &str) -> Vec<u8> {
        let mut p = Vec::new();
        // echoed nlmsghdr: len 36, type 16 (RTM_NEWLINK), flags, seq, pid
        p.extend_from_slice(&36u32.to_ne_bytes());
        p.extend_from_slice(&16u16.to_ne_bytes());
        p.extend_from_slice(&5u16.to_ne_bytes());
        p.extend_from_slice(&7u32.to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        let value = format!("{text}\0");
        let len = 4 + value.len();
        p.extend_from_slice(&(len as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(value.as_bytes());
        while p.len() % 4 != 0 {
            p.push(0);
        }
        p
    }

    fn error_message(code: i32, header: Vec<u8>) -> ErrorMessage {
        let mut m = ErrorMessage::default();
        m.code = NonZeroI32::new(code);
        m.header = header;
        m
    }

    #[test]
    fn extack_text_is_read_from_a_capped_error() {
        let msg = error_message(
            -95,
            capped_payload_with_msg("Port doesn't support function attributes"),
        );
        let err = KernelError::from_error_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &msg).unwrap();
        assert_eq!(err.errno, 95);
        assert_eq!(
            err.message.as_deref(),
            Some("Port doesn't support function attributes")
        );
        assert_eq!(
            err.to_string(),
            "Port doesn't support function attributes: Operation not supported (os error 95)"
        );
    }

    #[test]
    fn extack_after_a_full_echoed_request_is_found_through_its_length() {
        // Not capped: the echoed request is 20 bytes (header + 4 bytes of payload).
        let mut p = Vec::new();
        p.extend_from_slice(&20u32.to_ne_bytes());
        p.extend_from_slice(&[0u8; 12]);
        p.extend_from_slice(&[0xaa; 4]);
        let tail = capped_payload_with_msg("TC offload is disabled on net device");
        p.extend_from_slice(&tail[16..]);
        let msg = error_message(-22, p);
        let err = KernelError::from_error_message(NLM_F_ACK_TLVS, &msg).unwrap();
        assert_eq!(
            err.message.as_deref(),
            Some("TC offload is disabled on net device")
        );
    }

    #[test]
    fn no_tlv_flag_means_no_message_and_ack_means_no_error() {
        let msg = error_message(-19, capped_payload_with_msg("ignored"));
        let err = KernelError::from_error_message(NLM_F_CAPPED, &msg).unwrap();
        assert_eq!(err, KernelError::new(19));
        assert_eq!(err.to_string(), "No such device (os error 19)");
        let ack = error_message(0, vec![0; 16]);
        assert!(KernelError::from_error_message(0, &ack).is_none());
    }

    #[test]
    fn truncated_payloads_do_not_panic() {
        for len in 0..24 {
            let msg = error_message(-1, vec![0xff; len]);
            let _ = KernelError::from_error_message(NLM_F_ACK_TLVS, &msg);
            let _ = KernelError::from_error_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &msg);
        }
    }

    #[test]
    fn classification_helpers() {
        let e = NetlinkError::Vf {
            pf: "eth0".into(),
            vf: 1,
            setting: "link-state",
            kernel: KernelError::new(nix::libc::EOPNOTSUPP),
        };
        assert!(e.is_not_supported());
        assert_eq!(
            e.to_string(),
            "set vf 1 link-state on eth0: Operation not supported (os error 95)"
        );
        let e = NetlinkError::Link {
            op: "get link nope0".into(),
            link: "nope0".into(),
            kernel: KernelError::new(nix::libc::ENODEV),
        };
        assert!(e.is_not_found() && !e.is_exists());
    }
}
