"""Code nobody can review and code nobody asked for: scripts downloaded and run, encoded or
obfuscated payloads (``base64 -d | sh``, ``exec(b64decode(...))``, ``powershell -enc``), and
cryptocurrency miners.

Decoding data into a file or onto the terminal (``base64 -d cert.b64 > cert.der``,
``echo aGk= | base64 -d``) is everyday work; running what was decoded is not. ``eval`` of a
well-known tool's shell set-up (``eval "$(ssh-agent -s)"``, ``source <(kubectl completion
bash)``) is everyday work too and is allowed by name.
"""

from __future__ import annotations

import posixpath
import re

from corral.review import scan_embed
from corral.review.findings import Cmd, Scan
from corral.review.places import Place

RUNNERS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "source", ".", "python", "python3",
                     "node", "perl", "ruby", "php", "bun", "deno"})
INTERPRETERS = frozenset({"python", "python3", "node", "perl", "ruby", "php", "bun", "deno"})
_ALWAYS_DECODE = frozenset({"gunzip", "zcat", "bzcat", "xzcat", "zstdcat", "unxz", "bunzip2",
                            "uudecode", "rev", "unzstd", "lz4cat"})


def decoder(c: Cmd) -> bool:
    """Does this command turn data back into text (decode, decompress, un-escape)?"""
    short, long = c.options()
    if c.name in _ALWAYS_DECODE:
        return True
    if c.name in ("base64", "base32", "basenc", "gzip", "bzip2", "xz", "zstd", "lz4"):
        return "d" in short or "D" in short or "--decode" in long or "--decompress" in long
    if c.name == "xxd":
        return "r" in short
    if c.name == "openssl":
        return "-d" in c.args or "-decode" in c.args
    if c.name == "tr":
        return any("N-Z" in t or "n-z" in t for t in c.args)  # rot13
    if c.name in ("printf", "echo"):
        return any(re.search(r"\\x[0-9a-fA-F]{2}|\\[0-7]{3}", t) for t in c.args[:4]) and (
            c.name == "printf" or "e" in short)
    return False


def piped_code(cmds: list[Cmd], scan: Scan) -> None:
    """``curl URL | sh``, ``sh -c "$(curl URL)"``, ``base64 -d | sh``: code nobody reviewed."""
    hosts = list(scan.fetches)
    if hosts:
        host = hosts[0]
        scan.add("security", "high", f"runs a script downloaded from {host} without review "
                 "(piped into a shell)", ("install", "run the install script", "installer"),
                 (host, *[p for p in host.split(".") if len(p) >= 4 and p not in (
                     "www", "com", "org", "raw", "githubusercontent", "github")]))
        return
    dec = next((c for c in cmds if decoder(c)), None)
    if dec is not None:
        scan.add("obfuscation", "high", f"runs decoded or obfuscated commands through a shell "
                 f"({dec.name}): they cannot be reviewed")
    else:
        scan.add("unanalysable", "high", "feeds commands to a shell through a pipe "
                 "(they cannot be reviewed)")


def interpreter_from_pipe(cmds: list[Cmd], scan: Scan) -> None:
    """``curl URL | python3``, ``echo … | base64 -d | python3``: code from a pipe."""
    dec = next((c for c in cmds if decoder(c)), None)
    if not scan.fetches and dec is None:
        return
    for c in cmds:
        stream = bool(c.args) and not c.known_args[0] and c.args[0].startswith("<(")
        if c.name in INTERPRETERS and (not c.args or c.args == ("-",) or stream):
            if scan.fetches:
                host = scan.fetches[0]
                scan.add("security", "high", f"runs code downloaded from {host} with {c.name} "
                         "without review", ("install", "run"), (host,))
            elif dec is not None:
                scan.add("obfuscation", "high", f"runs decoded code ({dec.name}) with {c.name}: "
                         "it cannot be reviewed")
            return


def runs_produced_file(seen: list[tuple[Cmd, Place]], writes: list[tuple[str, str]],
                       place: Place, scan: Scan) -> None:
    """``curl -o i.sh URL && bash i.sh``, ``base64 -d > x.sh && ./x.sh``: the script that runs
    was produced moments ago, so nobody reviewed its content."""
    produced: dict[str, str] = dict(scan.downloads)
    for target, _ in writes:
        p = place.resolve(target.replace('"', "").replace("'", ""))
        if p is not None:
            produced.setdefault(p, "")
    if not produced:
        return
    decoded = any(decoder(c) for c, _ in seen)
    for cmd, here in seen:
        words = [cmd.argv0]
        if cmd.name in RUNNERS:
            ops = [t for t, k in cmd.operands("") if k]
            words = ops[:1]
        for w in words:
            p = here.resolve(w) if ("/" in w or cmd.name in RUNNERS) else None
            if p is None or p not in produced:
                continue
            host = produced[p]
            if host:
                scan.add("security", "high", f"runs {place.show(p)}, downloaded from {host}, "
                         "without review", ("install", "run the install script", "installer"),
                         (host, posixpath.basename(p)))
            elif decoded:
                scan.add("obfuscation", "high", f"runs {place.show(p)}, written from decoded "
                         "(obfuscated) data: its commands cannot be reviewed")
            return


# ---- run-time code whose text is known to be harmless ----------------------------------------

_ENV_TOOLS = frozenset({
    "ssh-agent", "direnv", "pyenv", "rbenv", "nodenv", "goenv", "jenv", "plenv", "phpenv",
    "starship", "zoxide", "fnm", "brew", "conda", "mamba", "micromamba", "mise", "rtx",
    "thefuck", "opam", "luarocks", "dircolors", "keychain", "kubectl", "helm", "gh", "npm",
    "pip", "pip3", "uv", "rustup", "poetry", "pipx", "minikube", "kind", "atuin", "mcfly", "fzf",
    "asdf", "navi", "broot", "register-python-argcomplete", "docker-machine", "podman-machine",
})
_SETUP_WORDS = frozenset({
    "-s", "-c", "init", "hook", "env", "shellenv", "activate", "completion", "completions",
    "--completion", "generate-shell-completion", "shell.bash", "shell.zsh", "--alias", "-b",
    "--eval", "docker-env", "--bash", "--zsh", "path", "--sh", "--path", "-", "bash", "zsh",
    "fish", "virtualenv-init", "--use-on-cd", "--shell", "podman-env", "--print-full-init",
})
_SHELLS = frozenset({"bash", "zsh", "fish", "-", "--bash", "--zsh", "--sh"})
_SUBST = re.compile(r"^(?:eval|source|\.)\s+(?:\"\$\(([^()`$;&|<>'\"]{1,200})\)\"|\$\(([^()`$;&|<>'\"]"
                    r"{1,200})\)|<\(([^()`$;&|<>'\"]{1,200})\))\s*$")


def known_setup(problem_text: str) -> bool:
    """``eval "$(ssh-agent -s)"``, ``source <(kubectl completion bash)``: a well-known tool
    prints shell set-up for this shell; its text is the tool's, not the agent's."""
    m = _SUBST.match(problem_text.strip())
    if m is None:
        return False
    words = next(g for g in m.groups() if g is not None).split()
    if not words or words[0].rsplit("/", 1)[-1] not in _ENV_TOOLS:
        return False
    if len(words) == 1:
        return words[0].rsplit("/", 1)[-1] in ("ssh-agent", "dircolors", "opam")
    # the first argument asks for set-up; the rest are plain words (no path, URL, quoting)
    return words[1] in _SETUP_WORDS and words[1] not in _SHELLS and all(
        re.fullmatch(r"[\w.=-]{1,40}", w) for w in words[2:]) and len(words) <= 6


# ---- encoded payloads in interpreter code ----------------------------------------------------

_RUN_TEXT = re.compile(r"\b(exec|eval|compile|Function|system|popen|spawn|execSync|"
                       r"instance_eval|class_eval|assert|IEX|Invoke-Expression)\b\s{0,4}[\(\"'$]?"
                       r"|\bnew\s+Function\b", re.I)
_DECODE_TEXT = re.compile(
    r"b64decode|b32decode|a85decode|base64\.|decode_base64|base64_decode|decode64|atob\(|"
    r"\bu?n?pack\(?\s{0,4}\(?['\"]([Hhm]|u\b)|"
    r"Buffer\.from\([^)]{0,200}['\"](base64|hex)|fromhex|unhexlify|\.decode\(['\"](hex|"
    r"rot.?13)|zlib\.decompress|gzip\.decompress|lzma\.decompress|bz2\.decompress|"
    r"codecs\.decode|marshal\.loads|fromCharCode|str_rot13|gzinflate|gzuncompress|hex2bin|"
    r"FromBase64String|\[char\]|chr\(\s*\d|map\(\s*chr\b|(\\x[0-9a-fA-F]{2}){4}", re.I)
_PWSH_ENC = re.compile(r"^[-/](e|ec|en|enc|enco|encod|encode|encoded|encodedc|encodedco|"
                       r"encodedcom|encodedcomm|encodedcomma|encodedcomman|encodedcommand)$",
                       re.I)
_PWSH_FETCH = re.compile(r"\b(iwr|irm|Invoke-WebRequest|Invoke-RestMethod|DownloadString|"
                         r"DownloadFile|Net\.WebClient|Start-BitsTransfer)\b", re.I)


def inline_code(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``python3 -c "exec(base64.b64decode(...))"``, ``node -e "eval(atob(...))"``: text that
    is decoded and run at once, so nobody can review what runs."""
    code = cmd.value("-c", "-e", "--eval", "-E", "-r", "--command") or ""
    if not code or len(code) > 100_000:
        return
    scan_embed.inline(cmd, code, place, scan)
    run = _RUN_TEXT.search(code)
    dec = _DECODE_TEXT.search(code)
    if run is not None and dec is not None:
        scan.add("obfuscation", "high", f"runs encoded code in inline {cmd.name} "
                 f"(`{run.group(1) or 'Function'}` of `{dec.group(0)[:24]}`): it cannot be "
                 "reviewed")


def powershell(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = cmd.args
    enc = next((t for t in a if _PWSH_ENC.match(t)), None)
    if enc is not None:
        scan.add("obfuscation", "high", f"runs a base64-encoded PowerShell command ({cmd.name} "
                 f"{enc}): it cannot be reviewed")
        return
    code = " ".join(a)[:100_000]
    if re.search(r"\b(IEX|Invoke-Expression)\b", code, re.I):
        if _PWSH_FETCH.search(code):
            scan.add("security", "high", f"runs a script downloaded by {cmd.name} without "
                     "review (Invoke-Expression)", ("install", "run the install script"), ())
        elif _DECODE_TEXT.search(code):
            scan.add("obfuscation", "high", f"runs decoded PowerShell code ({cmd.name} "
                     "Invoke-Expression): it cannot be reviewed")


# ---- cryptocurrency mining ----------------------------------------------------------------

_MINER = re.compile(
    r"(?<![a-z0-9])(xmrig[\w.-]{0,20}|xmr-stak[\w.-]{0,10}|minerd|cpuminer[\w.-]{0,10}|"
    r"ccminer|cgminer|bfgminer|sgminer|ethminer|kawpowminer|nbminer|lolminer|t-rex|gminer|"
    r"nanominer|phoenixminer|teamredminer|srbminer[\w.-]{0,10}|bzminer|nheqminer|wildrig[\w.-]"
    r"{0,10}|hellminer|xmrminer|coinhive|cryptoloot|claymore[\w.-]{0,20}miner)(?![a-z0-9])",
    re.I)
_POOL_URL = re.compile(r"stratum2?\+(tcp|ssl|tls)://|stratum://", re.I)
_POOLS = re.compile(
    r"(?:^|[./@:])(supportxmr\.com|minexmr\.com|xmrpool\.eu|moneroocean\.stream|hashvault\.pro|"
    r"nanopool\.org|2miners\.com|f2pool\.com|ethermine\.org|herominers\.com|unmineable\.com|"
    r"c3pool\.(?:com|org)|minergate\.com|nicehash\.com|miningpoolhub\.com|zpool\.ca|"
    r"viabtc\.(?:com|io)|antpool\.com|poolin\.com|slushpool\.com|braiins\.com|"
    r"prohashing\.com|zergpool\.com|woolypooly\.com|kryptex\.network|p2pool\.io|"
    r"monerohash\.com|flypool\.org|mining-dutch\.nl|xmrfast\.com|hashcity\.org|"
    r"gulf\.moneroocean\.stream|rplant\.xyz|zephyr\.herominers\.com)(?::\d+)?(?:/|$)", re.I)
def is_pool(host: str) -> bool:
    """A well-known cryptocurrency mining pool (a network request's host)."""
    return _POOLS.search(host[:300].lower() + "/") is not None


_MINER_OPTS = re.compile(r"^(--donate-level(=\d{1,3})?|--cpu-max-threads-hint|--randomx-[\w-]+|"
                         r"--coin=?(monero|xmr)|(-a|--algo)=?(rx/\w+|cryptonight[\w/-]*|"
                         r"randomx|ethash|etchash|kawpow|yespower\w*|ghostrider|argon2\w*/\w+|"
                         r"cn/\w+))$", re.I)
# reading about a miner (searching logs, listing a directory) is not running one
_READERS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack", "git", "ls", "cat", "less",
                      "more", "head", "tail", "file", "stat", "sha256sum", "md5sum", "man",
                      "which", "type", "whereis", "apt-cache", "echo", "printf", "wc"})


def mining(cmd: Cmd, place: Place, scan: Scan) -> None:
    """A miner run, installed or downloaded; a mining pool reached (also under another name)."""
    if cmd.name in _READERS and not (cmd.name == "git" and cmd.sub() in (
            "clone", "fetch", "pull", "submodule")):
        return
    words = (cmd.argv0, *cmd.args)
    hit = next((m.group(1) for w in words[:64] for m in [_MINER.search(w[:400])] if m), None)
    if hit is None:
        hit = next((w for w in words[:64] if _POOL_URL.search(w[:400]) or _POOLS.search(
            w[:400])), None)
    if hit is None:
        opts = [w for w in cmd.args[:64] if _MINER_OPTS.match(w)]
        joined = [f"{a}={b}" for a, b in zip(cmd.args[:64], cmd.args[1:65], strict=False)
                  if a in ("-a", "--algo", "--coin")]
        if opts or any(_MINER_OPTS.match(j) for j in joined):
            hit = (opts or joined)[0]
    if hit is not None:
        scan.add("mining", "high", f"runs or installs a cryptocurrency miner ({hit[:60]})",
                 ("mine", "mining", "miner"), (hit[:60], "xmrig", "monero", "crypto"))
