"""pier: a self-hosted container registry, wire-compatible with Amazon ECR Public."""

__version__ = "0.1.0"
