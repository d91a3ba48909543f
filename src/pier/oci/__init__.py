"""The OCI Distribution door (/v2/ and /token): how docker, podman, skopeo, oras and crane move images."""
