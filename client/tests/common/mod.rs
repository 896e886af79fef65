//! What the client crate's tests share: scratch folders, daemons as hosts (ours or sanlock
//! 3.8.5's), and where cargo put the workspace's `sanlock` and this crate's examples.
#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sanlock_client::Client;

/// A folder under /var/tmp (O_DIRECT works there, not on tmpfs), removed at the end.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let dir = PathBuf::from(format!(
            "/var/tmp/sanlock-rs-tests/client-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A file of `size` bytes in it.
    pub fn file(&self, name: &str, size: u64) -> PathBuf {
        let path = self.0.join(name);
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon as host `name`, with its run directory in a scratch folder; killed when dropped.
pub struct Daemon {
    child: Child,
    pub run_dir: PathBuf,
}

impl Daemon {
    pub fn start(bin: &Path, scratch: &Scratch, name: &str) -> Daemon {
        let run_dir = scratch.0.join(format!("run-{name}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let child = Command::new(bin)
            .args(["daemon", "-D", "-w", "0", "-l", "0", "-h", "0"])
            .args(["-U", "root", "-G", "root", "-e", name])
            .env("SANLOCK_RUN_DIR", &run_dir)
            .env("SANLOCK_PRIVILEGED", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run_dir.join("sanlock.sock").exists() {
            let bin = bin.display();
            assert!(Instant::now() < deadline, "{bin} made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child, run_dir }
    }

    pub fn client(&self) -> Client {
        Client::at(self.run_dir.join("sanlock.sock"))
    }

    /// Example `name` of this crate, to run with this daemon's run directory.
    pub fn example(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(examples_dir().join(name));
        cmd.args(args).env("SANLOCK_RUN_DIR", &self.run_dir);
        cmd
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where cargo put this crate's examples: beside the tests' own folder.
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

/// The workspace's `sanlock`, built beside the tests by `cargo test --workspace`.
pub fn ours() -> Option<PathBuf> {
    let bin = examples_dir().parent().unwrap().join("sanlock");
    bin.exists().then_some(bin)
}

/// Debian's sanlock, when it is installed and is 3.8.5.
pub fn c_sanlock() -> Option<PathBuf> {
    let out = Command::new("/usr/sbin/sanlock")
        .arg("version")
        .output()
        .ok()?;
    (out.stdout == b"3.8.5\n").then(|| PathBuf::from("/usr/sbin/sanlock"))
}
