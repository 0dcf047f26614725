"""``ServerSettings``: how ``asrtune serve`` listens, admits and batches requests.

Decoding options (engine, beam size, prompt, bias terms, ...) are :class:`RecognizerOptions`;
these are the server's own, declared once with :func:`asrtune.options.option` so that the CLI
flags and the docs table come from the same fields.

>>> ServerSettings(port=9000).validate().port
9000
>>> ServerSettings(max_batch_size=0).validate()
Traceback (most recent call last):
asrtune.errors.ConfigError: --max-batch-size must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from asrtune.errors import ConfigError
from asrtune.options import option

GROUP = "server"
BYTES_PER_MB = 1024 * 1024


@dataclass
class ServerSettings:
    """Listening address, limits and the dynamic-batching policy of the transcription server."""

    host: str = option("127.0.0.1", group=GROUP, help="address to listen on (0.0.0.0 = every interface)")
    port: int = option(8000, group=GROUP, help="TCP port")
    api_key: str | None = option(None, metavar="KEY", group=GROUP,
                                 help="require 'Authorization: Bearer KEY' on every /v1 request (none = open)")
    max_upload_mb: float = option(25.0, group=GROUP, help="largest upload in MiB (413 above; OpenAI's limit is 25)")
    max_audio_seconds: float = option(3600.0, group=GROUP, help="longest audio accepted, in seconds (413 above)")
    max_batch_size: int = option(16, group=GROUP, help="most segments decoded in one model call (across requests)")
    max_wait_ms: float = option(20.0, group=GROUP,
                                help="how long the first segment of a batch waits for others to join it, in milliseconds")
    max_queue: int = option(64, group=GROUP,
                            help="requests admitted at once (decoding or waiting); more get 503 with Retry-After")

    def validate(self) -> "ServerSettings":
        """Check every setting; raise ConfigError naming the first bad one. Returns self."""
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}")
        for name in ("max_upload_mb", "max_audio_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        for name in ("max_batch_size", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * BYTES_PER_MB)

    def public(self) -> dict:
        """The settings as shown by ``GET /v1/models`` (the key itself is never shown)."""
        d = dataclasses.asdict(self)
        d["api_key"] = "set" if self.api_key else None
        return d
