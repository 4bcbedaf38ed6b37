"""Errors a user can cause and fix, reported as one line without a traceback."""

from __future__ import annotations

from pathlib import Path


class UserInputError(Exception):
    """Bad input from the user: the message names the thing and the problem."""

    def __init__(self, subject: str | Path, problem: str) -> None:
        self.subject = str(subject)
        self.problem = problem
        super().__init__(f"{self.subject}: {problem}")


class CancelledError(Exception):
    """A job was cancelled by its submitter."""
