"""Green Passbook: the `greenpass` command and the project's error root.

Everything shared by all parts of the project and owned by none of them lives
here: the exception tree (`greenpass.errors`) and the one CLI (`greenpass.cli`).
"""

__version__ = "0.1.0"
