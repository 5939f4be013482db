from django.urls import path

from . import views

app_name = "integrations"
urlpatterns = [
    path("", views.home, name="home"),
    path("integrations/<int:pk>/", views.integration_detail, name="detail"),
]
