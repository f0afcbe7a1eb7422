"""Turns criterion's estimates (target/criterion) into BENCHMARKS.md."""
import json, os, platform, subprocess, datetime

ROOT = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.dirname(__file__), "..", "target"), "criterion")

def est(group, name):
    with open(os.path.join(ROOT, group, name, "new", "estimates.json")) as f:
        e = json.load(f)
    return e["median"]["point_estimate"], e["median"]["confidence_interval"]

def us(ns):
    return f"{ns / 1000:.1f} µs"

def ms(ns):
    return f"{ns / 1e6:.1f} ms"

health, _ = est("baseline", "health")
readmd, _ = est("baseline", "read_metadata_from_storage")
load, load_ci = est("load_table", "100_commit_history")
seq, _ = est("commit", "sequential_one_table")
conc, _ = est("commit", "concurrent_8_tables")

# The delegation bench (benches/delegation.rs).
empty, _ = est("remote_signing", "empty_handler")
shealth, _ = est("remote_signing", "sluice_health")
sign, _ = est("remote_signing", "sign_table_scoped")
sign_unscoped, _ = est("remote_signing", "sign_unscoped")
empty8, _ = est("remote_signing", "empty_handler_concurrent_8")
sign8, _ = est("remote_signing", "sign_table_scoped_concurrent_8")
plain_load, _ = est("vended_credentials", "load_without_delegation")
vend_load, _ = est("vended_credentials", "load_warm_cache")
with open(os.path.join(ROOT, "delegation_extra.json")) as f:
    extra = json.load(f)
cold = extra["cold_first_load_ns"]
sign_p = extra["sign_vs_empty_paired"]
vend_p = extra["vend_vs_plain_load_paired"]

# The backends bench (benches/backends.rs): PostgreSQL against SQLite.
with open(os.path.join(ROOT, "backends_extra.json")) as f:
    backends = json.load(f)

def backends_section():
    if "skipped" in backends:
        return f"""## PostgreSQL vs SQLite
Skipped in this run: {backends["skipped"]}.
"""
    rows = []
    for label, group, paired, per in [
        ("load table (100-commit history)", "backend_load_table", "load_paired", 1),
        ("sequential commits to one table (per commit)", "backend_commit_sequential", "commit_paired", 1),
        ("8 concurrent commits to 8 tables (per commit)", "backend_commit_concurrent_8", "commit_8_paired", 8),
    ]:
        lite, _ = est(group, "sqlite")
        pg, _ = est(group, "postgres")
        p = backends[paired]
        rows.append(f"| {label} | {us(lite / per)} | {us(pg / per)} | {pg / lite:.2f}× | **{p['ratio']:.2f}×** |")
    table = "\n".join(rows)
    p = backends["load_paired"]
    return f"""## PostgreSQL vs SQLite
Setup (`benches/backends.rs`): two in-process servers in the same run, identical except for
the catalog database: the embedded SQLite default (WAL) and a throwaway local PostgreSQL 15
(the store tests' cluster: Unix-socket directory, TCP on loopback, `fsync=off`,
`synchronous_commit=off`, so neither side waits for the disk), pool of 10 connections.
Same file warehouse layout, bearer-token auth, a table with a 100-commit history for loads,
`set-properties` commits (each writes a metadata file, then swaps the pointer).
Ratio = PostgreSQL time / SQLite time (above 1: PostgreSQL is slower).

| benchmark | SQLite | PostgreSQL | ratio (criterion medians) | ratio (paired rounds) |
|---|---|---|---|---|
{table}

Commits answered with an error and sent again during the run: SQLite {backends["failed_commits"]["sqlite"]}, PostgreSQL {backends["failed_commits"]["postgres"]}.

Paired: {p["rounds"]} alternating rounds per row (e.g. {p["ops_per_round"]} loads on SQLite, then {p["ops_per_round"]} on PostgreSQL),
median of the per-round ratios, so load that drifts during the run hits both sides alike.

What the ratio is made of: every PostgreSQL statement is a loopback round trip to another
process, where SQLite is a function call; a load runs a few short queries (warehouse,
table, the caller's policies when not cached), a commit one read and one transaction
(a conditional UPDATE; a multi-table commit also reads and locks its rows in id order
first). Where the two ratio columns disagree, the run was disturbed by other load on the
machine (criterion measures each side in its own time window; the paired rounds
interleave them, so trust those more). What PostgreSQL buys is not speed on one node but
several stateless replicas on one catalog (see ARCHITECTURE.md, *Replicas*).
"""

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

Setup of the first three sections (`benches/catalog.rs`): embedded default (SQLite in WAL
mode + a local-file warehouse), bearer-token auth as PyIceberg uses it, one table with a
100-commit history (metadata log of 100 entries). The delegation sections
(`benches/delegation.rs`) run against real S3 peers, described in each section.

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

## Remote signing
Setup: an S3 warehouse (s3-compat, path-style) on a real s3s-fs, one table; the body is what
PyIceberg's `S3V4RestSigner` sends for a GET of one of the table's objects (the signed
request is checked once against s3s-fs, which verifies SigV4), sent with a bearer token.
Baseline: an empty axum handler (`POST /empty` → `{{}}`) on its own loopback port, called
with the same client, bearer header and body.

| benchmark | median per request | requests/s | vs empty handler |
|---|---|---|---|
| empty handler (baseline) | {us(empty)} | {1e9 / empty:.0f} | 1.00× |
| Sluice's `GET /health` (its HTTP stack floor: middleware, no auth, no catalog work) | {us(shealth)} | {1e9 / shealth:.0f} | {shealth / empty:.2f}× |
| `POST /v1/{{prefix}}/tables/{{id}}/sign` (the `s3.signer.endpoint` handed out on load) | {us(sign)} | {1e9 / sign:.0f} | {sign / empty:.2f}× |
| `POST /v1/aws/s3/sign` (unscoped: the table is found from the URI) | {us(sign_unscoped)} | {1e9 / sign_unscoped:.0f} | {sign_unscoped / empty:.2f}× |
| empty handler, 8 requests in flight (per request) | {us(empty8 / 8)} | {8e9 / empty8:.0f} | 1.00× |
| table-scoped sign, 8 requests in flight (per request) | {us(sign8 / 8)} | {8e9 / sign8:.0f} | {sign8 / empty8:.2f}× |

Paired check ({sign_p["rounds"]} alternating rounds of {sign_p["requests_per_round"]} sequential requests, so load that
drifts during the run hits both sides alike): empty handler {us(sign_p["a_ns"])}, table-scoped
sign {us(sign_p["b_ns"])}, median ratio **{sign_p["ratio"]:.2f}×**.

Signing makes no call to the object store: per request the server looks up the warehouse and
table in the catalog database, authorizes the caller, checks that every location the request
touches is inside the table's location, and computes the SigV4 signature with the
warehouse's key. The gap between the empty handler and Sluice's `/health` is roughly what Sluice's HTTP
stack (routing, middleware) adds to every request; the rest of the sign figure is the
signing work.

## Load table with vended credentials (warm cache)
Setup: an STS-enabled S3 warehouse (s3-compat, `sts-role-arn`) on a real moto (S3 + IAM +
STS, signature and IAM checks on), one freshly created table. The cache was warmed by one
load with the header before measuring, so the measured loads make no STS call. Baseline:
loading the same table without `X-Iceberg-Access-Delegation`.

| benchmark | median | vs load without delegation |
|---|---|---|
| `GET …/tables/t` without the delegation header (baseline) | {us(plain_load)} | 1.00× |
| `GET …/tables/t` with `X-Iceberg-Access-Delegation: vended-credentials`, cached credentials | {us(vend_load)} | {vend_load / plain_load:.2f}× |
| cold: the first load with the header (STS `AssumeRole` on moto), one sample | {ms(cold)} | {cold / plain_load:.0f}× |

Paired check ({vend_p["rounds"]} alternating rounds of {vend_p["requests_per_round"]} sequential loads): without the header
{us(vend_p["a_ns"])}, with it (warm cache) {us(vend_p["b_ns"])}, median ratio **{vend_p["ratio"]:.2f}×**.

Credentials are cached per (warehouse and its version, table, access level) until 5 minutes
before they expire; concurrent misses share one STS call. The cold figure is a single
measurement and includes moto's own (Python) AssumeRole time and the first connection to it.

{backends_section()}""")
