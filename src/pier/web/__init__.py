"""Plumbing the doors share: health, logos, responses."""
