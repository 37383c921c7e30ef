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

/// Verbs server-side apply needs for an object it owns: `patch`, and
/// `create` when the object does not exist yet; plus reading and deleting.
const OWNED: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// `spaceport-controller run`.
pub const CONTROLLER: Component = Component {
    name: "controller",
    rules: &[
        rule(
            Watched,
            &["spaceport.dev"],
            &["spaces"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(Watched, &["spaceport.dev"], &["spaces/status"], &["patch"]),
        rule(
            Watched,
            &["spaceport.dev"],
            &["spaces/finalizers"],
            &["update"],
        ),
        rule(Watched, &["apps"], &["deployments"], OWNED),
        rule(
            Watched,
            &[""],
            &["services", "persistentvolumeclaims"],
            OWNED,
        ),
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
        rule(
            Watched,
            &["spaceport.dev"],
            &["spaces"],
            &["get", "list", "watch", "patch"],
        ),
        rule(Watched, &["spaceport.dev"], &["spaces/status"], &["patch"]),
        rule(
            Watched,
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["list", "watch"],
        ),
    ],
};

/// `spaceport-controller hub`.
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
        rule(Home, &[""], &["pods"], &["get", "list"]),
        rule(Home, &[""], &["pods/log"], &["get"]),
    ],
};

/// Every component that talks to the API server.
pub const COMPONENTS: &[Component] = &[CONTROLLER, PROXY, HUB];

impl Component {
    /// The rules of one scope, in table order.
    pub fn rules_in(&self, scope: Scope) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.scope == scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
