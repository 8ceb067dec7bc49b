//! Generic netlink plumbing shared by the devlink and ethtool clients: a socket that asks for
//! extended acks, and a request helper that keeps the extack text of errors.
//!
//! genetlink 0.3 turns an `NLMSG_ERROR` into an `io::Error` only when it resolves a family;
//! for requests it hands us the raw messages, so the reply's own header flags (`NLM_F_CAPPED`,
//! `NLM_F_ACK_TLVS`) are still there and [`KernelError::from_error_message`] can read the text.

use std::{fmt::Debug, io};

use futures::StreamExt;
use genetlink::{GenetlinkError, GenetlinkHandle};
use netlink_packet_core::{
    DecodeError, Emitable, NetlinkMessage, NetlinkPayload, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::AsyncSocket;

use super::KernelError;

/// How a generic netlink request failed.
#[derive(Debug)]
pub(crate) enum GenlFailure {
    /// The family is not registered (`ENOENT` from the controller): the kernel lacks it.
    NoFamily,
    /// The kernel refused the request.
    Kernel(KernelError),
    /// Transport or decoding trouble.
    Other(String),
}

/// Opens a generic netlink socket with `NETLINK_EXT_ACK` (the kernel adds the extack text to
/// errors) and `NETLINK_CAP_ACK` (errors echo only the request header), and spawns its
/// connection task on the current tokio runtime.
pub(crate) fn connect() -> io::Result<GenetlinkHandle> {
    let (mut conn, handle, _) = genetlink::new_connection()?;
    super::socket::want_extack(conn.socket_mut().socket_mut())?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Resolves `F`'s family id (cached by the handle); a missing family is [`GenlFailure::NoFamily`].
pub(crate) async fn resolve<F: GenlFamily>(handle: &GenetlinkHandle) -> Result<u16, GenlFailure> {
    match handle.resolve_family::<F>().await {
        Ok(family) => Ok(family.id),
        Err(GenetlinkError::NetlinkError(e)) if e.raw_os_error() == Some(nix::libc::ENOENT) => {
            Err(GenlFailure::NoFamily)
        }
        Err(GenetlinkError::NetlinkError(e)) => match e.raw_os_error() {
            Some(errno) => Err(GenlFailure::Kernel(KernelError::new(errno))),
            None => Err(GenlFailure::Other(e.to_string())),
        },
        Err(e) => Err(GenlFailure::Other(e.to_string())),
    }
}

/// Sends one request with `flags` (`NLM_F_REQUEST` is added) and collects the replies.
pub(crate) async fn request<F>(
    handle: &GenetlinkHandle,
    payload: F,
    flags: u16,
) -> Result<Vec<F>, GenlFailure>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + Debug,
{
    let family_id = resolve::<F>(handle).await?;
    let mut genl = GenlMessage::from_payload(payload);
    genl.set_resolved_family_id(family_id);
    let mut msg = NetlinkMessage::from(genl);
    msg.header.flags = flags | netlink_packet_core::NLM_F_REQUEST;
    msg.finalize();

    let mut handle = handle.clone();
    let mut replies = handle
        .request(msg)
        .await
        .map_err(|e| GenlFailure::Other(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(reply) = replies.next().await {
        let reply: NetlinkMessage<GenlMessage<F>> =
            reply.map_err(|e: DecodeError| GenlFailure::Other(e.to_string()))?;
        let reply_flags = reply.header.flags;
        match reply.payload {
            NetlinkPayload::InnerMessage(genl) => out.push(genl.payload),
            NetlinkPayload::Error(err) => {
                if let Some(kernel) = KernelError::from_error_message(reply_flags, &err) {
                    return Err(GenlFailure::Kernel(kernel));
                }
            }
            NetlinkPayload::Overrun(_) => {
                return Err(GenlFailure::Other("netlink receive buffer overrun".into()));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A NUL-terminated string attribute value (what the kernel's `NLA_NUL_STRING` policy wants and
/// `NLA_STRING` accepts).
pub(crate) fn emit_cstr(s: &str, buf: &mut [u8]) {
    let n = s.len().min(buf.len().saturating_sub(1));
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    if let Some(last) = buf.get_mut(n) {
        *last = 0;
    }
}
