//! A pool of aligned I/O buffers. A renewal reads 1 MiB every 2N seconds and a benchmark
//! thousands of times a second; allocating (and faulting in) a fresh megabyte for each costs
//! more than the read itself, so buffers go back to the pool when the kernel is done with them.

use crate::sync::{Arc, Mutex};

use crate::disk::AlignedBuf;

/// Buffers kept for reuse, at most this many bytes in all: four whole-lockspace reads (a
/// renewal's 1 MiB) at once, which is what a host with several lockspaces has in flight; more
/// would only keep resident what a burst once needed.
const POOL_BYTES: usize = 4 << 20;

/// Shared by a backend and its workers.
#[derive(Clone, Default)]
pub struct BufferPool {
    free: Arc<Mutex<Vec<AlignedBuf>>>,
}

impl BufferPool {
    /// A buffer of `len` bytes, reused when one of that capacity is free. Its bytes are
    /// unspecified (stale): a read overwrites them all, a write copies its data over them.
    pub fn take(&self, len: usize) -> AlignedBuf {
        let reused = {
            let mut free = self.free.lock().expect("no panic holds the pool");
            let fit = free
                .iter()
                .position(|b| b.capacity() >= len && b.capacity() <= 2 * len.max(4096));
            fit.map(|i| free.swap_remove(i))
        };
        match reused {
            Some(mut buf) => {
                assert!(buf.reuse(len), "chosen for its capacity");
                buf
            }
            None => AlignedBuf::zeroed(len),
        }
    }

    /// A buffer holding a copy of `data`.
    pub fn copy_of(&self, data: &[u8]) -> AlignedBuf {
        let mut buf = self.take(data.len());
        buf.as_mut().copy_from_slice(data);
        buf
    }

    /// Hands a buffer the kernel has filled to the caller without copying; it comes back to
    /// the pool when the last `Bytes` of it is dropped.
    pub fn into_bytes(&self, buf: AlignedBuf) -> bytes::Bytes {
        bytes::Bytes::from_owner(Pooled {
            buf: Some(buf),
            pool: self.clone(),
        })
    }

    /// Bytes kept for reuse, by the length each buffer was made for.
    pub fn kept(&self) -> usize {
        let free = self.free.lock().expect("no panic holds the pool");
        free.iter().map(AlignedBuf::made_for).sum()
    }

    /// Returns a buffer the kernel no longer uses.
    pub fn give(&self, buf: AlignedBuf) {
        let mut free = self.free.lock().expect("no panic holds the pool");
        // Counted by the length each was made for: by capacity, which alignment pads by up to
        // 4095 bytes, four 1 MiB buffers did not fit (the loom model found it).
        let held: usize = free.iter().map(AlignedBuf::made_for).sum();
        if held + buf.made_for() <= POOL_BYTES {
            free.push(buf);
        }
    }
}

/// A pool buffer lent out as `Bytes`.
struct Pooled {
    buf: Option<AlignedBuf>,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], AsRef::as_ref)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_for_the_same_size_and_stays_aligned() {
        let pool = BufferPool::default();
        let mut a = pool.take(1 << 20);
        a.as_mut()[0] = 7;
        let ptr = a.as_ref().as_ptr();
        pool.give(a);
        let b = pool.take(1 << 20);
        assert_eq!(b.as_ref().as_ptr(), ptr, "reused");
        assert_eq!(b.as_ref().len(), 1 << 20);
        assert_eq!(b.as_ref().as_ptr() as usize % 4096, 0);
        // A small request does not take a megabyte.
        pool.give(b);
        assert_ne!(pool.take(512).as_ref().as_ptr(), ptr);
        assert_eq!(pool.copy_of(&[1, 2, 3]).as_ref(), &[1, 2, 3]);
    }

    #[test]
    fn the_pool_keeps_four_renewal_reads_and_no_fifth() {
        let pool = BufferPool::default();
        let bufs: Vec<_> = (0..5).map(|_| pool.take(1 << 20)).collect();
        for b in bufs {
            pool.give(b);
        }
        assert_eq!(pool.kept(), 4 << 20);
    }

    #[test]
    fn bytes_lent_out_come_back_when_dropped() {
        let pool = BufferPool::default();
        let mut a = pool.take(4096);
        a.as_mut()[..3].copy_from_slice(b"abc");
        let ptr = a.as_ref().as_ptr();
        let bytes = pool.into_bytes(a);
        assert_eq!(&bytes[..3], b"abc");
        assert_eq!(bytes.as_ptr(), ptr, "no copy");
        let part = bytes.slice(1..3);
        drop(bytes);
        assert_ne!(pool.take(4096).as_ref().as_ptr(), ptr, "still lent out");
        drop(part);
        assert_eq!(pool.take(4096).as_ref().as_ptr(), ptr, "back in the pool");
    }
}
