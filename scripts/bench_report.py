"""Turns criterion's estimates (target/criterion) into BENCHMARKS.md."""
import json, os, platform, subprocess, datetime

ROOT = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.dirname(__file__), "..", "target"), "criterion")

def est(group, name):
    with open(os.path.join(ROOT, group, name, "new", "estimates.json")) as f:
        e = json.load(f)
    return e["median"]["point_estimate"], e["median"]["confidence_interval"]

def us(ns):
    return f"{ns / 1000:.1f} µs"

health, _ = est("baseline", "health")
readmd, _ = est("baseline", "read_metadata_from_storage")
load, load_ci = est("load_table", "100_commit_history")
seq, _ = est("commit", "sequential_one_table")
conc, _ = est("commit", "concurrent_8_tables")

cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()

print(f"""# Benchmarks

Produced by `bash scripts/bench.sh` (criterion, release profile) on {datetime.date.today()},
{os.cpu_count()} cores ({cpu}), {rustc}. All figures are medians from one run; the
baselines were measured in the same run, against the same in-process server over
loopback HTTP, so the ratios are what to compare across machines.

Setup: embedded default (SQLite in WAL mode + a local-file warehouse), bearer-token auth as
PyIceberg uses it, one table with a 100-commit history (metadata log of 100 entries).

## Baselines
| baseline | median |
|---|---|
| `GET /health` round trip (HTTP stack floor, no auth, no catalog work) | {us(health)} |
| read + parse the table's metadata file from the warehouse (what a catalog that re-reads storage on load pays on top of its own work) | {us(readmd)} |

## Load table
| benchmark | median | vs `/health` | vs reading metadata from storage |
|---|---|---|---|
| `GET …/tables/t` (100-commit history) | {us(load)} | {load / health:.2f}× | {load / readmd:.2f}× |

Loading a table answers from the database copy of the current metadata (returned as stored,
with no parse/serialize round trip) and never touches object storage; the ratio against
the storage-read baseline shows what that saves: a catalog that re-read the file would pay
about {us(load + readmd)} per load here.

## Commit throughput
| benchmark | median per commit | commits/s | vs `/health` |
|---|---|---|---|
| sequential commits to one table (set-properties; writes a metadata file + CAS) | {us(seq)} | {1e9 / seq:.0f} | {seq / health:.1f}× |
| 8 concurrent commits to 8 tables (per batch of 8) | {us(conc / 8)} | {8e9 / conc:.0f} | {conc / 8 / health:.1f}× |

A commit writes one new metadata file (create-if-absent) and then swaps the table's
metadata pointer in one SQLite `BEGIN IMMEDIATE` transaction; concurrent commits to
different tables serialize only on that short transaction.
""")
