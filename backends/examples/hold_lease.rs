//! Joins a lockspace as host 1, takes one resource lease, holds it (renewing the delta lease)
//! for a while, releases it and leaves: the core's Host on real files, through `drive`.
//!
//! `cargo run --release -p sanlock-backends --example hold_lease -- SPACE LOCKSPACE_FILE
//! RESOURCE LEASE_FILE:OFFSET SECONDS` (areas made by `sanlock direct init`, 512-byte sectors).

use std::time::Duration;

use sanlock_backends::drive::HostDriver;
use sanlock_backends::file::FileStorage;
use sanlock_backends::uring::UringStorage;
use sanlock_backends::{clock, DiskId, Storage};
use sanlock_core::host::{Host, HostConfig, JoinRequest, Output};
use sanlock_core::ondisk::{Geometry, Name, SectorSize};
use sanlock_core::paxos::{AcquireRequest, Event};
use sanlock_core::HostId;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [space, lockspace, resource, lease, seconds] = &args[..] else {
        eprintln!("usage: hold_lease SPACE LOCKSPACE_FILE RESOURCE LEASE_FILE:OFFSET SECONDS");
        std::process::exit(2);
    };
    let name = |s: &str| {
        Name::new(s.as_bytes()).unwrap_or_else(|e| {
            eprintln!("{s}: {e}");
            std::process::exit(2)
        })
    };
    let (space, resource) = (name(space), name(resource));
    let (lease_path, offset) = lease.rsplit_once(':').unwrap_or((lease, "0"));
    let offset: u64 = offset.parse().expect("a byte offset");
    let hold = Duration::from_secs(seconds.parse().expect("seconds"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // io_uring where the kernel allows it, worker threads otherwise.
        match UringStorage::new() {
            Ok(s) => run(s, space, lockspace, resource, lease_path, offset, hold).await,
            Err(e) => {
                println!("io_uring unavailable ({e}); using worker threads");
                run(
                    FileStorage::new(),
                    space,
                    lockspace,
                    resource,
                    lease_path,
                    offset,
                    hold,
                )
                .await
            }
        }
    });
}

trait Open {
    fn open_path(&mut self, path: &str) -> DiskId;
}

impl Open for UringStorage {
    fn open_path(&mut self, path: &str) -> DiskId {
        self.open(path).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Open for FileStorage {
    fn open_path(&mut self, path: &str) -> DiskId {
        self.open(path).unwrap_or_else(|e| panic!("{e}"))
    }
}

async fn run<S: Storage + Open>(
    mut storage: S,
    space: Name,
    lockspace: &str,
    resource: Name,
    lease: &str,
    offset: u64,
    hold: Duration,
) {
    let ls_disk = storage.open_path(lockspace);
    let lease_disk = storage.open_path(lease);
    let mut driver = HostDriver::new(
        Host::new(HostConfig::new(Name::new(b"quickstart-host").unwrap())),
        storage,
    );
    driver.set_lockspace_disk(space, ls_disk);
    driver.set_lease_disk(space, resource, lease_disk);
    let join = JoinRequest {
        space_name: space,
        host_id: HostId::new(1).unwrap(),
        geometry: Geometry::legacy(SectorSize::Bytes512),
        offset: 0,
        io_timeout_s: 1,
    };
    let started = clock::now();
    let at = |now: sanlock_core::Time| now.saturating_since(started).as_secs_f64();
    driver.host_mut().join(clock::now(), join);
    let mut release_at = None;
    loop {
        let until = release_at.unwrap_or(clock::now() + Duration::from_secs(120));
        let outputs = driver.run(until).await;
        let now = clock::now();
        if outputs.is_empty() && release_at.is_some_and(|t| now >= t) {
            release_at = None;
            println!("[{:5.1}s] releasing {resource}", at(now));
            driver.host_mut().release(now, space, resource);
            continue;
        }
        for out in outputs {
            match out {
                Output::Joined { generation, .. } => {
                    println!(
                        "[{:5.1}s] joined lockspace {space} as host 1, generation {generation}",
                        at(now)
                    );
                    driver.host_mut().acquire(
                        now,
                        space,
                        resource,
                        sanlock_core::quorum::LeaseDisks::one(offset),
                        AcquireRequest::default(),
                    );
                }
                Output::JoinFailed { rv, .. } => {
                    println!("[{:5.1}s] join failed: {rv}", at(now));
                    return;
                }
                Output::WatchdogArm { expire, .. } => {
                    println!(
                        "[{:5.1}s] delta lease renewed; watchdog armed until {:.1}s",
                        at(now),
                        at(expire)
                    );
                }
                Output::Resource {
                    event: Event::Acquired { leader, .. },
                    ..
                } => {
                    println!(
                        "[{:5.1}s] acquired {resource} (lver {}), holding it for {} s",
                        at(now),
                        leader.lver,
                        hold.as_secs()
                    );
                    release_at = Some(now + hold);
                }
                Output::Resource {
                    event: Event::AcquireFailed { rv },
                    ..
                } => {
                    println!("[{:5.1}s] acquire failed: {rv}", at(now));
                    driver.host_mut().leave(now, space);
                }
                Output::Resource {
                    event: Event::Released,
                    ..
                } => {
                    println!("[{:5.1}s] released {resource}; leaving {space}", at(now));
                    driver.host_mut().leave(now, space);
                }
                Output::Left { .. } => {
                    println!("[{:5.1}s] left {space}", at(now));
                    return;
                }
                other => println!("[{:5.1}s] {other:?}", at(now)),
            }
        }
    }
}
