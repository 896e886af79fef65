//! Helpers shared by the tests in this folder: scratch space on a file system that takes
//! O_DIRECT, running our `sanlock` and Debian's, loop devices, guard bytes, C daemons.
#![allow(dead_code)] // each test file uses a different part

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Our binary: the one cargo built for this test, or `$SANLOCK_UNDER_TEST` (the package check
/// runs the tests against the binary taken out of the Debian package).
pub fn ours() -> PathBuf {
    std::env::var_os("SANLOCK_UNDER_TEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sanlock")))
}

/// Debian's sanlock 3.8.5 (or `SANLOCK_C` if set), when it is installed and is 3.8.5.
pub fn c_sanlock() -> Option<PathBuf> {
    let path = std::env::var_os("SANLOCK_C")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/sanlock"));
    let out = Command::new(&path).arg("version").output().ok()?;
    (out.stdout == b"3.8.5\n").then_some(path)
}

/// Returns the C binary, or prints one line saying why the test is skipped and returns.
#[macro_export]
macro_rules! require_c_sanlock {
    () => {
        match common::c_sanlock() {
            Some(path) => path,
            None => {
                eprintln!("skipped: sanlock 3.8.5 is not installed (apt-get install sanlock)");
                return;
            }
        }
    };
}

/// Whether Debian's python3-sanlock binding imports under /usr/bin/python3.
pub fn python_sanlock_available() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import sanlock"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Returns from the test with a one-line reason when python3-sanlock is missing.
#[macro_export]
macro_rules! require_python_sanlock {
    () => {
        if !common::python_sanlock_available() {
            eprintln!(
                "skipped: python3-sanlock is not installed (apt-get install python3-sanlock)"
            );
            return;
        }
    };
}

/// Whether loop devices can be made here (root, losetup, a free device).
pub fn loop_devices_available() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root for loop devices".into());
    }
    match Command::new("losetup").arg("-f").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(_) => Err("no free loop device".into()),
        Err(_) => Err("losetup is not installed".into()),
    }
}

/// Returns from the test with a one-line reason when loop devices cannot be made.
#[macro_export]
macro_rules! require_loop_devices {
    () => {
        if let Err(why) = common::loop_devices_available() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A scratch folder under /var/tmp (tmpfs refuses O_DIRECT), removed when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A fresh folder whose name says which test made it.
    pub fn new(label: &str) -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!(
            "/var/tmp/sanlock-rs-tests/{label}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a scratch folder under /var/tmp");
        Scratch { dir }
    }

    /// A path inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What a run printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Runs `bin` with `args` (no shell), in `cwd` when given.
pub fn run<S: AsRef<OsStr>>(bin: &Path, args: &[S], cwd: Option<&Path>) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out
            .status
            .code()
            .unwrap_or(128 + out.status.signal_number()),
    }
}

trait SignalNumber {
    fn signal_number(&self) -> i32;
}

impl SignalNumber for std::process::ExitStatus {
    fn signal_number(&self) -> i32 {
        std::os::unix::process::ExitStatusExt::signal(self).unwrap_or(0)
    }
}

/// The byte sanlock's own tests use for guard areas.
pub const GUARD: u8 = b'X';
/// The size of a guard area.
pub const GUARD_SIZE: usize = 4096;

/// Makes a file of `size` bytes (zeros) followed by a guard area, as sanlock's tests do.
/// `text` with each whole number `pid` (not part of a longer number, such as an offset that
/// happens to contain its digits) replaced by `label`.
pub fn replace_pid(text: &str, pid: u32, label: &str) -> String {
    let needle = pid.to_string();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in text.match_indices(&needle) {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        let whole = !before.is_some_and(|b| b.is_ascii_digit())
            && !after.is_some_and(|b| b.is_ascii_digit());
        if whole && i >= last {
            out.push_str(&text[last..i]);
            out.push_str(label);
            last = i + needle.len();
        }
    }
    out.push_str(&text[last..]);
    out
}

pub fn create_file(path: &Path, size: u64) {
    let f = fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    write_guard(path, size);
}

/// Fills `GUARD_SIZE` bytes at `offset` with the guard byte.
pub fn write_guard(path: &Path, offset: u64) {
    fill(path, offset, GUARD_SIZE, GUARD);
}

/// Asserts the guard area at `offset` is untouched.
pub fn check_guard(path: &Path, offset: u64) {
    assert_eq!(
        read_at(path, offset, GUARD_SIZE),
        vec![GUARD; GUARD_SIZE],
        "guard at {offset} of {} was overwritten",
        path.display()
    );
}

/// Writes `len` copies of `byte` at `offset`.
pub fn fill(path: &Path, offset: u64, len: usize, byte: u8) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&vec![byte; len]).unwrap();
}

/// Reads `len` bytes at `offset` (through the page cache; our writes are O_DIRECT|O_SYNC, so
/// they are visible).
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// The whole content of a file or device.
pub fn read_all(path: &Path) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    buf
}

/// Index of the first differing byte, for readable failures.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Asserts two byte strings are equal, naming the first difference instead of printing them.
#[track_caller]
pub fn assert_same_bytes(left: &[u8], right: &[u8], what: &str) {
    if let Some(at) = first_difference(left, right) {
        panic!(
            "{what}: first difference at byte {at} (sector {} of 512, {} of 4096); \
             lengths {} and {}; bytes there {:02x?} vs {:02x?}",
            at / 512,
            at / 4096,
            left.len(),
            right.len(),
            &left[at.min(left.len())..(at + 16).min(left.len())],
            &right[at.min(right.len())..(at + 16).min(right.len())],
        );
    }
}

/// A loop device over a backing file, detached when dropped.
pub struct LoopDevice {
    pub device: PathBuf,
}

impl LoopDevice {
    /// Attaches `backing` with the given logical sector size.
    pub fn attach(backing: &Path, sector_size: u32) -> LoopDevice {
        LoopDevice::attach_with(backing, sector_size, &[])
    }

    /// Attaches `backing` read-only (`losetup -r`).
    pub fn attach_read_only(backing: &Path, sector_size: u32) -> LoopDevice {
        LoopDevice::attach_with(backing, sector_size, &["--read-only"])
    }

    fn attach_with(backing: &Path, sector_size: u32, extra: &[&str]) -> LoopDevice {
        let out = Command::new("losetup")
            .args(extra)
            .args(["--find", "--show", "--sector-size"])
            .arg(sector_size.to_string())
            .arg(backing)
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(fs::metadata(&device).unwrap().file_type().is_block_device());
        LoopDevice { device }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

/// `sanlock client ARGS` with our binary, against the daemon of `run_dir`.
pub fn client_at(run_dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(ours())
        .arg("client")
        .args(args)
        .env("SANLOCK_RUN_DIR", run_dir)
        .output()
        .unwrap();
    Run::of(out)
}

impl Run {
    /// What a finished command printed and its exit status (-1 if a signal ended it).
    pub fn of(out: std::process::Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }
}

/// Returns once the daemon of `run_dir` accepts connections; panics after `within`.
pub fn wait_for_socket(run_dir: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while std::os::unix::net::UnixStream::connect(run_dir.join("sanlock.sock")).is_err() {
        assert!(
            Instant::now() < deadline,
            "no daemon at {}",
            run_dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process holding `res` on the daemon of `run_dir` (`client command -r res -c /bin/sh -c
/// script`), returned once the daemon lists it as held.
pub fn hold_with_script(run_dir: &Path, res: &str, script: &str) -> Child {
    let child = Command::new(ours())
        .args([
            "client", "command", "-r", res, "-c", "/bin/sh", "-c", script,
        ])
        .env("SANLOCK_RUN_DIR", run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = format!(" p {}", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client_at(run_dir, &["status"])
        .stdout
        .lines()
        .any(|l| l.starts_with("r ") && l.ends_with(&held))
    {
        assert!(Instant::now() < deadline, "{res} never held");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Waits for `child` to exit: when (seconds after `t0`) and by which signal.
pub fn exit_time(child: &mut Child, t0: Instant, limit: Duration) -> (f64, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (t0.elapsed().as_secs_f64(), status.signal());
        }
        assert!(t0.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A sanlock daemon (the C one, or ours: any binary) acting as one host: its own run directory
/// and host name, no watchdog, unprivileged. Killed (with everything it started) when dropped.
pub struct CDaemon {
    bin: PathBuf,
    run_dir: PathBuf,
    daemon: Child,
    holders: Vec<(String, Child)>,
}

impl CDaemon {
    /// Starts `sanlock daemon` as host `name` with its run directory under `scratch`.
    pub fn start(bin: &Path, scratch: &Scratch, name: &str) -> CDaemon {
        Self::start_with(bin, scratch, name, &["-w", "0"])
    }

    /// As [`CDaemon::start`], with `options` (e.g. `-w 1`) instead of `-w 0`.
    pub fn start_with(bin: &Path, scratch: &Scratch, name: &str, options: &[&str]) -> CDaemon {
        Self::start_with_env(bin, scratch, name, options, &[])
    }

    /// As [`CDaemon::start_with`], with more environment variables for the daemon.
    pub fn start_with_env(
        bin: &Path,
        scratch: &Scratch,
        name: &str,
        options: &[&str],
        env: &[(&str, &Path)],
    ) -> CDaemon {
        let run_dir = scratch.path(&format!("run-{name}"));
        fs::create_dir_all(&run_dir).unwrap();
        let daemon = Command::new(bin)
            .args(["daemon", "-D"])
            .args(options)
            .args(["-l", "0", "-h", "0", "-U", "root", "-G", "root", "-e", name])
            .env("SANLOCK_RUN_DIR", &run_dir)
            .env("SANLOCK_PRIVILEGED", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(fs::File::create(run_dir.join("daemon.log")).unwrap())
            .spawn()
            .expect("start the C sanlock daemon");
        let socket = run_dir.join("sanlock.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "C daemon {name} made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        CDaemon {
            bin: bin.to_path_buf(),
            run_dir,
            daemon,
            holders: Vec::new(),
        }
    }

    /// Its run directory (SANLOCK_RUN_DIR for clients).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.daemon.id()
    }

    /// `sanlock client ARGS` against this daemon.
    pub fn client(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.bin)
            .arg("client")
            .args(args)
            .env("SANLOCK_RUN_DIR", &self.run_dir)
            .output()
            .unwrap();
        Run::of(out)
    }

    /// Makes a process hold RES (`client command -r RES -c /bin/sleep 600`) and returns once
    /// the daemon lists it as held. An acquire that loses a race with another host's (the
    /// process exits) is tried again, for up to a minute.
    pub fn hold(&mut self, resource: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = Command::new(&self.bin)
                .args([
                    "client",
                    "command",
                    "-r",
                    resource,
                    "-c",
                    "/bin/sleep",
                    "600",
                ])
                .env("SANLOCK_RUN_DIR", &self.run_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let held = format!(" p {}", child.id());
            loop {
                let status = self.client(&["status"]);
                if status
                    .stdout
                    .lines()
                    .any(|l| l.starts_with("r ") && l.ends_with(&held))
                {
                    self.holders.push((resource.to_string(), child));
                    return;
                }
                if child.try_wait().unwrap().is_some() {
                    break; // the acquire failed; try again
                }
                assert!(
                    Instant::now() < deadline,
                    "{resource} was never held: {status:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            assert!(Instant::now() < deadline, "{resource} was never held");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl CDaemon {
    /// Ends the processes holding `resource` (their leases are released as they exit) and
    /// waits until the daemon no longer lists it.
    pub fn release_holders(&mut self, resource: &str) {
        let mut pids = Vec::new();
        self.holders.retain_mut(|(r, child)| {
            if r != resource {
                return true;
            }
            let _ = child.kill();
            let _ = child.wait();
            pids.push(child.id());
            false
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.client(&["status"]).stdout;
            let held = status.lines().any(|l| {
                l.starts_with("r ") && pids.iter().any(|p| l.ends_with(&format!(" p {p}")))
            });
            if !held {
                return;
            }
            assert!(Instant::now() < deadline, "{resource} still held: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of the `i`th holder started by [`CDaemon::hold`].
    pub fn holder_pid(&self, i: usize) -> u32 {
        self.holders[i].1.id()
    }

    /// SIGKILL for the daemon and its holders, as a host that dies at once.
    pub fn kill_all(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        for (_, h) in &mut self.holders {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

/// Three 2 MiB files under `scratch` for a lease on three disks, and the RESOURCE string
/// `LS:R:d1:0:d2:0:d3:0` naming them.
pub fn three_disk_files(scratch: &Scratch) -> ([PathBuf; 3], String) {
    let disks = ["d1", "d2", "d3"].map(|d| scratch.path(d));
    for d in &disks {
        create_file(d, 2 << 20);
    }
    let res = format!(
        "LS:R:{}:0:{}:0:{}:0",
        disks[0].display(),
        disks[1].display(),
        disks[2].display()
    );
    (disks, res)
}

/// `client command -r RES -c /bin/true` on `d`: the acquire's result line.
pub fn try_acquire(bin: &Path, d: &CDaemon, res: &str) -> String {
    let out = Command::new(bin)
        .args(["client", "command", "-r", res, "-c", "/bin/true"])
        .env("SANLOCK_RUN_DIR", d.run_dir())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    // The C tool's buffered stdout is lost at exec (wire.md §6.2): success shows as /bin/true's
    // exit status.
    match String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("acquire done"))
    {
        Some(line) => line.to_string(),
        None if out.status.success() => "acquire done 0".to_string(),
        None => format!("no acquire line, exit {:?}", out.status.code()),
    }
}

impl Drop for CDaemon {
    fn drop(&mut self) {
        for (_, h) in &mut self.holders {
            let _ = h.kill();
            let _ = h.wait();
        }
        // A daemon holding a lockspace ignores SIGTERM; these hosts are throwaway.
        let pid = self.daemon.id().to_string();
        let _ = Command::new("pkill").args(["-9", "-P", &pid]).status();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// An nfs-ganesha server on 127.0.0.1 exporting a scratch folder over NFSv3 (TCP), on ports of
/// its own; stopped when dropped. Needs root, ganesha.nfsd and rpcbind (started if absent:
/// ganesha will not serve without registering).
pub struct Ganesha {
    pub export: PathBuf,
    pub mount_port: u16,
    pub nfs_port: u16,
    child: Child,
}

impl Ganesha {
    /// Why a server cannot be started here, if it cannot.
    pub fn unavailable() -> Option<String> {
        if !rustix::process::geteuid().is_root() {
            return Some("needs root for nfs-ganesha".into());
        }
        for bin in ["/usr/bin/ganesha.nfsd", "/usr/sbin/rpcbind"] {
            if !Path::new(bin).exists() {
                return Some(format!(
                    "{bin} is not installed (apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind)"
                ));
            }
        }
        None
    }

    /// Starts a server exporting `scratch`'s folder `export`, and waits until it answers.
    pub fn start(scratch: &Scratch) -> Ganesha {
        Ganesha::start_with(scratch, "RW")
    }

    /// The same, exported read-only.
    pub fn start_read_only(scratch: &Scratch) -> Ganesha {
        Ganesha::start_with(scratch, "RO")
    }

    fn start_with(scratch: &Scratch, access: &str) -> Ganesha {
        if std::net::TcpStream::connect("127.0.0.1:111").is_err() {
            let status = Command::new("/usr/sbin/rpcbind")
                .arg("-w")
                .status()
                .unwrap();
            assert!(status.success(), "rpcbind did not start");
        }
        let export = scratch.path("export");
        fs::create_dir_all(&export).unwrap();
        // Ports of our own, so that servers of earlier runs do not answer for this one.
        let base = 21000 + (std::process::id() % 400) as u16 * 4 + {
            static N: AtomicUsize = AtomicUsize::new(0);
            (N.fetch_add(1, Ordering::Relaxed) % 4) as u16 * 1600
        };
        let (nfs_port, mount_port) = (base, base + 1);
        let conf = scratch.path("ganesha.conf");
        fs::write(
            &conf,
            format!(
                "NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = {nfs_port}; MNT_Port = {mount_port};
    NLM_Port = {}; Rquota_Port = {}; Bind_addr = 127.0.0.1;
    Enable_NLM = false; Enable_RQUOTA = false; }}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{ Export_Id = 1; Path = {p}; Pseudo = {p}; Access_Type = {access};
    Squash = No_Root_Squash; Protocols = 3; Transports = TCP; SecType = sys;
    FSAL {{ Name = VFS; }} }}
",
                base + 2,
                base + 3,
                p = export.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/ganesha.nfsd")
            .arg("-F")
            .arg("-L")
            .arg(scratch.path("ganesha.log"))
            .arg("-f")
            .arg(&conf)
            .arg("-p")
            .arg(scratch.path("ganesha.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ganesha.nfsd");
        let g = Ganesha {
            export,
            mount_port,
            nfs_port,
            child,
        };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", mount_port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "ganesha did not listen on {mount_port}: {}",
                fs::read_to_string(scratch.path("ganesha.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }

    /// SIGSTOP: the server hangs, as a stalled NFS server does. Returns once every thread of
    /// it is stopped (a thread busy on another CPU may finish its request first).
    pub fn stop(&self) {
        self.signal(rustix::process::Signal::STOP);
        let tasks = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        let stopped = || {
            fs::read_dir(&tasks).unwrap().all(|t| {
                let stat = fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
                // The state follows the command name in parentheses.
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                state.starts_with('T') || state.starts_with('t')
            })
        };
        let t0 = Instant::now();
        while !stopped() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "ganesha did not stop"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sequence(cli, run_dir, dir)` four ways at once, each on a fresh daemon: the C CLI on
/// the C daemon (the reference), the C CLI on ours, ours on ours, ours on the C daemon. Panics
/// with the first differing lines unless all four transcripts are equal; returns the
/// reference. With `$SANLOCK_RS_TRANSCRIPTS` set, each transcript is also written there.
#[allow(dead_code)]
pub fn four_ways(c: &Path, label: &str, sequence: fn(&Path, &Path, &Path) -> String) -> String {
    let ours = ours();
    let combos = [
        (c, c, "C client, C daemon"),
        (c, ours.as_path(), "C client, our daemon"),
        (ours.as_path(), ours.as_path(), "our client, our daemon"),
        (ours.as_path(), c, "our client, C daemon"),
    ];
    let transcripts: Vec<(&str, String)> = std::thread::scope(|s| {
        let runs: Vec<_> = combos
            .iter()
            .map(|&(cli, daemon, name)| {
                s.spawn(move || {
                    let scratch = Scratch::new(label);
                    let host = CDaemon::start(daemon, &scratch, "host");
                    (name, sequence(cli, host.run_dir(), scratch.dir()))
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    if let Some(dir) = std::env::var_os("SANLOCK_RS_TRANSCRIPTS") {
        for (name, t) in &transcripts {
            let file = format!("{label}-{}", name.replace([' ', ','], "_"));
            fs::write(Path::new(&dir).join(file), t).unwrap();
        }
    }
    let (_, reference) = &transcripts[0];
    for (name, t) in &transcripts[1..] {
        if t != reference {
            let diff: Vec<String> = reference
                .lines()
                .zip(t.lines())
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("  C: {a}\n  {name}: {b}"))
                .take(12)
                .collect();
            panic!(
                "{name} differs from the C tools:\n{}\n--- full ---\n{t}",
                diff.join("\n")
            );
        }
    }
    reference.clone()
}

/// A `status` line of an unregistered connection other than the status request itself, such
/// as `p -1 cmd12`: 3.8.5 lists a closed CLI connection until its poll loop frees the slot, so
/// whether an earlier command's connection still shows is a race in the C daemon.
#[allow(dead_code)]
pub fn transient_client_line(line: &str) -> bool {
    line.strip_prefix("p -1 ")
        .is_some_and(|name| !matches!(name, "helper" | "listener" | "status"))
}

/// A transcript line with what varies from run to run masked: the value after `timestamp`;
/// `None` for a line to drop ([`transient_client_line`]).
#[allow(dead_code)]
pub fn mask_line(line: &str) -> Option<String> {
    if transient_client_line(line) {
        return None;
    }
    let mut words: Vec<&str> = line.split(' ').collect();
    for i in 1..words.len() {
        if words[i - 1] == "timestamp" {
            words[i] = "T";
        }
    }
    Some(words.join(" "))
}

/// A killpath program for tests: `kp.sh` in the scratch folder appends its arguments, one run
/// per line, to `killpath-ran`. Returns (the record, the program).
#[allow(dead_code)]
pub fn killpath_recorder(scratch: &Scratch) -> (PathBuf, PathBuf) {
    let record = scratch.path("killpath-ran");
    let program = scratch.path("kp.sh");
    fs::write(
        &program,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", record.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    (record, program)
}

/// The first line a child prints on its piped stdout (its "ready" line), trimmed.
#[allow(dead_code)]
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout piped")),
        &mut line,
    )
    .unwrap();
    line.trim().to_string()
}

/// A python process on `d` registered for LS's events (python3-sanlock's reg_event): it
/// prints the first event it gets within 30 s, as the seconds from its "ready" line to it,
/// from_host_id, host_id, event and data, and ends.
pub fn python_listener(d: &CDaemon) -> (Child, std::io::BufReader<std::process::ChildStdout>) {
    let script = "import sanlock, select, time\nfd = sanlock.reg_event(b'LS')\n\
                  print('ready', flush=True)\nt0 = time.monotonic()\n\
                  while time.monotonic() - t0 < 30:\n\
                  \x20   r, _, _ = select.select([fd], [], [], 1)\n\
                  \x20   if r:\n\
                  \x20       evs = sanlock.get_event(fd)\n\
                  \x20       if evs:\n\
                  \x20           e = evs[0]\n\
                  \x20           print('%.2f' % (time.monotonic() - t0), e['from_host_id'], \
                  e['host_id'], e['event'], e['data'], flush=True)\n\
                  \x20           break\n\
                  sanlock.end_event(fd, b'LS')\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .env("SANLOCK_RUN_DIR", d.run_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (child, out)
}
