//! `direct acquire_id`, `renew_id`, `release_id` (a lockspace's delta lease) and `direct
//! acquire`, `release` (a resource's paxos lease with `-i host_id -g generation`), without a
//! daemon (direct.c `do_delta_action`, `do_paxos_action`). acquire_id and acquire run the core's
//! machines through the storage backends; the lease stays held on disk when the command exits,
//! as with sanlock. renew_id and release_id are one read and one write of the host's sector;
//! release clears the leader's timestamp when the leader names (-i, -g) as its owner.
//!
//! With no daemon there is no table of other hosts: a paxos lease owned by another host cannot
//! be judged, and its acquire fails with SANLK_ACQUIRE_LOCKSPACE, as 3.8.5's does.

use sanlock_backends::clock;
use sanlock_backends::disk::Disk;
use sanlock_backends::storage::sleep_until;
use sanlock_backends::{DiskId, Io, Storage};
use sanlock_core::delta::{self, DeltaConfig, DeltaLease};
use sanlock_core::io::{DiskRef, IoError, IoId, IoRequest, IoResult};
use sanlock_core::ondisk::{DeltaSector, Geometry, LeaderKind, Name, RawLeader, SectorSize};
use sanlock_core::paxos::{self, AcquireRequest, PaxosConfig, PaxosLease};
use sanlock_core::quorum::{majority, LeaseDisks, MAX_LEASE_DISKS};
use sanlock_core::rv::SANLK_ACQUIRE_LOCKSPACE;
use sanlock_core::{Generation, HostId, Time, Timeouts};

use super::{EINVAL, ENODEV};
use crate::cli::options::{DirectAction, Options};
use crate::server::storage::DaemonStorage;

/// Runs one of the five actions and prints `<action> done <rv>` (renew_id keeps sanlock's
/// `rewew_id` spelling).
pub fn run(action: DirectAction, options: &Options, out: &mut Vec<u8>) -> i32 {
    let (label, rv) = match action {
        DirectAction::AcquireId => ("acquire_id", acquire_id(options)),
        DirectAction::RenewId => ("rewew_id", renew_id(options)),
        DirectAction::ReleaseId => ("release_id", release_id(options)),
        DirectAction::Acquire => ("acquire", acquire(options)),
        DirectAction::Release => ("release", release(options)),
        other => unreachable!("{other:?} is not a lease action"),
    };
    out.extend_from_slice(format!("{label} done {rv}\n").as_bytes());
    rv
}

/// The io_timeout a direct action uses: `-o`, 0 meaning 10.
fn io_timeout(options: &Options) -> u64 {
    match options.io_timeout_arg {
        n if n <= 0 => 10,
        n => n as u64,
    }
}

/// Our host name for a delta lease: `-e`, else a fresh UUID and the node name (main.c).
fn host_name(options: &Options) -> Name {
    if !options.our_host_name.is_empty() {
        return Name::truncated(&options.our_host_name);
    }
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let node = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Name::truncated(format!("{uuid}.{node}").as_bytes())
}

/// The geometry of the area at `offset`: -Z/-A, else its first leader's.
fn geometry(options: &Options, disk: &Disk, offset: u64) -> Result<Geometry, i32> {
    if let Some(g) = super::geometry_from_options(options)? {
        return Ok(g);
    }
    let buf = disk.read(offset, 4096).or_else(|_| disk.read(offset, 512));
    let buf = buf.map_err(|e| e.rv())?;
    let raw = RawLeader::parse(&buf.as_ref()[..sanlock_core::ondisk::leader::LEADER_RECORD_SIZE])
        .map_err(|_| EINVAL)?;
    raw.geometry()
        .map_err(|_| sanlock_core::rv::SANLK_LEADER_MAGIC)
}

fn acquire_id(options: &Options) -> i32 {
    let ls = &options.lockspace;
    if ls.path.is_empty() {
        return ENODEV;
    }
    let Some(host_id) = HostId::new(ls.host_id) else {
        return EINVAL;
    };
    let disk = match Disk::open(&ls.path) {
        Ok(d) => d,
        Err(_) => return ENODEV,
    };
    let geometry = match geometry(options, &disk, ls.offset) {
        Ok(g) => g,
        Err(rv) => return rv,
    };
    drop(disk);
    let mut lease = DeltaLease::new(DeltaConfig {
        space_name: ls.name,
        host_id,
        host_name: host_name(options),
        geometry,
        offset: ls.offset,
        timeouts: Timeouts::new(io_timeout(options)),
    });
    drive(
        std::slice::from_ref(&ls.path),
        |now, lease: &mut DeltaLease| {
            lease.acquire(now);
        },
        &mut lease,
        |_, event| match event {
            delta::Event::Acquired { .. } => Some(0),
            delta::Event::AcquireFailed { rv } => Some(rv),
            _ => None,
        },
    )
}

/// Reads and checks host_id's delta sector as delta_lease_leader_read does.
fn read_delta(options: &Options) -> Result<(Disk, u64, DeltaSector, SectorSize), i32> {
    let ls = &options.lockspace;
    if ls.path.is_empty() {
        return Err(ENODEV);
    }
    let host_id = HostId::new(ls.host_id).ok_or(EINVAL)?;
    let disk = Disk::open(&ls.path).map_err(|_| ENODEV)?;
    let geometry = geometry(options, &disk, ls.offset)?;
    let ss = geometry.sector_size();
    let at = ls.offset + geometry.sector_offset(geometry.delta_sector(host_id));
    let buf = disk.read(at, ss.as_usize()).map_err(|e| e.rv())?;
    let raw = RawLeader::parse(&buf.as_ref()[..sanlock_core::ondisk::leader::LEADER_RECORD_SIZE])
        .map_err(|_| EINVAL)?;
    raw.check_as_sanlock(LeaderKind::Delta, &ls.name, None, None)?;
    let sector =
        DeltaSector::decode(buf.as_ref(), at).map_err(|e| e.problem.sanlk_code(e.record))?;
    Ok((disk, at, sector, ss))
}

/// One renewal of host_id's delta lease: the timestamp becomes now (monotonic seconds), the
/// bitmap empty (delta_lease_renew with no bitmap).
fn renew_id(options: &Options) -> i32 {
    let (disk, at, mut sector, ss) = match read_delta(options) {
        Ok(r) => r,
        Err(rv) => return rv,
    };
    if sector.leader.owner_id.map(HostId::get) != Some(options.lockspace.host_id) {
        return sanlock_core::rv::SANLK_RENEW_OWNER;
    }
    sector.leader.timestamp = super::monotime_s();
    sector.bitmap = Default::default();
    write_sector(&disk, at, &sector.encode(), ss)
}

/// Releases host_id's delta lease: timestamp 0 (delta_lease_release).
fn release_id(options: &Options) -> i32 {
    let (disk, at, mut sector, ss) = match read_delta(options) {
        Ok(r) => r,
        Err(rv) => return rv,
    };
    sector.leader.timestamp = 0;
    write_sector(&disk, at, &sector.encode(), ss)
}

fn write_sector(disk: &Disk, at: u64, bytes: &[u8], ss: SectorSize) -> i32 {
    assert_eq!(bytes.len(), ss.as_usize());
    match disk.write(at, &sanlock_backends::disk::AlignedBuf::from_slice(bytes)) {
        Ok(()) => 0,
        Err(e) => e.rv(),
    }
}

/// The resource (-r, one to four disks), host_id (-i) and generation (-g).
struct PaxosArgs {
    space: Name,
    name: Name,
    /// Each disk's path and the lease's offset on it.
    disks: Vec<(Vec<u8>, u64)>,
    host_id: HostId,
    generation: Generation,
}

impl PaxosArgs {
    fn offsets(&self) -> LeaseDisks {
        let offsets: Vec<u64> = self.disks.iter().map(|d| d.1).collect();
        LeaseDisks::new(&offsets).expect("one to four disks, checked by paxos_args")
    }
}

fn paxos_args(options: &Options) -> Result<PaxosArgs, i32> {
    let res = options.resources.first().ok_or(EINVAL)?;
    if res.disks.is_empty() || res.disks.len() > MAX_LEASE_DISKS {
        return Err(EINVAL);
    }
    let host_id = HostId::new(options.host_id).ok_or(EINVAL)?;
    Ok(PaxosArgs {
        space: res.lockspace_name,
        name: res.name,
        disks: res
            .disks
            .iter()
            .map(|d| (d.path.clone(), d.offset))
            .collect(),
        host_id,
        generation: Generation(options.host_generation),
    })
}

/// Each disk of a lease, in order: open, or the error opening it.
type OpenedDisks = Vec<Result<Disk, i32>>;

/// The lease of -r/-i/-g, each of its disks opened (or why not), and its geometry (-Z/-A,
/// else the leader of the first disk that has one). A minority of disks may fail to open.
fn open_lease(options: &Options) -> Result<(PaxosArgs, OpenedDisks, Geometry), i32> {
    let args = paxos_args(options)?;
    let disks: Vec<Result<Disk, i32>> = args
        .disks
        .iter()
        .map(|(path, _)| Disk::open(path).map_err(|e| e.rv()))
        .collect();
    let opened = disks.iter().filter(|d| d.is_ok()).count();
    if !majority(disks.len(), opened) {
        let first = disks.iter().find_map(|d| d.as_ref().err().copied());
        return Err(first.unwrap_or(ENODEV));
    }
    let mut first_error = EINVAL;
    for (disk, (_, offset)) in disks.iter().zip(&args.disks) {
        let Ok(disk) = disk else { continue };
        match geometry(options, disk, *offset) {
            Ok(g) => return Ok((args, disks, g)),
            Err(rv) => first_error = rv,
        }
    }
    Err(first_error)
}

fn acquire(options: &Options) -> i32 {
    let (args, disks, geometry) = match open_lease(options) {
        Ok(opened) => opened,
        Err(rv) => return rv,
    };
    drop(disks);
    let mut lease = PaxosLease::new(PaxosConfig {
        space_name: args.space,
        resource_name: args.name,
        geometry,
        disks: args.offsets(),
        host_id: args.host_id,
        generation: args.generation,
        timeouts: Timeouts::new(io_timeout(options)),
        lockspace_geometry: geometry,
        lockspace_offset: 0,
        rng_seed: u64::from(std::process::id()),
    });
    let shared = matches!(
        options.resources[0].suffix,
        crate::cli::locators::ResourceSuffix::Shared
    );
    let request = AcquireRequest {
        shared,
        ..AcquireRequest::default()
    };
    let paths: Vec<Vec<u8>> = args.disks.iter().map(|d| d.0.clone()).collect();
    drive(
        &paths,
        |now, lease: &mut PaxosLease| lease.acquire(now, request),
        &mut lease,
        |lease, event| match event {
            paxos::Event::Acquired { .. } => Some(0),
            paxos::Event::AcquireFailed { rv } => Some(rv),
            // No lockspace to judge another owner by (paxos_lease.c: "no lockspace info").
            paxos::Event::NeedOwnerStatus { .. } | paxos::Event::NeedHostStatus { .. } => {
                lease.abort(clock::now());
                Some(SANLK_ACQUIRE_LOCKSPACE)
            }
            _ => None,
        },
    )
}

/// Clears the leader's timestamp when it names (host_id, generation) as owner, on every disk
/// of the lease; on several disks it succeeds when a majority did.
fn release(options: &Options) -> i32 {
    let (args, disks, geometry) = match open_lease(options) {
        Ok(opened) => opened,
        Err(rv) => return rv,
    };
    let mut done = 0;
    let mut first_error = None;
    for (disk, (_, offset)) in disks.iter().zip(&args.disks) {
        let rv = match disk {
            Ok(disk) => release_on(&args, disk, *offset, geometry),
            Err(rv) => *rv,
        };
        if rv == 0 {
            done += 1;
        } else {
            first_error.get_or_insert(rv);
        }
    }
    if majority(disks.len(), done) {
        0
    } else {
        first_error.unwrap_or(EINVAL)
    }
}

/// The release on one disk.
fn release_on(args: &PaxosArgs, disk: &Disk, offset: u64, geometry: Geometry) -> i32 {
    let ss = geometry.sector_size();
    let buf = match disk.read(offset, ss.as_usize()) {
        Ok(b) => b,
        Err(e) => return e.rv(),
    };
    let raw =
        match RawLeader::parse(&buf.as_ref()[..sanlock_core::ondisk::leader::LEADER_RECORD_SIZE]) {
            Ok(r) => r,
            Err(_) => return EINVAL,
        };
    if let Err(rv) = raw.check_as_sanlock(LeaderKind::Paxos, &args.space, Some(&args.name), None) {
        return rv;
    }
    if raw.owner_id != args.host_id.get()
        || raw.owner_generation != args.generation.0
        || raw.timestamp == 0
    {
        // Not ours: nothing to release. 3.8.5 answers 0 here too (it never compares the owner,
        // and in fact never writes: see docs/COMPATIBILITY.md).
        eprintln!(
            "sanlock: the lease is not held by host_id {} generation {}; nothing written",
            args.host_id.get(),
            args.generation.0
        );
        return 0;
    }
    let mut leader = raw;
    leader.timestamp = 0;
    leader.write_id = args.host_id.get();
    leader.write_generation = args.generation.0;
    leader.write_timestamp = super::monotime_s();
    leader.flags &= !sanlock_core::ondisk::leader::LFL_SHORT_HOLD;
    let leader = leader.sealed();
    let mut sector = buf.as_ref().to_vec();
    sector[..sanlock_core::ondisk::leader::LEADER_RECORD_SIZE].copy_from_slice(&leader.to_bytes());
    write_sector(disk, offset, &sector, ss)
}

/// What both machines offer a driver.
trait Machine {
    type Event;
    /// Every I/O goes to the one disk (a delta lease); else only the lease's disks are served.
    const ONE_DISK: bool;
    fn poll_io(&mut self) -> Option<IoRequest>;
    fn poll_event(&mut self) -> Option<Self::Event>;
    fn poll_timeout(&self) -> Option<Time>;
    fn handle_io(&mut self, now: Time, id: IoId, result: IoResult);
    fn handle_timeout(&mut self, now: Time);
}

macro_rules! machine {
    ($t:ty, $e:ty, $one:expr) => {
        impl Machine for $t {
            type Event = $e;
            const ONE_DISK: bool = $one;
            fn poll_io(&mut self) -> Option<IoRequest> {
                <$t>::poll_io(self)
            }
            fn poll_event(&mut self) -> Option<$e> {
                <$t>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<Time> {
                <$t>::poll_timeout(self)
            }
            fn handle_io(&mut self, now: Time, id: IoId, result: IoResult) {
                <$t>::handle_io(self, now, id, result)
            }
            fn handle_timeout(&mut self, now: Time) {
                <$t>::handle_timeout(self, now)
            }
        }
    };
}

machine!(DeltaLease, delta::Event, true);
machine!(PaxosLease, paxos::Event, false);

/// Runs `machine` on the disks at `paths` (a lease's, in order) through the backends until
/// `verdict` gives a result. I/O for a disk that would not open, or any other disk (an owner's
/// delta lease), fails with ENODEV.
fn drive<M: Machine>(
    paths: &[Vec<u8>],
    start: impl FnOnce(Time, &mut M),
    machine: &mut M,
    mut verdict: impl FnMut(&mut M, M::Event) -> Option<i32>,
) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return -12,
    };
    runtime.block_on(async {
        let mut storage = DaemonStorage::new();
        let mut disks: Vec<Option<DiskId>> = Vec::new();
        let mut first_error = None;
        for path in paths {
            match storage.open(path) {
                Ok(d) => disks.push(Some(d)),
                Err(e) => {
                    first_error.get_or_insert(e.rv());
                    disks.push(None);
                }
            }
        }
        if !majority(disks.len(), disks.iter().flatten().count()) {
            return first_error.unwrap_or(ENODEV);
        }
        start(clock::now(), machine);
        loop {
            let mut batch = Vec::new();
            while let Some(req) = machine.poll_io() {
                let disk = match req.disk {
                    _ if M::ONE_DISK => disks[0],
                    DiskRef::Lease(d) => disks.get(d.index()).copied().flatten(),
                    DiskRef::Lockspace => None,
                };
                let Some(disk) = disk else {
                    machine.handle_io(clock::now(), req.id, Err(IoError::Failed(19)));
                    continue;
                };
                batch.push(Io {
                    id: req.id,
                    disk,
                    offset: req.offset,
                    op: req.op,
                    deadline: req.deadline,
                });
            }
            if !batch.is_empty() {
                storage.submit(batch);
            }
            while let Some(event) = machine.poll_event() {
                if let Some(rv) = verdict(machine, event) {
                    return rv;
                }
            }
            let wake = machine
                .poll_timeout()
                .unwrap_or_else(|| clock::now() + std::time::Duration::from_secs(1));
            if storage.stats().in_flight == 0 {
                sleep_until(wake).await;
                machine.handle_timeout(clock::now());
                continue;
            }
            tokio::select! {
                done = storage.completions() => {
                    let now = clock::now();
                    for c in done {
                        machine.handle_io(now, c.id, c.result);
                    }
                    machine.handle_timeout(now);
                }
                () = sleep_until(wake) => machine.handle_timeout(clock::now()),
            }
        }
    })
}
