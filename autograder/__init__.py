"""The grading engine and the hidden test suites of the AI-safety labs."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
