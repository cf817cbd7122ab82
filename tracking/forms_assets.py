"""Forms for custom redirects and tracked files, and the upload size guard."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tracking import links
from tracking.models import CustomRedirect


def _clean_destination(value: str) -> str:
    value = value.strip()
    if not links.is_safe_destination(value):
        raise forms.ValidationError(
            _("Enter a full address starting with https:// or http://."), code="unsafe_url"
        )
    return value


class CustomRedirectForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    # A CharField, not a URLField: URLField would turn "//evil.example" or "example.com" into a
    # URL by guessing a scheme; a redirect's destination is exactly what the marketer typed.
    destination_url = forms.CharField(
        label=_("Destination"),
        max_length=links.MAX_URL_LENGTH,
        help_text=_("The full address visitors are sent to, e.g. https://www.example.co.jp/."),
    )
    slug = forms.SlugField(
        label=_("Short code"),
        max_length=60,
        required=False,
        help_text=_("Letters, digits, - and _. Leave empty for a random 8-character code."),
    )
    campaign_name = forms.CharField(label=_("Campaign"), max_length=200, required=False)

    def __init__(self, *args: Any, instance: CustomRedirect | None = None, **kwargs: Any) -> None:
        self.instance = instance
        super().__init__(*args, **kwargs)
        if instance is not None:
            self.fields["is_active"] = forms.BooleanField(label=_("Active"), required=False)

    def clean_destination_url(self) -> str:
        return _clean_destination(self.cleaned_data["destination_url"])

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data.get("slug") or ""
        if slug:
            taken = CustomRedirect.objects.filter(slug=slug)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise forms.ValidationError(_("This short code is already in use."))
        return slug


class TrackedFileForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=200,
        required=False,
        help_text=_("Shown in reports; the file name if left empty."),
    )
    file = forms.FileField(label=_("File"), help_text=_("At most 50 MB."))

    def mark_too_large(self) -> None:
        """The upload was stopped at the size limit: say so instead of "this field is required"."""
        self.is_valid()
        self.errors.pop("file", None)
        self.add_error("file", forms.ValidationError(_("The file is larger than 50 MB.")))

    def clean_file(self) -> Any:
        uploaded = self.cleaned_data["file"]
        if uploaded.size > links.MAX_FILE_SIZE:
            raise forms.ValidationError(_("The file is larger than 50 MB."))
        return uploaded


class SizeLimitUploadHandler(FileUploadHandler):
    """Stops reading an upload once a file passes the limit, before it is all on disk.

    Installed in front of Django's handlers (see ``views_assets.file_upload``); the rest of the
    request body is then read and discarded so the browser still gets the form with its error.
    """

    def __init__(self, request: HttpRequest | None = None, *, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
