//! The NFS file backend: lease files on an NFSv3 server, reached from user space (the
//! `nfs3_client` crate over tokio TCP), so that a hung server never puts the daemon in
//! uninterruptible sleep as a hard kernel mount does. Every RPC runs under its I/O's deadline;
//! when the deadline passes the I/O is reported timed out and the connection it used is dropped
//! (its reply, if one ever comes, is never read); the next I/O connects afresh. Writes are
//! FILE_SYNC (a server that answers with less is followed by a COMMIT), so a completed write is
//! on the server's disk as an O_SYNC write is on ours.
//!
//! Each disk has a few connections working in parallel, fed from one queue.

use std::sync::Arc;

use async_trait::async_trait;
use nfs3_client::nfs3_types::nfs3::{
    self, diropargs3, filename3, nfs_fh3, ACCESS3args, COMMIT3args, FSINFO3args, GETATTR3args,
    LOOKUP3args, Nfs3Result, READ3args, WRITE3args,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::TokioConnector;
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};
use sanlock_core::io::{IoError, IoId, IoOp, IoResult};
use sanlock_core::ondisk::SectorSize;
use sanlock_core::Time;
use tokio::sync::{mpsc, Mutex};

use crate::storage::{Completed, DiskId, DiskInfo, Inbox, Io, Stats, Storage};

/// Connections (and so RPCs in flight) per disk.
pub const CONNECTIONS_PER_DISK: usize = 4;
/// EIO, for RPC and transport failures and server errors with no errno of their own.
const EIO: i32 = 5;

/// Where a lease file is on an NFSv3 server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsTarget {
    /// The server's address (IP or name).
    pub server: String,
    /// The exported path to mount.
    pub export: String,
    /// The file's path inside the export ("dir/leases").
    pub file: String,
    /// The MOUNT and NFS ports; `None` asks the server's portmapper.
    pub ports: Option<(u16, u16)>,
    /// The sector size of the lease file (sanlock assumes 512 for files).
    pub sector_size: SectorSize,
}

impl NfsTarget {
    /// `file` under `export` on `server`, ports from the portmapper, 512-byte sectors.
    pub fn new(server: &str, export: &str, file: &str) -> Self {
        NfsTarget {
            server: server.to_string(),
            export: export.to_string(),
            file: file.to_string(),
            ports: None,
            sector_size: SectorSize::Bytes512,
        }
    }

    fn name(&self) -> String {
        format!("nfs://{}{}/{}", self.server, self.export, self.file)
    }
}

/// Why a lease file on NFS could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NfsError {
    /// No connection or mount.
    #[error("{target}: cannot mount: {reason}")]
    Mount {
        /// The file.
        target: String,
        /// Why.
        reason: String,
    },
    /// The server answered an RPC with an error.
    #[error("{target}: {op} failed: {reason}")]
    Rpc {
        /// The file.
        target: String,
        /// The procedure.
        op: &'static str,
        /// The server's status or the transport error.
        reason: String,
    },
    /// The path names something that is not a regular file.
    #[error("{target}: not a regular file")]
    NotAFile {
        /// The file.
        target: String,
    },
    /// The server did not answer in time.
    #[error("{target}: no answer within {secs} s")]
    Timeout {
        /// The file.
        target: String,
        /// The time allowed.
        secs: u64,
    },
}

type Connection = Nfs3Connection<nfs3_client::tokio::TokioIo<tokio::net::TcpStream>>;

/// What every connection of a disk needs to know.
struct Remote {
    target: NfsTarget,
    fh: nfs_fh3,
    rtmax: usize,
    wtmax: usize,
}

struct Job {
    id: IoId,
    offset: u64,
    op: IoOp,
    deadline: Time,
}

/// The NFS backend. Use inside a tokio runtime.
pub struct NfsStorage {
    disks: Vec<(DiskInfo, mpsc::UnboundedSender<Job>)>,
    inbox: Inbox,
}

impl Default for NfsStorage {
    fn default() -> Self {
        NfsStorage::new()
    }
}

impl NfsStorage {
    /// A backend with no disks.
    pub fn new() -> Self {
        NfsStorage {
            disks: Vec::new(),
            inbox: Inbox::default(),
        }
    }

    /// Mounts the export, finds the file and its permissions, and starts the disk's
    /// connections; everything within `timeout`.
    pub async fn open(
        &mut self,
        target: &NfsTarget,
        timeout: std::time::Duration,
    ) -> Result<DiskId, NfsError> {
        let name = target.name();
        let opened = tokio::time::timeout(timeout, open_file(target)).await;
        let (remote, read_only, conn) = opened.map_err(|_| NfsError::Timeout {
            target: name.clone(),
            secs: timeout.as_secs(),
        })??;
        let info = DiskInfo {
            name,
            sector_size: target.sector_size,
            size: None,
            read_only,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(rx));
        let remote = Arc::new(remote);
        let mut first = Some(conn);
        for _ in 0..CONNECTIONS_PER_DISK {
            tokio::spawn(worker(
                Arc::clone(&remote),
                Arc::clone(&queue),
                first.take(),
                self.inbox.sender(),
            ));
        }
        self.disks.push((info, tx));
        Ok(DiskId(self.disks.len() - 1))
    }
}

async fn connect(target: &NfsTarget) -> Result<Connection, NfsError> {
    let mut builder = Nfs3ConnectionBuilder::new(TokioConnector, &target.server, &target.export)
        .connect_from_privileged_port(false)
        .credential(opaque_auth::auth_unix(&auth_unix {
            machinename: Opaque::owned(b"sanlock-rs".to_vec()),
            ..auth_unix::default()
        }));
    if let Some((mount, nfs)) = target.ports {
        builder = builder.mount_port(mount).nfs3_port(nfs);
    }
    builder.mount().await.map_err(|e| NfsError::Mount {
        target: target.name(),
        reason: e.to_string(),
    })
}

async fn open_file(target: &NfsTarget) -> Result<(Remote, bool, Connection), NfsError> {
    let name = target.name();
    let rpc = |op: &'static str, reason: String| NfsError::Rpc {
        target: name.clone(),
        op,
        reason,
    };
    let mut conn = connect(target).await?;
    let root = conn.root_nfs_fh3();
    let mut fh = root.clone();
    for part in target.file.split('/').filter(|p| !p.is_empty()) {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: fh.clone(),
                name: filename3::from(part.as_bytes()),
            },
        };
        match conn.lookup(&args).await {
            Ok(Nfs3Result::Ok(ok)) => fh = ok.object,
            Ok(Nfs3Result::Err((status, _))) => return Err(rpc("LOOKUP", format!("{status:?}"))),
            Err(e) => return Err(rpc("LOOKUP", e.to_string())),
        }
    }
    match conn.getattr(&GETATTR3args { object: fh.clone() }).await {
        Ok(Nfs3Result::Ok(ok)) if ok.obj_attributes.type_ == nfs3::ftype3::NF3REG => {}
        Ok(Nfs3Result::Ok(_)) => return Err(NfsError::NotAFile { target: name }),
        Ok(Nfs3Result::Err((status, _))) => return Err(rpc("GETATTR", format!("{status:?}"))),
        Err(e) => return Err(rpc("GETATTR", e.to_string())),
    }
    let access = ACCESS3args {
        object: fh.clone(),
        access: nfs3::ACCESS3_READ | nfs3::ACCESS3_MODIFY,
    };
    let read_only = match conn.access(&access).await {
        Ok(Nfs3Result::Ok(ok)) => ok.access & nfs3::ACCESS3_MODIFY == 0,
        Ok(Nfs3Result::Err((status, _))) => return Err(rpc("ACCESS", format!("{status:?}"))),
        Err(e) => return Err(rpc("ACCESS", e.to_string())),
    };
    let (rtmax, wtmax) = match conn.fsinfo(&FSINFO3args { fsroot: root }).await {
        Ok(Nfs3Result::Ok(ok)) => (ok.rtmax as usize, ok.wtmax as usize),
        Ok(Nfs3Result::Err((status, _))) => return Err(rpc("FSINFO", format!("{status:?}"))),
        Err(e) => return Err(rpc("FSINFO", e.to_string())),
    };
    let remote = Remote {
        target: target.clone(),
        fh,
        // A server that says 0 would make no progress; 32 KiB is the protocol's old default.
        rtmax: rtmax.max(32 << 10),
        wtmax: wtmax.max(32 << 10),
    };
    Ok((remote, read_only, conn))
}

/// One connection's loop: take a job, run it under its deadline, report it. A timeout or a
/// transport error drops the connection; the next job reconnects.
async fn worker(
    remote: Arc<Remote>,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    mut conn: Option<Connection>,
    done: mpsc::UnboundedSender<(IoId, IoResult)>,
) {
    loop {
        let job = queue.lock().await.recv().await;
        let Some(job) = job else {
            return; // the backend is gone
        };
        let left = job.deadline.saturating_since(crate::clock::now());
        if left.is_zero() {
            // Already reported timed out by the inbox.
            continue;
        }
        // On a task of its own, so that a panic (a reply the client library chokes on) fails
        // this I/O with -EIO and drops the connection, instead of ending this loop and leaving
        // the disk one connection short for good.
        let (id, remote2, held) = (job.id, Arc::clone(&remote), conn.take());
        let mut task = tokio::spawn(async move {
            let mut conn = held;
            let result = run_job(&remote2, &mut conn, &job).await;
            (result, conn)
        });
        let result = match tokio::time::timeout(left, &mut task).await {
            Ok(Ok((result, kept))) => {
                conn = kept;
                result
            }
            Ok(Err(_panicked)) => Err(IoError::Failed(EIO)),
            Err(_) => {
                task.abort();
                Err(IoError::TimedOut)
            }
        };
        if matches!(result, Err(IoError::Failed(EIO))) {
            conn = None;
        }
        if done.send((id, result)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
static PANIC_NEXT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn run_job(remote: &Remote, conn: &mut Option<Connection>, job: &Job) -> IoResult {
    #[cfg(test)]
    if PANIC_NEXT.swap(false, std::sync::atomic::Ordering::AcqRel) {
        panic!("injected: the NFS client panicked");
    }
    if conn.is_none() {
        *conn = Some(
            connect(&remote.target)
                .await
                .map_err(|_| IoError::Failed(EIO))?,
        );
    }
    let c = conn.as_mut().expect("connected");
    match &job.op {
        IoOp::Read { len } => read(remote, c, job.offset, *len).await,
        IoOp::Write { data } => write(remote, c, job.offset, data)
            .await
            .map(|()| bytes::Bytes::new()),
    }
}

fn status_errno(status: nfs3::nfsstat3) -> i32 {
    match status as i32 {
        n @ 1..=100 => n,
        _ => EIO,
    }
}

async fn read(remote: &Remote, c: &mut Connection, offset: u64, len: usize) -> IoResult {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let count = (len - out.len()).min(remote.rtmax);
        let args = READ3args {
            file: remote.fh.clone(),
            offset: offset + out.len() as u64,
            count: u32::try_from(count).expect("below rtmax"),
        };
        match c.read(&args).await {
            Ok(Nfs3Result::Ok(ok)) => {
                let got = ok.data.len().min(count);
                out.extend_from_slice(&ok.data[..got]);
                if got == 0 || (ok.eof && out.len() < len) {
                    return Err(IoError::Short);
                }
            }
            Ok(Nfs3Result::Err((status, _))) => return Err(IoError::Failed(status_errno(status))),
            Err(_) => return Err(IoError::Failed(EIO)),
        }
    }
    Ok(bytes::Bytes::from(out))
}

async fn write(
    remote: &Remote,
    c: &mut Connection,
    offset: u64,
    data: &[u8],
) -> Result<(), IoError> {
    let mut done = 0;
    let mut committed = true;
    while done < data.len() {
        let count = (data.len() - done).min(remote.wtmax);
        let args = WRITE3args {
            file: remote.fh.clone(),
            offset: offset + done as u64,
            count: u32::try_from(count).expect("below wtmax"),
            stable: nfs3::stable_how::FILE_SYNC,
            data: Opaque::borrowed(&data[done..done + count]),
        };
        match c.write(&args).await {
            Ok(Nfs3Result::Ok(ok)) => {
                let n = ok.count as usize;
                if n == 0 {
                    return Err(IoError::Short);
                }
                committed &= ok.committed == nfs3::stable_how::FILE_SYNC;
                done += n.min(count);
            }
            Ok(Nfs3Result::Err((status, _))) => return Err(IoError::Failed(status_errno(status))),
            Err(_) => return Err(IoError::Failed(EIO)),
        }
    }
    if !committed {
        // The server kept it in memory: ask for it on disk before saying written.
        let args = COMMIT3args {
            file: remote.fh.clone(),
            offset,
            count: u32::try_from(data.len()).expect("a lease write"),
        };
        match c.commit(&args).await {
            Ok(Nfs3Result::Ok(_)) => {}
            Ok(Nfs3Result::Err((status, _))) => return Err(IoError::Failed(status_errno(status))),
            Err(_) => return Err(IoError::Failed(EIO)),
        }
    }
    Ok(())
}

#[async_trait]
impl Storage for NfsStorage {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        self.disks.get(disk.0).map(|(info, _)| info)
    }

    fn submit(&mut self, ios: Vec<Io>) {
        for io in ios {
            let info = self.disks.get(io.disk.0).map(|(info, _)| info);
            if !self.inbox.deadlines.admit(&io, info) {
                continue;
            }
            let job = Job {
                id: io.id,
                offset: io.offset,
                op: io.op,
                deadline: io.deadline,
            };
            // The workers live as long as the sender; a send cannot fail while we hold it.
            let _ = self.disks[io.disk.0].1.send(job);
        }
    }

    async fn completions(&mut self) -> Vec<Completed> {
        self.inbox.completions().await
    }

    fn stats(&self) -> Stats {
        self.inbox.deadlines.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_job_that_panics_fails_with_eio_and_its_connection_loop_goes_on() {
        // No server at all: the panic comes before any connection, and the next job's
        // connect is refused at once (port 1 on loopback).
        let remote = Arc::new(Remote {
            target: NfsTarget {
                server: "127.0.0.1".into(),
                export: "/x".into(),
                file: "f".into(),
                ports: Some((1, 1)),
                sector_size: SectorSize::Bytes512,
            },
            fh: nfs_fh3::default(),
            rtmax: 4096,
            wtmax: 4096,
        });
        let (jobs, queue) = mpsc::unbounded_channel();
        let (done, mut results) = mpsc::unbounded_channel();
        tokio::spawn(worker(remote, Arc::new(Mutex::new(queue)), None, done));
        let job = |id| Job {
            id: IoId(id),
            offset: 0,
            op: IoOp::Read { len: 512 },
            deadline: crate::clock::now() + Duration::from_secs(10),
        };
        PANIC_NEXT.store(true, std::sync::atomic::Ordering::Release);
        jobs.send(job(1)).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), results.recv()).await;
        assert_eq!(first.unwrap(), Some((IoId(1), Err(IoError::Failed(EIO)))));
        jobs.send(job(2)).unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), results.recv()).await;
        let (id, result) = second.expect("the loop still runs").unwrap();
        assert_eq!(id, IoId(2));
        assert!(result.is_err(), "no server: {result:?}");
    }
}
