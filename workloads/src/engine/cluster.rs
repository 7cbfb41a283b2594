//! The cluster a run starts: which binary, with which arguments, each node runs, and the
//! `init` each node gets. A run of one binary (`--bin`) is one service, `node`, of every
//! node, and its `init` is Maelstrom's exactly; a cluster of several binaries
//! (`--service NAME=BIN:COUNT`, repeated) numbers its nodes n0, n1, … across the services in
//! the order given, and each node's `init` names its own service's nodes in `node_ids` and
//! every service's nodes in an extra field `services`.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::options::TestOptions;
use super::BadArgs;
use crate::workload::{Cluster, ONE_SERVICE};

/// One service as started: its binary (absolute), arguments and node ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub name: String,
    pub bin: PathBuf,
    pub args: Vec<String>,
    pub nodes: Vec<String>,
}

/// The services of a run, each with its binary checked: one, `node`, of `names` for a run
/// of one binary; else the `--service`s with ids n0… across them and their own arguments.
pub fn launches(args: &TestOptions, names: &[String]) -> Result<Vec<Launch>, BadArgs> {
    if args.services.is_empty() {
        let bin = args.bin.clone().unwrap_or_default();
        return Ok(vec![Launch {
            name: ONE_SERVICE.to_string(),
            bin: super::check_bin("--bin", &bin)?,
            args: args.args.clone(),
            nodes: names.to_vec(),
        }]);
    }
    for (i, s) in args.services.iter().enumerate() {
        if args.services[..i].iter().any(|t| t.name == s.name) {
            return Err(BadArgs(format!(
                "--service {} is given twice: service names must be distinct",
                s.name
            )));
        }
    }
    if let Some((name, _)) = args
        .service_args
        .iter()
        .find(|(name, _)| !args.services.iter().any(|s| &s.name == name))
    {
        let known: Vec<&str> = args.services.iter().map(|s| s.name.as_str()).collect();
        return Err(BadArgs(format!(
            "--service-args {name}: there is no service {name} (services: {})",
            known.join(", ")
        )));
    }
    let mut ids = names.iter();
    args.services
        .iter()
        .map(|s| {
            let mut node_args = args.args.clone();
            for (_, extra) in args.service_args.iter().filter(|(n, _)| *n == s.name) {
                node_args.extend(extra.iter().cloned());
            }
            Ok(Launch {
                name: s.name.clone(),
                bin: super::check_bin(&format!("--service {}:", s.name), &s.bin)?,
                args: node_args,
                nodes: ids.by_ref().take(s.count).cloned().collect(),
            })
        })
        .collect()
}

/// The node ids of a cluster of several binaries: n0, n1, … over every service's count.
pub fn service_node_names(args: &TestOptions) -> Vec<String> {
    let total: usize = args.services.iter().map(|s| s.count).sum();
    (0..total).map(|i| format!("n{i}")).collect()
}

/// The services as the workload sees them: (name, node ids).
pub fn services(launches: &[Launch]) -> Vec<(String, Vec<String>)> {
    launches
        .iter()
        .map(|l| (l.name.clone(), l.nodes.clone()))
        .collect()
}

/// The `init` body of node `node` (an index into `cluster.nodes`), without `msg_id`:
/// Maelstrom's `{"type","node_id","node_ids"}` with every node for a run of one binary;
/// with `several`, `node_ids` of the node's own service and `services` naming every
/// service's nodes. A restarted node gets the same body.
pub fn init_body(cluster: &Cluster, node: usize, several: bool) -> Map<String, Value> {
    let id = &cluster.nodes[node];
    let strings =
        |nodes: &[String]| Value::Array(nodes.iter().cloned().map(Value::String).collect());
    let mut body = Map::new();
    body.insert("type".into(), "init".into());
    body.insert("node_id".into(), id.clone().into());
    if !several {
        body.insert("node_ids".into(), strings(&cluster.nodes));
        return body;
    }
    let own = cluster
        .services
        .iter()
        .find(|(_, nodes)| nodes.contains(id))
        .map_or(&[][..], |(_, nodes)| nodes.as_slice());
    body.insert("node_ids".into(), strings(own));
    let services = cluster
        .services
        .iter()
        .map(|(name, nodes)| (name.clone(), strings(nodes)))
        .collect();
    body.insert("services".into(), Value::Object(services));
    body
}

/// `Services: giftid n0 n1 n2; queue n3 n4`: what a run of several binaries says at start.
pub fn describe(launches: &[Launch]) -> String {
    let parts: Vec<String> = launches
        .iter()
        .map(|l| format!("{} {} ({})", l.name, l.nodes.join(" "), l.bin.display()))
        .collect();
    format!("Services: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::args_of;
    use crate::topology::Topology;

    fn cluster(services: &[(&str, &[&str])]) -> Cluster {
        let services: Vec<(String, Vec<String>)> = services
            .iter()
            .map(|(n, ids)| (n.to_string(), ids.iter().map(|s| s.to_string()).collect()))
            .collect();
        Cluster {
            nodes: services.iter().flat_map(|(_, ids)| ids.clone()).collect(),
            topology: Topology::Grid,
            workers: 1,
            node_args: Vec::new(),
            services,
        }
    }

    #[test]
    fn one_binary_gets_maelstroms_init_byte_for_byte() {
        let c = cluster(&[(ONE_SERVICE, &["n1", "n2", "n3"])]);
        let body = Value::Object(init_body(&c, 2, false)).to_string();
        assert_eq!(
            body,
            r#"{"type":"init","node_id":"n3","node_ids":["n1","n2","n3"]}"#
        );
    }

    #[test]
    fn several_binaries_get_their_own_service_and_every_service() {
        let c = cluster(&[("giftid", &["n0", "n1"]), ("queue", &["n2", "n3", "n4"])]);
        let body = Value::Object(init_body(&c, 3, true)).to_string();
        assert_eq!(
            body,
            r#"{"type":"init","node_id":"n3","node_ids":["n2","n3","n4"],"services":{"giftid":["n0","n1"],"queue":["n2","n3","n4"]}}"#
        );
        let first = Value::Object(init_body(&c, 0, true));
        assert_eq!(first["node_ids"], serde_json::json!(["n0", "n1"]));
        assert_eq!(
            first["services"],
            Value::Object(
                init_body(&c, 4, true)["services"]
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
    }

    #[test]
    fn services_number_their_nodes_in_order_with_their_own_arguments() {
        let dir = std::env::temp_dir().join(format!("workloads-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("node");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = bin.display().to_string();
        let (a_spec, q_spec) = (format!("a={b}:2"), format!("q={b}:3"));
        let opts = args_of(&[
            "--service",
            &a_spec,
            "--service",
            &q_spec,
            "--service-args",
            "q=--x 'y z'",
            "--",
            "--common",
        ]);
        let names = service_node_names(&opts);
        assert_eq!(names, ["n0", "n1", "n2", "n3", "n4"]);
        let l = launches(&opts, &names).unwrap();
        assert_eq!(l[0].nodes, ["n0", "n1"]);
        assert_eq!(l[1].nodes, ["n2", "n3", "n4"]);
        assert_eq!(l[0].args, ["--common"]);
        assert_eq!(l[1].args, ["--common", "--x", "y z"]);
        assert_eq!(l[1].bin, bin);
        assert!(
            describe(&l).starts_with("Services: a n0 n1 ("),
            "{}",
            describe(&l)
        );
        let refused = |argv: &[&str]| launches(&args_of(argv), &names).unwrap_err().0;
        let twice = refused(&["--service", &a_spec, "--service", &a_spec]);
        assert!(twice.contains("given twice"), "{twice}");
        let unknown = refused(&["--service", &a_spec, "--service-args", "b=-x"]);
        assert!(
            unknown.contains("there is no service b (services: a)"),
            "{unknown}"
        );
        let missing = refused(&["--service", "a=absent-node:1"]);
        assert!(
            missing.starts_with("--service a: absent-node: no such file"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
