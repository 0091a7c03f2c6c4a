"""The one error type raised for settings that Vertex would reject."""

from typing import Any


def shown(value: Any) -> str:
    """A value as the user wrote it in YAML or an override: `null`, `true`, `false`; else its repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


class ConfigError(ValueError):
    """A setting that cannot work; the message names the field, the value and what is accepted.

    Raised before anything is written or sent, so a bad sweep costs nothing.
    """

    def __init__(self, field: str, value: object, accepted: str, hint: str = "", where: str = "") -> None:
        self.field = field
        self.value = value
        self.accepted = accepted
        self.hint = hint
        self.where = where
        message = f"{field}={shown(value)}" + (f" ({where})" if where else "") + f" is not accepted: {accepted}"
        if hint:
            message += f". {hint}"
        super().__init__(message)

    def at(self, where: str) -> "ConfigError":
        """The same error, saying where the setting came from (e.g. which trial)."""
        return ConfigError(self.field, self.value, self.accepted, self.hint, where)
