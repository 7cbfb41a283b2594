//! Linearizability of Maelstrom's `lin-kv` workload: one compare-and-set register per key.
//!
//! Ops carry `[key v]` values (Jepsen's independent keys), so each key is checked on its
//! own: a history is linearizable iff every key's sub-history is. Per key, the search is
//! Wing & Gong's, with Lowe's just-in-time linearization and a memo of visited
//! configurations (set of linearized ops, register value), as in Knossos and Porcupine.
//!
//! `:fail` ops never happened and are dropped. `:info` ops may have happened at any point
//! after their invocation, or never: they have no return event, so they never block the
//! search, and the search succeeds once every `:ok` op is linearized. Reads that end in
//! `:info` observed nothing and are dropped. The register starts as nil; a cas from nil
//! always fails in the node (and is recorded as `:fail`), so it is never legal here.
//!
//! Indefinite ops are where a naive search blows up, since any subset of them may have
//! happened, and concurrency multiplies the orders to try. Each of these reductions keeps
//! at least one linearization of every linearizable history:
//! - an indefinite op is only tried when the search is otherwise stuck;
//! - indefinite ops with the same effect are interchangeable once invoked, so they are
//!   taken in invocation order;
//! - one is only taken if it changes the register to a value that some op that could come
//!   next reads or compares against (otherwise it could be left out);
//! - a configuration that took more indefinite ops than one known to fail, with the same
//!   definite ops and value, fails too;
//! - a legal read (or cas from a value to itself) changes nothing, so it is taken at once
//!   and never reconsidered;
//! - of two pending definite ops of the same kind, the one returning first goes first.
//!
//! Invalid histories still need an exhaustive search of everything before the failure;
//! past the budget the verdict is `:unknown`, as Knossos's would be.
//!
//! The memo keys a configuration by a 128-bit fingerprint of its definite ops and value
//! (with the counts of indefinite ops taken stored exactly) rather than by the set
//! itself, which keeps memory flat on long histories; a false match is astronomically
//! unlikely.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{compare_values, Validity};
use crate::edn::Edn;
use crate::history::{self, History, Process};

/// How long one key's search may run before the verdict becomes `:unknown`.
pub const DEFAULT_MAX_STATES: u64 = 10_000_000;

/// Work (search steps and memo comparisons) allowed per configuration budgeted, so that
/// time, not only memory, stays bounded.
const STEPS_PER_STATE: u64 = 16;

/// At most this many configurations are reported for a failure, as Knossos trims them.
const MAX_CONFIGS: usize = 10;
const MAX_PENDING: usize = 10;
const MAX_WINDOW: usize = 64;

#[derive(Debug, Clone)]
pub struct Options {
    /// Configurations one key's search may visit before giving up.
    pub max_states: u64,
    /// Keys checked at once; 0 means one per available core.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_states: DEFAULT_MAX_STATES,
            threads: 0,
        }
    }
}

/// A register operation with what it observed: a read carries the value it returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Read(Edn),
    Write(Edn),
    Cas(Edn, Edn),
}

impl Call {
    fn f(&self) -> &'static str {
        match self {
            Call::Read(_) => "read",
            Call::Write(_) => "write",
            Call::Cas(..) => "cas",
        }
    }

    /// The value as Jepsen prints it once the key is stripped.
    fn value(&self) -> Edn {
        match self {
            Call::Read(v) | Call::Write(v) => v.clone(),
            Call::Cas(a, b) => Edn::Vector(vec![a.clone(), b.clone()]),
        }
    }
}

/// Where one history record sits: `pos` orders events, `index` and `time_ns` are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub pos: usize,
    pub index: usize,
    pub time_ns: u64,
}

/// One operation on a single key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyOp {
    pub process: Process,
    pub call: Call,
    /// `true` for `:ok`, `false` for an indefinite (`:info` or never completed) op.
    pub ok: bool,
    pub invoke: Event,
    /// The completion record; for an indefinite op only printed, never a constraint.
    pub complete: Option<Event>,
}

impl KeyOp {
    fn definite(&self) -> bool {
        self.ok && self.complete.is_some()
    }
}

/// A configuration the search reached just before the failing op's completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub value: Edn,
    /// Index into the key's ops of the last op linearized.
    pub last_op: Option<usize>,
    /// Ops invoked and not yet linearized.
    pub pending: Vec<usize>,
}

/// Why a key's history is not linearizable; every `usize` indexes the key's ops.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The op no order of the ops before it could linearize.
    pub op: usize,
    /// The last `:ok` op to complete before `op` was invoked.
    pub previous_ok: Option<usize>,
    pub configs: Vec<Config>,
    /// The ops that could have been ordered around `op`, by invocation.
    pub window: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyResult {
    pub valid: Validity,
    /// Configurations visited.
    pub states: u64,
    pub failure: Option<Failure>,
    /// Why the verdict is unknown.
    pub cause: Option<String>,
}

/// Splits a lin-kv history into per-key operations, keys in order. Ops whose `:value` is
/// not `[key v]` or whose `:f` is not read, write or cas are not register ops and are
/// skipped.
pub fn partition(history: &History) -> Vec<(Edn, Vec<KeyOp>)> {
    let mut by_key: HashMap<String, (Edn, Vec<KeyOp>)> = HashMap::new();
    let event = |pos: usize| {
        let op = &history.ops[pos];
        Event {
            pos,
            index: op.index,
            time_ns: op.time_ns,
        }
    };
    // Jepsen's rule: a failed op did nothing; an indeterminate one may have taken effect.
    let mut add = |c: &history::Call| {
        let (invocation, completed) = (c.invoke, c.complete);
        let ok = match c.outcome() {
            history::Outcome::Ok => true,
            history::Outcome::Indeterminate => false,
            history::Outcome::Fail => return,
        };
        let Some([key, v]) = pair(&invocation.value) else {
            return;
        };
        let call = match invocation.f.as_str() {
            "read" if ok => {
                let read = completed.and_then(|c| pair(&c.value)).map(|[_, v]| v);
                Call::Read(read.cloned().unwrap_or(Edn::Nil))
            }
            "write" => Call::Write(v.clone()),
            "cas" => match pair(v) {
                Some([a, b]) => Call::Cas(a.clone(), b.clone()),
                None => return,
            },
            _ => return,
        };
        let op = KeyOp {
            process: invocation.process,
            call,
            ok,
            invoke: event(c.invoke_pos),
            complete: c.complete_pos.map(event),
        };
        by_key
            .entry(key.to_compact())
            .or_insert_with(|| (key.clone(), Vec::new()))
            .1
            .push(op);
    };
    for call in history.calls().iter().filter(|c| !c.is_orphan()) {
        add(call);
    }
    let mut keys: Vec<(Edn, Vec<KeyOp>)> = by_key.into_values().collect();
    keys.sort_by(|a, b| compare_values(&a.0, &b.0));
    for (_, ops) in &mut keys {
        ops.sort_by_key(|op| op.invoke.pos);
    }
    keys
}

fn pair(e: &Edn) -> Option<&[Edn; 2]> {
    e.elements().and_then(|items| items.try_into().ok())
}

/// Checks a lin-kv history with the default budget.
pub fn check(history: &History) -> Edn {
    check_with(history, &Options::default())
}

/// Checks every key (in parallel) and reports the first failing key in key order.
pub fn check_with(history: &History, options: &Options) -> Edn {
    let keys = partition(history);
    let results = check_keys(&keys, options);
    let ops_checked: usize = keys.iter().map(|(_, ops)| ops.len()).sum();
    let mut valid = Validity::True;
    for r in &results {
        valid = valid.merge(r.valid);
    }
    let mut entries = vec![
        ("valid?", valid.to_edn()),
        ("keys-checked", Edn::from(keys.len())),
        ("ops-checked", Edn::from(ops_checked)),
    ];
    let failed: Vec<usize> = (0..keys.len())
        .filter(|&i| results[i].valid == Validity::False)
        .collect();
    if let Some(&first) = failed.first() {
        let (key, ops) = &keys[first];
        entries.push(("failed-key", key.clone()));
        if let Some(failure) = &results[first].failure {
            entries.extend(failure_entries(ops, failure));
        }
        entries.push((
            "failures",
            Edn::Vector(failed.iter().map(|&i| keys[i].0.clone()).collect()),
        ));
    } else if valid == Validity::Unknown {
        let unknown: Vec<usize> = (0..keys.len())
            .filter(|&i| results[i].valid == Validity::Unknown)
            .collect();
        let cause = results[unknown[0]].cause.clone().unwrap_or_default();
        entries.push(("cause", Edn::from(cause)));
        entries.push((
            "unknown-keys",
            Edn::Vector(unknown.iter().map(|&i| keys[i].0.clone()).collect()),
        ));
    }
    Edn::map(entries)
}

fn check_keys(keys: &[(Edn, Vec<KeyOp>)], options: &Options) -> Vec<KeyResult> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(keys.len())
    .max(1);
    let check_one = |(key, ops): &(Edn, Vec<KeyOp>)| {
        let mut r = check_key(ops, options);
        if let Some(cause) = &mut r.cause {
            *cause = format!("key {}: {cause}", key.to_compact());
        }
        r
    };
    if threads == 1 {
        return keys.iter().map(check_one).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<KeyResult>>> = Mutex::new(vec![None; keys.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(key) = keys.get(i) else { break };
                let r = check_one(key);
                done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    done.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every key is checked"))
        .collect()
}

/// Checks one key's operations (in any order) against a register that starts as nil.
pub fn check_key(ops: &[KeyOp], options: &Options) -> KeyResult {
    let mut search = Search::new(ops);
    let outcome = search.run(options.max_states);
    let states = search.states;
    match outcome {
        Outcome::Valid => KeyResult {
            valid: Validity::True,
            states,
            failure: None,
            cause: None,
        },
        Outcome::GaveUp => KeyResult {
            valid: Validity::Unknown,
            states,
            failure: None,
            cause: Some(format!(
                "search gave up after {states} configurations and {} steps (limit {} \
                 configurations)",
                search.steps, options.max_states
            )),
        },
        Outcome::Invalid => KeyResult {
            valid: Validity::False,
            states,
            failure: Some(search.failure()),
            cause: None,
        },
    }
}

// ---------------------------------------------------------------------------------------
// The search.

const NIL: u32 = 0;
const END: u32 = u32::MAX;
const HEAD: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Read(u32),
    Write(u32),
    Cas(u32, u32),
}

impl Kind {
    /// The register after the op, or `None` where the op cannot happen.
    fn step(self, state: u32) -> Option<u32> {
        match self {
            Kind::Read(v) => (state == v).then_some(state),
            Kind::Write(v) => Some(v),
            Kind::Cas(from, to) => (from != NIL && state == from).then_some(to),
        }
    }

    /// Leaves the register as it found it: such an op, once legal, can be linearized at
    /// once without loss of generality, so the search never revisits that choice.
    fn pure(self) -> bool {
        match self {
            Kind::Read(_) => true,
            Kind::Cas(from, to) => from == to,
            Kind::Write(_) => false,
        }
    }

    /// The value the op needs the register to hold, if any.
    fn observes(self) -> Option<u32> {
        match self {
            Kind::Read(v) => Some(v),
            Kind::Cas(from, _) => Some(from),
            Kind::Write(_) => None,
        }
    }
}

enum Outcome {
    Valid,
    Invalid,
    GaveUp,
}

#[derive(Clone, Copy)]
enum Cursor {
    /// Scanning the definite ops' call/return list.
    Main(u32),
    /// Stuck at return entry `.1`; trying indefinite ops from node `.0`.
    Info(u32, u32),
}

struct Frame {
    op: u32,
    old_state: u32,
    /// The stuck return entry, for an indefinite op.
    stuck_at: Option<u32>,
    memo_entry: u32,
}

/// Fx-style mixing: memo keys are already random, so a cheap hasher suffices.
#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The furthest return the search could not get past, and the configurations stuck there.
struct Frontier {
    entry: u32,
    pos: usize,
    configs: Vec<(u32, Option<u32>, Vec<u32>)>,
}

/// A visited configuration sharing its definite ops and value with the others of its
/// chain: how many indefinite ops of each effect it had taken, and whether it is known
/// to fail (otherwise it is still on the search path).
struct MemoEntry {
    next: u32,
    start: u32,
    len: u32,
    failed: bool,
}

struct Search<'a> {
    ops: &'a [KeyOp],
    kinds: Vec<Kind>,
    values: Vec<Edn>,
    // Definite ops' call and return events, a doubly linked list by position.
    next: Vec<u32>,
    prev: Vec<u32>,
    entry_op: Vec<u32>,
    entry_is_return: Vec<bool>,
    entry_pos: Vec<usize>,
    call_entry: Vec<u32>,
    return_entry: Vec<u32>,
    /// Definite ops of the same kind that return while `op` is open (CSR by op): while
    /// one of them is pending too, it goes first.
    rivals_at: Vec<u32>,
    rivals: Vec<u32>,
    // Indefinite ops, a doubly linked list by invocation.
    info_next: Vec<u32>,
    info_prev: Vec<u32>,
    info_node_op: Vec<u32>,
    info_node: Vec<u32>,
    /// The previous indefinite op with the same effect, which must be taken first.
    prev_same: Vec<u32>,
    effect: Vec<u32>,
    /// Indefinite ops taken per effect, sorted by effect, zeros left out.
    taken: Vec<(u32, u32)>,
    linearized: Vec<u64>,
    zobrist: Vec<(u64, u64)>,
    fingerprint: (u64, u64),
    memo: HashMap<(u64, u64), u32, BuildHasherDefault<FingerprintHasher>>,
    memo_entries: Vec<MemoEntry>,
    memo_taken: Vec<(u32, u32)>,
    stack: Vec<Frame>,
    state: u32,
    remaining: usize,
    states: u64,
    steps: u64,
    first_return: Option<u32>,
    observed: Vec<bool>,
    observed_set: Vec<u32>,
    observed_fresh: bool,
    frontier: Option<Frontier>,
}

/// Each op's kind with its values interned: value ids index the returned values, nil is
/// [`NIL`].
fn interned(ops: &[KeyOp]) -> (Vec<Kind>, Vec<Edn>) {
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut values = vec![Edn::Nil];
    ids.insert(Edn::Nil.to_compact(), NIL);
    let mut intern = |v: &Edn| {
        *ids.entry(v.to_compact()).or_insert_with(|| {
            values.push(v.clone());
            (values.len() - 1) as u32
        })
    };
    let kinds: Vec<Kind> = ops
        .iter()
        .map(|op| match &op.call {
            Call::Read(v) => Kind::Read(intern(v)),
            Call::Write(v) => Kind::Write(intern(v)),
            Call::Cas(a, b) => Kind::Cas(intern(a), intern(b)),
        })
        .collect();
    (kinds, values)
}

/// The call and return events of the ops that completed `:ok`, sorted by position (a
/// call before a return at the same position).
fn events(ops: &[KeyOp]) -> Vec<(usize, bool, u32)> {
    let mut events: Vec<(usize, bool, u32)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let (true, Some(complete)) = (op.ok, op.complete) {
            events.push((op.invoke.pos, false, i as u32));
            events.push((complete.pos.max(op.invoke.pos), true, i as u32));
        }
    }
    events.sort_unstable();
    events
}

impl<'a> Search<'a> {
    fn new(ops: &'a [KeyOp]) -> Search<'a> {
        let (kinds, values) = interned(ops);
        let n = ops.len();
        let events = events(ops);
        let entries = events.len() + 1;
        let mut s = Search {
            ops,
            kinds,
            values,
            next: (1..=entries as u32)
                .map(|e| if e as usize == entries { END } else { e })
                .collect(),
            prev: (0..entries as u32).map(|e| e.wrapping_sub(1)).collect(),
            entry_op: vec![END; entries],
            entry_is_return: vec![false; entries],
            entry_pos: vec![0; entries],
            call_entry: vec![END; n],
            return_entry: vec![END; n],
            rivals_at: vec![0; n + 1],
            rivals: Vec::new(),
            info_next: Vec::new(),
            info_prev: Vec::new(),
            info_node_op: vec![END],
            info_node: vec![END; n],
            prev_same: vec![END; n],
            effect: vec![END; n],
            taken: Vec::new(),
            linearized: vec![0; n.div_ceil(64)],
            zobrist: (0..n as u64)
                .map(|i| (splitmix(2 * i), splitmix(2 * i + 1) ^ 0x6a09_e667_f3bc_c908))
                .collect(),
            fingerprint: (0, 0),
            memo: HashMap::default(),
            memo_entries: Vec::new(),
            memo_taken: Vec::new(),
            stack: Vec::new(),
            state: NIL,
            remaining: 0,
            states: 0,
            steps: 0,
            first_return: None,
            observed: Vec::new(),
            observed_set: Vec::new(),
            observed_fresh: false,
            frontier: None,
        };
        s.place(&events);
        s.find_rivals();
        s.link_infos();
        s.observed = vec![false; s.values.len()];
        s
    }

    /// Puts the call and return events in the entry list, in history order.
    fn place(&mut self, events: &[(usize, bool, u32)]) {
        for (e, &(pos, is_return, op)) in events.iter().enumerate() {
            let e = e + 1;
            self.entry_op[e] = op;
            self.entry_is_return[e] = is_return;
            self.entry_pos[e] = pos;
            if is_return {
                self.return_entry[op as usize] = e as u32;
                self.remaining += 1;
            } else {
                self.call_entry[op as usize] = e as u32;
            }
        }
    }

    /// Links the indefinite writes and cas by invocation, each to the previous one of the
    /// same kind and value.
    fn link_infos(&mut self) {
        let ops = self.ops;
        let mut infos: Vec<u32> = (0..ops.len() as u32)
            .filter(|&i| {
                let i = i as usize;
                !ops[i].definite() && !matches!(self.kinds[i], Kind::Read(_))
            })
            .collect();
        infos.sort_by_key(|&i| (ops[i as usize].invoke.pos, i));
        let mut last_same: HashMap<Kind, (u32, u32)> = HashMap::new();
        for &i in &infos {
            self.info_node[i as usize] = self.info_node_op.len() as u32;
            self.info_node_op.push(i);
            let effects = last_same.len() as u32;
            let (effect, prev) = last_same
                .entry(self.kinds[i as usize])
                .or_insert((effects, END));
            self.effect[i as usize] = *effect;
            self.prev_same[i as usize] = std::mem::replace(prev, i);
        }
        let nodes = self.info_node_op.len() as u32;
        self.info_next = (1..=nodes)
            .map(|x| if x == nodes { END } else { x })
            .collect();
        self.info_prev = (0..nodes).map(|x| x.wrapping_sub(1)).collect();
    }

    fn find_rivals(&mut self) {
        let mut by_kind: HashMap<Kind, Vec<u32>> = HashMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            if op.definite() && !self.kinds[i].pure() {
                by_kind.entry(self.kinds[i]).or_default().push(i as u32);
            }
        }
        let ret = |s: &Self, i: u32| s.entry_pos[s.return_entry[i as usize] as usize];
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); self.ops.len()];
        for group in by_kind.values_mut() {
            group.sort_by_key(|&i| ret(self, i));
            for (at, &x) in group.iter().enumerate() {
                let call = self.ops[x as usize].invoke.pos;
                for &y in group[..at].iter().rev() {
                    if ret(self, y) <= call {
                        break;
                    }
                    lists[x as usize].push(y);
                }
            }
        }
        for (i, list) in lists.into_iter().enumerate() {
            self.rivals.extend(list);
            self.rivals_at[i + 1] = self.rivals.len() as u32;
        }
    }

    fn is_linearized(&self, op: u32) -> bool {
        self.linearized[op as usize / 64] & (1 << (op % 64)) != 0
    }

    /// Adds or removes `op` from the linearized set.
    fn toggle(&mut self, op: u32, add: bool) {
        self.linearized[op as usize / 64] ^= 1 << (op % 64);
        let effect = self.effect[op as usize];
        if effect == END {
            let (a, b) = self.zobrist[op as usize];
            self.fingerprint.0 ^= a;
            self.fingerprint.1 ^= b;
            return;
        }
        match self.taken.binary_search_by_key(&effect, |&(e, _)| e) {
            Ok(at) if add => self.taken[at].1 += 1,
            Ok(at) if self.taken[at].1 > 1 => self.taken[at].1 -= 1,
            Ok(at) => {
                self.taken.remove(at);
            }
            Err(at) => self.taken.insert(at, (effect, 1)),
        }
    }

    /// Whether the current configuration has taken at least what `entry` had.
    fn covers(&self, entry: &MemoEntry) -> bool {
        let stored = &self.memo_taken[entry.start as usize..(entry.start + entry.len) as usize];
        let mut mine = self.taken.iter();
        stored.iter().all(|&(effect, count)| {
            mine.by_ref()
                .find(|&&(e, _)| e >= effect)
                .is_some_and(|&(e, c)| e == effect && c >= count)
        })
    }

    /// Linearizes `op` taking the register to `new_state`, unless that configuration, or
    /// one that took no more indefinite ops, is known to fail.
    fn try_push(&mut self, op: u32, new_state: u32, stuck_at: Option<u32>) -> bool {
        self.toggle(op, true);
        let key = (
            self.fingerprint.0,
            self.fingerprint.1 ^ splitmix(u64::from(new_state) | 1 << 40),
        );
        let head = self.memo.get(&key).copied().unwrap_or(END);
        let mut e = head;
        while e != END {
            self.steps += 1;
            let entry = &self.memo_entries[e as usize];
            let same = !entry.failed && entry.len as usize == self.taken.len() && {
                let start = entry.start as usize;
                self.memo_taken[start..start + self.taken.len()] == self.taken[..]
            };
            if same || (entry.failed && self.covers(entry)) {
                self.toggle(op, false);
                return false;
            }
            e = entry.next;
        }
        let id = self.memo_entries.len() as u32;
        self.memo_entries.push(MemoEntry {
            next: head,
            start: self.memo_taken.len() as u32,
            len: self.taken.len() as u32,
            failed: false,
        });
        self.memo_taken.extend_from_slice(&self.taken);
        self.memo.insert(key, id);
        self.states += 1;
        self.stack.push(Frame {
            op,
            old_state: self.state,
            stuck_at,
            memo_entry: id,
        });
        self.state = new_state;
        self.observed_fresh = false;
        self.first_return = None;
        match stuck_at {
            None => {
                let (c, r) = (self.call_entry[op as usize], self.return_entry[op as usize]);
                unlink(&mut self.next, &mut self.prev, c);
                unlink(&mut self.next, &mut self.prev, r);
                self.remaining -= 1;
            }
            Some(_) => {
                let node = self.info_node[op as usize];
                unlink(&mut self.info_next, &mut self.info_prev, node);
            }
        }
        true
    }

    /// Undoes linearizations until one whose alternatives are still worth trying, and
    /// says where to resume; `None` once there are none left.
    fn backtrack(&mut self) -> Option<Cursor> {
        loop {
            let top = self.stack.last()?;
            let forced = top.stuck_at.is_none() && self.kinds[top.op as usize].pure();
            let cursor = self.pop()?;
            if !forced {
                return Some(cursor);
            }
        }
    }

    /// Undoes the last linearization, whose configuration has now failed, and says
    /// where to resume.
    fn pop(&mut self) -> Option<Cursor> {
        let frame = self.stack.pop()?;
        self.memo_entries[frame.memo_entry as usize].failed = true;
        self.toggle(frame.op, false);
        self.state = frame.old_state;
        self.observed_fresh = false;
        self.first_return = None;
        let op = frame.op as usize;
        Some(match frame.stuck_at {
            None => {
                let (c, r) = (self.call_entry[op], self.return_entry[op]);
                relink(&mut self.next, &mut self.prev, r);
                relink(&mut self.next, &mut self.prev, c);
                self.remaining += 1;
                Cursor::Main(self.next[c as usize])
            }
            Some(stuck) => {
                let node = self.info_node[op];
                relink(&mut self.info_next, &mut self.info_prev, node);
                Cursor::Info(self.info_next[node as usize], stuck)
            }
        })
    }

    /// Position of the earliest pending return: ops invoked before it could go next.
    fn bound(&mut self, from: u32) -> usize {
        let r = match self.first_return {
            Some(r) => r,
            None => {
                let mut e = from;
                while e != END && !self.entry_is_return[e as usize] {
                    e = self.next[e as usize];
                }
                self.first_return = Some(e);
                e
            }
        };
        if r == END {
            usize::MAX
        } else {
            self.entry_pos[r as usize]
        }
    }

    /// Whether a same-kind op that returns sooner could take `op`'s place.
    fn has_rival(&mut self, op: u32, entry: u32) -> bool {
        let (a, b) = (
            self.rivals_at[op as usize] as usize,
            self.rivals_at[op as usize + 1] as usize,
        );
        if a == b {
            return false;
        }
        let bound = self.bound(entry);
        self.rivals[a..b]
            .iter()
            .any(|&y| !self.is_linearized(y) && self.ops[y as usize].invoke.pos < bound)
    }

    fn run(&mut self, max_states: u64) -> Outcome {
        let max_steps = max_states.saturating_mul(STEPS_PER_STATE);
        let mut cursor = Cursor::Main(self.next[HEAD as usize]);
        loop {
            if self.remaining == 0 {
                return Outcome::Valid;
            }
            self.steps += 1;
            if self.states > max_states || self.steps > max_steps {
                return Outcome::GaveUp;
            }
            cursor = match cursor {
                Cursor::Main(END) => match self.backtrack() {
                    Some(c) => c,
                    None => return Outcome::Invalid,
                },
                Cursor::Main(e) if !self.entry_is_return[e as usize] => {
                    let op = self.entry_op[e as usize];
                    let kind = self.kinds[op as usize];
                    match kind.step(self.state) {
                        Some(_) if !kind.pure() && self.has_rival(op, e) => {
                            Cursor::Main(self.next[e as usize])
                        }
                        Some(s) if self.try_push(op, s, None) => {
                            Cursor::Main(self.next[HEAD as usize])
                        }
                        // Taking it here was already explored and failed.
                        Some(_) if kind.pure() => match self.backtrack() {
                            Some(c) => c,
                            None => return Outcome::Invalid,
                        },
                        _ => Cursor::Main(self.next[e as usize]),
                    }
                }
                Cursor::Main(stuck) => Cursor::Info(self.info_next[HEAD as usize], stuck),
                Cursor::Info(node, stuck) => {
                    let callable = node != END
                        && self.ops[self.info_node_op[node as usize] as usize]
                            .invoke
                            .pos
                            < self.entry_pos[stuck as usize];
                    if !callable {
                        self.record_stuck(stuck);
                        match self.backtrack() {
                            Some(c) => c,
                            None => return Outcome::Invalid,
                        }
                    } else {
                        let op = self.info_node_op[node as usize];
                        match self.useful_step(op, stuck) {
                            Some(s) if self.try_push(op, s, Some(stuck)) => {
                                Cursor::Main(self.next[HEAD as usize])
                            }
                            _ => Cursor::Info(self.info_next[node as usize], stuck),
                        }
                    }
                }
            };
        }
    }

    /// The register after indefinite `op`, if taking it now could matter.
    fn useful_step(&mut self, op: u32, stuck: u32) -> Option<u32> {
        let same = self.prev_same[op as usize];
        if same != END && !self.is_linearized(same) {
            return None;
        }
        let s = self.kinds[op as usize].step(self.state)?;
        if s == self.state {
            return None;
        }
        if !self.observed_fresh {
            self.collect_observed(stuck);
        }
        self.observed[s as usize].then_some(s)
    }

    /// Values that some op which could be linearized next needs the register to hold.
    fn collect_observed(&mut self, stuck: u32) {
        for v in self.observed_set.drain(..) {
            self.observed[v as usize] = false;
        }
        let mut e = self.next[HEAD as usize];
        while e != stuck && e != END {
            if let Some(v) = self.kinds[self.entry_op[e as usize] as usize].observes() {
                self.observed_set.push(v);
            }
            e = self.next[e as usize];
        }
        let bound = self.entry_pos[stuck as usize];
        let mut node = self.info_next[HEAD as usize];
        while node != END {
            let op = self.info_node_op[node as usize] as usize;
            if self.ops[op].invoke.pos >= bound {
                break;
            }
            if let Kind::Cas(from, _) = self.kinds[op] {
                self.observed_set.push(from);
            }
            node = self.info_next[node as usize];
        }
        for &v in &self.observed_set {
            self.observed[v as usize] = true;
        }
        self.observed_fresh = true;
    }

    fn record_stuck(&mut self, stuck: u32) {
        let pos = self.entry_pos[stuck as usize];
        match &self.frontier {
            Some(f) if f.pos > pos => return,
            Some(f) if f.pos == pos && f.configs.len() >= MAX_CONFIGS => return,
            Some(f) if f.pos == pos => {}
            _ => {
                self.frontier = Some(Frontier {
                    entry: stuck,
                    pos,
                    configs: Vec::new(),
                })
            }
        }
        let last = self.stack.last().map(|f| f.op);
        let state = self.state;
        let Some(frontier) = &self.frontier else {
            return;
        };
        if frontier
            .configs
            .iter()
            .any(|(s, l, _)| *s == state && *l == last)
        {
            return;
        }
        let mut pending = Vec::new();
        let mut e = self.next[HEAD as usize];
        while e != stuck && e != END && pending.len() < MAX_PENDING {
            pending.push(self.entry_op[e as usize]);
            e = self.next[e as usize];
        }
        let mut node = self.info_next[HEAD as usize];
        while node != END && pending.len() < MAX_PENDING {
            let op = self.info_node_op[node as usize];
            if self.ops[op as usize].invoke.pos >= pos {
                break;
            }
            pending.push(op);
            node = self.info_next[node as usize];
        }
        if let Some(f) = &mut self.frontier {
            f.configs.push((state, last, pending));
        }
    }

    fn failure(&self) -> Failure {
        let frontier = self.frontier.as_ref().expect("a failed search got stuck");
        let x = self.entry_op[frontier.entry as usize] as usize;
        let ops = self.ops;
        let invoked = ops[x].invoke.pos;
        let previous_ok = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.definite() && op.complete.is_some_and(|c| c.pos < invoked))
            .max_by_key(|(_, op)| op.complete.map(|c| c.pos))
            .map(|(i, _)| i);
        let configs: Vec<Config> = frontier
            .configs
            .iter()
            .map(|(state, last, pending)| Config {
                value: self.values[*state as usize].clone(),
                last_op: last.map(|l| l as usize),
                pending: pending.iter().map(|&p| p as usize).collect(),
            })
            .collect();

        let start = previous_ok.map_or(invoked, |p| ops[p].invoke.pos);
        let end = frontier.pos;
        let needed = self.kinds[x].observes();
        let mut window: Vec<usize> = vec![x];
        window.extend(previous_ok);
        window.extend(configs.iter().filter_map(|c| c.last_op));
        for (i, op) in ops.iter().enumerate() {
            if op.invoke.pos >= end {
                break;
            }
            let keep = if op.definite() {
                op.complete.is_some_and(|c| c.pos > invoked)
            } else {
                let produces = match self.kinds[i] {
                    Kind::Write(v) | Kind::Cas(_, v) => Some(v),
                    Kind::Read(_) => None,
                };
                op.invoke.pos >= start || (produces.is_some() && produces == needed)
            };
            if keep {
                window.push(i);
            }
        }
        window.sort_by_key(|&i| (ops[i].invoke.pos, i));
        window.dedup();
        if window.len() > MAX_WINDOW {
            // Keep the ops nearest the failure.
            let at = window.iter().position(|&i| i == x).unwrap_or(0);
            let from = at
                .saturating_sub(MAX_WINDOW / 2)
                .min(window.len() - MAX_WINDOW);
            window = window[from..from + MAX_WINDOW].to_vec();
        }
        Failure {
            op: x,
            previous_ok,
            configs,
            window,
        }
    }
}

fn unlink(next: &mut [u32], prev: &mut [u32], e: u32) {
    let (p, n) = (prev[e as usize], next[e as usize]);
    next[p as usize] = n;
    if n != END {
        prev[n as usize] = p;
    }
}

fn relink(next: &mut [u32], prev: &mut [u32], e: u32) {
    let (p, n) = (prev[e as usize], next[e as usize]);
    next[p as usize] = e;
    if n != END {
        prev[n as usize] = e;
    }
}

// ---------------------------------------------------------------------------------------
// Printing, in Knossos's shapes.

fn process_edn(p: Process) -> Edn {
    match p {
        Process::Worker(p) => Edn::from(p),
        Process::Nemesis => Edn::kw("nemesis"),
    }
}

/// An op as Knossos prints it: the key stripped, the completion's index and time.
fn completion_edn(op: &KeyOp) -> Edn {
    let at = op.complete.unwrap_or(op.invoke);
    Edn::map([
        ("process", process_edn(op.process)),
        ("type", Edn::kw(if op.ok { "ok" } else { "info" })),
        ("f", Edn::kw(op.call.f())),
        ("value", op.call.value()),
        ("index", Edn::from(at.index)),
        ("time", Edn::from(at.time_ns)),
    ])
}

fn invocation_edn(op: &KeyOp) -> Edn {
    let value = match op.call {
        Call::Read(_) => Edn::Nil,
        _ => op.call.value(),
    };
    Edn::map([
        ("process", process_edn(op.process)),
        ("type", Edn::kw("invoke")),
        ("f", Edn::kw(op.call.f())),
        ("value", value),
        ("index", Edn::from(op.invoke.index)),
        ("time", Edn::from(op.invoke.time_ns)),
    ])
}

fn ms(ns: u64) -> Edn {
    Edn::Float((ns / 1000) as f64 / 1000.0)
}

fn model(value: &Edn) -> Edn {
    Edn::map([("value", value.clone())])
}

/// Knossos's message for an op the register refuses.
fn inconsistency(op: &KeyOp, current: &Edn) -> String {
    let cur = current.to_compact();
    match &op.call {
        Call::Read(v) => format!("can't read {} from register {cur}", v.to_compact()),
        Call::Cas(a, b) => format!(
            "can't CAS {cur} from {} to {}",
            a.to_compact(),
            b.to_compact()
        ),
        Call::Write(v) => format!("can't write {} to register {cur}", v.to_compact()),
    }
}

fn failure_entries(ops: &[KeyOp], failure: &Failure) -> Vec<(&'static str, Edn)> {
    let x = &ops[failure.op];
    let opt = |i: Option<usize>| i.map_or(Edn::Nil, |i| completion_edn(&ops[i]));
    let last_op = failure
        .configs
        .iter()
        .filter_map(|c| c.last_op)
        .max_by_key(|&i| ops[i].complete.unwrap_or(ops[i].invoke).index);
    let window = failure
        .window
        .iter()
        .map(|&i| {
            let op = &ops[i];
            let mut e = completion_edn(op);
            e.insert("invoke-ms", ms(op.invoke.time_ns));
            e.insert(
                "complete-ms",
                op.complete.map_or(Edn::Nil, |c| ms(c.time_ns)),
            );
            e
        })
        .collect();
    let final_paths = failure
        .configs
        .iter()
        .map(|c| {
            let mut path = Vec::new();
            if let Some(last) = c.last_op {
                path.push(Edn::map([
                    ("op", completion_edn(&ops[last])),
                    ("model", model(&c.value)),
                ]));
            }
            path.push(Edn::map([
                ("op", completion_edn(x)),
                (
                    "model",
                    Edn::map([("msg", Edn::from(inconsistency(x, &c.value)))]),
                ),
            ]));
            Edn::Vector(path)
        })
        .collect();
    let configs = failure
        .configs
        .iter()
        .map(|c| {
            Edn::map([
                ("model", model(&c.value)),
                ("last-op", opt(c.last_op)),
                (
                    "pending",
                    Edn::Vector(c.pending.iter().map(|&p| invocation_edn(&ops[p])).collect()),
                ),
            ])
        })
        .collect();
    vec![
        ("op", completion_edn(x)),
        ("previous-ok", opt(failure.previous_ok)),
        ("last-op", opt(last_op)),
        ("window", Edn::List(window)),
        ("final-paths", Edn::List(final_paths)),
        ("configs", Edn::List(configs)),
    ]
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::checker::simulated_register::simulate;
    use crate::checker::tests_support::op_at;
    use crate::history::OpType;

    fn n(i: i64) -> Edn {
        Edn::Int(i)
    }

    fn kv(k: i64, v: Edn) -> Edn {
        Edn::Vector(vec![n(k), v])
    }

    fn cas(a: i64, b: i64) -> Edn {
        Edn::Vector(vec![n(a), n(b)])
    }

    /// Builds a history one record per millisecond.
    #[derive(Default)]
    struct Builder {
        h: History,
    }

    impl Builder {
        fn push(&mut self, p: u64, t: OpType, f: &str, value: Edn) -> usize {
            let time = (self.h.ops.len() as u64 + 1) * 1_000_000;
            self.h.push(op_at(p, t, f, value, time))
        }
        fn invoke(&mut self, p: u64, f: &str, k: i64, v: Edn) -> usize {
            self.push(p, OpType::Invoke, f, kv(k, v))
        }
        fn end(&mut self, p: u64, t: OpType, f: &str, k: i64, v: Edn) -> usize {
            self.push(p, t, f, kv(k, v))
        }
        /// A whole op with nothing concurrent.
        fn op(&mut self, p: u64, t: OpType, f: &str, k: i64, v: Edn) -> usize {
            let inv = if f == "read" { Edn::Nil } else { v.clone() };
            self.invoke(p, f, k, inv);
            self.end(p, t, f, k, v)
        }
        fn check(&self) -> Edn {
            check(&self.h)
        }
    }

    fn valid(r: &Edn) -> Validity {
        Validity::from_edn(r.get("valid?"))
    }

    #[test]
    fn a_sequential_history_is_valid() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "read", 0, Edn::Nil);
        b.op(0, OpType::Ok, "write", 0, n(1));
        b.op(1, OpType::Ok, "read", 0, n(1));
        b.op(1, OpType::Ok, "cas", 0, cas(1, 2));
        b.op(0, OpType::Ok, "read", 0, n(2));
        let r = b.check();
        assert_eq!(valid(&r), Validity::True, "{}", r.to_pretty());
        let keys: Vec<&str> = match &r {
            Edn::Map(m) => m
                .iter()
                .map(|(k, _)| match k {
                    Edn::Keyword(k) => k.as_str(),
                    _ => "",
                })
                .collect(),
            _ => vec![],
        };
        assert_eq!(keys, ["valid?", "keys-checked", "ops-checked"]);
        assert_eq!(r.get("keys-checked"), Some(&n(1)));
        assert_eq!(r.get("ops-checked"), Some(&n(5)));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_invalid() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(1));
        let w2 = b.op(1, OpType::Ok, "write", 0, n(2));
        b.invoke(2, "write", 0, n(3));
        let read = b.op(0, OpType::Ok, "read", 0, n(1));
        b.end(2, OpType::Ok, "write", 0, n(3));
        let r = b.check();
        assert_eq!(valid(&r), Validity::False, "{}", r.to_pretty());
        assert_eq!(r.get("failed-key"), Some(&n(0)));
        assert_eq!(r.get("failures").unwrap().to_compact(), "[0]");
        let op = r.get("op").unwrap();
        assert_eq!(op.get("index"), Some(&Edn::from(read)));
        assert_eq!(op.get("f"), Some(&Edn::kw("read")));
        assert_eq!(op.get("value"), Some(&n(1)));
        assert_eq!(
            r.get("previous-ok").unwrap().get("index"),
            Some(&Edn::from(w2))
        );
        let window = r.get("window").unwrap().elements().unwrap();
        let indices: Vec<i64> = window
            .iter()
            .map(|o| o.get("index").unwrap().as_i64().unwrap())
            .collect();
        assert_eq!(indices, [w2 as i64, 7, read as i64]);
        assert!(window[0].get("invoke-ms").is_some() && window[0].get("complete-ms").is_some());
        let paths = r.get("final-paths").unwrap().to_compact();
        assert!(
            paths.contains("can't read 1 from register 2") || paths.contains("register 3"),
            "{paths}"
        );
        let configs = r.get("configs").unwrap().elements().unwrap();
        assert!(!configs.is_empty() && configs.len() <= MAX_CONFIGS);
        assert!(configs[0].get("model").unwrap().get("value").is_some());
    }

    #[test]
    fn concurrent_write_and_read_may_go_either_way() {
        for seen in [Edn::Nil, n(1)] {
            let mut b = Builder::default();
            b.invoke(0, "write", 0, n(1));
            b.invoke(1, "read", 0, Edn::Nil);
            b.end(0, OpType::Ok, "write", 0, n(1));
            b.end(1, OpType::Ok, "read", 0, seen.clone());
            let r = b.check();
            assert_eq!(valid(&r), Validity::True, "{seen}: {}", r.to_pretty());
        }
        // Two concurrent writes, then reads that pin down their order.
        let mut b = Builder::default();
        b.invoke(0, "write", 0, n(1));
        b.invoke(1, "write", 0, n(2));
        b.end(1, OpType::Ok, "write", 0, n(2));
        b.end(0, OpType::Ok, "write", 0, n(1));
        b.op(2, OpType::Ok, "read", 0, n(1));
        assert_eq!(valid(&b.check()), Validity::True);
        b.op(2, OpType::Ok, "read", 0, n(2));
        assert_eq!(valid(&b.check()), Validity::False);
    }

    #[test]
    fn a_cas_chain_is_valid_and_a_broken_one_is_not() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(0));
        for i in 0..5 {
            b.op(i % 2, OpType::Ok, "cas", 0, cas(i as i64, i as i64 + 1));
        }
        // Two concurrent cas from 5: only one can win, so the other must have failed.
        b.invoke(0, "cas", 0, cas(5, 6));
        b.invoke(1, "cas", 0, cas(5, 7));
        b.end(0, OpType::Ok, "cas", 0, cas(5, 6));
        b.end(1, OpType::Fail, "cas", 0, cas(5, 7));
        b.op(2, OpType::Ok, "read", 0, n(6));
        assert_eq!(valid(&b.check()), Validity::True);
        let bad = b.op(2, OpType::Ok, "cas", 0, cas(7, 8));
        let r = b.check();
        assert_eq!(valid(&r), Validity::False);
        assert_eq!(r.get("op").unwrap().get("index"), Some(&Edn::from(bad)));
        assert!(r
            .get("final-paths")
            .unwrap()
            .to_compact()
            .contains("can't CAS 6 from 7 to 8"));
    }

    #[test]
    fn a_cas_on_an_absent_key_cannot_succeed() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "cas", 0, cas(1, 2));
        assert_eq!(valid(&b.check()), Validity::False);
    }

    #[test]
    fn an_info_write_observed_later_took_effect() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(1));
        b.op(1, OpType::Info, "write", 0, n(5));
        b.op(2, OpType::Ok, "read", 0, n(1));
        b.op(2, OpType::Ok, "read", 0, n(5));
        b.op(3, OpType::Ok, "cas", 0, cas(5, 6));
        let r = b.check();
        assert_eq!(valid(&r), Validity::True, "{}", r.to_pretty());
        assert_eq!(r.get("ops-checked"), Some(&n(5)));
    }

    #[test]
    fn an_info_write_never_observed_is_fine() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(1));
        b.op(1, OpType::Info, "write", 0, n(5));
        b.op(2, OpType::Ok, "read", 0, n(1));
        // An invocation the history never completed is indefinite too.
        b.invoke(4, "write", 0, n(7));
        b.op(3, OpType::Ok, "read", 0, n(1));
        assert_eq!(valid(&b.check()), Validity::True);
    }

    #[test]
    fn an_info_write_takes_effect_at_most_once() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(1));
        b.op(1, OpType::Info, "write", 0, n(5));
        b.op(2, OpType::Ok, "read", 0, n(5));
        b.op(0, OpType::Ok, "write", 0, n(1));
        assert_eq!(valid(&b.check()), Validity::True);
        let second = b.op(2, OpType::Ok, "read", 0, n(5));
        let r = b.check();
        assert_eq!(valid(&r), Validity::False);
        assert_eq!(r.get("op").unwrap().get("index"), Some(&Edn::from(second)));
        let window = r.get("window").unwrap().to_compact();
        assert!(window.contains(":type :info"), "{window}");
    }

    #[test]
    fn indefinite_ops_chain() {
        let mut b = Builder::default();
        b.op(0, OpType::Info, "write", 0, n(1));
        b.op(1, OpType::Info, "cas", 0, cas(1, 2));
        b.op(2, OpType::Info, "write", 0, n(3));
        b.op(3, OpType::Ok, "read", 0, n(2));
        b.op(3, OpType::Ok, "read", 0, n(3));
        assert_eq!(valid(&b.check()), Validity::True);
        b.op(3, OpType::Ok, "read", 0, n(1));
        assert_eq!(valid(&b.check()), Validity::False);
    }

    #[test]
    fn a_read_before_the_only_write_of_its_value_is_invalid() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(1));
        let read = b.op(1, OpType::Ok, "read", 0, n(5));
        b.op(2, OpType::Info, "write", 0, n(5));
        let r = b.check();
        assert_eq!(valid(&r), Validity::False);
        assert_eq!(r.get("op").unwrap().get("index"), Some(&Edn::from(read)));
    }

    #[test]
    fn failed_ops_never_happened() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(1));
        b.op(1, OpType::Fail, "cas", 0, cas(1, 3));
        b.op(1, OpType::Fail, "write", 0, n(9));
        b.op(2, OpType::Fail, "read", 0, Edn::Nil);
        b.op(2, OpType::Info, "read", 0, Edn::Nil);
        b.op(0, OpType::Ok, "read", 0, n(1));
        let r = b.check();
        assert_eq!(valid(&r), Validity::True);
        assert_eq!(r.get("ops-checked"), Some(&n(2)));
        b.op(0, OpType::Ok, "read", 0, n(9));
        assert_eq!(valid(&b.check()), Validity::False);
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut b = Builder::default();
        b.op(0, OpType::Ok, "write", 0, n(1));
        b.op(1, OpType::Ok, "write", 1, n(2));
        b.op(2, OpType::Ok, "write", 2, n(3));
        b.op(0, OpType::Ok, "read", 2, n(3));
        b.op(0, OpType::Ok, "read", 0, n(1));
        assert_eq!(valid(&b.check()), Validity::True);
        // Key 0's value read under key 1.
        b.op(1, OpType::Ok, "read", 1, n(1));
        let r = b.check();
        assert_eq!(valid(&r), Validity::False);
        assert_eq!(r.get("keys-checked"), Some(&n(3)));
        assert_eq!(r.get("failed-key"), Some(&n(1)));
        assert_eq!(r.get("failures").unwrap().to_compact(), "[1]");
    }

    #[test]
    fn a_search_past_its_budget_is_unknown() {
        let mut b = Builder::default();
        for p in 0..8 {
            b.invoke(p, "write", 0, n(p as i64));
        }
        for p in 0..8 {
            b.end(p, OpType::Ok, "write", 0, n(p as i64));
        }
        b.op(9, OpType::Ok, "read", 0, n(42));
        let options = Options {
            max_states: 50,
            threads: 1,
        };
        let r = check_with(&b.h, &options);
        assert_eq!(valid(&r), Validity::Unknown, "{}", r.to_pretty());
        assert!(r.get("cause").unwrap().to_compact().contains("gave up"));
        assert_eq!(r.get("unknown-keys").unwrap().to_compact(), "[0]");
        assert_eq!(valid(&b.check()), Validity::False);
    }

    #[test]
    fn random_linearizable_histories_pass_and_a_corrupted_read_fails() {
        for seed in 0..20 {
            let mut h = simulate(seed, 600, 3, 6, 0.1);
            let r = check(&h);
            assert_eq!(valid(&r), Validity::True, "seed {seed}: {}", r.to_pretty());

            let mut rng = StdRng::seed_from_u64(seed + 1000);
            let reads: Vec<usize> = h
                .ops
                .iter()
                .filter(|o| o.f == "read" && o.op_type == OpType::Ok)
                .map(|o| o.index)
                .collect();
            let victim = reads[rng.gen_range(0..reads.len())];
            let key = h.ops[victim].value.elements().unwrap()[0].clone();
            h.ops[victim].value = Edn::Vector(vec![key.clone(), Edn::Int(99)]);
            let r = check(&h);
            assert_eq!(valid(&r), Validity::False, "seed {seed}");
            assert_eq!(r.get("failed-key"), Some(&key));
            assert_eq!(
                r.get("op").unwrap().get("index"),
                Some(&Edn::from(victim)),
                "seed {seed}: {}",
                r.to_pretty()
            );
        }
    }

    #[test]
    fn twenty_thousand_ops_check_quickly() {
        let h = simulate(7, 20_000, 20, 10, 0.05);
        let r = check(&h);
        assert_eq!(valid(&r), Validity::True, "{}", r.to_pretty());
        assert_eq!(r.get("keys-checked"), Some(&n(20)));
    }

    #[test]
    fn check_key_reports_the_failing_op() {
        let at = |pos: usize| Event {
            pos,
            index: pos,
            time_ns: pos as u64,
        };
        let op = |call: Call, ok: bool, from: usize, to: usize| KeyOp {
            process: Process::Worker(from as u64),
            call,
            ok,
            invoke: at(from),
            complete: Some(at(to)),
        };
        let ops = [
            op(Call::Write(n(1)), true, 0, 1),
            op(Call::Write(n(2)), false, 2, 3),
            op(Call::Read(n(2)), true, 4, 5),
            op(Call::Read(n(1)), true, 6, 7),
        ];
        let r = check_key(&ops, &Options::default());
        assert_eq!(r.valid, Validity::False);
        let failure = r.failure.unwrap();
        assert_eq!(failure.op, 3);
        assert_eq!(failure.previous_ok, Some(2));
        assert_eq!(failure.configs[0].value, n(2));
        assert_eq!(
            check_key(&ops[..3], &Options::default()).valid,
            Validity::True
        );
    }
}
