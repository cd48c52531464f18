"""The FastAPI application: read crops, record corrections, say which model serves.

``create_app(holder, storage)``: routes over a started ``serve.models.ModelHolder`` and the
corrections bucket (None: ``/v1/corrections`` answers 503). OpenAPI docs at ``/docs``.
Readings run in worker threads, at most ``readers`` at a time (ONNX Runtime releases the GIL, so
they use the cores while the event loop parses the next requests).
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from bucket.storage import Storage, StorageError
from serve.corrections import Conflict, Refused, record_correction
from serve.models import ModelHolder
from serve.reading import (MAX_BODY_BYTES, MAX_CROP_BYTES, MAX_CROPS, ReadingCache, Reading, Upload, check_crop_id,
                           read_uploads, upload_from_base64)


class CropIn(BaseModel):
    image: str = Field(description="the crop's encoded bytes (PNG, JPEG, WebP, ...) as base64 text")
    crop_id: str | None = Field(None, description="your id for the crop (1-64 of A-Z a-z 0-9 - _); default: a new one")


class ReadIn(BaseModel):
    crops: list[CropIn] = Field(min_length=1, max_length=MAX_CROPS)


class CropOut(BaseModel):
    crop_id: str = Field(description="the id to send a correction of this crop with")
    text: str = Field(description="the code read; empty when the crop could not be read")
    confidence: float = Field(description="0-1; 0 when the crop could not be read")
    rotation: int = Field(description="degrees clockwise the crop was turned before reading: 0, 90, 180 or 270")
    model_version: str
    error: str = Field(description="why the crop could not be read; empty when it was read")


class ReadOut(BaseModel):
    model_version: str
    crops: list[CropOut]


class CorrectionIn(BaseModel):
    crop_id: str = Field(description="the crop id a /v1/read answer gave")
    corrected_label: str = Field(max_length=256, description="the text the shopper accepted or typed, as typed")
    source: str = Field("web", description="where the correction comes from (1-32 of a-z 0-9 - _)")
    image: str | None = Field(None, description="the crop as base64: needed only when the server no longer holds "
                                                "the reading (restart, or older than an hour); it is then read again")


class CorrectionOut(BaseModel):
    created: bool = Field(description="false: this correction was already stored (same crop id, same text)")
    object: str = Field(description="the sidecar's URI in the bucket")
    correction: dict[str, Any] = Field(description="the sidecar as stored (DESIGN.md's corrections contract)")


class BodyTooLarge(Exception):
    """The request body is over the API's size limit (answered 413)."""


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 (by Content-Length, or while
    it streams in), before it is held in memory."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge()
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body larger than {limit} bytes"}, status_code=413)


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _multipart_doc(fields: dict[str, Any], required: list[str]) -> dict:
    return {"schema": {"type": "object", "properties": fields, "required": required}}


READ_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ReadIn.model_json_schema()},
    "multipart/form-data": _multipart_doc({"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                                          ["files"])}}}
CORRECTION_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": CorrectionIn.model_json_schema()},
    "multipart/form-data": _multipart_doc({"crop_id": {"type": "string"}, "corrected_label": {"type": "string"},
                                           "source": {"type": "string"}, "file": {"type": "string", "format": "binary"}},
                                          ["crop_id", "corrected_label"])}}}


async def _uploads(request: Request) -> list[Upload] | JSONResponse:
    """The request's crops (multipart files, any field name, or JSON ``{"crops": [...]}``), or an error reply."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=MAX_CROPS, max_fields=MAX_CROPS)
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            return _error(422, "no files in the multipart body (send the crops as files, e.g. -F files=@crop.png)")
        out = []
        for f in files:
            data = await f.read(MAX_CROP_BYTES + 1)
            out.append(Upload(check_crop_id(None), data) if len(data) <= MAX_CROP_BYTES
                       else Upload(check_crop_id(None), error=f"crop larger than {MAX_CROP_BYTES} bytes"))
        return out
    try:
        body = ReadIn.model_validate_json(await request.body())
        return [upload_from_base64(c.image, check_crop_id(c.crop_id)) for c in body.crops]
    except ValidationError as e:
        return _error(422, "expected JSON {\"crops\": [{\"image\": BASE64, \"crop_id\": optional}, ...]} "
                           f"(1 to {MAX_CROPS} crops) or multipart files", errors=json.loads(e.json(include_url=False)))
    except ValueError as e:
        return _error(422, str(e))


async def _correction_in(request: Request) -> CorrectionIn | JSONResponse:
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=8)
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            if files:
                import base64

                fields["image"] = base64.b64encode(await files[0].read(MAX_CROP_BYTES + 1)).decode()
            return CorrectionIn.model_validate(fields)
        return CorrectionIn.model_validate_json(await request.body())
    except ValidationError as e:
        return _error(422, "expected JSON {\"crop_id\", \"corrected_label\", \"source\": optional, "
                           "\"image\": optional BASE64} or the same as multipart fields",
                      errors=json.loads(e.json(include_url=False)))


def create_app(holder: ModelHolder, storage: Storage | None, extra_chars: str = "", readers: int = 2,
               cache: ReadingCache | None = None, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """The API over a started ``holder``; ``storage``: the corrections bucket (None: corrections refused)."""
    app = FastAPI(title="tagloop", version="1",
                  description="Reads product codes on shoe-tag crops and records shoppers' corrections.")
    cache = cache or ReadingCache()
    gate = threading.BoundedSemaphore(max(1, readers))   # a thread lock, not anyio's: it holds across event loops

    def reading_of(served: Any, uploads: list[Upload]) -> list:
        with gate:
            return read_uploads(served, uploads)
    app.state.holder, app.state.cache = holder, cache
    app.add_middleware(BodyLimit, limit=max_body)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return _too_large(max_body)

    @app.post("/v1/read", response_model=ReadOut, openapi_extra=READ_BODY,
              summary="Read one or many crops (multipart files or JSON with base64)")
    async def read(request: Request) -> Any:
        uploads = await _uploads(request)
        if isinstance(uploads, JSONResponse):
            return uploads
        served = holder.current                # one model for the whole request, whatever a swap does
        results = await anyio.to_thread.run_sync(reading_of, served, uploads)
        crops = []
        for u, r in zip(uploads, results):
            if isinstance(r, Reading):
                cache.put(r)
                crops.append({"crop_id": u.crop_id, "text": r.text, "confidence": r.confidence,
                              "rotation": r.rotation, "model_version": r.model_version, "error": ""})
            else:
                crops.append({"crop_id": u.crop_id, "text": "", "confidence": 0.0, "rotation": 0,
                              "model_version": served.version, "error": r})
        return JSONResponse({"model_version": served.version, "crops": crops})

    @app.post("/v1/corrections", response_model=CorrectionOut, status_code=201, openapi_extra=CORRECTION_BODY,
              summary="Record the text a shopper accepted or corrected for a crop read before",
              responses={200: {"description": "already stored (same crop id and text)"},
                         404: {"description": "unknown crop id and no image"},
                         409: {"description": "the crop id was already corrected to another text"},
                         422: {"description": "bad request, or a correction ingest would quarantine (reason)"},
                         503: {"description": "no bucket configured, or the bucket is unreachable"}})
    async def correct(request: Request) -> Any:
        if storage is None:
            return _error(503, "no corrections bucket: start the server with --bucket or TAGLOOP_BUCKET")
        body = await _correction_in(request)
        if isinstance(body, JSONResponse):
            return body
        if not body.crop_id:                   # an empty id names no crop (reading would make one up)
            return _error(422, "crop_id: required (the id a /v1/read answer gave)")
        try:
            crop_id = check_crop_id(body.crop_id)
        except ValueError as e:
            return _error(422, str(e))
        reading = cache.get(crop_id)
        if reading is None and body.image is None:
            return _error(404, f"crop {crop_id}: not read here in the last hour; send the crop again as 'image'")
        if reading is None:
            (reading,) = await anyio.to_thread.run_sync(reading_of, holder.current,
                                                        [upload_from_base64(body.image, crop_id)])
            if not isinstance(reading, Reading):
                return _error(422, f"crop {crop_id}: {reading}", reason="unreadable_image")
        try:
            doc, created = await anyio.to_thread.run_sync(record_correction, storage, reading, body.corrected_label,
                                                          body.source, extra_chars)
        except Refused as e:
            return _error(422, str(e), reason=e.reason)
        except Conflict as e:
            return _error(409, str(e))
        except StorageError as e:
            return _error(503, f"bucket: {e}")
        except ValueError as e:
            return _error(422, str(e))
        name = f"corrections/{doc['created_at'][:10]}/{crop_id}.json"
        return JSONResponse({"created": created, "object": storage.uri(name), "correction": doc},
                            status_code=201 if created else 200)

    @app.get("/healthz", summary="200 while a model serves")
    async def healthz() -> Any:
        served = holder.current
        if served is None:
            return _error(503, "no model loaded")
        return {"status": "ok", "model_version": served.version, "error": holder.error}

    @app.get("/v1/model", summary="The model serving now, where it comes from, the last poll")
    async def model() -> Any:
        served = holder.current
        return {"version": served.version if served else None, "ref": holder.source.ref,
                "model_dir": served.model_dir if served else None,
                "backend": served.predictor.backend if served else None,
                "loaded_at": _iso(served.loaded_at if served else None), "last_poll": _iso(holder.last_poll),
                "poll_s": holder.poll_s, "error": holder.error}

    return app
