"""The ``corral`` entry point.

The root help page and the commands that run once per agent action skip typer and click (~70 ms
of imports): the root help comes from ``corral.cli.commands``, ``corral exec -- CMD`` goes
through ``corral.cli.exec_fast``, ``corral sandbox -- CMD`` through ``corral.cli.sandbox_fast``
and ``corral policy check`` through ``corral.rules.check_fast`` (which must match the native
``codex execpolicy check`` closely in wall time). Each accepts exactly the same grammar as its
Typer command and hands anything else (help, usage errors, every other command) to the full
app.
"""

from __future__ import annotations

import gc
import sys

TYPE_CHECKING = False  # typing costs ~10 ms here, more than the policy check's own work
if TYPE_CHECKING:
    from typing import NoReturn


def exit_now(status: int) -> NoReturn:
    """Exit after a one-shot fast path without the interpreter's module teardown (~8 ms of CPU
    here, a tenth of ``corral sandbox -- true``): atexit handlers still run and stdio is flushed.
    Any non-daemon thread still alive means someone expects the normal exit: then it is used."""
    threading = sys.modules.get("threading")  # not imported: no threads were started with it
    if threading is not None and any(t.is_alive() and not t.daemon
                                     for t in threading.enumerate()
                                     if t is not threading.main_thread()):
        sys.exit(status)
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120  # what the interpreter reports when it cannot flush stdout
    os._exit(status)


# Standard-library modules the one-shot paths import without using, and an agent pays for
# every command it runs (issue 20 item 3). ``pathlib`` imports ``ntpath`` (~0.25 ms here, for
# Windows paths) and ``urllib.parse`` (~0.8 ms, for ``Path.as_uri``; itself importing
# ``ipaddress``, ~0.8 ms); ``subprocess`` imports ``locale`` (~0.6 ms, for text-mode pipes).
# Each name maps to the functions importers take by name (``from M import f``): the stand-in
# has those as forwarders, so the from-import itself does not load the module.
DEFERRED_MODULES: dict[str, tuple[str, ...]] = {
    "ipaddress": (), "locale": (), "ntpath": (), "urllib.parse": ("quote_from_bytes",),
}
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType
else:
    ModuleType = type(sys)  # types.ModuleType without importing types (the policy check does not)


def _load(name: str) -> ModuleType:
    """The real module ``name``, imported in place of its stand-in if need be."""
    module = sys.modules.get(name)
    if isinstance(module, Deferred):
        del sys.modules[name]
        __import__(name)
        module = sys.modules[name]
    assert module is not None
    return module


class Deferred(ModuleType):
    """A standard-library module entered in ``sys.modules`` before anything imports it: the
    first attribute looked up on it imports the real module, which then takes its place in
    ``sys.modules`` (and on its package); every lookup on the stand-in is answered by the real
    module, so whoever holds it sees the module's current state (what
    ``importlib.util.LazyLoader`` does, without importing importlib)."""

    def __getattr__(self, name: str) -> object:
        if name == "__path__":  # asked by every from-import; deferred modules are no packages
            raise AttributeError(name)
        return getattr(_load(ModuleType.__getattribute__(self, "__name__")), name)


def _forwarder(module: str, function: str) -> Callable[..., object]:
    def forward(*args: object, **kwargs: object) -> object:
        fn: Callable[..., object] = getattr(_load(module), function)
        return fn(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = function
    return forward


def defer_unused_modules(names: Mapping[str, tuple[str, ...]] = DEFERRED_MODULES) -> None:
    """Stand-ins (``Deferred``) for the modules ``names`` not imported yet, for the one-shot
    paths. A submodule's stand-in is also its package's attribute, as an import would make
    it (the package itself is imported: ``urllib``'s is empty)."""
    for name, functions in names.items():
        if name in sys.modules:
            continue
        stand_in = Deferred(name)
        for function in functions:
            setattr(stand_in, function, _forwarder(name, function))
        sys.modules[name] = stand_in
        package, _, child = name.rpartition(".")
        if package:
            __import__(package)
            setattr(sys.modules[package], child, stand_in)


def ensure_site() -> None:
    """Run ``site`` if the interpreter started without it (bin/corral's ``-S``, which only the
    one-shot paths may skip): the full CLI, its plugins and whatever it starts in-process see
    the same ``sys.path``, .pth files and sitecustomize as any Python program."""
    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()


def main() -> None:
    try:
        try:
            _main(sys.argv[1:])
        finally:
            if sys.stdout is not None and not sys.stdout.closed:
                sys.stdout.flush()  # here, not at the interpreter's exit: a failure is caught
    except BrokenPipeError:
        # the reader of our output went away (``corral log | head``): end quietly, as a
        # process killed by SIGPIPE would (status 141), not with a traceback
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail
        os._exit(141)


# The one-shot paths allocate ~100k objects while importing, which sets off ~150 cyclic
# collections at the default threshold (700); raised, that costs ~3 ms less of ``corral exec``
# (bench_sandbox). Cycles are still collected, 50,000 allocations at a time; the full CLI, whose
# commands may run for days (``corral run``, ``corral server``), gets the defaults back.
ONE_SHOT_GC_THRESHOLD = 50_000


def _main(argv: list[str]) -> None:
    default_gc = gc.get_threshold()
    gc.set_threshold(ONE_SHOT_GC_THRESHOLD, *default_gc[1:])
    if argv in (["--help"], ["-h"], []):  # the root help page, from a table: no typer
        from corral.cli.commands import program_name, root_help, terminal_columns

        page = root_help(program_name(), terminal_columns())
        (sys.stdout if argv else sys.stderr).write(page)  # bare `corral` is a usage error
        sys.exit(0 if argv else 2)
    if argv[:2] == ["policy", "check"] and not {"-h", "--help"} & set(argv[2:3]):
        from corral.rules.check_fast import main as check_main

        exit_now(check_main(argv[2:]))
    if "exec" in argv or "sandbox" in argv:
        defer_unused_modules()
    if "exec" in argv:
        from corral.cli.exec_fast import main as exec_main

        status = exec_main(argv)
        if status is not None:  # the session is closed: journal committed and signed
            exit_now(status)
    if "sandbox" in argv:
        from corral.cli.sandbox_fast import main as sandbox_main

        status = sandbox_main(argv)
        if status is not None:
            exit_now(status)
    gc.set_threshold(*default_gc)
    ensure_site()
    from corral.cli.app import main as full_main

    full_main()
