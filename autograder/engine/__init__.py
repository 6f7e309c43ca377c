"""The lab-agnostic grading engine: submissions, workers, the pytest plugin, reports."""
