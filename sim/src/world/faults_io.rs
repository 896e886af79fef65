//! How the disk answers a host's I/O: its fate (in time, slow, failed, hung, corrupted, or lost
//! with the path), when each sector lands, and what a read returns.

use super::*;

impl World {
    pub(super) fn start_io(&mut self, n: usize, target: Target, request: IoRequest) {
        let inc = self.nodes[n].inc;
        let (write, len, data) = match &request.op {
            IoOp::Read { len } => (false, *len, None),
            IoOp::Write { data } => (true, data.len(), Some(data.clone())),
        };
        if write {
            self.stats.writes += 1;
        } else {
            self.stats.reads += 1;
        }
        let n_timeout = Duration::from_secs(self.p.io_timeout_s);
        let t0 = self.now;
        // The fate of this I/O: a lost path first, then the random faults.
        let draw = if self.faults_on {
            self.rng.below(1_000_000)
        } else {
            u64::MAX
        };
        let (fate, done_at, planned) = match self.nodes[n].loss {
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
        if !matches!(fate, Fate::Done(_)) {
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
        if let (true, Some(data)) = (landed, data) {
            // Each sector lands at its own instant before the completion (a hung write's
            // perhaps after the deadline).
            let span = done_at.saturating_sub(t0);
            let first = request.offset as usize / SECTOR;
            for (i, chunk) in data.chunks(SECTOR).enumerate() {
                let at = t0 + self.uniform(span);
                let ev = Ev::Land {
                    sector: first + i,
                    data: chunk.into(),
                    issued: t0,
                };
                self.agenda.schedule(at, ev);
            }
        }
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
        let io = Flight {
            id: request.id,
            offset: request.offset,
            len,
            write,
            started: t0,
            result: planned,
        };
        self.agenda.schedule(done_at, Ev::Complete { n, inc, io });
    }

    pub(super) fn complete(&mut self, n: usize, inc: u32, io: Flight) {
        let result: IoResult = match io.result {
            Planned::Failed => Err(IoError::Failed(5)),
            Planned::Ok | Planned::Corrupt if io.write => Ok(Bytes::new()),
            Planned::Ok | Planned::Corrupt => {
                match self
                    .disk
                    .read(io.offset, io.len, io.started, self.now, &mut self.rng)
                {
                    None => Err(IoError::Short),
                    Some(data)
                        if matches!(io.result, Planned::Corrupt)
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
        if self.nodes[n].inc != inc {
            return;
        }
        // A paused daemon picks the completion up when it resumes (handle() defers it).
        self.agenda.schedule(
            self.now,
            Ev::Deliver {
                n,
                inc,
                id: io.id,
                result,
            },
        );
    }
}
