//! Pieces shared by core's integration tests: the golden sectors, and the shared disks (with
//! core's model of I/O in flight) and jitter of the multi-host safety drivers.
#![allow(dead_code)] // each test file uses a different part

use std::time::Duration;

use bytes::Bytes;
use sanlock_core::flight::{FlightId, Flights};
use sanlock_core::io::{DiskRef, IoRequest, IoResult};
use sanlock_core::memdisk::MemDisk;
use sanlock_core::rng::Rng;

/// A sector written by sanlock 3.8.5 (core/testdata, made by capture.sh).
#[macro_export]
macro_rules! golden {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/",
            $name,
            ".sector"
        ))
    };
}

/// A random delay of 0 ..= `max_ms` milliseconds.
pub fn millis(rng: &mut Rng, max_ms: u64) -> Duration {
    Duration::from_millis(rng.below(max_ms + 1))
}

/// Fails a safety run: the seed to replay it, the violation, and the newest `tail` steps of
/// its timeline, newest first.
pub fn report_violation(
    seed: u64,
    hosts: usize,
    violation: &str,
    timeline: &[String],
    tail: usize,
) -> ! {
    let steps: Vec<&str> = timeline
        .iter()
        .rev()
        .take(tail)
        .map(String::as_str)
        .collect();
    panic!(
        "seed {seed}, {hosts} hosts: {violation}\nlast steps, newest first:\n{}",
        steps.join("\n")
    );
}

/// A completion on its way to the machine that issued the I/O (the flight names it).
#[derive(Debug)]
pub struct Done {
    pub flight: FlightId,
    pub result: IoResult,
}

/// The shared disks of a safety run and the I/O in flight to them, under core's one model of
/// flights (`sanlock_core::flight`): an I/O reaches the disk at its completion instant (a write
/// lands whole then, a read sees the disk then); a host's machine that is gone (crashed, reset,
/// or replaced by a new one) hears of none of its I/O, while its writes still land.
pub struct SharedDisks {
    pub lockspace: MemDisk,
    /// The lease's first disk.
    pub lease: MemDisk,
    /// The lease's other disks, when it has several.
    pub more: Vec<MemDisk>,
    flights: Flights<()>,
    /// Writes that landed after their machine was gone (the runs check that some do).
    pub late_writes: u32,
}

impl SharedDisks {
    /// `lockspace` and `lease` as every host sees them, for `hosts` hosts.
    pub fn new(hosts: usize, lockspace: MemDisk, lease: MemDisk) -> Self {
        SharedDisks {
            lockspace,
            lease,
            more: Vec::new(),
            flights: Flights::new(hosts, 512),
            late_writes: 0,
        }
    }

    /// Host `host`'s current machine issues `request` at world time `at`.
    pub fn issue(&mut self, host: usize, request: IoRequest, at: Duration) -> FlightId {
        self.flights
            .issue(host, request, at, ())
            .expect("a machine's io ids are unique")
    }

    /// Flight `id` fails with EIO at the disk now: a write lands nothing.
    pub fn fail(&mut self, id: FlightId) -> Option<Done> {
        self.flights.get(id)?;
        self.flights.never_lands(id).expect("listed");
        self.flights.get(id)?;
        let result = Err(sanlock_core::io::IoError::Failed(5));
        let delivery = self.flights.complete(id, result).expect("by the rules")?;
        Some(Done {
            flight: id,
            result: delivery.result,
        })
    }

    /// Which disk flight `id` is for, while it is in flight.
    pub fn disk_of(&self, id: FlightId) -> Option<DiskRef> {
        self.flights.get(id).map(|f| f.disk())
    }

    /// Flight `id` reaches the disk now; the completion, if its machine still waits for it.
    pub fn complete(&mut self, id: FlightId) -> Option<Done> {
        let flight = self.flights.get(id)?;
        let (disk, offset, len) = (flight.disk(), flight.offset(), flight.len());
        let result = if flight.is_write() {
            self.late_writes += u32::from(!flight.owed());
            for landing in self.flights.land_all(id).expect("listed") {
                self.disk(landing.disk)
                    .write(landing.offset, &landing.bytes);
            }
            Ok(Bytes::new())
        } else {
            self.disk(disk).read(offset, len)
        };
        // A write of a machine that is gone, landed whole: nothing of it is left.
        self.flights.get(id)?;
        let delivery = self.flights.complete(id, result).expect("by the rules")?;
        Some(Done {
            flight: id,
            result: delivery.result,
        })
    }

    /// Whether `done` is for host `host`'s current machine (a paused host takes it up later,
    /// when a new machine may have replaced the one that issued it).
    pub fn is_current(&self, host: usize, done: &Done) -> bool {
        done.flight.incarnation == self.flights.incarnation(host)
    }

    /// Host `host`'s machine is gone: its I/O completes to nobody; its writes still land.
    pub fn machine_gone(&mut self, host: usize) {
        self.flights.crash(host);
    }

    /// Which machine of host `host` is current: completions carry it, to be checked on delivery.
    pub fn incarnation(&self, host: usize) -> u32 {
        self.flights.incarnation(host)
    }

    fn disk(&mut self, disk: DiskRef) -> &mut MemDisk {
        match disk {
            DiskRef::Lockspace => &mut self.lockspace,
            DiskRef::Lease(d) if d.index() == 0 => &mut self.lease,
            DiskRef::Lease(d) => &mut self.more[d.index() - 1],
        }
    }
}
