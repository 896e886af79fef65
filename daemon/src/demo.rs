//! `sanlock demo`: two hosts (two of our daemons, each with its own run directory) on a fresh
//! file-backed lockspace in a temporary directory, io_timeout 1, walked through sanlock(8)'s
//! example: init, join, exclusive and shared acquire, contention, release; then one host is
//! killed and the other takes its lease once host_dead_seconds have passed. Every step prints
//! the command a user would type and what it printed, on a timeline; waits show the seconds
//! left. Everything it made is removed at the end.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// io_timeout of the demo lockspace.
const IO_TIMEOUT_S: u64 = 1;
/// host_dead_seconds = 8 × io_timeout + 60 (algorithms.md §2.1).
const HOST_DEAD_S: u64 = 8 * IO_TIMEOUT_S + 60;

/// Runs the demo; returns the exit status.
pub fn run() -> i32 {
    let mut demo = match Demo::new() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sanlock demo: {e}");
            return 1;
        }
    };
    let result = demo.walk();
    demo.clean_up();
    match result {
        Ok(()) => {
            demo.say("done: every step behaved as sanlock's; the temporary files are removed");
            0
        }
        Err(e) => {
            eprintln!("sanlock demo failed: {e}");
            1
        }
    }
}

struct Host {
    name: &'static str,
    host_id: u32,
    run_dir: PathBuf,
    daemon: Option<Child>,
    holders: Vec<Child>,
}

struct Demo {
    exe: PathBuf,
    dir: PathBuf,
    start: Instant,
    hosts: [Host; 2],
}

impl Demo {
    fn new() -> Result<Demo, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        // /var/tmp, not /tmp: leases need O_DIRECT, which tmpfs refuses.
        let dir = PathBuf::from(format!("/var/tmp/sanlock-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let host = |name, host_id| Host {
            name,
            host_id,
            run_dir: dir.join(format!("run-{name}")),
            daemon: None,
            holders: Vec::new(),
        };
        Ok(Demo {
            exe,
            hosts: [host("host1", 1), host("host2", 2)],
            dir,
            start: Instant::now(),
        })
    }

    fn say(&self, text: &str) {
        println!("[{:6.2} s] {text}", self.start.elapsed().as_secs_f64());
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn lockspace(&self, host_id: u32) -> String {
        format!("LS:{host_id}:{}:0", self.path("lockspace"))
    }

    fn resource(&self, name: &str, offset: &str, suffix: &str) -> String {
        format!("LS:{name}:{}:{offset}{suffix}", self.path("leases"))
    }

    /// Runs `sanlock ARGS` (against host `h`'s daemon when given), printing the command and
    /// its output; returns stdout and the exit status.
    fn sanlock(&self, h: Option<usize>, args: &[&str]) -> Result<(String, i32), String> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args);
        let label = match h {
            Some(i) => {
                cmd.env("SANLOCK_RUN_DIR", &self.hosts[i].run_dir);
                format!("{}$ sanlock {}", self.hosts[i].name, args.join(" "))
            }
            None => format!("$ sanlock {}", args.join(" ")),
        };
        self.say(&label.replace(&self.dir.display().to_string(), "$DIR"));
        let out = cmd.output().map_err(|e| format!("run sanlock: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in text.lines() {
            println!(
                "            {}",
                line.replace(&self.dir.display().to_string(), "$DIR")
            );
        }
        Ok((text, out.status.code().unwrap_or(-1)))
    }

    fn expect(&self, h: Option<usize>, args: &[&str], want: &str) -> Result<String, String> {
        let (out, _) = self.sanlock(h, args)?;
        if out.contains(want) {
            Ok(out)
        } else {
            Err(format!(
                "expected `{want}` from `sanlock {}`",
                args.join(" ")
            ))
        }
    }

    fn start_daemon(&mut self, i: usize) -> Result<(), String> {
        let h = &self.hosts[i];
        std::fs::create_dir_all(&h.run_dir).map_err(|e| e.to_string())?;
        self.say(&format!(
            "{}: start a daemon (run dir $DIR/run-{0}, no watchdog)",
            h.name
        ));
        let child = Command::new(&self.exe)
            .args(["daemon", "-D", "-w", "0", "-e", h.name])
            .env("SANLOCK_RUN_DIR", &h.run_dir)
            .env("SANLOCK_PRIVILEGED", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the daemon: {e}"))?;
        let socket = h.run_dir.join("sanlock.sock");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{} did not start", h.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.hosts[i].daemon = Some(child);
        Ok(())
    }

    /// A process on host `i` that holds `res` (`client command … -c /bin/sleep`).
    fn hold(&mut self, i: usize, res: &str) -> Result<u32, String> {
        let h = &self.hosts[i];
        self.say(&format!(
            "{}$ sanlock client command -r {} -c /bin/sleep 3600 &",
            h.name,
            res.replace(&self.dir.display().to_string(), "$DIR")
        ));
        let child = Command::new(&self.exe)
            .args(["client", "command", "-r", res, "-c", "/bin/sleep", "3600"])
            .env("SANLOCK_RUN_DIR", &h.run_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let pid = child.id();
        self.hosts[i].holders.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new(&self.exe)
                .args(["client", "status"])
                .env("SANLOCK_RUN_DIR", &self.hosts[i].run_dir)
                .output()
                .map_err(|e| e.to_string())?;
            if String::from_utf8_lossy(&out.stdout).contains(&format!(" p {pid}")) {
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(format!("{res} was not acquired on {}", self.hosts[i].name));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `done` says so, showing the seconds left of `expected`.
    fn wait(
        &self,
        what: &str,
        expected: Duration,
        limit: Duration,
        mut done: impl FnMut() -> bool,
    ) -> Result<Duration, String> {
        let t0 = Instant::now();
        let tty = std::io::stdout().is_terminal();
        let mut last_line = Duration::ZERO;
        loop {
            if done() {
                if tty {
                    print!("\r{:70}\r", "");
                }
                return Ok(t0.elapsed());
            }
            let elapsed = t0.elapsed();
            if elapsed > limit {
                return Err(format!("{what}: nothing after {} s", limit.as_secs()));
            }
            let left = expected.saturating_sub(elapsed).as_secs();
            if tty {
                print!("\r            … {what}: {left:3} s left ");
                let _ = std::io::stdout().flush();
            } else if elapsed >= last_line {
                println!("            … {what}: {left} s left");
                last_line = elapsed + Duration::from_secs(10);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn walk(&mut self) -> Result<(), String> {
        self.say(&format!(
            "a lockspace and two leases in $DIR = {}",
            self.dir.display()
        ));
        for (name, size) in [("lockspace", 1u64 << 20), ("leases", 2 << 20)] {
            let f = std::fs::File::create(self.dir.join(name)).map_err(|e| e.to_string())?;
            f.set_len(size).map_err(|e| e.to_string())?;
        }
        let ls0 = format!("LS:0:{}:0", self.path("lockspace"));
        let r1 = self.resource("R1", "0", "");
        let r2 = self.resource("R2", "1M", "");
        let r2_sh = self.resource("R2", "1M", ":SH");
        self.expect(
            None,
            &["direct", "init", "-s", &ls0, "-o", "1"],
            "init done 0",
        )?;
        self.expect(None, &["direct", "init", "-r", &r1], "init done 0")?;
        self.expect(None, &["direct", "init", "-r", &r2], "init done 0")?;
        self.start_daemon(0)?;
        self.start_daemon(1)?;

        self.say("both hosts join the lockspace (host_id 1 and 2); a free host_id takes 2N+");
        let adds: Vec<Child> = (0..2)
            .map(|i| {
                let ls = self.lockspace(self.hosts[i].host_id);
                Command::new(&self.exe)
                    .args(["client", "add_lockspace", "-s", &ls, "-o", "1"])
                    .env("SANLOCK_RUN_DIR", &self.hosts[i].run_dir)
                    .stdout(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let mut adds = adds;
        let took = self.wait(
            "joining",
            Duration::from_secs(3),
            Duration::from_secs(30),
            || adds.iter_mut().all(|c| matches!(c.try_wait(), Ok(Some(_)))),
        )?;
        for (i, c) in adds.into_iter().enumerate() {
            let out = c.wait_with_output().map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains("add_lockspace_timeout done 0") {
                return Err(format!("{} could not join: {text}", self.hosts[i].name));
            }
        }
        self.say(&format!("both joined in {:.1} s", took.as_secs_f64()));
        self.wait(
            "each host seeing the other renew",
            Duration::from_secs(4),
            Duration::from_secs(30),
            || {
                (0..2).all(|i| {
                    Command::new(&self.exe)
                        .args(["client", "gets", "-h", "1"])
                        .env("SANLOCK_RUN_DIR", &self.hosts[i].run_dir)
                        .output()
                        .is_ok_and(|o| {
                            String::from_utf8_lossy(&o.stdout)
                                .lines()
                                .filter(|l| l.starts_with("h ") && l.ends_with("LIVE"))
                                .count()
                                == 2
                        })
                })
            },
        )?;
        self.sanlock(Some(0), &["client", "gets", "-h", "1"])?;

        self.say("host1: a process takes R1 exclusively");
        let pid = self.hold(0, &r1)?;
        self.expect(
            Some(0),
            &["client", "inquire", "-p", &pid.to_string()],
            "res_count 1",
        )?;
        self.say("host2: R1 is held by a live host: SANLK_ACQUIRE_IDLIVE (-243)");
        self.expect(
            Some(1),
            &["client", "command", "-r", &r1, "-c", "/bin/true"],
            "acquire done -243",
        )?;
        self.say("both hosts take R2 shared");
        self.hold(0, &r2_sh)?;
        self.hold(1, &r2_sh)?;
        self.sanlock(Some(1), &["client", "status"])?;
        self.expect(
            Some(1),
            &["client", "read", "-r", &r2, "-h", "1"],
            "h 2 gen",
        )?;

        self.say("host1 releases R1 (its holder exits), and host2 takes it");
        let mut holder = self.hosts[0].holders.remove(0);
        let _ = holder.kill();
        let _ = holder.wait();
        self.wait(
            "the release",
            Duration::from_secs(1),
            Duration::from_secs(10),
            || {
                Command::new(&self.exe)
                    .args(["client", "status"])
                    .env("SANLOCK_RUN_DIR", &self.hosts[0].run_dir)
                    .output()
                    .is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).contains(":R1:"))
            },
        )?;
        let pid2 = self.hold(1, &r1)?;
        self.sanlock(Some(1), &["client", "inquire", "-p", &pid2.to_string()])?;
        self.say("host2 releases R1 again; host1 takes it back");
        let mut holder = self.hosts[1].holders.pop().expect("the R1 holder");
        let _ = holder.kill();
        let _ = holder.wait();
        std::thread::sleep(Duration::from_millis(500));
        self.hold(0, &r1)?;

        self.say("host1 dies: its daemon and processes are killed (SIGKILL), no release");
        self.kill_host(0);
        let killed = Instant::now();
        self.say(&format!(
            "host2 may take R1 only once host1 is surely dead: host_dead_seconds = 8 × {} + 60 \
             = {HOST_DEAD_S} s after host1's last renewal",
            IO_TIMEOUT_S
        ));
        // One attempt at a time in the background: an acquire whose owner has stopped renewing
        // waits inside the daemon for the owner's death; one refused earlier is retried.
        let exe = self.exe.clone();
        let run_dir = self.hosts[1].run_dir.clone();
        let spawn = || {
            Command::new(&exe)
                .args(["client", "command", "-r", &r1, "-c", "/bin/sleep", "3600"])
                .env("SANLOCK_RUN_DIR", &run_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let mut attempt = spawn().map_err(|e| e.to_string())?;
        let mut attempts = 1;
        let held_by = |pid: u32| {
            Command::new(&exe)
                .args(["client", "status"])
                .env("SANLOCK_RUN_DIR", &run_dir)
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .any(|l| l.contains(":R1:") && l.ends_with(&format!(" p {pid}")))
                })
        };
        let mut spawn_error = None;
        let took = self.wait(
            "host_dead_seconds",
            Duration::from_secs(HOST_DEAD_S),
            Duration::from_secs(HOST_DEAD_S + 60),
            || {
                if held_by(attempt.id()) {
                    return true;
                }
                if matches!(attempt.try_wait(), Ok(Some(_))) {
                    match spawn() {
                        Ok(c) => {
                            attempt = c;
                            attempts += 1;
                        }
                        Err(e) => spawn_error = Some(e.to_string()),
                    }
                }
                spawn_error.is_some()
            },
        )?;
        if let Some(e) = spawn_error {
            return Err(e);
        }
        self.hosts[1].holders.push(attempt);
        if took < Duration::from_secs(HOST_DEAD_S - 2) {
            return Err("host2 took R1 before host1 could be dead".into());
        }
        self.say(&format!(
            "host2 acquired R1 {:.1} s after host1 died ({attempts} acquire attempt(s))",
            took.as_secs_f64()
        ));
        let _ = killed;
        self.sanlock(Some(1), &["client", "gets", "-h", "1"])?;
        Ok(())
    }

    fn kill_host(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        if let Some(mut d) = h.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for mut c in h.holders.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn clean_up(&mut self) {
        for i in 0..2 {
            self.kill_host(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.clean_up();
    }
}
