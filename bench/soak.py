#!/usr/bin/env python3
"""The traffic of bench/soak.sh (Python standard library only) and its RSS plot.

  people writes the initial directory file (everyone `utilisateur` on bip)
  drive  mixed traffic against two replicas for --seconds: local and OpenID logins, requests
         alternating between the replicas (each checked for its user's identity and roles),
         role changes in the directory file made effective with `guichet directory
         invalidate`, logouts checked on the OTHER replica; the replicas' VmRSS sampled every
         --rss-every seconds into a CSV. Prints a summary; exits 1 on any 5xx, wrong identity,
         wrong roles after a change was confirmed, or logout not effective.
  svg    the RSS CSV as a small SVG line chart (no plotting library needed).
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultkit  # noqa: E402  (the HTTP client and login flows)

HOST_HEADER = "guichet.test"

# Password logins in flight at once, over both replicas. Each replica checks at most 2 x cores
# passwords at a time and answers 503 ("very busy, try again") beyond: load shedding the soak
# is not about. People sign in far less often than they make requests; the gate keeps this
# traffic's logins under that bound.
LOGIN_GATE = threading.Semaphore(3)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {}  # status -> count
        self.errors = {}  # transport error -> count
        self.retried = 0
        self.wrong_identity = []
        self.wrong_roles = []
        self.logins = {"local": 0, "oidc": 0}
        self.unexpected = []
        self.logouts = 0
        self.logout_refused_at_once = 0
        self.logout_delays = []
        self.logout_not_effective = []
        self.role_changes = 0
        self.role_delays = []
        self.role_not_effective = []
        self.invalidate_failures = []

    def count(self, answer):
        with self.lock:
            if answer.status:
                self.requests[answer.status] = self.requests.get(answer.status, 0) + 1
            else:
                self.errors[answer.error] = self.errors.get(answer.error, 0) + 1
            if answer.retried:
                self.retried += 1

    def five_xx(self):
        return sum(n for status, n in self.requests.items() if status >= 500)


def roles_seen(answer):
    try:
        headers = dict(json.loads(answer.body)["headers"])
    except (ValueError, KeyError, TypeError):
        return None
    return headers.get("x-remote-roles", "")


class People:
    """The directory file: people and their roles on bip, rewritten whole on every change."""

    def __init__(self, path, users):
        self.path = path
        self.lock = threading.Lock()
        self.roles = {user: ["utilisateur"] for user in users}
        self.write()

    def write(self):
        lines = ["people:"]
        for user, roles in sorted(self.roles.items()):
            lines.append(f"  - id: p-{user}")
            lines.append(f"    attributes: {{ email: {user}@example.org, displayName: {user} }}")
            lines.append(f"    roles: {{ bip: [{', '.join(roles)}] }}")
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path)

    def toggle(self, user):
        with self.lock:
            roles = self.roles[user]
            self.roles[user] = ["utilisateur"] if "admin" in roles else ["utilisateur", "admin"]
            self.write()
            return list(self.roles[user])


def replica_clients(args):
    return [faultkit.Client("127.0.0.1", port, args.timeout, HOST_HEADER) for port in args.ports]


def get(stats, client, path, session):
    answer = client.request(
        "GET", path, {"accept": "application/json", "cookie": f"guichet_session={session}"}
    )
    stats.count(answer)
    return answer


def logout(stats, client, session):
    body = urllib.parse.urlencode({"return_to": "/bip/"})
    answer = client.request(
        "POST",
        "/.guichet/logout",
        {"accept": "text/html", "origin": f"http://{HOST_HEADER}", "cookie": f"guichet_session={session}"},
        body,
    )
    stats.count(answer)
    return answer


def until_refused(stats, client, path, session, within):
    """Asks until the session is no longer served (401): (refused at the first try, seconds
    it took, last status)."""
    started = time.time()
    first = True
    while True:
        answer = get(stats, client, path, session)
        if answer.status == 401:
            return first, time.time() - started, 401
        if time.time() - started > within:
            return False, None, answer.status
        first = False
        time.sleep(0.02)


def user_worker(args, stats, index, deadline, oidc):
    """One person: sign in (on either replica), requests alternating between the replicas,
    sign out on one and check the cookie is refused on the other; again until the deadline."""
    rng = random.Random(index)
    clients = replica_clients(args)
    user = f"sso{index:02d}" if oidc else f"u{index:02d}"
    path = "/portail/" if oidc else "/bip/"
    expected_roles = None if oidc else "utilisateur"
    while time.time() < deadline:
        first = rng.randrange(2)
        if oidc:
            status, answer, session = faultkit.oidc_login(clients[first], path, args.op, user, args.timeout)
        else:
            with LOGIN_GATE:
                status, answer, session = faultkit.local_login(clients[first], path, user, "alice")
        stats.count(answer)
        if not session:
            with stats.lock:
                stats.unexpected.append((user, status, answer.error))
            time.sleep(0.5)
            continue
        with stats.lock:
            stats.logins["oidc" if oidc else "local"] += 1
        for n in range(rng.randrange(args.requests // 2, args.requests + 1)):
            answer = get(stats, clients[(first + n) % 2], path, session)
            if answer.status == 200:
                seen = faultkit.echoed_user(answer)
                if seen != user:
                    with stats.lock:
                        stats.wrong_identity.append((user, seen, args.ports[(first + n) % 2]))
                if expected_roles is not None and roles_seen(answer) != expected_roles:
                    with stats.lock:
                        stats.wrong_roles.append((user, roles_seen(answer)))
            elif answer.status >= 500 or answer.status == 0:
                pass  # counted; any is a failure of the run
            else:
                with stats.lock:
                    stats.unexpected.append((user, f"request answered {answer.status}", ""))
            if args.pause_ms:
                time.sleep(args.pause_ms / 1000)
        on = rng.randrange(2)
        answer = logout(stats, clients[on], session)
        if answer.status not in (200, 302):
            with stats.lock:
                stats.logout_not_effective.append((user, f"logout answered {answer.status}"))
            continue
        # The cookie must now be refused on the other replica, and on this one.
        at_once, took, last = until_refused(stats, clients[1 - on], path, session, args.logout_bound)
        again = get(stats, clients[on], path, session)
        with stats.lock:
            stats.logouts += 1
            if at_once:
                stats.logout_refused_at_once += 1
            if took is None:
                stats.logout_not_effective.append((user, f"other replica answered {last}"))
            else:
                stats.logout_delays.append(took)
            if again.status != 401:
                stats.logout_not_effective.append((user, f"same replica answered {again.status}"))
    for c in clients:
        c.close()


def role_worker(args, stats, people, deadline):
    """Every --role-every seconds: a role change in the directory file for one of the role
    users, `guichet directory invalidate` for them, then both replicas must show the new roles
    (and /bip/admin must follow) within --role-bound seconds."""
    clients = replica_clients(args)
    users = sorted(u for u in people.roles if u.startswith("r"))
    sessions = {}
    for i, user in enumerate(users):
        with LOGIN_GATE:
            status, answer, session = faultkit.local_login(clients[i % 2], "/bip/", user, "alice")
        stats.count(answer)
        if not session:
            stats.unexpected.append((user, status, answer.error))
            return
        sessions[user] = session
    n = 0
    while time.time() + args.role_every < deadline:
        time.sleep(args.role_every)
        user = users[n % len(users)]
        n += 1
        roles = people.toggle(user)
        # The file backend notices a change at most once a second: let it, before
        # invalidating (an invalidation that reads the file too early caches the old entry).
        time.sleep(args.settle)
        done = subprocess.run(
            [args.guichet, "directory", "invalidate", "--config", args.config,
             "--attribute", "email", "--value", f"{user}@example.org"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if done.returncode != 0:
            stats.invalidate_failures.append(done.stderr.strip())
            continue
        started = time.time()
        want = ",".join(roles)
        pending = {0, 1}
        last = {}
        while pending and time.time() - started < args.role_bound:
            for i in sorted(pending):
                answer = get(stats, clients[i], "/bip/", sessions[user])
                admin = get(stats, clients[i], "/bip/admin/", sessions[user])
                seen = roles_seen(answer)
                last[i] = (answer.status, seen, admin.status)
                if (
                    answer.status == 200
                    and seen is not None
                    and sorted(seen.split(",")) == sorted(roles)
                    and admin.status == (200 if "admin" in roles else 403)
                ):
                    pending.discard(i)
            if pending:
                time.sleep(0.05)
        with stats.lock:
            stats.role_changes += 1
            if pending:
                stats.role_not_effective.append((user, want, {i: last.get(i) for i in sorted(pending)}))
            else:
                stats.role_delays.append(time.time() - started)
    for c in clients:
        c.close()


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_worker(args, stats, deadline, samples):
    started = time.time()
    with open(args.rss_csv, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["seconds"] + [f"replica{i + 1}_rss_kib" for i in range(len(args.pids))] + ["requests"])
        while True:
            with stats.lock:
                total = sum(stats.requests.values())
            row = [f"{time.time() - started:.0f}"] + [rss_kib(pid) for pid in args.pids] + [total]
            samples.append(row)
            out.writerow(row)
            f.flush()
            if time.time() >= deadline:
                break
            time.sleep(min(args.rss_every, max(0.0, deadline - time.time())))


def fmt(values):
    if not values:
        return "-"
    values = sorted(values)
    return f"median {values[len(values) // 2] * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"


def local_users(count):
    """The local accounts: u01... sign in and out, r01..r04 have their roles changed."""
    return [f"u{i:02d}" for i in range(1, count + 1)] + [f"r{i:02d}" for i in range(1, 5)]


def cmd_people(args):
    People(args.out, local_users(args.users))
    print(" ".join(local_users(args.users)))


def cmd_drive(args):
    people = People(args.people, local_users(args.users))
    stats = Stats()
    deadline = time.time() + args.seconds
    samples = []
    threads = [threading.Thread(target=rss_worker, args=(args, stats, deadline, samples))]
    threads += [
        threading.Thread(target=user_worker, args=(args, stats, i, deadline, False))
        for i in range(1, args.users + 1)
    ]
    if args.op:
        threads += [
            threading.Thread(target=user_worker, args=(args, stats, i, deadline, True))
            for i in range(1, args.oidc_users + 1)
        ]
    threads.append(threading.Thread(target=role_worker, args=(args, stats, people, deadline)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    total = sum(stats.requests.values())
    print(f"requests: {total} in {args.seconds} s ({total / args.seconds:.0f}/s), by status: "
          + ", ".join(f"{k}={v}" for k, v in sorted(stats.requests.items())))
    print(f"transport errors: {stats.errors or 'none'}; requests retried on a closed kept-alive connection: {stats.retried}")
    print(f"5xx: {stats.five_xx()}")
    print(f"logins: {stats.logins['local']} local, {stats.logins['oidc']} OpenID; failed logins and other unexpected answers: {len(stats.unexpected)} {stats.unexpected[:5]}")
    print(f"wrong identity: {len(stats.wrong_identity)} {stats.wrong_identity[:5]}; wrong roles: {len(stats.wrong_roles)} {stats.wrong_roles[:5]}")
    print(f"logouts: {stats.logouts}, cookie refused on the other replica at the first request: "
          f"{stats.logout_refused_at_once}, refused within {args.logout_bound} s: {len(stats.logout_delays)} "
          f"({fmt(stats.logout_delays)}); not effective: {len(stats.logout_not_effective)} {stats.logout_not_effective[:5]}")
    print(f"role changes: {stats.role_changes}, seen on both replicas: {len(stats.role_delays)} "
          f"({fmt(stats.role_delays)} after the invalidation); not seen within {args.role_bound} s: "
          f"{len(stats.role_not_effective)} {stats.role_not_effective[:5]}; invalidate failures: {len(stats.invalidate_failures)}")
    for i, pid in enumerate(args.pids):
        values = [row[1 + i] for row in samples if row[1 + i] is not None]
        if values:
            print(f"replica {i + 1} (pid {pid}) VmRSS: start {values[0] / 1024:.1f} MiB, end {values[-1] / 1024:.1f} MiB, "
                  f"max {max(values) / 1024:.1f} MiB ({len(values)} samples)")
    failed = (
        stats.five_xx()
        or stats.errors
        or stats.wrong_identity
        or stats.wrong_roles
        or stats.logout_not_effective
        or stats.role_not_effective
        or stats.invalidate_failures
        or stats.unexpected
    )
    print("verdict: " + ("FAILED" if failed else "ok (zero 5xx, no wrong identity, every logout and role change effective on both replicas)"))
    sys.exit(1 if failed else 0)


def cmd_svg(args):
    with open(args.csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    series = [k for k in rows[0] if k.endswith("_rss_kib")]
    xs = [float(r["seconds"]) for r in rows]
    values = {s: [float(r[s]) / 1024 if r[s] else None for r in rows] for s in series}
    every = [v for s in series for v in values[s] if v is not None]
    width, height, left, right, top, bottom = 640, 300, 60, 20, 40, 45
    x_max = max(xs) or 1
    top_value = max(every) * 1.1
    y_step = next(s for s in (5, 10, 20, 25, 50, 100, 200, 500, 1000) if top_value / s <= 6)
    y_ticks = int(-(-top_value // y_step))
    y_max = y_ticks * y_step

    def px(x):
        return left + x / x_max * (width - left - right)

    def py(y):
        return top + (1 - y / y_max) * (height - top - bottom)

    colors = ["#000091", "#ce0500", "#18753c"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{args.title}</text>',
    ]
    for i in range(y_ticks + 1):
        y = y_step * i
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.0f}</text>')
    step = 60 if x_max > 300 else 10
    t = 0
    while t <= x_max:
        out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{height - bottom}" stroke="#f0f0f0"/>')
        out.append(f'<text x="{px(t):.1f}" y="{height - bottom + 15}" text-anchor="middle">{t:.0f}</text>')
        t += step
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="#333"/>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" stroke="#333"/>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">seconds</text>')
    out.append(f'<text x="14" y="{(top + height - bottom) / 2}" text-anchor="middle" transform="rotate(-90 14 {(top + height - bottom) / 2})">VmRSS (MiB)</text>')
    for i, s in enumerate(series):
        points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, values[s]) if v is not None)
        color = colors[i % len(colors)]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        label = s.replace("_rss_kib", "").replace("replica", "replica ")
        out.append(f'<rect x="{left + 10 + i * 110}" y="{top + 6}" width="12" height="3" fill="{color}"/>')
        out.append(f'<text x="{left + 26 + i * 110}" y="{top + 10}">{label}</text>')
    out.append("</svg>")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("drive")
    p.add_argument("--ports", type=int, nargs=2, required=True, help="the two replicas")
    p.add_argument("--pids", type=int, nargs="+", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--people", required=True, help="the directory file to write")
    p.add_argument("--config", required=True, help="for `guichet directory invalidate`")
    p.add_argument("--guichet", required=True, help="the guichet binary")
    p.add_argument("--op", default="", help="the OpenID provider's base URL (OIDC users)")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--oidc-users", type=int, default=2)
    p.add_argument("--requests", type=int, default=200, help="most requests per session")
    p.add_argument("--pause-ms", type=float, default=5)
    p.add_argument("--role-every", type=float, default=5)
    p.add_argument("--role-bound", type=float, default=10)
    p.add_argument("--settle", type=float, default=1.2, help="seconds between a file edit and its invalidation")
    p.add_argument("--logout-bound", type=float, default=5)
    p.add_argument("--rss-every", type=float, default=10)
    p.add_argument("--rss-csv", required=True)
    p.add_argument("--timeout", type=float, default=10)
    p.set_defaults(run=cmd_drive)
    p = sub.add_parser("people", help="writes the initial directory file, prints the users")
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=8)
    p.set_defaults(run=cmd_people)
    p = sub.add_parser("svg")
    p.add_argument("--csv", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="Guichet soak: resident memory of two replicas")
    p.set_defaults(run=cmd_svg)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
