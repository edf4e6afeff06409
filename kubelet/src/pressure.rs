//! Node pressure from the host, as the kubelet's eviction manager computes
//! the MemoryPressure, DiskPressure and PIDPressure conditions: eviction
//! signals (`memory.available` from `/proc/meminfo`'s MemAvailable,
//! `nodefs.available` and `nodefs.inodesFree` from statvfs of the data
//! directory, `pid.available` from `pid_max` minus the running tasks)
//! compared with hard thresholds, Kubernetes' defaults unless configured:
//! `memory.available<100Mi`, `nodefs.available<10%`,
//! `nodefs.inodesFree<5%`, and no PID threshold (Kubernetes sets none).

use std::path::Path;

/// One threshold: an absolute quantity or a fraction of the capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Quantity(u64),
    Percentage(f64),
}

impl Threshold {
    /// Whether `available` out of `capacity` is below the threshold.
    pub fn crossed(&self, available: u64, capacity: u64) -> bool {
        match *self {
            Threshold::Quantity(q) => available < q,
            Threshold::Percentage(p) => (available as f64) < capacity as f64 * p,
        }
    }
}

/// Hard eviction thresholds (`evictionHard`).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub memory_available: Option<Threshold>,
    pub nodefs_available: Option<Threshold>,
    pub nodefs_inodes_free: Option<Threshold>,
    pub pid_available: Option<Threshold>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            memory_available: Some(Threshold::Quantity(100 * 1024 * 1024)),
            nodefs_available: Some(Threshold::Percentage(0.10)),
            nodefs_inodes_free: Some(Threshold::Percentage(0.05)),
            pid_available: None,
        }
    }
}

/// The observed signals: (available, capacity) pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    pub memory: (u64, u64),
    pub nodefs: (u64, u64),
    pub inodes: (u64, u64),
    pub pids: (u64, u64),
}

/// Which pressure conditions hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// The conditions the signals put the node in.
pub fn evaluate(signals: &Signals, thresholds: &Thresholds) -> Pressure {
    let crossed = |t: &Option<Threshold>, (available, capacity): (u64, u64)| {
        t.as_ref()
            .is_some_and(|t| capacity > 0 && t.crossed(available, capacity))
    };
    Pressure {
        memory: crossed(&thresholds.memory_available, signals.memory),
        disk: crossed(&thresholds.nodefs_available, signals.nodefs)
            || crossed(&thresholds.nodefs_inodes_free, signals.inodes),
        pid: crossed(&thresholds.pid_available, signals.pids),
    }
}

/// `MemAvailable` and `MemTotal` of a `/proc/meminfo` text, in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    Some((field("MemAvailable:")?, field("MemTotal:")?))
}

/// Running tasks from `/proc/loadavg` (`0.1 0.2 0.3 2/345 678`).
pub fn parse_loadavg_tasks(text: &str) -> Option<u64> {
    text.split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// Reads the signals of the running host; `data_dir` is the node's
/// filesystem. Signals that cannot be read report no pressure.
pub fn read_signals(data_dir: &Path) -> Signals {
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .unwrap_or_default();
    let (nodefs, inodes) = nix::sys::statvfs::statvfs(data_dir)
        .map(|v| {
            let block = v.fragment_size();
            (
                (v.blocks_available() * block, v.blocks() * block),
                (v.files_available(), v.files()),
            )
        })
        .unwrap_or_default();
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let tasks = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| parse_loadavg_tasks(&t))
        .unwrap_or(0);
    Signals {
        memory,
        nodefs,
        inodes,
        pids: (pid_max.saturating_sub(tasks), pid_max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_follow_kubernetes_defaults() {
        let gib = 1u64 << 30;
        let calm = Signals {
            memory: (2 * gib, 4 * gib),
            nodefs: (50 * gib, 100 * gib),
            inodes: (900, 1000),
            pids: (30_000, 32_768),
        };
        let t = Thresholds::default();
        assert_eq!(evaluate(&calm, &t), Pressure::default());
        let low_memory = Signals {
            memory: (99 << 20, 4 * gib),
            ..calm
        };
        assert!(evaluate(&low_memory, &t).memory);
        let full_disk = Signals {
            nodefs: (9 * gib, 100 * gib),
            ..calm
        };
        assert!(evaluate(&full_disk, &t).disk);
        let no_inodes = Signals {
            inodes: (40, 1000),
            ..calm
        };
        assert!(evaluate(&no_inodes, &t).disk);
        let few_pids = Signals {
            pids: (10, 32_768),
            ..calm
        };
        assert!(!evaluate(&few_pids, &t).pid, "no PID threshold by default");
        let with_pid = Thresholds {
            pid_available: Some(Threshold::Percentage(0.05)),
            ..Thresholds::default()
        };
        assert!(evaluate(&few_pids, &with_pid).pid);
        assert_eq!(
            evaluate(&Signals::default(), &t),
            Pressure::default(),
            "unreadable signals report no pressure"
        );
    }

    #[test]
    fn host_files_parse() {
        let meminfo =
            "MemTotal:        4028440 kB\nMemFree:          123 kB\nMemAvailable:    2014220 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some((2014220 * 1024, 4028440 * 1024))
        );
        assert_eq!(parse_loadavg_tasks("0.52 0.58 0.59 3/467 12345"), Some(467));
        let here = read_signals(Path::new("/"));
        assert!(here.memory.1 > 0 && here.nodefs.1 > 0 && here.pids.1 > 0);
    }
}
