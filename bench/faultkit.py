#!/usr/bin/env python3
"""Helpers of bench/faults.sh and bench/soak.sh, Python standard library only, loopback only.

Servers (each a ThreadingHTTPServer on 127.0.0.1; `GET /__fault?mode=M` changes how it
answers, `GET /__fault/stats` says how many requests it served):

  upstream --port P --name N   an application: JSON echo of the headers it received (the shape
                               of `guichet echo`'s JSON), modes ok | slow:SECONDS | hang
  scim --port P --people FILE  a SCIM 2.0 directory (`/scim/v2/Users?filter=emails.value eq
                               "..."`), people from a JSON list, modes ok | slow:S | error:CODE
  oidc --port P                an OpenID provider (HS256 id_tokens keyed with the client
                               secret, PKCE S256 checked), the subject taken from `login_hint`;
                               modes ok | slow:S (the token endpoint only) | error:CODE

Clients:

  login   one local-password login; prints the session cookie's value
  load    authenticated GETs by N threads with session cookies for D seconds; one CSV row per
          request (start, latency, status, expected and echoed identity, error page checks)
  logins  full logins in a loop (local form or OIDC); one CSV row per attempt
  summary the rows of `load`/`logins` split into phases by an events file, as a table
  page    checks an error page: status, both languages, the correlation id of its header

Every loop is bounded by a duration and every request by a timeout: a request that gets no
answer within it is counted as `timeout` (a hung connection), never waited for.
"""

import argparse
import base64
import csv
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------------------------------------
# Servers


class Faults:
    """The mode a server answers in, changed at run time through /__fault."""

    def __init__(self):
        self.mode = "ok"
        self.served = 0
        self.lock = threading.Lock()
        # Set whenever the mode is not "hang": hung requests wait on it without polling.
        self.released = threading.Event()
        self.released.set()

    def set(self, mode):
        if not re.fullmatch(r"ok|hang|slow:[0-9.]+|error:[0-9]{3}", mode):
            raise ValueError(mode)
        self.mode = mode
        if mode == "hang":
            self.released.clear()
        else:
            self.released.set()

    def apply(self):
        """Waits as the mode says; returns an error status to answer with, or None."""
        with self.lock:
            self.served += 1
        mode = self.mode
        if mode.startswith("slow:"):
            time.sleep(float(mode[5:]))
        elif mode == "hang":
            # Bounded: a hung upstream answers after two minutes at the latest.
            self.released.wait(timeout=120)
        elif mode.startswith("error:"):
            return int(mode[6:])
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultkit"
    faults = None  # set per server class

    def log_message(self, *args):
        pass

    def send_json(self, status, value, headers=()):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, val in headers:
            self.send_header(name, val)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("location", location)
        self.send_header("content-length", "0")
        self.end_headers()

    def control(self):
        """Answers /__fault requests; True when it did."""
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/__fault/stats":
            self.send_json(200, {"mode": self.faults.mode, "served": self.faults.served})
            return True
        if url.path == "/__fault":
            query = urllib.parse.parse_qs(url.query)
            try:
                self.faults.set(query.get("mode", ["ok"])[0])
            except ValueError:
                self.send_json(400, {"error": "bad mode"})
                return True
            self.send_json(200, {"mode": self.faults.mode})
            return True
        return False

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog (5) drops bursts of new connections: the proxy opening 64
    # upstream connections at once would see connect timeouts that are the mock's, not its own.
    request_queue_size = 1024


def serve(handler, port):
    server = Server(("127.0.0.1", port), handler)
    # Stop cleanly on SIGTERM (the scripts' cleanup) as on SIGINT.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def cmd_upstream(args):
    class Upstream(Handler):
        faults = Faults()

        def do_GET(self):
            if self.control():
                return
            status = self.faults.apply()
            if status:
                self.send_json(status, {"error": "injected"})
                return
            self.send_json(
                200,
                {
                    "app": args.name,
                    "target": self.path,
                    "headers": [[k.lower(), v] for k, v in self.headers.items()],
                },
            )

        do_POST = do_GET

    Upstream.faults.set(args.mode)
    serve(Upstream, args.port)


def scim_user(person):
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": person["id"],
        "userName": person["id"],
        "displayName": person.get("displayName", person["id"]),
        "active": True,
        "emails": [{"value": person["email"], "primary": True}],
        "groups": [{"value": "g-" + g, "display": g} for g in person.get("groups", [])],
    }


def cmd_scim(args):
    with open(args.people, encoding="utf-8") as f:
        people = [scim_user(p) for p in json.load(f)]

    class Scim(Handler):
        faults = Faults()

        def do_GET(self):
            if self.control():
                return
            status = self.faults.apply()
            if status:
                self.send_json(status, {"detail": "injected"})
                return
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path != "/scim/v2/Users":
                self.send_json(
                    404,
                    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "404"},
                )
                return
            match = re.fullmatch(r'emails\.value eq (".*")', query.get("filter", [""])[0])
            if not match:
                self.send_json(400, {"detail": "unsupported filter"})
                return
            wanted = json.loads(match.group(1)).lower()
            found = [u for u in people if any(e["value"].lower() == wanted for e in u["emails"])]
            self.send_json(
                200,
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                    "totalResults": len(found),
                    "startIndex": 1,
                    "itemsPerPage": len(found),
                    "Resources": found,
                },
                [("content-type", "application/scim+json")],
            )

    serve(Scim, args.port)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cmd_oidc(args):
    issuer = f"http://127.0.0.1:{args.port}"
    grants = {}
    grants_lock = threading.Lock()
    counter = [0]

    class Op(Handler):
        faults = Faults()

        def do_GET(self):
            if self.control():
                return
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/.well-known/openid-configuration":
                self.send_json(
                    200,
                    {
                        "issuer": issuer,
                        "authorization_endpoint": issuer + "/authorize",
                        "token_endpoint": issuer + "/token",
                        "jwks_uri": issuer + "/jwks",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["HS256"],
                        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                        "code_challenge_methods_supported": ["S256"],
                    },
                )
            elif url.path == "/jwks":
                self.send_json(200, {"keys": []})
            elif url.path == "/authorize":
                redirect_uri = query.get("redirect_uri")
                if not redirect_uri:
                    self.send_json(400, {"error": "invalid_request"})
                    return
                with grants_lock:
                    counter[0] += 1
                    code = f"code-{counter[0]}-{os.urandom(8).hex()}"
                    grants[code] = {
                        "nonce": query.get("nonce"),
                        "challenge": query.get("code_challenge"),
                        "redirect_uri": redirect_uri,
                        "sub": query.get("login_hint") or f"user-{counter[0]}",
                        "at": time.time(),
                    }
                back = redirect_uri + ("&" if "?" in redirect_uri else "?")
                back += urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                self.redirect(back)
            else:
                self.send_json(404, {"error": "not_found"})

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            body = self.read_body()
            if url.path != "/token":
                self.send_json(404, {"error": "not_found"})
                return
            status = self.faults.apply()
            if status:
                self.send_json(status, {"error": "temporarily_unavailable"})
                return
            form = dict(urllib.parse.parse_qsl(body.decode()))
            # client_secret_basic: id and secret form-urlencoded, then base64 (RFC 6749 2.3.1).
            auth = self.headers.get("authorization", "")
            try:
                pair = base64.b64decode(auth.removeprefix("Basic ")).decode()
            except ValueError:
                pair = ""
            client_id, _, secret = pair.partition(":")
            if (urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)) != (
                args.client_id,
                args.client_secret,
            ):
                self.send_json(401, {"error": "invalid_client"})
                return
            with grants_lock:
                grant = grants.pop(form.get("code", ""), None)
                # Forget codes nobody redeemed (bounded memory over a long run).
                for stale in [c for c, g in grants.items() if time.time() - g["at"] > 300]:
                    del grants[stale]
            if not grant or grant["redirect_uri"] != form.get("redirect_uri"):
                self.send_json(400, {"error": "invalid_grant"})
                return
            verifier = form.get("code_verifier", "")
            if grant["challenge"] and b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
                self.send_json(400, {"error": "invalid_grant"})
                return
            now = int(time.time())
            claims = {
                "iss": issuer,
                "sub": grant["sub"],
                "aud": args.client_id,
                "iat": now,
                "exp": now + 300,
                "email": grant["sub"] + "@sso.example.org",
                "email_verified": True,
            }
            if grant["nonce"]:
                claims["nonce"] = grant["nonce"]
            signing_input = (
                b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
                + "."
                + b64url(json.dumps(claims).encode())
            )
            signature = hmac.new(
                args.client_secret.encode(), signing_input.encode(), hashlib.sha256
            ).digest()
            self.send_json(
                200,
                {
                    "access_token": "at-" + os.urandom(12).hex(),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": signing_input + "." + b64url(signature),
                },
                [("cache-control", "no-store")],
            )

    serve(Op, args.port)


# ---------------------------------------------------------------------------------------------
# HTTP client pieces

FRENCH = "Référence"
ENGLISH = "reference"


class Answer:
    def __init__(self, status, headers, body, error=""):
        self.status = status
        self.headers = headers  # list of (lowercase name, value)
        self.body = body
        self.error = error
        # The request was sent again on a new connection: the server had closed the kept-alive
        # one it came on (after saying `Connection: keep-alive`), as browsers retry.
        self.retried = False

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def cookies(self):
        found = {}
        for k, v in self.headers:
            if k == "set-cookie":
                pair = v.split(";", 1)[0]
                if "=" in pair:
                    name, value = pair.split("=", 1)
                    found[name.strip()] = value.strip()
        return found


class Client:
    """One keep-alive connection to host:port, reopened after any error."""

    def __init__(self, host, port, timeout, host_header=None):
        self.host, self.port, self.timeout = host, port, timeout
        self.host_header = host_header or f"{host}:{port}"
        self.conn = None
        self.retried_last = False

    def request(self, method, target, headers=None, body=None, host_header=None):
        answer = self._request(method, target, headers, body, host_header)
        if self.retried_last:
            answer.retried = True
        return answer

    def _request(self, method, target, headers, body, host_header):
        self.retried_last = False
        headers = dict(headers or {})
        headers.setdefault("host", host_header or self.host_header)
        if body is not None:
            headers.setdefault("content-type", "application/x-www-form-urlencoded")
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, target, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return Answer(
                    response.status,
                    [(k.lower(), v) for k, v in response.getheaders()],
                    data.decode("utf-8", "replace"),
                )
            except TimeoutError:
                self.close()
                return Answer(0, [], "", "timeout")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server closed in between: retry once, fresh.
                self.close()
                if attempt == 1:
                    return Answer(0, [], "", type(e).__name__)
                self.retried_last = True
            except OSError as e:
                self.close()
                if "timed out" in str(e):
                    return Answer(0, [], "", "timeout")
                return Answer(0, [], "", type(e).__name__)
        return Answer(0, [], "", "unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def split_url(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port or 80, parts.path or "/"


def page_ok(answer):
    """An error answer as Guichet promises it: for a browser, a page in both languages with the
    correlation id of its `x-request-id` header; for a script (JSON), that id in the JSON."""
    rid = answer.header("x-request-id")
    if not rid:
        return False
    if (answer.header("content-type") or "").startswith("application/json"):
        try:
            return json.loads(answer.body).get("correlation_id") == rid
        except ValueError:
            return False
    return rid in answer.body and FRENCH in answer.body and ENGLISH in answer.body


def echoed_user(answer):
    try:
        value = json.loads(answer.body)
    except ValueError:
        return None
    for name, val in value.get("headers", []):
        if name == "x-remote-user":
            return val
    return ""


def jar_header(jar):
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def begin_login(client, start):
    """Opens a protected page as a browser would: a 302 to the login endpoint, with the login
    transaction's cookie. Returns (status, answer, jar)."""
    first = client.request("GET", start, {"accept": "text/html"})
    jar = first.cookies()
    if first.status != 302 or first.header("location") != "/.guichet/login":
        return first.status, first, jar
    login = client.request("GET", "/.guichet/login", {"accept": "text/html", "cookie": jar_header(jar)})
    jar.update(login.cookies())
    return login.status, login, jar


def local_login(client, start, user, password):
    """The local form login from a protected page; returns (status of the step that stopped
    it, or 302 when signed in; the answer; the session cookie or None)."""
    status, form, jar = begin_login(client, start)
    if status != 200:
        return status, form, None
    match = re.search(r'name="csrf_token" value="([^"]*)"', form.body)
    if not match:
        return -1, form, None
    body = urllib.parse.urlencode({"csrf_token": match.group(1), "username": user, "password": password})
    done = client.request(
        "POST", "/.guichet/login", {"accept": "text/html", "cookie": jar_header(jar)}, body
    )
    session = done.cookies().get("guichet_session")
    if done.status == 302 and session:
        return 302, done, session
    return done.status, done, None


def oidc_login(client, start, op_base, user, timeout):
    """A login through the OpenID provider from a protected page: gateway, provider (subject =
    login_hint), callback. Returns (status, answer, session cookie or None); a status of the
    provider itself is reported as 1000 + status."""
    status, begun, jar = begin_login(client, start)
    location = begun.header("location") or ""
    if status != 302 or not location.startswith(op_base + "/"):
        return status, begun, None
    authorize = location + "&" + urllib.parse.urlencode({"login_hint": user})
    host, port, _ = split_url(op_base)
    op = Client(host, port, timeout)
    at_op = op.request("GET", authorize[len(op_base):], {"accept": "text/html"})
    op.close()
    if at_op.status != 302:
        return 1000 + at_op.status, at_op, None
    callback = urllib.parse.urlsplit(at_op.header("location"))
    target = callback.path + ("?" + callback.query if callback.query else "")
    done = client.request("GET", target, {"accept": "text/html", "cookie": jar_header(jar)})
    session = done.cookies().get("guichet_session")
    if done.status == 302 and session:
        return 302, done, session
    return done.status, done, None


def cmd_login(args):
    host, port, _ = split_url(args.base)
    client = Client(host, port, args.timeout)
    status, answer, session = local_login(client, args.start, args.user, args.password)
    if not session:
        print(f"login of {args.user} at {args.base}: {status} {answer.error}", file=sys.stderr)
        sys.exit(1)
    print(session)


# ---------------------------------------------------------------------------------------------
# Load


FIELDS = ["t", "ms", "status", "error", "expected", "seen", "check", "page_ok", "worker"]


def row(t, ms, answer, expected, seen, worker, check=""):
    """One request (or login): `seen` is the identity the app received (on a 200), `check` the
    status of the request made after a login, `page_ok` whether a 5xx was the promised page."""
    ok = "" if answer.status < 500 else ("1" if page_ok(answer) else "0")
    error = answer.error or ("retried" if answer.retried else "")
    return [f"{t:.4f}", f"{ms:.2f}", answer.status, error, expected, seen, check, ok, worker]


def cmd_load(args):
    """Authenticated GETs: each thread uses one user's session cookie (from --cookies, lines
    `user cookie`, taken in turn) and checks the echoed identity on every 200."""
    with open(args.cookies, encoding="utf-8") as f:
        sessions = [line.split() for line in f if line.strip()]
    targets = [split_url(u) for u in args.url]
    deadline = time.time() + args.duration
    rows = []
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def worker(index):
        user, cookie = sessions[index % len(sessions)]
        clients = [Client(h, p, args.timeout) for h, p, _ in targets]
        mine = []
        n = 0
        while time.time() < deadline and not stop.is_set():
            which = n % len(targets)
            n += 1
            _, _, path = targets[which]
            t = time.time()
            answer = clients[which].request(
                "GET", path, {"accept": "application/json", "cookie": f"guichet_session={cookie}"}
            )
            ms = (time.time() - t) * 1000
            seen = echoed_user(answer) if answer.status == 200 else ""
            mine.append(row(t, ms, answer, user, seen if seen is not None else "?", index))
            if args.pause_ms:
                time.sleep(args.pause_ms / 1000)
        for c in clients:
            c.close()
        with lock:
            rows.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write_rows(args.out, rows)


def cmd_logins(args):
    """Full logins in a loop by N threads; each row is one attempt: the status that ended it
    (302 = signed in), its latency, and on success the identity the app then sees."""
    host, port, _ = split_url(args.base)
    deadline = time.time() + args.duration
    rows = []
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    users = args.users.split(",")

    def worker(index):
        client = Client(host, port, args.timeout)
        mine = []
        n = 0
        while time.time() < deadline and not stop.is_set():
            user = users[(index + n * args.threads) % len(users)]
            n += 1
            t = time.time()
            if args.oidc:
                status, answer, session = oidc_login(client, args.start, args.oidc, user, args.timeout)
            else:
                status, answer, session = local_login(client, args.start, user, args.password)
            seen = checked = ""
            if session:
                check = client.request(
                    "GET", args.check, {"accept": "application/json", "cookie": f"guichet_session={session}"}
                )
                checked = check.status
                seen = (echoed_user(check) or "?") if check.status == 200 else ""
                if check.status >= 500 and not page_ok(check):
                    answer = check  # counted as a bad page below
            ms = (time.time() - t) * 1000  # the login and the first request after it
            answer.status = status if status > 0 else answer.status
            mine.append(row(t, ms, answer, args.expect_prefix + user, seen, index, checked))
            client.close()
            if args.pause_ms:
                time.sleep(args.pause_ms / 1000)
        with lock:
            rows.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write_rows(args.out, rows)


def write_rows(path, rows):
    rows.sort(key=lambda r: float(r[0]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        w.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Summaries


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_events(path):
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                name, t = line.split()
                events.append((name, float(t)))
    return events


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def cmd_summary(args):
    """One line per phase (from one event to the next, by the time each request started):
    requests by status, timeouts and other transport errors, requests sent again because the
    server closed a connection it had announced as kept alive (`retried`), wrong identities,
    error answers without both languages or the correlation id, latency. `--recovery EVENT`
    adds the time from that event to the end of the first successful request started after it."""
    rows = read_rows(args.records)
    events = read_events(args.events)
    bounds = events + [("end", float("inf"))]
    statuses = args.statuses.split(",")
    head = f"{'phase':<22}{'requests':>9}" + "".join(f"{s:>7}" for s in statuses)
    head += f"{'other':>7}{'timeout':>8}{'conn-err':>9}{'retried':>8}{'wrong-id':>9}{'bad-page':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(f"-- {args.title}")
    print(head)
    totals = {"wrong": 0, "timeout": 0, "bad_page": 0, "retried": 0}
    for (name, start), (_, end) in zip(bounds, bounds[1:]):
        phase = [r for r in rows if start <= float(r["t"]) < end]
        count = {s: 0 for s in statuses}
        other = timeouts = errors = wrong = bad = retried = 0
        for r in phase:
            value = r[args.field]
            if value in count:
                count[value] += 1
            elif r["status"] == "0":
                if r["error"] == "timeout":
                    timeouts += 1
                else:
                    errors += 1
            else:
                other += 1
            if r["seen"] not in ("", r["expected"]):
                wrong += 1
            if r["page_ok"] == "0":
                bad += 1
            if r["error"] == "retried":
                retried += 1
        lat = [float(r["ms"]) for r in phase if r["status"] != "0"]
        totals["wrong"] += wrong
        totals["timeout"] += timeouts
        totals["bad_page"] += bad
        totals["retried"] += retried
        line = f"{name:<22}{len(phase):>9}" + "".join(f"{count[s]:>7}" for s in statuses)
        line += f"{other:>7}{timeouts:>8}{errors:>9}{retried:>8}{wrong:>9}{bad:>9}"
        line += f"{percentile(lat, 50):>9.1f}{percentile(lat, 99):>9.1f}{(max(lat) if lat else float('nan')):>9.1f}"
        print(line)
    for name in args.recovery or []:
        at = dict(events).get(name)
        after = [float(r["t"]) + float(r["ms"]) / 1000 for r in rows if r[args.field] == args.ok and float(r["t"]) >= at]
        first = min(after) if after else None
        print(
            f"recovery after {name}: "
            + (f"first {args.ok} {first - at:.2f} s later" if first else f"no {args.ok} after it")
        )
    # Machine-readable last line for the scripts.
    print(
        f"TOTALS wrong={totals['wrong']} timeout={totals['timeout']} bad_page={totals['bad_page']}"
        f" retried={totals['retried']}"
    )


def cmd_page(args):
    """Fetches URL once and checks the error page: status, both languages, correlation id."""
    host, port, path = split_url(args.url)
    query = urllib.parse.urlsplit(args.url).query
    client = Client(host, port, args.timeout)
    headers = {"accept": "text/html"}
    if args.cookie:
        headers["cookie"] = f"guichet_session={args.cookie}"
    t = time.time()
    answer = client.request("GET", path + ("?" + query if query else ""), headers)
    ms = (time.time() - t) * 1000
    rid = answer.header("x-request-id") or ""
    checks = {
        "status": answer.status == args.status,
        "french": all(s in answer.body for s in args.fr),
        "english": all(s in answer.body for s in args.en),
        "correlation id": bool(rid) and f"<code>{rid}</code>" in answer.body,
    }
    verdict = "ok" if all(checks.values()) else "FAILED"
    print(
        f"{args.label:<34} {answer.status or answer.error:>7} {ms:>8.0f} ms  "
        + "  ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
        + f"  id={rid[:8]}  {verdict}"
    )
    if args.save:
        with open(args.save, "w", encoding="utf-8") as f:
            f.write(answer.body)
    sys.exit(0 if verdict == "ok" else 1)


def cmd_cpu(args):
    """Prints CPU time in clock ticks: the whole machine's busy time, and that of the processes
    of process group `--pgid` (a script and everything it started), to tell how much of the
    machine other work used during a measurement."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    ours = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if int(rest[2]) == args.pgid:  # pgrp
            ours += int(rest[11]) + int(rest[12])  # utime, stime
    print(busy, ours, os.sysconf("SC_CLK_TCK"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("upstream")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", default="app")
    p.add_argument("--mode", default="ok", help="the mode it starts in")
    p.set_defaults(run=cmd_upstream)

    p = sub.add_parser("scim")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--people", required=True)
    p.set_defaults(run=cmd_scim)

    p = sub.add_parser("oidc")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", default="guichet")
    p.add_argument("--client-secret", default="a-client-secret-of-32-bytes-or-more!")
    p.set_defaults(run=cmd_oidc)

    p = sub.add_parser("login")
    p.add_argument("--base", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--start", required=True, help="the protected page the login starts from")
    p.add_argument("--timeout", type=float, default=10)
    p.set_defaults(run=cmd_login)

    p = sub.add_parser("load")
    p.add_argument("--url", action="append", required=True, help="repeat: requests alternate")
    p.add_argument("--cookies", required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--pause-ms", type=float, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_load)

    p = sub.add_parser("logins")
    p.add_argument("--base", required=True)
    p.add_argument("--users", required=True)
    p.add_argument("--password", default="")
    p.add_argument("--oidc", default="", help="the provider's base URL: OIDC logins")
    p.add_argument("--start", required=True, help="the protected page logins start from")
    p.add_argument("--expect-prefix", default="")
    p.add_argument("--check", required=True, help="path requested after each login")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--pause-ms", type=float, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_logins)

    p = sub.add_parser("summary")
    p.add_argument("--records", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--statuses", default="200,302,401,502,503,504")
    p.add_argument("--recovery", action="append")
    p.add_argument("--ok", default="200")
    p.add_argument("--field", default="status", choices=["status", "check"])
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("page")
    p.add_argument("--url", required=True)
    p.add_argument("--status", type=int, required=True)
    p.add_argument("--label", default="page")
    p.add_argument("--cookie", default="")
    p.add_argument("--fr", action="append", default=["Référence"])
    p.add_argument("--en", action="append", default=["reference"])
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--save", default="")
    p.set_defaults(run=cmd_page)

    p = sub.add_parser("cpu")
    p.add_argument("--pgid", type=int, required=True)
    p.set_defaults(run=cmd_cpu)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
