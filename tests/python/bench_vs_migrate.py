"""Benchmark: Ferry against daf_butler_migrate on identical copies of one real repository.

Issue 12, item 6. Run by the interpreter of a virtual environment that holds both the
real lsst-daf-butler (the pins of tests/python/requirements.txt) and daf_butler_migrate
(`pip install` of its source tree, which is GPL and never part of this repository);
docs/BENCHMARKS.md, "Ferry against daf_butler_migrate", says how to make it.

  run   (the default) for each backend: make ONE repository with the real daf_butler
        holding N registry-only datasets, copy it twice (SQLite: the file; PostgreSQL:
        pg_dump of its schema restored under two names), then
          copy A: butler migrate stamp REPO; butler migrate upgrade REPO REV
          copy B: ferry adopt;               ferry upgrade TARGET
        each command a process of its own under /usr/bin/time (wall clock from start
        to exit, start-up included; peak RSS), then open both results with daf_butler
        and check them: universe (or datasets manager version) reached, dataset count
        unchanged, and the two sides' dimension records equal. Prints a table with the
        ratio Ferry / daf_butler_migrate; exit 1 when a check fails.
  make  (internal) make the repository; run calls it in a process of its own so that
        the driver stays small.

Steps (--step):
  dimensions  universe 5 -> 7 (daf_butler_migrate dimensions-config 352c30854bb0,
              Ferry daf_butler-universe-7). Instruments HSC, LSSTCam and LATISS, with
              exposures over many observing days and groups, so that 5 -> 6 builds the
              day_obs and group tables. daf_butler_migrate imports each instrument's
              class for its day_obs offset; obs packages are not on PyPI, so the peer
              runs with tests/python/peer_instruments/ on PYTHONPATH (stand-ins that
              carry only that offset, the same one Ferry's plugins give).
  datasets    datasets manager ByDimensionsDatasetRecordStorageManagerUUID 1.0.0 ->
              2.0.0 (daf_butler_migrate 4e2d7a28475b, Ferry
              daf_butler-datasets-uuid-2.0.0); the repository is made at universe 7
              with the manager's schema_version 1.0.0 in the registry configuration.
              When Ferry has no such step yet, its side prints "Ferry lacks this step"
              and the peer's figures are still reported.

Usage:
  python bench_vs_migrate.py [run] --n N [--step dimensions|datasets]
      [--backend sqlite|postgres|both] [--ferry PATH] [--repo DIR] [--pg URL]
      [--work DIR] [--keep]

Environment: DAF_BUTLER_MIGRATE_DIR (the peer's source tree; required),
FERRY_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from butler_tool import psycopg2_url, record, universe_file  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DATASETS_MANAGER = "lsst.daf.butler.registry.datasets.byDimensions.ByDimensionsDatasetRecordStorageManagerUUID"

# What each step starts from and where each tool takes it.
STEPS = {
    "dimensions": dict(universe=5, datasets_version=None, peer_revision="352c30854bb0",
                       ferry_target="daf_butler-universe-7", expect="universe 7"),
    "datasets": dict(universe=7, datasets_version="1.0.0", peer_revision="4e2d7a28475b",
                     ferry_target="daf_butler-datasets-uuid-2.0.0", expect="datasets 2.0.0"),
}

# Instruments: (name, class, detectors, physical filter, band). The classes are the
# real ones' names (peer_instruments/ stands in for them on the peer's side).
INSTRUMENTS = [
    ("HSC", "lsst.obs.subaru.HyperSuprimeCam", 20, "HSC-R", "r"),
    ("LSSTCam", "lsst.obs.lsst.LsstCam", 20, "r_57", "r"),
    ("LATISS", "lsst.obs.lsst.Latiss", 1, "SDSSr_65mm~empty", "r"),
]
DAY_OFFSET_HOURS = {"HSC": 0, "LSSTCam": 12, "LATISS": 12}
# Observation types cycled over the exposures (6 -> 7 sets can_see_sky from them).
OBSERVATION_TYPES = ["science", "bias", "dark", "flat", "focus", "domeflat", "science", "object"]
EXPOSURES_PER_DAY = 50


# --- make -------------------------------------------------------------------------


def day_obs_of(index: int) -> int:
    """The observing day of an instrument's exposure number `index`: 50 per day from
    2024-01-01 on, as YYYYMMDD."""
    import datetime

    day = datetime.date(2024, 1, 1) + datetime.timedelta(days=index // EXPOSURES_PER_DAY)
    return day.year * 10000 + day.month * 100 + day.day


def make(args) -> None:
    from astropy.time import Time, TimeDelta
    from lsst.daf.butler import Butler, Config, DatasetType, Timespan

    step = STEPS[args.step]
    config = Config()
    if args.pg:
        import sqlalchemy

        engine = sqlalchemy.create_engine(psycopg2_url(args.pg))
        with engine.begin() as c:
            c.execute(sqlalchemy.text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
            c.execute(sqlalchemy.text(f'CREATE SCHEMA IF NOT EXISTS "{args.schema}"'))
        engine.dispose()
        config["registry", "db"] = psycopg2_url(args.pg)
        config["registry", "namespace"] = args.schema
    if step["datasets_version"]:
        config["registry", "managers", "datasets"] = {
            "cls": DATASETS_MANAGER, "schema_version": step["datasets_version"]}
    Butler.makeRepo(args.root, config=config, dimensionConfig=universe_file(step["universe"]))
    butler = Butler.from_config(args.root, writeable=True)
    registry = butler.registry
    universe = registry.dimensions

    def insert(element_name: str, rows: list[dict]) -> None:
        if element_name not in universe.elements.names or not rows:
            return
        element = universe[element_name]
        if element.has_own_table:
            registry.insertDimensionData(element_name, *[record(element, r) for r in rows])

    # Exposures per instrument: the fewest that hold N datasets, one raw per detector of
    # every instrument plus a calexp per detector for the 3 in 8 exposures that are
    # visits (HSC and LSSTCam); the last run is cut at N.
    def capacity(exposures: int) -> int:
        visits = sum(1 for i in range(exposures) if OBSERVATION_TYPES[i % len(OBSERVATION_TYPES)] in ("science", "object"))
        return sum(d * exposures + (0 if n == "LATISS" else d * visits) for n, _c, d, _f, _b in INSTRUMENTS)

    exposures = 8
    while capacity(exposures) < args.n:
        exposures += max(1, (args.n - capacity(exposures)) // 60)

    visits_of: dict[str, list[int]] = {}
    for name, cls, detectors, physical_filter, band in INSTRUMENTS:
        offset = TimeDelta(DAY_OFFSET_HOURS[name] * 3600, format="sec")
        insert("instrument", [dict(name=name, class_name=cls, detector_max=detectors + 100,
                                   visit_max=2**30, exposure_max=2**30, visit_system=1)])
        insert("band", [dict(name=band)])
        insert("physical_filter", [dict(instrument=name, name=physical_filter, band=band)])
        insert("detector", [dict(instrument=name, id=d, full_name=f"{name}_{d:03d}",
                                 name_in_raft=f"S{d:02d}", raft="R00", purpose="SCIENCE")
                            for d in range(detectors)])
        insert("visit_system", [dict(instrument=name, id=0, name="one-to-one")])
        rows, visits, definitions, memberships, days, groups = [], [], [], [], set(), set()
        for i in range(exposures):
            day = day_obs_of(i)
            days.add(day)
            exp_id = day * 100000 + i % EXPOSURES_PER_DAY
            y, m, d = day // 10000, day // 100 % 100, day % 100
            begin = Time(f"{y:04d}-{m:02d}-{d:02d}T{i % 10:02d}:00:00", scale="tai") + offset
            span = Timespan(begin, begin + TimeDelta(30, format="sec"))
            group = f"{name}-{day}-{(i % EXPOSURES_PER_DAY) // 2}"
            groups.add(group)
            obs_type = OBSERVATION_TYPES[i % len(OBSERVATION_TYPES)]
            rows.append(dict(
                instrument=name, id=exp_id, obs_id=f"{name}_{exp_id}", physical_filter=physical_filter,
                day_obs=day, seq_num=i % EXPOSURES_PER_DAY, seq_start=i, seq_end=i, group_name=group,
                group_id=i // 2, group=group, observation_type=obs_type, observation_reason="bench",
                exposure_time=30.0, dark_time=30.0, target_name=f"field{i % 3}",
                science_program="ferry-bench", tracking_ra=10.0, tracking_dec=-5.0, sky_angle=0.0,
                zenith_angle=30.0, azimuth=120.0, has_simulated=False, timespan=span))
            if obs_type in ("science", "object") and name != "LATISS":
                visits.append(dict(
                    instrument=name, id=exp_id, name=f"visit {exp_id}", physical_filter=physical_filter,
                    day_obs=day, seq_num=i % EXPOSURES_PER_DAY, exposure_time=30.0,
                    target_name=f"field{i % 3}", observation_reason="bench",
                    science_program="ferry-bench", zenith_angle=30.0, azimuth=120.0, visit_system=0,
                    timespan=span))
                definitions.append(dict(instrument=name, exposure=exp_id, visit=exp_id, visit_system=0))
                memberships.append(dict(instrument=name, visit=exp_id, visit_system=0))
        # At universe 5 day_obs and group are not tables yet (insert skips them); at 7
        # they must exist before the exposures that refer to them.
        insert("day_obs", [dict(instrument=name, id=day, timespan=Timespan(
            Time(f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}T00:00:00", scale="tai") + offset,
            Time(f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}T00:00:00", scale="tai") + offset
            + TimeDelta(86400, format="sec"))) for day in sorted(days)])
        insert("group", [dict(instrument=name, name=g) for g in sorted(groups)])
        insert("exposure", rows)
        insert("visit", visits)
        insert("visit_definition", definitions)
        insert("visit_system_membership", memberships)
        visits_of[name] = [v["id"] for v in visits]

    raw = DatasetType("raw", ("instrument", "exposure", "detector"), "Exposure", universe=universe)
    calexp = DatasetType("calexp", ("instrument", "visit", "detector"), "ExposureF", universe=universe)
    for t in (raw, calexp):
        registry.registerDatasetType(t)
    made = 0
    for name, _cls, detectors, _f, _b in INSTRUMENTS:
        run = f"{name}/raw/all"
        registry.registerRun(run)
        ids = [r.id for r in registry.queryDimensionRecords("exposure", instrument=name)]
        data_ids = [dict(instrument=name, exposure=e, detector=d) for e in ids for d in range(detectors)]
        data_ids = data_ids[: args.n - made]
        for k in range(0, len(data_ids), 50000):
            registry.insertDatasets(raw, data_ids[k:k + 50000], run=run)
        made += len(data_ids)
    for name, _cls, detectors, _f, _b in INSTRUMENTS:
        if name == "LATISS" or made >= args.n:
            continue
        run = f"{name}/runs/w_00"
        registry.registerRun(run)
        data_ids = [dict(instrument=name, visit=v, detector=d) for v in visits_of[name] for d in range(detectors)]
        data_ids = data_ids[: args.n - made]
        for k in range(0, len(data_ids), 50000):
            registry.insertDatasets(calexp, data_ids[k:k + 50000], run=run)
        made += len(data_ids)
    if made != args.n:
        raise SystemExit(f"bench_vs_migrate: made {made} datasets, not {args.n}")
    json.dump({"universe": universe.version, "datasets": made, "exposures": exposures * len(INSTRUMENTS)},
              sys.stdout)
    print()


# --- inspect (a result, with the real daf_butler) ----------------------------------


def inspect(args) -> None:
    """Prints what daf_butler sees in a repository as JSON: universe, datasets manager
    version, dataset count, and a digest of the dimension records both tools write."""
    import hashlib

    from lsst.daf.butler import Butler, CollectionType

    butler = Butler.from_config(args.root, writeable=False)
    registry = butler.registry
    universe = registry.dimensions
    runs = list(registry.queryCollections(collectionTypes={CollectionType.RUN}))
    count = 0
    for dataset_type in registry.queryDatasetTypes():
        count += registry.queryDatasets(dataset_type, collections=runs, findFirst=False).count(exact=True)
    records = {}
    for element in ("instrument", "exposure", "day_obs", "group"):
        if element not in universe.elements.names:
            continue
        rows = sorted(json.dumps({k: str(v) for k, v in r.toDict().items()}, sort_keys=True)
                      for r in registry.queryDimensionRecords(element))
        records[element] = {"rows": len(rows),
                            "sha256": hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]}
    versions = {}
    for name, value in butler._registry._managers.attributes.items():
        if name.startswith("version:") and "datasets" in name:
            versions[name.split(".")[-1]] = value
    json.dump({"universe": universe.version, "datasets": count, "records": records,
               "datasets_manager": versions}, sys.stdout, sort_keys=True)
    print()


# --- run --------------------------------------------------------------------------


class Repo:
    """One copy of the benchmark's repository: a butler root, and for PostgreSQL the
    schema it lives in."""

    def __init__(self, root: str, pg: str | None = None, schema: str | None = None):
        self.root, self.pg, self.schema = root, pg, schema

    def ferry_url(self) -> str:
        if self.pg:
            sep = "&" if "?" in self.pg else "?"
            return f"{self.pg}{sep}schema={self.schema}"
        return f"sqlite:{os.path.join(self.root, 'gen3.sqlite3')}"

    def copy(self, label: str) -> "Repo":
        root = self.root + "-" + label
        shutil.copytree(self.root, root)
        if not self.pg:
            return Repo(root)
        schema = f"{self.schema}_{label}"
        clone_schema(self.pg, self.schema, schema)
        path = os.path.join(root, "butler.yaml")
        with open(path) as f:
            text = f.read()
        if f"namespace: {self.schema}\n" not in text:
            raise SystemExit(f"bench_vs_migrate: {path} does not name schema {self.schema}")
        with open(path, "w") as f:
            f.write(text.replace(f"namespace: {self.schema}\n", f"namespace: {schema}\n"))
        return Repo(root, self.pg, schema)


# psql without the NOTICE lines of DROP ... CASCADE.
QUIET_PG = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL, env=QUIET_PG)


def clone_schema(url: str, source: str, target: str) -> None:
    """Copies schema `source` to `target` (pg_dump of the schema, restored after moving
    the original aside; sequences, keys and indexes come along)."""
    dump = subprocess.run(["pg_dump", "--no-owner", "-n", source, url], check=True,
                          capture_output=True).stdout
    psql(url, f'ALTER SCHEMA "{source}" RENAME TO "{target}"')
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url], input=dump, check=True,
                   stdout=subprocess.DEVNULL, env=QUIET_PG)
    # The restored copy is named `source`; swap the names so that the original keeps it.
    psql(url, f'ALTER SCHEMA "{source}" RENAME TO "{target}_tmp"; '
              f'ALTER SCHEMA "{target}" RENAME TO "{source}"; '
              f'ALTER SCHEMA "{target}_tmp" RENAME TO "{target}"')
    # A restored schema has no planner statistics; a long-lived repository has them.
    # Both copies get the same ANALYZE before either tool runs.
    analyze = (f"SELECT format('ANALYZE %I.%I', schemaname, tablename) FROM pg_tables "
               f"WHERE schemaname = '{target}' \\gexec")
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url], input=analyze.encode(), check=True,
                   stdout=subprocess.DEVNULL, env=QUIET_PG)


def timed(argv: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Runs argv under /usr/bin/time: wall seconds (start to exit, measured here), peak
    RSS in MB and CPU seconds of the process (from time, which forks it fresh, so the
    driver's own size does not leak into ru_maxrss), exit status and output."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        start = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%M %U %S", *argv],
                           env=env, cwd=cwd, capture_output=True, text=True)
        wall = time.monotonic() - start
        fields = t.read().strip().splitlines()[-1].split()
    return {"wall": wall, "rss_mb": int(fields[0]) / 1024, "cpu": float(fields[1]) + float(fields[2]),
            "status": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "argv": argv}


def fail(what: str, r: dict) -> None:
    raise SystemExit(f"bench_vs_migrate: {what} failed (exit {r['status']}): {' '.join(r['argv'])}\n"
                     f"{r['stdout'][-3000:]}\n{r['stderr'][-3000:]}")


def peer_side(repo: Repo, step: dict) -> list[tuple[str, dict]]:
    butler = os.path.join(os.path.dirname(sys.executable), "butler")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(HERE, "peer_instruments"),
                                                    env.get("PYTHONPATH")) if p)
    out = []
    for name, argv in (("stamp", [butler, "migrate", "stamp", repo.root]),
                       ("upgrade", [butler, "migrate", "upgrade", repo.root, step["peer_revision"]])):
        r = timed(argv, env=env)
        if r["status"] != 0:
            fail(f"daf_butler_migrate {name}", r)
        out.append((name, r))
    return out


LACKS = ("not one Ferry can adopt", "no revision", "unknown revision", "matches no revision")


def ferry_side(repo: Repo, step: dict, ferry: str, checkout: str) -> list[tuple[str, dict]] | str:
    """Ferry's figures, or (in datasets mode) the line saying Ferry lacks the step."""
    env = {k: v for k, v in os.environ.items() if k not in ("FERRY_PATH", "FERRY_DB")}
    out = []
    for name, args in (("adopt", ["adopt"]),
                       ("upgrade", ["--progress", "json", "upgrade", step["ferry_target"]])):
        r = timed([ferry, "--db", repo.ferry_url(), *args], env=env, cwd=checkout)
        if r["status"] != 0:
            said = (r["stderr"].strip() or r["stdout"].strip()).splitlines()
            if step is STEPS["datasets"] and any(s in r["stderr"] + r["stdout"] for s in LACKS):
                return f"Ferry lacks this step: ferry {name} said: {said[0] if said else '?'}"
            fail(f"ferry {name}", r)
        out.append((name, r))
    return out


def revision_times(progress: str) -> list[tuple[str, float]]:
    """Per-revision seconds from `ferry --progress json` lines on stderr
    (revision_finished events)."""
    times = []
    for line in progress.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "revision_finished":
            times.append((str(event.get("revision")), event.get("duration_ms", 0) / 1000))
    return times


def inspect_repo(repo: Repo) -> dict:
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "inspect", "--root", repo.root],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench_vs_migrate: daf_butler cannot open {repo.root}:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def reached(found: dict, step_name: str) -> bool:
    if step_name == "dimensions":
        return found["universe"] == 7
    return list(found["datasets_manager"].values()) == ["2.0.0"]


def bench_backend(backend: str, args, work: str) -> bool:
    step = STEPS[args.step]
    root = os.path.join(work, f"{backend}-repo")
    make_argv = [sys.executable, os.path.abspath(__file__), "make", "--root", root, "--n", str(args.n),
                 "--step", args.step]
    pg, schema = None, None
    if backend == "postgres":
        pg, schema = args.pg, f"vs_migrate_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        make_argv += ["--pg", pg, "--schema", schema]
    started = time.monotonic()
    p = subprocess.run(make_argv, capture_output=True, text=True)
    if p.returncode != 0:
        if pg:
            psql(pg, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        raise SystemExit(f"bench_vs_migrate: making the repository failed:\n{p.stderr[-3000:]}")
    made = json.loads(p.stdout.strip().splitlines()[-1])
    original = Repo(root, pg, schema)
    schemas = [schema] if pg else []
    try:
        a, b = original.copy("peer"), original.copy("ferry")
        schemas += [a.schema, b.schema] if pg else []
        print(f"[{backend}] made {made['datasets']} datasets, {made['exposures']} exposures at "
              f"universe {made['universe']} in {time.monotonic() - started:.0f} s; copies made", flush=True)
        before = inspect_repo(original)
        peer = peer_side(a, step)
        ferry = ferry_side(b, step, args.ferry, args.repo)
        ok = report(backend, args, step, before, a, peer, b, ferry)
    finally:
        if pg and not args.keep:
            for s in schemas:
                psql(pg, f'DROP SCHEMA IF EXISTS "{s}" CASCADE')
    return ok


def report(backend, args, step, before, a, peer, b, ferry) -> bool:
    ok = True
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n[{backend}] N = {args.n:,}, step {args.step} ({step['expect']}); load average now {load}")
    print(f"  {'tool':<20} {'command':<10} {'wall s':>9} {'cpu s':>8} {'peak RSS MB':>12}")
    sides = [("daf_butler_migrate", peer)] + ([("ferry", ferry)] if isinstance(ferry, list) else [])
    totals = {}
    for tool, runs in sides:
        for name, r in runs:
            print(f"  {tool:<20} {name:<10} {r['wall']:>9.2f} {r['cpu']:>8.2f} {r['rss_mb']:>12.1f}")
        totals[tool] = (sum(r["wall"] for _n, r in runs), dict(runs)["upgrade"]["wall"],
                        max(r["rss_mb"] for _n, r in runs))
    if isinstance(ferry, str):
        print(f"  ferry: {ferry}")
    else:
        pw, pu, prss = totals["daf_butler_migrate"]
        fw, fu, frss = totals["ferry"]
        print(f"  ratio ferry / daf_butler_migrate: total {fw / pw:.3f} ({fw:.2f} s / {pw:.2f} s), "
              f"upgrade alone {fu / pu:.3f}, peak RSS {frss:.1f} MB / {prss:.1f} MB "
              f"(goal: total <= 0.33)")
        for revision, seconds in revision_times(dict(ferry)["upgrade"]["stderr"]):
            print(f"    ferry revision {revision}: {seconds:.2f} s")
    results = [("daf_butler_migrate", a)] + ([("ferry", b)] if isinstance(ferry, list) else [])
    found = {}
    for tool, repo in results:
        found[tool] = inspect_repo(repo)
        f = found[tool]
        good = reached(f, args.step) and f["datasets"] == before["datasets"]
        ok &= good
        print(f"  check {tool}: daf_butler opens it, universe {f['universe']}, datasets manager "
              f"{f['datasets_manager']}, {f['datasets']:,} datasets (before: {before['datasets']:,}) "
              f"{'ok' if good else 'WRONG'}")
    if len(found) == 2:
        same = found["ferry"]["records"] == found["daf_butler_migrate"]["records"]
        ok &= same
        print(f"  check: dimension records (instrument, exposure, day_obs, group) "
              f"{'identical on both sides' if same else 'DIFFER: ' + json.dumps(found)}")
    return ok


def run(args) -> None:
    if not os.environ.get("DAF_BUTLER_MIGRATE_DIR"):
        raise SystemExit("bench_vs_migrate: set DAF_BUTLER_MIGRATE_DIR to daf_butler_migrate's source tree")
    if not os.path.exists(args.ferry):
        raise SystemExit(f"bench_vs_migrate: no ferry binary at {args.ferry} (cargo build --release --bins)")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    work = tempfile.mkdtemp(prefix="vs_migrate_", dir=args.work)
    ok = True
    try:
        for backend in backends:
            ok &= bench_backend(backend, args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


def main() -> None:
    checkout = os.path.dirname(os.path.dirname(HERE))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    for name in ("run", "make"):
        s = sub.add_parser(name)
        s.add_argument("--n", type=int, default=20000, help="datasets in the repository")
        s.add_argument("--step", choices=sorted(STEPS), default="dimensions")
        if name == "run":
            s.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
            s.add_argument("--ferry", default=os.path.join(checkout, "target", "release", "ferry"))
            s.add_argument("--repo", default=checkout, help="the checkout whose scripts/ and plugins/ Ferry runs")
            s.add_argument("--pg", default=os.environ.get("FERRY_BENCH_PG_URL", DEFAULT_PG))
            s.add_argument("--work", default=None, help="folder for the repositories (default: system temp)")
            s.add_argument("--keep", action="store_true", help="keep repositories and schemas")
        else:
            s.add_argument("--root", required=True)
            s.add_argument("--pg")
            s.add_argument("--schema")
    i = sub.add_parser("inspect")
    i.add_argument("--root", required=True)
    argv = sys.argv[1:]
    if not argv or argv[0] not in ("run", "make", "inspect", "-h", "--help"):
        argv = ["run", *argv]
    args = p.parse_args(argv)
    {"run": run, "make": make, "inspect": inspect}[args.command](args)


if __name__ == "__main__":
    main()
