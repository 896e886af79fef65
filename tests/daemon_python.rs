//! python3-sanlock (Debian's, run by /usr/bin/python3) against our daemon and against the C
//! one: the same script of calls, with every result and every error it raises, must read the
//! same. The binding has no convert, so the script converts through the `sanlock` CLI as
//! libvirt-less users do.

mod common;

use std::path::Path;
use std::process::Command;

use common::{CDaemon, Scratch};

/// What both scripts start with: the files, and `call`, which prints a call's result or its
/// error (timestamps dropped, long byte strings summarised).
const PRELUDE: &str = r#"
import os, sys, time, subprocess, hashlib
import sanlock

d = sys.argv[1]
cli = sys.argv[2]
ls = os.path.join(d, "ls")
res = os.path.join(d, "res")
for p, size in ((ls, 1 << 20), (res, 3 << 20)):
    with open(p, "wb") as f:
        f.truncate(size)

def call(label, fn, *args, **kw):
    try:
        r = fn(*args, **kw)
    except sanlock.SanlockException as e:
        print(label, "error", e.errno)
        return None
    if isinstance(r, list):
        r = [{k: v for k, v in x.items() if k != "timestamp"} if isinstance(x, dict) else x
             for x in r]
    if isinstance(r, bytes) and len(r) > 32:
        r = (len(r), r.rstrip(b"\0"), hashlib.sha1(r).hexdigest())
    print(label, "->", repr(r).replace(d, "D"))
    return r
"#;

const SCRIPT: &str = r#"
call("write_lockspace", sanlock.write_lockspace, b"LS", ls, iotimeout=1)
call("read_lockspace", sanlock.read_lockspace, ls)
call("read_lockspace bad", sanlock.read_lockspace, res)
call("write_resource", sanlock.write_resource, b"LS", b"R1", [(res, 0)])
call("write_resource 2", sanlock.write_resource, b"LS", b"R2", [(res, 1 << 20)])
call("read_resource", sanlock.read_resource, res)
call("read_resource_owners free", sanlock.read_resource_owners, b"LS", b"R1", [(res, 0)])
call("inq before add", sanlock.inq_lockspace, b"LS", 1, ls)
call("get_hosts before add", sanlock.get_hosts, b"LS")
fd = sanlock.register()
call("acquire before add", sanlock.acquire, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("add_lockspace", sanlock.add_lockspace, b"LS", 1, ls, iotimeout=1)
call("add_lockspace again", sanlock.add_lockspace, b"LS", 1, ls, iotimeout=1)
call("add_lockspace other name", sanlock.add_lockspace, b"LS2", 1, ls, iotimeout=1)
call("inq after add", sanlock.inq_lockspace, b"LS", 1, ls)
call("get_hosts at once", sanlock.get_hosts, b"LS")
time.sleep(1)
call("get_hosts", sanlock.get_hosts, b"LS")
call("get_lockspaces", sanlock.get_lockspaces)
call("acquire", sanlock.acquire, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("acquire again", sanlock.acquire, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("acquire by pid", sanlock.acquire, b"LS", b"R2", [(res, 1 << 20)], pid=os.getpid(), shared=True)
call("inquire", sanlock.inquire, slkfd=fd)
call("inquire by pid", sanlock.inquire, pid=os.getpid())
call("inquire unknown pid", sanlock.inquire, pid=999999)
call("read_resource held", sanlock.read_resource, res)
call("read_resource_owners held", sanlock.read_resource_owners, b"LS", b"R1", [(res, 0)])
subprocess.run([cli, "client", "convert", "-r", "LS:R1:%s:0:SH" % res, "-p", str(os.getpid())],
               stdout=subprocess.DEVNULL)
call("inquire after convert", sanlock.inquire, slkfd=fd)
subprocess.run([cli, "client", "convert", "-r", "LS:R1:%s:0" % res, "-p", str(os.getpid())],
               stdout=subprocess.DEVNULL)
call("inquire after convert back", sanlock.inquire, slkfd=fd)
call("release", sanlock.release, b"LS", b"R1", [(res, 0)], slkfd=fd)
# R1 comes back into its freed slot, ahead of R2, as in sanlock's token array.
call("acquire into the freed slot", sanlock.acquire, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("inquire slot order", sanlock.inquire, slkfd=fd)
call("release once more", sanlock.release, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("release again", sanlock.release, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("release 2", sanlock.release, b"LS", b"R2", [(res, 1 << 20)], slkfd=fd)
call("inquire empty", sanlock.inquire, slkfd=fd)
call("read_resource after", sanlock.read_resource, res)
call("write_resource clear", sanlock.write_resource, b"LS", b"R1", [(res, 0)], clear=True)
call("read_resource cleared", sanlock.read_resource, res)
call("rem_lockspace", sanlock.rem_lockspace, b"LS", 1, ls)
call("rem_lockspace again", sanlock.rem_lockspace, b"LS", 1, ls)
call("inq after rem", sanlock.inq_lockspace, b"LS", 1, ls)
call("get_lockspaces after", sanlock.get_lockspaces)
call("get_hosts after", sanlock.get_hosts, b"LS")
"#;

/// Issue 7's calls: killpath, LVB, request, set_event, reg_event/end_event, rem_lockspace
/// with unused (events between hosts are in `daemon_mixed`).
const SURFACE_SCRIPT: &str = r#"
R1 = [(res, 0)]
R2 = [(res, 1 << 20)]
R3 = [(res, 2 << 20)]
call("write_lockspace", sanlock.write_lockspace, b"LS", ls, iotimeout=1)
for name, disks in ((b"R1", R1), (b"R2", R2), (b"R3", R3)):
    call("write_resource", sanlock.write_resource, b"LS", name, disks)
call("add_lockspace", sanlock.add_lockspace, b"LS", 1, ls, iotimeout=1)
call("killpath unregistered", sanlock.killpath, "/bin/true", ["x"])
fd = sanlock.register()
call("killpath", sanlock.killpath, "/bin/true", ["a", "b c"], slkfd=fd)
call("acquire lvb", sanlock.acquire, b"LS", b"R1", R1, slkfd=fd, lvb=True)
call("get_lvb unset", sanlock.get_lvb, b"LS", b"R1", R1, 512)
call("set_lvb 513", sanlock.set_lvb, b"LS", b"R1", R1, b"x" * 513)
call("set_lvb", sanlock.set_lvb, b"LS", b"R1", R1, b"first\0second".ljust(512, b"\0"))
call("get_lvb", sanlock.get_lvb, b"LS", b"R1", R1, 512)
call("get_lvb 16", sanlock.get_lvb, b"LS", b"R1", R1, 16)
call("release", sanlock.release, b"LS", b"R1", R1, slkfd=fd)
call("acquire lvb again", sanlock.acquire, b"LS", b"R1", R1, slkfd=fd, lvb=True)
call("get_lvb kept", sanlock.get_lvb, b"LS", b"R1", R1, 512)
call("set_lvb short", sanlock.set_lvb, b"LS", b"R1", R1, b"ab")
call("get_lvb short", sanlock.get_lvb, b"LS", b"R1", R1, 512)
call("get_lvb not held", sanlock.get_lvb, b"LS", b"R2", R2, 512)
call("set_lvb not held", sanlock.set_lvb, b"LS", b"R2", R2, b"zz")
call("acquire no lvb", sanlock.acquire, b"LS", b"R2", R2, slkfd=fd)
call("get_lvb no lvb", sanlock.get_lvb, b"LS", b"R2", R2, 512)
call("set_lvb no lvb", sanlock.set_lvb, b"LS", b"R2", R2, b"zz")
call("request free", sanlock.request, b"LS", b"R3", R3)
call("request free force", sanlock.request, b"LS", b"R3", R3, action=sanlock.REQ_FORCE)
call("request next", sanlock.request, b"LS", b"R1", R1)
call("request old", sanlock.request, b"LS", b"R1", R1, version=1)
call("request v5", sanlock.request, b"LS", b"R1", R1, version=5)
call("request v4", sanlock.request, b"LS", b"R1", R1, version=4)
call("request v5 again", sanlock.request, b"LS", b"R1", R1, version=5, action=sanlock.REQ_FORCE)
call("request clear", sanlock.request, b"LS", b"R1", R1, action=0)
call("request other lockspace", sanlock.request, b"NOPE", b"R1", R1)
call("request no disk", sanlock.request, b"LS", b"R1", [(os.path.join(d, "none"), 0)])
call("set_event", sanlock.set_event, b"LS", 1, 0, 5)
call("set_event same", sanlock.set_event, b"LS", 1, 0, 5, data=7)
call("set_event busy", sanlock.set_event, b"LS", 1, 0, 6)
call("set_event replace", sanlock.set_event, b"LS", 1, 0, 6, flags=sanlock.SETEV_REPLACE_EVENT)
call("set_event all", sanlock.set_event, b"LS", 2, 0, 6, flags=sanlock.SETEV_ALL_HOSTS)
call("set_event cur gen", sanlock.set_event, b"LS", 1, 0, 6, flags=sanlock.SETEV_CUR_GENERATION)
call("set_event clear", sanlock.set_event, b"LS", 1, 0, 0, flags=sanlock.SETEV_CLEAR_EVENT)
call("set_event clear host", sanlock.set_event, b"LS", 2, 0, 0, flags=sanlock.SETEV_CLEAR_HOSTID)
call("set_event host 0", sanlock.set_event, b"LS", 0, 0, 5)
call("set_event host 2001", sanlock.set_event, b"LS", 2001, 0, 5)
call("set_event unknown", sanlock.set_event, b"NOPE", 1, 0, 5)
efd = call("reg_event", sanlock.reg_event, b"LS")
call("reg_event unknown", sanlock.reg_event, b"NOPE")
if efd is not None:
    call("end_event", sanlock.end_event, efd, b"LS")
efd = sanlock.reg_event(b"LS")
call("end_event unknown", sanlock.end_event, efd, b"NOPE")
call("acquire R3 lvb", sanlock.acquire, b"LS", b"R3", R3, slkfd=fd, lvb=True)
call("set_lvb R3", sanlock.set_lvb, b"LS", b"R3", R3, b"converted")
subprocess.run([cli, "client", "convert", "-r", "LS:R3:%s:2097152:SH" % res, "-p", str(os.getpid())],
               stdout=subprocess.DEVNULL)
call("inquire after convert", sanlock.inquire, slkfd=fd)
call("release R3", sanlock.release, b"LS", b"R3", R3, slkfd=fd)
call("acquire R3 lvb again", sanlock.acquire, b"LS", b"R3", R3, slkfd=fd, lvb=True)
call("get_lvb R3", sanlock.get_lvb, b"LS", b"R3", R3, 16)
call("release R3 again", sanlock.release, b"LS", b"R3", R3, slkfd=fd)
call("rem_lockspace unused", sanlock.rem_lockspace, b"LS", 1, ls, unused=True)
call("release all", sanlock.release, b"LS", b"R1", R1, slkfd=fd)
call("release R2", sanlock.release, b"LS", b"R2", R2, slkfd=fd)
call("read_resource R1", sanlock.read_resource, res)
call("rem_lockspace", sanlock.rem_lockspace, b"LS", 1, ls)
"#;

fn run_python(script: &str, cli: &Path, run_dir: &Path, dir: &Path) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!("{PRELUDE}{script}"))
        .arg(dir)
        .arg(cli)
        .env("SANLOCK_RUN_DIR", run_dir)
        .output()
        .expect("run /usr/bin/python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the script failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` against the C daemon and ours at once; every line must be equal. Returns the
/// C daemon's lines, or `None` when python3-sanlock is missing (the test is then skipped).
fn both_daemons(c: &Path, label: &str, script: &'static str) -> Option<String> {
    both_daemons_on(c, label, script, None)
}

/// [`both_daemons`], each run given a loop device of its own with `device_sector`-byte
/// sectors (32 MiB, zeroed), its path as the script's third argument.
fn both_daemons_on(
    c: &Path,
    label: &str,
    script: &'static str,
    device_sector: Option<u32>,
) -> Option<String> {
    if !common::python_sanlock_available() {
        eprintln!("skipped: python3-sanlock is not installed (apt-get install python3-sanlock)");
        return None;
    }
    let ours = common::ours();
    let results: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = [c, ours.as_path()]
            .into_iter()
            .map(|daemon| {
                s.spawn(move || {
                    let scratch = Scratch::new(label);
                    let device = device_sector.map(|sector| {
                        let backing = scratch.path("backing");
                        common::create_file(&backing, 32 << 20);
                        common::LoopDevice::attach(&backing, sector)
                    });
                    let host = CDaemon::start(daemon, &scratch, "host");
                    let script = match &device {
                        // The device's name differs between the two runs.
                        Some(dev) => {
                            format!("dev = {:?}\n{script}", dev.device.display().to_string())
                        }
                        None => script.to_string(),
                    };
                    let out = run_python(&script, c, host.run_dir(), scratch.dir());
                    match &device {
                        Some(dev) => out.replace(&dev.device.display().to_string(), "DEV"),
                        None => out,
                    }
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (c_line, our_line) in results[0].lines().zip(results[1].lines()) {
        assert_eq!(our_line, c_line, "our daemon differs from the C one");
    }
    assert_eq!(results[0].lines().count(), results[1].lines().count());
    Some(results[0].clone())
}

#[test]
fn python3_sanlock_sees_the_same_results_and_errors_from_both_daemons() {
    let c = require_c_sanlock!();
    if let Some(out) = both_daemons(&c, "daemon-python", SCRIPT) {
        assert!(out.contains("acquire -> None"), "{out}");
    }
}

#[test]
fn python3_sanlock_sees_the_same_lvb_request_event_and_killpath_results() {
    let c = require_c_sanlock!();
    if let Some(out) = both_daemons(&c, "daemon-python-surface", SURFACE_SCRIPT) {
        assert!(out.contains("acquire lvb -> None"), "{out}");
    }
}

/// Size hints (sector=, align=) on every write and read, on files: a pair that is no geometry,
/// or one size alone, fails a write with EPERM (sizeflags.c answers -1); readers take the
/// hints only as how much to read, and read_resource_owners fails EINVAL when the leader
/// contradicts one.
const GEOMETRY_SCRIPT: &str = r#"
import itertools
MiB = 1 << 20
hints = [{}, dict(sector=512), dict(align=MiB)] + [
    dict(sector=s, align=a) for s, a in itertools.product([512, 4096], [MiB, 8 * MiB])]
f = os.path.join(d, "f")
with open(f, "wb") as fh:
    fh.truncate(16 * MiB)
for k in hints:
    call(f"zeros rl {k}", sanlock.read_lockspace, f, **k)
    call(f"zeros rr {k}", sanlock.read_resource, f, **k)
    call(f"zeros ro {k}", sanlock.read_resource_owners, b"LS", b"R", [(f, 0)], **k)
for ws, wa in itertools.product([512, 4096], [MiB, 2 * MiB, 4 * MiB, 8 * MiB]):
    call(f"wl {ws} {wa}", sanlock.write_lockspace, b"LS", f, iotimeout=1, sector=ws, align=wa)
    for k in hints:
        call(f" rl {ws} {wa} / {k}", sanlock.read_lockspace, f, **k)
    call(f"wr {ws} {wa}", sanlock.write_resource, b"LS", b"R", [(f, 0)], sector=ws, align=wa)
    for k in hints:
        call(f" rr {ws} {wa} / {k}", sanlock.read_resource, f, **k)
        call(f" ro {ws} {wa} / {k}", sanlock.read_resource_owners, b"LS", b"R", [(f, 0)], **k)
call("ro wrong name", sanlock.read_resource_owners, b"LS", b"RX", [(f, 0)])
call("ro wrong lockspace", sanlock.read_resource_owners, b"LX", b"R", [(f, 0)])
call("wr sector alone", sanlock.write_resource, b"LS", b"R", [(f, 0)], sector=4096)
call("wl clear", sanlock.write_resource, b"LS", b"R", [(f, 0)], clear=True)
call("rr cleared", sanlock.read_resource, f)
call("ro cleared", sanlock.read_resource_owners, b"LS", b"R", [(f, 0)])
"#;

/// The same on a 4K-sector device, where 512-byte I/O fails: a resource written with 512-byte
/// sectors succeeds (one write of its whole area; sanlock's own suite marks the refusal it
/// expected xfail), a lockspace does not (its commit is one 512-byte write).
const DEVICE_4K_SCRIPT: &str = r#"
MiB = 1 << 20
for k in [{}, dict(sector=512), dict(sector=4096), dict(sector=4096, align=8 * MiB)]:
    call(f"zeros rl {k}", sanlock.read_lockspace, dev, **k)
    call(f"zeros rr {k}", sanlock.read_resource, dev, **k)
    call(f"zeros ro {k}", sanlock.read_resource_owners, b"LS", b"R", [(dev, 0)], **k)
call("wr 512", sanlock.write_resource, b"LS", b"R", [(dev, 0)], sector=512)
for k in [{}, dict(sector=512), dict(sector=4096), dict(sector=512, align=MiB)]:
    call(f" rr 512 / {k}", sanlock.read_resource, dev, **k)
    call(f" ro 512 / {k}", sanlock.read_resource_owners, b"LS", b"R", [(dev, 0)], **k)
call("wr 512 2M", sanlock.write_resource, b"LS", b"R", [(dev, 0)], sector=512, align=2 * MiB)
call("wr 4K", sanlock.write_resource, b"LS", b"R", [(dev, 8 * MiB)], sector=4096, align=MiB)
call(" rr 4K / 512", sanlock.read_resource, dev, 8 * MiB, sector=512)
call(" rr 4K / 4K", sanlock.read_resource, dev, 8 * MiB, sector=4096)
call("wl 512", sanlock.write_lockspace, b"LS", dev, 16 * MiB, iotimeout=1, sector=512)
call("wl 4K", sanlock.write_lockspace, b"LS", dev, 16 * MiB, iotimeout=1, sector=4096)
for k in [{}, dict(sector=512), dict(sector=4096)]:
    call(f" rl 4K / {k}", sanlock.read_lockspace, dev, 16 * MiB, **k)
"#;

#[test]
fn python3_sanlock_gets_sanlocks_answers_to_size_hints_on_files() {
    let c = require_c_sanlock!();
    if let Some(out) = both_daemons(&c, "daemon-python-sizes", GEOMETRY_SCRIPT) {
        // Hints contradicting a 512-byte lease still read it, as 3.8.5 does.
        assert!(
            out.contains(" rr 512 1048576 / {'sector': 4096, 'align': 8388608} -> {"),
            "{out}"
        );
        assert!(out.contains("wr 512 2097152 error 1"), "{out}");
    }
}

#[test]
fn python3_sanlock_gets_sanlocks_answers_on_a_4k_device() {
    let c = require_c_sanlock!();
    require_loop_devices!();
    if let Some(out) = both_daemons_on(&c, "daemon-python-4k", DEVICE_4K_SCRIPT, Some(4096)) {
        assert!(out.contains("wr 512 -> None"), "{out}");
        assert!(out.contains("wl 512 error 22"), "{out}");
    }
}

/// RESTRICT through libsanlock itself (ctypes; the binding has no restrict), as libvirt uses
/// it: a holder restricts its registered connection after acquiring. RESTRICT_ALL: nothing
/// more on that connection is answered, while others may still inquire and release by pid.
/// RESTRICT_SIGKILL: when its lockspace is removed, the holder gets SIGTERM in place of SIGKILL.
const RESTRICT_SCRIPT: &str = r#"
HOLDER = """
import ctypes, os, select, signal, socket, struct, sys, time, sanlock
lib = ctypes.CDLL("libsanlock.so.1")
res, flags = sys.argv[1], int(sys.argv[2])
def on_term(signum, frame):
    print("holder: SIGTERM", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
fd = sanlock.register()
sanlock.acquire(b"LS", b"R1", [(res, 0)], slkfd=fd)
print("holder: restrict", lib.sanlock_restrict(fd, flags), flush=True)
s = socket.socket(fileno=os.dup(fd))
s.sendall(struct.pack("<8I", 0x04282010, 1, 28, 0, 32, 0, 0, 0))
ready, _, _ = select.select([s], [], [], 1.0)
print("holder: version on its connection", "answered" if ready else "not answered", flush=True)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""

def holder(flags):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, res, str(flags)],
                         stdout=subprocess.PIPE, text=True)
    while True:
        line = p.stdout.readline()
        if not line or line == "ready\n":
            return p
        print(line, end="")

call("write_lockspace", sanlock.write_lockspace, b"LS", ls, iotimeout=1)
call("write_resource", sanlock.write_resource, b"LS", b"R1", [(res, 0)])
call("add_lockspace", sanlock.add_lockspace, b"LS", 1, ls, iotimeout=1)
a = holder(1)
call("inquire restricted holder", sanlock.inquire, pid=a.pid)
call("release by pid", sanlock.release, b"LS", b"R1", [(res, 0)], pid=a.pid)
call("inquire after release", sanlock.inquire, pid=a.pid)
a.kill()
a.wait()
time.sleep(1)
b = holder(2)
call("rem_lockspace with a holder", sanlock.rem_lockspace, b"LS", 1, ls)
print(b.stdout.read(), end="")
print("holder exit", b.wait())
"#;

#[test]
fn libsanlock_restrict_gets_the_same_effects_from_both_daemons() {
    let c = require_c_sanlock!();
    if let Some(out) = both_daemons(&c, "daemon-python-restrict", RESTRICT_SCRIPT) {
        assert!(
            out.contains("version on its connection not answered"),
            "{out}"
        );
        assert!(out.contains("holder: SIGTERM"), "{out}");
    }
}

/// GET_LVB with a length of its own (libsanlock always sends 0): more than 4096 is refused,
/// up to 4096 the buffer comes zero-padded. Ours only: 3.8.5 copies past its buffer here.
const RAW_GET_LVB: &str = r#"
import os, socket, struct, sys
import sanlock
d = sys.argv[1]
ls, res = os.path.join(d, "ls"), os.path.join(d, "res")
for p in (ls, res):
    with open(p, "wb") as f:
        f.truncate(1 << 20)
sanlock.write_lockspace(b"LS", ls, iotimeout=1)
sanlock.write_resource(b"LS", b"R1", [(res, 0)])
sanlock.add_lockspace(b"LS", 1, ls, iotimeout=1)
fd = sanlock.register()
sanlock.acquire(b"LS", b"R1", [(res, 0)], slkfd=fd, lvb=True)
sanlock.set_lvb(b"LS", b"R1", [(res, 0)], b"abc")
def get_lvb(length):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(os.environ["SANLOCK_RUN_DIR"], "sanlock.sock"))
    res_struct = struct.pack("<48s48sQQIIII", b"LS", b"R1", 0, 0, 0, 0, 0, 0)
    s.sendall(struct.pack("<8I", 0x04282010, 1, 26, 0, 32 + 128, 0, 0, length) + res_struct)
    h = b""
    while len(h) < 32:
        h += s.recv(32 - len(h))
    rv, total = struct.unpack("<8i", h)[6], struct.unpack("<8I", h)[4]
    body = b""
    if rv == 0:
        while len(body) < total - 32:
            body += s.recv(total - 32 - len(body))
    print(length, rv, total, body.rstrip(b"\0"), len(body))
get_lvb(0)
get_lvb(1024)
get_lvb(5000)
get_lvb(1 << 30)
sanlock.release(b"LS", b"R1", [(res, 0)], slkfd=fd)
sanlock.rem_lockspace(b"LS", 1, ls)
"#;

#[test]
fn get_lvb_lengths_beyond_a_sector_are_bounded() {
    require_python_sanlock!();
    let ours = common::ours();
    let scratch = Scratch::new("daemon-get-lvb");
    let host = CDaemon::start(&ours, &scratch, "host");
    let out = Command::new("/usr/bin/python3")
        .args(["-c", RAW_GET_LVB, &scratch.dir().display().to_string()])
        .env("SANLOCK_RUN_DIR", host.run_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text,
        "0 0 544 b'abc' 512\n1024 0 1056 b'abc' 1024\n5000 -7 4128 b'' 0\n\
         1073741824 -7 4128 b'' 0\n"
    );
}

/// libvirt's pause-on-lock-failure flow, as sanlock 3.8.5's tests/killpath.c (`_pause`),
/// sanlk_client.c and clientn run it: two holders set a killpath (with the pid appended) and
/// acquire; the daemon is stopped long enough (20 s, io_timeout 2: 8N = 16 s) that its
/// lockspace fails; the killpath stops the holder (SIGSTOP), saves its inquire state and
/// releases its leases by pid, so the lockspace goes away. Then the lockspace is added again,
/// each paused holder's leases are acquired back by pid with the saved state (lver included),
/// and the holder resumes. 3.8.5 clears a live client's kill state when its release leaves it
/// holding nothing (cmd.c `cmd_release`), so the acquire succeeds at the next lver.
const PAUSE_SCRIPT: &str = r##"
import signal
KILLPATH = """#!/usr/bin/python3
import ctypes, os, signal, sys
lib = ctypes.CDLL("libsanlock.so.1")
out, pid = sys.argv[1], int(sys.argv[-1])
os.kill(pid, signal.SIGSTOP)
count, state = ctypes.c_int(0), ctypes.c_char_p()
rv = lib.sanlock_inquire(-1, pid, 0, ctypes.byref(count), ctypes.byref(state))
rel = lib.sanlock_release(-1, pid, 1, 0, None)
with open(out, "a") as f:
    f.write("%d %d %d %d %s\\n" % (pid, rv, count.value, rel, state.value.decode()))
"""
HOLDER = """
import ctypes, os, sys, time, sanlock
lib = ctypes.CDLL("libsanlock.so.1")
name, path, off, kp, out = sys.argv[1:]
fd = sanlock.register()
rv = lib.sanlock_killpath(fd, 1, kp.encode(), out.encode())
sanlock.acquire(b"LS", name.encode(), [(path, int(off))], slkfd=fd)
print("holder", name, "killpath", rv, "restrict", lib.sanlock_restrict(fd, 1), flush=True)
while True:
    time.sleep(0.1)
"""
run_dir = os.environ["SANLOCK_RUN_DIR"]
state_file = os.path.join(d, "client-state.txt")
kp = os.path.join(d, "kp-pause")
with open(kp, "w") as f:
    f.write(KILLPATH)
os.chmod(kp, 0o755)

def wait_for(what, secs, fn):
    deadline = time.monotonic() + secs
    while not fn():
        if time.monotonic() > deadline:
            print("timed out waiting for", what)
            sys.exit(1)
        time.sleep(0.2)

call("write_lockspace", sanlock.write_lockspace, b"LS", ls, iotimeout=2)
call("write_resource R1", sanlock.write_resource, b"LS", b"R1", [(res, 1 << 20)])
call("write_resource R2", sanlock.write_resource, b"LS", b"R2", [(res, 2 << 20)])
call("add_lockspace", sanlock.add_lockspace, b"LS", 1, ls, iotimeout=2)
holders = []
for name, off in (("R1", 1 << 20), ("R2", 2 << 20)):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, name, res, str(off), kp, state_file],
                         stdout=subprocess.PIPE, text=True)
    print(p.stdout.readline(), end="")
    holders.append(p)
daemon_pid = int(open(os.path.join(run_dir, "sanlock.pid")).read().split()[0])
os.kill(daemon_pid, signal.SIGSTOP)
time.sleep(20)
os.kill(daemon_pid, signal.SIGCONT)

def saved():
    try:
        return len(open(state_file).read().splitlines()) == 2
    except FileNotFoundError:
        return False
wait_for("the killpath of both holders", 60, saved)
wait_for("the lockspace to go", 60, lambda: not sanlock.get_lockspaces())
print("lockspace gone")
pids = {p.pid: p for p in holders}
lines = sorted(open(state_file).read().splitlines(), key=lambda l: l.split()[-1])
for line in lines:
    pid, rv, count, rel, state = line.split()
    print("killpath: inquire", rv, count, "release", rel, "state", state.replace(d, "D"))
call("add_lockspace again", sanlock.add_lockspace, b"LS", 1, ls, iotimeout=2)
for line in lines:
    pid, state = line.split()[0], line.split()[-1]
    out = subprocess.run([cli, "client", "acquire", "-p", pid, "-r", state],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    print([l for l in out.splitlines() if l.startswith("acquire done")])
    os.kill(int(pid), signal.SIGCONT)
    r = sanlock.inquire(pid=int(pid))
    print("inquire after", [(x["lockspace"], x["resource"], x["version"]) for x in r])
time.sleep(1)
print("holders alive", [p.poll() for p in holders])
for p in holders:
    p.kill()
    p.wait()
time.sleep(1)
call("rem_lockspace", sanlock.rem_lockspace, b"LS", 1, ls)
"##;

#[test]
fn a_paused_holder_gets_its_leases_back_after_its_lockspace_failed_as_with_sanlock() {
    let c = require_c_sanlock!();
    if let Some(out) = both_daemons(&c, "daemon-python-pause", PAUSE_SCRIPT) {
        eprintln!("{out}");
        assert!(out.contains("lockspace gone"), "{out}");
        assert_eq!(out.matches("['acquire done 0']").count(), 2, "{out}");
        assert!(out.contains("holders alive [None, None]"), "{out}");
    }
}

/// Acquire attempts of a lease another live host holds, one every 100 ms for three renewal
/// intervals (io_timeout 1: renewals every 2 s): each attempt's result and how long it took.
const SWEEP_SCRIPT: &str = r#"
import sys, time, sanlock
res = sys.argv[1]
fd = sanlock.register()
start = time.monotonic()
for i in range(60):
    delay = start + i * 0.1 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    t0 = time.monotonic()
    try:
        sanlock.acquire(b"LS", b"R1", [(res, 0)], slkfd=fd)
        rv = 0
    except sanlock.SanlockException as e:
        rv = -abs(e.errno)
    print("%.3f %d %.4f" % (t0 - start, rv, time.monotonic() - t0), flush=True)
"#;

#[test]
fn an_acquire_of_a_live_hosts_lease_fails_at_once_in_every_phase_of_the_renewal_cycle() {
    // paxos_lease.c "optimize paxos wait": when the monitor saw the owner renewing at its last
    // check, the acquire fails SANLK_ACQUIRE_IDLIVE (-243) at once instead of watching the
    // owner's next renewal. Our reads half way between renewals must not spoil that: before
    // issue 15 some attempts took up to a renewal interval.
    let c = require_c_sanlock!();
    require_python_sanlock!();
    let ours = common::ours();
    let c = c.as_path();
    let results: Vec<(String, Vec<Attempt>)> = std::thread::scope(|s| {
        let runs: Vec<_> = [c, ours.as_path()]
            .into_iter()
            .map(|bin| s.spawn(move || (bin.display().to_string(), sweep(bin, c))))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (bin, attempts) in results {
        assert_eq!(attempts.len(), 60, "{bin}: {attempts:?}");
        let slow: Vec<_> = attempts.iter().filter(|a| a.took_s > 0.1).collect();
        let worst = attempts.iter().map(|a| a.took_s).fold(0.0, f64::max);
        eprintln!(
            "{bin}: {} attempts over {:.1} s, {} over 100 ms, slowest {:.1} ms",
            attempts.len(),
            attempts.last().map_or(0.0, |a| a.at_s),
            slow.len(),
            worst * 1000.0
        );
        assert!(attempts.iter().all(|a| a.rv == -243), "{bin}: {attempts:?}");
        assert!(slow.is_empty(), "{bin}: slow attempts {slow:?}");
    }
}

/// One acquire attempt of the sweep: when it began (seconds into the sweep), its result, and
/// how long it took.
#[derive(Debug)]
struct Attempt {
    at_s: f64,
    rv: i32,
    took_s: f64,
}

/// Two hosts of `bin` in one lockspace (io_timeout 1); host 1 holds R1; host 2's sweep.
fn sweep(bin: &Path, c: &Path) -> Vec<Attempt> {
    let scratch = Scratch::new("daemon-python-sweep");
    let (ls, res) = (scratch.path("ls"), scratch.path("res"));
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 1 << 20);
    let ls_arg = |id: u32| format!("LS:{id}:{}:0", ls.display());
    let r1 = format!("LS:R1:{}:0", res.display());
    for args in [
        vec!["direct", "init", "-s", &ls_arg(0), "-o", "1"],
        vec!["direct", "init", "-r", &r1],
    ] {
        assert_eq!(common::run(c, &args, None).code, 0, "{args:?}");
    }
    let mut a = CDaemon::start(bin, &scratch, "a");
    let b = CDaemon::start(bin, &scratch, "b");
    // Host 2 joins half a renewal interval after host 1, so that host 1 renews between host
    // 2's renewals and its peeks rather than at the same instants.
    std::thread::scope(|s| {
        for (d, id) in [(&a, 1), (&b, 2)] {
            let arg = ls_arg(id);
            s.spawn(move || {
                let add = d.client(&["add_lockspace", "-s", &arg, "-o", "1"]);
                assert_eq!(add.code, 0, "{add:?}");
            });
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    a.hold(&r1);
    // Host 2's monitor has seen host 1 renew at a few of its scans.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let out = Command::new("/usr/bin/python3")
        .args(["-c", SWEEP_SCRIPT])
        .arg(&res)
        .env("SANLOCK_RUN_DIR", b.run_dir())
        .output()
        .expect("run /usr/bin/python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Attempt {
                at_s: f[0].parse().unwrap(),
                rv: f[1].parse().unwrap(),
                took_s: f[2].parse().unwrap(),
            }
        })
        .collect()
}

/// Disks that do not exist, where our daemon now opens them off its loop: a lockspace's
/// (the add fails -ENODEV), a lease's (acquire and request fail -ENOENT), then the same
/// lockspace and lease work.
const MISSING_DISK_SCRIPT: &str = r#"
nope = os.path.join(d, "nope")
call("write_lockspace", sanlock.write_lockspace, b"LS", ls, iotimeout=1)
call("write_resource", sanlock.write_resource, b"LS", b"R1", [(res, 0)])
call("add_lockspace missing", sanlock.add_lockspace, b"LX", 1, nope, iotimeout=1)
call("add_lockspace", sanlock.add_lockspace, b"LS", 1, ls, iotimeout=1)
fd = sanlock.register()
call("acquire missing", sanlock.acquire, b"LS", b"R1", [(nope, 0)], slkfd=fd)
call("request missing", sanlock.request, b"LS", b"R1", [(nope, 0)])
call("acquire", sanlock.acquire, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("inquire", sanlock.inquire, slkfd=fd)
call("release", sanlock.release, b"LS", b"R1", [(res, 0)], slkfd=fd)
call("rem_lockspace", sanlock.rem_lockspace, b"LS", 1, ls)
"#;

#[test]
fn disks_that_do_not_exist_get_sanlocks_errors() {
    let c = require_c_sanlock!();
    if let Some(out) = both_daemons(&c, "daemon-python-missing", MISSING_DISK_SCRIPT) {
        assert!(out.contains("add_lockspace missing error 19"), "{out}");
        assert!(out.contains("acquire missing error 2"), "{out}");
        assert!(out.contains("request missing error 2"), "{out}");
    }
}
