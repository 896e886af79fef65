//! An in-memory disk that executes [`IoRequest`]s: for tests, the simulator and the model
//! checker. Each request is applied whole when the driver decides it completes; a write of
//! several sectors lands at once (real disks only promise single sectors, which the callers of
//! this type model by issuing sector-sized writes, as sanlock does).

use crate::io::{IoError, IoOp, IoRequest, IoResult};

/// A disk of `len` zero bytes that grows on writes past its end, like a regular file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemDisk {
    bytes: Vec<u8>,
}

impl MemDisk {
    /// A disk of `len` zero bytes.
    pub fn new(len: usize) -> Self {
        MemDisk {
            bytes: vec![0; len],
        }
    }

    /// A disk holding `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        MemDisk { bytes }
    }

    /// Runs `request` now: a read returns the bytes (short past the end), a write stores them.
    pub fn apply(&mut self, request: &IoRequest) -> IoResult {
        match &request.op {
            IoOp::Read { len } => self.read(request.offset, *len),
            IoOp::Write { data } => {
                self.write(request.offset, data);
                Ok(bytes::Bytes::new())
            }
        }
    }

    /// `len` bytes at `offset` as they are now (short past the end).
    pub fn read(&self, offset: u64, len: usize) -> IoResult {
        let start = usize::try_from(offset).map_err(|_| IoError::Short)?;
        start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
            .map(bytes::Bytes::copy_from_slice)
            .ok_or(IoError::Short)
    }

    /// Stores `data` at `offset` (a sector landing from [`crate::flight`], a whole write).
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let start = offset as usize;
        if self.bytes.len() < start + data.len() {
            self.bytes.resize(start + data.len(), 0);
        }
        self.bytes[start..start + data.len()].copy_from_slice(data);
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, to change behind the machines' backs (corruption, a C host's write).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}
