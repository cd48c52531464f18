"""The reading API (`tagloop serve`): FastAPI over the recognizer's ONNX path, no torch.

``serve.models``: the served model and its hot swap when the registry's ``champion`` moves.
``serve.reading``: request bodies (multipart files or JSON with base64) -> crops -> readings.
``serve.corrections``: a shopper's accepted or corrected text -> the corrections contract in the bucket.
``serve.app``: the FastAPI application (routes, limits, errors); ``serve.run``: uvicorn.
"""
