"""Publishing and deployment checks (package registries, container registries, clusters,
infrastructure, cloud CLIs, GitHub releases and merges) and destructive database commands."""

from __future__ import annotations

import re
from collections.abc import Callable

from corral.review.findings import Cmd, Scan
from corral.review.places import Place

PUBLISH_VERBS = ("publish", "release", "deploy", "push", "upload", "ship", "roll out",
                 "rollout", "apply")
FROM_URL = re.compile(r"(git\+)?https?://|git\+ssh://|git@")



def publish(cmd: Cmd, what: str, risk: str = "high", objects: tuple[str, ...] = (),
             category: str = "publishing", scan: Scan | None = None) -> None:
    assert scan is not None
    if any(t in ("--dry-run", "--dryrun") for t in cmd.args) and cmd.name in (
            "npm", "pnpm", "yarn", "bun", "cargo", "uv", "poetry", "gem", "helm", "kubectl",
            "aws", "twine", "python", "python3"):
        return  # nothing leaves the machine
    words = tuple(t for t in cmd.args if not t.startswith("-") and len(t) >= 3)
    scan.add(category, risk, what, PUBLISH_VERBS
             if category == "publishing" else ("delete", "destroy", "remove", "tear down",
                                               "drop"), (cmd.name, *objects, *words[:6]))


_PKG = {"npm": "the npm registry", "pnpm": "the npm registry", "yarn": "the npm registry",
        "bun": "the npm registry", "twine": "PyPI", "poetry": "PyPI", "flit": "PyPI",
        "hatch": "PyPI", "uv": "PyPI", "pdm": "PyPI", "cargo": "crates.io",
        "gem": "RubyGems", "nuget": "NuGet", "dotnet": "NuGet"}


def _package(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = [t for t in cmd.args if not t.startswith("-")]
    sub = " ".join(a[:2])
    reg = _PKG[cmd.name]
    if a[:1] in (["publish"], ["upload"], ["push"]) or sub in ("npm publish", "nuget push"):
        if cmd.name == "gem" and a[:1] != ["push"]:
            return
        publish(cmd, f"publishes the package to {reg} (`{cmd.name} {a[0]}`)", objects=(
            reg.split()[-1], "package", "npm" if "npm" in reg else reg.lower()), scan=scan)
    elif a[:1] in (["unpublish"], ["yank"], ["deprecate"]):
        publish(cmd, f"withdraws a published package from {reg} (`{cmd.name} {a[0]}`)",
                 scan=scan)
    elif a[:1] in (["install"], ["i"], ["add"]) and any(FROM_URL.match(t) for t in a[1:]):
        url = next(t for t in a[1:] if FROM_URL.match(t))
        scan.add("security", "medium", f"installs a package straight from {url[:60]} (its "
                 "install scripts run)", ("install",), (url,))
    elif cmd.name in ("npm", "pnpm", "yarn") and a[:2] == ["config", "set"] and any(
            "strict-ssl" in t or "registry" in t for t in a):
        tls_off = any("strict-ssl" in t for t in a) and any(t in ("false", "0") for t in a)
        scan.add("security", "high" if tls_off else "medium",
                 f"{'turns off TLS checks in' if tls_off else 'changes'} the package registry "
                 f"settings ({' '.join(a[2:4])})", ("registry", "config", "strict-ssl"), ())



def _cloud(cmd: Cmd, place: Place, scan: Scan) -> None:
    words = [t for t in cmd.args if not t.startswith("-")]
    text = " ".join(words[:4])
    if cmd.name == "aws" and words[:1] == ["s3"] and len(words) >= 2:
        verb = words[1]
        if verb in ("cp", "sync", "mv") and words[-1].startswith("s3://") and len(words) >= 4:
            scan.senders.append((words[-1], "other"))
            publish(cmd, f"uploads {place.show(place.resolve(words[2]) or words[2])} to "
                     f"{words[-1]}", objects=(words[-1],), scan=scan)
        elif verb in ("rm", "rb"):
            publish(cmd, f"deletes S3 data ({text})", category="destructive", scan=scan)
        return
    if cmd.name == "aws" and any(w in ("create-access-key", "create-login-profile")
                                 for w in words):
        scan.add("credentials", "high", f"creates new cloud credentials ({text})", (), ())
        return
    if any(w.startswith(("delete", "terminate", "remove", "destroy", "purge")) for w in words):
        publish(cmd, f"deletes cloud resources (`{cmd.name} {text}`)",
                 category="destructive", scan=scan)
    elif any(w in ("deploy", "set-iam-policy", "add-iam-policy-binding", "put-bucket-policy",
                   "put-bucket-acl", "update-function-code", "create-stack", "update-stack",
                   "run-instances") for w in words):
        publish(cmd, f"deploys or changes cloud resources (`{cmd.name} {text}`)", scan=scan)


_DEPLOY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # tool: (subcommands that change a live system, subcommands that destroy one)
    "kubectl": (frozenset({"apply", "create", "replace", "patch", "scale", "rollout", "set",
                           "edit", "drain", "cordon", "taint", "run", "expose", "autoscale"}),
                frozenset({"delete"})),
    "helm": (frozenset({"install", "upgrade", "rollback", "push"}), frozenset({"uninstall",
                                                                             "delete"})),
    "terraform": (frozenset({"apply", "import", "taint", "state"}), frozenset({"destroy"})),
    "tofu": (frozenset({"apply", "import", "taint", "state"}), frozenset({"destroy"})),
    "pulumi": (frozenset({"up", "update", "refresh", "import"}), frozenset({"destroy"})),
    "firebase": (frozenset({"deploy"}), frozenset()),
    "netlify": (frozenset({"deploy"}), frozenset()),
    "fly": (frozenset({"deploy", "launch", "scale"}), frozenset({"destroy"})),
    "flyctl": (frozenset({"deploy", "launch", "scale"}), frozenset({"destroy"})),
    "serverless": (frozenset({"deploy"}), frozenset({"remove"})),
    "sls": (frozenset({"deploy"}), frozenset({"remove"})),
    "eb": (frozenset({"deploy", "create"}), frozenset({"terminate"})),
    "cdk": (frozenset({"deploy"}), frozenset({"destroy"})),
    "sam": (frozenset({"deploy", "sync"}), frozenset({"delete"})),
    "wrangler": (frozenset({"deploy", "publish"}), frozenset({"delete"})),
    "heroku": (frozenset({"releases:rollback", "ps:scale", "config:set"}),
               frozenset({"apps:destroy"})),
    "mvn": (frozenset({"deploy", "release:perform"}), frozenset()),
    "ansible-playbook": (frozenset({"*"}), frozenset()),
    "vercel": (frozenset({"*", "deploy", "--prod"}), frozenset({"remove", "rm"})),
    "skaffold": (frozenset({"run", "deploy", "apply"}), frozenset({"delete"})),
    "argocd": (frozenset({"app sync", "app set", "app create", "app rollback", "app patch"}),
               frozenset({"app delete"})),
    "nomad": (frozenset({"job run", "run", "job dispatch"}), frozenset({"job stop", "stop"})),
    "kamal": (frozenset({"deploy", "setup", "rollback"}), frozenset({"remove"})),
}


def _deploy(cmd: Cmd, place: Place, scan: Scan) -> None:
    change, destroy = _DEPLOY[cmd.name]
    words = [t for t in cmd.args if not t.startswith("-")]
    sub = words[0] if words else ""
    if cmd.name == "kubectl":
        if sub in ("get", "describe") and any(w in ("secret", "secrets") or w.startswith(
                "secret/") for w in words) and (sub == "describe" or cmd.value("-o", "--output")):
            scan.add("credentials", "high", "reads Kubernetes secrets", ("secret",), ())
            return
        if sub == "config" and "view" in words and "--raw" in cmd.args:
            scan.add("credentials", "high", "prints the Kubernetes credentials (config view "
                     "--raw)", (), ())
            return
    if cmd.name == "kubectl" and sub == "exec" and "--" in cmd.args:
        from corral.review.scan import scan_remote

        inner = cmd.args[cmd.args.index("--") + 1:]
        if inner:
            scan_remote(tuple(inner), f"pod {words[1] if len(words) > 1 else '?'}", scan)
        return
    target = " ".join(words[:3]) or " ".join(cmd.args[:2])
    if cmd.name in ("argocd", "nomad") and " ".join(words[:2]) in change | destroy:
        sub = " ".join(words[:2])
    if sub in destroy:
        risk = "critical" if cmd.name in ("terraform", "tofu", "pulumi") or (
            cmd.name == "kubectl" and any(w in ("namespace", "ns", "--all") for w in cmd.args)) \
            else "high"
        publish(cmd, f"destroys live infrastructure (`{cmd.name} {target}`)", risk=risk,
                 category="destructive", scan=scan)
    elif sub in change or ("*" in change and (sub not in ("help", "version", "plan", "list",
                                                         "ls", "login", "whoami", "inspect")
                                             or "--prod" in cmd.args)):
        publish(cmd, f"deploys to or changes a live system (`{cmd.name} {target}`)",
                 objects=tuple(w for w in cmd.args if w in ("prod", "production", "staging")),
                 scan=scan)


def _gradle(cmd: Cmd, place: Place, scan: Scan) -> None:
    if any(t.startswith("publish") for t in cmd.args):
        publish(cmd, "publishes artifacts (gradle publish)", scan=scan)


def _container(cmd: Cmd, place: Place, scan: Scan) -> None:
    words = [t for t in cmd.args if not t.startswith("-")]
    sub = words[0] if words else ""
    if sub == "stack" and "deploy" in words:
        publish(cmd, f"deploys a Docker stack (`{cmd.name} stack deploy`)", scan=scan)
    elif sub == "push" or (sub in ("buildx", "build") and "--push" in cmd.args):
        image = words[1] if len(words) > 1 and sub == "push" else "the image"
        publish(cmd, f"pushes {image} to a container registry", objects=(image,), scan=scan)
    elif sub in ("run", "create", "exec"):
        if sub == "exec":
            _container_exec(cmd, scan)
        a = " ".join(cmd.args)
        if "--privileged" in cmd.args or re.search(r"(-v|--volume|--mount)[ =]+(/|/var/run/"
                                                   r"docker\.sock|/etc|/root|~)(:|,|\s)", a) or \
                "--pid=host" in a or "--cap-add=SYS_ADMIN" in a or "--cap-add=ALL" in a:
            scan.add("security", "high", "gives a container root access to the host "
                     "(privileged, host mounts or host PID)", ("privileged", "docker"), ())
    elif sub in ("system", "volume") and any(w in ("prune", "rm") for w in words) and (
            sub == "volume" or "--volumes" in cmd.args):
        scan.add("destructive", "high", "deletes Docker volumes (their data is gone)",
                 ("prune", "delete", "remove", "clean"), ("volume", "volumes", "docker"))


def _container_exec(cmd: Cmd, scan: Scan) -> None:
    from corral.review.scan import scan_remote

    args = list(cmd.args)
    i = args.index("exec") + 1
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-e", "--env", "-u", "--user", "-w", "--workdir",
                              "--env-file") else 1
    if i + 1 < len(args):
        scan_remote(tuple(args[i + 1:]), f"container {args[i]}", scan)


def _gh(cmd: Cmd, place: Place, scan: Scan) -> None:
    w = [t for t in cmd.args if not t.startswith("-")]
    pair = tuple(w[:2])
    if pair in (("release", "create"), ("release", "upload"), ("release", "edit")):
        publish(cmd, f"publishes a GitHub release (`gh {' '.join(w[:3])}`)", scan=scan)
    elif pair == ("release", "delete"):
        publish(cmd, "deletes a GitHub release", category="destructive", scan=scan)
    elif pair == ("pr", "merge"):
        publish(cmd, f"merges a pull request (`gh {' '.join(w[:3])}`)", objects=("merge",),
                 scan=scan)
    elif pair == ("repo", "delete"):
        scan.add("destructive", "critical", "deletes a GitHub repository")
    elif pair in (("repo", "edit"), ("repo", "create")) and any(
            "public" in t for t in cmd.args):
        scan.add("publishing", "high", "makes a repository public", ("public", "publish",
                                                                     "open source"), ())
    elif pair in (("secret", "set"), ("variable", "set"), ("workflow", "run")):
        scan.add("publishing", "medium", f"changes CI settings (`gh {' '.join(pair)}`)",
                 ("secret", "workflow", "ci"), ())
    elif w[:1] == ["api"] and re.search(r"(-X|--method)[ =]?(DELETE|POST|PUT|PATCH)",
                                        " ".join(cmd.args)):
        scan.add("publishing", "medium", "changes GitHub data through the API (gh api)",
                 ("api",), ())


_SQL_DROP = re.compile(r"\bDROP\s+(DATABASE|SCHEMA|TABLE)\b|\bTRUNCATE\s+\w|\bFLUSHALL\b|"
                       r"\bFLUSHDB\b|dropDatabase\(|\bDELETE\s+FROM\s+[\w.\"]+\s*(;|$)", re.I)


def _database(cmd: Cmd, place: Place, scan: Scan) -> None:
    text = " ".join(cmd.args)
    if cmd.name == "dropdb" or _SQL_DROP.search(text):
        m = _SQL_DROP.search(text)
        what = m.group(0).strip() if m else "dropdb"
        scan.add("destructive", "high", f"deletes database data ({what})",
                 ("drop", "delete", "truncate", "reset the database", "wipe"),
                 tuple(t for t in cmd.args if not t.startswith("-"))[:4])


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    **{n: _package for n in _PKG},
    **{n: _cloud for n in ("aws", "gcloud", "az", "gsutil", "s3cmd", "rclone", "doctl")},
    **{n: _deploy for n in _DEPLOY},
    "gradle": _gradle, "gradlew": _gradle,
    "docker": _container, "podman": _container, "buildah": _container, "nerdctl": _container,
    "gh": _gh,
    **{n: _database for n in ("psql", "mysql", "mariadb", "sqlite3", "mongo", "mongosh",
                              "redis-cli", "dropdb", "cqlsh", "clickhouse-client")},
}
