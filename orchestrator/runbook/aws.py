"""Shell renderings shared by the runbook's steps: the private directory the runbook
makes its secret files in, and the AWS CLI against one S3 endpoint with that endpoint's
own keys, read from such a file (never from a command line or the environment)."""

from __future__ import annotations

import shlex

from orchestrator.config.model import ObjectStore, S3Endpoint, SecretRef

# The private directory (mktemp -d: mode 0700) the runbook's secret files are made in.
SECRETS_VAR = "RUNBOOK_SECRETS"
CREDENTIALS_FILE = "aws-credentials"


def made(name: str) -> str:
    """A secret file the runbook makes, as a command names it."""
    return f'"${SECRETS_VAR}/{name}"'


def secret_shell(ref: SecretRef) -> str:
    """The secret as a shell expansion, to be used inside double quotes: the value is
    read when the command runs and never appears in the runbook."""
    return f"$(cat {shlex.quote(ref.file)})" if ref.file else f"${ref.env}"


def profile(endpoint: S3Endpoint) -> str:
    return f"sitectl-{endpoint.site}"


def s3api(endpoint: S3Endpoint, sub: str) -> str:
    """`aws s3api SUB` at `endpoint`, with its own profile of the credentials file the
    runbook made, its CA when it has its own."""
    ca = f" --ca-bundle {shlex.quote(endpoint.ca_file)}" if endpoint.ca_file else ""
    return (
        f"AWS_SHARED_CREDENTIALS_FILE={made(CREDENTIALS_FILE)} aws --profile "
        f"{profile(endpoint)} --region {shlex.quote(endpoint.region)} "
        f"--endpoint-url {endpoint.url}{ca} s3api {sub}"
    )


def make_credentials(store: ObjectStore) -> str:
    """The command that writes every endpoint's profile into the credentials file, by
    printf (a builtin: the keys are in no process's arguments)."""
    formats, args = [], []
    for endpoint in store.endpoints:
        formats.append("[%s]\\naws_access_key_id = %s\\naws_secret_access_key = %s\\n")
        args += [
            profile(endpoint),
            f'"{secret_shell(endpoint.access_key)}"',
            f'"{secret_shell(endpoint.secret_key)}"',
        ]
    return f"(umask 077 && printf '{''.join(formats)}' {' '.join(args)} > {made(CREDENTIALS_FILE)})"
