//! Every path on a node that a smartnic component writes, in one place, with who removes it on
//! uninstall (`kubectl delete -k deploy`, `helm uninstall`). A test in `deploy/tests/render.rs`
//! checks that every `hostPath` volume of the node DaemonSets is either listed here or named in
//! [`SHARED_HOST_DIRS`] (a directory we only read, or write named files into): a new host path
//! cannot be forgotten by the uninstall.
//!
//! The agent's uninstall (`agent::uninstall`) removes the [`Remover::Agent`] entries; the device
//! plugin removes its own files when it stops ([`Remover::DevicePlugin`]), and so does the DRA
//! driver ([`Remover::Dra`]: its sockets on every stop, a claim's CDI spec when the kubelet
//! unprepares the claim).

/// How an entry is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// A directory the kubelet creates as a `hostPath` mount point: everything in it is removed;
    /// the directory itself stays (empty), because a container cannot remove its own mount point.
    Contents,
    /// One file.
    File,
    /// Files in a shared directory whose names start with `prefix` (by default the resource
    /// prefix `smartnic.io`) and end with `suffix`.
    Named {
        /// Start of the name.
        prefix: &'static str,
        /// End of the name.
        suffix: &'static str,
    },
}

/// Who removes an entry on uninstall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remover {
    /// The node agent, when its uninstall decision says so (`agent::uninstall`).
    Agent,
    /// The device plugin, on every stop (SIGTERM): each pool removes its socket, its
    /// device-info files and its CDI spec.
    DevicePlugin,
    /// The DRA driver (`smartnic-dra`): its two sockets on every stop (SIGTERM), a claim's CDI
    /// spec when the kubelet unprepares the claim (after its pods are gone).
    Dra,
}

/// One host path a smartnic component writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPath {
    /// The path on the host (for [`Removal::Named`], the directory).
    pub path: &'static str,
    /// How it is removed.
    pub removal: Removal,
    /// Who removes it.
    pub remover: Remover,
    /// What writes it, and what it holds.
    pub what: &'static str,
}

/// The CNI plugin binary, installed by the CNI installer DaemonSet.
pub const CNI_BINARY: &str = "/opt/cni/bin/smartnic";

/// Left by the agent in the CNI binary directory while its uninstall runs: the CNI installer's
/// keep-running loop does not put the binary back while it exists. The agent removes it when it
/// is done.
pub const CNI_UNINSTALL_MARKER: &str = "/opt/cni/bin/.smartnic-uninstalling";

/// Every host path we write. See the module documentation.
pub const OWNED: &[HostPath] = &[
    HostPath {
        path: "/var/lib/smartnic",
        removal: Removal::Contents,
        remover: Remover::Agent,
        what: "agent state file, applied device-plugin file, DRA prepared claims",
    },
    HostPath {
        path: "/run/smartnic",
        removal: Removal::Contents,
        remover: Remover::Agent,
        what: "the CNI plugin's records and journals (/run/smartnic/cni)",
    },
    HostPath {
        path: "/etc/smartnic",
        removal: Removal::Contents,
        remover: Remover::Agent,
        what: "the node's CNI allow-list (written by the agent)",
    },
    HostPath {
        path: "/var/log/smartnic",
        removal: Removal::Contents,
        remover: Remover::Agent,
        what: "the CNI plugin's log files (logFile of a network)",
    },
    HostPath {
        path: CNI_BINARY,
        removal: Removal::File,
        remover: Remover::Agent,
        what: "the CNI plugin binary (installed by the CNI installer)",
    },
    HostPath {
        path: "/var/lib/kubelet/device-plugins",
        removal: Removal::Named {
            prefix: "smartnic.io_",
            suffix: ".sock",
        },
        remover: Remover::DevicePlugin,
        what: "the device plugin's per-pool sockets",
    },
    HostPath {
        path: crate::devinfo::DP_DIR,
        removal: Removal::Named {
            prefix: "smartnic.io-",
            suffix: "-device.json",
        },
        remover: Remover::DevicePlugin,
        what: "the device plugin's device-info files",
    },
    HostPath {
        path: "/var/run/cdi",
        removal: Removal::Named {
            prefix: "smartnic.io-",
            suffix: ".json",
        },
        remover: Remover::DevicePlugin,
        what: "the device plugin's CDI specs (with --cdi)",
    },
    HostPath {
        path: "/var/lib/kubelet/plugins_registry",
        removal: Removal::Named {
            prefix: "smartnic.io-",
            suffix: "reg.sock",
        },
        remover: Remover::Dra,
        what: "the DRA driver's registration socket (smartnic.io-reg.sock)",
    },
    HostPath {
        path: "/var/lib/kubelet/plugins/smartnic.io",
        removal: Removal::Named {
            prefix: "dra",
            suffix: ".sock",
        },
        remover: Remover::Dra,
        what: "the DRA driver's service socket (dra.sock); the directory stays, empty",
    },
    HostPath {
        path: "/var/run/cdi",
        removal: Removal::Named {
            prefix: "smartnic.io-claim-",
            suffix: ".json",
        },
        remover: Remover::Dra,
        what: "the CDI specs of prepared DRA claims",
    },
];

/// Host directories a node DaemonSet mounts that are not ours: read only, or shared with other
/// software (we write only the named files of [`OWNED`] into them). The uninstall leaves them.
pub const SHARED_HOST_DIRS: &[&str] = &[
    "/sys",
    "/run/netns",
    "/run/openvswitch",
    "/opt/cni/bin",
    "/var/lib/kubelet/device-plugins",
    crate::devinfo::DP_DIR,
    "/var/run/cdi",
    "/var/lib/kubelet/plugins_registry",
];

/// Whether `host_path` (a `hostPath` volume's path) is one of [`OWNED`], inside one, or one of
/// [`SHARED_HOST_DIRS`].
pub fn known(host_path: &str) -> bool {
    let p = std::path::Path::new(host_path);
    OWNED.iter().any(|o| p.starts_with(o.path)) || SHARED_HOST_DIRS.iter().any(|d| p == *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_path_of_the_components_is_listed() {
        for path in [
            crate::cni_state::STATE_DIR,
            crate::cni::PLUGIN_LOG_DIR,
            crate::cni::NODE_ALLOW_LIST_FILE,
            crate::device_plugin::DEFAULT_CONFIG_FILE,
            crate::dra::PREPARED_DIR,
            CNI_BINARY,
        ] {
            assert!(
                OWNED
                    .iter()
                    .any(|o| std::path::Path::new(path).starts_with(o.path)),
                "{path} is not in host_paths::OWNED"
            );
        }
        assert!(known("/var/lib/smartnic"));
        assert!(known("/run/smartnic/cni"));
        assert!(!known("/var/lib"));
        assert!(!known("/etc"));
        assert!(
            std::path::Path::new(CNI_UNINSTALL_MARKER).parent()
                == std::path::Path::new(CNI_BINARY).parent()
        );
    }
}
