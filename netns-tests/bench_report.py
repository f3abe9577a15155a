#!/usr/bin/env python3
"""Turns the raw outputs of netns-tests/bench.sh into a table per topology (printed), a JSON file with all
the numbers (bench-results.json) and an SVG chart of TCP throughput (bench-chart.svg).

Called by bench.sh; standard library only. Run directories are WORK/SETTING/ROUTER/TOPOLOGY/REPETITION
(1, 2, ...; every reported figure is the median over the repetitions that succeeded), each with
meta.txt (key=value lines), iperf3 -J outputs (tcp1.json, tcp4.json, udp.json), ping outputs
(ping_idle.txt, ping_load.txt), daemon CPU ticks (cpu_before.txt, cpu_after.txt: "node utime stime")
and RSS (rss_idle.txt: "node KiB"; rss_load.txt: "ms node KiB" every 0.2 s during the TCP tests).
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROUTERS = ("meshrouter", "yggdrasil")
TOPO_TITLE = {
    "two": "two nodes a-b, one veth",
    "line": "3-node line a-b-c, b relays",
}
UDP_PAYLOAD = 1232


def read_meta(d):
    meta = {}
    p = d / "meta.txt"
    if p.exists():
        for line in p.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                meta[k] = v
    return meta


def load_json(p):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def percentile(xs, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(1, math.ceil(q / 100 * len(s)))
    return s[k - 1]


def parse_ping(p):
    if not p.exists():
        return None
    text = p.read_text()
    rtts = [float(m) for m in re.findall(r"time=([0-9.]+) ms", text)]
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    sent, received = (int(m.group(1)), int(m.group(2))) if m else (None, len(rtts))
    r = {"sent": sent, "received": received, "rtt_ms": rtts}
    if rtts:
        r["p50_ms"] = percentile(rtts, 50)
        r["p99_ms"] = percentile(rtts, 99)
        r["mean_ms"] = sum(rtts) / len(rtts)
        r["max_ms"] = max(rtts)
    if sent:
        r["loss_pct"] = 100.0 * (sent - received) / sent
    return r


def load_iperf3(p):
    """iperf3's JSON report and its "end" section, or (None, {"error": why})."""
    j = load_json(p)
    if j is None:
        return None, {"error": "no output"}
    if j.get("error"):
        return None, {"error": j["error"]}
    return j, j.get("end", {})


def parse_tcp(p):
    j, e = load_iperf3(p)
    if j is None:
        return e
    rx, tx = e.get("sum_received", {}), e.get("sum_sent", {})
    if not rx:
        return {"error": "no summary"}
    return {
        "mbps": rx["bits_per_second"] / 1e6,
        "bytes_received": rx["bytes"],
        "seconds": rx["seconds"],
        "bytes_sent": tx.get("bytes"),
        "retransmits": tx.get("retransmits"),
        "streams": len(e.get("streams", [])),
        "intervals_mbps": [round(i["sum"]["bits_per_second"] / 1e6, 1) for i in j.get("intervals", [])],
        "iperf3_cpu_pct": e.get("cpu_utilization_percent"),
    }


def parse_udp(p):
    j, e = load_iperf3(p)
    if j is None:
        return e
    rx = e.get("sum_received") or e.get("sum")  # iperf3 < 3.11 has only "sum", from the server's report
    tx = e.get("sum_sent") or e.get("sum") or {}
    if not rx:
        return {"error": "no summary"}
    sent = rx.get("packets") or tx.get("packets") or 0
    lost = rx.get("lost_packets", 0)
    received = max(0, sent - lost)
    secs = rx.get("seconds") or 1
    return {
        "packets_sent": tx.get("packets", sent),
        "packets_received": received,
        "lost_packets": lost,
        "loss_pct": rx.get("lost_percent", 100.0 * lost / sent if sent else None),
        "seconds": secs,
        "pps_received": received / secs,
        "pps_sent": tx.get("packets", sent) / (tx.get("seconds") or secs),
        "mbps_received": received * UDP_PAYLOAD * 8 / secs / 1e6,
        "jitter_ms": rx.get("jitter_ms"),
        "iperf3_cpu_pct": e.get("cpu_utilization_percent"),
    }


def read_table(p, cols):
    rows = []
    if p.exists():
        for line in p.read_text().splitlines():
            f = line.split()
            if len(f) == cols:
                rows.append(f)
    return rows


def collect(d, clk_tck):
    meta = read_meta(d)
    run = {
        "router": meta.get("router"),
        "topology": meta.get("topology"),
        "mtu_setting": meta.get("setting"),
        "tun_mtu": int(meta["tun_mtu"]) if meta.get("tun_mtu") else None,
        "status": meta.get("status", "failed"),
    }
    if meta.get("reason"):
        run["reason"] = meta["reason"]
    if meta.get("reused_from"):
        run["reused_from"] = meta["reused_from"]
    if run["status"] == "skipped":
        return run
    run["nodes"] = meta.get("nodes", "").split()
    run["from"], run["to"] = meta.get("src"), meta.get("dst")
    run["from_address"], run["to_address"] = meta.get("src_addr"), meta.get("dst_addr")
    if meta.get("nudged"):
        run["nudged"] = meta["nudged"]
    if meta.get("setup_ms"):
        run["time_to_first_ping_s"] = int(meta["setup_ms"]) / 1000
    raw = {}
    m = {}

    ping_idle, ping_load = parse_ping(d / "ping_idle.txt"), parse_ping(d / "ping_load.txt")
    raw["ping_idle"], raw["ping_load"] = ping_idle, ping_load
    for name, pg in (("idle", ping_idle), ("load", ping_load)):
        if pg and "p50_ms" in pg:
            m[f"ping_{name}_p50_ms"] = pg["p50_ms"]
            m[f"ping_{name}_p99_ms"] = pg["p99_ms"]
            m[f"ping_{name}_loss_pct"] = pg.get("loss_pct")

    tcp1, tcp4, udp = parse_tcp(d / "tcp1.json"), parse_tcp(d / "tcp4.json"), parse_udp(d / "udp.json")
    raw["tcp1"], raw["tcp4"], raw["udp"] = tcp1, tcp4, udp
    if "mbps" in tcp1:
        m["tcp1_mbps"] = tcp1["mbps"]
    if "mbps" in tcp4:
        m["tcp4_mbps"] = tcp4["mbps"]
    if "pps_received" in udp:
        m["udp_pps_received"] = udp["pps_received"]
        m["udp_pps_sent"] = udp["pps_sent"]
        m["udp_loss_pct"] = udp["loss_pct"]
        m["udp_mbps_received"] = udp["mbps_received"]

    before = {r[0]: (int(r[1]), int(r[2])) for r in read_table(d / "cpu_before.txt", 3)}
    after = {r[0]: (int(r[1]), int(r[2])) for r in read_table(d / "cpu_after.txt", 3)}
    cpu = {}
    for n in before:
        if n in after:
            cpu[n] = {
                "utime_ticks": after[n][0] - before[n][0],
                "stime_ticks": after[n][1] - before[n][1],
            }
    raw["cpu_ticks_during_tcp1"] = cpu
    raw["clk_tck"] = clk_tck
    if cpu and len(cpu) == len(run["nodes"]):
        ticks = sum(c["utime_ticks"] + c["stime_ticks"] for c in cpu.values())
        cpu_s = ticks / clk_tck
        m["cpu_s_tcp1"] = cpu_s
        if meta.get("cpu_t0_ms") and meta.get("cpu_t1_ms"):
            wall = (int(meta["cpu_t1_ms"]) - int(meta["cpu_t0_ms"])) / 1000
            raw["cpu_window_s"] = wall
            if wall > 0:
                m["cpu_cores_tcp1"] = cpu_s / wall
        if tcp1.get("bytes_received"):
            m["cpu_s_per_gb"] = cpu_s / (tcp1["bytes_received"] / 1e9)

    idle = {r[0]: int(r[1]) for r in read_table(d / "rss_idle.txt", 2)}
    raw["rss_idle_kib"] = idle
    if idle:
        m["rss_idle_mib"] = max(idle.values()) / 1024
    samples = [(int(t), n, int(kb)) for t, n, kb in read_table(d / "rss_load.txt", 3)]
    raw["rss_load_samples"] = [list(s) for s in samples]
    peak = {}
    for _, n, kb in samples:
        peak[n] = max(peak.get(n, 0), kb)
    raw["rss_load_max_kib"] = peak
    if peak:
        m["rss_load_max_mib"] = max(peak.values()) / 1024

    run["metrics"] = m
    run["raw"] = raw
    return run


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def combine(reps):
    """One run from the repetitions of a router and topology: each metric the median of the
    successful repetitions' values; every repetition's metrics and raw numbers kept."""
    ok = [r for r in reps if r.get("status") == "ok"]
    if not ok:
        run = dict(reps[0])
        run["repetitions"] = len(reps)
        return run
    run = {k: v for k, v in ok[0].items() if k not in ("metrics", "raw")}
    keys = sorted({k for r in ok for k in r.get("metrics", {})})
    run["metrics"] = {
        k: median([r["metrics"][k] for r in ok if r["metrics"].get(k) is not None]) for k in keys
    }
    firsts = [r["time_to_first_ping_s"] for r in ok if r.get("time_to_first_ping_s") is not None]
    if firsts:
        run["time_to_first_ping_s"] = median(firsts)
    run["repetitions"] = len(reps)
    run["repetitions_ok"] = len(ok)
    run["each"] = [
        {k: r.get(k) for k in ("status", "reason", "metrics", "time_to_first_ping_s", "nudged", "raw")}
        for r in reps
    ]
    return run


# (key, label, format, better): better is "higher" or "lower" or "" (informational).
ROWS = [
    ("tcp1_mbps", "TCP 1 stream, Mbit/s", "{:.0f}", "higher"),
    ("tcp4_mbps", "TCP 4 streams, Mbit/s", "{:.0f}", "higher"),
    ("udp_pps_received", "UDP 1232 B received, pkt/s", "{:.0f}", "higher"),
    ("udp_mbps_received", "UDP received, Mbit/s (payload)", "{:.0f}", "higher"),
    ("udp_loss_pct", "UDP loss, %", "{:.1f}", "lower"),
    ("ping_idle_p50_ms", "ping idle p50, ms", "{:.3f}", "lower"),
    ("ping_idle_p99_ms", "ping idle p99, ms", "{:.3f}", "lower"),
    ("ping_load_p50_ms", "ping under TCP load p50, ms", "{:.2f}", "lower"),
    ("ping_load_p99_ms", "ping under TCP load p99, ms", "{:.2f}", "lower"),
    ("cpu_s_per_gb", "daemon CPU s per GB (TCP 1)", "{:.2f}", "lower"),
    ("cpu_cores_tcp1", "daemon CPU, cores busy (TCP 1)", "{:.2f}", ""),
    ("rss_idle_mib", "RSS idle, MiB (largest daemon)", "{:.1f}", "lower"),
    ("rss_load_max_mib", "RSS peak under load, MiB", "{:.1f}", "lower"),
    ("time_to_first_ping_s", "start to first ping, s", "{:.1f}", "lower"),
]


def fmt(v, f):
    return "-" if v is None else f.format(v)


def metric(run, key):
    if run is None or run.get("status") != "ok":
        return None
    if key == "time_to_first_ping_s":
        return run.get(key)
    return run.get("metrics", {}).get(key)


def cell_status(run):
    if run is None:
        return "not run"
    if run.get("status") == "skipped":
        return "skipped"
    if run.get("status") != "ok":
        return "FAILED"
    return None


def tun_mtu(router, setting):
    """The TUN MTU a router runs at under an MTU setting (as bench.sh's eff_mtu)."""
    if setting == "default":
        return 1280 if router == "meshrouter" else 65535
    return min(int(setting), 9000) if router == "meshrouter" else int(setting)


def table(setting, topo, runs):
    """The printed table for one MTU setting and topology."""
    by = {r: runs.get((setting, r, topo)) for r in ROUTERS}
    mtus = ", ".join(f"{r} {tun_mtu(r, setting)}" for r in ROUTERS)
    lines = [f"== {TOPO_TITLE.get(topo, topo)} (TUN MTU {mtus})"]
    header = ["", "meshrouter", "yggdrasil", "ratio m/y", "better"]
    body = []
    status = {r: cell_status(by[r]) for r in ROUTERS}
    if any(status.values()):
        body.append(["status"] + [status[r] or "ok" for r in ROUTERS] + ["", ""])
    for key, label, f, better in ROWS:
        vm, vy = metric(by["meshrouter"], key), metric(by["yggdrasil"], key)
        ratio = "-"
        if vm is not None and vy is not None and vy != 0:
            ratio = f"{vm / vy:.2f}"
        body.append([label, fmt(vm, f), fmt(vy, f), ratio, better])
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    for row in [header] + body:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, len(row))]
        lines.append("  ".join(cells).rstrip())
    for r in ROUTERS:
        run = by[r]
        if run and run.get("status") not in ("ok", "skipped"):
            lines.append(f"   {r}: {run.get('reason', 'failed')}")
        if run and run.get("nudged"):
            lines.append(f"   {r}: {run['nudged']}")
        if run and run.get("repetitions_ok", run.get("repetitions", 1)) < run.get("repetitions", 1):
            lines.append(f"   {r}: {run['repetitions_ok']} of {run['repetitions']} repetitions succeeded")
        if run and run.get("reused_from"):
            lines.append(f"   {r}: same TUN MTU as {run['reused_from']}, numbers reused")
    return "\n".join(lines)


# ---- SVG chart ------------------------------------------------------------------------------------------

COLORS = {
    ("meshrouter", "tcp1_mbps"): "#1f5fa8",
    ("meshrouter", "tcp4_mbps"): "#7fa9dc",
    ("yggdrasil", "tcp1_mbps"): "#d9730d",
    ("yggdrasil", "tcp4_mbps"): "#f5b77a",
}


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def nice_step(vmax, n=5):
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    for k in (1, 2, 2.5, 5, 10):
        if k * mag >= raw:
            return k * mag
    return 10 * mag


def svg_chart(groups, subtitle):
    """groups: list of (label, [(router, key, value or None)]). Grouped bars, one group per label."""
    bars_per_group = max(len(b) for _, b in groups)
    bw, gap, pad = 34, 8, 36
    gw = bars_per_group * bw + (bars_per_group - 1) * gap
    left, right, top, bottom = 78, 24, 84, 96
    plot_w = len(groups) * gw + (len(groups) + 1) * pad
    if left + plot_w + right < 760:  # room for the title and the legend
        plot_w = 760 - left - right
        pad = (plot_w - len(groups) * gw) / (len(groups) + 1)
    width = left + plot_w + right
    plot_h = 300
    height = top + plot_h + bottom
    vmax = max([v for _, b in groups for _, _, v in b if v is not None] + [1.0])
    step = nice_step(vmax)
    ymax = step * math.ceil(vmax / step)
    if ymax < vmax * 1.08:
        ymax += step

    def y(v):
        return top + plot_h - v / ymax * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
        "TCP throughput over the overlay (iperf3), meshrouter vs yggdrasil</text>",
    ]
    for i, line in enumerate(subtitle.split("\n")):
        out.append(f'<text x="{width / 2}" y="{44 + 16 * i}" text-anchor="middle" fill="#555">{esc(line)}</text>')
    t = 0.0
    while t <= ymax + 1e-9:
        yy = y(t)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plot_w}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#333">{t:g}</text>')
        t += step
    out.append(
        f'<text x="18" y="{top + plot_h / 2}" text-anchor="middle" fill="#333" '
        f'transform="rotate(-90 18 {top + plot_h / 2})">Mbit/s</text>'
    )
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>')
    for gi, (label, bars) in enumerate(groups):
        gx = round(left + pad + gi * (gw + pad), 1)
        for bi, (router, key, v) in enumerate(bars):
            x = gx + bi * (bw + gap)
            if v is None:
                out.append(
                    f'<text x="{x + bw / 2}" y="{top + plot_h - 6}" text-anchor="middle" fill="#999" '
                    'font-size="10">n/a</text>'
                )
                continue
            yy = y(v)
            out.append(
                f'<rect x="{x}" y="{yy:.1f}" width="{bw}" height="{top + plot_h - yy:.1f}" '
                f'fill="{COLORS[(router, key)]}"><title>{esc(router)} {esc(label)} '
                f'{"1 stream" if key == "tcp1_mbps" else "4 streams"}: {v:.0f} Mbit/s</title></rect>'
            )
            out.append(
                f'<text x="{x + bw / 2}" y="{yy - 4:.1f}" text-anchor="middle" font-size="10" fill="#222">'
                f"{v:.0f}</text>"
            )
        for li, part in enumerate(label.split("\n")):
            out.append(
                f'<text x="{gx + gw / 2}" y="{top + plot_h + 18 + 15 * li}" text-anchor="middle" '
                f'fill="#222">{esc(part)}</text>'
            )
    legend = [(r, k, f"{r}, {name}") for r in ROUTERS for k, name in (("tcp1_mbps", "1 stream"), ("tcp4_mbps", "4 streams"))]
    legend_w = sum(30 + 7 * len(text) for _, _, text in legend) - 30
    lx, ly = max(8, (width - legend_w) / 2), height - 22
    for router, key, text in legend:
        out.append(f'<rect x="{lx:.1f}" y="{ly - 10}" width="12" height="12" fill="{COLORS[(router, key)]}"/>')
        out.append(f'<text x="{lx + 17:.1f}" y="{ly}" fill="#222">{esc(text)}</text>')
        lx += 30 + 7 * len(text)
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---- machine and versions -----------------------------------------------------------------------------


def first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        text = (r.stdout or r.stderr).strip()
        return text.splitlines()[0] if text else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine():
    model = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "arch": platform.machine(),
        "loadavg_at_end": load,
    }


def versions(mr_bin, root):
    mr = first_line([mr_bin, "--version"])
    v = {
        "meshrouter": mr.split()[-1] if mr else None,
        "yggdrasil": None,
        "iperf3": first_line(["iperf3", "--version"]),
        "ping": first_line(["ping", "-V"]),
        "python": platform.python_version(),
    }
    y = first_line(["sh", "-c", "yggdrasil -version 2>/dev/null | grep 'Build version'"])
    if y:
        v["yggdrasil"] = y.split(":", 1)[-1].strip()
    commit = first_line(["git", "-C", str(root), "rev-parse", "HEAD"])
    if commit:
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        v["meshrouter_git"] = commit + ("-dirty" if dirty else "")
    return v


def mtu_desc(setting):
    if setting == "default":
        return "defaults (meshrouter 1280, yggdrasil 65535)"
    n = int(setting)
    return f"{n} (meshrouter 9000)" if n > 9000 else f"{n} for both"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--pings", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--settings", required=True, help="space-separated MTU settings")
    ap.add_argument("--routers", required=True)
    ap.add_argument("--topos", required=True)
    ap.add_argument("--clk-tck", type=int, default=100)
    ap.add_argument("--mr-bin", required=True)
    ap.add_argument("--notes")
    ap.add_argument("--elapsed", type=int)
    ap.add_argument("--command", default="")
    a = ap.parse_args()

    work, out = Path(a.work), Path(a.out)
    settings, routers, topos = a.settings.split(), a.routers.split(), a.topos.split()
    notes = []
    if a.notes and Path(a.notes).exists():
        notes = [n for n in Path(a.notes).read_text().splitlines() if n.strip()]

    runs = {}
    for s in settings:
        for r in routers:
            for t in topos:
                d = work / s / r / t
                reps = [collect(d / str(i), a.clk_tck) for i in range(1, a.repeat + 1) if (d / str(i)).is_dir()]
                if reps:
                    runs[(s, r, t)] = combine(reps)

    root = Path(__file__).resolve().parent.parent
    mach, vers = machine(), versions(a.mr_bin, root)
    print()
    print(f"machine: {mach['cpu_model']}, {mach['cores']} cores, {mach['memory_gib']} GiB, kernel {mach['kernel']}")
    print(
        f"versions: meshrouter {vers['meshrouter']} ({vers.get('meshrouter_git', '?')}), "
        f"yggdrasil {vers['yggdrasil'] or 'absent'}, {vers['iperf3']}"
    )
    print(f"iperf3 tests of {a.duration} s each; {a.pings} pings 20 ms apart; traffic from a to the last node")
    if a.repeat > 1:
        print(f"each figure: the median of {a.repeat} measurements, the routers taking turns")
    tables = []
    for s in settings:
        for t in topos:
            print()
            tab = table(s, t, runs)
            tables.append(tab)
            print(tab)
    print()
    print(
        "ratio = meshrouter / yggdrasil; 'better' says which direction is better. UDP is sent as fast as "
        "iperf3 can (-b 0), so loss mostly measures how far the sender outruns the router."
    )
    for n in notes:
        print(f"note: {n}")

    results = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": a.command.strip(),
        "elapsed_s": a.elapsed,
        "parameters": {
            "duration_s": a.duration,
            "pings": a.pings,
            "repetitions": a.repeat,
            "aggregate": "median of the repetitions, routers alternating" if a.repeat > 1 else "one measurement",
            "ping_interval_s": 0.02,
            "udp_payload_bytes": UDP_PAYLOAD,
            "udp_rate": "unlimited (iperf3 -b 0)",
            "mtu_settings": settings,
            "routers": routers,
            "topologies": {t: TOPO_TITLE.get(t, t) for t in topos},
            "traffic": "iperf3 client and ping in node a, iperf3 server in the last node",
            "cpu": "utime+stime of all router daemons during the 1-stream TCP test",
            "rss": "VmRSS; idle after peering, peak sampled every 0.2 s during the TCP tests",
        },
        "machine": mach,
        "versions": vers,
        "notes": notes,
        "runs": [runs[k] for k in runs],
        "tables": tables,
    }
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "bench-results.json"
    jpath.write_text(json.dumps(results, indent=1) + "\n")

    groups = []
    for s in settings:
        for t in topos:
            label = {"two": "2 nodes", "line": "3-node line"}.get(t, t)
            if len(settings) > 1 or s != "default":
                label += "\n" + ("default MTUs" if s == "default" else f"MTU {s}")
            bars = []
            for r in ROUTERS:
                for key in ("tcp1_mbps", "tcp4_mbps"):
                    bars.append((r, key, metric(runs.get((s, r, t)), key)))
            groups.append((label, bars))
    subtitle = (
        f"{mach['cpu_model']}, {mach['cores']} cores, kernel {mach['kernel']}; {a.duration} s per test\n"
        f"meshrouter {vers['meshrouter'] or '?'}, yggdrasil {vers['yggdrasil'] or 'absent'}; "
        f"TUN MTU " + "; ".join(mtu_desc(s) for s in settings)
    )
    spath = out / "bench-chart.svg"
    spath.write_text(svg_chart(groups, subtitle))
    print(f"\nwrote {jpath} and {spath}" + (f" ({a.elapsed} s)" if a.elapsed is not None else ""))
    failed = [
        k
        for k, r in runs.items()
        if r.get("status") == "failed" or any(e.get("status") == "failed" for e in r.get("each", []))
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
