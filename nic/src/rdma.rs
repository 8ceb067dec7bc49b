//! RDMA devices: the kernel's RDMA network-namespace mode and moving an RDMA device into another
//! network namespace (RDMA netlink, `NETLINK_RDMA`, the `RDMA_NL_NLDEV` client; what
//! `rdma system show netns` and `rdma dev set DEV netns NS` send), and finding the RDMA device
//! of a PCI function or netdev in sysfs.
//!
//! In `exclusive` mode an RDMA device belongs to one network namespace and is visible only
//! there; it does not follow its netdev when the netdev moves, so a pod gets it only if it is
//! moved itself (`RDMA_NLDEV_CMD_SET` with `RDMA_NLDEV_NET_NS_FD`, sent from the namespace the
//! device is in). When the namespace is destroyed the kernel moves its RDMA devices back to the
//! initial namespace. In `shared` mode every namespace sees every RDMA device and none can be
//! moved. The kernel moves only devices whose driver can disassociate user contexts
//! (`EOPNOTSUPP` otherwise).
//!
//! Messages are a netlink header followed directly by attributes (no family header).

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
    path::PathBuf,
};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_RDMA};

use crate::{pci::PciAddress, sysfs::SysFs};

// include/uapi/rdma/rdma_netlink.h
const RDMA_NL_NLDEV: u16 = 5;
const RDMA_NLDEV_CMD_GET: u16 = 1;
const RDMA_NLDEV_CMD_SET: u16 = 2;
const RDMA_NLDEV_CMD_SYS_GET: u16 = 6;
const RDMA_NLDEV_ATTR_DEV_INDEX: u16 = 1;
const RDMA_NLDEV_ATTR_DEV_NAME: u16 = 2;
const RDMA_NLDEV_SYS_ATTR_NETNS_MODE: u16 = 66;
const RDMA_NLDEV_NET_NS_FD: u16 = 68;

// include/uapi/linux/netlink.h
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, op)`.
const fn nldev(op: u16) -> u16 {
    (RDMA_NL_NLDEV << 10) + op
}

/// The kernel's RDMA network-namespace mode (`ib_core netns_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetnsMode {
    /// Every network namespace sees every RDMA device (the default).
    Shared,
    /// An RDMA device belongs to one network namespace.
    Exclusive,
}

impl std::fmt::Display for NetnsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Shared => "shared",
            Self::Exclusive => "exclusive",
        })
    }
}

/// Why an RDMA request failed.
#[derive(Debug, thiserror::Error)]
pub enum RdmaError {
    /// No RDMA netlink socket (a kernel without the RDMA core, `ib_core`).
    #[error("cannot open an RDMA netlink socket (is ib_core loaded?): {0}")]
    Socket(io::Error),
    /// The kernel refused the request.
    #[error("{op}: {error}")]
    Kernel {
        /// What was asked (`move RDMA device mlx5_2 to another network namespace`).
        op: String,
        /// The kernel's errno.
        error: io::Error,
    },
    /// No RDMA device of that name in this network namespace.
    #[error("no RDMA device {0} in this network namespace")]
    NoDevice(String),
    /// The reply could not be understood.
    #[error("{op}: unexpected reply: {detail}")]
    Unexpected {
        /// What was asked.
        op: String,
        /// What was wrong.
        detail: String,
    },
}

impl RdmaError {
    /// The kernel's errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }
}

/// An RDMA netlink socket in the network namespace of the thread that opened it.
pub struct RdmaNetlink {
    socket: Socket,
    seq: u32,
}

impl std::fmt::Debug for RdmaNetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RdmaNetlink")
    }
}

impl RdmaNetlink {
    /// Opens the socket (blocking requests).
    pub fn connect() -> Result<Self, RdmaError> {
        let mut socket = Socket::new(NETLINK_RDMA).map_err(RdmaError::Socket)?;
        socket.bind_auto().map_err(RdmaError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(RdmaError::Socket)?;
        Ok(Self { socket, seq: 0 })
    }

    /// `rdma system show netns`.
    pub fn netns_mode(&mut self) -> Result<NetnsMode, RdmaError> {
        let op = "read the RDMA netns mode";
        let replies = self.request(op, nldev(RDMA_NLDEV_CMD_SYS_GET), NLM_F_REQUEST, &[])?;
        let mode = replies
            .iter()
            .find_map(|m| attr(m, RDMA_NLDEV_SYS_ATTR_NETNS_MODE))
            .and_then(|v| v.first().copied())
            .ok_or_else(|| RdmaError::Unexpected {
                op: op.into(),
                detail: "no RDMA_NLDEV_SYS_ATTR_NETNS_MODE (a kernel older than 5.2?)".into(),
            })?;
        // the kernel sends ib_devices_shared_netns
        Ok(if mode == 0 {
            NetnsMode::Exclusive
        } else {
            NetnsMode::Shared
        })
    }

    /// The RDMA devices of this network namespace: (index, name).
    pub fn devices(&mut self) -> Result<Vec<(u32, String)>, RdmaError> {
        let replies = self.request(
            "list RDMA devices",
            nldev(RDMA_NLDEV_CMD_GET),
            NLM_F_REQUEST | NLM_F_DUMP,
            &[],
        )?;
        Ok(replies.iter().filter_map(|m| device_of(m)).collect())
    }

    /// `rdma dev set NAME netns NS`: moves device `name` (of this namespace) into the network
    /// namespace `netns` (an open namespace file).
    pub fn move_to_netns(&mut self, name: &str, netns: BorrowedFd<'_>) -> Result<(), RdmaError> {
        let index = self
            .devices()?
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(i, _)| i)
            .ok_or_else(|| RdmaError::NoDevice(name.to_owned()))?;
        let fd = u32::try_from(netns.as_raw_fd()).map_err(|_| RdmaError::Unexpected {
            op: format!("move RDMA device {name}"),
            detail: "negative descriptor".into(),
        })?;
        let mut attrs = nla(RDMA_NLDEV_ATTR_DEV_INDEX, &index.to_ne_bytes());
        attrs.extend(nla(RDMA_NLDEV_NET_NS_FD, &fd.to_ne_bytes()));
        self.request(
            &format!("move RDMA device {name} to another network namespace"),
            nldev(RDMA_NLDEV_CMD_SET),
            NLM_F_REQUEST | NLM_F_ACK,
            &attrs,
        )?;
        Ok(())
    }

    /// Sends one request and collects the replies until the ACK or `NLMSG_DONE`.
    fn request(
        &mut self,
        op: &str,
        kind: u16,
        flags: u16,
        attrs: &[u8],
    ) -> Result<Vec<Vec<u8>>, RdmaError> {
        self.seq = self.seq.wrapping_add(1);
        let msg = message(kind, flags, self.seq, attrs);
        let kernel = |error: io::Error| RdmaError::Kernel {
            op: op.to_owned(),
            error,
        };
        self.socket.send(&msg, 0).map_err(kernel)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.socket.recv_from_full().map_err(kernel)?;
            for (kind, seq, payload) in split(&buf) {
                if seq != self.seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(kernel(io::Error::from_raw_os_error(-errno)));
                    }
                    NLMSG_DONE => return Ok(out),
                    _ => {
                        out.push(payload.to_vec());
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }
}

/// One netlink message: `struct nlmsghdr` then the attributes.
fn message(kind: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + attrs.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(16 + attrs.len());
    out.extend(len.to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(flags.to_ne_bytes());
    out.extend(seq.to_ne_bytes());
    out.extend(0u32.to_ne_bytes());
    out.extend_from_slice(attrs);
    out
}

/// One attribute, padded to 4 bytes.
fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend(len.to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

/// The messages of a datagram: (type, sequence number, payload).
fn split(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push((kind, seq, &buf[16..len]));
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// The payload of the first attribute `kind` of a message.
fn attr(payload: &[u8], kind: u16) -> Option<&[u8]> {
    let mut rest = payload;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let k = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            return None;
        }
        if k == kind {
            return Some(&rest[4..len]);
        }
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

/// (index, name) of a `RDMA_NLDEV_CMD_GET` reply.
fn device_of(payload: &[u8]) -> Option<(u32, String)> {
    let index = attr(payload, RDMA_NLDEV_ATTR_DEV_INDEX)?;
    let index = u32::from_ne_bytes(index.get(..4)?.try_into().ok()?);
    let name = attr(payload, RDMA_NLDEV_ATTR_DEV_NAME)?;
    let name = name.split(|b| *b == 0).next()?;
    Some((index, String::from_utf8_lossy(name).into_owned()))
}

/// The RDMA device of a PCI function: the first entry of its `infiniband/` directory (`mlx5_2`
/// for a ConnectX VF); `None` when it has none.
pub fn pci_rdma_device(sysfs: &SysFs, pci: &PciAddress) -> Option<String> {
    let dir = sysfs.pci_device_dir(pci).join("infiniband");
    let mut names = sysfs.list_dir(&dir).ok()?;
    names.sort();
    names.into_iter().next()
}

/// The RDMA device bound to netdev `netdev` that is no PCI child of it (a soft-RoCE `rxe`
/// device made with `rdma link add NAME type rxe netdev NETDEV`): the device whose port 1 lists
/// `netdev` as the netdev of its first GID (`ports/1/gid_attrs/ndevs/0`).
pub fn netdev_rdma_device(sysfs: &SysFs, netdev: &str) -> Option<String> {
    let class = sysfs.path("sys/class/infiniband");
    let mut names = sysfs.list_dir(&class).ok()?;
    names.sort();
    names.into_iter().find(|dev| {
        let ndev: PathBuf = class.join(dev).join("ports/1/gid_attrs/ndevs/0");
        sysfs.read_string(&ndev).is_ok_and(|n| n.trim() == netdev)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_rdma_netlink_wants() {
        assert_eq!(nldev(RDMA_NLDEV_CMD_SET), 5122);
        assert_eq!(nldev(RDMA_NLDEV_CMD_SYS_GET), 5126);
        let mut attrs = nla(RDMA_NLDEV_ATTR_DEV_INDEX, &3u32.to_ne_bytes());
        attrs.extend(nla(RDMA_NLDEV_NET_NS_FD, &9u32.to_ne_bytes()));
        let msg = message(
            nldev(RDMA_NLDEV_CMD_SET),
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            &attrs,
        );
        let u16_at = |i: usize| u16::from_ne_bytes([msg[i], msg[i + 1]]);
        let u32_at = |i: usize| u32::from_ne_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
        assert_eq!(u32_at(0), 32, "nlmsg_len");
        assert_eq!((u16_at(4), u16_at(6), u32_at(8)), (5122, 0x5, 7));
        // DEV_INDEX (1) = 3, then NET_NS_FD (68) = 9, 8 bytes each
        assert_eq!((u16_at(16), u16_at(18), u32_at(20)), (8, 1, 3));
        assert_eq!((u16_at(24), u16_at(26), u32_at(28)), (8, 68, 9));
    }

    #[test]
    fn replies_are_read_back() {
        let mut attrs = nla(RDMA_NLDEV_ATTR_DEV_INDEX, &2u32.to_ne_bytes());
        attrs.extend(nla(RDMA_NLDEV_ATTR_DEV_NAME, b"rxe0\0"));
        attrs.extend(nla(RDMA_NLDEV_SYS_ATTR_NETNS_MODE, &[0]));
        let mut buf = message(nldev(RDMA_NLDEV_CMD_GET), 2, 4, &attrs);
        buf.extend(message(NLMSG_DONE, 2, 4, &0u32.to_ne_bytes()));
        let msgs = split(&buf);
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].0, msgs[0].1), (5121, 4));
        assert_eq!(device_of(msgs[0].2), Some((2, "rxe0".into())));
        assert_eq!(
            attr(msgs[0].2, RDMA_NLDEV_SYS_ATTR_NETNS_MODE),
            Some(&[0u8][..])
        );
        assert_eq!(msgs[1].0, NLMSG_DONE);
        // truncated input stops, never panics
        assert!(split(&buf[..10]).is_empty());
        assert_eq!(attr(&[8, 0, 1, 0], 1), None);
    }

    #[test]
    fn rdma_devices_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let sysfs = SysFs::new(dir.path());
        let vf: PciAddress = "0000:3b:00.2".parse().unwrap();
        assert_eq!(pci_rdma_device(&sysfs, &vf), None);
        std::fs::create_dir_all(sysfs.pci_device_dir(&vf).join("infiniband/mlx5_2")).unwrap();
        assert_eq!(pci_rdma_device(&sysfs, &vf).as_deref(), Some("mlx5_2"));
        let ndevs = sysfs.path("sys/class/infiniband/rxe0/ports/1/gid_attrs/ndevs");
        std::fs::create_dir_all(&ndevs).unwrap();
        std::fs::write(ndevs.join("0"), "enp1s0v0\n").unwrap();
        assert_eq!(
            netdev_rdma_device(&sysfs, "enp1s0v0").as_deref(),
            Some("rxe0")
        );
        assert_eq!(netdev_rdma_device(&sysfs, "enp1s0v1"), None);
    }
}
