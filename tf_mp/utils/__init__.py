"""Helpers shared across tf_mp's packages, the CLI, benchmarks and examples."""
