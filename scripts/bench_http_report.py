"""Renders the HTTP part of scripts/bench.sh (issue #20) as a BENCHMARKS.md section.

usage: bench_http_report.py RESULTS_DIR --json OUT.json --md OUT.md [--insert BENCHMARKS.md]

RESULTS_DIR holds what bench.sh collected: meta.json, setup.json, wrk/<case>/{sluice,baseline}.<round>.json
(one JSON line of scripts/wrk_bench.lua each), polaris-{sqlite,postgres}.json and coldstart.json.
All of it goes to OUT.json; the markdown to OUT.md, and with --insert into the file between the
markers `<!-- bench-http -->` and `<!-- /bench-http -->` (added above its first `## ` heading
when absent).
"""
import argparse, datetime, glob, json, os, statistics

START, END = "<!-- bench-http -->", "<!-- /bench-http -->"

CASES = [
    # case, label, goal (Sluice req/s as a share of the empty handler's)
    ("health", "`GET /health` (no auth, no catalog work)", 0.8),
    ("config", "`GET /v1/config?warehouse=default`, bearer token", 0.6),
    ("load", "load-table `GET /v1/{prefix}/namespaces/{ns}/tables/warm` (warm: 5 commits, loaded before), bearer token", 0.5),
    ("sign", "table-scoped sign `POST /v1/{prefix}/tables/{id}/sign` (a GET of the table's metadata file through the S3 gateway), bearer token", 0.5),
]


def load(path):
    with open(path) as f:
        return json.load(f)


def wrk_case(res, case):
    rounds = []
    for sl in sorted(glob.glob(os.path.join(res, "wrk", case, "sluice.*.json"))):
        r = sl.rsplit(".", 2)[1]
        s, b = load(sl), load(os.path.join(res, "wrk", case, f"baseline.{r}.json"))
        for x in (s, b):
            x["rps"] = x["requests"] / (x["duration_us"] / 1e6)
            x["non_2xx_or_failed"] = sum(x[k] for k in x if k.startswith("errors_"))
            x["cpu_us_per_req"] = x.get("server_cpu_s", 0) * 1e6 / max(x["requests"], 1)
        rounds.append({"round": int(r), "sluice": s, "baseline": b, "ratio": s["rps"] / b["rps"]})
    if not rounds:
        return None
    med = lambda side, k: statistics.median(r[side][k] for r in rounds)
    return {
        "rounds": rounds,
        "ratio": statistics.median(r["ratio"] for r in rounds),
        "sluice": {k: med("sluice", k) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")},
        "baseline": {k: med("baseline", k) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")},
        "errors": sum(r["sluice"]["non_2xx_or_failed"] + r["baseline"]["non_2xx_or_failed"] for r in rounds),
    }


def ms(us):
    return f"{us / 1000:.2f} ms"


def yes(ok):
    return "**met**" if ok else "**missed**"


def render(data):
    meta, setup, http = data["meta"], data["setup"], data["http"]
    cold = data["coldstart"]
    out = [START, f"## HTTP load as a user runs it (issue #20), {data['date']}", ""]
    out.append(
        f"`sluice serve` (release, `{meta['sluice_version']}`) on the embedded default (SQLite + the default "
        "warehouse served through the S3 gateway), log level `warn`, driven over loopback by "
        f"`wrk {meta['wrk_args']} --latency` (`scripts/wrk_bench.lua`). Baseline: `sluice-bench baseline`, an "
        "empty axum handler answering with a body of the same size as Sluice's response, sent the same "
        "headers and body, with the same allocator as `sluice` (mimalloc), measured in the same run; "
        f"{meta['rounds']} alternating rounds per row, medians. "
        f"{data['machine']}; wrk, Sluice and the baseline share the cores, so absolute figures are "
        "lower than on a machine with separate client cores; compare the ratios."
    )
    out += ["", "| request | body | empty handler req/s | Sluice req/s | Sluice / empty | goal | Sluice p50 / p99 | empty p50 / p99 | server CPU per request: empty, Sluice (empty / Sluice) |",
            "|---|---|---|---|---|---|---|---|---|"]
    goals = []
    for case, label, goal in CASES:
        c = http.get(case)
        if not c:
            out.append(f"| {label} | — | not run | | | ≥ {goal}× | | | |")
            goals.append((label, f"≥ {goal}× the empty handler", "not run", False))
            continue
        b, s = c["baseline"], c["sluice"]
        ok = c["ratio"] >= goal
        out.append(
            f"| {label} | {setup['bytes'][case]} B | {b['rps']:,.0f} | {s['rps']:,.0f} | **{c['ratio']:.2f}×** | "
            f"≥ {goal}× {yes(ok)} | {ms(s['p50_us'])} / {ms(s['p99_us'])} | {ms(b['p50_us'])} / {ms(b['p99_us'])} | "
            f"{b['cpu_us_per_req']:.1f} µs, {s['cpu_us_per_req']:.1f} µs ({b['cpu_us_per_req'] / max(s['cpu_us_per_req'], 1e-9):.2f}×) |")
        goals.append((label.split(" (")[0].split(",")[0], f"≥ {goal}× the empty handler", f"{c['ratio']:.2f}×", ok))
    floor, sign = data.get("sign_floor"), http.get("sign")
    if floor and sign:
        f_cpu, s_cpu = floor["sluice"]["cpu_us_per_req"], sign["sluice"]["cpu_us_per_req"]
        out += ["", f"**Sign floor** (`sluice-bench sign-floor`): the same sign request answered with nothing but "
                "what any remote signer must do — parse the JSON, sign with `aws-sigv4` (the settings Sluice uses, "
                "a session token as long as Sluice's), write the JSON — and none of Sluice's checks "
                "(authentication, authorization, table and warehouse lookup, the location check, the temporary key): "
                f"{floor['sluice']['rps']:,.0f} req/s, **{floor['ratio']:.2f}×** the empty handler, "
                f"{f_cpu:.1f} µs of server CPU per request. Sluice's sign is {sign['sluice']['rps'] / floor['sluice']['rps']:.2f}× "
                f"the floor's requests/s; its checks cost {s_cpu - f_cpu:.1f} µs per request on top of the floor's "
                f"{f_cpu:.1f} µs. The 0.5× goal is {0.5 / floor['ratio']:.2f}× of this floor."]
    errs = sum(c["errors"] for c in list(http.values()) + [floor] if c)
    out.append("")
    out.append("Server CPU per request: the user + system CPU time the server process used during the wrk run "
               "(`/proc/<pid>/stat`) divided by the requests it answered; unlike requests/s it leaves out wrk's "
               "own share of the cores and is hardly moved by other load on the machine.")
    out.append("")
    out.append(f"Non-2xx answers or socket errors during the wrk runs: {errs}."
               + (f" The signed request was checked once against the gateway: HTTP {setup.get('signed_get_status')}." if setup.get("signed_get_status") else ""))

    rss_ok = meta["idle_rss_mb"] < 30
    cs, fs, crss = cold["restart_ms"], cold["first_start_ms"], cold["idle_rss_mb"]
    cold_ok = cs["median"] < 100 and fs["median"] < 100
    out += ["", "| process | min | median | max | goal |", "|---|---|---|---|---|",
            f"| idle RSS of the benchmarked server 2 s after start | {meta['idle_rss_mb']:.1f} MB | | | < 30 MB {yes(rss_ok)} |",
            f"| idle RSS 1 s after a restart ({cold['runs']} runs) | {crss['min']:.1f} MB | {crss['median']:.1f} MB | {crss['max']:.1f} MB | < 30 MB |",
            f"| RSS after the wrk runs | {meta['rss_after_wrk_mb']:.1f} MB | | | |",
            f"| cold start to the first 200 on `/health`, restart (existing data dir) | {cs['min']:.1f} ms | {cs['median']:.1f} ms | {cs['max']:.1f} ms | < 100 ms |",
            f"| cold start to the first 200, first start (empty data dir: keys, database, default warehouse created) | {fs['min']:.1f} ms | {fs['median']:.1f} ms | {fs['max']:.1f} ms | < 100 ms |"]
    goals.append(("idle RSS", "< 30 MB", f"{meta['idle_rss_mb']:.1f} MB", rss_ok))
    goals.append(("cold start to the first 200", "< 100 ms (median)", f"restart {cs['median']:.1f} ms, first start {fs['median']:.1f} ms", cold_ok))
    out += ["", "Cold start: `sluice-bench coldstart` spawns the whole process (gateway off) and polls "
            "`/health` over TCP every millisecond; the runs alternate first starts and restarts."]

    out += ["", "### Polaris-style workloads", "",
            "Modelled on Apache Polaris' benchmark suite (`sluice-bench polaris`, see the crate's docs): "
            f"`{meta['polaris_args']}`. *create tree dataset*: namespaces level by level, then the tables; "
            "*read tree dataset*: list namespaces, load namespace, list tables, load table, 25 % each; "
            "*read/update*: 90 % load-table of any table, 10 % read-modify-write of one of 10 hot tables "
            "(load, then commit one more column with `assert-table-uuid` + `assert-current-schema-id`; "
            "a `409` is a conflict: another client committed first, which is the catalog working). "
            "PostgreSQL: a throwaway local PostgreSQL 15 cluster (`fsync=off`, `synchronous_commit=off`, "
            "as the project's other PostgreSQL benches), pool of the default size.", "",
            "| backend | workload | requests | req/s | p50 | p99 | errors | conflicts |", "|---|---|---|---|---|---|---|---|"]
    for backend in ("sqlite", "postgres"):
        p = data["polaris"].get(backend) or {}
        if "workloads" not in p:
            out.append(f"| {backend} | {p.get('skipped', 'not run')} | | | | | | |")
            continue
        for w in p["workloads"]:
            out.append(f"| {'SQLite' if backend == 'sqlite' else 'PostgreSQL'} | {w['workload']} | {w['requests']:,} | "
                       f"{w['requests_per_s']:,.0f} | {w['p50_ms']:.2f} ms | {w['p99_ms']:.2f} ms | {w['errors']} | {w['conflicts']} |")
    out += ["", "Per operation (p50 / p99):", ""]
    for backend in ("sqlite", "postgres"):
        p = data["polaris"].get(backend) or {}
        for w in p.get("workloads", []):
            ops = "; ".join(f"{op} {o['requests']:,} ({o['p50_ms']:.2f} / {o['p99_ms']:.2f} ms)" for op, o in w["ops"].items())
            out.append(f"- {backend}, {w['workload']}: {ops}")

    out += ["", "### #20 goals in this run", "", "| goal | target | measured | |", "|---|---|---|---|"]
    out += [f"| {g} | {t} | {m} | {yes(ok)} |" for g, t, m, ok in goals]
    out += ["", "### Repeat", "", "```",
            "cargo build --release -p sluice   # or point SLUICE_BIN at a release binary",
            f"BENCH_ONLY=http WRK_ARGS='{meta['wrk_args']}' BENCH_ROUNDS={meta['rounds']} \\",
            f"  POLARIS_ARGS='{meta['polaris_args']}' COLDSTART_RUNS={meta['coldstart_runs']} \\",
            "  SLUICE_BIN=target/release/sluice bash scripts/bench.sh   # BENCH_HTTP_WRITE=1 updates this section",
            "```",
            "Results as JSON: `target/bench-http.json` (each wrk round, each Polaris operation).", END, ""]
    return "\n".join(out)


def insert(path, section):
    text = open(path).read()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + "\n" + tail
    else:
        i = text.find("\n## ")
        text = text + "\n" + section if i < 0 else text[: i + 1] + section + "\n" + text[i + 1:]
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--insert")
    a = ap.parse_args()
    res = a.results
    cpu = "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    data = {
        "date": str(datetime.date.today()),
        "machine": f"{os.cpu_count()} cores ({cpu})",
        "meta": load(os.path.join(res, "meta.json")),
        "setup": {k: v for k, v in load(os.path.join(res, "setup.json")).items() if k != "token"},
        "http": {case: wrk_case(res, case) for case, _, _ in CASES},
        "sign_floor": wrk_case(res, "sign_floor"),
        "polaris": {b: load(os.path.join(res, f"polaris-{b}.json")) for b in ("sqlite", "postgres")
                    if os.path.exists(os.path.join(res, f"polaris-{b}.json"))},
        "coldstart": load(os.path.join(res, "coldstart.json")),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(data, f, indent=1)
    md = render(data)
    with open(a.md, "w") as f:
        f.write(md)
    if a.insert:
        insert(a.insert, md)


if __name__ == "__main__":
    main()
