"""Commands that inline Python code (``python3 -c CODE``, a heredoc fed to ``python3``) runs.

The code is parsed with :mod:`ast` (imported only when Python code is seen) and never run. Calls
of ``os.system``/``os.popen``, ``subprocess.*``, ``os.exec*``/``os.spawn*``/``os.posix_spawn*``,
``pty.spawn`` and ``asyncio.create_subprocess_*`` with literal arguments become the commands they
run; computed arguments become unknown words. Anything that could reach those functions without
naming them (``eval``, ``exec``, ``__import__`` of a computed name, a module or function passed
around, ``ctypes``, ``pickle``...) is reported as a problem, so the command is asked about.
"""

from __future__ import annotations

import re
from typing import Any

from corral.rules.argv import Argv
from corral.rules.inline_result import COMPUTED, MAX_CODE, Inline

_WHERE = "python code"
# module -> functions: how their arguments become commands
_SHELL = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
          "commands.getoutput", "commands.getstatusoutput", "asyncio.create_subprocess_shell",
          "platform.popen"}
_POPEN = {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
          "subprocess.Popen"}
_EXEC_L = {"os.execl", "os.execle", "os.execlp", "os.execlpe"}  # path, arg0, args... [, env]
_EXEC_V = {"os.execv", "os.execve", "os.execvp", "os.execvpe", "os.posix_spawn",
           "os.posix_spawnp"}  # path, argv [, env]
_SPAWN_L = {"os.spawnl", "os.spawnle", "os.spawnlp", "os.spawnlpe"}  # mode, path, arg0, ...
_SPAWN_V = {"os.spawnv", "os.spawnve", "os.spawnvp", "os.spawnvpe"}  # mode, path, argv [, env]
_OTHER = {"pty.spawn", "asyncio.create_subprocess_exec"}
CAPABILITIES = _SHELL | _POPEN | _EXEC_L | _EXEC_V | _SPAWN_L | _SPAWN_V | _OTHER
_MODULES = frozenset(c.split(".", 1)[0] for c in CAPABILITIES) | {"posix", "nt", "builtins",
                                                                     "sys"}
_ALIASES = {"posix": "os", "nt": "os"}  # the same functions under another module name
# names that reach any function without spelling it out
_ESCAPE_NAMES = frozenset({"eval", "exec", "compile", "globals", "vars", "locals",
                           "__builtins__", "breakpoint"})
_ESCAPE_ATTRS = frozenset({"__import__", "eval", "exec", "__builtins__", "__dict__",
                           "__globals__", "__subclasses__", "__getattribute__", "__code__",
                           "__reduce__", "__reduce_ex__", "modules", "__loader__", "__spec__"})
_ESCAPE_MODULES = frozenset({"ctypes", "cffi", "importlib", "runpy", "code", "codeop", "pickle",
                             "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle",
                             "types", "_posixsubprocess", "_winapi", "pdb", "distutils",
                             "timeit", "doctest", "profile", "cProfile", "trace"})
_HARMLESS_SUBMODULES = frozenset({"importlib.metadata", "importlib.resources"})
_FORMAT = re.compile(r"%(\([^)]*\))?[-#0 +]*\d*(\.\d+)?[sdirfxXoeEgGc%]|\{[^{}]*\}")


def python_commands(code: str) -> Inline:
    out = Inline()
    if len(code) > MAX_CODE:
        out.problems.append(f"{_WHERE} is longer than {MAX_CODE // 1024} KiB; not analysed")
        return out
    import ast

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeError) as exc:
        why = type(exc).__name__
        out.problems.append(f"{_WHERE} does not parse ({why}); what it runs cannot be checked")
        return out
    _Walk(ast, out).run(tree)
    return out


class _Walk:
    def __init__(self, ast: Any, out: Inline) -> None:
        self.ast = ast
        self.out = out
        self.modules: dict[str, str] = {}  # local name -> module
        self.funcs: dict[str, str] = {}  # local name -> capability ("os.system")
        self.consumed: set[int] = set()  # ids of nodes read as a call's function
        self.bases: set[int] = set()  # ids of Name nodes that are an attribute's object
        self.problems: list[str] = []

    def problem(self, why: str) -> None:
        if why not in self.problems:
            self.problems.append(why)

    def run(self, tree: Any) -> None:
        ast = self.ast
        kinds: dict[type, list[Any]] = {}  # one walk, the nodes of interest sorted by type
        for node in ast.walk(tree):
            kinds.setdefault(type(node), []).append(node)
        attributes = kinds.get(ast.Attribute, [])
        for node in kinds.get(ast.Import, []):  # imports first: a call may come before them
            for alias in node.names:
                top = alias.name.split(".", 1)[0]
                self._check_module(alias.name)
                self._import_module(alias.asname or top, alias.name if alias.asname else top)
        for node in kinds.get(ast.ImportFrom, []):
            self._check_module(node.module or "")
            mod = (node.module or "").split(".", 1)[0]
            for alias in node.names:
                self._import_name(mod, alias.name, alias.asname or alias.name)
        for node in attributes:
            self.bases.add(id(node.value))
            if node.attr in _ESCAPE_ATTRS:
                self.problem(f"{_WHERE} uses `.{node.attr}`, which can reach any function; "
                             "what it runs cannot be checked")
            elif node.attr in _MODULES:
                self.problem(f"{_WHERE} reaches the `{node.attr}` module through another "
                             "object; what it runs cannot be checked")
        for node in kinds.get(ast.Call, []):
            self._call(node)
        for node in kinds.get(ast.Name, []):
            self._name(node)
        for node in attributes:
            if id(node) not in self.consumed:
                cap = self._capability(node)
                if cap is not None:
                    self.problem(f"{_WHERE} passes `{cap}` around instead of calling it; "
                                 "what it runs cannot be checked")
        self.out.problems.extend(self.problems)

    # ---- names ----------------------------------------------------------------------------
    def _check_module(self, full: str) -> None:
        mod = full.split(".", 1)[0]
        if mod in _ESCAPE_MODULES and not any(
                full == h or full.startswith(h + ".") for h in _HARMLESS_SUBMODULES):
            self.problem(f"{_WHERE} imports `{mod}`, which can run code or programs it builds; "
                         "what it runs cannot be checked")

    def _import_module(self, local: str, full: str) -> None:
        top = full.split(".", 1)[0]
        if full in _MODULES or top in _MODULES:
            self.modules[local] = _ALIASES.get(full, full)

    def _import_name(self, mod: str, name: str, local: str) -> None:
        mod = _ALIASES.get(mod, mod)
        if name == "*":
            for cap in CAPABILITIES:
                m, f = cap.split(".", 1)
                if m == mod:
                    self.funcs[f] = cap
            if mod in ("builtins", "sys"):
                self.problem(f"{_WHERE} imports everything from `{mod}`; what it runs cannot "
                             "be checked")
            return
        if name in _MODULES:  # `from shutil import os`
            self.modules[local] = _ALIASES.get(name, name)
        elif f"{mod}.{name}" in CAPABILITIES:
            self.funcs[local] = f"{mod}.{name}"
        elif name in _ESCAPE_NAMES or name in _ESCAPE_ATTRS or name in _ESCAPE_MODULES:
            self.problem(f"{_WHERE} imports `{name}` from `{mod}`, which can reach any "
                         "function; what it runs cannot be checked")

    def _name(self, node: Any) -> None:
        n = node.id
        if n in _ESCAPE_NAMES:
            self.problem(f"{_WHERE} uses `{n}`, which runs code built at run time; what it runs "
                         "cannot be checked")
        elif n in self.modules and id(node) not in self.bases:
            self.problem(f"{_WHERE} passes the `{self.modules[n]}` module around; what it runs "
                         "cannot be checked")
        elif n in self.funcs and id(node) not in self.consumed:
            self.problem(f"{_WHERE} passes `{self.funcs[n]}` around instead of calling it; what "
                         "it runs cannot be checked")

    def _module_of(self, node: Any) -> str | None:
        ast = self.ast
        if isinstance(node, ast.Name):
            return self.modules.get(node.id)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "__import__" and node.args):
            self.consumed.add(id(node.func))
            name = _const(ast, node.args[0])
            if name is None:
                self.problem(f"{_WHERE} imports a module whose name is computed at run time")
                return None
            self._check_module(name)
            return _ALIASES.get(name, name)
        return None

    def _capability(self, func: Any) -> str | None:
        ast = self.ast
        if isinstance(func, ast.Name):
            return self.funcs.get(func.id)
        if isinstance(func, ast.Attribute):
            mod = self._module_of(func.value)
            if mod is not None:
                cap = f"{mod}.{func.attr}"
                return cap if cap in CAPABILITIES else None
        return None

    # ---- calls ----------------------------------------------------------------------------
    def _call(self, node: Any) -> None:
        ast = self.ast
        func = node.func
        if isinstance(func, ast.Name) and func.id == "__import__":
            mod = self._module_of(node)
            if mod is not None and mod.split(".", 1)[0] in _MODULES and id(node) not in self.bases:
                self.problem(f"{_WHERE} passes the `{mod}` module around; what it runs cannot "
                             "be checked")
            return
        cap = self._capability(func)
        if cap is None:
            return
        self.consumed.add(id(func))
        where = f"`{cap}` in {_WHERE}"
        args = node.args
        if any(isinstance(a, ast.Starred) for a in args) and cap not in (
                "asyncio.create_subprocess_exec",) and cap not in _EXEC_L | _SPAWN_L:
            self.out.problems.append(f"{where} takes its arguments from a list computed at run "
                                     "time; what it runs cannot be checked")
            return
        kw = {k.arg: k.value for k in node.keywords if k.arg is not None}
        if any(k.arg is None for k in node.keywords):
            self.out.problems.append(f"{where} takes keyword arguments computed at run time "
                                     "(**kwargs); what it runs cannot be checked")
        if cap in _SHELL:
            first = args[0] if args else kw.get("cmd") or kw.get("command")
            self._shell(first, where)
        elif cap in _POPEN:
            self._popen(args[0] if args else kw.get("args"), kw, where)
        elif cap in _EXEC_L or cap in _SPAWN_L:
            skip = 1 if cap in _SPAWN_L else 0
            rest = args[skip:]
            if cap.endswith("e") and rest:
                rest = rest[:-1]  # the environment
            if rest:
                items = [rest[0], *rest[2:]]  # the path, then argv without argv[0]
                self.out.argv(_argv_items(ast, items), where)
            else:
                self.out.problems.append(f"{where} has no program")
        elif cap in _EXEC_V or cap in _SPAWN_V:
            skip = 1 if cap in _SPAWN_V else 0
            path = args[skip] if len(args) > skip else None
            listed = args[skip + 1] if len(args) > skip + 1 else kw.get("argv") or kw.get("args")
            tail = _argv_list(ast, listed)
            head = _argv_items(ast, [path] if path is not None else [])
            if not head.tokens:
                self.out.problems.append(f"{where} has no program")
                return
            if tail is None:
                self.out.argv(Argv(head.tokens, head.unknown, 1), where)
            else:
                rest = tail.sub(1) if len(tail) else tail
                self.out.argv(_join(head, rest), where)
        elif cap == "pty.spawn":
            first = args[0] if args else kw.get("argv")
            text = _const(ast, first) if first is not None else None
            if text is not None:
                self.out.argv(Argv((text,)), where)
            else:
                self._argv_or_problem(first, where)
        else:  # asyncio.create_subprocess_exec(program, *args)
            self.out.argv(_argv_items(ast, list(args)), where)

    def _shell(self, node: Any, where: str) -> None:
        if node is None:
            self.out.problems.append(f"{where} has no command")
            return
        text, dynamic = _text(self.ast, node)
        if text is None:
            self.out.problems.append(f"{where} runs a shell command computed at run time; what "
                                     "it runs cannot be checked")
            return
        self.out.shell(text, dynamic, where)

    def _popen(self, first: Any, kw: dict[str, Any], where: str) -> None:
        ast = self.ast
        shell_node = kw.get("shell")
        shell = False
        if shell_node is not None:
            if isinstance(shell_node, ast.Constant):
                shell = bool(shell_node.value)
            else:
                self.out.problems.append(f"{where} decides `shell=` at run time; what it runs "
                                         "cannot be checked")
                shell = True
        exe_node = kw.get("executable")
        exe = _const(ast, exe_node) if exe_node is not None else None
        if exe_node is not None and exe is None:
            self.out.problems.append(f"{where} runs an `executable=` computed at run time")
        if first is None:
            self.out.problems.append(f"{where} has no command")
            return
        if shell:
            if isinstance(first, (ast.List, ast.Tuple)):
                first = first.elts[0] if first.elts else None
            if exe is not None and first is not None:
                text, _ = _text(ast, first)
                if text is not None:
                    self.out.argv(Argv((exe, "-c", text)), where)
                    return
            self._shell(first, where)
            return
        text = _const(ast, first)
        if text is not None:  # a string without shell=True names the program alone
            self.out.argv(Argv((exe if exe is not None else text,)), where)
            return
        a = _argv_list(ast, first)
        if a is None:
            self.out.problems.append(f"{where} runs a command computed at run time; what it "
                                     "runs cannot be checked")
            return
        if exe is not None and len(a):
            a = Argv((exe, *a.tokens[1:]), a.unknown - {0}, a.open_from)
        self.out.argv(a, where)

    def _argv_or_problem(self, node: Any, where: str) -> None:
        a = _argv_list(self.ast, node) if node is not None else None
        if a is None:
            self.out.problems.append(f"{where} runs a command computed at run time; what it "
                                     "runs cannot be checked")
        else:
            self.out.argv(a, where)


def _const(ast: Any, node: Any) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        v = node.value
        return v if isinstance(v, str) else v.decode("utf-8", "surrogateescape")
    return None


def _text(ast: Any, node: Any) -> tuple[str | None, bool]:
    """Shell text from a string expression: literal parts kept, computed parts replaced by an
    unknown word; (None, True) when nothing of it is literal."""
    c = _const(ast, node)
    if c is not None:
        return c, False
    if isinstance(node, ast.JoinedStr):
        parts = [(_const(ast, v) if isinstance(v, ast.Constant) else None)
                 for v in node.values]
        return "".join(p if p is not None else COMPUTED for p in parts), True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, _ = _text(ast, node.left)
        right, _ = _text(ast, node.right)
        if left is None and right is None:
            return None, True
        return (left if left is not None else COMPUTED) + (
            right if right is not None else COMPUTED), True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = _const(ast, node.left)
        return (None, True) if left is None else (_FORMAT.sub(COMPUTED, left), True)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"):
        left = _const(ast, node.func.value)
        return (None, True) if left is None else (_FORMAT.sub(COMPUTED, left), True)
    return None, True


def _argv_items(ast: Any, items: list[Any]) -> Argv:
    """Words from separate expressions (``os.execl(path, arg0, ...)``)."""
    tokens: list[str] = []
    unknown: set[int] = set()
    open_from: int | None = None
    for i, item in enumerate(items):
        if isinstance(item, ast.Starred):
            open_from = i if open_from is None else open_from
            tokens.append("*")
            continue
        c = _const(ast, item)
        if c is None:
            unknown.add(i)
            text, _ = _text(ast, item)
            tokens.append(text if text is not None else "?")
        else:
            tokens.append(c)
    return Argv(tuple(tokens), frozenset(unknown), open_from)


def _argv_list(ast: Any, node: Any) -> Argv | None:
    """Words from a list or tuple display; None when the list itself is computed."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return _argv_items(ast, list(node.elts))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _argv_list(ast, node.left)
        if left is None:
            return None
        return Argv(left.tokens, left.unknown, len(left) if left.open_from is None
                    else left.open_from)
    return None


def _join(head: Argv, tail: Argv) -> Argv:
    n = len(head)
    unknown = head.unknown | frozenset(i + n for i in tail.unknown)
    open_from = head.open_from if head.open_from is not None else (
        None if tail.open_from is None else tail.open_from + n)
    return Argv(head.tokens + tail.tokens, unknown, open_from)
