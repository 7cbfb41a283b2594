//! The echo checker: every request must come back `:ok` with the same value it sent.

use super::op_edn;
use crate::edn::Edn;
use crate::history::{History, OpType};

pub fn check(history: &History) -> Edn {
    let mut errors = Vec::new();
    for (invoke, completion) in history.pairs() {
        let problem = match completion {
            None => Some("no completion"),
            Some(c) if c.op_type != OpType::Ok => Some("operation did not succeed"),
            Some(c) if c.value.get("echo") != Some(&invoke.value) => {
                Some("echoed value differs from the one sent")
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let mut entries = vec![("error", Edn::from(problem)), ("invoke", op_edn(invoke))];
            if let Some(c) = completion {
                entries.push(("completion", op_edn(c)));
            }
            errors.push(Edn::map(entries));
        }
    }
    Edn::map([
        ("valid?", Edn::Bool(errors.is_empty())),
        ("errors", Edn::List(errors)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::{complete, invoke};

    fn reply(echo: &str) -> Edn {
        Edn::map([("type", Edn::from("echo_ok")), ("echo", Edn::from(echo))])
    }

    #[test]
    fn same_value_back_is_valid_and_anything_else_is_not() {
        let mut h = History::default();
        h.push(invoke(0, "echo", Edn::from("Please echo 1")));
        h.push(complete(0, OpType::Ok, "echo", reply("Please echo 1")));
        assert_eq!(check(&h).to_compact(), "{:valid? true, :errors ()}");

        h.push(invoke(0, "echo", Edn::from("Please echo 2")));
        h.push(complete(0, OpType::Ok, "echo", reply("Please echo 3")));
        h.push(invoke(1, "echo", Edn::from("Please echo 4")));
        h.push(complete(1, OpType::Fail, "echo", Edn::Nil));
        let r = check(&h);
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(false)));
        assert_eq!(r.get("errors").unwrap().elements().unwrap().len(), 2);
    }
}
