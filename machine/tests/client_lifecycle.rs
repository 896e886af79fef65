//! sanlock's client lifecycle cases as scenarios on the daemon machine's client table, in
//! virtual time and without sockets: each is a short list of inputs and the effects expected,
//! pinned to what sanlock 3.8.5 does (wire.md §1.3, §4.1, §4.5; algorithms.md §6.2; cmd.c,
//! main.c `kill_pids`, resource.c `do_request`). The daemon tests check the same cases
//! against the real daemons.

use std::collections::BTreeSet;
use std::time::Duration;

use sanlock_core::ondisk::Name;
use sanlock_core::Time;
use sanlock_machine::clients::{ClientTable, Effect, Key, Level, Life};
use sanlock_machine::recovery::{StopSignal, RESTRICT_SIGKILL};
use sanlock_machine::wire::payload::RES_PERSISTENT;
use sanlock_machine::wire::WireResource;

/// The command under way, as a test sees it.
type Table = ClientTable<&'static str>;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn key(r: &str) -> Key {
    (name("LS"), name(r))
}

fn at(s: u64) -> Time {
    Time::new(Duration::from_secs(1000 + s))
}

fn none() -> BTreeSet<Name> {
    BTreeSet::new()
}

/// A registered client of `pid`; its effects are dropped.
fn registered(t: &mut Table, pid: i32) -> usize {
    let ci = t.alloc(pid).unwrap();
    t.register(ci, 4);
    t.take_effects();
    ci
}

/// Client `ci` acquired `r` (as the engine records an `Acquired`).
fn hold(t: &mut Table, ci: usize, r: &str, flags: u32) {
    let k = key(r);
    let resource = WireResource {
        lockspace_name: k.0,
        name: k.1,
        flags,
        ..WireResource::default()
    };
    t.hold(ci, resource, false, 1);
}

/// The effects, log lines left out.
fn acts(t: &mut Table) -> Vec<Effect> {
    t.take_effects()
        .into_iter()
        .filter(|e| !matches!(e, Effect::Log(..)))
        .collect()
}

/// The effect of sending `signal` to pid 10.
fn to_10(signal: StopSignal) -> Effect {
    Effect::Signal { pid: 10, signal }
}

fn logs(t: &mut Table) -> Vec<String> {
    t.take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Log(_, line) => Some(line),
            _ => None,
        })
        .collect()
}

#[test]
fn register_watches_the_process_and_names_the_client_by_its_pid() {
    let mut t = Table::default();
    let ci = t.alloc(4242).unwrap();
    assert_eq!(t.get(ci).unwrap().life, Life::Connected);
    t.register(ci, 4);
    assert_eq!(
        t.take_effects(),
        [
            Effect::Log(Level::Info, format!("cmd_register ci {ci} pid 4242")),
            Effect::WatchPid { ci, pid: 4242 }
        ]
    );
    let c = t.get(ci).unwrap();
    assert_eq!((c.life, c.owner_name), (Life::Registered, name("4242")));
    // A second REGISTER changes nothing and watches nothing more.
    t.register(ci, 4);
    assert!(t.take_effects().is_empty());
}

#[test]
fn an_unregistered_connection_that_closes_frees_its_slot_and_releases_nothing() {
    let mut t = Table::default();
    let ci = t.alloc(10).unwrap();
    t.closed(ci, &none());
    assert!(t.get(ci).is_none());
    assert!(t.take_effects().is_empty());
    assert_eq!(t.alloc(11), Some(ci), "the slot is reused");
}

#[test]
fn a_client_that_dies_holding_leases_has_each_released_and_its_slot_freed_at_close() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    hold(&mut t, ci, "R1", 0);
    hold(&mut t, ci, "R2", 0);
    t.process_exited(ci, 10, &none());
    assert_eq!(
        acts(&mut t),
        [Effect::Release(key("R1")), Effect::Release(key("R2"))]
    );
    assert!(t.tokens.is_empty());
    assert!(t.get(ci).unwrap().dead());
    // Its connection is still open: the slot stays until it closes.
    assert_eq!(t.alloc(11), Some(ci + 1));
    t.closed(ci, &none());
    assert!(acts(&mut t).is_empty(), "released once, not twice");
    assert!(t.get(ci).is_none());
}

#[test]
fn a_pidfd_of_a_reused_slot_is_ignored() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    t.closed(ci, &none());
    let again = registered(&mut t, 20);
    hold(&mut t, again, "R1", 0);
    assert_eq!(again, ci);
    // The old process's exit arrives late, naming the slot with its own pid.
    t.process_exited(ci, 10, &none());
    assert!(acts(&mut t).is_empty());
    assert!(!t.get(ci).unwrap().dead());
}

#[test]
fn a_persistent_lease_outlives_its_dead_holder_as_an_orphan_unless_its_lockspace_failed() {
    let mut t = Table::default();
    let a = registered(&mut t, 10);
    hold(&mut t, a, "R1", RES_PERSISTENT);
    t.closed(a, &none());
    assert_eq!(
        logs(&mut t),
        [
            "client ci 0 pid 10 dead: releasing its leases",
            "orphan LS:R1"
        ]
    );
    let orphan = &t.tokens[&key("R1")];
    assert!(orphan.orphan && orphan.holders.is_empty() && orphan.last_pid == 10);
    assert_eq!(t.orphans(name("LS")), 1);

    let b = registered(&mut t, 20);
    hold(&mut t, b, "R2", RES_PERSISTENT);
    let failed: BTreeSet<Name> = [name("LS")].into();
    t.closed(b, &failed);
    assert_eq!(acts(&mut t), [Effect::Release(key("R2"))]);
}

#[test]
fn a_client_that_dies_with_a_command_under_way_loses_its_leases_when_it_finishes() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    hold(&mut t, ci, "R1", 0);
    t.get_mut(ci).unwrap().job = Some("acquire R2");
    t.process_exited(ci, 10, &none());
    assert!(acts(&mut t).is_empty(), "nothing until the command ends");
    assert_eq!(
        t.target_error(ci, u32::MAX),
        -16,
        "busy, not stale, meanwhile"
    );
    t.get_mut(ci).unwrap().job = None;
    t.release_all(ci, &none());
    assert_eq!(acts(&mut t), [Effect::Release(key("R1"))]);
    assert_eq!(t.target_error(ci, u32::MAX), -116);
}

#[test]
fn a_shared_lease_is_released_by_its_last_holder_only() {
    let mut t = Table::default();
    let a = registered(&mut t, 10);
    let b = registered(&mut t, 20);
    hold(&mut t, a, "R1", 0);
    t.tokens.get_mut(&key("R1")).unwrap().holders.push(b);
    t.add_lease(b, key("R1"));
    assert!(!t.drop_holder(a, key("R1")), "b still holds it");
    t.closed(b, &none());
    assert_eq!(acts(&mut t), [Effect::Release(key("R1"))]);
}

#[test]
fn the_target_of_a_lease_command_is_the_connection_or_the_first_registered_slot_of_a_pid() {
    let mut t = Table::default();
    let unregistered = t.alloc(30).unwrap();
    let ci = registered(&mut t, 30);
    assert_eq!(t.target(unregistered, 30), Some(ci));
    assert_eq!(t.target(ci, u32::MAX), Some(ci));
    assert_eq!(t.target_error(ci, 99), -3, "no such pid: -ESRCH");
    t.process_exited(ci, 30, &none());
    assert_eq!(t.target(unregistered, 30), None);
    assert_eq!(t.target_error(unregistered, 30), -116, "dead: -ESTALE");
}

#[test]
fn recovery_sends_sigterm_once_a_second_within_the_grace_then_sigkill() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    let idle = registered(&mut t, 20);
    hold(&mut t, ci, "R1", 0);
    let ls = name("LS");
    let term = to_10(StopSignal::Term);
    t.stop_holders(at(0), ls, true, true);
    assert_eq!(
        acts(&mut t),
        vec![term.clone()],
        "the idle client is left alone"
    );
    t.stop_holders(at(0) + Duration::from_millis(500), ls, true, true);
    assert!(acts(&mut t).is_empty(), "at most one stop a second");
    t.stop_holders(at(1), ls, true, true);
    assert_eq!(acts(&mut t), [term]);
    t.stop_holders(at(2), ls, false, true);
    let kill = to_10(StopSignal::Kill);
    assert_eq!(acts(&mut t), [kill]);
    assert!(t.killing(&ls) && t.emptied().is_empty());
    assert_eq!(t.get(ci).unwrap().kill.count, 3);
    assert_eq!(t.get(idle).unwrap().kill.count, 0);
    // It dies: its lease goes, recovery of the lockspace may end.
    t.process_exited(ci, 10, &none());
    assert_eq!(acts(&mut t), [Effect::Release(key("R1"))]);
    assert_eq!(t.emptied(), [ls]);
    t.end_killing(ls);
    assert!(!t.killing(&ls));
}

#[test]
fn a_killpath_runs_once_in_place_of_sigterm_and_sigkill_follows_after_the_grace() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    t.set_killpath(ci, b"/bin/kp".to_vec(), b"vm\\ 1 x".to_vec(), 1);
    hold(&mut t, ci, "R1", 0);
    let ls = name("LS");
    t.stop_holders(at(0), ls, true, true);
    let argv: Vec<Vec<u8>> = ["/bin/kp", "vm 1", "x", "10"]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    assert_eq!(acts(&mut t), [Effect::RunKillpath(argv)]);
    t.stop_holders(at(5), ls, true, true);
    assert!(
        acts(&mut t).is_empty(),
        "the killpath runs once; no SIGTERM after it"
    );
    t.stop_holders(at(11), ls, false, true);
    assert_eq!(acts(&mut t), [to_10(StopSignal::Kill)]);
}

#[test]
fn restrict_sigkill_turns_recoverys_sigkill_into_sigterm() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    t.get_mut(ci).unwrap().restrict = RESTRICT_SIGKILL;
    hold(&mut t, ci, "R1", 0);
    t.stop_holders(at(0), name("LS"), false, false);
    assert_eq!(acts(&mut t), [to_10(StopSignal::Term)]);
}

#[test]
fn a_release_that_leaves_a_stopped_client_holding_nothing_clears_its_kill_state() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    hold(&mut t, ci, "R1", 0);
    t.stop_holders(at(0), name("LS"), true, true);
    t.take_effects();
    assert!(t.get(ci).unwrap().kill.stopping());
    assert!(t.drop_holder(ci, key("R1")));
    t.release_answered(ci);
    assert_eq!(logs(&mut t), ["cmd_release ci 0 pid 10 clear kill state"]);
    assert!(!t.get(ci).unwrap().kill.stopping());
}

#[test]
fn a_request_stops_the_first_holder_through_the_leases_killpath_without_a_pid() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    t.set_killpath(ci, b"/bin/kp".to_vec(), b"a".to_vec(), 1);
    hold(&mut t, ci, "R1", 0);
    t.stop_holder(key("R1"), true);
    let argv = vec![b"/bin/kp".to_vec(), b"a".to_vec()];
    assert_eq!(
        t.take_effects(),
        [
            Effect::Log(Level::Err, "do_request 10 LS:R1 graceful".into()),
            Effect::RunKillpath(argv)
        ]
    );
    t.stop_holder(key("R1"), false);
    assert_eq!(acts(&mut t), [to_10(StopSignal::Kill)]);
}

#[test]
fn a_request_never_signals_a_dead_holders_pid() {
    // Its lease waits for the command it had under way; its pid may be another process's.
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    hold(&mut t, ci, "R1", 0);
    t.get_mut(ci).unwrap().job = Some("acquire R2");
    t.process_exited(ci, 10, &none());
    t.take_effects();
    t.stop_holder(key("R1"), false);
    assert!(acts(&mut t).is_empty());
}

#[test]
fn a_lockspace_that_goes_takes_its_leases_off_every_client() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    hold(&mut t, ci, "R1", 0);
    t.forget_space(name("LS"));
    assert!(t.tokens.is_empty() && t.get(ci).unwrap().leases.is_empty());
    t.closed(ci, &none());
    assert!(acts(&mut t).is_empty(), "nothing left to release");
}

#[test]
fn each_stop_is_logged_as_sanlocks_kill_line() {
    let mut t = Table::default();
    let ci = registered(&mut t, 10);
    hold(&mut t, ci, "R1", 0);
    t.stop_holders(at(0), name("LS"), true, true);
    assert_eq!(logs(&mut t), ["kill 10 sig 15 count 1"]);
    t.set_killpath(ci, b"/bin/kp".to_vec(), Vec::new(), 0);
    t.stop_holders(at(1), name("LS"), true, true);
    assert_eq!(logs(&mut t), ["kill 10 sig 100 count 2"]);
}
