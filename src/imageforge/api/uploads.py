"""Reading the multipart form of ``POST /v1/images/edits`` and ``/v1/images/variations`` (reference §3.1, §11.2).

:func:`read_image_form` turns the request into an :class:`~imageforge.imaging.uploads.ImageForm` or raises one of
ImageForge's errors; it never lets the framework answer with a 422 or a 500:

- the body is capped twice: a declared ``Content-Length`` over the limit is refused before reading, and the bytes
  actually received are counted as they stream in (chunked bodies have no length), so an oversized body is
  refused with a 413 as soon as it passes the cap instead of being read to its end;
- parsing is Starlette's ``MultiPartParser`` (python-multipart; files are spooled to temporary files past 1 MiB),
  subclassed only to decode text strictly as UTF-8 (Starlette falls back to latin-1, which would let invalid
  UTF-8 through as mojibake), to notice a body that ends before its closing boundary, and to refuse too many
  images or a misplaced file the moment its part headers arrive;
- every temporary file is closed whatever happens.

The client's file names and part ``Content-Type`` headers are not used: ``imaging.decode.decode_upload`` sniffs
the bytes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import Message

from imageforge.errors import InvalidRequestError, RequestTooLargeError
from imageforge.imaging.uploads import ImageForm, UploadedFile

__all__ = ["FILE_FIELDS", "MAX_FIELDS", "MAX_FIELD_BYTES", "is_image_field", "read_image_form"]

FILE_FIELDS = ("mask", "markup")  # single files; images are every part named image, image[] or image[N]
MAX_FIELDS = 100  # text fields; the edit schema has about twenty
MAX_FIELD_BYTES = 1 << 20  # one text field (a 32,000-character prompt is at most 128 KB of UTF-8)
_IMAGE_FIELD = re.compile(r"image(\[\d*\])?")


def is_image_field(name: str) -> bool:
    """``image``, ``image[]``, ``image[0]``, ``image[1]``, ... (the SDKs' and curl's spellings of the array)."""
    return _IMAGE_FIELD.fullmatch(name) is not None


def _is_file_field(name: str) -> bool:
    return name in FILE_FIELDS or is_image_field(name)


def _expected_file(param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected a file, but got a string instead.", param=param, code="invalid_type"
    )


def _malformed(detail: str) -> InvalidRequestError:
    return InvalidRequestError(f"The multipart form could not be parsed: {detail}", code="invalid_multipart")


def _too_large(max_body_bytes: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"The request body is larger than the limit of {max_body_bytes} bytes.")


class _FormParser(MultiPartParser):
    """Starlette's parser, stricter: UTF-8 only, complete bodies only, early refusals of what cannot be used."""

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes, None],
        *,
        max_images: int,
        max_fields: int,
        max_field_bytes: int,
    ) -> None:
        # Room for every image, the mask and the markup, plus one: the image past the limit is then refused
        # below, with its own message, before the parser's generic "Too many files".
        super().__init__(
            headers,
            stream,
            max_files=max_images + len(FILE_FIELDS) + 1,
            max_fields=max_fields,
            max_part_size=max_field_bytes,
        )
        self.max_images = max_images
        self.image_files = 0
        self.complete = False
        self.uploads: list[UploadFile] = []  # every file opened, finished or not (a truncated body leaves one open)

    def on_part_begin(self) -> None:
        # Names and file names are decoded with the request's declared charset; a hostile one
        # (charset=unicode_escape) could turn "\ud800" into a lone surrogate. Only UTF-8 is honoured.
        self._charset = "utf-8"
        super().on_part_begin()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is None and len(part.data) + (end - start) > self.max_part_size:
            name = part.field_name
            if _is_file_field(name):
                raise _expected_file(name)
            raise InvalidRequestError(
                f"Invalid '{name}': the value is longer than the limit of {self.max_part_size} bytes.",
                param=name,
                code="invalid_value",
            )
        super().on_part_data(data, start, end)

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._current_part.content_disposition)
        try:
            options.get(b"name", b"").decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("a part's name is not valid UTF-8.") from None
        super().on_headers_finished()
        part = self._current_part
        if part.file is None:
            return
        self.uploads.append(part.file)
        if not _is_file_field(part.field_name):
            raise InvalidRequestError(
                f"Invalid type for '{part.field_name}': expected a string, but got a file instead.",
                param=part.field_name,
                code="invalid_type",
            )
        if is_image_field(part.field_name):
            self.image_files += 1
            if self.image_files > self.max_images:
                most = f"{self.max_images} image" + ("s" if self.max_images != 1 else "")
                raise InvalidRequestError(
                    f"Invalid 'image': too many images. Send at most {most} in one request.",
                    param="image",
                    code="invalid_value",
                )

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is not None:
            super().on_part_end()
            return
        try:
            value = part.data.decode("utf-8")  # strict: no mojibake, and no encoded lone surrogates
        except UnicodeDecodeError:
            raise InvalidRequestError(
                f"Invalid value for '{part.field_name}': the text is not valid UTF-8.",
                param=part.field_name,
                code="invalid_value",
            ) from None
        self.items.append((part.field_name, value))

    def on_end(self) -> None:
        self.complete = True
        super().on_end()


async def read_image_form(
    request: Request,
    *,
    max_body_bytes: int,
    max_images: int = 16,
    max_fields: int = MAX_FIELDS,
    max_field_bytes: int = MAX_FIELD_BYTES,
) -> ImageForm:
    """Read and check the multipart form of an edit or variation request (call it before anything reads the body).

    Refusals: 413 ``request_too_large`` (declared or streamed body over ``max_body_bytes``); 400
    ``invalid_multipart`` (not multipart/form-data, malformed, truncated, too many parts); 400 ``invalid_value``
    with ``param`` ``image`` (more than ``max_images`` images), or naming a field given twice, a value that is
    not UTF-8 or too long; 400 ``invalid_type`` (a string where a file belongs, param ``image[i]``/``mask``/
    ``markup``, or a file where a string belongs, param the field's name). The image bytes are not checked here.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise _too_large(max_body_bytes)
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise InvalidRequestError(
            "The request body must be multipart/form-data, with the image files and the other fields as parts.",
            code="invalid_multipart",
        )
    if not params.get(b"boundary"):
        raise _malformed("the Content-Type header has no boundary.")

    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_body_bytes:
                raise _too_large(max_body_bytes)
        return message

    capped = Request(request.scope, capped_receive)
    stream = capped.stream()
    parser = _FormParser(
        capped.headers, stream, max_images=max_images, max_fields=max_fields, max_field_bytes=max_field_bytes
    )
    try:
        form = await parser.parse()  # closes its temporary files itself when it raises
    except MultiPartException as e:
        raise _malformed(e.message) from None
    finally:
        await stream.aclose()
    try:
        if not parser.complete:
            raise _malformed("the body ended before the closing boundary.")
        return await _collect(form)
    finally:
        for upload in parser.uploads:  # the form's files, and any part the body ended inside
            await upload.close()


async def _read(upload: UploadFile, param: str) -> UploadedFile:
    return UploadedFile(data=await upload.read(), param=param)  # read in a thread once spooled to disk


async def _collect(form: FormData) -> ImageForm:
    images: list[tuple[str, str | UploadFile]] = []
    files: dict[str, UploadFile | None] = {}  # mask, markup (None: sent as an empty string, i.e. absent)
    fields: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in form.multi_items():
        if is_image_field(name):
            if value != "":  # the SDKs send None as an empty string: absent
                images.append((name, value))
            continue
        if name in seen:
            what = "send one file, not several" if name in FILE_FIELDS else "the field was given more than once"
            raise InvalidRequestError(f"Invalid '{name}': {what}.", param=name, code="invalid_value")
        seen.add(name)
        if name in FILE_FIELDS:
            if isinstance(value, str) and value != "":
                raise _expected_file(name)
            files[name] = value if isinstance(value, UploadFile) else None
        else:
            assert isinstance(value, str)  # the parser refused files under any other name
            if value != "":
                fields[name] = value
    one = len(images) == 1 and images[0][0] == "image"
    uploaded: list[UploadedFile] = []
    for i, (_, value) in enumerate(images):
        if isinstance(value, str):
            raise _expected_file(f"image[{i}]")  # OpenAI's live error names the array element, even for one
        uploaded.append(await _read(value, "image" if one else f"image[{i}]"))
    mask, markup = files.get("mask"), files.get("markup")
    return ImageForm(
        images=tuple(uploaded),
        mask=None if mask is None else await _read(mask, "mask"),
        markup=None if markup is None else await _read(markup, "markup"),
        fields=fields,
    )
