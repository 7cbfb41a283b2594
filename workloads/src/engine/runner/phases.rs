//! The phases of a run and the loop that drives them: `init` to every node, the workload's
//! setup, the main phase at `--rate` with the nemesis, healing, the recovery wait and the
//! final phase; then stopping every node. [`Engine::pump`] waits for node events and
//! deadlines; [`Engine::tick`] does what is due.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::{
    Engine, Phase, Role, RunError, Worker, CLIENT_TIMEOUT, FINAL_LIMIT, INIT_TIMEOUT, RECOVERY, SEC,
};
use crate::engine::cluster;
use crate::engine::faketime::Clocks;
use crate::engine::process::{tail_text, NodeEvent};
use crate::engine::progress::Progress;
use crate::nemesis::Planner;
use crate::net::Nanos;

/// SIGINT and SIGTERM, which end a run (with its history written).
pub(super) struct Signals {
    pub int: Option<Signal>,
    pub term: Option<Signal>,
}

impl Signals {
    pub fn new() -> Self {
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }
}

impl Engine {
    /// Runs every phase. History and counters stay readable afterwards, also on error.
    pub async fn run(&mut self) -> Result<(), RunError> {
        self.init_nodes().await?;
        self.setup_nodes().await?;
        for t in 0..self.settings.concurrency {
            let client = self.open_client(Role::Worker(t));
            self.workers.push(Worker {
                process: t as u64,
                node: self
                    .settings
                    .worker_nodes
                    .get(t)
                    .copied()
                    .unwrap_or(t % self.names.len()),
                client,
                issued: 0,
                resume_at: 0,
                done: false,
            });
        }
        self.main_phase().await?;
        if self.workload.has_final_phase() {
            self.final_phase().await?;
        }
        self.net.heal();
        Ok(())
    }

    pub(super) async fn init_nodes(&mut self) -> Result<(), RunError> {
        let now = self.now();
        let mut init_clients = Vec::new();
        for i in 0..self.names.len() {
            let c = self.open_client(Role::Init(i));
            init_clients.push(c);
            let body = self.init_body(i);
            self.send_request(now, c, i, body, INIT_TIMEOUT, None);
        }
        self.log(
            "runner",
            &format!("Sent init to {} node(s)", self.names.len()),
        );
        self.pump(None, |e| e.setup_results.iter().all(Option::is_some))
            .await?;
        self.check_setup_results("init")?;
        for c in init_clients {
            self.net.close_client(c);
            self.clients.remove(&c);
        }
        Ok(())
    }

    /// The `init` of node `i`, the same at its start and after every restart.
    pub(super) fn init_body(&self, i: usize) -> Map<String, Value> {
        cluster::init_body(&self.cluster, i, self.settings.services_in_init)
    }

    pub(super) fn check_setup_results(&mut self, what: &str) -> Result<(), RunError> {
        for (i, r) in self.setup_results.iter().enumerate() {
            if let Some(Err(why)) = r {
                let stderr = tail_text(&self.nodes[i].stderr_tail);
                let failure = setup_failure(what, &self.names[i], why, &stderr);
                return Err(RunError::Setup(failure));
            }
        }
        self.setup_results.iter_mut().for_each(|r| *r = None);
        Ok(())
    }

    pub(super) async fn setup_nodes(&mut self) -> Result<(), RunError> {
        let now = self.now();
        let mut any = false;
        for i in 0..self.names.len() {
            let c = self.open_client(Role::Setup(i));
            match self.workload.setup(&self.cluster, i) {
                Some(req) => {
                    let body = req.body;
                    any = true;
                    self.send_request(now, c, i, body, CLIENT_TIMEOUT, None);
                }
                None => self.setup_results[i] = Some(Ok(())),
            }
        }
        if any {
            self.pump(None, |e| e.setup_results.iter().all(Option::is_some))
                .await?;
        }
        self.check_setup_results("Workload setup")
    }

    pub(super) async fn main_phase(&mut self) -> Result<(), RunError> {
        let now = self.now();
        self.history_origin = now;
        self.progress = Some(Progress::new(now));
        let end = now + self.settings.time_limit;
        self.phase = Phase::Main { end };
        self.next_op_at = now;
        if let (Some(config), Some(rng)) = (
            self.settings.nemesis.clone(),
            self.faults.nemesis_rng.take(),
        ) {
            self.faults.planner = Some(Planner::new(config, now, rng));
        }
        self.log(
            "runner",
            &format!(
                "Running {} for {} s at {} ops/s with {} worker(s)",
                self.workload.name(),
                self.settings.time_limit / SEC,
                self.settings.rate,
                self.workers.len()
            ),
        );
        let sent_before = self.sent();
        self.pump(Some(end), move |e| e.now() >= end).await?;
        // Heal before waiting for the last replies, so that no request outlives the run
        // only because its node is still paused, killed or cut off.
        if self.faults.planner.is_some() {
            self.log("runner", "Healing cluster");
            self.heal(self.now());
        }
        self.pump(None, |e| e.idle()).await?;
        self.phase = Phase::Quiet;
        let secs = (self.now() - now) as f64 / SEC as f64;
        let routed = self.sent() - sent_before;
        self.log(
            "runner",
            &format!(
                "Run complete: the network routed {routed} messages in the main phase, routed/s {:.0}",
                routed as f64 / secs.max(1e-9)
            ),
        );
        Ok(())
    }

    /// After the recovery wait, workers run the workload's final operations (issued by
    /// [`Engine::ask_final`] from `tick`) until every one is finished or [`FINAL_LIMIT`]
    /// passes; then the replies still due are awaited.
    pub(super) async fn final_phase(&mut self) -> Result<(), RunError> {
        self.log("runner", "Waiting for recovery...");
        let until = self.now() + RECOVERY;
        self.pump(Some(until), move |e| e.now() >= until).await?;
        let limit = self.now() + FINAL_LIMIT;
        self.phase = Phase::Final { limit };
        self.workers.iter_mut().for_each(Worker::reset);
        self.pump(Some(limit), move |e| {
            e.now() >= limit || (e.workers.iter().all(|w| w.done) && e.idle())
        })
        .await?;
        self.phase = Phase::Quiet;
        let unfinished = self.workers.iter().filter(|w| !w.done).count();
        if unfinished > 0 {
            self.console.warn(
                "runner",
                "workloads.run",
                &format!(
                    "The final phase reached its limit of {} s with {unfinished} worker(s) \
                     not finished; issuing nothing more",
                    FINAL_LIMIT / SEC
                ),
            );
        }
        self.pump(None, |e| e.idle()).await
    }

    pub(super) fn sent(&self) -> u64 {
        let c = self.net.counters();
        c.clients.send + c.servers.send
    }

    /// True when no worker waits for a reply.
    pub(super) fn idle(&self) -> bool {
        self.workers.iter().all(|w| {
            self.clients
                .get(&w.client)
                .map_or(true, |c| c.pending.is_none())
        })
    }

    /// Processes events and deadlines until `done` holds; `until` is a time at which `done`
    /// may become true without any event.
    pub(super) async fn pump(
        &mut self,
        until: Option<Nanos>,
        done: impl Fn(&Engine) -> bool,
    ) -> Result<(), RunError> {
        loop {
            let now = self.now();
            self.tick(now);
            self.console.tick();
            if done(self) {
                return Ok(());
            }
            let wake = until.map_or(self.next_wakeup(), |u| u.min(self.next_wakeup()));
            let sleep_for = Duration::from_nanos(wake.saturating_sub(self.now()));
            let event = tokio::select! {
                ev = self.events.recv() => ev,
                _ = tokio::time::sleep(sleep_for) => None,
                _ = recv_signal(&mut self.signals.int) => return Err(RunError::Interrupted("SIGINT")),
                _ = recv_signal(&mut self.signals.term) => return Err(RunError::Interrupted("SIGTERM")),
            };
            if let Some(ev) = event {
                self.handle_event(ev).await?;
                // Take whatever else is already queued before looking at the clock again.
                for _ in 0..4096 {
                    match self.events.try_recv() {
                        Ok(ev) => self.handle_event(ev).await?,
                        Err(_) => break,
                    }
                }
            }
        }
    }

    pub(super) fn next_wakeup(&self) -> Nanos {
        let mut wake = self.now() + SEC;
        if let Some(d) = self.net.next_deadline() {
            wake = wake.min(d);
        }
        for c in self.clients.values() {
            if let Some(p) = &c.pending {
                wake = wake.min(p.deadline);
            }
        }
        match self.phase {
            Phase::Main { end } => {
                wake = wake.min(end);
                if self.settings.rate > 0.0 && self.free_worker().is_some() {
                    wake = wake.min(self.next_op_at);
                }
                if let Some(p) = &self.faults.planner {
                    wake = wake.min(p.next_at());
                }
            }
            Phase::Final { limit } => {
                wake = wake.min(limit);
                for (w, worker) in self.workers.iter().enumerate() {
                    if !worker.done && self.is_free(w) {
                        wake = wake.min(worker.resume_at);
                    }
                }
            }
            Phase::Setup | Phase::Quiet => {}
        }
        if let Some(at) = self.clocks.as_ref().and_then(Clocks::next_tick) {
            wake = wake.min(at);
        }
        if let Some(p) = &self.progress {
            wake = wake.min(p.next_at());
        }
        wake
    }

    pub(super) async fn handle_event(&mut self, ev: NodeEvent) -> Result<(), RunError> {
        match ev {
            NodeEvent::Line(line) => {
                let now = self.now();
                self.on_line(now, line);
                Ok(())
            }
            NodeEvent::Exited {
                node,
                generation,
                status,
            } => {
                let n = node as usize;
                if self.shutting_down
                    || self.faults.down[n]
                    || generation != self.nodes[n].generation
                {
                    // A node the nemesis killed, or its predecessor.
                    return Ok(());
                }
                // Let the reader tasks catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let n = &self.nodes[node as usize];
                let (stdout, stderr) = (tail_text(&n.stdout_tail), tail_text(&n.stderr_tail));
                Err(RunError::Crash(crash_report(
                    &n.name, status, &stdout, &stderr,
                )))
            }
        }
    }

    /// Everything due at `now`: deliveries, timeouts, the nemesis, new operations.
    pub(super) fn tick(&mut self, now: Nanos) {
        while let Some(packet) = self.net.pop_due(now) {
            self.deliver(now, packet);
        }
        self.expire(now);
        self.drift_clocks(now);
        match self.phase {
            Phase::Main { end } if now < end => {
                let n = self.names.len() as u32;
                let action = self.faults.planner.as_mut().and_then(|p| p.poll(now, n));
                if let Some(action) = action {
                    self.nemesis(now, action);
                }
                self.generate(now, end);
            }
            Phase::Final { limit } if now < limit => self.ask_final(now),
            _ => {}
        }
        if matches!(self.phase, Phase::Main { .. } | Phase::Final { .. }) {
            // Deliveries caused by what was just sent (clients have no latency).
            while let Some(packet) = self.net.pop_due(now) {
                self.deliver(now, packet);
            }
        }
        self.report_progress(now);
    }

    /// Closes every node's stdin, then escalates to SIGTERM and SIGKILL for nodes still
    /// running after the grace period. Also called after errors.
    pub async fn shut_down(&mut self) {
        self.shutting_down = true;
        let mut running: Vec<bool> = self.faults.down.iter().map(|d| !d).collect();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if self.faults.paused[i] {
                n.signal(libc::SIGCONT);
            }
            n.close_stdin();
        }
        let grace = Duration::from_millis(500);
        for signal in [None, Some(libc::SIGTERM), Some(libc::SIGKILL)] {
            if let Some(sig) = signal {
                for (i, n) in self.nodes.iter().enumerate() {
                    if running[i] || (sig == libc::SIGKILL && !self.faults.down[i]) {
                        n.signal(sig);
                    }
                }
            }
            let deadline = tokio::time::Instant::now() + grace;
            while running.iter().any(|r| *r) {
                match tokio::time::timeout_at(deadline, self.events.recv()).await {
                    Ok(Some(NodeEvent::Exited {
                        node, generation, ..
                    })) => {
                        if generation == self.nodes[node as usize].generation {
                            running[node as usize] = false;
                        }
                    }
                    Ok(Some(NodeEvent::Line(_))) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        self.console.flush();
    }
}

async fn recv_signal(sig: &mut Option<Signal>) {
    match sig {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Text for an empty tail.
fn or_nothing(tail: &str) -> &str {
    if tail.is_empty() {
        "(nothing)"
    } else {
        tail
    }
}

/// Why a node's `init` or the workload's setup failed, with the node's last stderr lines.
fn setup_failure(what: &str, node: &str, why: &str, stderr: &str) -> String {
    let stderr = or_nothing(stderr);
    format!("{what} failed on node {node}: {why}\n\nIts last lines on STDERR:\n{stderr}")
}

/// Maelstrom's report of a node that exited mid-run, with its last output.
fn crash_report(node: &str, status: impl std::fmt::Display, stdout: &str, stderr: &str) -> String {
    format!(
        "Node {node} crashed with exit status {status}. Before crashing, it wrote to \
         STDOUT:\n\n{}\n\nAnd to STDERR:\n\n{}",
        or_nothing(stdout),
        or_nothing(stderr),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_quote_what_the_node_wrote_or_say_it_wrote_nothing() {
        let crash = crash_report("n2", 101, "", "panicked at x");
        assert_eq!(
            crash,
            "Node n2 crashed with exit status 101. Before crashing, it wrote to STDOUT:\n\n\
             (nothing)\n\nAnd to STDERR:\n\npanicked at x"
        );
        let setup = setup_failure("init", "n1", "no reply", "");
        assert_eq!(
            setup,
            "init failed on node n1: no reply\n\nIts last lines on STDERR:\n(nothing)"
        );
    }
}
