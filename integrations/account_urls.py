from django.urls import path

from . import account_views

app_name = "account"
urlpatterns = [
    path("", account_views.profile, name="profile"),
    path("tokens/", account_views.token_create, name="token_create"),
    path("tokens/<int:pk>/revoke/", account_views.token_revoke, name="token_revoke"),
]
