//! Checks on the names and paths that the runtime and the configuration hand us. Every one of them
//! ends up in a file name, a path or a netlink request, so anything that could climb out of a
//! directory (`..`, `/`), hide (`\0`, whitespace) or overflow (the kernel's 15-byte interface
//! names) is refused here, before it is used.

use std::path::{Component, Path, PathBuf};

use nic::pci::PciAddress;

use crate::error::{CniError, code};

/// Longest interface name the kernel takes (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;

/// Longest container id we take. The journal of an attachment is named `<id>:<ifname>`, and a
/// file name is at most 255 bytes: 200 + 1 + 15 leaves room, and runtimes use 64 hex digits.
pub const CONTAINER_ID_MAX: usize = 200;

fn invalid(code: u32, what: &str, value: &str, why: &str) -> CniError {
    CniError::new(code, format!("invalid {what} {value:?}: {why}"))
}

/// An interface name as the kernel's `dev_valid_name` accepts it: 1-15 bytes, not `.` or `..`,
/// no `/`, `:`, whitespace or control characters; and no `%`, which the kernel expands
/// (`net%d` becomes the first free `net0`, `net1`, ...), so the interface made would not be
/// the one named.
pub fn ifname(name: &str, what: &str, err_code: u32) -> Result<(), CniError> {
    let bad = |why| Err(invalid(err_code, what, name, why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > IFNAME_MAX {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("not a name");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '%' || c.is_whitespace() || c.is_control())
    {
        return bad("contains '/', ':', '%', whitespace or a control character");
    }
    Ok(())
}

/// A host interface or bridge name a tenant's configuration names (`master`, `bridge`): what
/// [`ifname`] takes, narrowed to letters, digits, `_`, `.`, `-` and `@`, so that a name cannot
/// carry shell or log syntax (`$(...)`, quotes, `;`) into anything that prints it.
pub fn host_ifname(name: &str, what: &str) -> Result<(), CniError> {
    ifname(name, what, code::INVALID_CONFIG)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
    {
        return Err(invalid(
            code::INVALID_CONFIG,
            what,
            name,
            "only letters, digits, '_', '.', '-' and '@' are allowed",
        ));
    }
    Ok(())
}

/// A container id as libcni accepts it: starts with a letter or digit, then letters, digits,
/// `_`, `.` and `-`; at most [`CONTAINER_ID_MAX`] bytes, so the state file names built from it
/// stay under the 255-byte limit of a file name.
pub fn container_id(id: &str) -> Result<(), CniError> {
    let bad = |why| Err(invalid(code::INVALID_ENV, "CNI_CONTAINERID", id, why));
    let Some(first) = id.chars().next() else {
        return bad("empty");
    };
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or a digit");
    }
    if id.len() > CONTAINER_ID_MAX {
        return Err(invalid(
            code::INVALID_ENV,
            "CNI_CONTAINERID",
            &id[..id.floor_char_boundary(32)],
            &format!("longer than {CONTAINER_ID_MAX} bytes ({} bytes)", id.len()),
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    Ok(())
}

/// A network name as the spec defines it (same alphabet as a container id); it names a
/// directory under the IPAM `dataDir`.
pub fn network_name(name: &str) -> Result<(), CniError> {
    let bad = |why| Err(invalid(code::INVALID_CONFIG, "network name", name, why));
    let Some(first) = name.chars().next() else {
        return bad("empty");
    };
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or a digit");
    }
    if name.len() > 253 {
        return bad("longer than 253 bytes");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    Ok(())
}

/// An absolute path without `..`, `.` or empty components and without NUL.
pub fn abs_path(path: &str, what: &str, err_code: u32) -> Result<PathBuf, CniError> {
    let bad = |why| Err(invalid(err_code, what, path, why));
    if path.contains('\0') {
        return bad("contains NUL");
    }
    if !path.starts_with('/') {
        return bad("not an absolute path");
    }
    if path.split('/').skip(1).any(|c| c == ".." || c == ".") {
        return bad("contains '.' or '..'");
    }
    let p = Path::new(path);
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return bad("contains '.' or '..'");
    }
    Ok(p.to_path_buf())
}

/// Longest `logFile` name.
pub const LOG_FILE_NAME_MAX: usize = 64;

/// A `logFile`: a plain file name (letters, digits, `_`, `.`, `-`, not starting with `.`, at most
/// [`LOG_FILE_NAME_MAX`] bytes) that the plugin opens inside its own log directory. A path is
/// refused: the plugin runs as root, and the configuration comes from a tenant.
pub fn log_file_name(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= LOG_FILE_NAME_MAX
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            code::INVALID_CONFIG,
            "logFile",
            &name[..name.floor_char_boundary(LOG_FILE_NAME_MAX + 1)],
            &format!(
                "must be a plain file name (letters, digits, '_', '.', '-', at most {LOG_FILE_NAME_MAX} bytes) \
                 inside the plugin's log directory {}, not a path",
                crds::cni::PLUGIN_LOG_DIR
            ),
        ))
    }
}

/// A plugin type (a file name looked up on `CNI_PATH`): letters, digits, `_`, `.`, `-`, not
/// starting with `.`.
pub fn plugin_type(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            code::INVALID_CONFIG,
            "IPAM type",
            name,
            "must be a plain file name on CNI_PATH",
        ))
    }
}

/// A PCI address in the canonical `DDDD:BB:DD.F` form (what Multus and the device plugin send).
pub fn device_id(id: &str, key: &str) -> Result<PciAddress, CniError> {
    let bad = || {
        CniError::new(
            code::INVALID_CONFIG,
            format!(
                "key {key}: {id:?} is not a PCI address like 0000:3b:02.1 (auxiliary devices are not supported)"
            ),
        )
    };
    let addr: PciAddress = id.parse().map_err(|_| bad())?;
    // The short form (`3b:02.1`) parses too; insist on the form that names one sysfs entry.
    if addr.to_string() != id.to_ascii_lowercase() {
        return Err(bad());
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["eth0", "net1", "a", "vf-3_x.y", "123456789012345"] {
            ifname(ok, "CNI_IFNAME", 4).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "eth 0",
            "eth0:1",
            "1234567890123456",
            "a\0b",
            "a\nb",
            "net%d",
            "%s",
        ] {
            assert!(ifname(bad, "CNI_IFNAME", 4).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn container_ids_and_networks() {
        container_id("3f2a9c_b.x-1").unwrap();
        container_id(&"a".repeat(CONTAINER_ID_MAX)).unwrap();
        let long = container_id(&"a".repeat(256)).unwrap_err();
        assert!(long.msg.contains("longer than 200 bytes"), "{}", long.msg);
        assert!(
            long.msg.len() < 200,
            "the message does not echo the whole id"
        );
        for bad in ["", "-a", ".a", "a/b", "..", "a b", "a\0"] {
            assert!(container_id(bad).is_err(), "{bad:?}");
            assert!(network_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_interface_names_carry_no_syntax() {
        for ok in ["eth0", "enp59s0f0np0", "br-int", "bond0.100", "vlan@x"] {
            host_ifname(ok, "master").unwrap();
        }
        for bad in [
            "$(touch${IFS}Y)",
            "a;b",
            "a'b",
            "a\"b",
            "a`b`",
            "a|b",
            "a%d",
            "a\\b",
        ] {
            let e = host_ifname(bad, "master").unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{bad:?}");
            assert!(e.msg.contains("master"), "{}", e.msg);
        }
    }

    #[test]
    fn log_files_are_names_not_paths() {
        log_file_name("net-a.log").unwrap();
        for bad in [
            "",
            ".hidden",
            "/etc/cron.d/x",
            "../x",
            "a/b",
            "a b",
            "x\n",
            &"a".repeat(65),
        ] {
            assert!(log_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            abs_path("/var/run/netns/x", "CNI_NETNS", 4).unwrap(),
            PathBuf::from("/var/run/netns/x")
        );
        for bad in [
            "",
            "relative",
            "/a/../etc",
            "/a/./b",
            "/..",
            "/a/..",
            "/a\0",
        ] {
            assert!(abs_path(bad, "p", 4).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_ids() {
        assert_eq!(
            device_id("0000:3b:02.1", "deviceID").unwrap().to_string(),
            "0000:3b:02.1"
        );
        for bad in [
            "3b:02.1",
            "../0000:3b:02.1",
            "0000:3b:02.1/",
            "0000:3b:02.1\0",
            "mlx5_core.sf.4",
            "0000:3b:02.8",
            "",
        ] {
            assert!(device_id(bad, "deviceID").is_err(), "{bad:?}");
        }
    }
}
