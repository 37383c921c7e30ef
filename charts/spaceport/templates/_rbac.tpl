{{/*
THE RBAC TABLE: every permission of every component, in one place.
rbac.yaml renders it; controller/src/rbac.rs declares the same rules and a
test (controller/tests/chart.rs) checks that the two are equal, so change
both together.

Scopes:
  watched: where Spaces live. A ClusterRole when watchNamespaces is empty,
           otherwise a Role in each watched namespace.
  home:    one namespace: the release namespace for the controller (its
           leader-election Lease), the hub's Space namespace for the hub.

Server-side apply needs "patch" and, for an object that does not exist
yet, "create".
*/}}
{{- define "spaceport.rbacRules" -}}
controller:
  watched:
    - apiGroups: [spaceport.dev]
      resources: [spaces]
      verbs: [list, watch, patch]
    - apiGroups: [spaceport.dev]
      resources: [spaces/status]
      verbs: [patch]
    - apiGroups: [spaceport.dev]
      resources: [spaces/finalizers]
      verbs: [update]
    - apiGroups: [apps]
      resources: [deployments]
      verbs: [list, watch, create, patch]
    - apiGroups: [""]
      resources: [services]
      verbs: [list, watch, create, patch]
    - apiGroups: [""]
      resources: [persistentvolumeclaims]
      verbs: [create, patch]
    - apiGroups: [""]
      resources: [secrets, configmaps]
      verbs: [get]
    - apiGroups: [events.k8s.io]
      resources: [events]
      verbs: [create, patch]
  home:
    - apiGroups: [coordination.k8s.io]
      resources: [leases]
      verbs: [get, create, update]
proxy:
  watched:
    - apiGroups: [spaceport.dev]
      resources: [spaces]
      verbs: [list, watch, patch]
    - apiGroups: [spaceport.dev]
      resources: [spaces/status]
      verbs: [patch]
    - apiGroups: [discovery.k8s.io]
      resources: [endpointslices]
      verbs: [list, watch]
  home: []
hub:
  watched: []
  home:
    - apiGroups: [spaceport.dev]
      resources: [spaces]
      verbs: [get, list, watch, create, patch, delete]
    - apiGroups: [""]
      resources: [secrets]
      verbs: [create, patch, delete]
{{- end }}
