#!/usr/bin/env python3
"""End-to-end check: the real `huggingface_hub` client (HfApi) against a running spaceport hub.

Standalone: stdlib + huggingface_hub only (httpx2 comes with huggingface_hub >= 1.x / 2.x).
Each check prints one line `PASS name` / `FAIL name: why` / `SKIP name: why`; exit code 0 only
if no check failed.

Environment:
  SPACEPORT_ENDPOINT        hub URL, e.g. http://127.0.0.1:8080                        (required)
  SPACEPORT_TOKEN           admin write token                                            (required)
  SPACEPORT_SPACE           fresh owner/name to create; owner must be the token's user   (required)
  SPACEPORT_OTHER_TOKEN     token of another, non-admin user (permission checks)         (optional)
  SPACEPORT_DOCKER_SPACE    a second fresh owner/name, created with sdk "docker"        (optional)
  SPACEPORT_UPLOAD=1        also try upload_file on the static Space                     (optional)
  SPACEPORT_MODEL_DATASET=1 also create/delete a model and a dataset repo                (optional)
  SPACEPORT_BUILD_TIMEOUT   seconds to wait for the docker Space to settle (default 300)
  SPACEPORT_KEEP=1          do not delete the created repos at the end
  SPACEPORT_RUNNING_SPACE   owner/name of a RUNNING Space whose /env answers its environment as
                            JSON: the client's settings calls must show up inside its container (optional)
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import httpx2
import huggingface_hub
from huggingface_hub import HfApi
from huggingface_hub.errors import (
    BadRequestError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoUrl, SpaceInfo
from huggingface_hub._space_api import SpaceRuntime, SpaceStage
from huggingface_hub.utils import _http as hf_http

HTTP_TIMEOUT = 30.0  # seconds, for every single HTTP request the client makes
STAGES = {s.value for s in SpaceStage}


# --------------------------------------------------------------------------- harness

class Skip(Exception):
    pass


RESULTS: list[tuple[str, str, str]] = []


def check(name):
    def deco(fn):
        fn.check_name = name
        return fn
    return deco


def run(fn, *args):
    name = getattr(fn, "check_name", fn.__name__)
    t0 = time.monotonic()
    try:
        fn(*args)
    except Skip as e:
        RESULTS.append(("SKIP", name, str(e)))
        print(f"SKIP {name}: {e}", flush=True)
        return
    except Exception as e:  # noqa: BLE001 - a failed check, whatever the cause
        RESULTS.append(("FAIL", name, f"{type(e).__name__}: {e}"))
        print(f"FAIL {name}: {type(e).__name__}: {e}".replace("\n", " | "), flush=True)
        if os.environ.get("SPACEPORT_TRACEBACK"):
            traceback.print_exc()
        return
    RESULTS.append(("PASS", name, ""))
    print(f"PASS {name} ({time.monotonic() - t0:.1f}s)", flush=True)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_raises(exc_types, fn, *args, status=None, **kwargs):
    """Call fn; it must raise one of exc_types, with response.status_code in `status` if given."""
    try:
        fn(*args, **kwargs)
    except exc_types as e:
        code = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None:
            allowed = status if isinstance(status, (tuple, set, list)) else (status,)
            expect(code in allowed, f"expected HTTP {allowed}, got {code}: {e}")
        return e
    except HfHubHTTPError as e:
        raise AssertionError(
            f"expected {exc_types}, got {type(e).__name__} (HTTP {e.response.status_code}): {e}"
        ) from e
    raise AssertionError(f"expected {exc_types} to be raised, nothing was raised")


def with_deadline(seconds, fn, *args):
    """Run fn in a daemon thread; fail if it does not return within `seconds`."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise AssertionError(f"did not finish within {seconds}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def install_client_timeout():
    """The default huggingface_hub client has timeout=None: give every request a timeout."""

    def factory():
        client = hf_http.default_client_factory()
        client.timeout = httpx2.Timeout(HTTP_TIMEOUT)
        return client

    huggingface_hub.set_client_factory(factory)


def raw(method, url, token=None, body=None, raw_body=None, timeout=HTTP_TIMEOUT):
    """Plain urllib request: (status, headers, text). Never raises on HTTP errors."""
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------- context

class Ctx:
    def __init__(self):
        env = os.environ
        missing = [k for k in ("SPACEPORT_ENDPOINT", "SPACEPORT_TOKEN", "SPACEPORT_SPACE") if not env.get(k)]
        if missing:
            print(f"missing environment: {', '.join(missing)}", file=sys.stderr)
            sys.exit(2)
        self.endpoint = env["SPACEPORT_ENDPOINT"].rstrip("/")
        self.token = env["SPACEPORT_TOKEN"]
        self.space = env["SPACEPORT_SPACE"]
        self.owner = self.space.split("/")[0]
        self.other_token = env.get("SPACEPORT_OTHER_TOKEN") or None
        self.docker_space = env.get("SPACEPORT_DOCKER_SPACE") or None
        self.running_space = env.get("SPACEPORT_RUNNING_SPACE") or None
        self.build_timeout = float(env.get("SPACEPORT_BUILD_TIMEOUT", "300"))
        self.api = HfApi(endpoint=self.endpoint, token=self.token)
        self.other = HfApi(endpoint=self.endpoint, token=self.other_token) if self.other_token else None
        self.anon = HfApi(endpoint=self.endpoint, token=False)
        self.bad = HfApi(endpoint=self.endpoint, token="hf_spaceport_invalid_" + uuid.uuid4().hex)
        # Unique values, to grep for in every response body: they must never come back.
        self.secret_key = "SP_TEST_SECRET"
        self.secret_value = "s3cr3t-" + uuid.uuid4().hex
        self.var_key = "SP_TEST_VAR"
        self.var_value = "v-" + uuid.uuid4().hex[:12]
        self.private_space = f"{self.space}-priv"[:96]
        self.created: list[tuple[str, str]] = []  # (repo_id, repo_type) to delete at the end

    def need_other(self):
        if self.other is None:
            raise Skip("SPACEPORT_OTHER_TOKEN not set")
        return self.other

    def url(self, path):
        return f"{self.endpoint}{path}"


# --------------------------------------------------------------------------- checks

@check("whoami: name, type, orgs")
def t_whoami(c: Ctx):
    me = c.api.whoami()
    expect(isinstance(me, dict), f"whoami returned {type(me)}")
    expect(me.get("name") == c.owner, f"whoami name {me.get('name')!r} != Space owner {c.owner!r}")
    expect(me.get("type") == "user", f"whoami type {me.get('type')!r} != 'user'")
    expect(isinstance(me.get("orgs"), list), f"whoami orgs must be a list (the `hf auth whoami` CLI indexes it): {me.get('orgs')!r}")
    # get_full_repo_name relies on whoami()["name"]
    expect(c.api.get_full_repo_name("x") == f"{c.owner}/x", "get_full_repo_name")


@check("whoami: wrong token -> HfHubHTTPError 401")
def t_whoami_bad_token(c: Ctx):
    e = expect_raises(HfHubHTTPError, c.bad.whoami, status=401)
    expect("Invalid user token" in str(e), f"message: {e}")


@check("whoami: other user")
def t_whoami_other(c: Ctx):
    other = c.need_other()
    me = other.whoami()
    expect(me["name"] != c.owner, f"other token resolves to the same user {me['name']!r}")


@check("create_repo: no token -> 401")
def t_create_anon(c: Ctx):
    expect_raises(HfHubHTTPError, c.anon.create_repo, f"{c.owner}/never-{uuid.uuid4().hex[:8]}",
                  repo_type="space", space_sdk="static", status=401)


@check("create_repo(space, static): RepoUrl")
def t_create_static(c: Ctx):
    url = c.api.create_repo(c.space, repo_type="space", space_sdk="static", private=False)
    c.created.append((c.space, "space"))
    expect(isinstance(url, RepoUrl), f"got {type(url)}")
    expect(url.repo_id == c.space, f"repo_id {url.repo_id!r}")
    expect(url.repo_type == "space", f"repo_type {url.repo_type!r}")
    expect(url.namespace == c.owner, f"namespace {url.namespace!r}")
    parts = urlsplit(str(url))
    expect(parts.path.rstrip("/") == f"/spaces/{c.space}", f"url path {parts.path!r} (url {url})")
    expect(parts.hostname == urlsplit(c.endpoint).hostname, f"url host {parts.hostname!r} != endpoint host")


@check("create_repo again -> 409; exist_ok=True -> same RepoUrl")
def t_create_again(c: Ctx):
    e = expect_raises(HfHubHTTPError, c.api.create_repo, c.space, repo_type="space", space_sdk="static", status=409)
    expect(e.server_message, "409 without a server message (X-Error-Message or JSON error)")
    url = c.api.create_repo(c.space, repo_type="space", space_sdk="static", exist_ok=True)  # needs `url` in the 409 body
    expect(url.repo_id == c.space and url.repo_type == "space", f"exist_ok RepoUrl {url!r}")


@check("create_repo(space) without sdk / bad sdk: client-side ValueError")
def t_create_no_sdk(c: Ctx):
    expect_raises(ValueError, c.api.create_repo, f"{c.owner}/nosdk", repo_type="space")
    expect_raises(ValueError, c.api.create_repo, f"{c.owner}/badsdk", repo_type="space", space_sdk="php")


@check("create_repo in another user's namespace -> 403")
def t_create_foreign_ns(c: Ctx):
    other = c.need_other()
    expect_raises(HfHubHTTPError, other.create_repo, f"{c.owner}/intruder-{uuid.uuid4().hex[:8]}",
                  repo_type="space", space_sdk="static", status=403)


@check("create_repo(space, docker)")
def t_create_docker(c: Ctx):
    if not c.docker_space:
        raise Skip("SPACEPORT_DOCKER_SPACE not set")
    url = c.api.create_repo(c.docker_space, repo_type="space", space_sdk="docker")
    c.created.append((c.docker_space, "space"))
    expect(url.repo_id == c.docker_space and url.repo_type == "space", repr(url))
    expect(c.api.space_info(c.docker_space).sdk == "docker", "docker sdk not reported")


@check("create_repo(model) and (dataset), info, delete")
def t_model_dataset(c: Ctx):
    if os.environ.get("SPACEPORT_MODEL_DATASET") != "1":
        raise Skip("SPACEPORT_MODEL_DATASET!=1")
    for repo_type, prefix, info in (("model", "", c.api.model_info), ("dataset", "/datasets", c.api.dataset_info)):
        rid = f"{c.space}-{repo_type}"[:96]
        url = c.api.create_repo(rid, repo_type=repo_type, private=True)
        c.created.append((rid, repo_type))
        expect(url.repo_type == repo_type and url.repo_id == rid, repr(url))
        expect(urlsplit(str(url)).path.rstrip("/") == f"{prefix}/{rid}", f"url {url}")
        i = info(rid)
        expect(i.id == rid and i.private is True, f"{repo_type} info id={i.id} private={i.private}")
        expect(c.api.repo_exists(rid, repo_type=repo_type), "repo_exists False")
        c.api.delete_repo(rid, repo_type=repo_type)
        c.created.remove((rid, repo_type))
        expect(not c.api.repo_exists(rid, repo_type=repo_type), "still exists after delete")


@check("space_info: id, author, sdk, private, lastModified, runtime")
def t_space_info(c: Ctx):
    info = c.api.space_info(c.space)
    expect(isinstance(info, SpaceInfo), type(info))
    expect(info.id == c.space, f"id {info.id!r}")
    expect(info.author == c.owner, f"author {info.author!r}")
    expect(info.sdk == "static", f"sdk {info.sdk!r}")
    expect(info.private is False, f"private {info.private!r}")
    expect(info.last_modified is not None, "lastModified missing (or unparsable)")
    expect(info.runtime is None or info.runtime.stage in STAGES, f"runtime.stage {getattr(info.runtime, 'stage', None)!r}")
    expect(info.siblings is None or all(s.rfilename for s in info.siblings), "siblings without rfilename")
    # revision route: /api/spaces/{id}/revision/main
    rinfo = c.api.space_info(c.space, revision="main")
    expect(rinfo.id == c.space, f"revision=main id {rinfo.id!r}")


@check("space_info: unknown revision -> RevisionNotFoundError")
def t_space_info_bad_revision(c: Ctx):
    expect_raises(RevisionNotFoundError, c.api.space_info, c.space, revision="no-such-branch-" + uuid.uuid4().hex[:6],
                  status=404)


@check("repo_exists / repo_info(space)")
def t_repo_exists(c: Ctx):
    expect(c.api.repo_exists(c.space, repo_type="space") is True, "repo_exists(space) is not True")
    expect(c.api.repo_info(c.space, repo_type="space").id == c.space, "repo_info id")
    missing = f"{c.owner}/missing-{uuid.uuid4().hex[:8]}"
    # False requires a 404 carrying X-Error-Code: RepoNotFound (any other error propagates)
    expect(c.api.repo_exists(missing, repo_type="space") is False, "repo_exists(missing) is not False")


@check("unknown Space -> RepositoryNotFoundError on info/runtime/variables")
def t_unknown_space(c: Ctx):
    missing = f"{c.owner}/missing-{uuid.uuid4().hex[:8]}"
    e = expect_raises(RepositoryNotFoundError, c.api.space_info, missing, status=404)
    expect(e.repo_id == missing and e.repo_type == "space", f"error repo_id={e.repo_id} repo_type={e.repo_type}")
    expect_raises(RepositoryNotFoundError, c.api.get_space_runtime, missing, status=404)
    expect_raises(RepositoryNotFoundError, c.api.get_space_variables, missing, status=404)
    expect_raises(RepositoryNotFoundError, c.api.delete_repo, missing, repo_type="space", status=404)
    c.api.delete_repo(missing, repo_type="space", missing_ok=True)


@check("wrong token on a Space route -> 401")
def t_bad_token_space(c: Ctx):
    expect_raises(HfHubHTTPError, c.bad.get_space_runtime, c.space, status=401)
    expect_raises(HfHubHTTPError, c.bad.pause_space, c.space, status=401)


@check("get_space_runtime: stage, hardware, gcTimeout")
def t_runtime(c: Ctx):
    rt = c.api.get_space_runtime(c.space)
    expect(isinstance(rt, SpaceRuntime), type(rt))
    expect(rt.stage in STAGES, f"stage {rt.stage!r} not a SpaceStage")
    expect(rt.requested_hardware in (None, "cpu-basic") or isinstance(rt.requested_hardware, str),
           f"hardware.requested {rt.requested_hardware!r}")
    expect(rt.hardware is None or isinstance(rt.hardware, str), f"hardware.current {rt.hardware!r}")
    expect(rt.sleep_time is None or isinstance(rt.sleep_time, int), f"gcTimeout {rt.sleep_time!r}")
    expect(isinstance(rt.raw.get("hardware"), dict), f"raw hardware must be an object: {rt.raw.get('hardware')!r}")


@check("list_spaces_hardware: cpu-basic listed")
def t_hardware_list(c: Ctx):
    hw = c.api.list_spaces_hardware()
    names = [h.name for h in hw]
    expect("cpu-basic" in names, f"flavors {names}")
    for h in hw:
        expect(isinstance(h.pretty_name, str) and isinstance(h.cpu, str) and isinstance(h.ram, str), repr(h))


@check("add/get/delete_space_secret; value never readable")
def t_secrets(c: Ctx):
    r = c.api.add_space_secret(c.space, c.secret_key, c.secret_value, description="test secret")
    expect(r is None, f"add_space_secret returned {r!r}")
    secrets = c.api.get_space_secrets(c.space)
    expect(c.secret_key in secrets, f"secret key not listed: {list(secrets)}")
    s = secrets[c.secret_key]
    expect(s.description == "test secret", f"description {s.description!r}")
    expect(s.updated_at is not None, "updatedAt missing")
    expect(not hasattr(s, "value"), "SpaceSecret has a value?")
    # update in place (same key, new value) must work too
    c.api.add_space_secret(c.space, c.secret_key, c.secret_value, description="test secret v2")
    expect(c.api.get_space_secrets(c.space)[c.secret_key].description == "test secret v2", "secret upsert")


@check("add/get/delete_space_variable: value returned")
def t_variables(c: Ctx):
    out = c.api.add_space_variable(c.space, c.var_key, c.var_value, description="test var")
    expect(c.var_key in out and out[c.var_key].value == c.var_value, f"add returned {out}")
    got = c.api.get_space_variables(c.space)
    v = got.get(c.var_key)
    expect(v is not None, f"variable not listed: {list(got)}")
    expect(v.value == c.var_value, f"value {v.value!r}")
    expect(v.description == "test var", f"description {v.description!r}")
    expect(v.updated_at is not None, "updatedAt missing")
    expect(c.secret_key not in got, "the secret is listed among variables")
    out = c.api.add_space_variable(c.space, c.var_key, c.var_value + "-2")
    expect(out[c.var_key].value == c.var_value + "-2", "variable upsert")
    out = c.api.add_space_variable(c.space, "SP_TEST_VAR2", "two")
    out = c.api.delete_space_variable(c.space, "SP_TEST_VAR2")
    expect("SP_TEST_VAR2" not in out and c.var_key in out, f"delete returned {list(out)}")
    expect("SP_TEST_VAR2" not in c.api.get_space_variables(c.space), "deleted variable still listed")


@check("secret value absent from every response body (raw HTTP)")
def t_no_secret_leak(c: Ctx):
    paths = [
        f"/api/spaces/{c.space}",
        f"/api/spaces/{c.space}/runtime",
        f"/api/spaces/{c.space}/variables",
        f"/api/spaces/{c.space}/secrets",
        f"/api/spaces/{c.space}/revision/main",
        f"/api/spaces?author={c.owner}",
        f"/api/spaces?author={c.owner}&full=true",
    ]
    for p in paths:
        status, headers, text = raw("GET", c.url(p), token=c.token)
        expect(status == 200, f"GET {p} -> {status}: {text[:200]}")
        expect(c.secret_value not in text, f"secret value leaked in GET {p}")
        expect(all(c.secret_value not in v for v in headers.values()), f"secret value leaked in headers of {p}")
        json.loads(text)  # every one of them is JSON
    # and the write responses themselves
    status, _, text = raw("POST", c.url(f"/api/spaces/{c.space}/secrets"), token=c.token,
                          body={"key": c.secret_key, "value": c.secret_value})
    expect(status == 200, f"POST secrets -> {status}: {text[:200]}")
    expect(c.secret_value not in text, "secret value echoed by POST /secrets")


@check("delete_space_secret")
def t_delete_secret(c: Ctx):
    r = c.api.delete_space_secret(c.space, c.secret_key)
    expect(r is None, f"returned {r!r}")
    expect(c.secret_key not in c.api.get_space_secrets(c.space), "secret still listed after delete")
    c.api.delete_space_secret(c.space, "SP_NEVER_SET_" + uuid.uuid4().hex[:6].upper())  # idempotent


@check("set_space_sleep_time -> gcTimeout")
def t_sleep_time(c: Ctx):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the client warns for cpu-basic (HF does not honour it there)
        rt = c.api.set_space_sleep_time(c.space, 3600)
    expect(rt.stage in STAGES, f"stage {rt.stage!r}")
    expect(rt.sleep_time == 3600, f"gcTimeout {rt.sleep_time!r} != 3600")
    expect(c.api.get_space_runtime(c.space).sleep_time == 3600, "sleep time not persisted")


@check("request_space_hardware(cpu-basic); unknown flavor -> 400")
def t_hardware(c: Ctx):
    rt = c.api.request_space_hardware(c.space, "cpu-basic")
    expect(rt.stage in STAGES, f"stage {rt.stage!r}")
    expect(rt.requested_hardware == "cpu-basic", f"hardware.requested {rt.requested_hardware!r}")
    e = expect_raises(BadRequestError, c.api.request_space_hardware, c.space, "warp-drive-x9", status=400)
    expect(e.server_message, "400 without a server message")
    expect(c.api.get_space_runtime(c.space).requested_hardware == "cpu-basic", "bad request changed the hardware")


@check("pause_space -> PAUSED")
def t_pause(c: Ctx):
    rt = c.api.pause_space(c.space)
    expect(rt.stage == SpaceStage.PAUSED, f"pause returned stage {rt.stage!r}")
    expect(c.api.get_space_runtime(c.space).stage == "PAUSED", "runtime not PAUSED after pause")
    expect(c.api.space_info(c.space).runtime.stage == "PAUSED", "space_info.runtime not PAUSED")


@check("restart_space -> not PAUSED")
def t_restart(c: Ctx):
    rt = c.api.restart_space(c.space)
    expect(rt.stage in STAGES and rt.stage != "PAUSED", f"restart returned stage {rt.stage!r}")
    expect(c.api.get_space_runtime(c.space).stage != "PAUSED", "still PAUSED after restart")


@check("restart_space(factory_reboot=True)")
def t_factory(c: Ctx):
    rt = c.api.restart_space(c.space, factory_reboot=True)
    expect(rt.stage in STAGES and rt.stage != "PAUSED", f"stage {rt.stage!r}")
    status, _, text = raw("POST", c.url(f"/api/spaces/{c.space}/restart?factory=true"), token=c.token)
    expect(status == 200 and "stage" in json.loads(text), f"raw factory restart -> {status}: {text[:200]}")


def _collect_logs(api, repo_id, build, max_lines=200):
    lines = []
    for line in api.fetch_space_logs(repo_id, build=build):
        expect(isinstance(line, str), f"log line is {type(line)}")
        lines.append(line)
        if len(lines) >= max_lines:
            break
    return lines


@check("fetch_space_logs(build=True) and run logs end by themselves")
def t_logs(c: Ctx):
    if not hasattr(c.api, "fetch_space_logs"):
        raise Skip("this huggingface_hub has no fetch_space_logs")
    # no-follow mode: the client stops at 5 s of silence, at the first event newer than the
    # response's Date header + 1 s, or when the server closes the stream.
    build = with_deadline(60, _collect_logs, c.api, c.space, True)
    run_ = with_deadline(60, _collect_logs, c.api, c.space, False)
    print(f"     build log lines: {len(build)}, run log lines: {len(run_)}")
    # raw SSE shape: 200, text/event-stream, a Date header, only `data: {json}`/comment/blank lines
    req = urllib.request.Request(c.url(f"/api/spaces/{c.space}/logs/build"),
                                 headers={"Authorization": f"Bearer {c.token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        expect(r.status == 200, f"status {r.status}")
        expect(r.headers.get("Content-Type", "").startswith("text/event-stream"), f"content-type {r.headers.get('Content-Type')}")
        expect(r.headers.get("Date"), "no Date header (no-follow mode needs it)")
        deadline = time.monotonic() + 8
        n = 0
        try:
            while time.monotonic() < deadline and n < 50:
                line = r.readline()
                if not line:
                    break
                s = line.decode().rstrip("\r\n")
                if s.startswith("data: {"):
                    ev = json.loads(s[len("data: "):])
                    expect(isinstance(ev.get("data"), str), f"event without string `data`: {ev}")
                    ts = ev.get("timestamp")
                    if ts is not None:
                        huggingface_hub.utils.parse_datetime(ts)  # must be ...T..(.fff)Z
                    n += 1
                else:
                    expect(s == "" or s.startswith(":") or s in ("data:", "data: "), f"unexpected SSE line {s!r}")
        except TimeoutError:
            pass  # a live stream: fine, we only read what was there
    expect_raises(RepositoryNotFoundError, lambda: list(c.api.fetch_space_logs(f"{c.owner}/missing-{uuid.uuid4().hex[:6]}")),
                  status=404)


@check("list_spaces(author=owner) contains the Space")
def t_list(c: Ctx):
    found = [s for s in c.api.list_spaces(author=c.owner, limit=1000)]
    ids = [s.id for s in found]
    expect(c.space in ids, f"{c.space} not in {ids[:20]}")
    expect(all(s.id.split("/")[0] == c.owner for s in found), f"author filter not applied: {ids[:20]}")
    mine = next(s for s in found if s.id == c.space)
    expect(mine.sdk == "static", f"listed sdk {mine.sdk!r}")
    # search= is sent as a query param; the Space's name must match itself
    name = c.space.split("/")[1]
    expect(c.space in [s.id for s in c.api.list_spaces(search=name, limit=100)], "search=name does not find it")
    # pagination (Link: <absolute url>; rel="next") must not break iteration
    status, headers, _ = raw("GET", c.url(f"/api/spaces?author={c.owner}&limit=1"), token=c.token)
    link = headers.get("Link") or headers.get("link")
    if link:
        expect("rel=\"next\"" in link and "://" in link, f"Link header must be absolute with rel=\"next\": {link}")


@check("private Space: invisible to others (404 RepoNotFound)")
def t_private(c: Ctx):
    c.api.create_repo(c.private_space, repo_type="space", space_sdk="static", private=True)
    c.created.append((c.private_space, "space"))
    expect(c.api.space_info(c.private_space).private is True, "private flag not reported")
    expect_raises(RepositoryNotFoundError, c.anon.space_info, c.private_space, status=(401, 404))
    other = c.need_other()
    expect_raises(RepositoryNotFoundError, other.space_info, c.private_space, status=404)
    expect(other.repo_exists(c.private_space, repo_type="space") is False, "other user sees the private Space")
    expect(c.private_space not in [s.id for s in other.list_spaces(author=c.owner, limit=1000)],
           "private Space listed for another user")


@check("other user's token on our Space -> 403/404, nothing changes")
def t_other_user(c: Ctx):
    other = c.need_other()
    before = c.api.get_space_runtime(c.space)
    attempts = [
        ("add_space_secret", lambda: other.add_space_secret(c.space, "X_OTHER", "v")),
        ("delete_space_secret", lambda: other.delete_space_secret(c.space, "X_OTHER")),
        ("get_space_secrets", lambda: other.get_space_secrets(c.space)),
        ("add_space_variable", lambda: other.add_space_variable(c.space, "X_OTHER", "v")),
        ("delete_space_variable", lambda: other.delete_space_variable(c.space, c.var_key)),
        ("get_space_variables", lambda: other.get_space_variables(c.space)),
        ("request_space_hardware", lambda: other.request_space_hardware(c.space, "cpu-basic")),
        ("set_space_sleep_time", lambda: other.set_space_sleep_time(c.space, 60)),
        ("pause_space", lambda: other.pause_space(c.space)),
        ("restart_space", lambda: other.restart_space(c.space)),
        ("delete_repo", lambda: other.delete_repo(c.space, repo_type="space")),
    ]
    for name, fn in attempts:
        try:
            fn()
        except HfHubHTTPError as e:
            code = e.response.status_code
            expect(code in (403, 404), f"{name}: HTTP {code}, expected 403 or 404")
            continue
        raise AssertionError(f"{name} by another user succeeded")
    after = c.api.get_space_runtime(c.space)
    expect(after.stage != "PAUSED" or before.stage == "PAUSED", "other user paused the Space")
    expect(after.sleep_time == before.sleep_time, "other user changed the sleep time")
    expect(c.api.get_space_variables(c.space)[c.var_key].value == c.var_value + "-2", "other user changed a variable")
    expect("X_OTHER" not in c.api.get_space_secrets(c.space), "other user added a secret")
    expect(c.api.repo_exists(c.space, repo_type="space"), "other user deleted the Space")


@check("malformed JSON to /api/repos/create -> 400 with a message")
def t_malformed(c: Ctx):
    status, headers, text = raw("POST", c.url("/api/repos/create"), token=c.token, raw_body=b'{"name": "x", "type": ')
    expect(status == 400, f"status {status}: {text[:200]}")
    msg = headers.get("X-Error-Message") or headers.get("x-error-message")
    try:
        body = json.loads(text)
        msg = msg or body.get("error")
    except json.JSONDecodeError:
        raise AssertionError(f"400 body is not JSON: {text[:200]!r}")
    expect(isinstance(msg, str) and len(msg) >= 5, f"no clear message: headers={headers} body={text[:200]}")
    print(f"     message: {msg}")
    # wrong types (valid JSON) -> 400 too, and the client turns it into BadRequestError
    status, _, text = raw("POST", c.url("/api/repos/create"), token=c.token, body={"name": 42, "type": "space"})
    expect(status == 400, f"name=42 -> {status}: {text[:200]}")
    status, _, text = raw("POST", c.url("/api/repos/create"), token=c.token, body=[1, 2])
    expect(status == 400, f"array body -> {status}: {text[:200]}")


@check("upload_file to the static Space")
def t_upload(c: Ctx):
    if os.environ.get("SPACEPORT_UPLOAD") != "1":
        raise Skip("SPACEPORT_UPLOAD!=1 (the hub takes git push only)")
    html = f"<html><body>spaceport {uuid.uuid4().hex}</body></html>".encode()
    info = c.api.upload_file(path_or_fileobj=html, path_in_repo="index.html", repo_id=c.space, repo_type="space",
                             commit_message="test upload")
    expect(getattr(info, "oid", None), f"commit info {info!r}")
    files = [s.rfilename for s in (c.api.space_info(c.space).siblings or [])]
    expect("index.html" in files, f"siblings {files}")


@check("docker Space settles; its build log has lines")
def t_docker_logs(c: Ctx):
    if not c.docker_space:
        raise Skip("SPACEPORT_DOCKER_SPACE not set")
    deadline = time.monotonic() + c.build_timeout
    stage = None
    while time.monotonic() < deadline:
        stage = c.api.get_space_runtime(c.docker_space).stage
        expect(stage in STAGES, f"stage {stage!r}")
        if stage not in ("BUILDING", "RUNNING_BUILDING", "APP_STARTING", "RUNNING_APP_STARTING"):
            break
        time.sleep(2)
    print(f"     docker Space stage: {stage}")
    if stage == "NO_APP_FILE":
        raise Skip("docker Space has no Dockerfile pushed (git push first to test builds)")
    lines = with_deadline(60, _collect_logs, c.api, c.docker_space, True)
    expect(len(lines) > 0, "no build log lines")


@check("delete_repo: gone, then missing_ok")
def t_delete(c: Ctx):
    if os.environ.get("SPACEPORT_KEEP") == "1":
        raise Skip("SPACEPORT_KEEP=1")
    for rid, rtype in list(c.created):
        c.api.delete_repo(rid, repo_type=rtype)
        c.created.remove((rid, rtype))
        expect_raises(RepositoryNotFoundError, c.api.repo_info, rid, repo_type=rtype, status=404)
        expect(c.api.repo_exists(rid, repo_type=rtype) is False, f"{rid} still exists")
        c.api.delete_repo(rid, repo_type=rtype, missing_ok=True)
        expect_raises(RepositoryNotFoundError, c.api.delete_repo, rid, repo_type=rtype, status=404)


def _container_env(c: Ctx, space: str):
    """The Space container's environment, read through the hub's path route; None while it does not answer."""
    status, _, text = raw("GET", c.url(f"/apps/{space}/env"), token=c.token)
    if status != 200:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _wait_env(c: Ctx, space: str, want, what: str):
    deadline = time.monotonic() + c.build_timeout
    last = None
    while time.monotonic() < deadline:
        last = _container_env(c, space)
        if last is not None and want(last):
            return last
        time.sleep(1)
    raise AssertionError(f"the container never showed {what}; last env keys: {sorted(last or {})}")


@check("effects inside the running container: secret, variable, hardware, sleep time, pause, restart")
def t_effects(c: Ctx):
    if not c.running_space:
        raise Skip("SPACEPORT_RUNNING_SPACE not set")
    rs = c.running_space
    expect(c.api.get_space_runtime(rs).stage == "RUNNING", "the running Space runs")
    secret = "in-container-" + uuid.uuid4().hex[:10]
    c.api.add_space_secret(rs, "HF_E2E_SECRET", secret)
    c.api.add_space_variable(rs, "HF_E2E_VAR", "from-the-client")
    env = _wait_env(
        c, rs,
        lambda e: e.get("HF_E2E_SECRET") == secret and e.get("HF_E2E_VAR") == "from-the-client",
        "the secret and the variable",
    )
    expect(env.get("SPACE_ID") == rs, f"SPACE_ID is {env.get('SPACE_ID')}")
    rt = c.api.request_space_hardware(rs, "cpu-upgrade")
    expect(isinstance(rt, SpaceRuntime), "request_space_hardware returns a SpaceRuntime")
    expect(rt.requested_hardware == "cpu-upgrade", f"requested hardware {rt.requested_hardware}")
    _wait_env(c, rs, lambda e: e.get("CPU_CORES") == "8", "CPU_CORES=8 of cpu-upgrade")
    rt = c.api.set_space_sleep_time(rs, 7200)
    expect(rt.sleep_time == 7200, f"sleep time {rt.sleep_time}")
    rt = c.api.pause_space(rs)
    expect(rt.stage == "PAUSED", f"stage after pause {rt.stage}")
    expect(_container_env(c, rs) is None, "a paused Space does not answer")
    c.api.restart_space(rs)
    env = _wait_env(c, rs, lambda e: e.get("HF_E2E_VAR") == "from-the-client", "the variable after the restart")
    expect(c.api.get_space_runtime(rs).stage == "RUNNING", "running again after the restart")
    c.api.delete_space_variable(rs, "HF_E2E_VAR")
    _wait_env(c, rs, lambda e: "HF_E2E_VAR" not in e, "the variable gone")


def main() -> int:
    install_client_timeout()
    c = Ctx()
    print(f"huggingface_hub {huggingface_hub.__version__} -> {c.endpoint}, space {c.space}", flush=True)
    checks = [
        t_whoami, t_whoami_bad_token, t_whoami_other,
        t_create_anon, t_create_static, t_create_again, t_create_no_sdk, t_create_foreign_ns, t_create_docker,
        t_model_dataset,
        t_space_info, t_space_info_bad_revision, t_repo_exists, t_unknown_space, t_bad_token_space,
        t_runtime, t_hardware_list,
        t_secrets, t_variables, t_no_secret_leak, t_delete_secret,
        t_sleep_time, t_hardware, t_pause, t_restart, t_factory,
        t_logs, t_list, t_private, t_other_user, t_malformed, t_upload, t_docker_logs, t_effects,
        t_delete,
    ]
    for fn in checks:
        run(fn, c)
    if os.environ.get("SPACEPORT_KEEP") != "1":  # best-effort cleanup after failures
        for rid, rtype in c.created:
            try:
                c.api.delete_repo(rid, repo_type=rtype, missing_ok=True)
            except Exception as e:  # noqa: BLE001
                print(f"cleanup of {rid} failed: {e}")
    counts = {k: sum(1 for r in RESULTS if r[0] == k) for k in ("PASS", "FAIL", "SKIP")}
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
