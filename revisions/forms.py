"""Forms of the Revisions tab and review pages. They parse input; services decide."""

from __future__ import annotations

from django import forms

from integrations.models import Environment

from .services import cache_copy_limit_text


class SnapshotForm(forms.Form):
    description = forms.CharField(
        max_length=500,
        label="Description",
        error_messages={"required": "Describe the snapshot so others can find it later."},
        help_text="What state is this? e.g. “Before the holiday price changes”.",
        widget=forms.TextInput(attrs={"placeholder": "Before the holiday price changes"}),
    )

    def clean_description(self):
        value = self.cleaned_data["description"].strip()
        if not value:
            raise forms.ValidationError("Describe the snapshot so others can find it later.")
        return value


class PullForm(forms.Form):
    source = forms.ModelChoiceField(
        queryset=None,
        label="Pull changes from",
        empty_label=None,
        help_text="Integrations of the same family: clones of this one, or what it was cloned "
        "from, and their clones.",
    )
    description = forms.CharField(
        max_length=500,
        label="Description",
        error_messages={"required": "Say what this pull brings in."},
        widget=forms.TextInput(attrs={"placeholder": "New tax mapping from the sandbox"}),
    )

    def __init__(self, *args, family=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].queryset = family
        self.fields["source"].label_from_instance = lambda i: (
            f"{i.name} ({i.get_environment_display().lower()})"
        )

    def clean_description(self):
        value = self.cleaned_data["description"].strip()
        if not value:
            raise forms.ValidationError("Say what this pull brings in.")
        return value


class CommentForm(forms.Form):
    comment = forms.CharField(required=False, max_length=4000, widget=forms.Textarea)

    def clean_comment(self):
        return self.cleaned_data["comment"].strip()


class RejectForm(CommentForm):
    comment = forms.CharField(
        max_length=4000,
        widget=forms.Textarea,
        error_messages={"required": "Say why you reject it, so the author can fix it."},
    )

    def clean_comment(self):
        value = self.cleaned_data["comment"].strip()
        if not value:
            raise forms.ValidationError("Say why you reject it, so the author can fix it.")
        return value


class ResolveForm(forms.Form):
    lineage_id = forms.UUIDField()
    path = forms.CharField(required=False, max_length=500)
    choose = forms.ChoiceField(choices=[("ours", "Keep ours"), ("theirs", "Take theirs")])


class IncludeForm(forms.Form):
    lineage_id = forms.UUIDField()
    include = forms.TypedChoiceField(
        choices=[("1", "Include"), ("0", "Leave out")], coerce=lambda v: v == "1"
    )


class RevertForm(forms.Form):
    # The side ("to") is not a form field: the service decides which sides a revision has.
    description = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "Why revert? e.g. “Orders failed after #12”"}),
    )
    # The integration's version the preview showed: the revert refuses to run past it.
    version = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)


class CloneForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        label="Name of the clone",
        error_messages={"required": "Give the clone a name."},
    )
    environment = forms.ChoiceField(
        choices=Environment.choices,
        initial=Environment.SANDBOX,
        help_text="Change a sandbox clone freely, then pull its changes back.",
    )
    copy_cache_data = forms.BooleanField(
        required=False,
        label="Copy lookup cache entries",
        help_text="Only when they total under {limit}. Mappings and settings are always copied.",
    )

    def __init__(self, *args, may_clone_to_production=False, **kwargs):
        super().__init__(*args, **kwargs)
        cache_field = self.fields["copy_cache_data"]
        cache_field.help_text = cache_field.help_text.format(limit=cache_copy_limit_text())
        if not may_clone_to_production:
            self.fields["environment"].choices = [
                (Environment.SANDBOX.value, Environment.SANDBOX.label)
            ]
            self.fields["environment"].help_text = (
                "Your role clones into sandboxes; approvers and administrators may clone "
                "into production."
            )

    def clean_name(self):
        value = self.cleaned_data["name"].strip()
        if not value:
            raise forms.ValidationError("Give the clone a name.")
        return value
