#!/usr/bin/env python3
"""Headless Chromium driven over the DevTools protocol, with nothing but the standard library.

The browser runs inside a network namespace (`ip netns exec`) and speaks CDP over a pipe
(`--remote-debugging-pipe`: commands on its fd 3, answers on fd 4, each a JSON text ended by NUL),
so no port or WebSocket is needed. Used by t_apps.sh:

    b = Browser("mr-a")
    page = b.open("http://[200:...]:8080/")
    page.eval("document.title")
    page.type("hello")          # real input events, as a keyboard's
    page.screenshot("a.png")
"""
import base64
import json
import os
import subprocess
import tempfile
import time


class Browser:
    def __init__(self, netns, chromium="chromium"):
        self.profile = tempfile.mkdtemp(prefix="mr-chromium-")
        args = [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-dev-shm-usage", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        # fd 3 reads our commands (the shell's stdin), fd 4 writes answers (its stdout).
        shell = 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null'
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen(
            [*prefix, "sh", "-c", shell, "sh", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0
        self.buffer = b""
        self.events = []

    def send(self, method, session=None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.proc.stdin.write(json.dumps(message).encode() + b"\0")
        self.proc.stdin.flush()
        want = self.next_id
        while True:
            reply = self.receive()
            if reply.get("id") == want:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def receive(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise RuntimeError("chromium exited")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url):
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Page.navigate", url=url)
        page.wait("document.readyState === 'complete'", 15)
        return page

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.profile])


class Page:
    def __init__(self, browser, session):
        self.browser = browser
        self.session = session

    def call(self, method, **params):
        return self.browser.send(method, session=self.session, **params)

    def eval(self, expression):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, condition, seconds):
        """Waits until a JavaScript condition holds; False if it never did."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if self.eval(f"Boolean({condition})"):
                    return True
            except RuntimeError:
                pass
            time.sleep(0.05)
        return False

    def type(self, text):
        """Types into the focused element as a keyboard would (input events, one per call)."""
        self.call("Input.insertText", text=text)

    def key(self, name, code):
        """Presses and releases a key (e.g. "Backspace", 8)."""
        for kind in ("rawKeyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=name, code=name,
                      windowsVirtualKeyCode=code)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
