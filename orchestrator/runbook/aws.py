"""Shell renderings shared by the runbook's steps: a secret as the shell reads it, and
the AWS CLI against one S3 endpoint with that endpoint's own keys."""

from __future__ import annotations

import shlex

from orchestrator.config.model import S3Endpoint, SecretRef


def secret_shell(ref: SecretRef) -> str:
    """The secret as a shell expansion, to be used inside double quotes: the value is
    read when the command runs and never appears in the runbook."""
    return f"$(cat {shlex.quote(ref.file)})" if ref.file else f"${ref.env}"


def s3api(endpoint: S3Endpoint, sub: str) -> str:
    """`aws s3api SUB` at `endpoint`, its keys in the command's environment (never on
    its command line), its CA when it has its own."""
    ca = f" --ca-bundle {shlex.quote(endpoint.ca_file)}" if endpoint.ca_file else ""
    return (
        f'AWS_ACCESS_KEY_ID="{secret_shell(endpoint.access_key)}" '
        f'AWS_SECRET_ACCESS_KEY="{secret_shell(endpoint.secret_key)}" '
        f"AWS_DEFAULT_REGION={shlex.quote(endpoint.region)} "
        f"aws --endpoint-url {endpoint.url}{ca} s3api {sub}"
    )
