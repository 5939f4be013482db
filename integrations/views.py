from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .permissions import get_visible_integration, visible_integrations


@login_required
def home(request):
    return render(
        request, "integrations/home.html", {"integrations": visible_integrations(request.user)}
    )


@login_required
def integration_detail(request, pk):
    integration = get_visible_integration(request.user, pk)
    return render(request, "integrations/home.html", {"integrations": [integration]})
