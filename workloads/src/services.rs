//! Maelstrom's services — `lin-kv`, `seq-kv`, `lww-kv` and `lin-tso` — as pure state
//! machines: a request body in, an optional reply body out. The engine routes them like
//! nodes (normal latency both ways, never partitioned).
//!
//! Behaviour follows Maelstrom's service.clj: read/write/cas with errors 20 and 22, cas's
//! `create_if_not_exists` on lin-kv and seq-kv, replies carrying `in_reply_to` and no
//! `msg_id`, and no reply at all to a request type a service does not know. Keys and values
//! are any JSON, compared as Clojure would (`1` ≠ `1.0`, object key order ignored).
//!
//! * `lin-kv`: one atomic state.
//! * `seq-kv`: a ring of the last 32 states; each caller (by `src`) remembers the newest
//!   state it saw. An op runs on a random state between that one and the newest (newest
//!   included); if it changes nothing its result stands (so reads and failed CAS may be stale
//!   but are monotonic per caller), otherwise it is re-run on the newest state, which it
//!   advances.
//! * `lww-kv`: two replicas with Lamport clocks; each request first merges one random
//!   replica into another, then runs on a random replica. Deviation: Maelstrom computes the
//!   merge and then discards it, so its replicas never converge; here the merge is kept.
//! * `lin-tso`: `ts` → `ts_ok` with 0, 1, 2, …

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::edn::Edn;
use crate::net::ServiceId;

/// Size of seq-kv's ring of past states.
const SEQ_KV_HISTORY: usize = 32;
/// Replicas of lww-kv.
const LWW_REPLICAS: usize = 2;

/// All four services.
#[derive(Debug)]
pub struct Services {
    lin_kv: Kv,
    seq_kv: Sequential,
    lww_kv: Eventual,
    next_ts: u64,
    rng: StdRng,
}

impl Services {
    pub fn new(rng: StdRng) -> Self {
        Services {
            lin_kv: Kv::default(),
            seq_kv: Sequential::new(),
            lww_kv: Eventual::new(),
            next_ts: 0,
            rng,
        }
    }

    /// Handles one request from `src`; `None` means the service sends nothing back.
    pub fn handle(&mut self, service: ServiceId, src: &str, body: &Value) -> Option<Value> {
        let request = body.as_object()?;
        let kind = request.get("type")?.as_str()?;
        let mut reply = match service {
            ServiceId::LinKv => self.lin_kv.apply(kind, request, true)?.1,
            ServiceId::SeqKv => self.seq_kv.handle(src, kind, request, &mut self.rng)?,
            ServiceId::LwwKv => self.lww_kv.handle(kind, request, &mut self.rng)?,
            ServiceId::LinTso => match kind {
                "ts" => {
                    let ts = self.next_ts;
                    self.next_ts += 1;
                    obj(json!({"type": "ts_ok", "ts": ts}))
                }
                _ => return None,
            },
        };
        reply.insert(
            "in_reply_to".into(),
            request.get("msg_id").cloned().unwrap_or(Value::Null),
        );
        Some(Value::Object(reply))
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A JSON value written with object keys sorted, so equal values (as Clojure sees them)
/// have equal text. Used as map key and as the tie-break order.
fn canonical(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

fn error(code: u32, text: String) -> Map<String, Value> {
    obj(json!({"type": "error", "code": code, "text": text}))
}

fn key_missing() -> Map<String, Value> {
    error(20, "key does not exist".into())
}

/// Clojure's `pr-str` of a JSON value.
fn pr_str(v: &Value) -> String {
    Edn::from_json(v, false).to_compact()
}

/// Clojure's `str`: strings bare, nil empty, anything else printed.
fn clj_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => pr_str(other),
    }
}

fn mismatch(current: &Value, from: &Value) -> Map<String, Value> {
    error(
        22,
        format!("current value {} is not {}", pr_str(current), clj_str(from)),
    )
}

fn field<'a>(request: &'a Map<String, Value>, name: &str) -> &'a Value {
    request.get(name).unwrap_or(&Value::Null)
}

/// One key-value state: canonical key → value.
#[derive(Debug, Clone, Default, PartialEq)]
struct Kv {
    map: BTreeMap<String, Value>,
}

impl Kv {
    /// Runs a request; returns the new state when it changed, and the reply.
    fn apply(
        &mut self,
        kind: &str,
        request: &Map<String, Value>,
        cas_may_create: bool,
    ) -> Option<(bool, Map<String, Value>)> {
        let key = canonical(field(request, "key"));
        match kind {
            "read" => Some(match self.map.get(&key) {
                Some(v) => (false, obj(json!({"type": "read_ok", "value": v}))),
                None => (false, key_missing()),
            }),
            "write" => {
                let value = field(request, "value").clone();
                let changed = self.map.get(&key) != Some(&value);
                self.map.insert(key, value);
                Some((changed, obj(json!({"type": "write_ok"}))))
            }
            "cas" => {
                let from = field(request, "from");
                let to = field(request, "to").clone();
                let create = cas_may_create
                    && request.get("create_if_not_exists") == Some(&Value::Bool(true));
                Some(match self.map.get(&key) {
                    Some(current) if current == from => {
                        let changed = current != &to;
                        self.map.insert(key, to);
                        (changed, obj(json!({"type": "cas_ok"})))
                    }
                    Some(current) => (false, mismatch(current, from)),
                    None if create => {
                        self.map.insert(key, to);
                        (true, obj(json!({"type": "cas_ok"})))
                    }
                    None => (false, key_missing()),
                })
            }
            _ => None,
        }
    }
}

/// seq-kv: see the module documentation.
#[derive(Debug)]
struct Sequential {
    ring: Vec<Arc<Kv>>,
    last: usize,
    seen: HashMap<String, usize>,
}

impl Sequential {
    fn new() -> Self {
        Sequential {
            ring: (0..SEQ_KV_HISTORY)
                .map(|_| Arc::new(Kv::default()))
                .collect(),
            last: 0,
            seen: HashMap::new(),
        }
    }

    fn handle(
        &mut self,
        src: &str,
        kind: &str,
        request: &Map<String, Value>,
        rng: &mut StdRng,
    ) -> Option<Map<String, Value>> {
        let oldest = self.last.saturating_sub(SEQ_KV_HISTORY - 1);
        let mine = self.seen.get(src).copied().unwrap_or(0).max(oldest);
        let index = rng.gen_range(mine..=self.last);
        let mut state = Kv::clone(&self.ring[index % SEQ_KV_HISTORY]);
        let (changed, reply) = state.apply(kind, request, true)?;
        if !changed {
            self.seen.insert(src.to_string(), index);
            return Some(reply);
        }
        let mut newest = Kv::clone(&self.ring[self.last % SEQ_KV_HISTORY]);
        let (changed, reply) = newest.apply(kind, request, true)?;
        if changed {
            self.last += 1;
            self.ring[self.last % SEQ_KV_HISTORY] = Arc::new(newest);
        }
        self.seen.insert(src.to_string(), self.last);
        Some(reply)
    }
}

/// One lww-kv replica: a Lamport clock and timestamped values.
#[derive(Debug, Clone, Default)]
struct LwwReplica {
    clock: u64,
    map: BTreeMap<String, (u64, Value)>,
}

impl LwwReplica {
    fn apply(&mut self, kind: &str, request: &Map<String, Value>) -> Option<Map<String, Value>> {
        let key = canonical(field(request, "key"));
        match kind {
            "read" => Some(match self.map.get(&key) {
                Some((_, v)) => obj(json!({"type": "read_ok", "value": v})),
                None => key_missing(),
            }),
            "write" => {
                self.map
                    .insert(key, (self.clock, field(request, "value").clone()));
                self.clock += 1;
                Some(obj(json!({"type": "write_ok"})))
            }
            // No create_if_not_exists here, as in Maelstrom.
            "cas" => {
                let from = field(request, "from");
                Some(match self.map.get(&key) {
                    Some((_, current)) if current == from => {
                        self.map
                            .insert(key, (self.clock, field(request, "to").clone()));
                        self.clock += 1;
                        obj(json!({"type": "cas_ok"}))
                    }
                    Some((_, current)) => mismatch(current, from),
                    None => key_missing(),
                })
            }
            _ => None,
        }
    }

    /// Last write wins by timestamp; equal timestamps keep the larger value.
    fn merge_from(&mut self, other: &LwwReplica) {
        self.clock = self.clock.max(other.clock);
        for (k, (ts, v)) in &other.map {
            let take = match self.map.get(k) {
                None => true,
                Some((mine, _)) if ts > mine => true,
                Some((mine, current)) if ts == mine => canonical(v) > canonical(current),
                Some(_) => false,
            };
            if take {
                self.map.insert(k.clone(), (*ts, v.clone()));
            }
        }
    }
}

/// lww-kv: see the module documentation.
#[derive(Debug)]
struct Eventual {
    replicas: Vec<LwwReplica>,
}

impl Eventual {
    fn new() -> Self {
        Eventual {
            replicas: vec![LwwReplica::default(); LWW_REPLICAS],
        }
    }

    fn handle(
        &mut self,
        kind: &str,
        request: &Map<String, Value>,
        rng: &mut StdRng,
    ) -> Option<Map<String, Value>> {
        let n = self.replicas.len();
        let (src, dest) = (rng.gen_range(0..n), rng.gen_range(0..n));
        if src != dest {
            let source = self.replicas[src].clone();
            self.replicas[dest].merge_from(&source);
        }
        let i = rng.gen_range(0..n);
        self.replicas[i].apply(kind, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn services() -> Services {
        Services::new(StdRng::seed_from_u64(5))
    }

    fn call(s: &mut Services, id: ServiceId, src: &str, body: Value) -> Option<Value> {
        s.handle(id, src, &body)
    }

    #[test]
    fn lin_kv_read_write_cas_and_errors() {
        let mut s = services();
        let lin = ServiceId::LinKv;
        let r = call(
            &mut s,
            lin,
            "n0",
            json!({"type":"read","key":"x","msg_id":1}),
        )
        .unwrap();
        assert_eq!(
            r,
            json!({"type":"error","code":20,"text":"key does not exist","in_reply_to":1})
        );
        let r = call(
            &mut s,
            lin,
            "n0",
            json!({"type":"write","key":"x","value":1,"msg_id":2}),
        );
        assert_eq!(r.unwrap(), json!({"type":"write_ok","in_reply_to":2}));
        let r = call(
            &mut s,
            lin,
            "n1",
            json!({"type":"read","key":"x","msg_id":3}),
        )
        .unwrap();
        assert_eq!(r, json!({"type":"read_ok","value":1,"in_reply_to":3}));
        let r = call(
            &mut s,
            lin,
            "n1",
            json!({"type":"cas","key":"x","from":1.0,"to":2,"msg_id":4}),
        );
        let r = r.unwrap();
        assert_eq!(r["code"], 22, "1.0 is not 1");
        assert_eq!(r["text"], "current value 1 is not 1.0");
        let r = call(
            &mut s,
            lin,
            "n1",
            json!({"type":"cas","key":"x","from":1,"to":2,"msg_id":5}),
        );
        assert_eq!(r.unwrap()["type"], "cas_ok");
        let r = call(
            &mut s,
            lin,
            "n1",
            json!({"type":"cas","key":"y","from":1,"to":2,"msg_id":6}),
        );
        assert_eq!(r.unwrap()["code"], 20);
        let r = call(
            &mut s,
            lin,
            "n1",
            json!({"type":"cas","key":"y","from":1,"to":2,"create_if_not_exists":true,"msg_id":7}),
        );
        assert_eq!(r.unwrap()["type"], "cas_ok");
        let r = call(
            &mut s,
            lin,
            "n1",
            json!({"type":"read","key":"y","msg_id":8}),
        );
        assert_eq!(r.unwrap()["value"], 2);
        let r = call(
            &mut s,
            lin,
            "n1",
            json!({"type":"cas","key":"y","from":"a","to":3,"msg_id":9}),
        );
        assert_eq!(r.unwrap()["text"], "current value 2 is not a");
    }

    #[test]
    fn replies_have_no_msg_id_and_unknown_types_get_nothing() {
        let mut s = services();
        for id in ServiceId::ALL {
            assert_eq!(
                call(&mut s, id, "n0", json!({"type":"frob","msg_id":1})),
                None
            );
            assert_eq!(call(&mut s, id, "n0", json!("not an object")), None);
        }
        let r = call(
            &mut s,
            ServiceId::LinKv,
            "n0",
            json!({"type":"write","key":1,"value":2,"msg_id":3}),
        );
        assert!(r.unwrap().get("msg_id").is_none());
    }

    #[test]
    fn object_keys_compare_regardless_of_order() {
        let mut s = services();
        let lin = ServiceId::LinKv;
        call(
            &mut s,
            lin,
            "n0",
            json!({"type":"write","key":{"a":1,"b":2},"value":"v","msg_id":1}),
        );
        let r = call(
            &mut s,
            lin,
            "n0",
            json!({"type":"read","key":{"b":2,"a":1},"msg_id":2}),
        );
        assert_eq!(r.unwrap()["value"], "v");
    }

    #[test]
    fn lin_tso_counts_from_zero() {
        let mut s = services();
        for expected in 0..3 {
            let r = call(
                &mut s,
                ServiceId::LinTso,
                "n0",
                json!({"type":"ts","msg_id":9}),
            )
            .unwrap();
            assert_eq!(r, json!({"type":"ts_ok","ts":expected,"in_reply_to":9}));
        }
    }

    #[test]
    fn seq_kv_reads_are_monotonic_per_caller_and_writes_see_the_newest() {
        let mut s = services();
        let seq = ServiceId::SeqKv;
        let mut stale = 0;
        for i in 1..=40 {
            let r = call(
                &mut s,
                seq,
                "n0",
                json!({"type":"write","key":"k","value":i,"msg_id":i}),
            );
            assert_eq!(r.unwrap()["type"], "write_ok");
            // n1 only reads: it may lag, but never goes backwards.
            let mut last = 0;
            for _ in 0..3 {
                let r = call(
                    &mut s,
                    seq,
                    "n1",
                    json!({"type":"read","key":"k","msg_id":0}),
                )
                .unwrap();
                let v = r.get("value").and_then(Value::as_i64).unwrap_or(0);
                assert!(v >= last, "{v} after {last}");
                last = v;
                if v < i {
                    stale += 1;
                }
            }
            // The writer always sees its own write.
            let r = call(
                &mut s,
                seq,
                "n0",
                json!({"type":"read","key":"k","msg_id":0}),
            )
            .unwrap();
            assert_eq!(r["value"], i);
        }
        assert!(stale > 0, "seq-kv never served a stale read");
    }

    #[test]
    fn seq_kv_fresh_read_trick_and_cas_on_newest() {
        let mut s = services();
        let seq = ServiceId::SeqKv;
        for i in 0..10 {
            call(
                &mut s,
                seq,
                "n0",
                json!({"type":"write","key":"k","value":i,"msg_id":1}),
            );
        }
        // A write of a unique value forces n1 to the newest state.
        call(
            &mut s,
            seq,
            "n1",
            json!({"type":"write","key":"fresh-n1","value":1,"msg_id":1}),
        );
        let r = call(
            &mut s,
            seq,
            "n1",
            json!({"type":"read","key":"k","msg_id":2}),
        )
        .unwrap();
        assert_eq!(r["value"], 9);
        // A caller at the newest state sees its CAS apply.
        let r = call(
            &mut s,
            seq,
            "n1",
            json!({"type":"cas","key":"k","from":9,"to":10,"msg_id":3}),
        );
        assert_eq!(r.unwrap()["type"], "cas_ok");
        // A caller that never looked may fail a CAS against a stale state, but then it has
        // moved forward, and a stale failure is never followed by an older one.
        let r = call(
            &mut s,
            seq,
            "n2",
            json!({"type":"read","key":"k","msg_id":4}),
        )
        .unwrap();
        let first = r["value"].as_i64().unwrap_or(-1);
        let r = call(
            &mut s,
            seq,
            "n2",
            json!({"type":"read","key":"k","msg_id":5}),
        )
        .unwrap();
        assert!(r["value"].as_i64().unwrap_or(-1) >= first);
    }

    #[test]
    fn lww_kv_has_no_create_and_converges() {
        let mut s = services();
        let lww = ServiceId::LwwKv;
        let r = call(
            &mut s,
            lww,
            "n0",
            json!({"type":"cas","key":"k","from":0,"to":1,"create_if_not_exists":true,"msg_id":1}),
        );
        assert_eq!(r.unwrap()["code"], 20);
        call(
            &mut s,
            lww,
            "n0",
            json!({"type":"write","key":"k","value":"v","msg_id":2}),
        );
        // After enough requests (each merging one replica into another) every read sees it.
        for _ in 0..50 {
            call(
                &mut s,
                lww,
                "n0",
                json!({"type":"read","key":"other","msg_id":3}),
            );
        }
        for _ in 0..20 {
            let r = call(
                &mut s,
                lww,
                "n1",
                json!({"type":"read","key":"k","msg_id":4}),
            )
            .unwrap();
            assert_eq!(r["value"], "v");
        }
    }
}
