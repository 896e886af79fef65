//! What the kernel says about a daemon: CPU time, bytes it read from storage, resident memory.

use std::time::Duration;

/// A reading of one process's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reading {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Bytes the process caused to be read from storage (`read_bytes` of /proc/PID/io; O_DIRECT
    /// reads count, page-cache hits do not).
    pub read_bytes: u64,
    /// Resident set, bytes.
    pub rss: u64,
}

/// CPU time on each live thread, in nanoseconds (`/proc/PID/task/TID/schedstat`): the stat
/// counters tick at 10 ms, too coarse for a daemon that idles at a fraction of a percent.
pub fn thread_cpu(pid: u32) -> Result<std::collections::BTreeMap<u32, u64>, String> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may exit between the listing and the read: it is left out.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text.split_whitespace().next().and_then(|f| f.parse().ok()) {
            threads.insert(tid, ns);
        }
    }
    Ok(threads)
}

/// The CPU time spent between two [`thread_cpu`] readings, when every thread of the first is
/// still there (else `None`: an exited thread's time is lost to this count).
pub fn cpu_between(
    before: &std::collections::BTreeMap<u32, u64>,
    after: &std::collections::BTreeMap<u32, u64>,
) -> Option<Duration> {
    let mut ns = 0;
    for (tid, &after_ns) in after {
        ns += after_ns - before.get(tid).copied().unwrap_or(0);
    }
    before
        .keys()
        .all(|tid| after.contains_key(tid))
        .then(|| Duration::from_nanos(ns))
}

/// Reads `pid`'s counters now.
pub fn read(pid: u32) -> Result<Reading, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').ok_or("bad stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    let hz = rustix::param::clock_ticks_per_second();
    let cpu = Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / hz as f64);
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).map_err(|e| e.to_string())?;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    Ok(Reading {
        cpu,
        read_bytes: field(&io, "read_bytes:").unwrap_or(0),
        rss: field(&status, "VmRSS:").unwrap_or(0) * 1024,
    })
}

fn field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}
