//! Driving the clients: which worker runs what and when (the workload's answers, the
//! `--rate` stagger), requests with their deadlines, replies and timeouts by client role,
//! and every invocation and completion recorded in the history.

use rand::Rng;
use serde_json::{Map, Value};

use super::{ClientState, Engine, Pending, Role, CLIENT_TIMEOUT, INIT_TIMEOUT, LOCAL_RUN, SEC};
use crate::engine::outcome::{self, Outcome};
use crate::history::{Op, OpType, Process};
use crate::net::{Addr, Nanos};
use crate::workload::{self, Ask, GenOp, Next};

impl Engine {
    pub(super) fn open_client(&mut self, role: Role) -> u32 {
        let id = self.net.open_client();
        self.clients.insert(
            id,
            ClientState {
                role,
                last_msg_id: 0,
                pending: None,
            },
        );
        id
    }

    /// Whether worker `w` has no request in flight.
    pub(super) fn is_free(&self, w: usize) -> bool {
        self.clients
            .get(&self.workers[w].client)
            .is_some_and(|c| c.pending.is_none())
    }

    /// Whether worker `w` may be asked for an operation at `now`.
    pub(super) fn is_ready(&self, w: usize, now: Nanos) -> bool {
        let worker = &self.workers[w];
        !worker.done && worker.resume_at <= now && self.is_free(w)
    }

    pub(super) fn free_worker(&self) -> Option<usize> {
        let n = self.workers.len();
        (0..n)
            .map(|k| (self.next_worker + k) % n)
            .find(|&w| self.is_free(w))
    }

    /// Issues the operations due by `now`: one global stagger, each gap uniform in
    /// [0, 2/rate] s, each slot offered to the free workers in turn.
    pub(super) fn generate(&mut self, now: Nanos, end: Nanos) {
        if self.settings.rate <= 0.0 {
            return;
        }
        let mean_gap = SEC as f64 / self.settings.rate;
        while now >= self.next_op_at && now < end {
            if self.free_worker().is_none() {
                return;
            }
            self.fill_slot(now);
            let gap = self.gen_rng.gen_range(0.0..=2.0 * mean_gap) as Nanos;
            self.next_op_at = next_slot(self.next_op_at, now, gap);
        }
    }

    /// Gives the slot due at `now` to the first ready worker, from `next_worker` on, that
    /// has an operation for it; when none has, the slot passes unused.
    pub(super) fn fill_slot(&mut self, now: Nanos) {
        let n = self.workers.len();
        for k in 0..n {
            let w = (self.next_worker + k) % n;
            if !self.is_ready(w, now) {
                continue;
            }
            let ask = self.ask(workload::Phase::Main, w, now);
            let next = self.workload.next(ask, &mut self.gen_rng);
            if self.carry_out(now, w, next) {
                self.next_worker = (w + 1) % n;
                return;
            }
        }
    }

    /// Asks the workload for the final operations of every ready worker.
    pub(super) fn ask_final(&mut self, now: Nanos) {
        for w in 0..self.workers.len() {
            for _ in 0..LOCAL_RUN {
                if !self.is_ready(w, now) {
                    break;
                }
                let ask = self.ask(workload::Phase::Final, w, now);
                let next = in_final_phase(self.workload.next(ask, &mut self.gen_rng));
                self.carry_out(now, w, next);
            }
        }
    }

    pub(super) fn ask(&self, phase: workload::Phase, w: usize, now: Nanos) -> Ask {
        Ask {
            phase,
            worker: w,
            now_ms: self.history_time(now) / 1_000_000,
            issued: self.workers[w].issued,
        }
    }

    /// Does what the workload answered for worker `w`; true if an operation was recorded.
    pub(super) fn carry_out(&mut self, now: Nanos, w: usize, next: Next) -> bool {
        match next {
            Next::Op(op) => self.invoke(now, w, op),
            Next::Local(op) => self.record_local(now, w, op),
            Next::Wait(ms) => {
                // At least 1 ms, so that a worker asking to wait does wait.
                self.workers[w].resume_at = now + ms.max(1) * 1_000_000;
                return false;
            }
            Next::Done => {
                self.workers[w].done = true;
                return false;
            }
        }
        true
    }

    /// Logs an operation as Jepsen does: process, type, f, value (and error), tab-separated.
    pub(super) fn log_op(&self, op: &Op) {
        let (thread, process) = match op.process {
            Process::Worker(p) => (
                format!("worker {}", p % self.workers.len().max(1) as u64),
                p.to_string(),
            ),
            Process::Nemesis => ("nemesis".to_string(), ":nemesis".to_string()),
        };
        let kind = match op.op_type {
            OpType::Invoke => ":invoke",
            OpType::Ok => ":ok",
            OpType::Fail => ":fail",
            OpType::Info => ":info",
        };
        let mut line = format!("{process}\t{kind}\t:{}\t{}", op.f, op.value.to_compact());
        if let Some(e) = &op.error {
            line.push('\t');
            line.push_str(&e.to_compact());
        }
        self.console.info(&thread, "workloads.op", &line);
    }

    /// Records the invocation of `op` by worker `w`.
    pub(super) fn record_invoke(&mut self, now: Nanos, w: usize, op: &GenOp) {
        self.workers[w].issued += 1;
        let mut inv = Op::new(
            self.history_time(now),
            OpType::Invoke,
            Process::Worker(self.workers[w].process),
            op.f,
            op.value.clone(),
        );
        inv.final_read = op.final_read;
        self.log_op(&inv);
        self.history.push(inv);
    }

    /// A local operation: invoked and completed `:ok` at `now`, nothing sent.
    pub(super) fn record_local(&mut self, now: Nanos, w: usize, op: GenOp) {
        self.record_invoke(now, w, &op);
        let value = op.value.clone();
        self.complete(now, w, op, Outcome::Ok(value));
    }

    pub(super) fn invoke(&mut self, now: Nanos, w: usize, op: GenOp) {
        self.record_invoke(now, w, &op);
        let body = self.workload.request(&op).body;
        let (client, node) = (self.workers[w].client, self.workers[w].node);
        let timeout = self.settings.client_timeout;
        self.send_request(now, client, node, body, timeout, Some(op));
    }

    pub(super) fn send_request(
        &mut self,
        now: Nanos,
        client: u32,
        node: usize,
        mut body: Map<String, Value>,
        timeout: Nanos,
        op: Option<GenOp>,
    ) {
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        state.last_msg_id += 1;
        let msg_id = state.last_msg_id;
        body.insert("msg_id".into(), msg_id.into());
        let text = Value::Object(body.clone()).to_string();
        state.pending = Some(Pending {
            msg_id,
            deadline: now + timeout,
            request: body,
            op,
        });
        let src = Addr::Client(client);
        let dest = Addr::Node(node as u32);
        if self.settings.log_net_send {
            self.log_message("send", src, dest, &text);
        }
        // Clients and nodes are always registered here.
        if let Ok(id) = self.net.send(now, src, dest, text.as_str().into()) {
            self.journal_sent(id, src, dest, now, &text);
        }
    }

    pub(super) fn client_received(&mut self, now: Nanos, client: u32, text: &str) {
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        let in_reply_to = body.get("in_reply_to").and_then(Value::as_u64);
        let matches = matches!(&state.pending, Some(p) if Some(p.msg_id) == in_reply_to);
        if !matches {
            // A late reply to a request this client gave up on: Maelstrom ignores it too.
            return;
        }
        let pending = state.pending.take().expect("checked above");
        match state.role {
            Role::Init(i) => {
                let kind = body.get("type").and_then(Value::as_str);
                self.setup_results[i] = Some(if kind == Some("init_ok") {
                    Ok(())
                } else {
                    Err(format!(
                        "init-failed: expected an init_ok reply, got {}",
                        Value::Object(body.clone())
                    ))
                });
            }
            Role::Reinit(i) => {
                let ok = body.get("type").and_then(Value::as_str) == Some("init_ok");
                self.reinit_done(
                    i,
                    client,
                    ok.then_some(())
                        .ok_or_else(|| Value::Object(body.clone()).to_string()),
                );
            }
            Role::Setup(i) => {
                let schema = self
                    .workload
                    .setup(&self.cluster, i)
                    .map(|r| r.reply.clone());
                let result = match schema {
                    _ if body.get("type").and_then(Value::as_str) == Some("error") => Err(format!(
                        "the setup request {} got an error: {}",
                        Value::Object(pending.request.clone()),
                        Value::Object(body.clone())
                    )),
                    Some(schema) => schema.check(&body).map_err(|errs| {
                        crate::schema::malformed_response_message(
                            &self.names[i],
                            &pending.request,
                            &schema,
                            &body,
                            &errs,
                        )
                    }),
                    None => Ok(()),
                };
                self.setup_results[i] = Some(result);
            }
            Role::Worker(w) => {
                let op = pending.op.expect("worker requests carry their op");
                let node = self.names[self.workers[w].node].clone();
                let outcome =
                    outcome::of_reply(self.workload.as_ref(), &op, &node, &pending.request, &body);
                self.complete(now, w, op, outcome);
            }
        }
    }

    pub(super) fn expire(&mut self, now: Nanos) {
        let expired: Vec<u32> = self
            .clients
            .iter()
            .filter(|(_, c)| c.pending.as_ref().is_some_and(|p| p.deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(state) = self.clients.get_mut(&id) else {
                continue;
            };
            let pending = state.pending.take().expect("filtered on pending");
            match state.role {
                Role::Init(i) => {
                    self.setup_results[i] = Some(Err(format!(
                        "Expected node {} to respond to an init message, but node did not \
                         respond within {} s",
                        self.names[i],
                        INIT_TIMEOUT / SEC
                    )))
                }
                Role::Reinit(i) => self.reinit_done(i, id, Err("no reply".into())),
                Role::Setup(i) => {
                    self.setup_results[i] = Some(Err(format!(
                        "no reply to the setup request {} within {} s",
                        Value::Object(pending.request),
                        CLIENT_TIMEOUT / SEC
                    )))
                }
                Role::Worker(w) => {
                    let op = pending.op.expect("worker requests carry their op");
                    let outcome = outcome::of_timeout(self.workload.as_ref(), &op);
                    self.complete(now, w, op, outcome);
                }
            }
        }
    }

    pub(super) fn complete(&mut self, now: Nanos, w: usize, op: GenOp, outcome: Outcome) {
        let process = Process::Worker(self.workers[w].process);
        let (done, crashed) = completion(self.history_time(now), process, &op, outcome);
        self.log_op(&done);
        let index = self.history.push(done);
        self.workload.completed(w, &op, &self.history.ops[index]);
        if crashed {
            // Jepsen replaces the process of a thread whose op crashed; Maelstrom also
            // reopens non-reusable clients under a new id.
            self.workers[w].process += self.workers.len() as u64;
            if !self.workload.client().reusable {
                let old = self.workers[w].client;
                self.net.close_client(old);
                self.clients.remove(&old);
                self.workers[w].client = self.open_client(Role::Worker(w));
            }
        }
    }
}

/// When the slot after one due at `slot` comes, `gap` later. Late wake-ups are caught up,
/// but never by more than 10 ms of backlog.
fn next_slot(slot: Nanos, now: Nanos, gap: Nanos) -> Nanos {
    slot.max(now.saturating_sub(10_000_000)) + gap
}

/// The workload's answer in the final phase, its operation marked `:final? true`.
fn in_final_phase(next: Next) -> Next {
    match next {
        Next::Op(mut op) => {
            op.final_read = true;
            Next::Op(op)
        }
        Next::Local(mut op) => {
            op.final_read = true;
            Next::Local(op)
        }
        other => other,
    }
}

/// The completion of `op` at `time_ns` by Maelstrom's outcome rules, and whether the
/// process crashed (an `:info`, after which Jepsen gives the thread a new process).
fn completion(time_ns: u64, process: Process, op: &GenOp, outcome: Outcome) -> (Op, bool) {
    let mut done = Op::new(time_ns, OpType::Ok, process, op.f, op.value.clone());
    done.final_read = op.final_read;
    let crashed = match outcome {
        Outcome::Ok(v) => {
            done.value = v;
            false
        }
        Outcome::Fail { error } => {
            done.op_type = OpType::Fail;
            done.error = Some(error);
            false
        }
        Outcome::Info { error, exception } => {
            done.op_type = OpType::Info;
            done.error = Some(error);
            if let Some(e) = exception {
                done.extra.push(("exception".into(), e));
            }
            true
        }
    };
    (done, crashed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::Edn;

    #[test]
    fn slots_catch_up_at_most_ten_ms_of_backlog() {
        assert_eq!(next_slot(100, 50, 7), 107, "early: from the slot");
        assert_eq!(next_slot(100, 5_000_100, 7), 107, "5 ms late: caught up");
        assert_eq!(
            next_slot(100, 50_000_000, 7),
            40_000_007,
            "50 ms late: 10 ms kept"
        );
    }

    #[test]
    fn final_phase_ops_are_marked_final_and_other_answers_kept() {
        let op = GenOp::new("read", Edn::Nil);
        assert_eq!(
            in_final_phase(Next::Op(op.clone())),
            Next::Op(GenOp::final_read())
        );
        let Next::Local(local) = in_final_phase(Next::Local(op)) else {
            panic!("a local op stays local")
        };
        assert!(local.final_read);
        assert_eq!(in_final_phase(Next::Wait(5)), Next::Wait(5));
        assert_eq!(in_final_phase(Next::Done), Next::Done);
    }

    #[test]
    fn completions_follow_the_outcome_and_only_info_crashes() {
        let op = GenOp::new("write", Edn::Int(3));
        let p = Process::Worker(4);
        let (ok, crashed) = completion(9, p, &op, Outcome::Ok(Edn::Int(8)));
        assert_eq!(
            (ok.op_type, ok.value, ok.time_ns, crashed),
            (OpType::Ok, Edn::Int(8), 9, false)
        );
        let error = Edn::kw("net-timeout");
        let (fail, crashed) = completion(
            9,
            p,
            &op,
            Outcome::Fail {
                error: error.clone(),
            },
        );
        assert_eq!(
            (fail.op_type, fail.value, crashed),
            (OpType::Fail, Edn::Int(3), false)
        );
        let exception = Some(Edn::Str("boom".into()));
        let (info, crashed) = completion(9, p, &op, Outcome::Info { error, exception });
        assert_eq!((info.op_type, crashed), (OpType::Info, true));
        assert_eq!(info.extra("exception"), Some(&Edn::Str("boom".into())));
        assert_eq!(info.error, Some(Edn::kw("net-timeout")));
    }
}
