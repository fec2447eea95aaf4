"""``POST /v1/images/variations`` as an adapter of the generation pipeline (dall-e-2's rules: one square PNG
under 4 MB, ``n`` 1-10, ``size`` 256/512/1024, ``response_format``, ``user``); no HTTP framework here.

A variation is the input redrawn with new seeds: image-to-image from it with no prompt, at
``validation_edits.VARIATION_STRENGTH`` of the noise schedule, so each image keeps the input's composition and
colours and differs in its details. The newest SDKs mark the endpoint deprecated; older clients (OpenAI-DotNet
among them) still call it.
"""

from __future__ import annotations

import asyncio
import threading

from imageforge.errors import InvalidRequestError
from imageforge.imaging.decode import decode_upload
from imageforge.imaging.uploads import ImageForm
from imageforge.protocol.edits import form_fields, parse_variation_request
from imageforge.serving.edits import DALLE_UPLOAD_BYTES
from imageforge.serving.generations import log_request
from imageforge.serving.images_wire import ImagesEndpoint, ImagesRun
from imageforge.serving.pipeline import ImageJob
from imageforge.validation_edits import resolve_variation

__all__ = ["VariationsService"]


class VariationsService(ImagesEndpoint):
    async def start(
        self, form: ImageForm, request_id: str, cancel: threading.Event, *, key_id: str = "-", base_url: str = ""
    ) -> ImagesRun:
        req = parse_variation_request(form_fields(form.fields))
        if form.mask is not None or form.markup is not None:
            which = "mask" if form.mask is not None else "markup"
            raise InvalidRequestError(f"Unknown parameter: '{which}'.", param=which, code="unknown_parameter")
        if len(form.images) != 1:
            raise InvalidRequestError(
                "Missing required parameter: 'image'." if not form.images else
                f"A variation is made from one image; {len(form.images)} were sent.",
                param="image", code="missing_required_parameter" if not form.images else "invalid_value",
            )  # fmt: skip
        upload = form.images[0]
        decoded = await asyncio.to_thread(decode_upload, upload.data, upload.param, max_bytes=DALLE_UPLOAD_BYTES,
                                          formats=("PNG",), limit_for="dall-e-2")  # fmt: skip
        if decoded.width != decoded.height:
            raise InvalidRequestError(f"Invalid file '{upload.param}': the image must be square; this one is "
                                      f"{decoded.width}x{decoded.height}.", param=upload.param,
                                      code="invalid_image_file")  # fmt: skip
        resolved = resolve_variation(req, decoded.image, self.catalogue, self.capabilities, request_id=request_id)
        log_request("variation", resolved)
        job = ImageJob(resolved, prompt="", key_id=key_id, endpoint="images.variations",
                       input_images=(decoded.image,))  # fmt: skip
        return ImagesRun(job, await self.pipeline.start(job, cancel, base_url=base_url))
