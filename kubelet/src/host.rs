//! Facts about the host the Node object reports: capacity (cpu, memory,
//! ephemeral storage, pods), addresses and `nodeInfo`. Parsing is pure so
//! it can be tested on fixed `/proc` text; reading the host is one call.

use std::collections::BTreeMap;
use std::net::{IpAddr, UdpSocket};
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The kubelet's default `--max-pods`.
pub const MAX_PODS: u32 = 110;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot statvfs {path}: {source}")]
    Statvfs {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("{path} has no MemTotal line")]
    NoMemTotal { path: String },
}

/// What the node reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    pub cpus: usize,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub hostname: String,
    pub internal_ip: Option<IpAddr>,
    pub kernel_version: String,
    pub os_image: String,
    pub architecture: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl HostFacts {
    /// Reads the running host; `data_dir` is where ephemeral storage lives.
    pub fn read(data_dir: &Path) -> Result<HostFacts, HostError> {
        let meminfo = read("/proc/meminfo")?;
        let memory_bytes = parse_mem_total(&meminfo).ok_or(HostError::NoMemTotal {
            path: "/proc/meminfo".into(),
        })?;
        let vfs = nix::sys::statvfs::statvfs(data_dir).map_err(|source| HostError::Statvfs {
            path: data_dir.display().to_string(),
            source,
        })?;
        let uname = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uname
                .as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Ok(HostFacts {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            ephemeral_storage_bytes: vfs.blocks() as u64 * vfs.fragment_size() as u64,
            hostname: field(|u| u.nodename()),
            internal_ip: outbound_ip(),
            kernel_version: field(|u| u.release()),
            os_image: read("/etc/os-release")
                .ok()
                .and_then(|text| parse_pretty_name(&text))
                .unwrap_or_else(|| "Linux".into()),
            architecture: go_arch(std::env::consts::ARCH).into(),
            machine_id: read("/etc/machine-id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            boot_id: read("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        })
    }

    /// Capacity as the kubelet reports it; allocatable is the same since we
    /// reserve nothing for the system (no `--kube-reserved`).
    pub fn capacity(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".into(), Quantity(self.cpus.to_string())),
            (
                "memory".into(),
                Quantity(format!("{}Ki", self.memory_bytes / 1024)),
            ),
            (
                "ephemeral-storage".into(),
                Quantity(format!("{}Ki", self.ephemeral_storage_bytes / 1024)),
            ),
            ("pods".into(), Quantity(MAX_PODS.to_string())),
        ])
    }
}

fn read(path: &str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Io {
        path: path.into(),
        source,
    })
}

/// `MemTotal:  16318412 kB` → bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    })
}

/// `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"` → the quoted value.
pub fn parse_pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim_matches('"').to_string())
    })
}

/// Kubernetes reports GOARCH names.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The address the host would use to reach the outside: connecting a UDP
/// socket sends nothing but picks the route's source address.
pub fn outbound_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:1").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_kibibytes() {
        let text = "MemTotal:       16318412 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total(text), Some(16318412 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn pretty_name_drops_its_quotes() {
        let text = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn architectures_use_go_names() {
        for (rust, go) in [
            ("x86_64", "amd64"),
            ("aarch64", "arm64"),
            ("riscv64", "riscv64"),
        ] {
            assert_eq!(go_arch(rust), go);
        }
    }

    #[test]
    fn capacity_reports_memory_in_kibibytes_and_110_pods() {
        let facts = HostFacts {
            cpus: 2,
            memory_bytes: 2048 * 1024,
            ephemeral_storage_bytes: 4096,
            hostname: "h".into(),
            internal_ip: None,
            kernel_version: String::new(),
            os_image: String::new(),
            architecture: "amd64".into(),
            machine_id: String::new(),
            boot_id: String::new(),
        };
        let cap = facts.capacity();
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "2048Ki");
        assert_eq!(cap["ephemeral-storage"].0, "4Ki");
        assert_eq!(cap["pods"].0, "110");
    }
}
