"""User-facing errors: bad input the user can fix, as opposed to bugs.

Every class here derives from :class:`UserError`; its message is one sentence that names the thing at fault
(a file, an option, a config field) and says what to do. The command line prints such an error as one line
with a non-zero exit status (``--debug`` adds the traceback); any other exception is treated as a bug and
keeps its traceback. Each subclass also derives from the built-in class that code catching the old errors
expects (``ValueError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """Input the user can fix (a file, an option, a setting); the message names it and says how."""


class ConfigError(UserError, ValueError):
    """A config (a preset, an override, a checkpoint's config.json) has a field of the wrong type or out of
    its range; the message names the config and the field."""


class OptionError(UserError, ValueError):
    """A tool option is out of its range or contradicts another; the message names the option (``--flag``)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint folder or file is missing, incomplete, damaged or not ours; the message names the file
    and what to do."""


__all__ = ["CheckpointError", "ConfigError", "OptionError", "UserError"]
