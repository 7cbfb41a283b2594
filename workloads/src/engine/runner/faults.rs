//! Carrying out the nemesis's actions: partitions and lossiness in the network, signals to
//! node process groups, restarts in the same working directory (with a fresh `init`), and
//! clock files. Each action is recorded as Maelstrom records a partition: two `:info` ops of
//! the nemesis process, the first with what was asked, the second with what happened.

use serde_json::{Map, Value};

use super::{Engine, Role, INIT_TIMEOUT};
use crate::edn::Edn;
use crate::engine::process::signals;
use crate::engine::progress;
use crate::history::{Op, OpType, Process};
use crate::nemesis::clock::ClockChange;
use crate::nemesis::Action;
use crate::net::Nanos;

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
        let actions = self.planner.as_mut().map(|p| p.heal()).unwrap_or_default();
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
                self.partition = Some(words);
                let map = grudge
                    .iter()
                    .map(|(dest, srcs)| {
                        let set = srcs
                            .iter()
                            .map(|s| Edn::Str(self.names[*s as usize].clone()))
                            .collect();
                        (Edn::Str(self.names[*dest as usize].clone()), Edn::Set(set))
                    })
                    .collect();
                Edn::Vector(vec![Edn::kw("isolated"), Edn::Map(map)])
            }
            Action::Heal => {
                self.net.heal();
                self.partition = None;
                Edn::kw("network-healed")
            }
            Action::Kill { nodes, .. } => {
                let mut done = Vec::new();
                for i in nodes.into_iter().map(|i| i as usize) {
                    if !self.down[i] {
                        self.nodes[i].signal(signals::SIGKILL);
                        self.down[i] = true;
                        self.paused[i] = false;
                        done.push((i, Edn::kw("killed")));
                    }
                }
                self.per_node(done)
            }
            Action::Restart => {
                let mut done = Vec::new();
                for i in 0..self.names.len() {
                    if self.down[i] {
                        done.push((i, self.restart(now, i)));
                    }
                }
                self.per_node(done)
            }
            Action::Pause { nodes, .. } => {
                let mut done = Vec::new();
                for i in nodes.into_iter().map(|i| i as usize) {
                    if !self.down[i] && !self.paused[i] {
                        self.nodes[i].signal(signals::SIGSTOP);
                        self.paused[i] = true;
                        done.push((i, Edn::kw("paused")));
                    }
                }
                self.per_node(done)
            }
            Action::Resume => {
                let mut done = Vec::new();
                for i in 0..self.names.len() {
                    if self.paused[i] {
                        self.nodes[i].signal(signals::SIGCONT);
                        self.paused[i] = false;
                        done.push((i, Edn::kw("resumed")));
                    }
                }
                self.per_node(done)
            }
            Action::Clock { changes } => {
                let mut done = Vec::new();
                for (node, change) in changes {
                    let i = node as usize;
                    let Some(clocks) = self.clocks.as_mut() else {
                        break;
                    };
                    let result = clocks.apply(now, i, change);
                    let offset = clocks.offset_ms(i);
                    let what = match change {
                        ClockChange::Bump(ms) => ("bump-ms", Edn::Int(ms)),
                        ClockChange::Drift(speed) => ("speed", Edn::Float(speed)),
                    };
                    let mut entries = vec![what, ("offset-ms", Edn::Int(offset.round() as i64))];
                    if let Err(e) = result {
                        entries.push(("error", Edn::Str(e.to_string())));
                    }
                    done.push((i, Edn::map(entries)));
                }
                self.per_node(done)
            }
            Action::ResetClocks => match self.clocks.as_mut().map(|c| c.reset(now)) {
                Some(Err(e)) => Edn::Str(format!("cannot reset the clocks: {e}")),
                _ => Edn::kw("clocks-reset"),
            },
            Action::StartLossy(lossy) => {
                self.net.set_lossy(Some(lossy));
                Edn::map(vec![
                    ("drop", Edn::Float(lossy.drop)),
                    ("duplicate", Edn::Float(lossy.duplicate)),
                    ("reorder", Edn::Float(lossy.reorder)),
                ])
            }
            Action::StopLossy => {
                self.net.set_lossy(None);
                Edn::kw("network-reliable")
            }
        }
    }

    /// Starts the next incarnation of node `i` and sends it `init`, as a fresh node gets.
    fn restart(&mut self, now: Nanos, i: usize) -> Edn {
        let generation = self.nodes[i].generation + 1;
        match self.spawner.spawn(i as u32, generation) {
            Ok(process) => {
                self.nodes[i] = process;
                self.down[i] = false;
                let client = self.open_client(Role::Reinit(i));
                let mut body = Map::new();
                body.insert("type".into(), "init".into());
                body.insert("node_id".into(), self.names[i].clone().into());
                let ids = self.names.iter().cloned().map(Value::String).collect();
                body.insert("node_ids".into(), Value::Array(ids));
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
