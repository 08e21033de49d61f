#!/usr/bin/env python3
"""The llama.cpp race of `make bench` (bench/race.sh runs it): one engine run
per call, recorded as JSON lines, and the table.

  race.py run OUT.jsonl ENGINE MODEL TYPE THREADS -- COMMAND...
      runs COMMAND (`vmed bench ... --json` or `llama-bench ... -o json`),
      appends one line per test (pp512, tg128) with tokens/s, its standard
      deviation and the peak resident memory of the process (its ru_maxrss,
      the same measure for both engines, mapped weights included).
      A vmed that cannot compute with the file's type is recorded as
      "unsupported", not as a failure.
  race.py first OUT.jsonl ENGINE MODEL TYPE -- COMMAND...
      time to first token: vmed's own figure (load, run state, one decoded
      token) or, for llama-bench -p 0 -n 1 --no-warmup, the process's wall
      time (start, load, context, one token, exit).
  race.py peak OUT.jsonl MODEL TYPE FILE -- COMMAND...
      peak resident memory of `vmed bench -p CTX-1 -n 0 --json` (a context
      filled by a prompt) against the issue's bound: the file's size + the
      KV cache + 5%.
  race.py table LIMITS RACE.jsonl FIRST.jsonl FILES_DIR
      prints the race table (and the peak lines from race_peak.jsonl beside
      FIRST.jsonl).
"""
import json
import os
import re
import resource
import struct
import subprocess
import sys
import time


def append(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def run_child(cmd):
    """(exit status, stdout, stderr, peak RSS bytes, wall seconds) of cmd."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    wall = time.monotonic() - t0
    # RUSAGE_CHILDREN: the largest peak of the children waited for so far,
    # which is this one alone, since each measurement is a race.py process
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return p.returncode, out, err, rss, wall


def cannot(err):
    # "...is Q4_0; vmed cannot compute with it yet" (before quantized kernels),
    # "...is Q2_K; vmed computes with F32, F16, ... only" (a type it lacks)
    m = re.search(r"[^\n]*(cannot compute with|vmed computes with)[^\n]*", err)
    return m[0].strip() if m else None


def cmd_run(argv):
    out, engine, model, typ, threads = argv[:5]
    cmd = argv[argv.index("--") + 1:]
    rc, so, se, rss, _ = run_child(cmd)
    base = {"engine": engine, "model": model, "type": typ, "threads": int(threads)}
    if rc != 0:
        why = cannot(se) if engine == "vmed" else None
        msg = why or (se.strip().splitlines() or ["exit status %d" % rc])[-1]
        print(f"   {engine}: {'unsupported' if why else 'failed'}: {msg}")
        append(out, dict(base, status="unsupported" if why else "failed", message=msg))
        return 0
    if engine == "vmed":
        r = json.loads(so.strip().splitlines()[-1])
        tests = [(f"pp{r['pp']}", r["pp_tps"], r["pp_sd"]), (f"tg{r['tg']}", r["tg_tps"], r["tg_sd"])]
        extra = {"weight_bytes_per_token": r["weight_bytes_per_token"], "dtype": r["dtype"]}
    else:
        rows = json.loads(so)
        tests = []
        extra = {}
        for r in rows:
            name = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
            tests.append((name, r["avg_ts"], r["stddev_ts"]))
            extra = {"build_commit": r["build_commit"], "build_number": r["build_number"],
                     "cpu_info": r["cpu_info"], "model_type": r["model_type"]}
    for name, tps, sd in tests:
        print(f"   {engine:<9} {model} {typ} {threads} thr {name}: {tps:.2f} ± {sd:.2f} tok/s, "
              f"peak RSS {rss / 1e9:.2f} GB")
        append(out, dict(base, status="ok", test=name, tps=tps, sd=sd, peak_rss_bytes=rss, **extra))
    return 0


def cmd_first(argv):
    out, engine, model, typ = argv[:4]
    cmd = argv[argv.index("--") + 1:]
    rc, so, se, rss, wall = run_child(cmd)
    base = {"engine": engine, "model": model, "type": typ}
    if rc != 0:
        why = cannot(se) if engine == "vmed" else None
        msg = why or (se.strip().splitlines() or ["exit status %d" % rc])[-1]
        append(out, dict(base, status="unsupported" if why else "failed", message=msg))
        print(f"   {engine}: {'unsupported' if why else 'failed'}: {msg}")
        return 0
    row = dict(base, status="ok", wall_s=wall)
    if engine == "vmed":
        r = json.loads(so.strip().splitlines()[-1])
        row.update(first_token_s=r["first_token_s"], load_s=r["load_s"])
    else:
        row.update(first_token_s=wall)
    print(f"   {engine:<9} {model} {typ}: first token after {row['first_token_s']:.2f} s (process {wall:.2f} s)")
    append(out, row)
    return 0


def peak_line(r):
    base = r["file_bytes"] + r["kv_cache_bytes"]
    over = r["peak_rss_bytes"] / base - 1
    return (f"{r['model'] + ' ' + r['type']:<20}{r['ctx']:>6}{r['peak_rss_bytes'] / 1e9:>9.2f}"
            f"{r['file_bytes'] / 1e9:>9.2f}{r['kv_cache_bytes'] / 1e9:>9.2f}{100 * over:>+9.1f}%")


PEAK_HEAD = f"{'peak memory, vmed':<20}{'ctx':>6}{'peak GB':>9}{'file GB':>9}{'KV GB':>9}{'over':>10}"


def cmd_peak(argv):
    out, model, typ, path = argv[:4]
    cmd = argv[argv.index("--") + 1:]
    rc, so, se, rss, _ = run_child(cmd)
    if rc != 0:
        print(f"   vmed: failed: {(se.strip().splitlines() or ['exit status %d' % rc])[-1]}")
        return 0
    r = json.loads(so.strip().splitlines()[-1])
    row = {"model": model, "type": typ, "ctx": r["ctx"], "peak_rss_bytes": rss,
           "file_bytes": os.path.getsize(path), "kv_cache_bytes": r["kv_cache_bytes"]}
    append(out, row)
    print("   " + PEAK_HEAD)
    print("   " + peak_line(row))
    return 0


# --- GGUF: bytes a decoded token reads, from the tensor table -----------------
def gguf_weight_bytes(path):
    """Bytes of all tensors but the token embedding (a decoded token reads one
    row of it), or all of them when the output matrix is tied to it. Sizes are
    the distances between tensor offsets, so no type table is needed."""
    with open(path, "rb") as f:
        def rd(fmt):
            n = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, f.read(n))

        def rstr():
            (n,) = rd("Q")
            return f.read(n).decode("utf-8", "replace")
        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

        def skip(t):
            if t == 8:
                rstr()
            elif t == 9:
                et, n = rd("IQ")
                if et in scalar:
                    f.seek(n * struct.calcsize("<" + scalar[et]), 1)
                else:
                    for _ in range(n):
                        skip(et)
            else:
                rd(scalar[t])
        magic, version = f.read(4), rd("I")[0]
        if magic != b"GGUF":
            raise ValueError(f"{path}: not GGUF")
        n_t, n_kv = rd("QQ")
        align = 32
        for _ in range(n_kv):
            key = rstr()
            (t,) = rd("I")
            if key == "general.alignment" and t == 4:
                (align,) = rd("I")
            else:
                skip(t)
        infos = []
        for _ in range(n_t):
            name = rstr()
            (nd,) = rd("I")
            rd("Q" * nd)
            _typ, off = rd("IQ")
            infos.append((off, name))
        start = (f.tell() + align - 1) // align * align
        end = os.fstat(f.fileno()).st_size - start
    infos.sort()
    size = {name: (infos[i + 1][0] if i + 1 < len(infos) else end) - off for i, (off, name) in enumerate(infos)}
    total = sum(size.values())
    if "output.weight" in size:
        total -= size.get("token_embd.weight", 0)
    return total


def cmd_table(argv):
    limits, race, first, files = argv[:4]
    bw = {}
    if os.path.exists(limits):
        for line in open(limits):
            m = re.match(r"membw threads (\d+): ([\d.]+) GB/s", line)
            if m:
                bw[int(m[1])] = float(m[2])
    rows = [json.loads(l) for l in open(race)] if os.path.exists(race) else []
    made = {}
    for fn in sorted(os.listdir(files)) if os.path.isdir(files) else []:
        if fn.endswith(".gguf.by"):
            made[fn[:-3]] = open(os.path.join(files, fn)).read().strip()
    # keys in the order the runs came
    keys = []
    for r in rows:
        for test in ([r["test"]] if "test" in r else ["pp512", "tg128"]):
            k = (r["model"], r["type"], r["threads"], test)
            if k not in keys:
                keys.append(k)
    order = {}
    for k in keys:
        order.setdefault(k[:2], len(order))
    keys.sort(key=lambda k: (order[k[:2]], k[2], k[3]))

    def find(engine, k):
        for r in rows:
            if r["engine"] == engine and (r["model"], r["type"], r["threads"]) == k[:3]:
                if r["status"] != "ok":
                    return r
                if r["test"] == k[3]:
                    return r
        return None

    wbytes = {}

    def wb(model, typ):
        if (model, typ) not in wbytes:
            p = os.path.join(files, f"{model}-{typ.lower()}.gguf")
            try:
                wbytes[(model, typ)] = gguf_weight_bytes(p)
            except (OSError, ValueError, struct.error):
                wbytes[(model, typ)] = None
        return wbytes[(model, typ)]

    have_llama = any(r["engine"] == "llama.cpp" for r in rows)
    print(f"{'model':<11}{'type':<8}{'thr':>3} {'test':<6}{'vmed tok/s':>17}{'llama.cpp tok/s':>18}"
          f"{'vmed/l.cpp':>11}{'vmed GB':>8}{'l.cpp GB':>9}{'ceiling':>9}{'vmed %':>7}{'l.cpp %':>8}")

    def cell(r):
        if r is None:
            return "not measured", None
        if r["status"] != "ok":
            return ("unsupported" if r["status"] == "unsupported" else "failed"), None
        return f"{r['tps']:.2f} ± {r['sd']:.2f}", r["tps"]

    for k in keys:
        model, typ, t, test = k
        v, l = find("vmed", k), find("llama.cpp", k)
        vc, vt = cell(v)
        lc, lt = cell(l) if have_llama else ("not measured", None)
        ratio = f"{vt / lt:.2f}x" if vt and lt else "-"
        vr = f"{v['peak_rss_bytes'] / 1e9:.2f}" if v and v["status"] == "ok" else "-"
        lr = f"{l['peak_rss_bytes'] / 1e9:.2f}" if l and l["status"] == "ok" else "-"
        ceil = vp = lp = "-"
        w = wb(model, typ)
        if test.startswith("tg") and w and t in bw:
            c = bw[t] * 1e9 / w
            ceil = f"{c:.2f}"
            vp = f"{100 * vt / c:.0f}%" if vt else "-"
            lp = f"{100 * lt / c:.0f}%" if lt else "-"
        print(f"{model:<11}{typ:<8}{t:>3} {test:<6}{vc:>17}{lc:>18}{ratio:>11}{vr:>8}{lr:>9}{ceil:>9}{vp:>7}{lp:>8}")
    print("ceiling = measured read bandwidth / bytes a decoded token reads (the GGUF's tensors less the token")
    print("embedding); GB = peak resident memory of the process (ru_maxrss, mapped weights included)")
    if not have_llama:
        print("llama.cpp: not measured (set LLAMA_CPP_DIR to a llama.cpp build)")
    else:
        b = next((r for r in rows if r.get("build_commit")), None)
        if b:
            print(f"llama.cpp: llama-bench build {b['build_commit']} ({b['build_number']}), {b['cpu_info']}")
    raced = {f"{k[0]}-{k[1].lower()}.gguf" for k in keys}
    quant = {m: by for m, by in made.items() if by and m in raced}
    if quant:
        print("files: " + ", ".join(f"{m} by {by}" for m, by in quant.items()))
    for r in rows:
        if r["status"] == "unsupported" and r["engine"] == "vmed":
            print(f"vmed unsupported: {r['message']}")
            break
    firsts = [json.loads(l) for l in open(first)] if os.path.exists(first) else []
    if firsts:
        print()
        print(f"{'time to first token, warm':<30}{'vmed s':>10}{'(load s)':>10}{'llama.cpp s':>13}")
        seen = []
        for r in firsts:
            if (r["model"], r["type"]) not in seen:
                seen.append((r["model"], r["type"]))
        for m, typ in seen:
            v = next((r for r in firsts if r["engine"] == "vmed" and (r["model"], r["type"]) == (m, typ)), None)
            l = next((r for r in firsts if r["engine"] == "llama.cpp" and (r["model"], r["type"]) == (m, typ)), None)
            vc = f"{v['first_token_s']:.2f}" if v and v["status"] == "ok" else (v["status"] if v else "-")
            vl = f"{v['load_s']:.2f}" if v and v["status"] == "ok" else ""
            lc = f"{l['first_token_s']:.2f}" if l and l["status"] == "ok" else (l["status"] if l else "not measured")
            print(f"{m + ' ' + typ:<30}{vc:>10}{vl:>10}{lc:>13}")
        print("vmed: load + run state + one decoded token, in the process; llama.cpp: wall time of")
        print("llama-bench -p 0 -n 1 -r 1 --no-warmup (process start to exit); both after a run that warmed the page cache")
    peak = os.path.join(os.path.dirname(first), "race_peak.jsonl")
    peaks = [json.loads(l) for l in open(peak)] if os.path.exists(peak) else []
    if peaks:
        print()
        print(PEAK_HEAD)
        for r in peaks:
            print(peak_line(r))
        print("a context of ctx positions filled by a ctx-1 token prompt; over = peak / (file + KV cache) - 1")
        print("(the issue's bound for 7B Q4_0 at 2048: +5%)")
    return 0


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    sys.exit({"run": cmd_run, "first": cmd_first, "peak": cmd_peak, "table": cmd_table}[verb](args))
