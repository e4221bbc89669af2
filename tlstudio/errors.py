"""The one base class for errors whose message is written for the user.

The CLI prints them (exit code 2), the GUI shows them as they are, the trainer reports them
without a traceback. Anything else is a bug and is shown with its traceback.
"""


class UserError(Exception):
    """Bad input or an impossible request; ``str(err)`` says what to change."""
