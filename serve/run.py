"""``tagloop serve``: the model holder, the bucket and the app, run by uvicorn (one process)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from serve.models import FixedModel, ModelHolder, ModelSource, RegistryAlias


@dataclass
class ServeConfig:
    home: str                     # TAGLOOP_HOME (the embedded registry and the model cache live there)
    bucket: str | None            # corrections bucket; None: /v1/corrections answers 503
    model: str = "champion"       # champion, models:/NAME@ALIAS, models:/NAME/VERSION or a model directory
    host: str = "127.0.0.1"
    port: int = 8000
    poll_s: float = 10.0          # how often the alias is read (0: never)
    readers: int = 0              # readings at a time (0: the number of cores)
    extra_chars: str = ""         # TAGLOOP_EXTRA_CHARS, as ingest admits them


def model_source(ref: str, home: str) -> ModelSource:
    """``champion`` / ``models:/NAME@ALIAS`` follow the alias; a version or a directory is fixed."""
    from loop.modelref import parse_model_ref, resolve_model

    if ref in ("", "champion"):
        return RegistryAlias(home)
    if ref.startswith("models:/"):
        name, kind, value = parse_model_ref(ref)
        if kind == "alias":
            return RegistryAlias(home, value, name)
        return FixedModel(resolve_model(ref, home), version=value)
    return FixedModel(resolve_model(ref, home))


def build(cfg: ServeConfig):
    """(app, holder) with the model loaded; raises when no model can be loaded or the bucket is unusable."""
    from bucket.storage import open_storage
    from serve.app import create_app

    holder = ModelHolder(model_source(cfg.model, cfg.home), poll_s=cfg.poll_s)
    storage = None
    if cfg.bucket:
        storage = open_storage(cfg.bucket)
        storage.check()
    holder.start()
    readers = cfg.readers or os.cpu_count() or 1
    return create_app(holder, storage, cfg.extra_chars, readers=readers), holder


def serve(cfg: ServeConfig) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app, holder = build(cfg)
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
    finally:
        holder.stop()
