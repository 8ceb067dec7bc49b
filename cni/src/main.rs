//! `smartnic`: the CNI plugin binary. Reads the `CNI_*` environment and the configuration on
//! stdin, runs one command, prints the result or the error object, and exits.
//!
//! `smartnic install --dest DIR [--keep-running]` (with no `CNI_COMMAND`) copies the binary into
//! the node's CNI directory atomically; the installer DaemonSet in `deploy/cni/` runs it. The
//! destination is never guessed: `--dest` or `SMARTNIC_CNI_BIN_DIR` names it, so that running the
//! binary by hand does not write into this machine's `/opt/cni/bin`. `smartnic --help` and
//! `smartnic install --help` print the usage.
//!
//! Everything on stdin comes from a tenant (a network's configuration, a pod's annotations):
//! stdin is bounded, `logFile` is a name in our log directory, and host paths and interfaces
//! must be in the node's allow-list ([`allow`]) before anything runs.
//!
//! It starts for every pod, so it does nothing it does not need: no async runtime until a
//! netlink socket is wanted (and then a current-thread one), no log subscriber unless the
//! configuration asks for logging (`logLevel`, `logFile`).

use std::{
    io::{Read, Write},
    process::ExitCode,
};

use crds::link::NetworkMode;
use smartnic_cni::{
    allocated, allow,
    config::NetConf,
    devinfo, dra,
    env::{CniEnv, Command},
    error::{CniError, code},
    host::Paths,
    kernel::{self, KernelHost},
    log,
    ovs_switch::{DEFAULT_RUNDIR, OvsSwitch},
    plugin::Plugin,
    pools,
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
/// Overrides the directory `logFile` names a file in (tests).
const ENV_LOG_DIR: &str = "SMARTNIC_CNI_LOG_DIR";
/// Overrides where the node's allow-list is read from (tests).
const ENV_ALLOW_LIST: &str = "SMARTNIC_CNI_ALLOW_LIST";
/// Overrides where the kubelet's device-manager checkpoint is read from (tests).
const ENV_KUBELET_CHECKPOINT: &str = "SMARTNIC_CNI_KUBELET_CHECKPOINT";
/// Overrides the sysfs root the `deviceID` is looked up in (tests).
const ENV_SYSFS: &str = "SMARTNIC_CNI_SYSFS";
/// Overrides where the DRA driver's prepared-claim records are read from (tests).
const ENV_DRA_DIR: &str = "SMARTNIC_CNI_DRA_DIR";
/// Overrides the one directory a `runtimeConfig.CNIDeviceInfoFile` may be in (tests).
const ENV_DEVINFO_DIR: &str = "SMARTNIC_CNI_DEVINFO_DIR";
/// The most stdin we read: a configuration with a chained `prevResult` is a few KiB; anything
/// near this is not a configuration, and the plugin runs as root for every pod.
const MAX_STDIN: u64 = 4 << 20;

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
    let stderr = || log::Escaping(std::io::stderr());
    // stdout carries the result: logs go to stderr, and to the file besides when one is given.
    let file = conf.log_file.as_deref().and_then(|name| {
        let dir = std::env::var_os(ENV_LOG_DIR).unwrap_or_else(|| crds::cni::PLUGIN_LOG_DIR.into());
        log::open(std::path::Path::new(&dir), name)
            .inspect_err(|e| {
                eprintln!(
                    "smartnic: cannot open logFile {name} in {}: {e}",
                    std::path::Path::new(&dir).display()
                )
            })
            .ok()
    });
    let _ = match file {
        Some((f, _)) => builder
            .with_writer(stderr.and(std::sync::Mutex::new(log::Escaping(f))))
            .try_init(),
        None => builder.with_writer(stderr).try_init(),
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
    let mut conf = NetConf::parse(stdin, env).map_err(|e| (e, fallback()))?;
    let answer = conf.conf.cni_version.clone();
    let allow_file =
        std::env::var_os(ENV_ALLOW_LIST).unwrap_or_else(|| crds::cni::NODE_ALLOW_LIST_FILE.into());
    allow::load(std::path::Path::new(&allow_file))
        .and_then(|list| allow::enforce(&mut conf, env, &list))
        .map_err(|e| (e, answer.clone()))?;
    if matches!(env.command, Command::Add | Command::Check)
        && let Some(ns) = &env.netns
    {
        kernel::check_pod_netns(ns).map_err(|e| (e, answer.clone()))?;
    }
    let ready_file: std::path::PathBuf = std::env::var_os(ENV_READY_FILE)
        .unwrap_or_else(|| crds::cni::NODE_READY_FILE.into())
        .into();
    let store =
        Store::new(std::env::var_os(ENV_STATE_DIR).unwrap_or_else(|| DEFAULT_STATE_DIR.into()));
    let pod_name = env
        .arg(allow::ARG_POD_NAMESPACE)
        .zip(env.arg("K8S_POD_NAME"))
        .map(|(ns, name)| format!("{ns}/{name}"));
    // a device the DRA driver prepared for this pod (see `dra`): taken when no deviceID came,
    // and then not looked for in the device plugin's checkpoint
    let mut from_dra = false;
    let mut taken_by_dra = None;
    if env.command == Command::Add
        && let Some(resource) = conf.conf.resource_name.as_deref()
        && let Some(pod_uid) = env.arg(allocated::ARG_POD_UID)
    {
        let dir = dra::prepared_dir(std::env::var_os(ENV_DRA_DIR));
        match conf.device_id {
            Some(addr) if dra::is_uuid(pod_uid) => {
                from_dra = dra::prepared_devices(&dir, pod_uid, resource)
                    .map_err(|e| (e, answer.clone()))?
                    .contains(&addr);
            }
            Some(_) => {}
            None => {
                let needs_device = matches!(conf.conf.mode, NetworkMode::Sriov | NetworkMode::Ib);
                let prepared = dra::prepared_devices(&dir, pod_uid, resource)
                    .map_err(|e| (e, answer.clone()))?;
                if needs_device || !prepared.is_empty() {
                    let pod = pod_name.clone().unwrap_or_else(|| pod_uid.to_owned());
                    let at = dra::Attachment {
                        container_id: &env.container_id,
                        ifname: &env.ifname,
                        pod_uid,
                        pod: &pod,
                    };
                    let addr = dra::pick(&prepared, &dir, &store, resource, at)
                        .map_err(|e| (e, answer.clone()))?;
                    conf.device_id = Some(addr);
                    from_dra = true;
                    taken_by_dra = Some(addr);
                }
            }
        }
    }
    let mut per_pod_not_made = None;
    if env.command == Command::Add
        && let Some(addr) = conf.device_id
    {
        let resource = conf.conf.resource_name.as_deref();
        let sys = std::env::var_os(ENV_SYSFS).unwrap_or_else(|| "/sys".into());
        let pools = pools::check_on_node(&ready_file, std::path::Path::new(&sys), addr, resource)
            .map_err(|e| (e, answer.clone()))?;
        let resources = resource.map_or_else(|| pools::resources(&pools), |r| vec![r.to_owned()]);
        let checkpoint = std::env::var_os(ENV_KUBELET_CHECKPOINT)
            .unwrap_or_else(|| allocated::DEFAULT_CHECKPOINT.into());
        let check = if from_dra {
            allocated::PodCheck::Allocated
        } else {
            allocated::check(
                std::path::Path::new(&checkpoint),
                env.arg(allocated::ARG_POD_UID),
                pod_name.as_deref(),
                &resources,
                addr,
            )
            .map_err(|e| (e, answer.clone()))?
        };
        match check {
            allocated::PodCheck::Allocated => {}
            allocated::PodCheck::NotPossible(why) => per_pod_not_made = Some((addr, why)),
        }
    }
    conf.dra_claimed = from_dra;
    init_logging(&conf);
    if let Some((addr, why)) = per_pod_not_made {
        tracing::warn!(
            "deviceID {addr}: not checked against the kubelet's allocation to this pod ({why}); \
             only this node's pools were checked"
        );
    }
    if let Some(addr) = taken_by_dra {
        tracing::info!(
            "deviceID {addr}: the device prepared for this pod by {} (a DRA claim of {})",
            crds::dra::DRIVER_NAME,
            conf.conf.resource_name.as_deref().unwrap_or_default()
        );
    }
    for w in &conf.warnings {
        tracing::warn!("{w}");
    }
    let plugin = Plugin {
        host: KernelHost::new(),
        // Connects to ovsdb-server only when a command of mode ovs needs it.
        switch: OvsSwitch::new(
            std::env::var_os(ENV_OVS_RUNDIR).unwrap_or_else(|| DEFAULT_RUNDIR.into()),
        ),
        store,
        paths: Paths {
            ready_file,
            devinfo_dirs: devinfo::dirs(std::env::var_os(ENV_DEVINFO_DIR)),
        },
    };
    plugin.run(&conf, env).map_err(|e| (e, answer))
}

/// The installer's environment: the destination when `--dest` is not given.
const ENV_INSTALL_DEST: &str = "SMARTNIC_CNI_BIN_DIR";

const USAGE: &str = "\
smartnic: the smartnic CNI plugin (CNI spec 1.0.0, 1.1.0)

Usage:
  smartnic                  run by a container runtime: the command in CNI_COMMAND (ADD, DEL,
                            CHECK, STATUS, GC, VERSION), the network configuration on stdin
  smartnic install ...      copy this binary into a CNI directory (see smartnic install --help)
  smartnic --help           this text
  smartnic --version        the plugin's version

Example:
  echo '{\"cniVersion\":\"1.1.0\"}' | CNI_COMMAND=VERSION smartnic
";

const INSTALL_USAGE: &str = "\
smartnic install: copy this binary into a CNI directory atomically (temporary file, fsync,
chmod 0755, rename), so that a runtime exec'ing it meanwhile sees the old file or the new one.

Usage:
  smartnic install --dest DIR [--keep-running]

Options:
  --dest DIR        the CNI binary directory (as the node sees it, e.g. the host's /opt/cni/bin
                    mounted into the installer); default: $SMARTNIC_CNI_BIN_DIR; required
  --keep-running    stay up and put the binary back every 60 s if it disappears or changes,
                    except while the node agent uninstalls the node (its marker
                    DIR/.smartnic-uninstalling is there); SIGTERM stops it at once
  -h, --help        this text

Example:
  smartnic install --dest /host/opt/cni/bin --keep-running
";

fn install_main(args: &[String]) -> ExitCode {
    let mut dest = std::env::var_os(ENV_INSTALL_DEST)
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from);
    let mut keep_running = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dest" => match it.next() {
                Some(d) => dest = Some(d.into()),
                None => {
                    eprintln!("error: smartnic install: --dest needs a directory");
                    return ExitCode::from(2);
                }
            },
            "--keep-running" => keep_running = true,
            "-h" | "--help" => {
                print!("{INSTALL_USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("error: smartnic install: unknown argument {other:?}\n\n{INSTALL_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dest) = dest else {
        eprintln!(
            "error: smartnic install: no destination: pass --dest DIR (or set {ENV_INSTALL_DEST}); \
             it is never guessed, so that running this by hand does not overwrite this machine's \
             {}/smartnic",
            smartnic_cni::install::DEFAULT_DEST
        );
        return ExitCode::from(2);
    };
    let source = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: smartnic install: cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let interval = std::env::var(ENV_INSTALL_INTERVAL_MS)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(INSTALL_INTERVAL, std::time::Duration::from_millis);
    if keep_running {
        stop_on_sigterm();
    }
    let mut held_back = false;
    loop {
        if keep_running && smartnic_cni::install::uninstalling(&dest, std::time::SystemTime::now())
        {
            if !held_back {
                eprintln!(
                    "the node agent is uninstalling this node ({} exists): not putting the binary back",
                    smartnic_cni::install::marker(&dest).display()
                );
            }
            held_back = true;
            std::thread::sleep(interval);
            continue;
        }
        held_back = false;
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
                    "error: smartnic install: cannot install into {}: {e}",
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
        std::thread::sleep(interval);
    }
}

/// How often `install --keep-running` checks the binary.
const INSTALL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// Overrides [`INSTALL_INTERVAL`], in milliseconds (tests).
const ENV_INSTALL_INTERVAL_MS: &str = "SMARTNIC_CNI_INSTALL_INTERVAL_MS";

/// SIGTERM (and SIGINT) end `install --keep-running` at once with status 0: as a container's
/// PID 1 the default disposition would ignore them, and a loop still running after the agent
/// removed the binary on an uninstall would put it back. The signals are blocked in this thread
/// (and so in every later one) and taken by a thread of their own.
fn stop_on_sigterm() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    if let Err(e) = set.thread_block() {
        eprintln!("warning: smartnic install: cannot block SIGTERM: {e}");
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("{sig}: stopping");
            std::process::exit(0);
        }
    });
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("CNI_COMMAND").is_none() {
        match args.first().map(String::as_str) {
            Some("install") => return install_main(&args[1..]),
            Some("-h" | "--help" | "help") => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("-V" | "--version") => {
                println!("smartnic {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => {}
        }
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
    let read = std::io::stdin()
        .lock()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut stdin);
    let too_big = stdin.len() as u64 > MAX_STDIN;
    if read.is_err() || too_big {
        let msg = match read {
            Err(e) => format!("cannot read stdin: {e}"),
            Ok(_) => format!(
                "the network configuration on stdin is larger than {} MiB",
                MAX_STDIN >> 20
            ),
        };
        let code = if too_big { code::DECODE } else { code::IO };
        print(&CniError::new(code, msg).to_json(version::SUPPORTED[version::SUPPORTED.len() - 1]));
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
