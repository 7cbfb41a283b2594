//! The history of a run: every client operation's invocation and completion, and every
//! fault the nemesis injected, in the order the harness saw them.
//!
//! An op is Jepsen's: `:invoke` when a worker sends a request, then one of `:ok` (it
//! happened), `:fail` (it definitely did not) or `:info` (it may have). A worker has at most
//! one operation open, so an invocation's completion is the next op of the same process.
//! The printed forms match Maelstrom's `history.edn` and `history.txt`, so either tool's
//! files can be read by the other.

use serde_json::{Map, Value};

use crate::edn::Edn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl OpType {
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    pub fn from_name(name: &str) -> Option<OpType> {
        Some(match name {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            _ => return None,
        })
    }
}

/// Who performed an op: a client worker's process number, or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Worker(u64),
    Nemesis,
}

impl Process {
    fn to_edn(self) -> Edn {
        match self {
            Process::Worker(p) => Edn::from(p),
            Process::Nemesis => Edn::kw("nemesis"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub index: usize,
    /// Nanoseconds since the test started.
    pub time_ns: u64,
    pub op_type: OpType,
    pub process: Process,
    /// Keyword name without the colon, e.g. `echo`, `start-partition`.
    pub f: String,
    pub value: Edn,
    pub error: Option<Edn>,
    /// Printed as `:final? true`: a read of the final phase.
    pub final_read: bool,
    /// Any other keys, in order (e.g. `:exception`).
    pub extra: Vec<(String, Edn)>,
}

impl Op {
    /// An op with no error, extra keys or final flag; `index` is set when it is pushed.
    pub fn new(time_ns: u64, op_type: OpType, process: Process, f: &str, value: Edn) -> Op {
        Op {
            index: 0,
            time_ns,
            op_type,
            process,
            f: f.to_string(),
            value,
            error: None,
            final_read: false,
            extra: Vec::new(),
        }
    }

    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Worker(_))
    }

    pub fn extra(&self, key: &str) -> Option<&Edn> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Jepsen's key order: the core keys, `:final?`, other keys, then `:error`.
    pub fn to_edn(&self) -> Edn {
        let mut entries = vec![
            ("index", Edn::from(self.index)),
            ("time", Edn::from(self.time_ns)),
            ("type", Edn::kw(self.op_type.name())),
            ("process", self.process.to_edn()),
            ("f", Edn::kw(&self.f)),
            ("value", self.value.clone()),
        ];
        if self.final_read {
            entries.push(("final?", Edn::Bool(true)));
        }
        let mut map = Edn::map(entries);
        if let Edn::Map(m) = &mut map {
            for (k, v) in &self.extra {
                m.push((Edn::kw(k), v.clone()));
            }
            if let Some(error) = &self.error {
                m.push((Edn::kw("error"), error.clone()));
            }
        }
        map
    }

    /// Reads an op from a plain map or a `#jepsen.history.Op{…}`.
    pub fn from_edn(e: &Edn) -> Result<Op, String> {
        let e = match e {
            Edn::Tagged(_, inner) => inner,
            other => other,
        };
        let Edn::Map(entries) = e else {
            return Err(format!("an op must be a map, got {}", e.to_compact()));
        };
        let mut op = Op::new(0, OpType::Info, Process::Nemesis, "", Edn::Nil);
        let (mut has_type, mut has_process) = (false, false);
        for (k, v) in entries {
            let Edn::Keyword(key) = k else {
                op.extra.push((k.to_compact(), v.clone()));
                continue;
            };
            match key.as_str() {
                "index" => op.index = v.as_i64().unwrap_or(0).max(0) as usize,
                "time" => op.time_ns = v.as_i64().unwrap_or(0).max(0) as u64,
                "type" => {
                    let name = match v {
                        Edn::Keyword(name) => name.as_str(),
                        _ => "",
                    };
                    op.op_type = OpType::from_name(name)
                        .ok_or_else(|| format!("unknown op type {}", v.to_compact()))?;
                    has_type = true;
                }
                "process" => {
                    op.process = match v {
                        Edn::Int(p) if *p >= 0 => Process::Worker(*p as u64),
                        Edn::Keyword(n) if n == "nemesis" => Process::Nemesis,
                        other => return Err(format!("unknown process {}", other.to_compact())),
                    };
                    has_process = true;
                }
                "f" => {
                    op.f = match v {
                        Edn::Keyword(f) | Edn::Str(f) | Edn::Symbol(f) => f.clone(),
                        other => other.to_compact(),
                    }
                }
                "value" => op.value = v.clone(),
                "error" => op.error = Some(v.clone()),
                "final?" => op.final_read = v == &Edn::Bool(true),
                other => op.extra.push((other.to_string(), v.clone())),
            }
        }
        if !has_type || !has_process {
            return Err(format!(
                "an op needs :type and :process: {}",
                e.to_compact()
            ));
        }
        Ok(op)
    }

    pub fn to_json(&self) -> Value {
        let Value::Object(map) = self.to_edn().to_json() else {
            return Value::Object(Map::new());
        };
        Value::Object(map)
    }
}

/// What a client operation did, by Jepsen's rule: `:ok` happened, `:fail` did not, and an
/// `:info` (a crashed or timed-out request: the process gave up waiting) or an invocation
/// the history never completed may have taken effect, at any moment after its invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Indeterminate,
}

/// One client operation: its invocation and completion, with their positions in the
/// history (positions, not `:index`, so that a history read without indices still orders
/// correctly). See [`History::calls`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call<'a> {
    /// The invocation, or for an orphan the completion itself.
    pub invoke: &'a Op,
    pub complete: Option<&'a Op>,
    pub invoke_pos: usize,
    pub complete_pos: Option<usize>,
}

impl<'a> Call<'a> {
    fn open(invoke: &'a Op, pos: usize) -> Self {
        Call {
            invoke,
            complete: None,
            invoke_pos: pos,
            complete_pos: None,
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self.complete.map(|c| c.op_type) {
            Some(OpType::Ok) => Outcome::Ok,
            Some(OpType::Fail) => Outcome::Fail,
            _ => Outcome::Indeterminate,
        }
    }

    /// A completion with no invocation before it: an operation seen only as it ended.
    pub fn is_orphan(&self) -> bool {
        self.invoke.op_type != OpType::Invoke
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    /// Appends `op` under the next index and returns that index.
    pub fn push(&mut self, mut op: Op) -> usize {
        let index = self.ops.len();
        op.index = index;
        self.ops.push(op);
        index
    }

    /// Reads a `history.edn`, Maelstrom's or ours.
    pub fn parse_edn(text: &str) -> Result<History, String> {
        let values = Edn::parse_all(text).map_err(|e| e.to_string())?;
        let ops = values
            .iter()
            .map(Op::from_edn)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(History { ops })
    }

    /// Same as [`History::parse_edn`].
    pub fn from_edn_lines(text: &str) -> Result<History, String> {
        Self::parse_edn(text)
    }

    /// One op per line, as `history.edn`.
    pub fn to_edn_lines(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(&op.to_edn().to_compact());
            out.push('\n');
        }
        out
    }

    /// `process<TAB>:type<TAB>:f<TAB>value[<TAB>error]`, as `history.txt`.
    pub fn to_txt(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(&op.process.to_edn().to_compact());
            out.push('\t');
            out.push(':');
            out.push_str(op.op_type.name());
            out.push_str("\t:");
            out.push_str(&op.f);
            out.push('\t');
            out.push_str(&op.value.to_compact());
            if let Some(error) = &op.error {
                out.push('\t');
                out.push_str(&error.to_compact());
            }
            out.push('\n');
        }
        out
    }

    /// One JSON object per line.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(&op.to_json().to_string());
            out.push('\n');
        }
        out
    }

    /// Every client operation, in the order it began: each invocation with its completion
    /// (the next op of the same process), and each completion that has no invocation before
    /// it (a truncated history) as an orphan. This is the one pairing of the harness: the
    /// checkers and the reports all read operations through it.
    pub fn calls(&self) -> Vec<Call<'_>> {
        let mut open: std::collections::HashMap<Process, usize> = Default::default();
        let mut calls: Vec<Call> = Vec::new();
        for (pos, op) in self.ops.iter().enumerate() {
            if !op.is_client() {
                continue;
            }
            if op.op_type == OpType::Invoke {
                // A process invokes again only after its last op completed; if the history
                // says otherwise, the earlier one stays open.
                open.insert(op.process, calls.len());
                calls.push(Call::open(op, pos));
            } else if let Some(slot) = open.remove(&op.process) {
                calls[slot].complete = Some(op);
                calls[slot].complete_pos = Some(pos);
            } else {
                calls.push(Call {
                    invoke: op,
                    complete: Some(op),
                    invoke_pos: pos,
                    complete_pos: Some(pos),
                });
            }
        }
        calls
    }

    /// Client invocations with their completions; `None` for an invocation still open when
    /// the history ended. [`History::calls`] without the orphans.
    pub fn pairs(&self) -> Vec<(&Op, Option<&Op>)> {
        self.calls()
            .into_iter()
            .filter(|c| !c.is_orphan())
            .map(|c| (c.invoke, c.complete))
            .collect()
    }

    /// Client completions only.
    pub fn completions(&self) -> impl Iterator<Item = &Op> {
        self.ops
            .iter()
            .filter(|op| op.is_client() && op.op_type != OpType::Invoke)
    }

    /// Client invocations only.
    pub fn invocations(&self) -> impl Iterator<Item = &Op> {
        self.ops
            .iter()
            .filter(|op| op.is_client() && op.op_type == OpType::Invoke)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(process: Process, op_type: OpType, f: &str, value: Edn) -> Op {
        Op::new(5, op_type, process, f, value)
    }

    #[test]
    fn prints_maelstrom_history_lines() {
        let mut h = History::default();
        h.push(op(
            Process::Worker(0),
            OpType::Invoke,
            "echo",
            Edn::from("Please echo 32"),
        ));
        let mut info = op(Process::Worker(0), OpType::Info, "broadcast", Edn::Int(3));
        info.error = Some(Edn::kw("net-timeout"));
        h.push(info);
        let mut read = op(Process::Worker(1), OpType::Ok, "read", Edn::Int(32));
        read.final_read = true;
        h.push(read);
        h.push(op(
            Process::Nemesis,
            OpType::Info,
            "start-partition",
            Edn::kw("majority"),
        ));
        assert_eq!(
            h.to_edn_lines(),
            "{:index 0, :time 5, :type :invoke, :process 0, :f :echo, :value \"Please echo 32\"}\n\
             {:index 1, :time 5, :type :info, :process 0, :f :broadcast, :value 3, :error :net-timeout}\n\
             {:index 2, :time 5, :type :ok, :process 1, :f :read, :value 32, :final? true}\n\
             {:index 3, :time 5, :type :info, :process :nemesis, :f :start-partition, :value :majority}\n"
        );
        assert_eq!(
            h.to_txt().lines().nth(1),
            Some("0\t:info\t:broadcast\t3\t:net-timeout")
        );
        assert_eq!(History::parse_edn(&h.to_edn_lines()).unwrap(), h);
        assert_eq!(h.to_jsonl().lines().count(), 4);
    }

    #[test]
    fn pairs_match_completions_by_process() {
        let mut h = History::default();
        h.push(op(Process::Worker(0), OpType::Invoke, "read", Edn::Nil));
        h.push(op(Process::Worker(1), OpType::Invoke, "read", Edn::Nil));
        h.push(op(
            Process::Nemesis,
            OpType::Info,
            "start-partition",
            Edn::Nil,
        ));
        h.push(op(Process::Worker(1), OpType::Ok, "read", Edn::Int(1)));
        h.push(op(Process::Worker(0), OpType::Fail, "read", Edn::Nil));
        h.push(op(Process::Worker(2), OpType::Invoke, "read", Edn::Nil));
        h.push(op(Process::Worker(3), OpType::Ok, "read", Edn::Nil));
        h.push(op(Process::Worker(4), OpType::Invoke, "write", Edn::Nil));
        h.push(op(Process::Worker(4), OpType::Info, "write", Edn::Nil));
        let pairs = h.pairs();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[0].1.unwrap().index, 4);
        assert_eq!(pairs[1].1.unwrap().index, 3);
        assert!(pairs[2].1.is_none());
        let calls = h.calls();
        let outcomes: Vec<Outcome> = calls.iter().map(Call::outcome).collect();
        use Outcome::*;
        assert_eq!(outcomes, [Fail, Ok, Indeterminate, Ok, Indeterminate]);
        assert!(calls[3].is_orphan() && calls[3].invoke_pos == 6);
        assert_eq!((calls[2].invoke_pos, calls[2].complete_pos), (5, None));
        assert_eq!(calls[4].complete_pos, Some(8));
    }

    #[test]
    fn a_second_invocation_leaves_the_first_open() {
        let mut h = History::default();
        h.push(op(Process::Worker(0), OpType::Invoke, "write", Edn::Int(1)));
        h.push(op(Process::Worker(0), OpType::Invoke, "write", Edn::Int(2)));
        h.push(op(Process::Worker(0), OpType::Ok, "write", Edn::Int(2)));
        let calls = h.calls();
        assert_eq!(calls[0].outcome(), Outcome::Indeterminate);
        assert_eq!(calls[1].complete_pos, Some(2));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(History::parse_edn("{:index 0}").is_err());
        assert!(History::parse_edn("[1 2]").is_err());
        assert!(History::parse_edn("{:type :weird, :process 0}").is_err());
    }
}
