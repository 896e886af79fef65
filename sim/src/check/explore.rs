//! Depth-first search over a [`Model`] with state deduplication by fingerprint.

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

use super::fingerprint::Fingerprinter;
use super::model::{Model, State, Step};

/// What an exploration found.
#[derive(Debug)]
pub struct Report {
    /// Scenario and host count.
    pub scenario: String,
    /// Distinct states reached.
    pub states: u64,
    /// Steps taken (including those that reached a known state).
    pub transitions: u64,
    /// Longest path.
    pub max_depth: usize,
    /// States with no step left (the horizon, or nothing left to do).
    pub terminal: u64,
    /// Whether every state was explored (not stopped by the state limit).
    pub complete: bool,
    /// Wall time.
    pub seconds: f64,
    /// The violation and the steps from the initial state to it.
    pub counterexample: Option<(String, Vec<String>)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} states, {} transitions, {} terminal, depth {}, {:.2}s ({:.0} states/s){}",
            self.scenario,
            self.states,
            self.transitions,
            self.terminal,
            self.max_depth,
            self.seconds,
            self.states as f64 / self.seconds.max(1e-9),
            if self.complete {
                ""
            } else {
                " — stopped at the state limit"
            }
        )?;
        match &self.counterexample {
            None => write!(f, "no violation"),
            Some((v, path)) => {
                writeln!(f, "VIOLATION: {v}")?;
                writeln!(f, "path ({} steps):", path.len())?;
                for (i, step) in path.iter().enumerate() {
                    writeln!(f, "  {:>4}. {step}", i + 1)?;
                }
                Ok(())
            }
        }
    }
}

/// Explores every state of `model` reachable from its initial state, up to `max_states`.
pub fn explore(model: &Model, max_states: u64) -> Report {
    let started = Instant::now();
    let mut report = Report {
        scenario: format!("{} ({} hosts)", model.scenario().name, model.hosts()),
        states: 0,
        transitions: 0,
        max_depth: 0,
        terminal: 0,
        complete: true,
        seconds: 0.0,
        counterexample: None,
    };
    let initial = match model.initial() {
        Ok(s) => s,
        Err(v) => {
            report.counterexample = Some((v, Vec::new()));
            return report;
        }
    };
    let mut seen: HashSet<u128> = HashSet::new();
    seen.insert(Fingerprinter::of(&initial));
    report.states = 1;
    // Each frame: a state, its steps, the next one to try, and the step that led to it.
    struct Frame {
        state: State,
        steps: Vec<Step>,
        next: usize,
        via: Option<Step>,
    }
    let steps = model.steps(&initial);
    let mut stack = vec![Frame {
        state: initial,
        steps,
        next: 0,
        via: None,
    }];
    while let Some(top) = stack.last_mut() {
        if top.next == top.steps.len() {
            if top.steps.is_empty() {
                report.terminal += 1;
            }
            stack.pop();
            continue;
        }
        let step = top.steps[top.next].clone();
        top.next += 1;
        report.transitions += 1;
        match model.apply(&top.state, &step) {
            Err(v) => {
                let mut path: Vec<String> = stack
                    .iter()
                    .filter_map(|f| f.via.as_ref().map(ToString::to_string))
                    .collect();
                path.push(step.to_string());
                report.counterexample = Some((v, path));
                break;
            }
            Ok(next) => {
                if !seen.insert(Fingerprinter::of(&next)) {
                    continue;
                }
                report.states += 1;
                if report.states >= max_states {
                    report.complete = false;
                    break;
                }
                let steps = model.steps(&next);
                stack.push(Frame {
                    state: next,
                    steps,
                    next: 0,
                    via: Some(step),
                });
                report.max_depth = report.max_depth.max(stack.len() - 1);
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    super::fingerprint::forget_interned();
    report
}
