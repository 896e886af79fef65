//! How a daemon stops the holders of a lockspace it can no longer renew (algorithms.md §6.2;
//! sanlock 3.8.5 main.c `kill_pids`, cmd.c `cmd_release`), as pure decisions: given the time
//! and a holder's kill state, what to send it now. The daemon's shell sends the signal or runs
//! the program.
//!
//! Per holder: at most one stop a second and 100 in all; within kill_grace_seconds a killpath,
//! when set, runs once instead of SIGTERM; after the grace SIGKILL; RESTRICT_SIGKILL and
//! RESTRICT_SIGTERM swap the two signals. A live client whose RELEASE leaves it holding nothing
//! is no longer being stopped: its kill state is cleared, so that it may acquire again once the
//! lockspace is back (libvirt's pause-on-lock-failure flow).

use std::time::Duration;

use sanlock_core::Time;

/// RESTRICT_SIGKILL: SIGTERM is sent where SIGKILL would be.
pub const RESTRICT_SIGKILL: u32 = 2;
/// RESTRICT_SIGTERM: SIGKILL is sent where SIGTERM would be.
pub const RESTRICT_SIGTERM: u32 = 4;
/// Stops sent to one client at most (main.c `kill_pids`).
pub const MAX_KILL_COUNT: u32 = 100;
/// The most argv entries a killpath program gets, its path and the pid included.
const MAX_KILLPATH_ARGV: usize = 8;
/// Stops of one client are at least this far apart.
const KILL_INTERVAL: Duration = Duration::from_secs(1);

/// A signal recovery sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopSignal {
    /// SIGTERM (15).
    Term,
    /// SIGKILL (9).
    Kill,
}

impl StopSignal {
    /// The signal's number.
    pub const fn number(self) -> i32 {
        match self {
            StopSignal::Term => 15,
            StopSignal::Kill => 9,
        }
    }

    /// The signal after a client's RESTRICT flags: SIGTERM for SIGKILL and the reverse.
    pub const fn restricted(self, restrict: u32) -> StopSignal {
        match self {
            StopSignal::Kill if restrict & RESTRICT_SIGKILL != 0 => StopSignal::Term,
            StopSignal::Term if restrict & RESTRICT_SIGTERM != 0 => StopSignal::Kill,
            other => other,
        }
    }
}

/// What to do to a holder now.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stop {
    /// Send it this signal.
    Signal(StopSignal),
    /// Run this program (argv, the pid appended when the killpath asked for it).
    RunKillpath(Vec<Vec<u8>>),
}

/// A program to run against a holder instead of SIGTERM (sanlock_killpath).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Killpath {
    /// The program (execvp: searched in PATH without a slash).
    pub path: Vec<u8>,
    /// Its arguments: split at unescaped white space; `\\` and `\ ` escape.
    pub args: Vec<u8>,
    /// SANLK_KILLPATH_PID: the holder's pid is appended in recovery.
    pub with_pid: bool,
}

impl Killpath {
    /// argv as sanlock's helper builds it (helper.c `run_path`): the path, the arguments (at
    /// most 8 entries in all; parsing stops at a character that is neither alphanumeric,
    /// punctuation nor white space, or at a bad escape), then the pid when asked for and there
    /// is room.
    pub fn argv(&self, pid: Option<i32>) -> Vec<Vec<u8>> {
        let mut av = vec![self.path.clone()];
        let mut arg = Vec::new();
        let mut i = 0;
        let a = &self.args;
        while i < a.len() && av.len() < MAX_KILLPATH_ARGV {
            let mut c = a[i];
            if c == b'\\' {
                if i + 1 == a.len() {
                    break;
                }
                i += 1;
                c = a[i];
                if c == b'\\' || c.is_ascii_whitespace() {
                    arg.push(c);
                    i += 1;
                    continue;
                }
                break;
            }
            if c.is_ascii_alphanumeric() || c.is_ascii_punctuation() {
                arg.push(c);
            } else if c.is_ascii_whitespace() {
                if !arg.is_empty() {
                    av.push(std::mem::take(&mut arg));
                }
            } else {
                break;
            }
            i += 1;
        }
        if av.len() < MAX_KILLPATH_ARGV && !arg.is_empty() {
            av.push(arg);
        }
        if let Some(pid) = pid.filter(|_| av.len() < MAX_KILLPATH_ARGV) {
            av.push(pid.to_string().into_bytes());
        }
        av
    }
}

/// A client's kill state (sanlock's `kill_count`, `kill_last`, `CL_RUNPATH_SENT`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KillState {
    /// Stops sent so far.
    pub count: u32,
    /// When the last was.
    pub last: Option<Time>,
    /// The killpath ran already in this recovery (it runs once per client).
    pub killpath_ran: bool,
}

impl KillState {
    /// StopHolders at `now` for a holder with pid `pid`: `graceful` while within the grace
    /// (`grace`: kill_grace_seconds is not 0), its RESTRICT flags and killpath. `None`: nothing
    /// now (stopped less than a second ago, 100 stops sent, or its killpath already ran).
    pub fn stop(
        &mut self,
        now: Time,
        graceful: bool,
        grace: bool,
        pid: i32,
        restrict: u32,
        killpath: Option<&Killpath>,
    ) -> Option<Stop> {
        if self.count >= MAX_KILL_COUNT || self.last.is_some_and(|t| now < t + KILL_INTERVAL) {
            return None;
        }
        self.count += 1;
        self.last = Some(now);
        // Within the grace a killpath runs instead of SIGTERM, once (kill_grace 0 has no
        // graceful stop at all, so the host never asks for one then).
        if let Some(kp) = killpath.filter(|_| graceful && grace) {
            if self.killpath_ran {
                return None;
            }
            self.killpath_ran = true;
            return Some(Stop::RunKillpath(kp.argv(kp.with_pid.then_some(pid))));
        }
        let signal = if graceful {
            StopSignal::Term
        } else {
            StopSignal::Kill
        };
        Some(Stop::Signal(signal.restricted(restrict)))
    }

    /// Whether the client is being stopped.
    pub fn stopping(&self) -> bool {
        self.count > 0
    }

    /// cmd_release for a live client that now holds nothing: it is no longer being stopped.
    /// Returns whether there was anything to clear.
    pub fn clear_after_release(&mut self) -> bool {
        let was = self.stopping();
        *self = KillState::default();
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &str, pid: Option<i32>) -> Vec<String> {
        Killpath {
            path: b"/bin/kp".to_vec(),
            args: args.as_bytes().to_vec(),
            with_pid: pid.is_some(),
        }
        .argv(pid)
        .into_iter()
        .map(|a| String::from_utf8(a).unwrap())
        .collect()
    }

    #[test]
    fn killpath_arguments_split_as_sanlocks_helper_splits_them() {
        // helper.c `run_path`: white space separates, a backslash escapes a space or a
        // backslash, at most 8 entries with the path, the pid last when asked for and there
        // is room.
        assert_eq!(argv("a b", Some(42)), ["/bin/kp", "a", "b", "42"]);
        assert_eq!(argv(r"a\ b  c", None), ["/bin/kp", "a b", "c"]);
        assert_eq!(argv(r"x\\y", None), ["/bin/kp", r"x\y"]);
        assert_eq!(argv("", Some(7)), ["/bin/kp", "7"]);
        assert_eq!(
            argv("1 2 3 4 5 6 7 8 9", Some(7)),
            ["/bin/kp", "1", "2", "3", "4", "5", "6", "7"]
        );
        // A control character or a bad escape ends the arguments; the word so far is kept.
        assert_eq!(argv(r"a\x b", None), ["/bin/kp", "a"]);
        assert_eq!(argv("a\u{1}b c", None), ["/bin/kp", "a"]);
    }

    fn at(ms: u64) -> Time {
        Time::new(Duration::from_millis(100_000 + ms))
    }

    /// The stops one holder gets when StopHolders comes every `step_ms` from 0 to `end_ms`,
    /// graceful before `grace_end_ms`: (time in ms, what).
    fn timeline(
        step_ms: u64,
        end_ms: u64,
        grace_end_ms: u64,
        restrict: u32,
        killpath: Option<&Killpath>,
    ) -> Vec<(u64, Stop)> {
        let mut state = KillState::default();
        (0..=end_ms)
            .step_by(step_ms as usize)
            .filter_map(|ms| {
                let graceful = ms < grace_end_ms;
                state
                    .stop(at(ms), graceful, true, 42, restrict, killpath)
                    .map(|s| (ms, s))
            })
            .collect()
    }

    #[test]
    fn a_holder_gets_sigterm_once_a_second_through_the_grace_then_sigkill() {
        // main.c `kill_pids`: at most one signal a second; SIGTERM within kill_grace_seconds,
        // SIGKILL after (here the grace ends at 3 s; StopHolders every 250 ms).
        let term = Stop::Signal(StopSignal::Term);
        let kill = Stop::Signal(StopSignal::Kill);
        assert_eq!(
            timeline(250, 4_000, 3_000, 0, None),
            [
                (0, term.clone()),
                (1_000, term.clone()),
                (2_000, term),
                (3_000, kill.clone()),
                (4_000, kill)
            ]
        );
    }

    #[test]
    fn restrict_flags_swap_the_signals() {
        let swapped = timeline(
            1_000,
            1_000,
            1_000,
            RESTRICT_SIGKILL | RESTRICT_SIGTERM,
            None,
        );
        assert_eq!(
            swapped,
            [
                (0, Stop::Signal(StopSignal::Kill)),
                (1_000, Stop::Signal(StopSignal::Term))
            ]
        );
    }

    #[test]
    fn a_killpath_runs_once_in_the_grace_with_the_pid_and_sigkill_follows_it() {
        // The killpath replaces SIGTERM, once per recovery; SIGKILL still ends the grace.
        let kp = Killpath {
            path: b"/bin/kp".to_vec(),
            args: b"pause".to_vec(),
            with_pid: true,
        };
        let argv = vec![b"/bin/kp".to_vec(), b"pause".to_vec(), b"42".to_vec()];
        assert_eq!(
            timeline(500, 3_500, 3_000, 0, Some(&kp)),
            [
                (0, Stop::RunKillpath(argv)),
                (3_000, Stop::Signal(StopSignal::Kill))
            ]
        );
    }

    #[test]
    fn stops_end_after_one_hundred() {
        let mut state = KillState::default();
        let sent = (0..150)
            .filter(|&s| {
                let now = Time::from_secs(1_000 + s);
                state.stop(now, false, true, 42, 0, None).is_some()
            })
            .count();
        assert_eq!(sent, 100);
    }

    #[test]
    fn a_release_that_leaves_nothing_held_clears_the_kill_state() {
        // cmd.c `cmd_release`: "clear kill state"; the paused client may acquire again, and a
        // later recovery stops it afresh (its killpath runs again).
        let kp = Killpath {
            path: b"/bin/kp".to_vec(),
            args: Vec::new(),
            with_pid: false,
        };
        let mut state = KillState::default();
        assert!(state.stop(at(0), true, true, 42, 0, Some(&kp)).is_some());
        assert!(state.stopping());
        assert!(state.clear_after_release());
        assert!(!state.stopping());
        assert!(!state.clear_after_release(), "nothing left to clear");
        assert_eq!(
            state.stop(at(100), true, true, 42, 0, Some(&kp)),
            Some(Stop::RunKillpath(vec![b"/bin/kp".to_vec()]))
        );
    }
}
