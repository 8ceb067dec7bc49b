//! `host-local` IPAM, in process, on the reference plugin's on-disk layout, so that our plugin and
//! the reference binary can share one `dataDir` and one range:
//!
//! ```text
//!   <dataDir>/<network>/lock                 empty; flock(LOCK_EX) for the whole allocation
//!   <dataDir>/<network>/10.66.0.2            "<containerID>\r\n<ifname>" (no trailing newline),
//!                                            0600, written whole then linked in (fails if taken)
//!   <dataDir>/<network>/last_reserved_ip.0   last address handed out from range set 0
//! ```
//!
//! Addresses are tried from the one after `last_reserved_ip.<set>` round the range set, skipping
//! gateways, as the reference does. A lease is written to a temporary file, fsynced and linked
//! into place, so a crash leaves either a whole lease or none (never an empty file that holds an
//! address for nobody); `last_reserved_ip` is only a search hint and is rewritten in place.

use std::{
    fs::{self, OpenOptions},
    io::{self, Write},
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    cidr::{Cidr, from_bits, to_bits},
    config::Attachment,
    error::{CniError, code},
    lock::FileLock,
    result::{AddResult, Dns, IpConfig, Route},
    validate,
};

/// Replaces the contents of `path` (`old_len` bytes long, 0 when new) with `text`, in place.
///
/// Not `fs::write`: truncating a file to zero and writing it again makes ext4 (`auto_da_alloc`,
/// on by default) start writing it to disk at `close`, and the next truncation waits for that
/// write; each ADD paid one disk write (measured: 0.7 ms of a 3.3 ms ADD). Written in place, the
/// page stays dirty in the cache like any other. A crash between the write and the shortening
/// can leave a longer, wrong address: harmless, as it only says where the next search starts
/// (the address files are what is allocated), for us and for the reference plugin alike.
fn overwrite(path: &Path, text: &str, old_len: usize) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    if old_len > text.len() {
        f.set_len(text.len() as u64)?;
    }
    Ok(())
}

/// Default `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeConf {
    subnet: Cidr,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

#[derive(Clone, Debug, Deserialize)]
struct RouteConf {
    dst: Cidr,
    #[serde(default)]
    gw: Option<IpAddr>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    ranges: Vec<Vec<RangeConf>>,
    // The deprecated single-range form.
    #[serde(default)]
    subnet: Option<Cidr>,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<RouteConf>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    resolv_conf: Option<String>,
}

/// One checked range: `start..=end` inside `subnet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The subnet (canonical).
    pub subnet: Cidr,
    /// First address handed out.
    pub start: IpAddr,
    /// Last address handed out.
    pub end: IpAddr,
    /// Gateway (never handed out).
    pub gateway: Option<IpAddr>,
}

impl Range {
    fn contains(&self, ip: IpAddr) -> bool {
        self.subnet.contains(ip)
            && to_bits(ip) >= to_bits(self.start)
            && to_bits(ip) <= to_bits(self.end)
    }
}

/// A checked `host-local` configuration.
#[derive(Clone, Debug)]
pub struct HostLocal {
    /// Range sets; each gives one address.
    pub sets: Vec<Vec<Range>>,
    routes: Vec<Route>,
    /// `<dataDir>/<network>`.
    pub dir: PathBuf,
    resolv_conf: Option<PathBuf>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

fn io_err(what: &str, path: &Path, e: io::Error) -> CniError {
    CniError::new(
        code::IO,
        format!("host-local: cannot {what} {}: {e}", path.display()),
    )
}

fn check_range(r: &RangeConf, at: &str) -> Result<Range, CniError> {
    let subnet = r.subnet.canonical();
    let net = to_bits(subnet.network());
    let last = to_bits(subnet.last());
    let v4 = subnet.is_ipv4();
    if subnet.prefix == 0 {
        return Err(invalid(format!(
            "key ipam.{at}.subnet: {subnet} is every address; give the subnet the pods are on"
        )));
    }
    if last.saturating_sub(net) < 2 {
        return Err(invalid(format!(
            "key ipam.{at}.subnet: {subnet} is too small"
        )));
    }
    let ip = |bits| from_bits(subnet.addr, bits);
    let start = r.range_start.unwrap_or(ip(net + 1));
    let end = r
        .range_end
        .unwrap_or(if v4 { ip(last - 1) } else { ip(last) });
    for (key, a) in [("rangeStart", start), ("rangeEnd", end)] {
        if !subnet.contains(a) {
            return Err(invalid(format!(
                "key ipam.{at}.{key}: {a} is not in {subnet}"
            )));
        }
    }
    if to_bits(start) > to_bits(end) {
        return Err(invalid(format!(
            "key ipam.{at}: rangeStart {start} is after rangeEnd {end}"
        )));
    }
    let gateway = Some(r.gateway.unwrap_or(ip(net + 1)));
    if let Some(gw) = gateway.filter(|g| !subnet.contains(*g)) {
        return Err(invalid(format!(
            "key ipam.{at}.gateway: {gw} is not in {subnet}"
        )));
    }
    Ok(Range {
        subnet,
        start,
        end,
        gateway,
    })
}

impl HostLocal {
    /// Checks the `ipam` section of network `network`.
    pub fn parse(ipam: &serde_json::Value, network: &str) -> Result<Self, CniError> {
        let conf: Conf = serde_path_to_error::deserialize(ipam)
            .map_err(|e| invalid(format!("key ipam.{}: {}", e.path(), e.inner())))?;
        let mut raw_sets = conf.ranges.clone();
        if let Some(subnet) = conf.subnet {
            raw_sets.insert(
                0,
                vec![RangeConf {
                    subnet,
                    range_start: conf.range_start,
                    range_end: conf.range_end,
                    gateway: conf.gateway,
                }],
            );
        }
        if raw_sets.is_empty() || raw_sets.iter().any(Vec::is_empty) {
            return Err(invalid(
                "key ipam.ranges: host-local needs at least one range in every range set",
            ));
        }
        let mut sets: Vec<Vec<Range>> = Vec::new();
        for (i, set) in raw_sets.iter().enumerate() {
            let mut ranges: Vec<Range> = Vec::new();
            for (j, r) in set.iter().enumerate() {
                let range = check_range(r, &format!("ranges[{i}][{j}]"))?;
                if ranges
                    .iter()
                    .any(|o| o.subnet.is_ipv4() != range.subnet.is_ipv4())
                {
                    return Err(invalid(format!(
                        "key ipam.ranges[{i}]: mixes IPv4 and IPv6"
                    )));
                }
                if ranges.iter().any(|o| {
                    o.contains(range.start) || o.contains(range.end) || range.contains(o.start)
                }) {
                    return Err(invalid(format!(
                        "key ipam.ranges[{i}][{j}]: overlaps another range"
                    )));
                }
                ranges.push(range);
            }
            for (k, other) in sets.iter().enumerate() {
                if let Some(r) = ranges.iter().find(|r| {
                    other.iter().any(|o: &Range| {
                        o.contains(r.start) || o.contains(r.end) || r.contains(o.start)
                    })
                }) {
                    return Err(invalid(format!(
                        "key ipam.ranges[{i}]: {}-{} overlaps range set {k}; one address would be handed out twice",
                        r.start, r.end
                    )));
                }
            }
            sets.push(ranges);
        }
        let base = match &conf.data_dir {
            Some(d) => validate::abs_path(d, "ipam.dataDir", code::INVALID_CONFIG)?,
            None => PathBuf::from(DEFAULT_DATA_DIR),
        };
        validate::network_name(network)?;
        let resolv_conf = conf
            .resolv_conf
            .as_deref()
            .map(|p| validate::abs_path(p, "ipam.resolvConf", code::INVALID_CONFIG))
            .transpose()?;
        Ok(Self {
            sets,
            routes: conf
                .routes
                .iter()
                .map(|r| Route::new(r.dst, r.gw))
                .collect(),
            dir: base.join(network),
            resolv_conf,
        })
    }

    fn lock(&self) -> Result<FileLock, CniError> {
        let path = self.dir.join("lock");
        // The network's directory is there on every call but the first.
        match FileLock::exclusive(&path, 0o750) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir).map_err(|e| io_err("create", &self.dir, e))?;
                FileLock::exclusive(&path, 0o750)
            }
            other => other,
        }
        .map_err(|e| io_err("lock", &path, e))
    }

    /// Allocates one address per range set for `id`/`ifname` (taking `requested` addresses where
    /// given) and returns the IPAM result.
    pub fn add(&self, id: &str, ifname: &str, requested: &[IpAddr]) -> Result<AddResult, CniError> {
        let _lock = self.lock()?;
        let mut ips = Vec::new();
        let mut taken: Vec<PathBuf> = Vec::new();
        let result = (|| {
            for (i, set) in self.sets.iter().enumerate() {
                let want = requested
                    .iter()
                    .find(|a| set.iter().any(|r| r.subnet.contains(**a)));
                let (ip, range) = match want {
                    Some(a) => self.take_requested(set, *a, id, ifname)?,
                    None => self.take_next(i, set, id, ifname)?,
                };
                taken.push(self.dir.join(ip.to_string()));
                ips.push(IpConfig {
                    address: Cidr {
                        addr: ip,
                        prefix: range.subnet.prefix,
                    },
                    gateway: range.gateway,
                    interface: None,
                });
            }
            for a in requested {
                if !self.sets.iter().flatten().any(|r| r.subnet.contains(*a)) {
                    return Err(CniError::new(
                        code::NO_ADDRESS,
                        format!(
                            "requested IP address {a} is not in any range of network {}",
                            self.dir.display()
                        ),
                    ));
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            for p in taken {
                let _ = fs::remove_file(p);
            }
            return Err(e);
        }
        Ok(AddResult {
            interfaces: Vec::new(),
            ips,
            routes: self.routes.clone(),
            dns: self.dns(),
        })
    }

    /// Takes `ip` for `id`/`ifname` unless someone holds it. The lease appears whole or not at
    /// all: its contents go to a temporary file (0600, fsynced) that is then hard-linked to the
    /// address's name, which fails when the name exists (the `O_EXCL` of the reference, made
    /// atomic with the contents).
    fn reserve(&self, ip: IpAddr, id: &str, ifname: &str) -> Result<bool, CniError> {
        let path = self.dir.join(ip.to_string());
        let tmp = self.dir.join(format!(".lease-{}-{ip}", std::process::id()));
        let write_tmp = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(format!("{id}\r\n{ifname}").as_bytes())?;
            f.sync_all()
        };
        let linked = write_tmp().and_then(|()| fs::hard_link(&tmp, &path));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err("create", &path, e)),
        }
    }

    fn take_requested<'r>(
        &self,
        set: &'r [Range],
        ip: IpAddr,
        id: &str,
        ifname: &str,
    ) -> Result<(IpAddr, &'r Range), CniError> {
        let range = set.iter().find(|r| r.contains(ip)).ok_or_else(|| {
            CniError::new(
                code::NO_ADDRESS,
                format!("requested IP address {ip} is outside the range"),
            )
        })?;
        if range.gateway == Some(ip) || !self.reserve(ip, id, ifname)? {
            return Err(CniError::new(
                code::NO_ADDRESS,
                format!(
                    "requested IP address {ip} is not available in {}",
                    self.dir.display()
                ),
            ));
        }
        Ok((ip, range))
    }

    fn take_next<'r>(
        &self,
        set_index: usize,
        set: &'r [Range],
        id: &str,
        ifname: &str,
    ) -> Result<(IpAddr, &'r Range), CniError> {
        let last_path = self.dir.join(format!("last_reserved_ip.{set_index}"));
        // Bytes, not text: a file that is not valid text (damaged) is read as "no last address"
        // and rewritten whole below, its full old length known.
        let last_bytes = fs::read(&last_path).ok();
        let last: Option<IpAddr> = last_bytes
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.trim().parse().ok());
        // Start after the last reserved address when it is still in the set; else at the start.
        let (mut ri, mut cur) =
            match last.and_then(|l| set.iter().position(|r| r.contains(l)).map(|i| (i, l))) {
                Some((i, l)) => (i, Some(l)),
                None => (0, None),
            };
        let total: u128 = set
            .iter()
            .map(|r| to_bits(r.end) - to_bits(r.start) + 1)
            .sum();
        for _ in 0..total {
            let next = match cur {
                Some(c) if to_bits(c) < to_bits(set[ri].end) => from_bits(c, to_bits(c) + 1),
                Some(_) => {
                    ri = (ri + 1) % set.len();
                    set[ri].start
                }
                None => set[ri].start,
            };
            cur = Some(next);
            let range = &set[ri];
            if range.gateway == Some(next) {
                continue;
            }
            if self.reserve(next, id, ifname)? {
                let old_len = last_bytes.as_ref().map_or(0, Vec::len);
                overwrite(&last_path, &next.to_string(), old_len)
                    .map_err(|e| io_err("write", &last_path, e))?;
                return Ok((next, range));
            }
        }
        Err(CniError::new(
            code::NO_ADDRESS,
            format!(
                "no IP addresses available in range set {} of {}",
                set.iter()
                    .map(|r| format!("{}-{}", r.start, r.end))
                    .collect::<Vec<_>>()
                    .join(","),
                self.dir.display()
            ),
        ))
    }

    /// Frees every address held by `id`/`ifname` (none is fine).
    pub fn del(&self, id: &str, ifname: &str) -> Result<(), CniError> {
        if !self.dir.exists() {
            return Ok(());
        }
        let _lock = self.lock()?;
        for (path, owner) in self.leases()? {
            if owner.matches(id, ifname) {
                fs::remove_file(&path)
                    .or_else(ignore_missing)
                    .map_err(|e| io_err("remove", &path, e))?;
            }
        }
        Ok(())
    }

    /// The addresses held by `id`/`ifname`.
    pub fn held_by(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        Ok(self
            .leases()?
            .into_iter()
            .filter(|(_, o)| o.matches(id, ifname))
            .filter_map(|(p, _)| p.file_name()?.to_str()?.parse().ok())
            .collect())
    }

    /// Frees the leases of attachments not in `valid`.
    pub fn gc(&self, valid: &[Attachment]) -> Result<usize, CniError> {
        if !self.dir.exists() {
            return Ok(0);
        }
        let _lock = self.lock()?;
        let mut freed = 0;
        for (path, owner) in self.leases()? {
            if !valid
                .iter()
                .any(|a| owner.matches(&a.container_id, &a.ifname))
            {
                fs::remove_file(&path)
                    .or_else(ignore_missing)
                    .map_err(|e| io_err("remove", &path, e))?;
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Every lease file (named by an address) with its owner.
    pub fn leases(&self) -> Result<Vec<(PathBuf, Owner)>, CniError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| io_err("list", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.parse::<IpAddr>().is_err() {
                continue;
            }
            let path = entry.path();
            let Ok(content) = fs::read_to_string(&path) else {
                continue;
            };
            out.push((path, Owner::parse(&content)));
        }
        Ok(out)
    }

    fn dns(&self) -> Dns {
        self.resolv_conf
            .as_deref()
            .and_then(|p| fs::read_to_string(p).ok())
            .map(|text| parse_resolv_conf(&text))
            .unwrap_or_default()
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Who holds a lease: `id\r\nifname`, or a bare id (files of old reference versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Container id.
    pub id: String,
    /// Interface name, when the file has one.
    pub ifname: Option<String>,
}

impl Owner {
    fn parse(content: &str) -> Self {
        let content = content.trim();
        match content
            .split_once("\r\n")
            .or_else(|| content.split_once('\n'))
        {
            Some((id, ifname)) => Self {
                id: id.trim().into(),
                ifname: Some(ifname.trim().into()),
            },
            None => Self {
                id: content.into(),
                ifname: None,
            },
        }
    }

    fn matches(&self, id: &str, ifname: &str) -> bool {
        self.id == id && self.ifname.as_deref().is_none_or(|i| i == ifname)
    }
}

fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(String::from)),
            Some("domain") => dns.domain = words.next().map(String::from),
            Some("search") => dns.search = words.map(String::from).collect(),
            Some("options") => dns.options.extend(words.map(String::from)),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(dir: &Path, ranges: serde_json::Value) -> HostLocal {
        HostLocal::parse(
            &serde_json::json!({"type": "host-local", "ranges": ranges, "dataDir": dir.to_str().unwrap(),
                "routes": [{"dst": "0.0.0.0/0"}]}),
            "net",
        )
        .unwrap()
    }

    #[test]
    fn last_reserved_is_rewritten_in_place_to_its_exact_text() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("last_reserved_ip.0");
        overwrite(&p, "10.66.0.100", 0).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "10.66.0.100");
        overwrite(&p, "10.66.0.9", 11).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "10.66.0.9");
        overwrite(&p, "10.66.0.10", 9).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "10.66.0.10");
    }

    #[test]
    fn allocates_like_the_reference() {
        let tmp = tempfile::tempdir().unwrap();
        let hl = conf(
            tmp.path(),
            serde_json::json!([[{"subnet": "10.66.0.0/29"}], [{"subnet": "fd00:66::/120"}]]),
        );
        let r = hl.add("abc", "net1", &[]).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.66.0.2/29");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.66.0.1");
        assert_eq!(r.ips[1].address.to_string(), "fd00:66::2/120");
        let dir = tmp.path().join("net");
        assert_eq!(fs::read(dir.join("10.66.0.2")).unwrap(), b"abc\r\nnet1");
        assert_eq!(
            fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(),
            "10.66.0.2"
        );
        assert_eq!(
            fs::read_to_string(dir.join("last_reserved_ip.1")).unwrap(),
            "fd00:66::2"
        );
        assert!(dir.join("lock").exists());
        // .2 .. .6 in a /29: five addresses; the sixth ADD fails and takes nothing.
        for i in 0..4 {
            hl.add(&format!("c{i}"), "net1", &[]).unwrap();
        }
        let err = hl.add("full", "net1", &[]).unwrap_err();
        assert_eq!(err.code, code::NO_ADDRESS);
        assert!(hl.held_by("full", "net1").unwrap().is_empty());
        hl.del("c1", "net1").unwrap();
        let r = hl.add("again", "net1", &[]).unwrap();
        assert_eq!(r.ips[0].address.addr.to_string(), "10.66.0.4");
        hl.del("abc", "net1").unwrap();
        hl.del("abc", "net1").unwrap();
        assert!(!dir.join("10.66.0.2").exists());
    }

    #[test]
    fn leases_are_private_and_a_damaged_last_reserved_is_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let hl = conf(
            tmp.path(),
            serde_json::json!([[{"subnet": "10.66.0.0/29"}]]),
        );
        let dir = tmp.path().join("net");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("last_reserved_ip.0"),
            b"\xff\xfe\xfd 10.66.0.9 garbage",
        )
        .unwrap();
        let r = hl.add("a", "net1", &[]).unwrap();
        assert_eq!(r.ips[0].address.addr.to_string(), "10.66.0.2");
        assert_eq!(
            fs::read(dir.join("last_reserved_ip.0")).unwrap(),
            b"10.66.0.2"
        );
        let mode = fs::metadata(dir.join("10.66.0.2"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "temporary files left: {names:?}");
    }

    #[test]
    fn requested_addresses_and_gc() {
        let tmp = tempfile::tempdir().unwrap();
        let hl = conf(
            tmp.path(),
            serde_json::json!([[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.20"}]]),
        );
        let r = hl
            .add("a", "eth0", &["10.0.0.15".parse().unwrap()])
            .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.15/24");
        assert_eq!(
            hl.add("b", "eth0", &["10.0.0.15".parse().unwrap()])
                .unwrap_err()
                .code,
            code::NO_ADDRESS
        );
        assert_eq!(
            hl.add("b", "eth0", &["10.0.1.15".parse().unwrap()])
                .unwrap_err()
                .code,
            code::NO_ADDRESS
        );
        hl.add("b", "eth0", &[]).unwrap();
        let freed = hl
            .gc(&[Attachment {
                container_id: "a".into(),
                ifname: "eth0".into(),
            }])
            .unwrap();
        assert_eq!(freed, 1);
        assert_eq!(hl.held_by("a", "eth0").unwrap().len(), 1);
    }

    #[test]
    fn bad_ranges_name_the_key() {
        for (ranges, key) in [
            (
                serde_json::json!([[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}]]),
                "rangeStart",
            ),
            (serde_json::json!([[{"subnet": "10.0.0.0/31"}]]), "subnet"),
            (serde_json::json!([[{"subnet": "10.0.0.0"}]]), "subnet"),
            (serde_json::json!([[]]), "ranges"),
            (
                serde_json::json!([[{"subnet": "0.0.0.0/0"}]]),
                "every address",
            ),
            (serde_json::json!([[{"subnet": "::/0"}]]), "every address"),
            (
                serde_json::json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.128/25"}]]),
                "overlaps range set 0",
            ),
        ] {
            let err = HostLocal::parse(
                &serde_json::json!({"type": "host-local", "ranges": ranges}),
                "n",
            )
            .unwrap_err();
            assert!(err.msg.contains(key), "{key}: {}", err.msg);
        }
        let err = HostLocal::parse(
            &serde_json::json!({"type": "host-local", "subnet": "10.0.0.0/24", "dataDir": "/var/lib/../../etc"}),
            "n",
        )
        .unwrap_err();
        assert!(err.msg.contains("dataDir"), "{}", err.msg);
    }
}
