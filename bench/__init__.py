"""Staff tooling that measures the repository: mutation score, flakiness, benchmarks."""
