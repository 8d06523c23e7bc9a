"""Run LangGraph's own tests plainly and routed through subiso's in-process tiers; compare.

    python tests/langgraph_routed/run.py [--tiers plain,inline,context,thread,subinterpreter]
        [--files all|core|test_pregel.py,...] [--version X] [--jobs N] [--out DIR] [--check]

Fetches the source distribution of the installed langgraph version (``pip download --no-deps
--no-binary :all: langgraph==X``: LangGraph ships its tests/ in it), unpacks it under
``--cache``, and runs the chosen test files once per tier with ``-p subiso_routing`` (see
``subiso_routing.py``), each run's per-test outcomes in ``OUT/<tier>.json``. Then prints, per
tier, how many tests pass, and lists every test that passes plainly but not routed. With
``--check`` it exits 1 if any of those is not in ``allowed_failures.toml`` (or an allowed
failure now passes: the list must shrink with the fixes), 0 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TIERS = ("plain", "inline", "context", "thread", "subinterpreter")
#: The four files issue 19 measured first; ``--files all`` (the default) runs every test file.
CORE = ("test_pregel.py", "test_pregel_async.py", "test_interruption.py", "test_messages_state.py")
#: LangGraph's test dependencies beyond subiso's own (conftest imports redis and
#: pytest_mock; snapshots need syrupy; the AES checkpointer pycryptodome).
TEST_DEPS = ("pytest-mock", "syrupy", "redis", "pycryptodome", "anyio", "pytest-xdist")


def fetch(version: str, cache: Path) -> Path:
    """The unpacked sdist of langgraph ``version`` (downloaded once into ``cache``)."""
    root = cache / f"langgraph-{version}"
    if (root / "tests" / "conftest.py").exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
         ":all:", "--dest", str(cache), f"langgraph=={version}"],
        check=True,
    )  # fmt: skip
    archive = cache / f"langgraph-{version}.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    return root


def run_tier(
    tier: str, root: Path, files: list[str], out: Path, jobs: int, timeout: float, extra: list[str]
) -> tuple[dict[str, Any], float]:
    report = out / f"{tier}.json"
    command = [
        sys.executable, "-m", "pytest", *(f"tests/{f}" for f in files or [""]),
        "-p", "subiso_routing", f"--subiso-tier={tier}", f"--subiso-report={report}",
        # an interpreter per test would cost ~0.2 s x 2,000 tests
        f"--subiso-scope={'module' if tier == 'subinterpreter' else 'test'}",
        "-p", "no:cacheprovider", "-q", "--no-header", "-rN", f"--timeout={timeout:g}",
        # with workers, a test that hangs past its timeout ends its worker (pytest-xdist
        # reports it and starts another) instead of the run: no hang can stall CI
        *(["-n", str(jobs), "--timeout-method=thread", "--max-worker-restart=1000"]
          if jobs > 1 else ["-p", "no:xdist"]),
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "NO_DOCKER": "true",  # LangGraph's Postgres/Redis fixtures expect docker services
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    start = time.monotonic()
    print(f"== {tier}: {' '.join(command[3:])}", flush=True)
    proc = subprocess.run(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"   {tail[0]} ({took:.0f}s)", flush=True)
    if not report.exists():
        print(proc.stdout[-5000:])
        raise SystemExit(f"the {tier} run wrote no report (pytest exit {proc.returncode})")
    return json.loads(report.read_text())["tests"], took


def load_allowed() -> list[dict[str, Any]]:
    import tomllib

    with open(HERE / "allowed_failures.toml", "rb") as f:
        return list(tomllib.load(f).get("allowed", []))


def allowed_entry(allowed: list[dict[str, Any]], nodeid: str, tier: str) -> dict[str, Any] | None:
    """The allowed_failures.toml entry covering ``nodeid`` on ``tier``, if any."""
    for entry in allowed:
        tiers = entry.get("tiers", list(TIERS[1:]))
        if tier in tiers and any(fnmatch.fnmatchcase(nodeid, p) for p in entry["tests"]):
            return entry
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", default=",".join(TIERS))
    parser.add_argument(
        "--files", default="all", help="comma list of LangGraph test files, 'core' or 'all'"
    )
    parser.add_argument("--version", default=importlib.metadata.version("langgraph"))
    parser.add_argument("--cache", default=os.environ.get("SUBISO_LANGGRAPH_CACHE", ".langgraph"))
    parser.add_argument("--out", default=None, help="reports directory (default: CACHE/results)")
    parser.add_argument("--jobs", type=int, default=1, help="pytest-xdist workers per run")
    parser.add_argument("--timeout", type=float, default=120, help="per test (pytest-timeout)")
    parser.add_argument("--check", action="store_true", help="fail on unexplained differences")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)

    tiers = [t for t in args.tiers.split(",") if t]
    if "plain" not in tiers:
        tiers.insert(0, "plain")
    cache = Path(args.cache).resolve()
    out = Path(args.out).resolve() if args.out else cache / "results"
    out.mkdir(parents=True, exist_ok=True)
    root = fetch(args.version, cache)
    named = {"all": [], "core": list(CORE)}
    files = named[args.files] if args.files in named else args.files.split(",")

    results: dict[str, dict[str, Any]] = {}
    took: dict[str, float] = {}
    for tier in tiers:
        results[tier], took[tier] = run_tier(
            tier, root, files, out, args.jobs, args.timeout, args.pytest_args
        )
    title = f"langgraph {args.version}, Python {sys.version.split()[0]}, files: {args.files}"
    table, problems = summarise(results, took, load_allowed())
    (out / "summary.md").write_text(f"{title}\n\n{table}\n", encoding="utf-8")
    print(f"\n{title}\n{table}")
    for line in problems:
        print(f"UNEXPLAINED {line}")
    return 1 if (problems and args.check) else 0


def summarise(
    results: dict[str, dict[str, Any]], took: dict[str, float], allowed: list[dict[str, Any]]
) -> tuple[str, list[str]]:
    """A Markdown table of the tiers' counts, and every difference the allowed list does not
    explain: a test passing plainly that fails routed, or a listed one that passes now."""
    passing = {n for n, r in results["plain"].items() if r["outcome"] == "passed"}
    lines = [
        "| tier | passed | tests | pass plainly, fail routed | of which allowed | "
        "tests with a call run plainly | s |",
        "|---|---|---|---|---|---|---|",
    ]
    problems: list[str] = []
    for tier, got in results.items():
        ok = {n for n, r in got.items() if r["outcome"] == "passed"}
        lost = sorted(passing - ok)
        entries = {n: allowed_entry(allowed, n, tier) for n in lost} if tier != "plain" else {}
        partly = sum(1 for r in got.values() if r.get("unrouted"))
        lines.append(
            f"| {tier} | {len(ok)} | {len(got)} | {len(lost) if tier != 'plain' else '-'} | "
            f"{sum(1 for e in entries.values() if e) if tier != 'plain' else '-'} | "
            f"{partly if tier != 'plain' else '-'} | {took[tier]:.0f} |"
        )
        for nodeid, entry in entries.items():
            if entry is None:
                crash = got.get(nodeid, {}).get("crash", got.get(nodeid, {}).get("outcome"))
                problems.append(f"{tier}: {nodeid}: {crash}")
        for nodeid in sorted(ok & passing) if tier != "plain" else ():
            entry = allowed_entry(allowed, nodeid, tier)
            if entry is not None and not entry.get("flaky") and _exactly(entry, nodeid):
                problems.append(f"{tier}: {nodeid} passes now: remove it from the allowed list")
    return "\n".join(lines), problems


def _exactly(entry: dict[str, Any], nodeid: str) -> bool:
    """``entry`` names ``nodeid`` by a pattern without wildcards (not one covering variants
    that may still fail)."""
    return any(
        fnmatch.fnmatchcase(nodeid, p) and not any(c in p for c in "*?") for p in entry["tests"]
    )


if __name__ == "__main__":
    sys.exit(main())
