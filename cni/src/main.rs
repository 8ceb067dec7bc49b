//! `smartnic`: the CNI plugin binary. Reads the `CNI_*` environment and the configuration on
//! stdin, runs one command, prints the result or the error object, and exits.
//!
//! `smartnic install [--dest DIR] [--keep-running]` (with no `CNI_COMMAND`) copies the binary into
//! the node's CNI directory atomically; the installer DaemonSet in `deploy/cni/` runs it.
//!
//! It starts for every pod, so it does nothing it does not need: no async runtime until a
//! netlink socket is wanted (and then a current-thread one), no log subscriber unless the
//! configuration asks for logging (`logLevel`, `logFile`).

use std::{
    io::{Read, Write},
    process::ExitCode,
};

use smartnic_cni::{
    config::NetConf,
    env::{CniEnv, Command},
    error::{CniError, code},
    host::Paths,
    kernel::KernelHost,
    ovs_switch::{DEFAULT_RUNDIR, OvsSwitch},
    plugin::Plugin,
    store::{DEFAULT_STATE_DIR, Store},
    version,
};

/// 4 MiB, ten times what an ADD uses; beyond it, the system allocator.
#[global_allocator]
static ALLOC: smartnic_cni::arena::Arena<{ 4 << 20 }> = smartnic_cni::arena::Arena::new();

/// Overrides the state directory (tests, non-standard layouts).
const ENV_STATE_DIR: &str = "SMARTNIC_CNI_STATE_DIR";
/// Overrides the node-ready file that STATUS looks for.
const ENV_READY_FILE: &str = "SMARTNIC_CNI_READY_FILE";
/// Open vSwitch's run directory (`db.sock`, `BRIDGE.mgmt`), read as the OVS tools read it.
const ENV_OVS_RUNDIR: &str = "OVS_RUNDIR";

fn print(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, value);
    let _ = out.write_all(b"\n");
}

fn init_logging(conf: &NetConf) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let Some(level) = conf.log_level() else {
        return;
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    // stdout carries the result: logs go to stderr, and to the file besides when one is given.
    let file = conf.log_file.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .inspect_err(|e| eprintln!("smartnic: cannot open logFile {}: {e}", p.display()))
            .ok()
    });
    let _ = match file {
        Some(f) => builder
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(f)))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

fn run(env: &CniEnv, stdin: &[u8]) -> Result<Option<serde_json::Value>, (CniError, String)> {
    let fallback = || {
        serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(String::from))
            .filter(|v| version::negotiate(v).is_ok())
            .unwrap_or_else(|| version::SUPPORTED[version::SUPPORTED.len() - 1].to_string())
    };
    if env.command == Command::Version {
        return Ok(Some(version::version_answer(&fallback())));
    }
    let conf = NetConf::parse(stdin, env).map_err(|e| (e, fallback()))?;
    init_logging(&conf);
    let answer = conf.conf.cni_version.clone();
    let plugin = Plugin {
        host: KernelHost::new(),
        // Connects to ovsdb-server only when a command of mode ovs needs it.
        switch: OvsSwitch::new(
            std::env::var_os(ENV_OVS_RUNDIR).unwrap_or_else(|| DEFAULT_RUNDIR.into()),
        ),
        store: Store::new(
            std::env::var_os(ENV_STATE_DIR).unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        ),
        paths: Paths {
            ready_file: std::env::var_os(ENV_READY_FILE)
                .unwrap_or_else(|| crds::cni::NODE_READY_FILE.into())
                .into(),
        },
    };
    plugin.run(&conf, env).map_err(|e| (e, answer))
}

fn install_main(args: &[String]) -> ExitCode {
    let mut dest = std::path::PathBuf::from(smartnic_cni::install::DEFAULT_DEST);
    let mut keep_running = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dest" => match it.next() {
                Some(d) => dest = d.into(),
                None => {
                    eprintln!("smartnic install: --dest needs a directory");
                    return ExitCode::from(2);
                }
            },
            "--keep-running" => keep_running = true,
            other => {
                eprintln!(
                    "smartnic install: unknown argument {other:?} (usage: smartnic install [--dest DIR] [--keep-running])"
                );
                return ExitCode::from(2);
            }
        }
    }
    let source = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("smartnic install: cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        match smartnic_cni::install::install(&source, &dest, "smartnic") {
            Ok(smartnic_cni::install::Installed::Written(p)) => {
                eprintln!("installed {}", p.display())
            }
            Ok(smartnic_cni::install::Installed::Unchanged(p)) => {
                if !keep_running {
                    eprintln!("{} is up to date", p.display());
                }
            }
            Err(e) => {
                eprintln!(
                    "smartnic install: cannot install into {}: {e}",
                    dest.display()
                );
                if !keep_running {
                    return ExitCode::FAILURE;
                }
            }
        }
        if !keep_running {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("CNI_COMMAND").is_none()
        && args.first().map(String::as_str) == Some("install")
    {
        return install_main(&args[1..]);
    }
    let env = match CniEnv::parse(|k| std::env::var(k).ok()) {
        Ok(env) => env,
        Err(e) => {
            if std::env::var_os("CNI_COMMAND").is_none() {
                eprintln!(
                    "smartnic CNI plugin {} (CNI spec {})",
                    env!("CARGO_PKG_VERSION"),
                    version::SUPPORTED.join(", ")
                );
            }
            print(&e.to_json(version::SUPPORTED[version::SUPPORTED.len() - 1]));
            return ExitCode::FAILURE;
        }
    };
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = CniError::new(code::IO, format!("cannot read stdin: {e}"));
        print(&err.to_json(version::SUPPORTED[version::SUPPORTED.len() - 1]));
        return ExitCode::FAILURE;
    }
    match run(&env, &stdin) {
        Ok(Some(v)) => {
            print(&v);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err((e, v)) => {
            print(&e.to_json(&v));
            ExitCode::FAILURE
        }
    }
}
