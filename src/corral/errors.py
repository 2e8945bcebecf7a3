"""One error type for refusals, so every refusal names the control that refused and why."""

from __future__ import annotations


class CorralError(Exception):
    """A refusal or failure that the user (or the agent) must understand in one line.

    ``control`` names the part of corral that refused (config, requirements, rules, sandbox,
    network, approvals, review, telemetry). ``hint`` says what to do about it, if anything.
    """

    exit_code = 2

    def __init__(self, control: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.control = control
        self.message = message
        self.hint = hint

    def line(self) -> str:
        text = f"corral: {self.control}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __str__(self) -> str:
        return self.line()


class ConfigError(CorralError):
    """Bad configuration input: names the file and position (file:line:col) when known."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__("config", message, hint)


class RequirementsError(CorralError):
    """A value chosen explicitly that admin requirements forbid, or unusable requirements."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__("requirements", message, hint)
