//! Network namespaces: naming one, running code inside one, creating a private one.
//!
//! Namespace membership belongs to a thread (`setns(2)` changes only the calling thread), and a
//! netlink socket belongs to the namespace of the thread that opened it. So the functions here
//! that enter a namespace do it on a new, dedicated thread that ends with the work; the calling
//! thread (and every tokio worker) stays where it was. The one exception, [`run_in_netns_here`],
//! is for a single-threaded process that comes back before doing anything else.
//!
//! ```text
//!   caller ──► new thread ──setns(fd, CLONE_NEWNET)──► f()                 run_in_netns
//!                                                  └─► current-thread
//!                                                      tokio runtime ─► f().await   block_on_in_netns
//!   async caller ─► (same, on a std thread) ─► oneshot back                 spawn_in_netns
//!   caller ──setns(pod)──► f() ──setns(home)──► caller            run_in_netns_here (CNI only)
//! ```
//!
//! For rtnetlink, do not use these directly: [`crate::host::Host`] keeps one thread per
//! namespace and hands out handles that work the same for the kernel and the fake.
//!
//! We never fork to make a namespace (rtnetlink's `NetworkNamespace::add` forks inside an async
//! function, which is unsafe in a multi-threaded process): [`create_netns`] unshares on a
//! throwaway thread and keeps the namespace alive through the returned file descriptor.
//! Note that `/sys/class/net` still shows the namespace in which sysfs was mounted.

use std::{
    fmt,
    fs::File,
    future::Future,
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::Arc,
    thread,
};

use nix::sched::{CloneFlags, setns, unshare};

/// Errors of namespace handling; each names the namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("cannot open network namespace {path}: {error}")]
    Open {
        /// `/var/run/netns/NAME`, `/proc/PID/ns/net`, ...
        path: PathBuf,
        /// The open error.
        error: io::Error,
    },
    /// `setns(2)` failed (not a network namespace file, or no `CAP_SYS_ADMIN`).
    #[error("cannot enter network namespace {netns}: {error}")]
    Enter {
        /// The namespace.
        netns: String,
        /// The errno.
        error: nix::Error,
    },
    /// `unshare(CLONE_NEWNET)` failed (needs `CAP_SYS_ADMIN`).
    #[error("cannot create a network namespace: {0}")]
    Create(nix::Error),
    /// The worker thread or its tokio runtime could not be started.
    #[error("cannot start a thread for network namespace {netns}: {error}")]
    Thread {
        /// The namespace.
        netns: String,
        /// The error.
        error: io::Error,
    },
}

/// A network namespace, named the way callers have it: a path (`/var/run/netns/x`,
/// `/proc/PID/ns/net`, the CNI `CNI_NETNS`), a process, or an open descriptor.
#[derive(Clone, Debug)]
pub enum NetnsRef {
    /// A namespace file (bind mount under `/var/run/netns`, or `/proc/PID/ns/net`).
    Path(PathBuf),
    /// The network namespace of a process (`/proc/PID/ns/net`).
    Pid(u32),
    /// An open namespace descriptor (shared, so the reference can be cloned).
    Fd(Arc<OwnedFd>),
}

impl NetnsRef {
    /// The namespace file at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self::Path(path.into())
    }

    /// The network namespace of process `pid`.
    pub fn pid(pid: u32) -> Self {
        Self::Pid(pid)
    }

    /// An open namespace descriptor (e.g. from [`create_netns`]).
    pub fn fd(fd: OwnedFd) -> Self {
        Self::Fd(Arc::new(fd))
    }

    /// The namespace of the calling thread, kept open.
    pub fn current() -> Result<Self, NetnsError> {
        Ok(Self::fd(open_path(Path::new("/proc/thread-self/ns/net"))?))
    }

    /// Opens the namespace (or shares the already open descriptor).
    pub fn open(&self) -> Result<Arc<OwnedFd>, NetnsError> {
        match self {
            Self::Path(p) => open_path(p).map(Arc::new),
            Self::Pid(pid) => {
                open_path(&PathBuf::from(format!("/proc/{pid}/ns/net"))).map(Arc::new)
            }
            Self::Fd(fd) => Ok(Arc::clone(fd)),
        }
    }
}

fn open_path(path: &Path) -> Result<OwnedFd, NetnsError> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|error| NetnsError::Open {
            path: path.to_path_buf(),
            error,
        })
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Pid(pid) => write!(f, "/proc/{pid}/ns/net"),
            Self::Fd(fd) => write!(f, "fd {}", fd.as_raw_fd()),
        }
    }
}

impl PartialEq for NetnsRef {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Path(a), Self::Path(b)) => a == b,
            (Self::Pid(a), Self::Pid(b)) => a == b,
            (Self::Fd(a), Self::Fd(b)) => a.as_raw_fd() == b.as_raw_fd(),
            _ => false,
        }
    }
}

impl Eq for NetnsRef {}

fn enter(netns: &NetnsRef, fd: &OwnedFd) -> Result<(), NetnsError> {
    setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|error| NetnsError::Enter {
        netns: netns.to_string(),
        error,
    })
}

fn thread_error(netns: &NetnsRef, error: io::Error) -> NetnsError {
    NetnsError::Thread {
        netns: netns.to_string(),
        error,
    }
}

/// Runs `f` on a new thread inside `netns` and returns its result. `f` may borrow from the
/// caller. This blocks the caller until `f` returns: from async code use [`spawn_in_netns`].
///
/// A panic in `f` is resumed on the calling thread.
pub fn run_in_netns<T, F>(netns: &NetnsRef, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let fd = netns.open()?;
    thread::scope(|s| {
        let worker = thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(s, || {
                enter(netns, &fd)?;
                Ok(f())
            })
            .map_err(|e| thread_error(netns, e))?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `f` inside `netns` on the calling thread, then returns the thread to the namespace it
/// was in. For single-threaded, short-lived processes only (the CNI plugin, which starts for
/// every pod): there a new thread costs more than the work (measured: about a fifth of a
/// macvlan ADD), and no other code runs on the thread while it is away. Everywhere else, use
/// [`run_in_netns`].
///
/// If the thread cannot go back, the process aborts: carrying on in the pod's namespace would
/// configure the pod's links as if they were the host's.
pub fn run_in_netns_here<T>(netns: &NetnsRef, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let home = open_path(Path::new("/proc/thread-self/ns/net"))?;
    let fd = netns.open()?;
    enter(netns, &fd)?;
    let out = f();
    if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
        eprintln!("cannot return from network namespace {netns}: {e}; aborting");
        std::process::abort();
    }
    Ok(out)
}

/// Runs the future made by `f` to completion on a new thread inside `netns`, on its own
/// current-thread tokio runtime (so netlink sockets opened by `f` belong to `netns`). Blocks the
/// caller; from async code use [`spawn_in_netns`].
///
/// ```no_run
/// # async fn doc() -> Result<(), Box<dyn std::error::Error>> {
/// use nic::{ethtool::EthtoolHandle, netns::{NetnsRef, block_on_in_netns}};
/// let ns = NetnsRef::path("/var/run/netns/pod1");
/// let features = block_on_in_netns(&ns, || async {
///     EthtoolHandle::connect().await?.features().get("net1").execute().await
/// })??;
/// # Ok(()) }
/// ```
pub fn block_on_in_netns<T, F, Fut>(netns: &NetnsRef, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
{
    let rt_netns = netns.clone();
    run_in_netns(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| thread_error(&rt_netns, e))?;
        Ok(rt.block_on(f()))
    })?
}

/// Like [`block_on_in_netns`], for async callers: the work runs on a dedicated std thread and
/// the caller awaits its result without blocking a runtime worker.
///
/// A panic in `f` is resumed in the awaiting task.
pub async fn spawn_in_netns<T, F, Fut>(netns: NetnsRef, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread_netns = netns.clone();
    thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                block_on_in_netns(&thread_netns, f)
            }));
            let _ = tx.send(result);
        })
        .map_err(|e| thread_error(&netns, e))?;
    match rx.await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(thread_error(
            &netns,
            io::Error::other("worker thread ended without a result"),
        )),
    }
}

/// Creates a new, empty network namespace and returns a descriptor that keeps it alive (it
/// disappears, with its links, when the last descriptor closes and no process is inside).
///
/// The namespace is made by `unshare(CLONE_NEWNET)` on a throwaway thread, so the calling thread
/// stays where it is. Needs `CAP_SYS_ADMIN`. For tests and tools; it is not bind-mounted under
/// `/var/run/netns`.
pub fn create_netns() -> Result<OwnedFd, NetnsError> {
    let worker = thread::Builder::new()
        .name("netns-create".into())
        .spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(NetnsError::Create)?;
            open_path(Path::new("/proc/thread-self/ns/net"))
        })
        .map_err(|error| NetnsError::Thread {
            netns: "(new)".into(),
            error,
        })?;
    worker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_print_as_their_paths() {
        assert_eq!(
            NetnsRef::path("/var/run/netns/pod1").to_string(),
            "/var/run/netns/pod1"
        );
        assert_eq!(NetnsRef::pid(42).to_string(), "/proc/42/ns/net");
        assert_eq!(NetnsRef::pid(42), NetnsRef::pid(42));
        assert_ne!(NetnsRef::pid(42), NetnsRef::path("/proc/42/ns/net"));
    }

    #[test]
    fn a_missing_namespace_file_is_named_in_the_error() {
        let err = run_in_netns(&NetnsRef::path("/nonexistent/netns/x"), || ()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot open network namespace /nonexistent/netns/x:")
        );
    }

    #[test]
    fn running_here_in_the_current_namespace_returns_the_result() {
        let ns = NetnsRef::current().unwrap();
        match run_in_netns_here(&ns, || 40 + 2) {
            Ok(v) => assert_eq!(v, 42),
            Err(NetnsError::Enter { error, .. }) => assert_eq!(error, nix::Error::EPERM),
            Err(e) => panic!("{e}"),
        }
        let err = run_in_netns_here(&NetnsRef::path("/nonexistent/netns/x"), || ()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/netns/x"), "{err}");
    }

    #[test]
    fn running_in_the_current_namespace_returns_the_result() {
        // Entering one's own namespace needs CAP_SYS_ADMIN; without it setns fails with EPERM.
        let ns = NetnsRef::current().unwrap();
        match run_in_netns(&ns, || 40 + 2) {
            Ok(v) => assert_eq!(v, 42),
            Err(NetnsError::Enter { error, .. }) => assert_eq!(error, nix::Error::EPERM),
            Err(e) => panic!("{e}"),
        }
    }
}
