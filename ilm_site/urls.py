from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from integrations.throttles import login_rate_limited

urlpatterns = [
    path(
        "login/",
        login_rate_limited(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("ilm_site.api_urls")),
    path("account/", include("integrations.account_urls")),
    path("", include("revisions.package_urls")),
    path("demo-systems/", include("runs.demo_systems")),
    path("notifications/", include("runs.notification_urls")),
    path("", include("runs.urls")),
    path("", include("revisions.urls")),
    path("", include("audit.urls")),
    path("", include("integrations.urls")),
]
