//! How the disk answers a host's I/O: its fate (in time, slow, failed, hung, corrupted, or lost
//! with the path), when each sector lands, and what a read returns.

use super::*;

impl World {
    pub(super) fn start_io(&mut self, n: usize, target: Target, request: IoRequest) {
        let (write, len) = match &request.op {
            IoOp::Read { len } => (false, *len),
            IoOp::Write { data } => (true, data.len()),
        };
        if write {
            self.stats.writes += 1;
        } else {
            self.stats.reads += 1;
        }
        let n_timeout = Duration::from_secs(self.io_timeout_s(n));
        let t0 = self.now;
        // The fate of this I/O: a lost path first, then the random faults.
        let draw = if self.faults_on {
            self.rng.below(1_000_000)
        } else {
            u64::MAX
        };
        // The faulty disk of multi-disk leases, from its time on (the whole run's rest).
        let disk_fault = self
            .disk_fault
            .filter(|&(k, fault, from)| {
                fault != DiskFault::Replace
                    && self.now >= from
                    && self
                        .lease_disk_of(request.offset)
                        .is_some_and(|(_, d)| d == k)
            })
            .map(|(_, fault, _)| fault);
        let flaky = self.flaky_disk.is_some_and(|k| {
            self.lease_disk_of(request.offset)
                .is_some_and(|(_, d)| d == k)
        }) && self.rng.below(10) == 0;
        let disk_fault = disk_fault.or(flaky.then_some(DiskFault::Fail));
        let (fate, done_at, planned) = match self.nodes[n].loss {
            _ if disk_fault == Some(DiskFault::Fail) => {
                let at = t0 + self.millis(5);
                (Fate::Failed { landed: false }, at, Planned::Failed)
            }
            _ if disk_fault == Some(DiskFault::Hang) => {
                let at = t0 + 10 * self.host_dead();
                (Fate::Hung { landed: false }, at, Planned::Failed)
            }
            Some((until, fail)) if until > self.now => {
                if fail {
                    let at = t0 + self.millis(5);
                    (Fate::Failed { landed: false }, at, Planned::Failed)
                } else {
                    let at = until + self.millis(100);
                    (Fate::Hung { landed: false }, at, Planned::Failed)
                }
            }
            _ if draw < self.p.error_ppm => {
                let landed = write && self.rng.below(2) == 0;
                let at = t0 + self.uniform(self.p.latency);
                (Fate::Failed { landed }, at, Planned::Failed)
            }
            _ if draw < self.p.error_ppm + self.p.hang_ppm => {
                // It completes, but long after its deadline; a write may land until then. A
                // write that did not land completes with an error: success means it landed.
                let landed = write && self.rng.below(4) != 0;
                let at = t0 + n_timeout + self.uniform(2 * n_timeout);
                let planned = if write && !landed {
                    Planned::Failed
                } else {
                    Planned::Ok
                };
                (Fate::Hung { landed }, at, planned)
            }
            _ if !write && draw < self.p.error_ppm + self.p.hang_ppm + self.p.corrupt_ppm => {
                let at = t0 + self.uniform(self.p.latency);
                (Fate::Corrupted, at, Planned::Corrupt)
            }
            _ => {
                let slow = self.rng.below(1_000_000) < self.p.slow_ppm;
                let max = if slow {
                    n_timeout.mul_f64(0.9)
                } else {
                    self.p.latency
                };
                let latency = Duration::from_micros(50) + self.uniform(max);
                (Fate::Done(latency), t0 + latency, Planned::Ok)
            }
        };
        match fate {
            Fate::Failed { .. } if self.nodes[n].loss.is_none() => self.stats.io_errors += 1,
            Fate::Hung { .. } if self.nodes[n].loss.is_none() => self.stats.hangs += 1,
            Fate::Corrupted => self.stats.corruptions += 1,
            _ => {}
        }
        // A lease on several disks is meant to work on without its faulty one.
        if !matches!(fate, Fate::Done(_)) && disk_fault.is_none() {
            if let Some((_, res)) = target.lease() {
                if let Some(r) = self.resources.iter().position(|x| x == res) {
                    self.nodes[n].faulted.insert(r, true);
                }
            }
        }
        let landed = match fate {
            Fate::Done(_) | Fate::Corrupted => write,
            Fate::Failed { landed } | Fate::Hung { landed, .. } => landed,
        };
        self.timeline.push(
            self.now,
            n,
            What::Io {
                target,
                write,
                offset: request.offset,
                len,
                fate,
            },
        );
        let flight = self
            .flights
            .issue(n, request, t0, planned)
            .expect("a machine's io ids are unique");
        if landed {
            // Each sector lands at its own instant before the completion (a hung write's
            // perhaps after the deadline).
            let span = done_at.saturating_sub(t0);
            let f = self.flights.get(flight).expect("just issued");
            let sectors: Vec<usize> = f.unlanded().collect();
            for index in sectors {
                let at = t0 + self.uniform(span);
                self.agenda.schedule(at, Ev::Land { flight, index });
            }
        } else if write {
            self.flights.never_lands(flight).expect("just issued");
        }
        self.agenda.schedule(done_at, Ev::Complete { flight });
    }

    /// A sector of a write lands on the disk.
    pub(super) fn land(&mut self, flight: FlightId, index: usize) {
        let issued = self
            .flights
            .get(flight)
            .expect("lands before it is done")
            .issued();
        let landing = self.flights.land(flight, index).expect("scheduled once");
        let sector = landing.offset as usize / SECTOR;
        // A leader write landing after one issued later takes the leader back.
        if let Some(last) = self.leader_writes.get_mut(&sector) {
            if issued < *last {
                self.stats.stale_leader_writes += 1;
            }
            *last = (*last).max(issued);
        }
        let old = (self.cfg.messages && sector < self.nodes.len())
            .then(|| self.disk.bytes()[sector * SECTOR..(sector + 1) * SECTOR].to_vec());
        self.disk.land(self.now, sector, &landing.bytes);
        if let Some(old) = old {
            self.check_acks_kept(sector, &old);
        }
    }

    pub(super) fn complete(&mut self, flight: FlightId) {
        let Some(f) = self.flights.get(flight) else {
            return; // a write of a host gone down, landed whole: nothing of it is left
        };
        let (planned, offset, len, write, started) =
            (f.extra, f.offset(), f.len(), f.is_write(), f.issued());
        let result: IoResult = match planned {
            Planned::Failed => Err(IoError::Failed(5)),
            Planned::Ok | Planned::Corrupt if write => Ok(Bytes::new()),
            Planned::Ok | Planned::Corrupt => {
                match self
                    .disk
                    .read(offset, len, started, self.now, &mut self.rng)
                {
                    None => Err(IoError::Short),
                    Some(data)
                        if matches!(planned, Planned::Corrupt)
                            && RawLeader::parse(&data).is_ok_and(|l| {
                                [DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC].contains(&l.magic)
                            }) =>
                    {
                        // Only a leader's first sector: its checksum covers the timestamp.
                        // (Mode blocks carry no checksum; no reader could catch that.)
                        let mut data = data.to_vec();
                        data[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8].fill(0);
                        Ok(Bytes::from(data))
                    }
                    Some(data) => Ok(data),
                }
            }
        };
        let Some(delivery) = self.flights.complete(flight, result).expect("by the rules") else {
            return; // its host went down meanwhile
        };
        let n = delivery.host;
        let inc = self.nodes[n].inc;
        // A paused daemon picks the completion up when it resumes (handle() defers it).
        self.agenda.schedule(
            self.now,
            Ev::Deliver {
                n,
                inc,
                id: delivery.io,
                result: delivery.result,
            },
        );
    }
}
