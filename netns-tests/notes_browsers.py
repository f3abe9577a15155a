#!/usr/bin/env python3
"""Two browsers edit examples/notes.html together through two nodes (run by t_apps.sh).

usage: notes_browsers.py NS_A URL_A NS_C URL_C KEY_A KEY_C CUT_CMD HEAL_CMD SHOT_DIR FORBIDDEN_NS
                         BLOB_CID BLOB_FILE

A signs in on node a with KEY_A and types; C, signed in on node c with KEY_C, must see the text
within 2 s. Then CUT_CMD splits the mesh, both type, HEAL_CMD joins it, and both pages must show
the same text with both edits. Finally requests without a valid token, and for FORBIDDEN_NS (a
namespace the user may not read), must be refused; c's page fetches the file BLOB_CID (added on c
from BLOB_FILE) by its CID and must get its exact bytes. Prints figures; exits non-zero on failure.
"""
import base64
import json
import subprocess
import sys
import time

from browser import Browser

ns_a, url_a, ns_c, url_c, key_a, key_c, cut, heal, shots, forbidden, blob, blob_file = sys.argv[1:13]
TEXT = "document.getElementById('notes').value"
STATUS = "document.getElementById('status').textContent"


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def sign_in(page, key, who):
    page.eval(f"document.getElementById('key').value = {json.dumps(key)}")
    page.eval("document.getElementById('login').click()")
    if not page.wait("!document.getElementById('editor').classList.contains('hidden')", 10):
        fail(f"{who} could not sign in: {page.eval(STATUS)}")
    if not page.wait("document.getElementById('status').textContent.startsWith('Live')", 10):
        fail(f"{who}'s page never went live: {page.eval(STATUS)}")


def type_at(page, position, text):
    """Puts the caret at `position` ('end' or a number) and types `text` one key at a time."""
    page.eval("document.getElementById('notes').focus()")
    at = f"{TEXT}.length" if position == "end" else str(position)
    page.eval(f"(() => {{ const n = document.getElementById('notes'); n.selectionStart = n.selectionEnd = {at}; }})()")
    for ch in text:
        page.type(ch)
        time.sleep(0.01)


def wait_text(page, predicate_js, seconds):
    start = time.time()
    ok = page.wait(predicate_js, seconds)
    return ok, time.time() - start


browsers = []
try:
    a, c = Browser(ns_a), Browser(ns_c)
    browsers = [a, c]
    pa = a.open(url_a + "notes.html")
    pc = c.open(url_c + "notes.html")
    started = time.time()
    sign_in(pa, key_a, "a")
    sign_in(pc, key_c, "c")
    print(f"both browsers signed in (key -> challenge -> token) in {time.time() - started:.2f} s")

    type_at(pa, "end", "Water at the school: 40 L. ")
    # The whole text, the last key (a space) included: c types next, after it.
    ok, took = wait_text(pc, f"{TEXT} === 'Water at the school: 40 L. '", 2)
    if not ok:
        fail(f"c did not see a's text within 2 s: {pc.eval(TEXT)!r}")
    print(f"a typed; c's page shows it {took * 1000:.0f} ms after the last key")
    type_at(pc, "end", "Boat leaves at 6.")
    ok, took = wait_text(pa, f"{TEXT}.endsWith('Boat leaves at 6.')", 2)
    if not ok:
        fail(f"a did not see c's text within 2 s: {pa.eval(TEXT)!r}")
    print(f"c typed; a's page shows it {took * 1000:.0f} ms after the last key")

    subprocess.run(cut, shell=True, check=True)
    type_at(pa, 0, "[a, cut off] ")
    type_at(pc, "end", " [c, cut off]")
    time.sleep(1.5)
    text_a, text_c = pa.eval(TEXT), pc.eval(TEXT)
    if "[c, cut off]" in text_a or "[a, cut off]" in text_c:
        fail(f"the cut did not cut: a {text_a!r}, c {text_c!r}")
    if "[a, cut off]" not in text_a or "[c, cut off]" not in text_c:
        fail(f"an edit made during the cut is lost locally: a {text_a!r}, c {text_c!r}")
    print(f"cut: each page shows its own edit only (a {text_a!r}, c {text_c!r})")

    subprocess.run(heal, shell=True, check=True)
    both = "v.includes('[a, cut off]') && v.includes('[c, cut off]')"
    start = time.time()
    converged = False
    while time.time() - start < 30:
        text_a, text_c = pa.eval(TEXT), pc.eval(TEXT)
        if text_a == text_c and "[a, cut off]" in text_a and "[c, cut off]" in text_a:
            converged = True
            break
        time.sleep(0.05)
    if not converged:
        fail(f"no convergence 30 s after healing: a {text_a!r}, c {text_c!r}")
    print(f"healed: both pages show {text_a!r}, {time.time() - start:.2f} s after the links came back")
    pa.screenshot(f"{shots}/notes-a.png")
    pc.screenshot(f"{shots}/notes-c.png")

    # Refusals, asked from a's page (same origin as the API).
    def status(js):
        return pa.eval(f"(async () => {{ const r = await {js}; return r.status; }})()")

    read = "fetch('/api/crdt/read', {method: 'POST', headers: {'Content-Type': 'application/json'%s}, body: JSON.stringify({namespace: %s, document: 'shared'})})"
    token = pa.eval("localStorage.getItem('meshrouter-token')")
    checks = [
        ("read without a token", read % ("", "'notes'"), 401),
        ("read with a forged token", read % (", Authorization: 'Bearer ' + 'x.y.z'", "'notes'"), 401),
        ("read of a token's own namespace", read % (", Authorization: 'Bearer ' + localStorage.getItem('meshrouter-token')", "'notes'"), 200),
        ("read of a namespace the user may not read", read % (", Authorization: 'Bearer ' + localStorage.getItem('meshrouter-token')", json.dumps(forbidden)), 403),
        ("events without a token", "fetch('/api/crdt/events?namespace=notes&document=shared')", 401),
        ("events for a namespace the user may not read", f"fetch('/api/crdt/events?' + new URLSearchParams({{namespace: {json.dumps(forbidden)}, document: 'x', access_token: {json.dumps(token)}}}))", 403),
        ("a body over 512 KiB", "fetch('/api/crdt/write', {method: 'POST', headers: {Authorization: 'Bearer ' + localStorage.getItem('meshrouter-token')}, body: 'x'.repeat(600 * 1024)})", 413),
        ("write without a token", "fetch('/api/crdt/write', {method: 'POST', body: JSON.stringify({namespace: 'notes', document: 'shared', op: 'insert', pos: 0, value: 'x'})})", 401),
    ]
    for what, js, want in checks:
        got = status(js)
        if got != want:
            fail(f"{what}: HTTP {got}, expected {want}")
        print(f"{what}: HTTP {got}")
    fetch_blob = f"""(async () => {{
        const r = await fetch('/api/blobs/{blob}', {{headers: {{Authorization: 'Bearer ' + localStorage.getItem('meshrouter-token')}}}});
        if (!r.ok) return 'HTTP ' + r.status;
        const data = await r.blob();
        return await new Promise((done) => {{ const f = new FileReader(); f.onload = () => done(f.result); f.readAsDataURL(data); }});
    }})()"""
    start = time.time()
    got = pc.eval(fetch_blob)
    if not got.startswith("data:"):
        fail(f"c's page could not fetch the blob: {got}")
    data = base64.b64decode(got.split(",", 1)[1])
    if data != open(blob_file, "rb").read():
        fail(f"the blob c's page got differs from the file ({len(data)} bytes)")
    print(f"c's page fetched {blob} ({len(data)} bytes, identical) in {time.time() - start:.2f} s")
    got = pc.eval(f"fetch('/api/blobs/{blob}', {{cache: 'no-store'}}).then((r) => r.status)")
    if got != 401:
        fail(f"a blob without a token: HTTP {got}")
    print("blob without a token: HTTP 401")
    with open(f"{shots}/token", "w") as f:
        f.write(token)
    print("PASS")
finally:
    for b in browsers:
        b.close()
