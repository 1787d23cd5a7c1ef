"""Settings that point the aspose engine at a running AsposeEmulator, with quick polling."""

from __future__ import annotations

from typing import Any

from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.testing.aspose_emulator import AsposeEmulator


def make_settings(
    emu: AsposeEmulator, *, mode: str = "printed", languages: list[str] | None = None, **aspose: Any
) -> Settings:
    """Settings for the aspose engine on ``emu``; ``aspose`` overrides its section's keys.

    ``mode`` defaults to printed: the pipeline would take auto as handwritten for a
    handwriting engine.
    """
    cfg: dict[str, Any] = {
        "base_url": emu.base_url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "poll_interval": 0.02,
        "request_timeout": 10.0,
        "task_deadline": 30.0,
    }
    cfg.update(aspose)
    overrides: dict[str, Any] = {"engine": "aspose", "mode": mode, "aspose": cfg}
    if languages is not None:
        overrides["languages"] = languages
    return load_settings(overrides=overrides)
