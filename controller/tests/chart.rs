//! The Helm chart, rendered by the real `helm template` with the default
//! values and with every toggle on (charts/spaceport/ci/all-on-values.yaml):
//! its RBAC equals `spaceport_controller::rbac`, its pods run unprivileged
//! (but the opt-in builder), every value is documented, it ships the
//! generated CRD, its flavor catalog parses as the runtime's, and its
//! dashboard only queries metrics the code exports.
//!
//! helm comes from PATH or the HELM env var; without it these tests skip,
//! except under CI=true, where they fail.

use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::Value;
use spaceport_controller::crd::{Space, crd_yaml};
use spaceport_controller::rbac::{self, Scope};
use spaceport_runtime::hardware::FlavorCatalog;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMESPACE: &str = "spaceport";
const ALL_ON: &str = "ci/all-on-values.yaml";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/spaceport")
}

fn helm() -> Option<String> {
    let helm = std::env::var("HELM").unwrap_or_else(|_| "helm".to_owned());
    let found = Command::new(&helm)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(helm);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "helm is missing under CI=true (.ci/run installs it; or set HELM)"
    );
    eprintln!("skipped: helm is not installed (set HELM or put helm on PATH)");
    None
}

/// The objects `helm template` renders (CRDs included), or None when helm
/// is missing outside CI.
fn render(values: Option<&str>) -> Option<Vec<Value>> {
    let helm = helm()?;
    let mut cmd = Command::new(helm);
    cmd.args(["template", "spaceport"]).arg(chart()).args([
        "--namespace",
        NAMESPACE,
        "--include-crds",
    ]);
    if let Some(values) = values {
        cmd.arg("--values").arg(chart().join(values));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    Some(docs)
}

/// Both renderings, labelled; empty when helm is missing outside CI.
fn renderings() -> Vec<(&'static str, Vec<Value>)> {
    let Some(default) = render(None) else {
        return Vec::new();
    };
    vec![
        ("default", default),
        (ALL_ON, render(Some(ALL_ON)).unwrap()),
    ]
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"]["labels"][key].as_str().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("<not a string>").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

type RuleRow = (Vec<String>, Vec<String>, Vec<String>);

fn table_rules(component: &rbac::Component, scope: Scope) -> Vec<RuleRow> {
    let owned = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    component
        .rules_in(scope)
        .map(|r| (owned(r.api_groups), owned(r.resources), owned(r.verbs)))
        .collect()
}

fn rendered_rules(role: &Value) -> Vec<RuleRow> {
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                strings(&r["apiGroups"]),
                strings(&r["resources"]),
                strings(&r["verbs"]),
            )
        })
        .collect()
}

#[test]
fn the_rendered_rbac_equals_the_rbac_table() {
    for (values, docs) in renderings() {
        let all_on = values == ALL_ON;
        let watched_namespaces = if all_on {
            vec!["spaces-a", "spaces-b"]
        } else {
            vec![]
        };
        let hub_namespace = if all_on { "spaces-a" } else { NAMESPACE };
        let roles: Vec<&Value> = docs
            .iter()
            .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
            .collect();
        let mut seen = 0;
        for component in rbac::COMPONENTS {
            for scope in [Scope::Watched, Scope::Home] {
                let expected = table_rules(component, scope);
                let mine: Vec<&&Value> = roles
                    .iter()
                    .filter(|r| {
                        label(r, "app.kubernetes.io/component") == component.name
                            && label(r, "spaceport.dev/rbac-scope") == scope.label()
                    })
                    .collect();
                seen += mine.len();
                let where_ = format!("{values}: {} {scope:?}", component.name);
                if expected.is_empty() {
                    assert!(mine.is_empty(), "{where_}: rules the table does not have");
                    continue;
                }
                let namespaces: BTreeSet<&str> = mine
                    .iter()
                    .map(|r| r["metadata"]["namespace"].as_str().unwrap_or("<cluster>"))
                    .collect();
                let want: BTreeSet<&str> = match scope {
                    Scope::Home if component.name == "hub" => [hub_namespace].into(),
                    Scope::Home => [NAMESPACE].into(),
                    Scope::Watched if all_on => watched_namespaces.iter().copied().collect(),
                    Scope::Watched => ["<cluster>"].into(),
                };
                assert_eq!(namespaces, want, "{where_}: where the rules apply");
                assert_eq!(mine.len(), want.len(), "{where_}: one role per namespace");
                for role in mine {
                    let want_kind = if namespaces.contains("<cluster>") {
                        "ClusterRole"
                    } else {
                        "Role"
                    };
                    assert_eq!(kind(role), want_kind, "{where_}");
                    assert_eq!(rendered_rules(role), expected, "{where_}");
                }
            }
        }
        assert_eq!(seen, roles.len(), "{values}: a role outside the table");
    }
}

#[test]
fn every_binding_binds_a_role_to_its_own_components_service_account() {
    for (values, docs) in renderings() {
        let key = |kind: &str, meta: &Value| {
            (
                kind.to_owned(),
                meta["name"].as_str().unwrap().to_owned(),
                meta["namespace"].as_str().unwrap_or_default().to_owned(),
            )
        };
        let roles: BTreeSet<(String, String, String)> = docs
            .iter()
            .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
            .map(|d| key(kind(d), &d["metadata"]))
            .collect();
        let accounts: BTreeSet<&str> = docs
            .iter()
            .filter(|d| kind(d) == "ServiceAccount")
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        let bindings: Vec<&Value> = docs
            .iter()
            .filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding"))
            .collect();
        assert_eq!(bindings.len(), roles.len(), "{values}");
        for b in bindings {
            let role_ref = &b["roleRef"];
            let meta = serde_json::json!({
                "name": role_ref["name"],
                "namespace": b["metadata"]["namespace"],
            });
            let role = key(role_ref["kind"].as_str().unwrap(), &meta);
            assert!(roles.contains(&role), "{values}: {role:?} is not rendered");
            let subjects = b["subjects"].as_array().unwrap();
            assert_eq!(subjects.len(), 1, "{values}");
            let account = subjects[0]["name"].as_str().unwrap();
            assert!(accounts.contains(account), "{values}: {account}");
            assert_eq!(subjects[0]["namespace"], NAMESPACE);
            let component = label(b, "app.kubernetes.io/component");
            assert_eq!(account, format!("spaceport-{component}"), "{values}");
        }
    }
}

#[test]
fn no_rendered_rule_uses_a_wildcard() {
    for (values, docs) in renderings() {
        for role in docs
            .iter()
            .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
        {
            for (groups, resources, verbs) in rendered_rules(role) {
                for list in [&groups, &resources, &verbs] {
                    assert!(!list.is_empty(), "{values}: {role}");
                    assert!(!list.iter().any(|s| s.contains('*')), "{values}: {role}");
                }
            }
        }
    }
}

fn workloads(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| matches!(kind(d), "Deployment" | "StatefulSet" | "DaemonSet" | "Job"))
        .collect()
}

#[test]
fn every_pod_runs_non_root_without_privilege_escalation_but_the_opt_in_builder() {
    for (values, docs) in renderings() {
        let mut builders = 0;
        for w in workloads(&docs) {
            let name = w["metadata"]["name"].as_str().unwrap();
            let pod = &w["spec"]["template"]["spec"];
            let containers: Vec<&Value> = ["containers", "initContainers"]
                .iter()
                .flat_map(|k| pod[k].as_array().into_iter().flatten())
                .collect();
            assert!(!containers.is_empty(), "{values}: {name}");
            if label(w, "app.kubernetes.io/component") == "builder" {
                builders += 1;
                for c in containers {
                    assert_eq!(c["securityContext"]["privileged"], true, "{name}");
                }
                assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
                continue;
            }
            let psc = &pod["securityContext"];
            assert_eq!(psc["runAsNonRoot"], true, "{values}: {name}");
            assert_eq!(psc["runAsUser"], 1000, "{values}: {name}");
            assert_eq!(
                psc["seccompProfile"]["type"], "RuntimeDefault",
                "{values}: {name}"
            );
            for c in containers {
                let sc = &c["securityContext"];
                let which = format!("{values}: {name}/{}", c["name"]);
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{which}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{which}");
                assert_eq!(sc["runAsNonRoot"], true, "{which}");
                assert_ne!(sc["privileged"], true, "{which}");
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
                assert!(sc["capabilities"]["add"].is_null(), "{which}");
            }
        }
        let expected = usize::from(values == ALL_ON);
        assert_eq!(builders, expected, "{values}: the builder is opt-in");
    }
}

#[test]
fn the_components_run_the_agreed_commands_with_the_agreed_settings() {
    let agreed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        (
            "run",
            &[
                "SPACEPORT_LISTEN",
                "SPACEPORT_NAMESPACE",
                "SPACEPORT_DOMAIN",
                "SPACEPORT_HUB_URL",
                "SPACEPORT_HUB_TOKEN_FILE",
                "SPACEPORT_IMAGE",
                "SPACEPORT_BUILDER",
                "SPACEPORT_BUILDER_TLS_DIR",
                "SPACEPORT_REGISTRY",
                "SPACEPORT_REGISTRY_AUTH_FILE",
                "SPACEPORT_CACHE_HOST_PATH",
                "SPACEPORT_CACHE_CLAIM",
                "SPACEPORT_STORAGE_CLASS",
                "SPACEPORT_FLAVORS",
                "SPACEPORT_WEBHOOK_SECRET_FILE",
                "SPACEPORT_POLL_INTERVAL",
                "SPACEPORT_LEASE_NAMESPACE",
                "SPACEPORT_LEASE_NAME",
                "POD_NAME",
                "RUST_LOG",
            ][..],
        ),
        (
            "proxy",
            &[
                "SPACEPORT_LISTEN",
                "SPACEPORT_METRICS_LISTEN",
                "SPACEPORT_DOMAIN",
                "SPACEPORT_NAMESPACE",
                "SPACEPORT_HUB_URL",
                "SPACEPORT_TRUST_FORWARDED",
                "RUST_LOG",
            ][..],
        ),
        (
            "hub",
            &[
                "SPACEPORT_LISTEN",
                "SPACEPORT_DATA",
                "SPACEPORT_DOMAIN",
                "SPACEPORT_NAMESPACE",
                "SPACEPORT_PUBLIC_URL",
                "SPACEPORT_ADMIN_TOKEN_FILE",
                "SPACEPORT_TRUST_FORWARDED",
                "RUST_LOG",
            ][..],
        ),
    ]);
    for (values, docs) in renderings() {
        let mut commands = BTreeSet::new();
        for w in workloads(&docs) {
            for c in w["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                if c["command"] != serde_json::json!(["spaceport-controller"]) {
                    continue;
                }
                let sub = c["args"][0].as_str().unwrap();
                commands.insert(sub.to_owned());
                let allowed = agreed[sub];
                for env in c["env"].as_array().unwrap() {
                    let name = env["name"].as_str().unwrap();
                    assert!(allowed.contains(&name), "{values}: {sub} gets {name}");
                }
            }
        }
        let want: BTreeSet<String> = agreed.keys().map(|k| (*k).to_owned()).collect();
        assert_eq!(commands, want, "{values}");
    }
}

/// Every key path of values.yaml that a comment starting with "# <key> --"
/// documents, read from the file's lines (indentation gives the nesting;
/// lines inside block lists are skipped).
fn documented_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut list_indent: Option<usize> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            comments.push(comment.trim().to_owned());
            continue;
        }
        if let Some(li) = list_indent {
            if indent > li || (indent == li && trimmed.starts_with('-')) {
                comments.clear();
                continue;
            }
            list_indent = None;
        }
        if trimmed.starts_with('-') {
            list_indent = Some(indent);
            comments.clear();
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            comments.clear();
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = stack
            .iter()
            .map(|(_, k)| k.as_str())
            .chain([key])
            .collect::<Vec<_>>()
            .join(".");
        if comments
            .iter()
            .any(|c| c.starts_with(&format!("{key} -- ")))
        {
            out.insert(path.clone());
        }
        comments.clear();
        if rest.trim().is_empty() {
            stack.push((indent, key.to_owned()));
        }
    }
    out
}

/// Every key path that must be documented: all keys of maps whose keys are
/// documented (a section); a documented map none of whose keys are
/// documented is a value passed through as it is (resources, labels).
fn undocumented(
    value: &Value,
    prefix: &str,
    documented: &BTreeSet<String>,
    missing: &mut Vec<String>,
) {
    let Some(map) = value.as_object() else { return };
    let paths: Vec<String> = map
        .keys()
        .map(|k| {
            if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            }
        })
        .collect();
    let section = prefix.is_empty() || paths.iter().any(|p| documented.contains(p));
    if !section {
        return;
    }
    for (path, child) in paths.iter().zip(map.values()) {
        if documented.contains(path) {
            undocumented(child, path, documented, missing);
        } else {
            missing.push(path.clone());
        }
    }
}

#[test]
fn every_value_is_documented_by_a_comment_starting_with_its_name() {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let values: Value = serde_norway::from_str(&text).unwrap();
    let documented = documented_paths(&text);
    assert!(documented.len() > 60, "{documented:?}");
    let mut missing = Vec::new();
    undocumented(&values, "", &documented, &mut missing);
    assert!(
        missing.is_empty(),
        "undocumented values (write `# <name> -- ...` above each): {missing:?}"
    );
}

#[test]
fn the_documentation_check_finds_an_undocumented_value() {
    let text = "# a -- documented\na:\n  # b -- documented\n  b: 1\n  c: 2\n# d -- passed as is\nd:\n  e: 1\n";
    let values: Value = serde_norway::from_str(text).unwrap();
    let mut missing = Vec::new();
    undocumented(&values, "", &documented_paths(text), &mut missing);
    assert_eq!(missing, ["a.c"]);
}

#[test]
fn the_chart_renders_the_crd_the_code_generates() {
    for (values, docs) in renderings() {
        let crds: Vec<&Value> = docs
            .iter()
            .filter(|d| kind(d) == "CustomResourceDefinition")
            .collect();
        assert_eq!(crds.len(), 1, "{values}");
        // What `spaceport-controller crd` prints, read as helm's output is.
        let generated: Value = serde_norway::from_str(&crd_yaml()).unwrap();
        assert!(*crds[0] == generated, "{values}: the chart's CRD is stale");
        assert_eq!(generated["metadata"]["name"], Space::crd_name());
    }
}

fn flavors(docs: &[Value]) -> FlavorCatalog {
    let map = docs
        .iter()
        .find(|d| kind(d) == "ConfigMap" && label(d, "app.kubernetes.io/component") == "controller")
        .expect("the flavors ConfigMap");
    let text = map["data"]["flavors.yaml"].as_str().unwrap();
    FlavorCatalog::from_yaml(text, "flavors.yaml").unwrap()
}

#[test]
fn the_flavors_config_map_parses_as_the_runtime_catalog() {
    for (values, docs) in renderings() {
        let catalog = flavors(&docs);
        if values == ALL_ON {
            let t4 = catalog.get("t4-small").unwrap();
            assert_eq!(t4.node_selector["nvidia.com/gpu.product"], "Tesla-T4");
            assert_eq!(t4.tolerations[0].key, "dedicated");
            assert_eq!(catalog.get("rtx4090").unwrap().gpus, 1);
            assert_eq!(
                catalog.flavors.len(),
                FlavorCatalog::builtin().flavors.len() + 1
            );
        } else {
            assert_eq!(catalog, FlavorCatalog::builtin(), "{values}");
        }
        let controller = workloads(&docs)
            .into_iter()
            .find(|w| label(w, "app.kubernetes.io/component") == "controller")
            .unwrap();
        let pod = &controller["spec"]["template"]["spec"];
        let env = &pod["containers"][0]["env"];
        let flavors_env = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "SPACEPORT_FLAVORS")
            .unwrap();
        assert_eq!(flavors_env["value"], "/etc/spaceport/flavors/flavors.yaml");
    }
}

/// The quoted `spaceport_*` names in the crates' sources.
fn exported_metrics() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut text = String::new();
    for krate in ["proxy", "runtime", "controller"] {
        walk(&chart().join("../..").join(krate).join("src"), &mut text);
    }
    metric_names(&text)
        .into_iter()
        .filter(|n| text.contains(&format!("\"{n}\"")) || text.contains(&format!("\"{n} ")))
        .collect()
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("spaceport_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_queries_only_metrics_the_code_exports() {
    let text = std::fs::read_to_string(chart().join("dashboards/spaceport.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let exported = exported_metrics();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for wanted in [
        "spaceport_proxy_visits_total",
        "spaceport_proxy_wake_duration_seconds_bucket",
        "spaceport_spaces",
        "spaceport_gpu_utilization_ratio",
    ] {
        assert!(queried.contains(wanted), "no panel shows {wanted}");
    }
    for name in &queried {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            exported.contains(name) || exported.contains(base),
            "the dashboard queries {name}, which no crate exports"
        );
    }
}
