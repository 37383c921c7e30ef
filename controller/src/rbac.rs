//! The Kubernetes permissions each component needs, as data: the table the
//! Helm chart's RBAC must equal (charts/spaceport/templates/_rbac.tpl holds
//! the same rules; controller/tests/chart.rs renders the chart and compares).
//!
//! When code starts calling the API for another resource or verb, add the
//! rule here and in the chart's table together. This module only declares;
//! it grants nothing and calls no API.

/// Where a component's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Where Spaces live: every namespace (a ClusterRole) when the chart's
    /// `watchNamespaces` is empty, otherwise a Role in each watched one.
    Watched,
    /// One namespace: the release namespace for the controller (its
    /// leader-election Lease), the hub's Space namespace for the hub.
    Home,
}

impl Scope {
    /// The value of the `spaceport.dev/rbac-scope` label the chart puts on
    /// the Role or ClusterRole.
    pub fn label(self) -> &'static str {
        match self {
            Watched => "watched",
            Home => "home",
        }
    }
}

/// One RBAC policy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub scope: Scope,
    /// API groups ("" is the core group).
    pub api_groups: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

/// A component of the chart and its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// As in the chart's `app.kubernetes.io/component` label.
    pub name: &'static str,
    pub rules: &'static [Rule],
}

const fn rule(
    scope: Scope,
    api_groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
) -> Rule {
    Rule {
        scope,
        api_groups,
        resources,
        verbs,
    }
}

use Scope::{Home, Watched};

/// `spaceport-controller run`. Server-side apply creates objects that do
/// not exist yet, which the API server authorizes as `create`.
/// `spaces/finalizers` `update` is what the owner-reference admission check
/// asks of a controller that sets `blockOwnerDeletion` on owned objects.
pub const CONTROLLER: Component = Component {
    name: "controller",
    rules: &[
        // The watch cache, the finalizer, and the commit annotation the
        // poller and the push webhooks set.
        rule(
            Watched,
            &["spaceport.dev"],
            &["spaces"],
            &["list", "watch", "patch"],
        ),
        rule(Watched, &["spaceport.dev"], &["spaces/status"], &["patch"]),
        rule(
            Watched,
            &["spaceport.dev"],
            &["spaces/finalizers"],
            &["update"],
        ),
        rule(
            Watched,
            &["apps"],
            &["deployments"],
            &["list", "watch", "create", "patch"],
        ),
        rule(
            Watched,
            &[""],
            &["services"],
            &["list", "watch", "create", "patch"],
        ),
        rule(
            Watched,
            &[""],
            &["persistentvolumeclaims"],
            &["create", "patch"],
        ),
        // Git credentials, build secrets and variables.
        rule(Watched, &[""], &["secrets", "configmaps"], &["get"]),
        rule(
            Watched,
            &["events.k8s.io"],
            &["events"],
            &["create", "patch"],
        ),
        rule(
            Home,
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "create", "update"],
        ),
    ],
};

/// `spaceport-controller proxy`.
pub const PROXY: Component = Component {
    name: "proxy",
    rules: &[
        // Routes; the wake annotation.
        rule(
            Watched,
            &["spaceport.dev"],
            &["spaces"],
            &["list", "watch", "patch"],
        ),
        // lastActivity.
        rule(Watched, &["spaceport.dev"], &["spaces/status"], &["patch"]),
        rule(
            Watched,
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["list", "watch"],
        ),
    ],
};

/// `spaceport-controller hub`: its Spaces (applied, read back to refuse
/// names taken by others, watched for their status, deleted) and their
/// Secrets (applied and deleted).
pub const HUB: Component = Component {
    name: "hub",
    rules: &[
        rule(
            Home,
            &["spaceport.dev"],
            &["spaces"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule(Home, &[""], &["secrets"], &["create", "patch", "delete"]),
    ],
};

/// Every component that talks to the API server.
pub const COMPONENTS: &[Component] = &[CONTROLLER, PROXY, HUB];

/// The verb, API group and resource (with its subresource) an API request
/// is authorized as, by Kubernetes' rules; `None` for a path that is not a
/// resource request.
pub fn request_attributes(method: &str, uri: &str) -> Option<(String, String, String)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((verb.to_owned(), group.to_owned(), resource))
}

impl Component {
    /// Whether the component's rules grant this API request (in some
    /// scope). The mocked API servers of the tests ask this of every call.
    pub fn allows(&self, method: &str, uri: &str) -> bool {
        let Some((verb, group, resource)) = request_attributes(method, uri) else {
            return false;
        };
        self.rules.iter().any(|r| {
            r.api_groups.contains(&group.as_str())
                && r.resources.contains(&resource.as_str())
                && r.verbs.contains(&verb.as_str())
        })
    }

    /// The rules of one scope, in table order.
    pub fn rules_in(&self, scope: Scope) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.scope == scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_as_kubernetes_authorizes_them() {
        let attrs = |m, u| request_attributes(m, u).unwrap();
        let t = |v: &str, g: &str, r: &str| (v.to_owned(), g.to_owned(), r.to_owned());
        assert_eq!(
            attrs(
                "PATCH",
                "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces/demo/status?fieldManager=x"
            ),
            t("patch", "spaceport.dev", "spaces/status")
        );
        assert_eq!(
            attrs(
                "GET",
                "/apis/spaceport.dev/v1alpha1/spaces?&watch=true&resourceVersion=1"
            ),
            t("watch", "spaceport.dev", "spaces")
        );
        assert_eq!(
            attrs("GET", "/api/v1/namespaces/team/secrets/creds"),
            t("get", "", "secrets")
        );
        assert_eq!(
            attrs(
                "GET",
                "/apis/discovery.k8s.io/v1/namespaces/team/endpointslices?labelSelector=a"
            ),
            t("list", "discovery.k8s.io", "endpointslices")
        );
        assert_eq!(
            attrs("POST", "/apis/events.k8s.io/v1/namespaces/team/events?"),
            t("create", "events.k8s.io", "events")
        );
        assert_eq!(
            attrs("PUT", "/apis/coordination.k8s.io/v1/namespaces/s/leases/l"),
            t("update", "coordination.k8s.io", "leases")
        );
        assert!(request_attributes("GET", "/healthz").is_none());
        assert!(CONTROLLER.allows(
            "PATCH",
            "/apis/apps/v1/namespaces/t/deployments/d?fieldManager=spaceport"
        ));
        assert!(!CONTROLLER.allows("DELETE", "/apis/apps/v1/namespaces/t/deployments/d"));
        assert!(!PROXY.allows("GET", "/api/v1/namespaces/t/secrets/s"));
    }

    #[test]
    fn no_rule_uses_a_wildcard_or_an_empty_list() {
        for c in COMPONENTS {
            for r in c.rules {
                for list in [r.api_groups, r.resources, r.verbs] {
                    assert!(!list.is_empty(), "{}: {r:?}", c.name);
                    assert!(!list.contains(&"*"), "{}: {r:?}", c.name);
                }
            }
        }
    }

    #[test]
    fn only_the_hub_creates_spaces_and_nobody_deletes_them_but_the_hub() {
        for c in COMPONENTS {
            let touches = |verb: &str| {
                c.rules
                    .iter()
                    .any(|r| r.resources.contains(&"spaces") && r.verbs.contains(&verb))
            };
            assert_eq!(touches("create"), c.name == "hub", "{}", c.name);
            assert_eq!(touches("delete"), c.name == "hub", "{}", c.name);
        }
    }
}
