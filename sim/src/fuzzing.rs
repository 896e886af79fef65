//! Entry point for the `daemon_machine` fuzz target and the test that replays its corpus: the
//! checker's model (daemon engines with their core hosts, a shared disk, faults, clocks and
//! wdmd) walked along the path the input's bytes choose, with every property of
//! [`crate::invariants`] checked after each step, as the exhaustive checker checks them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::check::{Model, Scenario};

/// Steps walked at most: past this the fuzzer learns little more per execution.
const MAX_STEPS: usize = 400;

/// Models by (scenario, hosts).
type Models = Mutex<HashMap<(usize, usize), Arc<Model>>>;

/// The model for (scenario, hosts), built once: its disk image takes a while.
fn model(scenario: usize, hosts: usize) -> Arc<Model> {
    static MODELS: OnceLock<Models> = OnceLock::new();
    let models = MODELS.get_or_init(Default::default);
    let mut models = models.lock().unwrap_or_else(|e| e.into_inner());
    models
        .entry((scenario, hosts))
        .or_insert_with(|| Arc::new(Model::new(hosts, Scenario::ALL[scenario].clone())))
        .clone()
}

/// Walks the model: the first byte picks the scenario, the second 2 or 3 hosts, and each
/// later byte one of the steps the model allows at that point. Panics with the path when a
/// property breaks.
pub fn walk(data: &[u8]) {
    let [s, h, path @ ..] = data else {
        return;
    };
    let scenario = usize::from(*s) % Scenario::ALL.len();
    let model = model(scenario, 2 + usize::from(*h) % 2);
    // Interned reads are keyed by what they hold (the model's image and what was written),
    // so earlier walks' reads change nothing but speed; past 256 of them (1 MiB each) they
    // are dropped, so that millions of walks stay within the fuzzer's memory limit.
    if crate::check::interned() > 256 {
        crate::check::forget_interned();
    }
    let mut state = model.initial().unwrap_or_else(|v| panic!("initial: {v}"));
    let mut taken = Vec::new();
    for &b in path.iter().take(MAX_STEPS) {
        let steps = model.steps(&state);
        if steps.is_empty() {
            return;
        }
        let step = steps[usize::from(b) % steps.len()].clone();
        taken.push(step.clone());
        state = model.apply(&state, &step).unwrap_or_else(|v| {
            panic!(
                "{} on {} hosts: {v}\npath: {taken:?}",
                model.scenario().name(),
                model.hosts()
            )
        });
    }
}
