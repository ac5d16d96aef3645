from django.urls import include, path

urlpatterns = [path("", include("db_file_storage.urls"))]
