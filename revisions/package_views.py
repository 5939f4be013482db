"""Export an integration as a package, and import one (as a new integration or a pull).

Thin: check the user may see the integration (404) and take the action (403), call
`revisions.packages`, render. An invalid package re-shows the form with the first
problem named; nothing is created.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from integrations.models import Environment, Integration
from integrations.permissions import (
    Action,
    can,
    get_visible_integration,
    require,
    visible_integrations,
)

from . import packages
from .errors import RevisionError


@login_required
@require_GET
def package_export(request: HttpRequest, pk: int) -> HttpResponse:
    """Download the integration's package (its canonical document plus metadata)."""
    integration = get_visible_integration(request.user, pk)
    require(request.user, Action.EXPORT, integration)
    package = packages.package_of(integration, user=request.user)
    response = HttpResponse(packages.package_bytes(package), content_type="application/json")
    filename = packages.package_filename(integration)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class PackageImportForm(forms.Form):
    MODE_NEW = "new"
    MODE_PULL = "pull"

    file = forms.FileField(
        label="Package file", help_text="A .ilm.json file exported from an integration."
    )
    mode = forms.ChoiceField(
        label="Import as",
        choices=[
            (MODE_NEW, "A new integration (keeps its lineage: it can pull from the original)"),
            (MODE_PULL, "A pull into an existing integration of the same family, to review"),
        ],
        initial=MODE_NEW,
        widget=forms.RadioSelect,
    )
    name = forms.CharField(
        label="Name of the new integration",
        max_length=200,
        required=False,
        help_text="Leave empty to use the name in the package.",
    )
    environment = forms.ChoiceField(
        label="Environment of the new integration",
        choices=Environment.choices,
        initial=Environment.SANDBOX,
    )
    target = forms.ModelChoiceField(
        label="Pull into",
        queryset=Integration.objects.none(),
        required=False,
        empty_label="Choose an integration",
    )
    description = forms.CharField(label="Description of the pull", max_length=500, required=False)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        pullable = [
            i.pk
            for i in visible_integrations(user)
            if can(user, Action.PULL, i) and can(user, Action.IMPORT_PACKAGE, i)
        ]
        self.fields["target"].queryset = Integration.objects.filter(pk__in=pullable)
        if not can(user, Action.CLONE_TO_PRODUCTION):
            self.fields["environment"].choices = [(Environment.SANDBOX, Environment.SANDBOX.label)]
            self.fields["environment"].help_text = (
                "Your role imports into a sandbox; an approver or administrator can make "
                "production integrations."
            )

    def clean(self):
        data = super().clean()
        if data.get("mode") == self.MODE_PULL and not data.get("target"):
            self.add_error("target", "Choose the integration to pull the package into.")
        return data


@login_required
def package_import(request: HttpRequest) -> HttpResponse:
    """Upload a package; make a new integration from it or a pull into an existing one."""
    require(request.user, Action.IMPORT_PACKAGE)
    initial = {}
    into = request.GET.get("into")
    if into and into.isdigit():
        initial = {"mode": PackageImportForm.MODE_PULL, "target": int(into)}
    form = PackageImportForm(
        request.POST or None, request.FILES or None, user=request.user, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            package = packages.package_parse(data["file"].read())
            if data["mode"] == PackageImportForm.MODE_PULL:
                target = data["target"]
                require(request.user, Action.PULL, target)
                require(request.user, Action.IMPORT_PACKAGE, target)
                revision = packages.package_pull(
                    package=package,
                    target=target,
                    user=request.user,
                    description=data["description"],
                )
                messages.success(
                    request,
                    f"Package imported as pull #{revision.number} into {target.name}; "
                    "review it before merging.",
                )
                return redirect(revision.get_absolute_url())
            integration = packages.package_import(
                package=package,
                user=request.user,
                name=data["name"],
                environment=data["environment"],
            )
        except (ValidationError, RevisionError) as exc:
            text = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
            form.add_error(None, f"Nothing was imported. {text}")
        else:
            messages.success(request, f"Imported {integration.name} from the package.")
            return redirect(integration.get_absolute_url())
    status = 400 if form.errors else 200
    return render(request, "revisions/package_import.html", {"form": form}, status=status)
