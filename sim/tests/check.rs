//! The exhaustive checker: the 2-host default explores every state (the count is pinned, so
//! that a change to core or to the model that changes the state space is seen), and the
//! scenarios the CI can afford find no violation in the unchanged core. The larger ones run
//! with `cargo test --release -p sanlock-sim --test check -- --ignored`.

use sanlock_sim::check::{explore, Model, Scenario};

fn complete_and_safe(name: &str, hosts: usize) -> u64 {
    let scenario = Scenario::from_name(name).expect("a scenario");
    let report = explore(&Model::new(hosts, scenario), 30_000_000);
    println!("{report}");
    assert!(report.counterexample.is_none(), "{report}");
    assert!(report.complete, "{report}");
    report.states
}

#[test]
fn the_two_host_check_explores_every_state_and_finds_no_violation() {
    // `sanlock-sim check --hosts 2 --resources 1` prints the same count.
    assert_eq!(complete_and_safe("basic", 2), 198_418);
}

#[test]
fn two_hosts_on_one_host_id_never_both_hold_it() {
    assert_eq!(complete_and_safe("same-host-id", 2), 447);
}

#[test]
fn a_host_that_loses_its_disk_is_reset_before_its_lease_is_taken() {
    complete_and_safe("watchdog", 2);
}

#[test]
fn a_corrupted_leader_read_is_never_believed() {
    complete_and_safe("corrupt", 2);
}

#[test]
#[ignore = "a minute or more each in release: cargo test --release -p sanlock-sim --test check -- --ignored"]
fn the_larger_scenarios_find_no_violation() {
    for name in [
        "faults",
        "shared",
        "reacquire",
        "fence-faults",
        "multi-disk",
    ] {
        complete_and_safe(name, 2);
    }
}

#[test]
fn a_client_that_dies_mid_acquire_or_holding_leaves_its_lease_released_or_orphaned() {
    // The daemon's engine decides; every order of the death against the acquire's I/O.
    assert!(complete_and_safe("client-dies", 2) > 100_000);
}

#[test]
fn a_failed_lockspaces_holder_is_stopped_gracefully_and_nobody_else_is() {
    assert!(complete_and_safe("client-stopped", 2) > 100_000);
}

#[test]
fn a_fenced_host_holds_nothing_once_the_fence_returns() {
    // Its holder killed after its ack is on disk, its lockspace left; then host1 acquires.
    assert!(complete_and_safe("fence", 2) > 100_000);
}

#[test]
fn a_message_reaching_a_host_that_is_leaving_is_never_acked_unseen() {
    // host0's holder cannot be killed: after RESET it leaves for as long as its watchdog takes,
    // and host1's message goes out meanwhile.
    assert!(complete_and_safe("fence-stuck", 2) > 100_000);
}
