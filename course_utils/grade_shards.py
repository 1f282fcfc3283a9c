"""Grade a class in shards (a Slurm or Kubernetes job array), then merge the shards into one output folder.

    course-grade SOURCE SUBMISSION... --out DIR_K --shard K/N     # job K of N grades its slice of the class
    course-grade merge DIR_1 ... DIR_N --out DIR                  # one grades.csv, feedback/, results/, report.html

**Which shard grades a student.** Every job lists the whole class (the same SOURCE and SUBMISSION arguments, so
the same student names, made unique exactly as in a single run) and keeps the students whose name hashes to its
shard: the first 8 bytes of ``sha256(name)``, read as a big-endian number, ``mod N + 1``. The slice depends on
the name only, never on the listing order, the machine or a process id, so N jobs on N machines grade every
student exactly once.

**What a shard leaves for the merge.** Besides its grades.csv, feedback/ and results/, a shard writes
``DIR/shards/<worksheet>.json``: K, N, SOURCE's sha256, the number of students in the class and a digest of
their names, and the students of its slice. ``merge`` copies every result into the output folder and rebuilds
the reports from them (``grade_feedback.write_reports``), so the output is what one run over the whole class writes.
It refuses, saying why: results of different SOURCEs (a worksheet graded against two versions of the solution),
folders that hold different worksheets, a student graded in two folders, shards of different classes, a
missing shard (``shard(s) 2/3 missing``), a shard whose run did not finish (a student without a result), and
shards whose students together are not the class they listed (sliced by two versions of the grader).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

MANIFESTS = "shards"        # DIR/shards/<worksheet>.json


class MergeError(Exception):
    """Shards that cannot be merged (different SOURCEs, overlapping students, a missing shard): exit code 2."""


# ------------------------------------------------------------------ choosing a shard's students
def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N), with 1 <= K <= N; else ValueError with a message that says what to write."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: write K/N, e.g. --shard 2/8 for the second of 8 shards") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard {text!r}: K must be between 1 and N (1 <= K <= N), e.g. --shard 1/{max(n, 1)}")
    return k, n


def shard_of(student: str, n: int) -> int:
    """The shard (1..n) that grades ``student``: a hash of the name alone, the same on every machine."""
    digest = hashlib.sha256(student.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def class_digest(students: list[str]) -> str:
    """A fingerprint of the whole class (every shard of one class computes the same)."""
    return hashlib.sha256("\n".join(sorted(students)).encode("utf-8")).hexdigest()


def select(subs: list, shard: tuple[int, int]) -> list:
    """The submissions (objects with a ``student``) of shard ``(K, N)``."""
    k, n = shard
    return [s for s in subs if shard_of(s.student, n) == k]


def write_manifest(out: Path, *, worksheet: str, source_sha256: str, shard: tuple[int, int], everyone: list[str],
                   mine: list[str], grader_sha256: str | None = None, limits: dict | None = None) -> None:
    """DIR/shards/<worksheet>.json: what ``merge`` needs to know that the shards belong together and are all there
    (and were graded by the same ``course_utils``, under the same limits: the last run's)."""
    from .grade_feedback import safe_name, write_atomic
    k, n = shard
    path = Path(out) / MANIFESTS / f"{safe_name(worksheet)}.json"
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = None
    if isinstance(before, dict) and (before.get("shard"), before.get("shards")) != (k, n):
        raise ValueError(f"--out {out} already holds shard {before.get('shard')}/{before.get('shards')} of "
                         f"{worksheet}: give each shard its own --out (merge reads one shard per folder)")
    manifest = {"worksheet": worksheet, "source_sha256": source_sha256, "shard": k, "shards": n,
                "class_size": len(everyone), "class_sha256": class_digest(everyone), "students": sorted(mine),
                "grader_sha256": grader_sha256, "limits": limits}
    write_atomic(path, json.dumps(manifest, indent=1))


# ------------------------------------------------------------------ merging
def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MergeError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise MergeError(f"{path} is not a result of course-grade")
    return data


def _inventory(folder: Path) -> tuple[dict, dict]:
    """({worksheet: {student: (result file, source sha256, grader sha256, still to be graded alone)}},
    {worksheet: manifest}) of one input folder (``grade_report.waiting_alone``: a result that ran out of time
    beside another job without a CPU share of its own, whose run stopped before grading it again alone)."""
    from .grade_report import waiting_alone
    if not folder.is_dir():
        raise MergeError(f"{folder} is not a folder")
    results: dict[str, dict[str, tuple[Path, str | None, str | None]]] = {}
    for path in sorted((folder / "results").glob("*/*.json")):
        r = _read_json(path)
        if not isinstance(r.get("student"), str) or not isinstance(r.get("worksheet"), str):
            raise MergeError(f"{path} is not a result of course-grade (no student or worksheet)")
        results.setdefault(r["worksheet"], {})[r["student"]] = (path, r.get("source_sha256"), r.get("grader_sha256"),
                                                                waiting_alone(r))
    manifests = {}
    for path in sorted((folder / MANIFESTS).glob("*.json")):
        m = _read_json(path)
        manifests[str(m.get("worksheet"))] = m
    if not results and not manifests:
        raise MergeError(f"{folder} holds no results of course-grade (no {folder}/results/<worksheet>/*.json)")
    return results, manifests


def _check_shards(worksheet: str, folders: list[Path], manifests: list[dict | None], results: list[dict]) -> None:
    """Refuse shards of different classes, a shard given twice, a missing shard, an unfinished shard."""
    if all(m is None for m in manifests):
        return      # folders graded without --shard: the overlap and SOURCE checks are all that can be known
    if any(m is None for m in manifests):
        plain = [str(f) for f, m in zip(folders, manifests) if m is None]
        raise MergeError(f"worksheet {worksheet!r}: {', '.join(plain)} was not graded with --shard, the other "
                         "folders were: merge the shards of one run")
    for folder, m in zip(folders, manifests):
        fields = (m.get("shard"), m.get("shards"), m.get("class_size"))
        if not (all(type(v) is int for v in fields) and isinstance(m.get("class_sha256"), str)
                and isinstance(m.get("students"), list)):
            raise MergeError(f"{folder}/{MANIFESTS}/ holds a manifest of worksheet {worksheet!r} that course-grade "
                             "did not write (no shard, shards, class_size, class_sha256 or students): grade that "
                             "shard again")
    keys = {(m.get("shards"), m.get("class_size"), m.get("class_sha256")) for m in manifests}
    if len(keys) > 1:
        raise MergeError(f"worksheet {worksheet!r}: these shards come from different runs (different N, or a "
                         f"different class of submissions): {sorted(map(str, keys))}")
    n = manifests[0].get("shards")
    seen: dict[int, Path] = {}
    for folder, m in zip(folders, manifests):
        k = m.get("shard")
        if k in seen:
            raise MergeError(f"worksheet {worksheet!r}: shard {k}/{n} is given twice ({seen[k]} and {folder})")
        seen[k] = folder
    missing = [k for k in range(1, int(n) + 1) if k not in seen]
    if missing:
        raise MergeError(f"worksheet {worksheet!r}: shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing: "
                         f"merge all {n} shards (given: {', '.join(str(f) for f in folders)})")
    for folder, m, res in zip(folders, manifests, results):
        expected, have = set(m.get("students") or []), set(res)
        if have - expected:
            raise MergeError(f"{folder} holds results of students outside its shard {m['shard']}/{n} "
                             f"({', '.join(sorted(have - expected)[:5])}): grade each shard into its own empty folder")
        if expected - have:
            raise MergeError(f"shard {m['shard']}/{n} in {folder} has no result for "
                             f"{', '.join(sorted(expected - have)[:5])}: its run did not finish; run it again")
    everyone = [s for m in manifests for s in m["students"]]
    if len(everyone) != manifests[0]["class_size"] or class_digest(everyone) != manifests[0]["class_sha256"]:
        raise MergeError(f"worksheet {worksheet!r}: the shards' students ({len(everyone)}) are not the class each "
                         f"shard listed ({manifests[0]['class_size']}): were the shards sliced by different versions "
                         "of course-grade? grade every shard with the same one")


def merge(folders: list[str | Path], out: str | Path) -> dict:
    """Check the shards belong together, copy their results into ``out``, rebuild the reports; returns counts."""
    from .grade_feedback import write_reports
    folders, out = [Path(f) for f in folders], Path(out)
    if out.resolve() in {f.resolve() for f in folders}:
        raise MergeError(f"--out {out} is one of the folders to merge: choose a new folder")
    if out.exists() and not out.is_dir():
        raise MergeError(f"--out {out} is a file: choose a folder")
    twice = [f for i, f in enumerate(folders) if f.resolve() in {g.resolve() for g in folders[:i]}]
    if twice:
        raise MergeError(f"{twice[0]} is given twice: give each shard's folder once")
    inventories = [_inventory(f) for f in folders]
    worksheets = [set(res) | set(man) for res, man in inventories]
    if any(w != worksheets[0] for w in worksheets):
        listing = "; ".join(f"{f}: {', '.join(sorted(w)) or 'nothing'}" for f, w in zip(folders, worksheets))
        raise MergeError(f"these folders hold different worksheets ({listing}): merge shards of one grading run")
    copies: list[tuple[Path, Path]] = []
    for ws in sorted(worksheets[0]):
        results = [res.get(ws, {}) for res, _ in inventories]
        manifests = [man.get(ws) for _, man in inventories]
        sources = {sha for res in results for _, sha, _, _ in res.values()} | {m.get("source_sha256") for m in manifests
                                                                            if m is not None}
        if len(sources) > 1:
            shown = ", ".join(sorted(str(s)[:12] for s in sources))
            raise MergeError(f"worksheet {ws!r} was graded against different SOURCEs (sha256 {shown}...): regrade "
                             "every shard with the same solution notebook")
        graders = {g for res in results for _, _, g, _ in res.values()} | {m.get("grader_sha256") for m in manifests
                                                                        if m is not None}
        if len(graders) > 1:
            shown = ", ".join(sorted(str(g)[:12] for g in graders))
            raise MergeError(f"worksheet {ws!r} was graded by different versions of course_utils, or of Python or "
                             f"a library it grades with (grader_sha256 {shown}...; each result's graded_with names "
                             "the versions): install one version of each on every machine and run each shard again "
                             "(it regrades what another version graded)")
        limits = [m.get("limits") if isinstance(m.get("limits"), dict) else {} for m in manifests if m is not None]
        differ = sorted({k for a in limits for b in limits for k in set(a) | set(b) if a.get(k) != b.get(k)})
        if differ:
            shown = "; ".join(f"--{k.replace('_', '-')} " + ", ".join(
                f"{m.get('limits', {}).get(k)} (shard {m.get('shard')}/{m.get('shards')})" for m in manifests
                if isinstance(m, dict) and isinstance(m.get("limits"), dict)) for k in differ)
            raise MergeError(f"worksheet {ws!r}: the shards were graded under different limits ({shown}): run each "
                             "shard again with the same limits (it regrades only what they could change)")
        owner: dict[str, Path] = {}
        for folder, res in zip(folders, results):
            for student in res:
                if student in owner:
                    raise MergeError(f"worksheet {ws!r}: student {student!r} was graded in both {owner[student]} "
                                     f"and {folder}: shards must not overlap")
                owner[student] = folder
        _check_shards(ws, folders, manifests, results)
        for folder, res in zip(folders, results):
            waiting = sorted(student for student, (_, _, _, alone) in res.items() if alone)
            if waiting:
                raise MergeError(f"{folder}: {len(waiting)} result(s) of worksheet {ws!r} still to be graded alone "
                                 f"({', '.join(waiting[:5])}: each ran past a time limit while another submission "
                                 "was graded beside it, without a CPU share of its own, and the run was stopped "
                                 "before grading it again): run that folder's course-grade command again")
        copies += [(path, out / "results" / path.parent.name / path.name) for res in results
                   for path, _, _, _ in res.values()]
    stale = {p.relative_to(out) for p in (out / "results").glob("*/*.json")} - {d.relative_to(out) for _, d in copies}
    if stale:
        raise MergeError(f"--out {out} already holds results that none of the shards has "
                         f"({', '.join(sorted(map(str, stale))[:3])}): merge into a new folder")
    for src, dst in copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    n_results, n_students = write_reports(out)
    return {"folders": len(folders), "results": n_results, "students": n_students}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade merge", description="Merge the output folders of "
                                     "`course-grade ... --shard K/N` into one (grades.csv, feedback/, results/, "
                                     "report.html), as one run over the whole class would have written it.")
    parser.add_argument("folders", nargs="+", help="the shards' --out folders")
    parser.add_argument("--out", required=True, help="the merged folder")
    args = parser.parse_args(argv)
    try:
        stats = merge(args.folders, args.out)
    except MergeError as err:
        print(f"course-grade merge: error: {err}", file=sys.stderr)
        return 2
    print(f"course-grade merge: {stats['folders']} folders, {stats['results']} results of {stats['students']} "
          f"students; {args.out}/grades.csv, {args.out}/feedback/, {args.out}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
