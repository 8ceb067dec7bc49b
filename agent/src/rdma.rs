//! The node's RDMA network-namespace mode through the `rdma` tool (iproute2):
//! `rdma system show netns` and `rdma system set netns shared|exclusive` (RDMA netlink
//! `RDMA_NLDEV_CMD_SYS_GET` / `RDMA_NLDEV_CMD_SYS_SET`, attribute
//! `RDMA_NLDEV_SYS_ATTR_NETNS_MODE`). Errors name the setting (`rdmaMode`) and what is missing.

use std::io;

use crds::pool::RdmaMode;

use crate::firmware::{CommandOutput, CommandRunner};

const RDMA: &str = "rdma";

/// Why the RDMA mode could not be read or set.
#[derive(Debug, thiserror::Error)]
pub enum RdmaError {
    /// The `rdma` tool is not installed.
    #[error("rdmaMode: the rdma tool (iproute2) is not installed on the node")]
    NoTool,
    /// The tool could not be run.
    #[error("rdmaMode: cannot run rdma: {0}")]
    Spawn(io::Error),
    /// The command failed (no RDMA core in the kernel, a kernel without netns modes, RDMA
    /// devices in use, ...).
    #[error("rdmaMode: `rdma {args}` failed (exit {code}): {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// Exit code.
        code: i32,
        /// What the tool said.
        stderr: String,
    },
    /// `rdma system show netns` printed no mode.
    #[error("rdmaMode: `rdma system show netns` printed no netns mode: {0:?}")]
    Unparsed(String),
}

fn run(runner: &dyn CommandRunner, args: &[&str]) -> Result<CommandOutput, RdmaError> {
    let argv: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = runner.run(RDMA, &argv).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => RdmaError::NoTool,
        _ => RdmaError::Spawn(e),
    })?;
    if out.code != 0 {
        let stderr = out.stderr.trim();
        let stderr = if stderr.is_empty() {
            "no RDMA support in the kernel (ib_core not loaded?)".to_owned()
        } else if stderr.to_ascii_lowercase().contains("busy") {
            // ib_core refuses a mode change while any network namespace besides the initial
            // one exists (rdma_compatdev_set: -EBUSY), i.e. on a node running pods
            format!(
                "{stderr} (the kernel changes the mode only while no other network namespace exists: set ib_core netns_mode at boot on nodes running pods)"
            )
        } else {
            stderr.to_owned()
        };
        return Err(RdmaError::Failed {
            args: args.join(" "),
            code: out.code,
            stderr,
        });
    }
    Ok(out)
}

/// The node's mode (`rdma system show netns`, which prints `netns shared copy-on-fork on`).
pub fn netns_mode(runner: &dyn CommandRunner) -> Result<RdmaMode, RdmaError> {
    let out = run(runner, &["system", "show", "netns"])?;
    let mut words = out.stdout.split_whitespace();
    while let Some(w) = words.next() {
        if w == "netns" {
            return match words.next() {
                Some("shared") => Ok(RdmaMode::Shared),
                Some("exclusive") => Ok(RdmaMode::Exclusive),
                _ => Err(RdmaError::Unparsed(out.stdout.trim().to_owned())),
            };
        }
    }
    Err(RdmaError::Unparsed(out.stdout.trim().to_owned()))
}

/// Sets the node's mode (`rdma system set netns exclusive`).
pub fn set_netns_mode(runner: &dyn CommandRunner, mode: RdmaMode) -> Result<(), RdmaError> {
    run(runner, &["system", "set", "netns", mode.as_str()]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers each command with `answer`, recording it.
    struct Script {
        answer: fn(&[String]) -> io::Result<CommandOutput>,
        calls: Mutex<Vec<String>>,
    }

    impl CommandRunner for Script {
        fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{program} {}", args.join(" ")));
            (self.answer)(args)
        }
    }

    fn ok(stdout: &str) -> io::Result<CommandOutput> {
        Ok(CommandOutput {
            code: 0,
            stdout: stdout.to_owned(),
            stderr: String::new(),
        })
    }

    #[test]
    fn reads_and_sets_the_mode() {
        let r = Script {
            answer: |a| match a[1].as_str() {
                "show" => ok("netns exclusive copy-on-fork on\n"),
                _ => ok(""),
            },
            calls: Mutex::default(),
        };
        assert_eq!(netns_mode(&r).unwrap(), RdmaMode::Exclusive);
        set_netns_mode(&r, RdmaMode::Shared).unwrap();
        assert_eq!(
            *r.calls.lock().unwrap(),
            ["rdma system show netns", "rdma system set netns shared"]
        );
        let old = Script {
            answer: |_| ok("netns shared\n"),
            calls: Mutex::default(),
        };
        assert_eq!(netns_mode(&old).unwrap(), RdmaMode::Shared);
    }

    #[test]
    fn errors_name_the_setting_and_the_cause() {
        let missing = Script {
            answer: |_| Err(io::Error::from(io::ErrorKind::NotFound)),
            calls: Mutex::default(),
        };
        let e = set_netns_mode(&missing, RdmaMode::Exclusive).unwrap_err();
        assert!(matches!(e, RdmaError::NoTool), "{e}");
        assert!(e.to_string().starts_with("rdmaMode: the rdma tool"), "{e}");
        let no_rdma = Script {
            answer: |_| {
                Ok(CommandOutput {
                    code: 255,
                    stdout: String::new(),
                    stderr: "error: Operation not supported\n".into(),
                })
            },
            calls: Mutex::default(),
        };
        let e = set_netns_mode(&no_rdma, RdmaMode::Exclusive).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rdmaMode: `rdma system set netns exclusive` failed (exit 255): error: Operation not supported"
        );
        let busy = Script {
            answer: |_| {
                Ok(CommandOutput {
                    code: 255,
                    stdout: String::new(),
                    stderr: "error: Device or resource busy\n".into(),
                })
            },
            calls: Mutex::default(),
        };
        let e = set_netns_mode(&busy, RdmaMode::Exclusive).unwrap_err();
        assert!(e.to_string().contains("netns_mode at boot"), "{e}");
        let garbled = Script {
            answer: |_| ok("copy-on-fork on"),
            calls: Mutex::default(),
        };
        assert!(matches!(netns_mode(&garbled), Err(RdmaError::Unparsed(_))));
    }
}
