"""The errors this launcher raises. Each is a CompactHydraException: Hydra shows its message
alone, without a stack trace, since the message says what to do.

A private module, as `_choices`: Hydra's plugin scan executes the public modules again,
and a class made anew would not catch the errors raised as the first one.
"""

from hydra.errors import CompactHydraException


class LauncherConfigError(CompactHydraException):
    """A setting that cannot work (a ConfigError), or a sweep dir in use: nothing was started."""


class LauncherWriteError(CompactHydraException):
    """The batch's files could not be written (a full disk, a quota, a permission): none was left."""


class NoTrialValuesError(CompactHydraException):
    """The sweeper needs trial values, and this mode produces none."""


class FollowingLost(CompactHydraException):
    """Vertex could not be reached for too long while following; the run goes on."""


class TrialFailed(CompactHydraException):
    """A trial raised, or its process ended without a result of this run; Hydra's sweepers
    raise it from `JobReturn.return_value`, and Hydra prints its message alone."""
