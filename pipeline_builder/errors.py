"""The one error type raised for settings that Vertex would reject."""


class ConfigError(ValueError):
    """A setting that cannot work; the message names the field, the value and what is accepted.

    Raised before anything is written or sent, so a bad sweep costs nothing.
    """

    def __init__(self, field: str, value: object, accepted: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.accepted = accepted
        message = f"{field}={value!r} is not accepted: {accepted}"
        if hint:
            message += f". {hint}"
        super().__init__(message)
