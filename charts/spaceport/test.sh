#!/usr/bin/env bash
# Checks the chart: `helm lint --strict` and `helm template` with the default
# values and with ci/all-on-values.yaml (every toggle on), then every
# rendered object (the CRD included) with ci/validate.py:
# `kubernetes-validate --strict` for built-in kinds, the generated CRD's
# schema for Space objects.
#
# Needs helm and kubernetes-validate (pip install kubernetes-validate); set
# HELM to use a helm that is not on PATH, KUBERNETES_VERSION (default 1.33)
# to validate against another version.
set -euo pipefail
chart="$(cd "$(dirname "$0")" && pwd)"
helm="${HELM:-helm}"
version="${KUBERNETES_VERSION:-1.33}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for values in default ci/all-on-values.yaml; do
  args=()
  [ "$values" = default ] || args=(--values "$chart/$values")
  echo "== $values"
  "$helm" lint --strict --quiet "$chart" "${args[@]}"
  "$helm" template spaceport "$chart" --namespace spaceport --include-crds \
    "${args[@]}" >"$out/rendered.yaml"
  python3 "$chart/ci/validate.py" "$out/rendered.yaml" "$version"
done
echo "== chart ok"
