//! The firmware step: NV-config settings that take effect only after a reboot (or a firmware
//! reset), behind [`Firmware`], with an NVIDIA implementation over a command-runner seam.
//!
//! [`apply_firmware`] is what the executor calls for a `Step::Firmware`: query, compare with the
//! target, refuse a second reboot for a value that a first reboot did not make true (the reboot
//! loop of older operators), set what differs in the *next boot* column, record the write in the
//! state file and report that a reboot is needed. See `firmware-notes/nvidia.md`.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use crds::inventory::LinkType;
use planner::apply::FirmwareTarget;

use crate::state::AgentState;

/// The output of a command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs programs: the real one spawns them, tests record and answer.
pub trait CommandRunner: Send + Sync {
    /// Runs `program` with `args` and waits for it.
    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput>;
}

/// [`CommandRunner`] over `std::process::Command`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
        let o = std::process::Command::new(program).args(args).output()?;
        Ok(CommandOutput {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }
}

/// Why a firmware step failed.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// Neither tool is installed.
    #[error(
        "PF {pci}: neither mstconfig nor mlxconfig is installed; install mstflint to change firmware settings"
    )]
    ToolMissing {
        /// PF.
        pci: String,
    },
    /// The tool could not be run.
    #[error("PF {pci}: cannot run {tool}: {source}")]
    Spawn {
        /// PF.
        pci: String,
        /// Tool.
        tool: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The tool failed.
    #[error("PF {pci}: {tool} {args} failed (exit {code}): {stderr}")]
    Tool {
        /// PF.
        pci: String,
        /// Tool.
        tool: String,
        /// Its arguments.
        args: String,
        /// Exit code.
        code: i32,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The query lacks a parameter.
    #[error("PF {pci}: the firmware query does not list {param}")]
    Missing {
        /// PF.
        pci: String,
        /// Parameter.
        param: String,
    },
    /// The kernel refuses firmware writes.
    #[error("PF {pci}: kernel lockdown is {mode}: firmware settings cannot be written")]
    Lockdown {
        /// PF.
        pci: String,
        /// Lockdown mode.
        mode: String,
    },
    /// The reboot-loop guard.
    #[error(
        "PF {pci}: the firmware still reports {current} after the reboot that should have applied {wanted}; refusing a second reboot for the same value (see firmware-notes/nvidia.md: a firmware reset or a cold boot may be needed)"
    )]
    RebootLoop {
        /// PF.
        pci: String,
        /// What the firmware reports now.
        current: String,
        /// What was written.
        wanted: String,
    },
}

/// One NV-config parameter: the value in effect and the value for the next boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareParam {
    /// Value in effect (`True`, `16`, `ETH`).
    pub current: String,
    /// Value after the next boot.
    pub next: String,
}

/// What the firmware step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirmwareOutcome {
    /// The firmware already runs with the target: nothing written.
    InEffect,
    /// Written (or already staged) for the next boot: the node must reboot.
    RebootNeeded,
}

/// Firmware settings of one vendor.
pub trait Firmware: Send + Sync {
    /// The parameters of PF `pci`, by NV-config name.
    fn query(&self, pci: &str) -> Result<BTreeMap<String, FirmwareParam>, FirmwareError>;
    /// Sets `params` for the next boot.
    fn set(&self, pci: &str, params: &[(String, String)]) -> Result<(), FirmwareError>;
}

/// NVIDIA NV-config through `mstconfig` (mstflint) or `mlxconfig` (MFT), whichever is installed.
pub struct NvidiaFirmware<R> {
    runner: R,
    lockdown: PathBuf,
}

impl<R: CommandRunner> NvidiaFirmware<R> {
    /// Over `runner`; the kernel lockdown state is read from `sys_root`/kernel/security/lockdown.
    pub fn new(runner: R, sys_root: impl Into<PathBuf>) -> Self {
        Self {
            runner,
            lockdown: sys_root.into().join("kernel/security/lockdown"),
        }
    }

    /// Runs the first installed tool; `ToolMissing` when none is.
    fn run(&self, pci: &str, args: Vec<String>) -> Result<CommandOutput, FirmwareError> {
        for tool in ["mstconfig", "mlxconfig"] {
            match self.runner.run(tool, &args) {
                Ok(o) if o.code == 0 => return Ok(o),
                Ok(o) => {
                    return Err(FirmwareError::Tool {
                        pci: pci.to_owned(),
                        tool: tool.to_owned(),
                        args: args.join(" "),
                        code: o.code,
                        stderr: o.stderr.trim().to_owned(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(FirmwareError::Spawn {
                        pci: pci.to_owned(),
                        tool: tool.to_owned(),
                        source,
                    });
                }
            }
        }
        Err(FirmwareError::ToolMissing {
            pci: pci.to_owned(),
        })
    }
}

impl<R: CommandRunner> Firmware for NvidiaFirmware<R> {
    fn query(&self, pci: &str) -> Result<BTreeMap<String, FirmwareParam>, FirmwareError> {
        let o = self.run(
            pci,
            vec!["-e".into(), "-d".into(), pci.into(), "query".into()],
        )?;
        Ok(parse_query(&o.stdout))
    }

    fn set(&self, pci: &str, params: &[(String, String)]) -> Result<(), FirmwareError> {
        if let Ok(mode) = std::fs::read_to_string(&self.lockdown)
            && let Some(active) = mode
                .split_whitespace()
                .find(|w| w.starts_with('['))
                .map(|w| w.trim_matches(['[', ']']).to_owned())
            && active != "none"
        {
            return Err(FirmwareError::Lockdown {
                pci: pci.to_owned(),
                mode: active,
            });
        }
        let mut args: Vec<String> = vec!["-d".into(), pci.into(), "-y".into(), "set".into()];
        args.extend(params.iter().map(|(k, v)| format!("{k}={v}")));
        self.run(pci, args).map(|_| ())
    }
}

/// Parses `mstconfig -e query`: rows `[*] NAME DEFAULT CURRENT NEXT` (or `NAME NEXT` without
/// `-e`), values like `True(1)`, `ETH(2)`, `16`, normalised to `True`, `ETH`, `16`.
pub fn parse_query(out: &str) -> BTreeMap<String, FirmwareParam> {
    let norm = |v: &str| v.split('(').next().unwrap_or(v).to_owned();
    let mut params = BTreeMap::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.trim_start().starts_with("Configurations:") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"*") {
            words.remove(0);
        }
        let (name, current, next) = match words.as_slice() {
            [name, _default, current, next] => (name, current, next),
            [name, next] => (name, next, next),
            _ => continue,
        };
        if name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            params.insert(
                (*name).to_owned(),
                FirmwareParam {
                    current: norm(current),
                    next: norm(next),
                },
            );
        }
    }
    params
}

/// The NV-config parameters that make `target` true on PF `pci` (`LINK_TYPE_P2` for function 1).
pub fn nvidia_params(pci: &str, target: &FirmwareTarget) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(n) = target.total_vfs {
        out.push(("SRIOV_EN".to_owned(), "True".to_owned()));
        out.push(("NUM_OF_VFS".to_owned(), n.to_string()));
    }
    if let Some(l) = target.link_type {
        let port = if pci.ends_with(".1") { 2 } else { 1 };
        let v = match l {
            LinkType::Eth => "ETH",
            LinkType::Ib => "IB",
        };
        out.push((format!("LINK_TYPE_P{port}"), v.to_owned()));
    }
    out
}

/// The firmware step of PF `pci`: see the module documentation. `state` records the write (the
/// caller stores it before rebooting).
pub fn apply_firmware(
    fw: &dyn Firmware,
    state: &mut AgentState,
    boot_id: &str,
    pci: &str,
    target: &FirmwareTarget,
) -> Result<FirmwareOutcome, FirmwareError> {
    let wanted = nvidia_params(pci, target);
    let have = fw.query(pci)?;
    let mut differ_now = Vec::new();
    let mut to_set = Vec::new();
    for (k, v) in &wanted {
        let p = have.get(k).ok_or_else(|| FirmwareError::Missing {
            pci: pci.to_owned(),
            param: k.clone(),
        })?;
        if !p.current.eq_ignore_ascii_case(v) {
            differ_now.push(format!("{k}={}", p.current));
        }
        // a value already staged for the next boot is not written again
        if !p.next.eq_ignore_ascii_case(v) {
            to_set.push((k.clone(), v.clone()));
        }
    }
    if differ_now.is_empty() {
        return Ok(FirmwareOutcome::InEffect);
    }
    if state.firmware_reboot_refused(pci, target, boot_id) {
        return Err(FirmwareError::RebootLoop {
            pci: pci.to_owned(),
            current: differ_now.join(" "),
            wanted: wanted
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    if !to_set.is_empty() {
        fw.set(pci, &to_set)?;
    }
    if !state
        .firmware_reboots
        .iter()
        .any(|r| r.pci_address == pci && &r.target == target)
    {
        state.record_firmware(pci, target.clone(), boot_id);
    }
    Ok(FirmwareOutcome::RebootNeeded)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const QUERY: &str = "\nDevice #1:\n----------\n\nDevice type:        ConnectX6DX\nDevice:             0000:3b:00.0\n\nConfigurations:                                      Default         Current         Next Boot\n*        NUM_OF_VFS                                  8               16              16\n         SRIOV_EN                                    True(1)         True(1)         True(1)\n         LINK_TYPE_P1                                ETH(2)          ETH(2)          ETH(2)\n         LINK_TYPE_P2                                ETH(2)          ETH(2)          ETH(2)\n";

    /// Answers `query` with a table whose values change when `set` is run.
    struct FakeTool {
        installed: &'static str,
        calls: Mutex<Vec<String>>,
        query: Mutex<String>,
    }

    impl FakeTool {
        fn new(installed: &'static str) -> Self {
            Self {
                installed,
                calls: Mutex::new(Vec::new()),
                query: Mutex::new(QUERY.to_owned()),
            }
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl CommandRunner for &FakeTool {
        fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
            if program != self.installed {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
            }
            self.calls
                .lock()
                .unwrap()
                .push(format!("{program} {}", args.join(" ")));
            if args.last().is_some_and(|a| a == "query") {
                return Ok(CommandOutput {
                    code: 0,
                    stdout: self.query.lock().unwrap().clone(),
                    stderr: String::new(),
                });
            }
            // set: stage NUM_OF_VFS for the next boot
            let mut q = self.query.lock().unwrap();
            if let Some(v) = args.iter().find_map(|a| a.strip_prefix("NUM_OF_VFS=")) {
                *q = q.replace(
                    "*        NUM_OF_VFS                                  8               16              16",
                    &format!("*        NUM_OF_VFS                                  8               16              {v}"),
                );
            }
            Ok(CommandOutput::default())
        }
    }

    fn t(n: u32) -> FirmwareTarget {
        FirmwareTarget {
            total_vfs: Some(n),
            link_type: None,
        }
    }

    #[test]
    fn query_table_is_parsed_with_current_and_next() {
        let p = parse_query(QUERY);
        assert_eq!(
            p["NUM_OF_VFS"],
            FirmwareParam {
                current: "16".into(),
                next: "16".into()
            }
        );
        assert_eq!(p["SRIOV_EN"].current, "True");
        assert_eq!(p["LINK_TYPE_P2"].next, "ETH");
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn params_name_the_port_of_the_function() {
        let target = FirmwareTarget {
            total_vfs: Some(32),
            link_type: Some(LinkType::Ib),
        };
        assert_eq!(
            nvidia_params("0000:3b:00.1", &target),
            [
                ("SRIOV_EN".to_owned(), "True".to_owned()),
                ("NUM_OF_VFS".to_owned(), "32".to_owned()),
                ("LINK_TYPE_P2".to_owned(), "IB".to_owned())
            ]
        );
    }

    #[test]
    fn set_then_reboot_then_refuse_a_second_reboot_for_the_same_value() {
        let tool = FakeTool::new("mlxconfig");
        let dir = tempfile::tempdir().unwrap();
        let fw = NvidiaFirmware::new(&tool, dir.path());
        let mut state = AgentState::default();
        let pci = "0000:3b:00.0";

        assert_eq!(
            apply_firmware(&fw, &mut state, "b1", pci, &t(16)).unwrap(),
            FirmwareOutcome::InEffect
        );
        assert_eq!(
            apply_firmware(&fw, &mut state, "b1", pci, &t(32)).unwrap(),
            FirmwareOutcome::RebootNeeded
        );
        assert_eq!(
            tool.calls()[1..],
            [
                "mlxconfig -e -d 0000:3b:00.0 query",
                "mlxconfig -d 0000:3b:00.0 -y set NUM_OF_VFS=32"
            ],
            "mstconfig absent: mlxconfig; SRIOV_EN already True is not written"
        );
        // asked again before the reboot: staged already, nothing written
        assert_eq!(
            apply_firmware(&fw, &mut state, "b1", pci, &t(32)).unwrap(),
            FirmwareOutcome::RebootNeeded
        );
        assert_eq!(tool.calls().len(), 4);
        // after the reboot the firmware still says 16: no second reboot
        let err = apply_firmware(&fw, &mut state, "b2", pci, &t(32)).unwrap_err();
        assert!(matches!(err, FirmwareError::RebootLoop { .. }));
        assert!(
            err.to_string().starts_with(
                "PF 0000:3b:00.0: the firmware still reports NUM_OF_VFS=16 after the reboot that should have applied SRIOV_EN=True NUM_OF_VFS=32; refusing a second reboot"
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_tools_and_lockdown_are_clear_errors() {
        let tool = FakeTool::new("nothing");
        let dir = tempfile::tempdir().unwrap();
        let fw = NvidiaFirmware::new(&tool, dir.path());
        let err = fw.query("0000:3b:00.0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "PF 0000:3b:00.0: neither mstconfig nor mlxconfig is installed; install mstflint to change firmware settings"
        );
        let tool = FakeTool::new("mstconfig");
        std::fs::create_dir_all(dir.path().join("kernel/security")).unwrap();
        std::fs::write(
            dir.path().join("kernel/security/lockdown"),
            "none [integrity] confidentiality\n",
        )
        .unwrap();
        let fw = NvidiaFirmware::new(&tool, dir.path());
        let err = fw
            .set("0000:3b:00.0", &[("NUM_OF_VFS".into(), "32".into())])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PF 0000:3b:00.0: kernel lockdown is integrity: firmware settings cannot be written"
        );
        assert!(tool.calls().is_empty());
    }
}
