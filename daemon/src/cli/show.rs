//! `sanlock client show [-s NAME] [-r RESOURCE]… [--json]` (ours): the daemon's SHOW stream
//! (lockspaces, their hosts with names and silence, leases held, waits) and, for each RESOURCE,
//! who owns it on disk, named and aged from the hosts the daemon watches. sanlock's own actions
//! keep their exact text; this is where a person or a program looks first.

use std::os::unix::ffi::OsStrExt;

use serde_json::{json, Value};

use sanlock_client::{Client, Mode, Resource, StateKind, StateRecord};

use super::locators::{parse_resource, ResourceSuffix};

const USAGE: &str = "usage: sanlock client show [-s <lockspace_name>] [-r RESOURCE] [--json]\n";

struct Args {
    lockspace: Option<String>,
    resources: Vec<Resource>,
    json: bool,
}

fn parse(argv: &[Vec<u8>]) -> Result<Args, String> {
    let mut args = Args {
        lockspace: None,
        resources: Vec::new(),
        json: false,
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_slice() {
            b"--json" => args.json = true,
            b"-s" => {
                let v = it.next().ok_or("-s needs a lockspace name")?;
                // A whole LOCKSPACE string is accepted too; its name is what counts.
                let name = v.split(|&b| b == b':').next().unwrap_or_default();
                args.lockspace = Some(String::from_utf8_lossy(name).into_owned());
            }
            b"-r" => {
                let v = it.next().ok_or("-r needs a RESOURCE")?;
                let r = parse_resource(v).map_err(|e| {
                    format!("RESOURCE {:?}: {}", String::from_utf8_lossy(v), e.reason)
                })?;
                args.resources.push(Resource {
                    lockspace: r.lockspace_name,
                    name: r.name,
                    disks: r
                        .disks
                        .iter()
                        .map(|d| {
                            let path = std::ffi::OsStr::from_bytes(&d.path);
                            sanlock_client::Disk::new(path, d.offset)
                        })
                        .collect(),
                    mode: match r.suffix {
                        ResourceSuffix::Shared => Mode::Shared,
                        _ => Mode::Exclusive,
                    },
                    lver: None,
                    persistent: false,
                });
            }
            other => return Err(format!("unknown option {}", String::from_utf8_lossy(other))),
        }
    }
    Ok(args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A number field, or null where the daemon wrote "-" (never seen).
fn number(r: &StateRecord, key: &str) -> Value {
    r.get(key)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Value::Null, Value::from)
}

/// The view as one JSON value: what both outputs are made from.
fn view(client: &Client, args: &Args) -> sanlock_client::Result<Value> {
    let records = client.show()?;
    let wanted = |name: &sanlock_client::Name| {
        args.lockspace
            .as_ref()
            .is_none_or(|w| w.as_bytes() == name.as_bytes())
    };
    let daemon = records.iter().find(|r| r.kind == StateKind::Daemon);
    let host = |ls: &sanlock_client::Name, id: u64| {
        records
            .iter()
            .find(|r| r.kind == StateKind::Host && r.name == *ls && u64::from(r.data32) == id)
    };
    let lockspaces: Vec<Value> = records
        .iter()
        .filter(|r| r.kind == StateKind::Lockspace && wanted(&r.name))
        .map(|ls| {
            let hosts: Vec<Value> = records
                .iter()
                .filter(|h| h.kind == StateKind::Host && h.name == ls.name)
                .map(|h| {
                    json!({
                        "host_id": h.data32,
                        "generation": number(h, "generation"),
                        "name": h.get("owner_name").unwrap_or(""),
                        "state": h.get("state").unwrap_or("unknown"),
                        "timestamp": h.data64,
                        "io_timeout": number(h, "io_timeout"),
                        "seconds_since_renewal": number(h, "since_renewal"),
                    })
                })
                .collect();
            json!({
                "name": text(ls.name.as_bytes()),
                "state": ls.get("state").unwrap_or(""),
                "host_id": ls.data64,
                "generation": number(ls, "generation"),
                "io_timeout": number(ls, "io_timeout"),
                "seconds_since_renewal": number(ls, "since_renewal"),
                "path": ls.get("path").unwrap_or(""),
                "offset": number(ls, "path_offset"),
                "hosts": hosts,
            })
        })
        .collect();
    let leases: Vec<Value> = records
        .iter()
        .filter(|r| r.kind == StateKind::Resource)
        .filter_map(|r| Some((r, r.resource.as_ref()?)))
        .filter(|(_, res)| wanted(&res.lockspace))
        .map(|(r, res)| {
            json!({
                "lockspace": text(res.lockspace.as_bytes()),
                "resource": text(res.name.as_bytes()),
                "pid": r.data32 as i32,
                "orphan": r.get("list") == Some("orphan"),
                "mode": if res.mode == Mode::Shared { "SH" } else { "EX" },
                "lver": r.data64,
                "disks": res.disks.iter().map(|d| json!({
                    "path": d.path.to_string_lossy(),
                    "offset": d.offset,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut owners = Vec::new();
    for res in &args.resources {
        let (read, holders) = client.read_resource_owners(res)?;
        let holders: Vec<Value> = holders
            .iter()
            .map(|o| {
                let seen = host(&res.lockspace, o.host_id);
                json!({
                    "host_id": o.host_id,
                    "generation": o.generation,
                    "name": seen.and_then(|h| h.get("owner_name")),
                    "state": seen.and_then(|h| h.get("state")),
                    "seconds_since_renewal": seen.map_or(Value::Null, |h| number(h, "since_renewal")),
                })
            })
            .collect();
        owners.push(json!({
            "lockspace": text(res.lockspace.as_bytes()),
            "resource": text(res.name.as_bytes()),
            "lver": read.lver.unwrap_or(0),
            "mode": if read.mode == Mode::Shared { "SH" } else { "EX" },
            "owners": holders,
        }));
    }
    let waits: Vec<Value> = records
        .iter()
        .filter(|r| r.kind == StateKind::Wait)
        .map(|w| {
            let op = w.get("op").unwrap_or("");
            let (lockspace, resource) = match w.get("lockspace") {
                Some(ls) => (ls.to_string(), Some(text(w.name.as_bytes()))),
                None => (text(w.name.as_bytes()), None),
            };
            json!({
                "op": op,
                "lockspace": lockspace,
                "resource": resource,
                "kind": w.get("kind").unwrap_or(""),
                "seconds_left": number(w, "left"),
                "owner_id": number(w, "owner_id"),
                "owner_generation": number(w, "owner_generation"),
                "holders": number(w, "count"),
            })
        })
        .filter(|w| {
            args.lockspace
                .as_ref()
                .is_none_or(|n| w["lockspace"] == n.as_str())
        })
        .collect();
    Ok(json!({
        "host_name": daemon.map_or(String::new(), |d| text(d.name.as_bytes())),
        "now": daemon.map_or(Value::Null, |d| number(d, "now")),
        "lockspaces": lockspaces,
        "leases": leases,
        "owners": owners,
        "waits": waits,
    }))
}

/// "3s ago", or "never" for a host not yet seen renewing.
fn ago(v: &Value) -> String {
    v.as_u64().map_or("not yet seen renewing".to_string(), |s| {
        format!("renewed {s}s ago")
    })
}

/// What a wait record says, in words: shared with the progress lines of waiting actions.
pub fn describe_wait(w: &Value) -> String {
    let what = match w["kind"].as_str().unwrap_or("") {
        "host_id_holder" => "the host id's previous holder to be certainly gone".to_string(),
        "host_id_settle" => "hosts racing for the same host id to show".to_string(),
        "owner_dead" => format!(
            "owner host {} (generation {}) to be certainly dead",
            w["owner_id"], w["owner_generation"]
        ),
        "backoff" => "the next ballot after a lost one".to_string(),
        "io" => "the disk".to_string(),
        "holders" => format!("{} lease holders to exit", w["holders"]),
        other => other.to_string(),
    };
    match w["seconds_left"].as_u64() {
        Some(s) => format!("waiting for {what}, {s}s left"),
        None => format!("waiting for {what}"),
    }
}

fn render(v: &Value) -> String {
    let s = |v: &Value| v.as_str().map_or(v.to_string(), str::to_string);
    let mut out = format!("daemon {} now {}\n", s(&v["host_name"]), v["now"]);
    for ls in v["lockspaces"].as_array().into_iter().flatten() {
        out += &format!(
            "lockspace {} {} host_id {} generation {} io_timeout {} {} {}:{}\n",
            s(&ls["name"]),
            s(&ls["state"]),
            ls["host_id"],
            ls["generation"],
            ls["io_timeout"],
            ago(&ls["seconds_since_renewal"]),
            s(&ls["path"]),
            ls["offset"],
        );
        for h in ls["hosts"].as_array().into_iter().flatten() {
            out += &format!(
                "  host {} generation {} {} {} name {}\n",
                h["host_id"],
                h["generation"],
                s(&h["state"]),
                ago(&h["seconds_since_renewal"]),
                s(&h["name"]),
            );
        }
    }
    for l in v["leases"].as_array().into_iter().flatten() {
        let holder = if l["orphan"] == true {
            format!("orphan of pid {}", l["pid"])
        } else {
            format!("pid {}", l["pid"])
        };
        out += &format!(
            "lease {}:{} {} lver {} held by {holder}\n",
            s(&l["lockspace"]),
            s(&l["resource"]),
            s(&l["mode"]),
            l["lver"],
        );
    }
    for o in v["owners"].as_array().into_iter().flatten() {
        let owners = o["owners"].as_array().cloned().unwrap_or_default();
        if owners.is_empty() {
            out += &format!(
                "owner {}:{} lver {}: free\n",
                s(&o["lockspace"]),
                s(&o["resource"]),
                o["lver"]
            );
        }
        for h in owners {
            out += &format!(
                "owner {}:{} lver {} {}: host {} generation {} name {} {}\n",
                s(&o["lockspace"]),
                s(&o["resource"]),
                o["lver"],
                s(&o["mode"]),
                h["host_id"],
                h["generation"],
                h["name"].as_str().unwrap_or("(not seen in the lockspace)"),
                h["state"].as_str().map_or(String::new(), |st| format!(
                    "{st}, {}",
                    ago(&h["seconds_since_renewal"])
                )),
            );
        }
    }
    for w in v["waits"].as_array().into_iter().flatten() {
        let target = match w["resource"].as_str() {
            Some(r) => format!("{}:{r}", s(&w["lockspace"])),
            None => s(&w["lockspace"]),
        };
        out += &format!("wait {} {target}: {}\n", s(&w["op"]), describe_wait(w));
    }
    out
}

/// Runs `client show` with the arguments after `show`: what to print and the exit status.
pub fn run(argv: &[Vec<u8>]) -> (Vec<u8>, i32) {
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprint!("sanlock client show: {e}\n{USAGE}");
            return (Vec::new(), 1);
        }
    };
    let client = Client::new();
    match view(&client, &args) {
        Ok(v) if args.json => (format!("{v}\n").into_bytes(), 0),
        Ok(v) => (render(&v).into_bytes(), 0),
        Err(e) => {
            eprintln!("sanlock client show: {e}");
            (Vec::new(), 1)
        }
    }
}

/// The waits of a SHOW reply, as `show --json` lists them (for the progress of waiting actions).
pub fn waits(client: &Client) -> sanlock_client::Result<Vec<Value>> {
    let args = Args {
        lockspace: None,
        resources: Vec::new(),
        json: true,
    };
    let v = view(client, &args)?;
    Ok(v["waits"].as_array().cloned().unwrap_or_default())
}
