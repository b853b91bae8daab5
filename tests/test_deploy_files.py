"""The deployment examples (config/deploy/ and its README.md) hold together: the YAML parses, the
Kubernetes Indexed Job splits into as many shards as it says, every secret the job file names
comes from the Secret, and every bulksync command line in them is one the CLI takes.

A command or option the CLI does not have on this branch yet (`--shard`, `state migrate`,
issue 19's other parts) is left out of the check and listed, never faked: once it exists, the
same test checks it in full.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bulksync.app._runs_merge import parse_since
from bulksync.app.cli import _parser
from bulksync.app.config import load_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "config" / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
SYSTEMD = DEPLOY / "systemd"
JOB = DEPLOY / "job.toml"
DOC = DEPLOY / "README.md"
SOME_TIME = "2026-12-04T01:00:00Z"


def yaml_module() -> Any:
    try:
        import yaml
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("PyYAML is missing: it is in the test extra")
        pytest.skip("PyYAML is not installed (pip install -e '.[test]'); CI fails instead")
    return yaml


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml_module().safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert docs and all(isinstance(d, dict) for d in docs), path
    return docs


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object of deploy/kubernetes, by ``Kind/name``."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_docs(path):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def shard_count(args: list[str]) -> int:
    value = args[args.index("--shard") + 1]
    match = re.fullmatch(r"(.+)/(\d+)", value)
    assert match, value
    return int(match.group(2))


def test_every_yaml_file_parses() -> None:
    paths = [*K8S.glob("*.yaml"), COMPOSE]
    assert len(paths) >= 5
    for path in paths:
        yaml_docs(path)


def test_the_configmap_holds_the_job_file_as_it_is() -> None:
    config_map = manifests()["ConfigMap/bulksync-job"]
    assert config_map["data"]["job.toml"] == JOB.read_text(encoding="utf-8")


def test_the_indexed_job_runs_one_shard_per_completion_index() -> None:
    job = manifests()["Job/bulksync-sync"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    args = container(job)["args"]
    assert args[:3] == ["run", "--config", "/etc/bulksync/job.toml"]
    n = shard_count(args)
    assert spec["completions"] == spec["parallelism"] == n
    assert args[args.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{n}"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # what podFailurePolicy requires
    names = {c["name"] for c in pod["containers"]}
    for rule in spec["podFailurePolicy"]["rules"]:
        if "onExitCodes" in rule:
            assert rule["onExitCodes"]["containerName"] in names
    codes = [
        c
        for r in spec["podFailurePolicy"]["rules"]
        for c in r.get("onExitCodes", {}).get("values", [])
    ]
    assert sorted(codes) == [1, 2, 3, 5, 6]  # 4 and 130 are retried (config/deploy/README.md)


def secret_variables() -> set[str]:
    """The environment variables the job file names for its secrets."""
    raw = tomllib.loads(JOB.read_text(encoding="utf-8"))
    names = set()
    for table in raw.values():
        if isinstance(table, dict):
            names |= {v for k, v in table.items() if k.endswith("_env") and isinstance(v, str)}
    assert {"QUABLE_TOKEN", "BULKSYNC_PG_DSN", "BULKSYNC_REDIS_URL"} <= names
    return names


def test_every_secret_the_job_names_comes_from_the_secret_never_a_value() -> None:
    wanted = secret_variables()
    jobs = {k: v for k, v in manifests().items() if k.startswith("Job/")}
    sync_env = container(jobs["Job/bulksync-sync"])["env"]
    assert {e["name"] for e in sync_env} == wanted
    for name, job in jobs.items():
        for entry in container(job).get("env", []):
            if entry["name"] in wanted:
                ref = entry["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "bulksync-secrets" and ref["key"], (name, entry)
                assert "value" not in entry, (name, entry)
    migrate_env = {e["name"] for e in container(jobs["Job/bulksync-migrate"])["env"]}
    assert "BULKSYNC_PG_DSN" in migrate_env
    compose = yaml_docs(COMPOSE)[0]
    for service in ("migrate", "shard-0", "merge"):
        given = compose["services"][service]["environment"]
        assert wanted <= set(given), service
        # Compose takes the secrets from the caller's environment, never written here.
        for name in ("QUABLE_TOKEN", "BULKSYNC_PG_DSN"):
            assert "${" in given[name], (service, name)


def test_the_compose_file_runs_every_shard_once() -> None:
    services = yaml_docs(COMPOSE)[0]["services"]
    shards = [s["command"] for name, s in services.items() if name.startswith("shard-")]
    n = shard_count(shards[0])
    assert sorted(cmd[cmd.index("--shard") + 1] for cmd in shards) == [f"{i}/{n}" for i in range(n)]
    assert {"redis", "postgres", "migrate", "merge"} <= set(services)
    for name in services:
        if name.startswith("shard-"):
            assert services[name]["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            )


def systemd_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys keep case
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `bulksync`) of every bulksync command in the deployment files."""
    found: list[tuple[str, list[str]]] = []
    for name, job in manifests().items():
        if name.startswith("Job/"):
            found.append((name, list(container(job)["args"])))
    for name, service in yaml_docs(COMPOSE)[0]["services"].items():
        if "command" in service and service.get("build"):
            found.append((f"compose {name}", list(service["command"])))
    for path in sorted(SYSTEMD.glob("*.service")):
        unit = systemd_unit(path)
        for key in ("ExecStartPre", "ExecStart"):
            if unit.has_option("Service", key):
                found.append((f"{path.name} {key}", shlex.split(unit.get("Service", key))))
    # The guide's shell blocks, and the commands in the job file's comments.
    blocks = re.findall(r"(?ms)^```sh\n(.*?)^```", DOC.read_text(encoding="utf-8"))
    comments = [line.lstrip("# ") for line in JOB.read_text().splitlines() if line.startswith("#")]
    for where, lines in ((DOC.name, "\n".join(blocks).splitlines()), (JOB.name, comments)):
        for line in lines:
            if line.startswith("bulksync ") and not line.startswith("bulksync runs merge RUN"):
                found.append((where, shlex.split(line, comments=True)))
    return found


def concrete(argv: list[str]) -> list[str]:
    """The line as it runs: the values Kubernetes, compose, systemd or sh fill in."""
    if argv[:2] == ["/bin/sh", "-c"]:
        argv = shlex.split(argv[2].removeprefix("exec "))
    argv = argv[1:] if argv and argv[0].endswith("bulksync") else argv
    out = []
    for arg in argv:
        arg = arg.replace("$(JOB_COMPLETION_INDEX)", "0").replace("%i", "0")
        arg = re.sub(r"\$\{MERGE_SINCE:-([^}]*)\}", r"\1", arg)
        arg = arg.replace("$(MERGE_SINCE)", SOME_TIME)
        arg = re.sub(r"\$\(date -u \+[^)]*\)", SOME_TIME, arg)
        out.append(arg)
    return out


def known_today(argv: list[str]) -> tuple[list[str] | None, str | None]:
    """``argv`` as far as this branch's CLI has its commands and options, and what was left
    out of it (None when nothing)."""
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a.choices, dict)).choices
    assert commands is not None
    if argv[0] not in commands:
        return None, f"the `{argv[0]}` command"
    if argv[0] == "run" and "--shard" in argv and "--shard" not in commands["run"].format_help():
        at = argv.index("--shard")
        return argv[:at] + argv[at + 2 :], "run --shard"
    return argv, None


def test_every_command_line_is_one_the_cli_takes(capsys: pytest.CaptureFixture[str]) -> None:
    lines = command_lines()
    places = {where.split()[0] for where, _ in lines}
    assert {"Job/bulksync-sync", "Job/bulksync-merge", "compose", DOC.name} <= places
    assert any(argv[:2] == ["runs", "merge"] for _, argv in lines)
    pending: set[str] = set()
    for where, raw in lines:
        argv, left_out = known_today(concrete(raw))
        if left_out is not None:
            pending.add(left_out)
        if argv is None:
            continue
        try:
            args = _parser().parse_args(argv)
        except SystemExit:
            pytest.fail(
                f"{where}: `bulksync {shlex.join(argv)}` is refused: {capsys.readouterr().err}"
            )
        if getattr(args, "since", None) is not None:
            parse_since(args.since)  # a time `runs merge --since` reads
    # Said, not hidden: what this branch cannot check yet.
    print(f"left out until the CLI has them: {sorted(pending)}")


def test_the_job_file_loads_as_far_as_this_branch_knows_its_keys(tmp_path: Path) -> None:
    """The job file's tables are the config's; [budget] and [state] backend are read in full
    once the config has them."""
    from bulksync.app.config import Config, StateConfig

    text = JOB.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    assert raw["budget"]["backend"] == "redis" and raw["budget"]["key"]
    assert raw["state"] == {"backend": "postgres", "dsn_env": "BULKSYNC_PG_DSN"}
    if "budget" not in Config.model_fields:
        text = re.sub(r"(?ms)^\[budget\]\n.*?(?=^\[)", "", text)
    if "backend" not in StateConfig.model_fields:
        text = re.sub(r"(?m)^(backend|dsn_env) = .*\n", "", text)
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.target.kind == "quable"
    assert config.output.runs_dir == Path("/var/lib/bulksync/runs")


def test_the_manifests_validate_against_kubernetes_schemas() -> None:
    """Where the (large) `kubernetes-validate` package is installed: not a test dependency."""
    validator = pytest.importorskip("kubernetes_validate")
    for version in ("1.29.0", validator.latest_version()):
        for doc in manifests().values():
            validator.validate(doc, version, strict=True)  # raises, naming the field


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The bulksync of this interpreter (its venv's bin), whether or not the venv is on PATH.
    beside = Path(sys.executable).parent / "bulksync"
    ours = str(beside) if beside.exists() else shutil.which("bulksync")
    assert ours is not None, "no bulksync script: pip install -e ."
    units = []
    for path in sorted(SYSTEMD.iterdir()):
        name = path.name.replace("@.", "@2.")  # a template is verified as an instance
        text = path.read_text(encoding="utf-8").replace("/opt/bulksync/bin/bulksync", ours)
        (tmp_path / name).write_text(text, encoding="utf-8")
        units.append(str(tmp_path / name))
    done = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_readme_links_the_guide_and_its_links_hold() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "config/deploy/README.md" in readme
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", DOC.read_text(encoding="utf-8")):
        assert (DOC.parent / target).exists(), target
