"""The site's URLs and the trivial view of the site-ceiling figure (fig 7)."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

TRIVIAL = "/__bench__/trivial/"


def trivial(request: HttpRequest) -> HttpResponse:
    """The least a Django view can do: the baseline of fig 7."""
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path(TRIVIAL.strip("/") + "/", trivial),
    path("", include("ilm_site.urls")),
]
