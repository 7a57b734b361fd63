"""What counts as a weak setting (issue 19, finding 7): pure data shared by `validate`
and the adapters that read the same files."""

from __future__ import annotations

import re

# TSIG algorithms with known weaknesses (RFC 8945 §6: MD5 and SHA-1 are not to be used).
WEAK_TSIG = frozenset({"hmac-md5", "hmac-md5.sig-alg.reg.int", "hmac-sha1"})
# One `algorithm NAME;` statement of a BIND key block.
KEY_FILE_ALGORITHM = re.compile(r'\balgorithm\s+"?([A-Za-z0-9.\-]+)"?\s*;')
