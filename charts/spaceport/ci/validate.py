"""Validates every object of a rendered chart (a multi-document YAML file).

Built-in kinds go to `kubernetes-validate --strict`; Space objects are
checked against the schema of the generated CRD (crds/), which
kubernetes-validate does not know; kinds of other operators' CRDs, whose
schemas cannot be had offline, must be listed in NO_SCHEMA and are reported
as not schema-checked. Any other kind fails.

Usage: python3 validate.py RENDERED.yaml KUBERNETES_VERSION
"""

import os
import subprocess
import sys
import tempfile

import jsonschema
import yaml

CHART = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRD = os.path.join(CHART, "crds", "spaces.spaceport.dev.yaml")
NO_SCHEMA = {("monitoring.coreos.com/v1", "ServiceMonitor")}
BUILTIN_GROUPS = {
    "v1", "apps/v1", "policy/v1", "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1", "apiextensions.k8s.io/v1",
}


def main():
    rendered, version = sys.argv[1], sys.argv[2]
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(CRD) as f:
        crd = yaml.safe_load(f)
    space_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    builtin, unchecked, failures = [], [], []
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = f"{key[1]}/{doc.get('metadata', {}).get('name')}"
        if key == ("spaceport.dev/v1alpha1", "Space"):
            errors = list(jsonschema.Draft202012Validator(space_schema).iter_errors(doc))
            failures += [f"{name}: {e.message}" for e in errors]
        elif key[0] in BUILTIN_GROUPS:
            builtin.append(doc)
        elif key in NO_SCHEMA:
            unchecked.append(name)
        else:
            failures.append(f"{name}: {key[0]} has no schema here; add one or list it in NO_SCHEMA")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "builtin.yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all(builtin, f)
        run = subprocess.run(
            ["kubernetes-validate", "--strict", "--quiet", "-k", version, path],
            capture_output=True, text=True,
        )
        # kubernetes-validate exits 0 when it finds no schema: treat its
        # warnings as failures too.
        report = (run.stdout + run.stderr).strip()
        if run.returncode != 0 or "WARN" in report or "ERROR" in report:
            failures.append(f"kubernetes-validate:\n{report}")
    for name in unchecked:
        print(f"  not schema-checked (no schema offline): {name}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"  {len(builtin)} objects pass kubernetes-validate --strict ({version}),"
          f" {sum(1 for d in docs if d.get('kind') == 'Space')} Spaces pass the CRD schema")


if __name__ == "__main__":
    main()
