"""The credential catalogue: where developer tools keep logins, tokens and keys.

Every entry is hidden from sandboxed commands by default (a deny-read entry, checked again at
each spawn, so a file that appears later is hidden from the next command). Where the sandbox can
write (a writable home directory...), a missing entry also gets a read-only placeholder for the
run, as ``corral.sandbox.homelock`` does, so a command cannot create it either. A profile may
re-allow entries by id (``allow_credentials``); config and requirements add entries
(``[[sandbox.credential_files]]``, the admin's ones enforced).

Path syntax: ``~/`` is the home directory; ``$VAR`` a directory or file an environment variable
names (skipped when unset; ``KUBECONFIG`` may list several); a trailing ``/`` marks a
directory; ``*`` globs are expanded at each spawn.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from corral.errors import CorralError
from corral.record import Frozen
from corral.sandbox.locked import Locked, is_file_placeholder
from corral.sandbox.profiles import ROOT, Access, FsEntry, has_glob, iglob
from corral.sandbox.protected import is_placeholder


class Credential(Frozen):
    """One catalogue entry: the tool it belongs to, where it lives, why it is secret."""

    _fields = ("id", "tool", "category", "paths", "reason")
    id: str
    tool: str
    category: str
    paths: tuple[str, ...]
    reason: str

    def __init__(self, id: str, tool: str, category: str, paths: tuple[str, ...],
                 reason: str) -> None:
        self._set(id=id, tool=tool, category=category, paths=paths, reason=reason)


def _c(id: str, tool: str, category: str, paths: tuple[str, ...], reason: str) -> Credential:
    return Credential(id, tool, category, paths, reason)


CLOUD, GIT, REG, DB, VAULT, INFRA, KEYRING, BROWSER, HIST, AGENT = (
    "cloud CLI", "git host", "package registry", "database client", "secret manager",
    "infrastructure", "keyring", "browser profile", "history", "coding agent")

CATALOGUE: tuple[Credential, ...] = (
    # cloud CLIs
    _c("aws", "AWS CLI", CLOUD, ("~/.aws/", "$AWS_SHARED_CREDENTIALS_FILE", "$AWS_CONFIG_FILE"),
       "access keys, SSO tokens and role sessions"),
    _c("gcloud", "Google Cloud SDK", CLOUD, ("~/.config/gcloud/", "$CLOUDSDK_CONFIG/",
       "$GOOGLE_APPLICATION_CREDENTIALS"), "OAuth refresh tokens, service account keys, ADC"),
    _c("azure", "Azure CLI", CLOUD, ("~/.azure/", "$AZURE_CONFIG_DIR/"),
       "MSAL token cache and service principal secrets"),
    _c("doctl", "DigitalOcean doctl", CLOUD, ("~/.config/doctl/",), "API access token"),
    _c("oci", "Oracle Cloud CLI", CLOUD, ("~/.oci/",), "API signing key and config"),
    _c("ibmcloud", "IBM Cloud CLI", CLOUD, ("~/.bluemix/",), "IAM tokens"),
    _c("linode", "Linode CLI", CLOUD, ("~/.config/linode-cli",), "API token"),
    _c("hcloud", "Hetzner hcloud", CLOUD, ("~/.config/hcloud/",), "API token"),
    _c("flyctl", "Fly.io flyctl", CLOUD, ("~/.fly/",), "access token"),
    _c("heroku", "Heroku CLI", CLOUD, ("~/.config/heroku/",), "API token"),
    _c("vercel", "Vercel CLI", CLOUD, ("~/.local/share/com.vercel.cli/",), "auth token"),
    _c("netlify", "Netlify CLI", CLOUD, ("~/.config/netlify/",), "access token"),
    _c("firebase", "Firebase CLI", CLOUD, ("~/.config/configstore/firebase-tools.json",),
       "OAuth refresh token"),
    _c("wrangler", "Cloudflare wrangler", CLOUD, ("~/.wrangler/", "~/.config/.wrangler/"),
       "OAuth and API tokens"),
    # git hosts
    _c("gh", "GitHub CLI", GIT, ("~/.config/gh/hosts.yml",), "GitHub OAuth token"),
    _c("glab", "GitLab CLI", GIT, ("~/.config/glab-cli/config.yml",), "GitLab token"),
    _c("tea", "Gitea tea", GIT, ("~/.config/tea/config.yml",), "Gitea token"),
    _c("hub", "hub", GIT, ("~/.config/hub",), "GitHub OAuth token"),
    _c("git-credentials", "git credential store", GIT,
       ("~/.git-credentials", "~/.config/git/credentials"), "plain-text HTTPS passwords"),
    _c("netrc", "netrc (curl, git, ftp)", GIT, ("~/.netrc",), "logins for any host"),
    _c("ssh", "OpenSSH", GIT, ("~/.ssh/",), "private keys"),
    # package registries
    _c("npm", "npm / yarn", REG, ("~/.npmrc", "~/.yarnrc.yml"),
       "registry auth tokens"),
    _c("pypi", "twine / PyPI", REG, ("~/.pypirc",), "PyPI upload tokens"),
    _c("poetry", "Poetry", REG, ("~/.config/pypoetry/auth.toml",), "repository credentials"),
    _c("cargo", "Cargo", REG, ("~/.cargo/credentials.toml", "~/.cargo/credentials"),
       "crates.io publish token"),
    _c("gem", "RubyGems", REG, ("~/.gem/credentials", "~/.local/share/gem/credentials"),
       "RubyGems API key"),
    _c("bundler", "Bundler", REG, ("~/.bundle/config",), "private gem source credentials"),
    _c("maven", "Maven", REG, ("~/.m2/settings.xml", "~/.m2/settings-security.xml"),
       "repository passwords and their master key"),
    _c("gradle", "Gradle", REG, ("~/.gradle/gradle.properties",),
       "publishing and signing credentials"),
    _c("nuget", "NuGet", REG, ("~/.nuget/NuGet/NuGet.Config", "~/.config/NuGet/NuGet.Config"),
       "feed API keys and passwords"),
    _c("composer", "Composer", REG, ("~/.composer/auth.json", "~/.config/composer/auth.json"),
       "registry and GitHub tokens"),
    _c("docker", "Docker", REG, ("~/.docker/config.json", "$DOCKER_CONFIG/config.json"),
       "registry auths"),
    _c("podman", "Podman / skopeo", REG, ("~/.config/containers/auth.json",), "registry auths"),
    _c("helm", "Helm", REG, ("~/.config/helm/registry/config.json",
                             "~/.config/helm/repositories.yaml"), "chart repository logins"),
    _c("hex", "Hex (Elixir)", REG, ("~/.hex/hex.config",), "API key"),
    _c("pub", "Dart pub", REG, ("~/.config/dart/pub-credentials.json",), "OAuth token"),
    _c("conda", "conda / anaconda", REG, ("~/.continuum/",), "anaconda.org token"),
    # databases
    _c("pgpass", "PostgreSQL", DB, ("~/.pgpass", "$PGPASSFILE"), "database passwords"),
    _c("mysql", "MySQL / MariaDB", DB, ("~/.my.cnf", "~/.mylogin.cnf"), "database passwords"),
    _c("mongo", "MongoDB shell", DB, ("~/.mongorc.js", "~/.mongoshrc.js", "~/.mongodb/"),
       "connection strings with passwords"),
    _c("redis", "redis-cli", DB, ("~/.redisclirc",), "AUTH password"),
    _c("dbeaver", "DBeaver", DB, ("~/.local/share/DBeaverData/workspace6/General/.dbeaver/",),
       "saved connection credentials"),
    # secret managers
    _c("vault", "HashiCorp Vault", VAULT, ("~/.vault-token",), "Vault token"),
    _c("1password", "1Password CLI", VAULT, ("~/.config/op/", "~/.op/"), "session and account"),
    _c("bitwarden", "Bitwarden CLI", VAULT, ("~/.config/Bitwarden CLI/",),
       "encrypted vault and session"),
    _c("pass", "pass", VAULT, ("~/.password-store/", "$PASSWORD_STORE_DIR/"),
       "the password store"),
    _c("gnupg", "GnuPG", VAULT, ("~/.gnupg/", "$GNUPGHOME/"), "private keys"),
    _c("sops-age", "sops / age", VAULT, ("~/.config/sops/age/keys.txt", "$SOPS_AGE_KEY_FILE"),
       "age private keys"),
    _c("ansible-vault", "Ansible", VAULT, ("~/.vault_pass", "~/.vault_pass.txt",
                                           "~/.ansible/vault_pass"), "vault password file"),
    _c("doppler", "Doppler CLI", VAULT, ("~/.doppler/",), "service token"),
    # infrastructure
    _c("terraform", "Terraform", INFRA, ("~/.terraform.d/credentials.tfrc.json", "~/.terraformrc"),
       "Terraform Cloud API token"),
    _c("kube", "kubectl", INFRA, ("~/.kube/", "$KUBECONFIG"), "cluster credentials"),
    _c("pulumi", "Pulumi", INFRA, ("~/.pulumi/credentials.json",), "Pulumi access token"),
    _c("rclone", "rclone", INFRA, ("~/.config/rclone/rclone.conf",), "cloud storage tokens"),
    _c("s3cmd", "s3cmd", INFRA, ("~/.s3cfg",), "S3 access keys"),
    _c("boto", "boto / gsutil", INFRA, ("~/.boto",), "cloud storage keys"),
    _c("minio", "MinIO client", INFRA, ("~/.mc/config.json", "~/.mcli/config.json"),
       "S3 access keys"),
    _c("openvpn-wg", "WireGuard / OpenVPN", INFRA, ("~/.config/wireguard/", "~/.cert/"),
       "VPN keys"),
    # keyrings
    _c("gnome-keyring", "GNOME keyring", KEYRING, ("~/.local/share/keyrings/",),
       "login keyring file"),
    _c("kwallet", "KDE Wallet", KEYRING, ("~/.local/share/kwalletd/",), "wallet files"),
    _c("python-keyring", "keyrings.alt", KEYRING, ("~/.local/share/python_keyring/",),
       "file-backed keyring"),
    # browsers
    _c("chrome", "Google Chrome", BROWSER, ("~/.config/google-chrome/",),
       "cookies, saved passwords, session tokens"),
    _c("chromium", "Chromium", BROWSER, ("~/.config/chromium/",), "cookies, saved passwords"),
    _c("brave", "Brave", BROWSER, ("~/.config/BraveSoftware/",), "cookies, saved passwords"),
    _c("edge", "Microsoft Edge", BROWSER, ("~/.config/microsoft-edge/",),
       "cookies, saved passwords"),
    _c("firefox", "Firefox", BROWSER, ("~/.mozilla/firefox/",),
       "cookies, logins.json and key4.db"),
    # shell and client histories
    _c("shell-history", "bash / zsh / fish", HIST, (
        "~/.bash_history", "~/.zsh_history", "~/.histfile", "~/.sh_history",
        "~/.local/share/fish/fish_history"), "commands typed with tokens and passwords"),
    _c("db-history", "psql / mysql / sqlite / redis", HIST, (
        "~/.psql_history", "~/.mysql_history", "~/.sqlite_history", "~/.rediscli_history",
        "~/.dbshell"), "queries and connection commands"),
    _c("repl-history", "python / node / irb", HIST, (
        "~/.python_history", "~/.node_repl_history", "~/.irb_history", "~/.lesshst"),
       "pasted keys and tokens"),
    # the coding agents' own logins
    _c("codex-login", "OpenAI Codex CLI", AGENT, ("~/.codex/auth.json", "$CODEX_HOME/auth.json"),
       "ChatGPT login tokens or API key"),
    _c("claude-login", "Claude Code", AGENT, (
        "~/.claude/.credentials.json", "$CLAUDE_CONFIG_DIR/.credentials.json"),
       "Anthropic OAuth tokens"),
    _c("gemini-login", "Gemini CLI", AGENT, (
        "~/.gemini/oauth_creds.json", "~/.gemini/google_accounts.json",
        "~/.gemini/gemini-credentials.json", "~/.gemini/mcp-oauth-tokens.json",
        "~/.gemini/a2a-oauth-tokens.json", "~/.gemini/.env",
        "$GEMINI_CLI_HOME/.gemini/oauth_creds.json", "$GEMINI_CLI_HOME/.gemini/.env"),
       "Google OAuth tokens, MCP servers' OAuth tokens, GEMINI_API_KEY in its .env"),
    _c("copilot-login", "GitHub Copilot", AGENT, ("~/.config/github-copilot/",),
       "Copilot OAuth token"),
    _c("aider", "aider", AGENT, ("~/.aider.conf.yml", "~/.env"), "model API keys"),
)

IDS = frozenset(c.id for c in CATALOGUE)
ANY = "(any)"  # the ``tool`` of entries from config without one


def user_entries(value: object, where: str) -> list[Credential]:
    """``[[sandbox.credential_files]]`` tables (``path`` or ``paths``, ``tool``, ``reason``)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise CorralError("sandbox", f"{where} must be a list of tables")
    out: list[Credential] = []
    for i, t in enumerate(value):
        if not isinstance(t, Mapping):
            raise CorralError("sandbox", f"{where}[{i}] must be a table")
        paths = t.get("paths", [t["path"]] if "path" in t else [])
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise CorralError("sandbox", f"{where}[{i}] needs path = \"...\" or paths = [...]")
        out.append(Credential(str(t.get("id", f"{where}[{i}]")), str(t.get("tool", ANY)),
                              "configured", tuple(paths), str(t.get("reason", "configured"))))
    return out


def check_allowed(names: Iterable[str], where: str, extra: Sequence[Credential] = ()) -> None:
    known = IDS | {c.id for c in extra}
    for n in names:
        if n not in known:
            raise CorralError("sandbox", f"{where}: unknown credential entry {n!r}",
                              "see `corral doctor --secrets` or docs/sandbox.md for the ids")


def expand(path: str, home: Path, env: Mapping[str, str]) -> list[tuple[str, bool]]:
    """Absolute patterns for one catalogue path, each with ``is_dir``; [] for an unset
    ``$VAR``."""
    is_dir = path.endswith("/")
    path = path.rstrip("/")
    if path.startswith("$"):
        var, _, rest = path[1:].partition("/")
        value = env.get(var, "")
        bases = [b for b in (value.split(":") if var == "KUBECONFIG" else [value]) if b]
        return [(os.path.normpath(os.path.join(os.path.expanduser(b), rest)), is_dir)
                for b in bases if os.path.isabs(os.path.expanduser(b))]
    if path == "~" or path.startswith("~/"):
        path = str(home) + path[1:]
    return [(os.path.normpath(path), is_dir)]


def resolve(entries: Iterable[Credential], home: Path, env: Mapping[str, str]
            ) -> list[tuple[Credential, str, bool]]:
    """(entry, absolute pattern, is_dir) for every path of ``entries``."""
    return [(c, p, d) for c in entries for raw in c.paths for p, d in expand(raw, home, env)]


def hidden(home: Path, env: Mapping[str, str], allow: Iterable[str] = (),
           extra: Sequence[Credential] = (), enforced: Sequence[Credential] = ()
           ) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """(patterns to hide, the enforced ones among them) for a plan: the catalogue and
    ``extra`` minus the ids in ``allow``, plus ``enforced`` (requirements: never re-allowed).
    Each pattern comes with ``is_dir``."""
    allowed = set(allow)
    check_allowed(allowed, "allow_credentials", [*extra, *enforced])
    mine = [c for c in (*CATALOGUE, *extra) if c.id not in allowed]
    return ([(p, d) for _, p, d in resolve(mine, home, env)],
            [(p, d) for _, p, d in resolve(enforced, home, env)])


def reallow(entries: Iterable[FsEntry], locked: Iterable[Locked], paths: Iterable[Path]
            ) -> tuple[tuple[FsEntry, ...], tuple[Locked, ...]]:
    """Entries and locks without the catalogue's hiding of exactly ``paths`` (an agent's own
    login file under ``corral run``); enforced entries stay."""
    keep = {Path(os.path.normpath(p)) for p in paths}
    return (tuple(e for e in entries if not (e.path in keep and e.access is Access.DENY
                                             and not e.enforced)),
            tuple(lk for lk in locked if lk.path not in keep))


def locks(patterns: Iterable[tuple[str, bool]], writable: Sequence[Path]) -> list[Locked]:
    """Read-only placeholders for *missing* credential paths inside ``writable`` directories,
    so a command cannot create one (or a directory it would go in) during the run. A path
    whose directory is missing locks the highest missing directory below the writable root;
    a glob locks its literal directory part."""
    # by strings on normalised paths: pathlib for each of the catalogue's ~100 patterns was
    # ~5 ms of every spawn's plan
    roots = [str(w).rstrip("/") + "/" for w in writable if w != ROOT]
    patterns = list(patterns)
    hidden_dirs = [os.path.normpath(p) + "/" for p, d in patterns if d and os.path.isdir(p)]
    out: dict[str, Locked] = {}
    for pattern, is_dir in patterns:
        lit = pattern
        if has_glob(pattern):
            lit, is_dir = pattern.split("*", 1)[0].rsplit("/", 1)[0], True
        lit = os.path.normpath(lit)
        under = [r for r in roots if lit.startswith(r)]
        if not under or any(lit.startswith(d) for d in hidden_dirs):
            continue  # nothing inside can create it, or it is inside a hidden directory
        target = lit
        content = None if is_dir else (b"{}" if os.path.splitext(lit)[1] == ".json" else b"")
        here = max(under, key=len)[:-1]
        for part in lit[len(here) + 1:].split("/")[:-1]:  # its directories, outermost first
            here = f"{here}/{part}"
            if not os.path.lexists(here) or _ours(Path(here)):
                target, content = here, None
                break
        else:
            if os.path.lexists(lit) and not _ours(Path(lit)):
                continue  # exists: hidden by its deny entry
        if target not in out:
            out[target] = Locked(Path(target), content)
    return list(out.values())


def _ours(p: Path) -> bool:
    """A placeholder left by a killed run: locked again, so that this run removes it."""
    return is_placeholder(p) or is_file_placeholder(p, b"") or is_file_placeholder(p, b"{}")


def found(home: Path, env: Mapping[str, str], entries: Iterable[Credential] = CATALOGUE
          ) -> list[tuple[Credential, Path]]:
    """The catalogue's paths that exist on this machine (globs expanded)."""
    out: list[tuple[Credential, Path]] = []
    for c, p, _ in resolve(entries, home, env):
        hits = list(iglob(p)) if has_glob(p) else [p]
        out += [(c, Path(h)) for h in hits if os.path.lexists(h)]
    return out


def markdown_table() -> str:
    """The catalogue as the table in docs/sandbox.md (a test checks that they match)."""
    rows = ["| id | tool | kind | paths | why |", "|---|---|---|---|---|"]
    for c in CATALOGUE:
        paths = ", ".join(f"`{p}`" for p in c.paths)
        rows.append(f"| `{c.id}` | {c.tool} | {c.category} | {paths} | {c.reason} |")
    return "\n".join(rows)


def reallow_warnings(profiles: object) -> list[str]:
    """One warning per catalogue entry a ``[permissions.NAME]`` profile re-allows (for
    ``corral config explain``): the credential is readable by every command under it."""
    if not isinstance(profiles, Mapping):
        return []
    by_id = {c.id: c for c in CATALOGUE}
    out = []
    for name, table in profiles.items():
        allow = table.get("allow_credentials", []) if isinstance(table, Mapping) else []
        for cid in allow if isinstance(allow, list) else []:
            c = by_id.get(str(cid))
            what = f"{c.tool}: {', '.join(c.paths)}" if c else "not in the catalogue"
            out.append(f"permissions.{name}.allow_credentials re-allows {cid!r} ({what}): "
                       "commands under this profile can read it")
    return out
