//! Kernel error numbers from netlink and sysfs writes, said as sentences that name the device
//! and what to try, instead of `No such device (os error 19)`.

/// The errno carried somewhere in `e`'s chain (an `io::Error`, or a message ending in
/// `(os error N)`).
fn errno(e: &anyhow::Error) -> Option<i32> {
    e.chain().find_map(|c| {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(n);
        }
        let s = c.to_string();
        let start = s.rfind("(os error ")? + "(os error ".len();
        s[start..].trim_end_matches(')').parse().ok()
    })
}

/// `e` with a first sentence that says what the errno means for `what` on `device`.
pub(crate) fn explain(e: anyhow::Error, device: &str, what: &str) -> anyhow::Error {
    let sentence = match errno(&e) {
        Some(19) => format!(
            "{device}: no such device: the PF is not there, or has no such VF (`smartnicctl discover` lists PFs and their VFs)"
        ),
        Some(95) => format!(
            "{device}: its driver does not support {what} (the kernel answered EOPNOTSUPP); see firmware-notes/ for what each NIC supports"
        ),
        Some(22) => format!(
            "{device}: the kernel refused {what} as invalid (EINVAL): the VF may not exist, or the value is out of the NIC's range"
        ),
        Some(1 | 13) => format!("{device}: {what} needs root (CAP_NET_ADMIN)"),
        Some(16) => format!(
            "{device}: busy (EBUSY): {what} is refused while the device is in use; try again with the VFs unbound or the PF idle"
        ),
        _ => return e,
    };
    e.context(sentence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_is_found_and_said_as_a_sentence() {
        let e = anyhow::Error::from(std::io::Error::from_raw_os_error(19)).context("vf set");
        let msg = format!("{:#}", explain(e, "PF ens1f0 VF 3", "setting the VF"));
        assert!(msg.starts_with("PF ens1f0 VF 3: no such device"), "{msg}");
        let e = anyhow::anyhow!("netlink: Operation not supported (os error 95)");
        let msg = format!("{:#}", explain(e, "PF ens1f0", "a minimum TX rate"));
        assert!(msg.contains("does not support a minimum TX rate"), "{msg}");
        let e = anyhow::anyhow!("plain failure");
        assert_eq!(format!("{:#}", explain(e, "x", "y")), "plain failure");
    }
}
