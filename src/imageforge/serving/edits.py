"""``POST /v1/images/edits`` as an adapter of the generation pipeline; no HTTP framework here.

Both forms end in one :class:`~imageforge.serving.pipeline.ImageJob`: the multipart upload every SDK sends
(:meth:`EditsService.start_form`) and the JSON body of the spec (``images`` of ``image_url`` data URLs,
:meth:`EditsService.start_json`). Every upload is checked before any engine work, in a worker thread: the
per-model file limit (50 MB for GPT image models, 4 MB and square PNG for dall-e-2), the format sniffed from the
bytes, the pixel count from the header (decompression bombs), still images only, and the mask against the first
image (``imaging/decode.py``). Then ``validation_edits.resolve_edit`` applies the model's rules and the pipeline
runs the job: the input images are moderated, counted in ``usage`` and edited (``image_edit.*`` events when
streaming).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imageforge.errors import InvalidRequestError, UnsupportedParameterError
from imageforge.imaging.decode import DecodedUpload, check_markup, check_mask, decode_upload
from imageforge.imaging.uploads import ImageForm, UploadedFile
from imageforge.profiles import Profile
from imageforge.protocol.edits import ImageEditRequest, ImageRef, form_fields, parse_edit_request
from imageforge.serving.generations import log_request
from imageforge.serving.images_wire import ImagesEndpoint, ImagesRun
from imageforge.serving.pipeline import ImageJob
from imageforge.serving.usage import input_image_tokens
from imageforge.validation import ResolvedRequest
from imageforge.validation_edits import check_markup_request, resolve_edit

__all__ = ["DALLE_UPLOAD_BYTES", "GPT_UPLOAD_BYTES", "EditInputs", "EditsService", "decode_inputs", "upload_limits"]

GPT_UPLOAD_BYTES = 50 << 20  # OpenAI's limits per input image (reference §3.2)
DALLE_UPLOAD_BYTES = 4 << 20
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,")


def upload_limits(profile: Profile) -> tuple[int, tuple[str, ...], str]:
    """(bytes per file, accepted formats, whose limit) of a model's uploads."""
    if profile.gpt:
        return GPT_UPLOAD_BYTES, ("PNG", "JPEG", "WEBP"), profile.name
    return DALLE_UPLOAD_BYTES, ("PNG",), profile.name


@dataclass(frozen=True)
class EditInputs:
    images: list[DecodedUpload]
    mask: Any | None  # the engines' repaint mask


def decode_inputs(
    profile: Profile, files: Sequence[UploadedFile], mask: UploadedFile | None, markup: UploadedFile | None = None
) -> EditInputs:
    """Check and decode every upload of an edit (blocking: run it in a worker thread); the first refusal names
    its part. The CLI's in-process edits go through here too, so they are refused exactly where the API refuses.
    ``markup`` (strokes over the first image) is drawn onto it and becomes the repaint mask that weights the edit
    towards the strokes (``imaging.decode.check_markup``)."""
    if len(files) > 16:
        raise InvalidRequestError(f"At most 16 images may be edited together; {len(files)} were sent.",
                                  param="image", code="invalid_value")  # fmt: skip
    max_bytes, formats, whose = upload_limits(profile)
    images = [decode_upload(f.data, f.param, max_bytes=max_bytes, formats=formats, limit_for=whose) for f in files]
    if not profile.gpt and images[0].width != images[0].height:
        first = images[0]
        raise InvalidRequestError(f"Invalid file '{files[0].param}': {profile.name} edits a square image; "
                                  f"this one is {first.width}x{first.height}.", param=files[0].param,
                                  code="invalid_image_file")  # fmt: skip
    repaint = None
    if mask is not None:
        decoded = decode_upload(mask.data, mask.param, max_bytes=DALLE_UPLOAD_BYTES, formats=("PNG",),
                                limit_for="masks")  # fmt: skip
        repaint = check_mask(decoded, images[0], mask.param)
    if markup is not None:
        drawn = decode_upload(markup.data, markup.param, max_bytes=max_bytes, formats=("PNG",),
                              limit_for="markup images")  # fmt: skip
        guided, repaint = check_markup(drawn, images[0], markup.param)
        images[0] = dataclasses.replace(images[0], image=guided)
    return EditInputs(images, repaint)


class EditsService(ImagesEndpoint):
    async def start_form(
        self, form: ImageForm, request_id: str, cancel: threading.Event, *, key_id: str = "-", base_url: str = ""
    ) -> ImagesRun:
        """A multipart edit: resolve, check the uploads, admit; every refusal is raised here, before any byte."""
        req = parse_edit_request(form_fields(form.fields))
        if req.images is not None or req.mask is not None:
            raise InvalidRequestError("In a multipart edit, 'image' and 'mask' are files, not text fields.",
                                      param="images" if req.images is not None else "mask")  # fmt: skip
        if not form.images:
            raise InvalidRequestError(
                "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
            )
        profile = self._profile(req)
        if form.markup is not None:
            check_markup_request(req, profile, mask=form.mask is not None)
        inputs = await asyncio.to_thread(decode_inputs, profile, form.images, form.mask, form.markup)
        return await self._start(req, inputs, request_id, cancel, key_id, base_url)

    async def start_json(
        self, body: Mapping[str, Any], request_id: str, cancel: threading.Event, *, key_id: str = "-",
        base_url: str = "",
    ) -> ImagesRun:  # fmt: skip
        """The JSON form (GPT image models only): ``images`` (1-16) and ``mask`` as data URLs."""
        req = parse_edit_request(body)
        profile = self._profile(req)
        if not profile.gpt:
            raise InvalidRequestError(f"{profile.name} edits must be sent as multipart/form-data (with 'image').",
                                      param="model", code="invalid_value")  # fmt: skip
        if not req.images:
            raise InvalidRequestError("Missing required parameter: 'images'.", param="images",
                                      code="missing_required_parameter")  # fmt: skip
        files = [_ref_bytes(ref, f"images[{i}]") for i, ref in enumerate(req.images)]
        mask = _ref_bytes(req.mask, "mask") if req.mask is not None else None
        inputs = await asyncio.to_thread(decode_inputs, profile, files, mask)
        return await self._start(req, inputs, request_id, cancel, key_id, base_url)

    def _profile(self, req: ImageEditRequest) -> Profile:
        return self.catalogue.profile(req.model or self.default_gpt_model)

    async def _start(
        self,
        req: ImageEditRequest,
        inputs: EditInputs,
        request_id: str,
        cancel: threading.Event,
        key_id: str,
        base_url: str,
    ) -> ImagesRun:
        resolved = resolve_edit(req, [i.image for i in inputs.images], inputs.mask, self.catalogue, self.capabilities,
                                default_gpt_model=self.default_gpt_model, request_id=request_id)  # fmt: skip
        log_request("edit", resolved)
        job = ImageJob(resolved, prompt=req.prompt, key_id=key_id, endpoint="images.edits",
                       input_images=tuple(i.image for i in inputs.images),
                       input_image_tokens=_input_tokens(resolved, inputs.images, req.input_fidelity))  # fmt: skip
        return ImagesRun(job, await self.pipeline.start(job, cancel, base_url=base_url), events_of="edit")


def _input_tokens(r: ResolvedRequest, images: Sequence[DecodedUpload], fidelity: str | None) -> int:
    if not r.profile.returns_usage:
        return 0
    return sum(input_image_tokens(i.width, i.height, fidelity or "low") for i in images)


def _ref_bytes(ref: ImageRef, where: str) -> UploadedFile:
    """An image of the JSON form -> its bytes; remote URLs and file ids are named refusals."""
    if ref.file_id is not None and ref.image_url is not None:
        raise InvalidRequestError(f"'{where}' must have exactly one of 'image_url' and 'file_id'.", param=where)
    if ref.file_id is not None:
        raise UnsupportedParameterError(
            f"'{where}.file_id' is not supported: this server has no Files API; send the image as a data URL in "
            "'image_url'.",
            param=f"{where}.file_id",
        )
    url = ref.image_url
    if url is None:
        raise InvalidRequestError(f"'{where}' needs an 'image_url' (a data URL).", param=f"{where}.image_url",
                                  code="missing_required_parameter")  # fmt: skip
    m = _DATA_URL.match(url)
    if m is None:
        remote = url.startswith(("http://", "https://"))
        why = "this server does not fetch remote images" if remote else "it is not a base64 data URL"
        raise InvalidRequestError(f"Invalid '{where}.image_url': {why}; send data:image/png;base64,...",
                                  param=f"{where}.image_url", code="invalid_value")  # fmt: skip
    try:
        data = base64.b64decode(url[m.end() :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"'{where}.image_url' is not valid base64.", param=f"{where}.image_url",
                                  code="invalid_image_file") from None  # fmt: skip
    return UploadedFile(data, f"{where}.image_url")
