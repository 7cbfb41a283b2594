//! Carrying out the nemesis's actions: partitions and lossiness in the network, signals to
//! node process groups, restarts in the same working directory (with a fresh `init`), and
//! clock files. Each action is recorded as Maelstrom records a partition: two `:info` ops of
//! the nemesis process, the first with what was asked, the second with what happened.

use rand::rngs::StdRng;

use super::{Engine, Role, INIT_TIMEOUT};
use crate::edn::Edn;
use crate::engine::process::signals;
use crate::engine::progress;
use crate::history::{Op, OpType, Process};
use crate::nemesis::clock::ClockChange;
use crate::nemesis::partition::Grudge;
use crate::nemesis::{Action, Lossy, Planner};
use crate::net::Nanos;

/// What the engine knows of the nemesis and the faults in force.
#[derive(Debug)]
pub(super) struct Faults {
    /// Its random source, until the main phase makes the planner.
    pub nemesis_rng: Option<StdRng>,
    pub planner: Option<Planner>,
    /// The partition in force, in words for the progress line.
    pub partition: Option<String>,
    /// Nodes killed by the nemesis and not restarted yet.
    pub down: Vec<bool>,
    /// Nodes stopped with SIGSTOP.
    pub paused: Vec<bool>,
}

impl Faults {
    pub fn new(nodes: usize, rng: StdRng) -> Self {
        Faults {
            nemesis_rng: Some(rng),
            planner: None,
            partition: None,
            down: vec![false; nodes],
            paused: vec![false; nodes],
        }
    }
}

impl Engine {
    /// Performs one action and records it.
    pub(super) fn nemesis(&mut self, now: Nanos, action: Action) {
        let f = action.f();
        let asked = match &action {
            Action::Partition { shape, .. } => Edn::kw(shape.keyword()),
            Action::Kill { targets, .. } | Action::Pause { targets, .. } => {
                Edn::kw(targets.keyword())
            }
            _ => Edn::Nil,
        };
        self.record_nemesis(now, &f, asked);
        let done = self.apply(now, action);
        self.record_nemesis(now, &f, done);
    }

    /// Stops every fault that is on.
    pub(super) fn heal(&mut self, now: Nanos) {
        let actions = self
            .faults
            .planner
            .as_mut()
            .map(|p| p.heal())
            .unwrap_or_default();
        for action in actions {
            self.nemesis(now, action);
        }
    }

    fn record_nemesis(&mut self, now: Nanos, f: &str, value: Edn) {
        let op = Op::new(
            self.history_time(now),
            OpType::Info,
            Process::Nemesis,
            f,
            value,
        );
        self.log_op(&op);
        self.history.push(op);
    }

    /// `{"n1" :killed, …}`-style results.
    fn per_node(&self, entries: Vec<(usize, Edn)>) -> Edn {
        Edn::Map(
            entries
                .into_iter()
                .map(|(i, v)| (Edn::Str(self.names[i].clone()), v))
                .collect(),
        )
    }

    fn apply(&mut self, now: Nanos, action: Action) -> Edn {
        match action {
            Action::Partition { grudge, shape } => {
                self.net.partition(&grudge);
                let words = progress::partition_words(&self.names, &grudge, shape.keyword());
                self.faults.partition = Some(words);
                isolated(&self.names, &grudge)
            }
            Action::Heal => {
                self.net.heal();
                self.faults.partition = None;
                Edn::kw("network-healed")
            }
            Action::Kill { nodes, .. } => self.kill(nodes),
            Action::Restart => {
                let down: Vec<usize> = (0..self.names.len())
                    .filter(|&i| self.faults.down[i])
                    .collect();
                let done = down
                    .into_iter()
                    .map(|i| (i, self.restart(now, i)))
                    .collect();
                self.per_node(done)
            }
            Action::Pause { nodes, .. } => self.pause(nodes),
            Action::Resume => self.resume(),
            Action::Clock { changes } => self.change_clocks(now, changes),
            Action::ResetClocks => match self.clocks.as_mut().map(|c| c.reset(now)) {
                Some(Err(e)) => Edn::Str(format!("cannot reset the clocks: {e}")),
                _ => Edn::kw("clocks-reset"),
            },
            Action::StartLossy(lossy) => {
                self.net.set_lossy(Some(lossy));
                lossiness(&lossy)
            }
            Action::StopLossy => {
                self.net.set_lossy(None);
                Edn::kw("network-reliable")
            }
        }
    }

    /// SIGKILL to the nodes that are up.
    fn kill(&mut self, nodes: Vec<u32>) -> Edn {
        let mut done = Vec::new();
        for i in nodes.into_iter().map(|i| i as usize) {
            if !self.faults.down[i] {
                self.nodes[i].signal(signals::SIGKILL);
                self.faults.down[i] = true;
                self.faults.paused[i] = false;
                done.push((i, Edn::kw("killed")));
            }
        }
        self.per_node(done)
    }

    /// SIGSTOP to the nodes that are up and running.
    fn pause(&mut self, nodes: Vec<u32>) -> Edn {
        let mut done = Vec::new();
        for i in nodes.into_iter().map(|i| i as usize) {
            if !self.faults.down[i] && !self.faults.paused[i] {
                self.nodes[i].signal(signals::SIGSTOP);
                self.faults.paused[i] = true;
                done.push((i, Edn::kw("paused")));
            }
        }
        self.per_node(done)
    }

    /// SIGCONT to every paused node.
    fn resume(&mut self) -> Edn {
        let mut done = Vec::new();
        for i in 0..self.names.len() {
            if self.faults.paused[i] {
                self.nodes[i].signal(signals::SIGCONT);
                self.faults.paused[i] = false;
                done.push((i, Edn::kw("resumed")));
            }
        }
        self.per_node(done)
    }

    /// Moves each named node's clock.
    fn change_clocks(&mut self, now: Nanos, changes: Vec<(u32, ClockChange)>) -> Edn {
        let mut done = Vec::new();
        for (node, change) in changes {
            let i = node as usize;
            let Some(clocks) = self.clocks.as_mut() else {
                break;
            };
            let result = clocks.apply(now, i, change);
            done.push((i, clock_result(change, clocks.offset_ms(i), result)));
        }
        self.per_node(done)
    }

    /// Starts the next incarnation of node `i` and sends it `init`, as a fresh node gets.
    fn restart(&mut self, now: Nanos, i: usize) -> Edn {
        let generation = self.nodes[i].generation + 1;
        match self.spawner.spawn(i as u32, generation) {
            Ok(process) => {
                self.nodes[i] = process;
                self.faults.down[i] = false;
                let client = self.open_client(Role::Reinit(i));
                let body = self.init_body(i);
                self.send_request(now, client, i, body, INIT_TIMEOUT, None);
                Edn::kw("started")
            }
            Err(e) => {
                self.problems.failed_restarts += 1;
                let why = format!("cannot restart {}: {e}", self.names[i]);
                self.console.warn("nemesis", "workloads.nemesis", &why);
                self.problems.note(why.clone());
                Edn::Str(why)
            }
        }
    }

    /// The answer (or silence) to a restarted node's `init`.
    pub(super) fn reinit_done(&mut self, i: usize, client: u32, result: Result<(), String>) {
        self.net.close_client(client);
        self.clients.remove(&client);
        match result {
            Ok(()) => self.log(
                "nemesis",
                &format!("Node {} restarted and initialized", self.names[i]),
            ),
            Err(why) => {
                self.problems.failed_restarts += 1;
                let msg = format!(
                    "Node {} did not answer init with init_ok after its restart: {why}",
                    self.names[i]
                );
                self.console.warn("nemesis", "workloads.nemesis", &msg);
                self.problems.note(msg);
            }
        }
    }

    /// Moves drifting clocks when their tick is due.
    pub(super) fn drift_clocks(&mut self, now: Nanos) {
        let Some(clocks) = self.clocks.as_mut() else {
            return;
        };
        if clocks.next_tick().is_some_and(|at| at <= now) {
            if let Err(e) = clocks.advance(now) {
                let msg = format!("cannot move the clocks: {e}");
                self.console.warn("nemesis", "workloads.nemesis", &msg);
            }
        }
    }
}

/// `[:isolated {"n1" #{"n2" …}, …}]`: who drops messages from whom, by name.
fn isolated(names: &[String], grudge: &Grudge) -> Edn {
    let name = |i: u32| Edn::Str(names[i as usize].clone());
    let map = grudge
        .iter()
        .map(|(dest, srcs)| {
            (
                name(*dest),
                Edn::Set(srcs.iter().map(|s| name(*s)).collect()),
            )
        })
        .collect();
    Edn::Vector(vec![Edn::kw("isolated"), Edn::Map(map)])
}

/// What a clock change did to one node: the change, the offset now, and any error.
fn clock_result(change: ClockChange, offset_ms: f64, result: std::io::Result<()>) -> Edn {
    let what = match change {
        ClockChange::Bump(ms) => ("bump-ms", Edn::Int(ms)),
        ClockChange::Drift(speed) => ("speed", Edn::Float(speed)),
    };
    let mut entries = vec![what, ("offset-ms", Edn::Int(offset_ms.round() as i64))];
    if let Err(e) = result {
        entries.push(("error", Edn::Str(e.to_string())));
    }
    Edn::map(entries)
}

/// The lossy fault's probabilities.
fn lossiness(lossy: &Lossy) -> Edn {
    Edn::map(vec![
        ("drop", Edn::Float(lossy.drop)),
        ("duplicate", Edn::Float(lossy.duplicate)),
        ("reorder", Edn::Float(lossy.reorder)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_partition_is_recorded_by_node_name() {
        let names: Vec<String> = ["n0", "n1", "n2"].map(String::from).to_vec();
        let grudge = vec![(0, BTreeSet::from([1, 2])), (1, BTreeSet::from([0]))];
        assert_eq!(
            isolated(&names, &grudge).to_compact(),
            r#"[:isolated {"n0" #{"n1" "n2"}, "n1" #{"n0"}}]"#
        );
    }

    #[test]
    fn clock_changes_say_what_moved_and_what_failed() {
        let bump = clock_result(ClockChange::Bump(-2500), -2499.6, Ok(()));
        assert_eq!(bump.to_compact(), "{:bump-ms -2500, :offset-ms -2500}");
        let failed = std::io::Error::other("disk full");
        let drift = clock_result(ClockChange::Drift(0.5), 12.0, Err(failed));
        assert_eq!(
            drift.to_compact(),
            r#"{:speed 0.5, :offset-ms 12, :error "disk full"}"#
        );
        let lossy = lossiness(&Lossy::uniform(0.25)).to_compact();
        assert_eq!(lossy, "{:drop 0.25, :duplicate 0.25, :reorder 0.25}");
    }
}
