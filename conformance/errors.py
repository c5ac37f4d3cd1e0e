"""Errors a user can cause. The CLI catches `ConformanceError` once and exits 3.

Anything that is not a `ConformanceError` is the harness's own failure and is
reported as the `error` verdict, never as a silent success.

    ConformanceError
    ├── ProfileError        bad profile: file, key path, problem
    ├── WaiverError         bad waiver file: file, key path, problem
    ├── CaptureError        unreadable capture (not pcap/pcapng, unsupported format)
    ├── SigningKeyError     signing key missing, malformed or world-readable
    ├── VerifyError         a report directory does not verify
    ├── LabError            the lab could not be set up (missing tool, no privileges)
    └── TargetError         a live target could not be reached or driven
"""

from __future__ import annotations

from pathlib import Path


class ConformanceError(Exception):
    """Base of every error a user can cause or fix."""


class ProfileError(ConformanceError):
    """A deployment profile is invalid. The message names file, key path and problem."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.path}: {key or '<top>'}: {problem}")


class WaiverError(ConformanceError):
    """A waiver file is invalid. The message names file, key path and problem."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.path}: {key or '<top>'}: {problem}")


class CaptureError(ConformanceError):
    """A capture file cannot be read at all (a damaged tail is not an error: it is flagged)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SigningKeyError(ConformanceError):
    """A signing or verification key is missing, malformed or has unsafe permissions."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class VerifyError(ConformanceError):
    """A report directory failed verification; `path` names the offending file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class LabError(ConformanceError):
    """The lab could not be set up or torn down."""


class TargetError(ConformanceError):
    """A live target (lab, container, host) could not be reached or driven."""
