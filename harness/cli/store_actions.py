"""The actions of ``harness store`` (its flags are in ``harness/cli/store.py``, which imports this module only when
a store action runs: ``harness --help`` needs no SQLAlchemy)."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.errors import HarnessError, StoreError, UsageError
from harness.results.schema import RESULTS_FILE, RunResult, load_results
from harness.results.store import (
    ResultsStore,
    RunRow,
    default_store_url,
    display_url,
    engine_url,
    sqlite_path,
)
from harness.run.response_cache import sqlite_damaged


def run_action(args: argparse.Namespace) -> int:
    """The ``harness store`` action ``args`` names."""
    handlers = {"list": cmd_list, "check": cmd_check, "clean": cmd_clean, "rebuild": cmd_rebuild}
    return handlers[args.store_command](args)


def _url(args: argparse.Namespace) -> str:
    return args.store or default_store_url(Path(args.output_dir))


def _open_existing(url: str) -> ResultsStore:
    """The store at ``url``, upgraded if older; a SQLite file that does not exist is an error, not created."""
    path = sqlite_path(engine_url(url))
    if path is not None and not path.is_file():
        raise StoreError(f"no results store at {path}: record a run first (python -m harness run ...) "
                         "or pass --store URL / --output-dir DIR")  # fmt: skip
    return ResultsStore(url)


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _owner(row: RunRow) -> str:
    if not row.hostname:
        return "-"
    return f"{row.hostname}:{row.pid}" if row.pid is not None else row.hostname


def cmd_list(args: argparse.Namespace) -> int:
    store = _open_existing(_url(args))
    try:
        rows = store.runs(with_results=False)
        tasks = store.task_names()
        stale = {s.id: s for s in store.stale_runs()}
    finally:
        store.close()
    if args.status:
        rows = [r for r in rows if r.status == args.status]
    if args.json:
        payload = [
            {"run_id": r.id, "status": r.status, "stale": r.id in stale,
             "stale_reason": stale[r.id].reason if r.id in stale else None, "created": _time(r.created),
             "updated": _time(r.updated), "model": r.model_name, "tasks": tasks.get(r.id, []),
             "host": r.hostname, "pid": r.pid, "run_dir": r.run_dir}
            for r in rows
        ]  # fmt: skip
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    table = [("run", "status", "created (UTC)", "updated (UTC)", "model", "tasks", "host:pid", "run directory")]
    for r in rows:
        status = f"{r.status} (stale)" if r.id in stale else r.status
        table.append((r.id, status, _time(r.created), _time(r.updated), r.model_name,
                      ",".join(tasks.get(r.id, [])) or "-", _owner(r), r.run_dir or "-"))  # fmt: skip
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1])
    print(f"{len(rows)} run(s) in {display_url(_url(args))}"
          + (f"; {len(stale)} stale: `python -m harness store clean` settles them" if stale else ""))  # fmt: skip
    return 0


def find_run_dirs(folders: Sequence[Path]) -> list[Path]:
    """Every folder holding a results.json under ``folders`` (not looking inside a run directory)."""
    found: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"--runs: {folder} is not a folder")
        for here, subdirs, files in os.walk(folder):
            if RESULTS_FILE in files:
                found.append(Path(here))
                subdirs.clear()
            else:
                subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    return found


@dataclass
class _Found:
    """The run directories under some folders, read."""

    results: dict[str, tuple[Path, RunResult, float]] = field(default_factory=dict)  # id -> dir, result, mtime
    unreadable: list[str] = field(default_factory=list)  # messages naming the file
    duplicates: list[str] = field(default_factory=list)


def _read_run_dirs(folders: Sequence[Path]) -> _Found:
    found = _Found()
    for run_dir in find_run_dirs(folders):
        try:
            result = load_results(run_dir)
            mtime = (run_dir / RESULTS_FILE).stat().st_mtime
        except (HarnessError, OSError) as exc:
            found.unreadable.append(str(exc))
            continue
        earlier = found.results.get(result.run_id)
        if earlier is not None:
            keep, drop = (run_dir, earlier[0]) if mtime >= earlier[2] else (earlier[0], run_dir)
            found.duplicates.append(f"run {result.run_id} is in {keep} and {drop}: the store keeps {keep} "
                                    "(written last)")  # fmt: skip
            if keep != run_dir:
                continue
        found.results[result.run_id] = (run_dir, result, mtime)
    return found


def _folders(args: argparse.Namespace) -> list[Path]:
    return [Path(d) for d in (args.runs or [args.output_dir])]


def cmd_check(args: argparse.Namespace) -> int:
    url, folders = _url(args), _folders(args)
    store = _open_existing(url)
    try:
        rows = store.runs()
        unreadable_rows = [f"{r.id}: {problem}" for r in rows if (problem := store.row_problem(r)) is not None]
        stale = store.stale_runs(timedelta(hours=args.older_than))
    finally:
        store.close()
    found = _read_run_dirs(folders)
    ids = {r.id for r in rows}
    no_row = sorted(str(d) for run_id, (d, _, _) in found.results.items() if run_id not in ids)
    gone = [f"{r.id}: {r.run_dir or '(no run directory recorded)'}" for r in rows
            if not r.run_dir or not (Path(r.run_dir) / RESULTS_FILE).is_file()]  # fmt: skip
    where = ", ".join(str(f) for f in folders)
    rebuild = f"python -m harness store rebuild --store {display_url(url)} --runs {' '.join(map(str, folders))}"
    sections = [
        (f"run directories under {where} with no store row (`{rebuild}` adds them)", no_row),
        ("store rows whose run directory is gone on this machine (compare and the leaderboard cannot read their "
         "samples; `python -m harness store clean` leaves them)", gone),
        (f"store rows whose stored results.json is unreadable (`{rebuild}` re-records them)", unreadable_rows),
        ("stale `running` rows (`python -m harness store clean` settles them)",
         [f"{s.id}: {s.reason}" for s in stale]),
        ("unreadable run directories (left out of a rebuild)", found.unreadable),
        ("run ids found in more than one run directory", found.duplicates),
    ]  # fmt: skip
    problems = 0
    for title, items in sections:
        if items:
            problems += len(items)
            print(f"{title}:")
            for item in items:
                print(f"  {item}")
    if problems:
        print(f"{problems} problem(s) in {display_url(url)} and the run directories under {where}")
        return 1
    print(f"{display_url(url)} and the run directories under {where} agree: {len(rows)} run(s)")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    url = _url(args)
    store = _open_existing(url)
    try:
        stale = store.stale_runs(timedelta(hours=args.older_than))
        if not stale:
            print(f"no stale running rows in {display_url(url)}")
            return 0
        if args.dry_run:
            verb = "remove" if args.remove else "settle"
            for s in stale:
                print(f"would {verb} {s.id}: {s.reason}")
            return 0
        if args.remove:
            removed = store.remove_runs(s.id for s in stale)
            for s in stale:
                print(f"removed {s.id} ({s.reason}); its run directory stays: {s.run_dir or '-'}")
            print(f"removed {removed} stale row(s) from {display_url(url)}")
            return 0
        done = store.close_stale_runs(stale)
    finally:
        store.close()
    for s, status in done:
        print(f"marked {s.id} {status}: {s.reason}")
    print(f"settled {len(done)} stale row(s) in {display_url(url)}")
    return 0


def sqlite_damage(path: Path) -> str | None:
    """Why the SQLite file at ``path`` is damaged (SQLite's own words), or None when it reads back whole."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error as exc:
        return str(exc) if sqlite_damaged(exc) else None
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return str(exc) if sqlite_damaged(exc) else None
    finally:
        conn.close()
    return None if problems == ["ok"] else "; ".join(problems[:3])


def move_aside(path: Path, tag: str) -> Path:
    """Rename ``path`` (and its -wal / -shm files) to ``<path>.<tag>-<UTC time>``; returns the new path."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{tag}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{tag}-{stamp}-{n}")
    try:
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
        path.rename(target)
    except OSError as exc:
        raise StoreError(f"cannot move the damaged store {path} aside ({exc}): move it yourself and run "
                         "`python -m harness store rebuild` again") from None  # fmt: skip
    return target


def cmd_rebuild(args: argparse.Namespace) -> int:
    url, folders = _url(args), _folders(args)
    found = _read_run_dirs(folders)
    path = sqlite_path(engine_url(url))
    if path is not None and path.is_file():
        reason = sqlite_damage(path)
        if reason is not None:
            moved = move_aside(path, "corrupt")
            print(f"moved the damaged store {path} ({reason}) aside to {moved}")
    store = ResultsStore(url)
    try:
        for run_dir, result, mtime in sorted(found.results.values(), key=lambda item: item[1].created):
            updated = datetime.fromtimestamp(mtime, UTC).replace(tzinfo=None)
            store.record(result, run_dir, owned=False, updated=updated)
        rows = store.runs(with_results=False)
    finally:
        store.close()
    for message in found.unreadable:
        print(f"warning: left out {message}", file=sys.stderr)
    for message in found.duplicates:
        print(f"warning: {message}", file=sys.stderr)
    where = ", ".join(str(f) for f in folders)
    print(f"re-imported {len(found.results)} run(s) from {where} into {display_url(url)}; it holds {len(rows)} "
          "run(s)" + (f"; left out {len(found.unreadable)} unreadable run directory(ies)" if found.unreadable else ""))
    running = [r.id for r in rows if r.status == "running" and r.pid is None]
    if running:
        print(f"{len(running)} run(s) are recorded `running` by an unknown process: when none of them is still "
              "going, `python -m harness store clean --older-than 0` marks them interrupted")  # fmt: skip
    return 0
