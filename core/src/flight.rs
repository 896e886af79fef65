//! I/O in flight between simulated hosts and their shared disks: the one crash and completion
//! model of every test world (core's safety runs, the random simulator, the model checker).
//!
//! The rules, as a real machine and a real disk give them:
//! - a write lands sector by sector (each sector atomically), in any order, before it completes;
//! - a write that completes `Ok` has landed whole; one that fails may have landed in part;
//! - a host that crashes or is reset hears of none of its I/O again, but the writes it had
//!   issued may still land (they are in the storage path already);
//! - a completion of an earlier incarnation never reaches the host's next machine.
//!
//! Which sector lands when, and what a read sees, is the world's choice (random or explored);
//! [`Flights`] only keeps the record and refuses what the rules forbid.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::io::{DiskRef, IoId, IoOp, IoRequest, IoResult};
use crate::Time;

/// One I/O's name in a [`Flights`] table: its host, the host's incarnation, and the id the
/// host's machine gave it. Made of the world's state alone (no counter of the table's), so
/// that two worlds alike name their flights alike, as the model checker needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlightId {
    /// The host that issued it.
    pub host: usize,
    /// How many times that host had gone down before.
    pub incarnation: u32,
    /// The machine's id for it.
    pub io: IoId,
}

/// A sector of a write, landing on its disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landing {
    /// The disk the request named.
    pub disk: DiskRef,
    /// Byte offset of the sector on that disk.
    pub offset: u64,
    /// The sector's new bytes.
    pub bytes: Bytes,
}

/// A completion owed to a host's current machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The host that issued the I/O.
    pub host: usize,
    /// The id its machine gave the I/O.
    pub io: IoId,
    /// What the I/O did.
    pub result: IoResult,
}

/// What the rules forbid a world to do with a flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlightError {
    /// No such flight: it completed and landed, or never was.
    #[error("no I/O {0:?} in flight")]
    Unknown(FlightId),
    /// The host's machine issued two I/Os under one id.
    #[error("I/O {0:?} is in flight already")]
    Duplicate(FlightId),
    /// A write's completion reports success while some of its sectors have not landed.
    #[error("write {id:?} completes Ok with {unlanded} sectors not landed")]
    WriteNotLanded {
        /// The write.
        id: FlightId,
        /// How many of its sectors are still to land.
        unlanded: usize,
    },
    /// The completion was delivered, dropped or given up already.
    #[error("I/O {0:?} has completed already")]
    Completed(FlightId),
    /// Sector `index` is not one of the write's sectors still to land.
    #[error("sector {index} of {id:?} is not waiting to land")]
    NotWaiting {
        /// The write.
        id: FlightId,
        /// The sector's index within the write.
        index: usize,
    },
}

/// One I/O on its way: who issued it, when, and what of it is still to happen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flight<X> {
    disk: DiskRef,
    offset: u64,
    deadline: Time,
    /// What a read asks for, or what a write carries (shared: worlds copy flights a lot).
    op: Op,
    issued: Duration,
    /// Indices of the write's sectors still to land (none for a read).
    unlanded: Vec<u32>,
    /// The host's machine still waits for its completion.
    owed: bool,
    /// What the world keeps beside it (its planned fate, its target…).
    pub extra: X,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Op {
    Read(usize),
    Write(Bytes),
}

impl<X> Flight<X> {
    /// The disk the request named.
    pub fn disk(&self) -> DiskRef {
        self.disk
    }

    /// Its byte offset on that disk.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// When the host's machine stops waiting for it, on the host's clock.
    pub fn deadline(&self) -> Time {
        self.deadline
    }

    /// World time it was issued.
    pub fn issued(&self) -> Duration {
        self.issued
    }

    /// A write (else a read).
    pub fn is_write(&self) -> bool {
        matches!(self.op, Op::Write(_))
    }

    /// Bytes it reads or writes.
    pub fn len(&self) -> usize {
        match &self.op {
            Op::Read(len) => *len,
            Op::Write(data) => data.len(),
        }
    }

    /// Whether it moves no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sectors of the write still to land, as indices within it.
    pub fn unlanded(&self) -> impl Iterator<Item = usize> + '_ {
        self.unlanded.iter().map(|&i| i as usize)
    }

    /// The host's machine still waits for its completion (it has not crashed since).
    pub fn owed(&self) -> bool {
        self.owed
    }

    fn landing(&self, index: usize, sector: usize) -> Landing {
        let Op::Write(data) = &self.op else {
            unreachable!("only writes have sectors to land")
        };
        let at = index * sector;
        Landing {
            disk: self.disk,
            offset: self.offset + at as u64,
            bytes: data.slice(at..(at + sector).min(data.len())),
        }
    }

    fn finished(&self) -> bool {
        !self.owed && self.unlanded.is_empty()
    }
}

/// Every I/O in flight in a world of hosts, in issue order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flights<X> {
    incarnations: Vec<u32>,
    sector: usize,
    flights: BTreeMap<FlightId, Flight<X>>,
}

impl<X> Flights<X> {
    /// No I/O yet, for `hosts` hosts on disks of `sector`-byte sectors.
    pub fn new(hosts: usize, sector: usize) -> Self {
        Flights {
            incarnations: vec![0; hosts],
            sector,
            flights: BTreeMap::new(),
        }
    }

    /// Host `host`'s machine issues `request` at world time `at`.
    pub fn issue(
        &mut self,
        host: usize,
        request: IoRequest,
        at: Duration,
        extra: X,
    ) -> Result<FlightId, FlightError> {
        let id = FlightId {
            host,
            incarnation: self.incarnations[host],
            io: request.id,
        };
        if self.flights.contains_key(&id) {
            return Err(FlightError::Duplicate(id));
        }
        let (op, unlanded) = match request.op {
            IoOp::Read { len } => (Op::Read(len), Vec::new()),
            IoOp::Write { data } => {
                let sectors = data.len().div_ceil(self.sector) as u32;
                (Op::Write(Bytes::from(data)), (0..sectors).collect())
            }
        };
        let flight = Flight {
            disk: request.disk,
            offset: request.offset,
            deadline: request.deadline,
            op,
            issued: at,
            unlanded,
            owed: true,
            extra,
        };
        self.flights.insert(id, flight);
        Ok(id)
    }

    /// Host `host` goes down (a crash, a watchdog reset): none of its I/O completes to it, and
    /// its machine after a restart is a new incarnation. Writes it issued may still land. Its
    /// flights stay listed: the disk still does them, to nobody, until the world completes them
    /// (delivering nothing) or says they never complete.
    pub fn crash(&mut self, host: usize) {
        self.incarnations[host] += 1;
        for (_, flight) in self.flights.iter_mut().filter(|(id, _)| id.host == host) {
            flight.owed = false;
        }
    }

    /// Host `host`'s incarnation: how many times it went down.
    pub fn incarnation(&self, host: usize) -> u32 {
        self.incarnations[host]
    }

    /// The flight `id`, while anything of it is still to happen.
    pub fn get(&self, id: FlightId) -> Option<&Flight<X>> {
        self.flights.get(&id)
    }

    /// The world's part of flight `id`.
    pub fn extra_mut(&mut self, id: FlightId) -> Option<&mut X> {
        self.flights.get_mut(&id).map(|f| &mut f.extra)
    }

    /// Every flight, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (FlightId, &Flight<X>)> {
        self.flights.iter().map(|(&id, f)| (id, f))
    }

    /// Sector `index` of write `id` lands now: the world applies the returned bytes to its disk.
    pub fn land(&mut self, id: FlightId, index: usize) -> Result<Landing, FlightError> {
        let flight = self.flights.get_mut(&id).ok_or(FlightError::Unknown(id))?;
        let at = flight
            .unlanded
            .iter()
            .position(|&i| i as usize == index)
            .ok_or(FlightError::NotWaiting { id, index })?;
        flight.unlanded.remove(at);
        let landing = flight.landing(index, self.sector);
        self.forget_if_finished(id);
        Ok(landing)
    }

    /// Every sector of write `id` still to land lands now, in order.
    pub fn land_all(&mut self, id: FlightId) -> Result<Vec<Landing>, FlightError> {
        let flight = self.flights.get_mut(&id).ok_or(FlightError::Unknown(id))?;
        let sector = self.sector;
        let landings = flight
            .unlanded
            .iter()
            .map(|&i| flight.landing(i as usize, sector));
        let landings = landings.collect();
        flight.unlanded.clear();
        self.forget_if_finished(id);
        Ok(landings)
    }

    /// The write's sectors still to land never will (a failed write, a lost path).
    pub fn never_lands(&mut self, id: FlightId) -> Result<(), FlightError> {
        let flight = self.flights.get_mut(&id).ok_or(FlightError::Unknown(id))?;
        flight.unlanded.clear();
        self.forget_if_finished(id);
        Ok(())
    }

    /// Flight `id` completes with `result`: the delivery to make, unless its host went down
    /// since it was issued. A write completes `Ok` only once it has landed whole; a failed
    /// write's sectors still to land may land later or never ([`Flights::never_lands`]).
    pub fn complete(
        &mut self,
        id: FlightId,
        result: IoResult,
    ) -> Result<Option<Delivery>, FlightError> {
        let current = &self.incarnations;
        let flight = self.flights.get_mut(&id).ok_or(FlightError::Unknown(id))?;
        if result.is_ok() && !flight.unlanded.is_empty() {
            return Err(FlightError::WriteNotLanded {
                id,
                unlanded: flight.unlanded.len(),
            });
        }
        let live = id.incarnation == current[id.host];
        if live && !flight.owed {
            return Err(FlightError::Completed(id));
        }
        // A crashed host's I/O may still finish at the disk; nobody hears of it.
        flight.owed = false;
        let delivery = live.then(|| Delivery {
            host: id.host,
            io: id.io,
            result,
        });
        self.forget_if_finished(id);
        Ok(delivery)
    }

    /// The host's machine will never hear of flight `id` (it hung past any wait, its path is
    /// gone); a write's sectors may still land.
    pub fn never_completes(&mut self, id: FlightId) -> Result<(), FlightError> {
        let flight = self.flights.get_mut(&id).ok_or(FlightError::Unknown(id))?;
        flight.owed = false;
        self.forget_if_finished(id);
        Ok(())
    }

    fn forget_if_finished(&mut self, id: FlightId) {
        if self.flights.get(&id).is_some_and(Flight::finished) {
            self.flights.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: u64, offset: u64, sectors: usize) -> IoRequest {
        IoRequest {
            id: IoId(id),
            disk: DiskRef::LEASE,
            offset,
            op: IoOp::Write {
                data: (0..sectors * 512).map(|i| (i / 512) as u8).collect(),
            },
            deadline: Time::ZERO,
        }
    }

    fn read(id: u64) -> IoRequest {
        IoRequest {
            id: IoId(id),
            disk: DiskRef::Lockspace,
            offset: 0,
            op: IoOp::Read { len: 512 },
            deadline: Time::ZERO,
        }
    }

    #[test]
    fn a_write_lands_sector_by_sector_and_completes_ok_only_once_landed() {
        let mut flights = Flights::new(1, 512);
        let id = flights
            .issue(0, write(7, 1024, 3), Duration::ZERO, ())
            .unwrap();
        assert_eq!(
            flights.issue(0, write(7, 0, 1), Duration::ZERO, ()),
            Err(FlightError::Duplicate(id))
        );
        assert_eq!(
            flights.complete(id, Ok(Bytes::new())),
            Err(FlightError::WriteNotLanded { id, unlanded: 3 })
        );
        let second = flights.land(id, 1).unwrap();
        assert_eq!((second.offset, second.bytes[0]), (1536, 1));
        assert_eq!(
            flights.land(id, 1),
            Err(FlightError::NotWaiting { id, index: 1 })
        );
        let rest = flights.land_all(id).unwrap();
        assert_eq!(
            rest.iter().map(|l| l.offset).collect::<Vec<_>>(),
            [1024, 2048]
        );
        let delivery = flights.complete(id, Ok(Bytes::new())).unwrap().unwrap();
        assert_eq!((delivery.host, delivery.io), (0, IoId(7)));
        assert!(flights.get(id).is_none(), "landed and completed: gone");
        assert_eq!(
            flights.complete(id, Ok(Bytes::new())),
            Err(FlightError::Unknown(id))
        );
    }

    #[test]
    fn a_crashed_host_hears_of_nothing_but_its_writes_still_land() {
        let mut flights = Flights::new(2, 512);
        let w = flights
            .issue(0, write(1, 0, 1), Duration::ZERO, ())
            .unwrap();
        let r = flights.issue(0, read(2), Duration::ZERO, ()).unwrap();
        let other = flights.issue(1, read(1), Duration::ZERO, ()).unwrap();
        flights.crash(0);
        assert_eq!(flights.incarnation(0), 1);
        assert!(!flights.get(w).unwrap().owed());
        assert_eq!(flights.complete(r, Ok(Bytes::new())), Ok(None));
        assert!(flights.get(r).is_none(), "a read done to nobody is gone");
        assert_eq!(flights.land_all(w).unwrap().len(), 1);
        assert!(flights.get(w).is_none(), "landed, owed to nobody: gone");
        // The restarted machine reuses io ids; the old ones never reach it.
        let again = flights
            .issue(0, write(1, 0, 1), Duration::ZERO, ())
            .unwrap();
        flights.crash(0);
        flights.land_all(again).unwrap();
        let fresh = flights.issue(0, read(1), Duration::ZERO, ()).unwrap();
        assert!(flights.complete(fresh, Ok(Bytes::new())).unwrap().is_some());
        assert!(flights.complete(other, Ok(Bytes::new())).unwrap().is_some());
    }

    #[test]
    fn a_failed_write_may_land_after_its_error_or_never() {
        let mut flights = Flights::new(1, 512);
        let late = flights
            .issue(0, write(1, 0, 2), Duration::ZERO, ())
            .unwrap();
        let error = Err(crate::io::IoError::Failed(5));
        assert!(flights.complete(late, error.clone()).unwrap().is_some());
        assert_eq!(flights.land(late, 0).unwrap().offset, 0);
        flights.never_lands(late).unwrap();
        assert!(flights.get(late).is_none());
        let hung = flights
            .issue(0, write(2, 0, 1), Duration::ZERO, ())
            .unwrap();
        flights.never_completes(hung).unwrap();
        assert_eq!(
            flights.complete(hung, error),
            Err(FlightError::Completed(hung))
        );
        flights.land_all(hung).unwrap();
        assert_eq!(flights.iter().count(), 0);
    }
}
