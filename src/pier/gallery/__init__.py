"""The public gallery (GET /, /<alias>, /<alias>/<repository>, /search): browse and search repositories."""
