//! Socket options every netlink socket of ours sets, whatever protocol it speaks.

use std::io;

use netlink_sys::Socket;

/// Asks the kernel for extended acks (`NETLINK_EXT_ACK`: errors carry the kernel's message, the
/// text iproute2 prints after `Error:`) and capped acks (`NETLINK_CAP_ACK`: an error echoes only
/// the request's header, not the whole request).
pub(crate) fn want_extack(socket: &mut Socket) -> io::Result<()> {
    socket.set_ext_ack(true)?;
    socket.set_cap_ack(true)
}
