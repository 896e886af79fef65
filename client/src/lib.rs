//! A client of the sanlock daemon: ours, or sanlock 3.8.5's, since both speak the same socket
//! protocol. Every call of the protocol is here with typed arguments and a typed error, in a
//! blocking form ([`Client`]) and, with the `tokio` feature (on by default), an async one
//! ([`AsyncClient`]); events come as an iterator ([`Events`]) or an async stream
//! ([`EventStream`]).
//!
//! ```no_run
//! use sanlock_client::{AcquireFlags, Client, Disk, Resource};
//!
//! # fn main() -> sanlock_client::Result<()> {
//! // Hold a lease for as long as this process lives (its registered connection).
//! let client = Client::new();
//! let mut me = client.register()?;
//! let lease = Resource::new("vms", "vm1", Disk::new("/dev/vg/leases", 1048576))?;
//! me.acquire(&[lease.clone()], AcquireFlags::NONE)?;
//! assert_eq!(me.inquire()?[0].name, lease.name);
//! # Ok(())
//! # }
//! ```
//!
//! The numbers libsanlock returns are still there: [`Error::code`], and the [`raw`] layer that
//! `sanlock client` itself uses.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod blocking;
mod calls;
mod error;
pub mod proto;
pub mod raw;
mod types;

#[cfg(feature = "tokio")]
mod asynchronous;

#[cfg(feature = "tokio")]
pub use asynchronous::{AsyncClient, AsyncRegistration, EventStream};
pub use blocking::{Client, Events, Registration};
pub use calls::{MessageStatus, Rentry, Rindex, StateKind, StateRecord};
pub use error::{errno, Code, Error, Result};
pub use sanlock_wire::Name;
pub use types::*;

/// The daemon's socket: `$SANLOCK_RUN_DIR/sanlock.sock`, else `/run/sanlock/sanlock.sock`.
pub fn default_socket() -> std::path::PathBuf {
    raw::socket_path()
}

/// Writes the methods of the daemon-wide calls once for both forms: each opens a connection,
/// sends the call's request and decodes its reply.
macro_rules! client_calls {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Client {
            $($(#[$doc])* pub fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                self.run(calls::$name($($arg),*)?)
            })*
        }

        #[cfg(feature = "tokio")]
        impl AsyncClient {
            $($(#[$doc])* pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                self.run(calls::$name($($arg),*)?).await
            })*
        }
    };
}

/// The calls on a registered connection (the process's own leases), for both forms.
macro_rules! registration_calls {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $call:expr;)*) => {
        impl Registration {
            $($(#[$doc])* pub fn $name(&mut self, $($arg: $ty),*) -> Result<$ret> {
                self.run($call?)
            })*
        }

        #[cfg(feature = "tokio")]
        impl AsyncRegistration {
            $($(#[$doc])* pub async fn $name(&mut self, $($arg: $ty),*) -> Result<$ret> {
                self.run($call?).await
            })*
        }
    };
}

client_calls! {
    /// The daemon's version and protocol (VERSION).
    fn version() -> Version;
    /// Joins a lockspace: takes `ls.host_id`'s delta lease (ADD_LOCKSPACE). Without
    /// [`AddFlags::ASYNC`] it returns once joined, which takes about 2 × io_timeout plus, when the
    /// host id was in use recently, the time it takes to be sure its last holder is dead.
    /// `io_timeout` 0 is the daemon's default (10 s).
    fn add_lockspace(ls: &Lockspace, flags: AddFlags, io_timeout: u32) -> ();
    /// Whether the lockspace is joined: Ok, or EINPROGRESS (being added or removed) or ENOENT.
    fn inq_lockspace(ls: &Lockspace, flags: InqFlags) -> ();
    /// Leaves a lockspace, releasing its delta lease (REM_LOCKSPACE).
    fn rem_lockspace(ls: &Lockspace, flags: RemFlags) -> ();
    /// The lockspaces the daemon has (GET_LOCKSPACES).
    fn get_lockspaces() -> Vec<LockspaceInfo>;
    /// The hosts of lockspace `name` the daemon has seen; `host_id` 0 for all (GET_HOSTS).
    fn get_hosts(name: &Name, host_id: u64) -> Vec<Host>;
    /// Initialises a lockspace area on disk (WRITE_LOCKSPACE); `io_timeout` 0 means 10 s.
    fn write_lockspace(ls: &Lockspace, max_hosts: u32, flags: WriteFlags, io_timeout: u32) -> ();
    /// Reads the lockspace at `disk`: its name and the io_timeout recorded (READ_LOCKSPACE).
    fn read_lockspace(disk: &Disk) -> (Lockspace, u32);
    /// Initialises a resource lease on its disks (WRITE_RESOURCE).
    fn write_resource(res: &Resource, max_hosts: u32, num_hosts: u32, flags: WriteFlags) -> ();
    /// Reads the resource lease at `disk`: names and version (READ_RESOURCE).
    fn read_resource(disk: &Disk) -> Resource;
    /// The resource's lease version and the hosts holding it (READ_RESOURCE_OWNERS).
    fn read_resource_owners(res: &Resource) -> (Resource, Vec<Host>);
    /// The lease alignment `disk`'s sector size gives: 1 MiB for 512, 8 MiB for 4096 (ALIGN).
    fn align(disk: &Disk) -> u32;
    /// Acquires leases for process `pid`, registered with the daemon (ACQUIRE).
    fn acquire(pid: i32, resources: &[Resource], flags: AcquireFlags) -> ();
    /// Releases leases of process `pid` (RELEASE); [`ReleaseFlags::ALL`] with no resources
    /// releases all of them.
    fn release(pid: i32, resources: &[Resource], flags: ReleaseFlags) -> ();
    /// The leases process `pid` holds (INQUIRE).
    fn inquire(pid: i32) -> Vec<Resource>;
    /// Converts a lease process `pid` holds between shared and exclusive (CONVERT).
    fn convert(pid: i32, res: &Resource, flags: ConvertFlags) -> ();
    /// Asks the holder of a lease to give it up (REQUEST).
    fn request(res: &Resource, force: ForceMode, flags: RequestFlags) -> ();
    /// Makes the daemon look at requests on every held lease of the lockspace now.
    fn examine_lockspace(ls: &Lockspace) -> ();
    /// Makes the daemon look at requests on the held lease `res` now.
    fn examine_resource(res: &Resource) -> ();
    /// Sets the lease's lock value block, held with [`AcquireFlags::LVB`] (SET_LVB).
    fn set_lvb(res: &Resource, lvb: &[u8]) -> ();
    /// Reads up to `len` bytes of the lease's lock value block (GET_LVB).
    fn get_lvb(res: &Resource, len: u32) -> Vec<u8>;
    /// Sets an event for a host (or all hosts) of lockspace `name` (SET_EVENT).
    fn set_event(name: &Name, event: &HostEvent, flags: SetEventFlags) -> ();
    /// Marks lockspace `name` used or unused (SET_CONFIG).
    fn set_config(name: &Name, cmd: ConfigCmd) -> ();
    /// Everything the daemon has: itself, clients, lockspaces, leases (STATUS).
    fn status() -> Vec<StateRecord>;
    /// The hosts of lockspace `name` with their timestamps and states (HOST_STATUS).
    fn host_status(name: &Name) -> Vec<StateRecord>;
    /// The recent renewals of lockspace `name` (RENEWAL).
    fn renewal(name: &Name) -> Vec<StateRecord>;
    /// Ours: lockspaces with their hosts (names, seconds since each renewed), leases held here,
    /// and what adds, acquires and removals are waiting for, with the seconds left (SHOW).
    fn show() -> Vec<StateRecord>;
    /// The daemon's in-memory log (LOG_DUMP).
    fn log_dump() -> Vec<u8>;
    /// Asks the daemon to stop; `force` stops it with leases held (SHUTDOWN).
    fn shutdown(force: bool) -> ();
    /// As shutdown, answering once the daemon is going (SHUTDOWN_WAIT).
    fn shutdown_wait(force: bool) -> ();
    /// Writes an empty resource index (FORMAT_RINDEX).
    fn format_rindex(rx: &Rindex) -> ();
    /// Rebuilds a resource index from the leases on disk (REBUILD_RINDEX).
    fn rebuild_rindex(rx: &Rindex) -> ();
    /// Finds resource `name` in an index (LOOKUP_RINDEX).
    fn lookup_rindex(rx: &Rindex, name: &Name) -> Rentry;
    /// Adds an entry to an index or, with `remove`, takes it out (UPDATE_RINDEX).
    fn update_rindex(rx: &Rindex, entry: &Rentry, remove: bool) -> Rentry;
    /// Creates resource `name` in the index and writes its lease (CREATE_RESOURCE).
    fn create_resource(rx: &Rindex, name: &Name, max_hosts: u32, num_hosts: u32) -> Rentry;
    /// Deletes resource `name` from the index and clears its lease (DELETE_RESOURCE).
    fn delete_resource(rx: &Rindex, name: &Name) -> ();
    /// Ours: sends an acknowledged message to a host, waiting up to `wait_s` seconds for the ack.
    fn message_send(name: &Name, event: &HostEvent, wait_s: u32) -> MessageStatus;
    /// Ours: what became of message `seq`, waiting up to `wait_s` seconds.
    fn message_status(name: &Name, seq: u32, wait_s: u32) -> MessageStatus;
    /// Ours: makes host `host_id` reset itself, or waits until it must be dead.
    fn fence(name: &Name, host_id: u64, generation: u64, wait_s: u32) -> MessageStatus;
}

registration_calls! {
    /// Acquires leases for this process (ACQUIRE on the registered connection).
    fn acquire(resources: &[Resource], flags: AcquireFlags) -> () = calls::acquire(-1, resources, flags);
    /// Releases this process's leases (RELEASE).
    fn release(resources: &[Resource], flags: ReleaseFlags) -> () = calls::release(-1, resources, flags);
    /// The leases this process holds (INQUIRE).
    fn inquire() -> Vec<Resource> = calls::inquire(-1);
    /// Converts a lease between shared and exclusive (CONVERT).
    fn convert(res: &Resource, flags: ConvertFlags) -> () = calls::convert(-1, res, flags);
    /// The program the daemon runs, instead of SIGTERM, when this process must give up its
    /// leases (KILLPATH); path and args up to 127 bytes each.
    fn killpath(path: &[u8], args: &[u8], flags: KillpathFlags) -> () = calls::killpath(path, args, flags);
    /// Restricts what the daemon may do to this process (RESTRICT).
    fn restrict(flags: RestrictFlags) -> () = calls::restrict(flags);
}
