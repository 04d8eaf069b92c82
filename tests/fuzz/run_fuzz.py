"""Long fuzz runs (hours), outside pytest.

    python -m tests.fuzz.run_fuzz inproc TARGET [--time S] [--workdir DIR] [-- LIBFUZZER...]
    python -m tests.fuzz.run_fuzz e2e [--minutes M] [--seed N] [--workdir DIR]
    python -m tests.fuzz.run_fuzz list

``inproc`` runs one of tests/fuzz/targets.py under atheris (coverage-guided libFuzzer, in
this process, over the sans-IO code: framing scanners, startup packets, frontend messages,
the statement rewrite, custom commands, parser and router), seeded from the corpus. atheris
is an optional extra (`pip install -e .[fuzz]`); its corpus and crashes go to the work dir
(default /tmp/pgcat-fuzz/TARGET), never to tests/fuzz/corpus. A crash file replays with
``python -m tests.fuzz.run_fuzz inproc TARGET -- CRASH_FILE``.

``e2e`` starts a PostgreSQL topology and a proxy (as the CI test does) and replays random
mutations of the corpus against it until the time is up, judging each session like
tests/fuzz/test_fuzz_frontend.py; every session with a problem is saved in the work dir
(``finding-N.bin`` the stream, ``finding-N.txt`` the case and the problems) and the run goes
on (a dead proxy is restarted). A summary line every minute; the final checks at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "pgcat-fuzz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run_fuzz")
    sub = parser.add_subparsers(dest="command", required=True)
    inproc = sub.add_parser("inproc", help="one in-process target under atheris")
    inproc.add_argument("target")
    inproc.add_argument("--time", type=int, default=3600, help="seconds (default 3600)")
    inproc.add_argument("--workdir", type=Path, default=None)
    inproc.add_argument("libfuzzer", nargs="*", help="after --: libFuzzer arguments / files")
    e2e = sub.add_parser("e2e", help="mutated sessions against a real proxy")
    e2e.add_argument("--minutes", type=float, default=60.0)
    e2e.add_argument("--seed", type=int, default=None)
    e2e.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "e2e")
    sub.add_parser("list", help="the in-process targets")
    args = parser.parse_args(argv)
    if args.command == "inproc":
        return run_inproc(args.target, args.time, args.workdir, args.libfuzzer)
    if args.command == "e2e":
        return run_e2e(args.minutes, args.seed, args.workdir)
    from .targets import TARGETS
    print("\n".join(TARGETS))
    return 0


# --- in process, coverage-guided ------------------------------------------------------------
def run_inproc(target: str, seconds: int, workdir: Path | None, extra: list[str]) -> int:
    try:
        import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]' (or pip install atheris)",
              file=sys.stderr)
        return 2
    # Instrument our code before anything imports it (tests.fuzz.* imports pgcat_py).
    with atheris.instrument_imports(include=["pgcat_py", "parser", "sharding", "tests.fuzz"]):
        from .conftest import load_corpus
        from .targets import TARGETS, seeds
    if target not in TARGETS:
        print(f"unknown target {target!r}; one of: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    workdir = workdir or DEFAULT_WORKDIR / target
    corpus_dir = workdir / "corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds(target, load_corpus())):
        (corpus_dir / f"seed-{index}").write_bytes(seed)
    files = [arg for arg in extra if not arg.startswith("-")]
    flags = [arg for arg in extra if arg.startswith("-")]
    if files:  # replay given inputs (a crash) instead of fuzzing
        argv = [sys.argv[0], *flags, *files]
    else:
        argv = [sys.argv[0], f"-max_total_time={seconds}", f"-artifact_prefix={workdir}/",
                "-max_len=65536", *flags, str(corpus_dir)]
    atheris.Setup(argv, TARGETS[target])
    atheris.Fuzz()
    return 0


# --- against a real proxy -------------------------------------------------------------------
def run_e2e(minutes: float, seed: int | None, workdir: Path) -> int:
    from pgcat_py.localpg import create_topology, free_port
    from tests.harness.proxy import start_proxy

    from .capture import PASSWORDS, TABLE_SQL
    from .conftest import fuzz_config, load_corpus
    from .observe import Observer, rss
    from .replay import ENDS, MODES, Replayer
    from .stream import draw_mutation, mutate

    seed = random.randrange(1 << 32) if seed is None else seed
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}; findings in {workdir}", flush=True)
    corpus = load_corpus()
    names, donors = sorted(corpus), [corpus[name] for name in sorted(corpus)]
    base = Path(tempfile.mkdtemp(prefix="pgcat-fuzz-pg-"))
    base.chmod(0o755)
    topology = create_topology(base, replicas=1, shards=0)
    findings = 0
    try:
        import psycopg
        with psycopg.connect(topology.primary.superuser_dsn("app"), autocommit=True) as conn:
            conn.execute(TABLE_SQL)
        topology.wait_for_replicas()
        proxy = start_proxy(fuzz_config(topology, free_port()), workdir / "proxy")
        observer = Observer.connect(proxy, topology)
        replayer = Replayer(proxy.host, proxy.port, PASSWORDS)
        deadline = time.monotonic() + minutes * 60
        next_report = time.monotonic() + 60
        sessions = warm_at = 0  # all sessions; the baseline is taken 200 after a (re)start
        while time.monotonic() < deadline:
            sessions += 1
            name = rng.choice(names)
            mutations = tuple(draw_mutation(rng.randint, len(donors))
                              for _ in range(rng.randint(1, 4)))
            mode, end, cut_seed = rng.choice(MODES), rng.choice(ENDS), rng.randrange(1 << 16)
            case = {"name": name, "mutations": [repr(m) for m in mutations], "mode": mode,
                    "end": end, "cut_seed": cut_seed}
            stream = mutate(corpus[name], mutations, donors)
            outcome = replayer.replay(stream, mode, end, cut_seed)
            problems = observer.after_session(case, outcome)
            if problems:
                findings += 1
                (workdir / f"finding-{findings}.bin").write_bytes(stream)
                (workdir / f"finding-{findings}.txt").write_text(
                    json.dumps(case, indent=1) + "\n" + "\n".join(problems) + "\n")
                print(f"finding {findings}: {problems[0][:200]}", flush=True)
                if not proxy.is_running() or observer.busy(1):
                    observer.close()
                    proxy.stop()
                    proxy = start_proxy(fuzz_config(topology, free_port()), workdir / "proxy")
                    observer = Observer.connect(proxy, topology)
                    replayer = Replayer(proxy.host, proxy.port, PASSWORDS)
                    warm_at = sessions
                    observer.settle(1)  # a new proxy's pools look up their catalog first
            if sessions - warm_at == 200:
                observer.warm_rss = rss(proxy.pid)
            if time.monotonic() > next_report:
                next_report += 60
                print(f"{sessions} sessions, {findings} findings, "
                      f"proxy RSS {rss(proxy.pid) >> 20} MB", flush=True)
        final = observer.after_all()
        for problem in final:
            print(f"final check: {problem}", flush=True)
        observer.admin.close()
        proxy.stop()
        print(f"done: {sessions} sessions, {findings} findings, "
              f"{len(final)} final problems", flush=True)
        return 1 if findings or final else 0
    finally:
        topology.stop()
        import shutil
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
