"""What an artifact that refers to an image is, by its artifactType (OCI referrers): a signature, an SBOM,
an attestation, or something else (named by its type).

cosign and notation signatures are "signature"; SPDX and CycloneDX documents (and Syft's) are "SBOM" with
their format; in-toto statements (and cosign's attestations) are "attestation". A sigstore bundle (cosign
3's format) is a signature when its predicate type says so, an attestation otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE, SBOM, ATTESTATION, OTHER = "signature", "sbom", "attestation", "other"
LABELS = {SIGNATURE: "signature", SBOM: "SBOM", ATTESTATION: "attestation"}

_EXACT: dict[str, tuple[str, str]] = {
    "application/vnd.dev.cosign.artifact.sig.v1+json": (SIGNATURE, "cosign"),
    "application/vnd.dev.cosign.simplesigning.v1+json": (SIGNATURE, "cosign"),
    "application/vnd.cncf.notary.signature": (SIGNATURE, "Notation"),
    "application/spdx+json": (SBOM, "SPDX JSON"),
    "application/spdx+xml": (SBOM, "SPDX XML"),
    "application/spdx+yaml": (SBOM, "SPDX YAML"),
    "application/vnd.spdx+json": (SBOM, "SPDX JSON"),
    "text/spdx": (SBOM, "SPDX tag-value"),
    "text/spdx+json": (SBOM, "SPDX JSON"),
    "application/vnd.cyclonedx": (SBOM, "CycloneDX"),
    "application/vnd.cyclonedx+json": (SBOM, "CycloneDX JSON"),
    "application/vnd.cyclonedx+xml": (SBOM, "CycloneDX XML"),
    "application/vnd.syft+json": (SBOM, "Syft JSON"),
    "application/vnd.in-toto+json": (ATTESTATION, "in-toto"),
    "application/vnd.dev.cosign.attestation.v1+json": (ATTESTATION, "in-toto (cosign)"),
}
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle"
SIGSTORE_PREDICATE = "dev.sigstore.bundle.predicateType"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
IN_TOTO_PREDICATE = "in-toto.io/predicate-type"


@dataclass(frozen=True)
class Kind:
    kind: str  # SIGNATURE, SBOM, ATTESTATION or OTHER
    format: str | None  # "cosign", "SPDX JSON", "in-toto", ...; for OTHER the artifact type itself

    @property
    def label(self) -> str:
        return LABELS.get(self.kind, self.format or "artifact")


def classify(artifact_type: str | None, annotations: Mapping[str, str] | None = None) -> Kind:
    annotations = annotations or {}
    value = (artifact_type or "").strip()
    base = value.split(";")[0].strip().lower()
    if base in _EXACT:
        kind, name = _EXACT[base]
        if kind == ATTESTATION and annotations.get(IN_TOTO_PREDICATE):
            name = f"{name}: {annotations[IN_TOTO_PREDICATE]}"
        return Kind(kind, name)
    if base.startswith(SIGSTORE_BUNDLE):
        predicate = annotations.get(SIGSTORE_PREDICATE)
        if predicate in (None, COSIGN_SIGN_PREDICATE):
            return Kind(SIGNATURE, "sigstore bundle")
        return Kind(ATTESTATION, f"sigstore bundle: {predicate}")
    if base.startswith("application/vnd.in-toto"):
        return Kind(ATTESTATION, "in-toto")
    if "spdx" in base:
        return Kind(SBOM, "SPDX")
    if "cyclonedx" in base:
        return Kind(SBOM, "CycloneDX")
    return Kind(OTHER, value or None)
